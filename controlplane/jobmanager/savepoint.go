package jobmanager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// SavepointOptions is what a savepoint request asks for.
type SavepointOptions struct {
	// URL is the savepoint's directory; empty: a new directory under the
	// cluster's default.
	URL string
	// Stop makes it a stop with savepoint: the sources end after its
	// barrier and the job finishes once it completes.
	Stop bool
	// Drain, with Stop, fires every window and timer before the savepoint.
	Drain bool
}

// Savepoint is a triggered savepoint.
type Savepoint struct {
	RequestID    string
	CheckpointID uint64
	URL          string
}

// TriggerSavepoint starts a savepoint (or a stop with savepoint) of a
// running job, after the checkpoint in progress if any, and returns once it
// is triggered. Its progress is the job's checkpoint record with the
// returned request id; if it fails, the job keeps running.
func (m *Manager) TriggerSavepoint(ctx context.Context, id controlplane.JobID, o SavepointOptions) (Savepoint, error) {
	j, ok := m.raft.State().Job(id)
	if !ok {
		return Savepoint{}, fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if o.Drain && !o.Stop {
		return Savepoint{}, fmt.Errorf("%w: drain applies to a stop with savepoint only", controlplane.ErrInvalidArgument)
	}
	if len(j.Spec.Graph) == 0 {
		return Savepoint{}, fmt.Errorf("%w: job %s has no job graph", controlplane.ErrCheckpointNotPossible, id)
	}
	g, err := ParseGraph(j.Spec.Graph)
	if err != nil {
		return Savepoint{}, err
	}
	if g.Checkpointing == nil {
		return Savepoint{}, fmt.Errorf("%w: job %s does not checkpoint, so it cannot take savepoints (enable checkpointing in the job; an interval of 0 checkpoints on request only)", controlplane.ErrCheckpointNotPossible, id)
	}
	if j.Status != eddypb.JobStatus_JOB_STATUS_RUNNING {
		return Savepoint{}, fmt.Errorf("%w: job %s is %s, not RUNNING", controlplane.ErrCheckpointNotPossible, id, StatusName(j.Status))
	}
	if o.URL == "" {
		if m.cfg.Savepoints == nil {
			return Savepoint{}, fmt.Errorf("%w: the cluster has no default savepoint directory: give the savepoint's URL", controlplane.ErrInvalidArgument)
		}
	} else {
		st, err := m.cfg.OpenStorage(ctx, o.URL)
		if err != nil {
			return Savepoint{}, fmt.Errorf("%w: savepoint directory %s: %v", controlplane.ErrInvalidArgument, o.URL, err)
		}
		if _, err := st.Stat(ctx, checkpoint.MetadataName); err == nil {
			return Savepoint{}, fmt.Errorf("%w: %s holds a savepoint already (%s); give an empty directory", controlplane.ErrInvalidArgument, o.URL, checkpoint.MetadataName)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return Savepoint{}, fmt.Errorf("%w: savepoint directory %s: %v", controlplane.ErrInvalidArgument, o.URL, err)
		}
	}
	req := &savepointReq{requestID: shortID() + shortID(), url: o.URL, stop: o.Stop, drain: o.Drain}
	r := m.request(ctx, j, g, req)
	if r.err != nil {
		return Savepoint{}, r.err
	}
	m.cfg.Logger.Info("savepoint triggered", "job_id", id, "checkpoint_id", r.id, "url", r.url, "stop", o.Stop, "request_id", req.requestID)
	return Savepoint{RequestID: req.requestID, CheckpointID: r.id, URL: r.url}, nil
}

// FindSavepoint returns a job's savepoint record by request id: in
// progress, ended, or nil when there is none.
func FindSavepoint(cps *eddypb.JobCheckpoints, requestID string) *eddypb.CheckpointRecord {
	if p := cps.GetInProgress(); p != nil && p.Savepoint && p.RequestId == requestID {
		return p
	}
	for _, s := range cps.GetSavepoints() {
		if s.RequestId == requestID {
			return s
		}
	}
	return nil
}

// checkRestore refuses, at submit, a job whose savepoint cannot be read or
// does not fit it, and records the savepoint's checkpoint id in the spec.
func (m *Manager) checkRestore(ctx context.Context, spec *eddypb.JobSpec, g *pluginpb.JobGraph) error {
	r := spec.Restore
	if r.Url == "" {
		return fmt.Errorf("%w: restore without a savepoint URL", controlplane.ErrInvalidArgument)
	}
	st, err := m.cfg.OpenStorage(ctx, r.Url)
	if err != nil {
		return fmt.Errorf("%w: savepoint %s: %v", controlplane.ErrInvalidArgument, r.Url, err)
	}
	md, err := checkpoint.ReadMetadata(ctx, st, "")
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: savepoint %s cannot be restored: no %s in it (not a savepoint, or an incomplete one)", controlplane.ErrInvalidArgument, r.Url, checkpoint.MetadataName)
	}
	if err != nil {
		return fmt.Errorf("%w: savepoint %s cannot be restored: %v", controlplane.ErrInvalidArgument, r.Url, err)
	}
	var uids []string
	for _, v := range g.Vertices {
		if v.Uid != "" {
			uids = append(uids, v.Uid)
		}
	}
	if err := checkpoint.Validate(md, int(g.MaxParallelism), uids, r.AllowNonRestoredState); err != nil {
		return fmt.Errorf("%w: savepoint %s does not fit job %q: %v", controlplane.ErrInvalidArgument, r.Url, g.Name, err)
	}
	r.CheckpointId = md.CheckpointId
	return nil
}

// restorePoint returns what a new attempt of a job starts from: the newest
// of its retained checkpoints, its completed savepoints, and the savepoint
// it was submitted with; nil when there is none. Newest by id: a savepoint
// completed after the latest checkpoint had its output committed, so an
// older checkpoint would commit it again.
func (m *Manager) restorePoint(j *eddypb.Job) *pluginpb.RestoreSpec {
	id := controlplane.JobID(j.Spec.JobId)
	st := m.raft.State()
	allow := j.Spec.Restore.GetAllowNonRestoredState()
	var best *pluginpb.RestoreSpec
	consider := func(url string, cp uint64) {
		if best == nil || cp > best.CheckpointId {
			best = &pluginpb.RestoreSpec{Url: url, CheckpointId: cp, AllowNonRestoredState: allow}
		}
	}
	if r := j.Spec.Restore; r != nil {
		consider(r.Url, r.CheckpointId)
	}
	if cp, ok := st.LatestCheckpoint(id); ok {
		consider(cp.Url, cp.CheckpointId)
	}
	for _, s := range st.CheckpointStats(id).GetSavepoints() {
		if s.Status == eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
			consider(s.Url, s.CheckpointId)
		}
	}
	return best
}

// restoreRefused is the error of a plugin that found, at Prepare, that the
// job cannot restore its savepoint: the job fails without restarting.
type restoreRefused struct{ msg string }

func (e *restoreRefused) Error() string { return e.msg }

// validator picks the one worker whose plugin validates a restore.
func validator(workers map[string]workerRef) string {
	ids := make([]string, 0, len(workers))
	for id := range workers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func shortID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
