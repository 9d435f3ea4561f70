package fsm

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/storage"
)

// ErrCheckpointMismatch means a checkpoint command names a checkpoint that
// is not the one in progress (or retained), or a checkpoint is in progress
// already: a late or duplicate decision of a coordinator.
var ErrCheckpointMismatch = errors.New("checkpoint changed")

// HistorySize bounds the checkpoint history kept per job.
const HistorySize = 32

// FailedSavepoints bounds the failed savepoints kept per job; completed
// ones are all kept.
const FailedSavepoints = 16

// jobCheckpoints returns a copy of a job's checkpoint bookkeeping to change.
func (s *State) jobCheckpoints(id controlplane.JobID) *eddypb.JobCheckpoints {
	if c, ok := s.checkpoints[id]; ok {
		return proto.CloneOf(c)
	}
	return &eddypb.JobCheckpoints{JobId: string(id)}
}

// addHistory appends an ended checkpoint to the bounded history.
func addHistory(c *eddypb.JobCheckpoints, r *eddypb.CheckpointRecord) {
	c.History = append(c.History, r)
	if n := len(c.History); n > HistorySize {
		c.History = slices.Clone(c.History[n-HistorySize:])
	}
}

func (s *State) applyTriggerCheckpoint(c *eddypb.TriggerCheckpointCommand) error {
	id := controlplane.JobID(c.JobId)
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if j.Status != eddypb.JobStatus_JOB_STATUS_RUNNING || j.Attempt != c.Attempt {
		return fmt.Errorf("%w: job %s is %s at attempt %d, not RUNNING at attempt %d", ErrStatusMismatch, id, j.Status, j.Attempt, c.Attempt)
	}
	cps := s.jobCheckpoints(id)
	if cps.InProgress != nil {
		return fmt.Errorf("%w: checkpoint %d of job %s is in progress", ErrCheckpointMismatch, cps.InProgress.CheckpointId, id)
	}
	cps.LastId++
	url := storage.MustJoinURL(c.Url, fmt.Sprintf("chk-%d", cps.LastId))
	if c.Savepoint {
		url = c.Url
		if c.SavepointSuffix != "" {
			url = storage.MustJoinURL(c.Url, fmt.Sprintf("savepoint-%s-%d-%s", c.JobId, cps.LastId, c.SavepointSuffix))
		}
	}
	cps.InProgress = &eddypb.CheckpointRecord{
		JobId:         c.JobId,
		CheckpointId:  cps.LastId,
		Url:           url,
		TriggeredAtMs: c.AtMs,
		Status:        eddypb.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS,
		Attempt:       c.Attempt,
		Manual:        c.Manual,
		Savepoint:     c.Savepoint,
		RequestId:     c.RequestId,
		Stop:          c.Stop,
		Drain:         c.Drain,
	}
	s.checkpoints[id] = cps
	return nil
}

func (s *State) applyCompleteCheckpoint(c *eddypb.CompleteCheckpointCommand) error {
	cp := c.Checkpoint
	id := controlplane.JobID(cp.GetJobId())
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if j.Attempt != cp.Attempt {
		return fmt.Errorf("%w: job %s is at attempt %d, not %d", ErrStatusMismatch, id, j.Attempt, cp.Attempt)
	}
	cps := s.jobCheckpoints(id)
	if cps.InProgress == nil || cps.InProgress.CheckpointId != cp.CheckpointId {
		return fmt.Errorf("%w: checkpoint %d of job %s is not in progress", ErrCheckpointMismatch, cp.CheckpointId, id)
	}
	done := cps.InProgress
	done.Status = eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
	done.SizeBytes = cp.SizeBytes
	done.CompletedAtMs = cp.CompletedAtMs
	done.DurationMs = max(cp.CompletedAtMs-done.TriggeredAtMs, 0)
	cps.InProgress = nil
	cps.Completed++
	cps.Dropped = nil
	if done.Savepoint {
		// A savepoint belongs to the user: retention does not count it.
		cps.Savepoints = append(cps.Savepoints, done)
		addHistory(cps, done)
		s.checkpoints[id] = cps
		return nil
	}
	cps.ConsecutiveFailures = 0
	cps.Retained = append(cps.Retained, done)
	if c.Retain > 0 && len(cps.Retained) > int(c.Retain) {
		n := len(cps.Retained) - int(c.Retain)
		cps.Dropped = slices.Clone(cps.Retained[:n])
		cps.Retained = slices.Clone(cps.Retained[n:])
	}
	addHistory(cps, done)
	s.checkpoints[id] = cps
	return nil
}

func (s *State) applyFailCheckpoint(c *eddypb.FailCheckpointCommand) error {
	id := controlplane.JobID(c.JobId)
	if _, ok := s.jobs[id]; !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	cps := s.jobCheckpoints(id)
	if cps.InProgress == nil || cps.InProgress.CheckpointId != c.CheckpointId {
		return fmt.Errorf("%w: checkpoint %d of job %s is not in progress", ErrCheckpointMismatch, c.CheckpointId, id)
	}
	failCheckpoint(cps, c.Failure, c.AtMs)
	s.checkpoints[id] = cps
	return nil
}

// failCheckpoint ends the checkpoint in progress of cps as failed.
func failCheckpoint(cps *eddypb.JobCheckpoints, failure string, atMs int64) {
	f := cps.InProgress
	f.Status = eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED
	f.Failure = failure
	f.CompletedAtMs = atMs
	f.DurationMs = max(atMs-f.TriggeredAtMs, 0)
	cps.InProgress = nil
	cps.Failed++
	addHistory(cps, f)
	if !f.Savepoint {
		cps.ConsecutiveFailures++
		return
	}
	// A failed savepoint does not count against the job's tolerance.
	cps.Savepoints = append(cps.Savepoints, f)
	failed := 0
	for i := len(cps.Savepoints) - 1; i >= 0; i-- {
		if cps.Savepoints[i].Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED {
			continue
		}
		if failed++; failed > FailedSavepoints {
			cps.Savepoints = slices.Delete(slices.Clone(cps.Savepoints), i, i+1)
			break
		}
	}
}

// abortCheckpoint fails a job's checkpoint in progress, if any, because the
// attempt it belongs to ended.
func (s *State) abortCheckpoint(id controlplane.JobID, failure string, atMs int64) {
	if s.checkpoints[id].GetInProgress() == nil {
		return
	}
	cps := s.jobCheckpoints(id)
	failCheckpoint(cps, failure, atMs)
	s.checkpoints[id] = cps
}

func (s *State) applyDiscardCheckpoint(c *eddypb.DiscardCheckpointCommand) error {
	id := controlplane.JobID(c.JobId)
	if _, ok := s.jobs[id]; !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	cps := s.jobCheckpoints(id)
	var d *eddypb.CheckpointRecord
	if i := slices.IndexFunc(cps.Retained, func(r *eddypb.CheckpointRecord) bool { return r.CheckpointId == c.CheckpointId }); i >= 0 {
		d = cps.Retained[i]
		cps.Retained = slices.Delete(cps.Retained, i, i+1)
	} else if i := slices.IndexFunc(cps.Savepoints, func(r *eddypb.CheckpointRecord) bool {
		return r.CheckpointId == c.CheckpointId && r.Status == eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
	}); i >= 0 {
		// The savepoint stays listed, as unreadable.
		d = cps.Savepoints[i]
	} else {
		return fmt.Errorf("%w: checkpoint %d of job %s is not retained", ErrCheckpointMismatch, c.CheckpointId, id)
	}
	d.Status = eddypb.CheckpointStatus_CHECKPOINT_STATUS_DISCARDED
	d.Failure = c.Reason
	for k, h := range cps.History {
		if h.CheckpointId == c.CheckpointId {
			cps.History[k] = d
		}
	}
	s.checkpoints[id] = cps
	return nil
}

func (s *State) applyRestartJob(c *eddypb.RestartJobCommand, index uint64) error {
	id := controlplane.JobID(c.JobId)
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	switch {
	case j.Attempt != c.Attempt:
		return fmt.Errorf("%w: job %s is at attempt %d, not %d", ErrStatusMismatch, id, j.Attempt, c.Attempt)
	case j.Status != eddypb.JobStatus_JOB_STATUS_RUNNING && j.Status != eddypb.JobStatus_JOB_STATUS_SCHEDULED:
		return fmt.Errorf("%w: job %s is %s", ErrStatusMismatch, id, j.Status)
	}
	nj := proto.CloneOf(j)
	nj.Status = eddypb.JobStatus_JOB_STATUS_RESTARTING
	nj.StatusReason = c.Reason
	nj.Restarts++
	nj.Failure = c.Reason
	nj.FailureAtMs = c.AtMs
	nj.UpdatedAtMs = c.AtMs
	nj.ModifyIndex = index
	s.jobs[id] = nj
	delete(s.assignments, id)
	s.abortCheckpoint(id, "aborted: job restarting after "+c.Reason, c.AtMs)
	if cps := s.checkpoints[id]; cps.GetConsecutiveFailures() > 0 {
		cps = proto.CloneOf(cps)
		cps.ConsecutiveFailures = 0
		s.checkpoints[id] = cps
	}
	return nil
}
