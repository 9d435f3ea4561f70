package jobmanager

import (
	"context"
	"fmt"
	"path"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// A task that finished acknowledges nothing more, but its state stays part
// of the job: a restore from a later checkpoint that left it out would
// start its operators empty (a bounded source would read its input again,
// and exactly-once sinks downstream would commit it twice). So, as in
// Flink, every checkpoint completed after a task finished holds the state
// the task acknowledged last. A checkpoint references that state where it
// is, "../chk-<M>/<file>" from its own directory (the chk directories are
// siblings, and cleanup keeps a file while a retained checkpoint lists it);
// a savepoint, which must stand alone, holds copies, under "finished/" in
// its directory.

// finishedDir is the directory, inside a checkpoint's or savepoint's, that
// holds the copies of finished tasks' state files.
const finishedDir = "finished"

// finalState is what a task acknowledged in the last completed checkpoint
// it acknowledged: its operator subtask states, file names relative to
// that checkpoint's directory, chk-<cp> in the job's checkpoint directory
// or, for a savepoint, the savepoint's directory at url.
type finalState struct {
	cp     uint64
	url    string
	states []*pluginpb.OperatorSubtaskState
}

// carryFinished returns the state a checkpoint (or savepoint) in progress
// holds for the tasks of the attempt that finished without acknowledging
// it, by task, with file names relative to its directory. It takes a
// task's last state from what the coordinator recorded when checkpoints
// completed, or, when it has no record (a new leader), from the newest
// completed checkpoint or savepoint of the job.
func (c *coordinator) carryFinished(ctx context.Context, rec *eddypb.CheckpointRecord, dirName string, acked map[taskKey][]*pluginpb.OperatorSubtaskState) (map[taskKey][]*pluginpb.OperatorSubtaskState, error) {
	var missing []taskKey
	var finished []taskKey
	for _, t := range c.m.raft.State().Tasks(c.id) {
		k := taskKey{t.Chain, t.Subtask}
		if t.Attempt != c.attempt || t.State != eddypb.TaskState_TASK_STATE_FINISHED {
			continue
		}
		if _, ok := acked[k]; ok {
			continue
		}
		finished = append(finished, k)
		if c.final[k] == nil {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		if err := c.recoverFinal(ctx, dirName, missing); err != nil {
			return nil, err
		}
	}
	out := map[taskKey][]*pluginpb.OperatorSubtaskState{}
	cp := &copier{c: c, rec: rec, dirName: dirName, copied: map[string]string{}}
	for _, k := range finished {
		f := c.final[k]
		if f == nil || len(f.states) == 0 {
			continue
		}
		states := make([]*pluginpb.OperatorSubtaskState, 0, len(f.states))
		for _, s := range f.states {
			s, err := cp.carry(ctx, f, s)
			if err != nil {
				return nil, fmt.Errorf("state of finished task %s: %w", taskName(c.graph, &eddypb.TaskStatus{Chain: k.chain, Subtask: k.subtask}), err)
			}
			states = append(states, s)
		}
		out[k] = states
	}
	return out, nil
}

// recordFinal records the states a completed checkpoint holds of every
// task, for the tasks that finish later. The copies a savepoint made are
// not recorded: later checkpoints reference the originals.
func (c *coordinator) recordFinal(rec *eddypb.CheckpointRecord, acked, carried map[taskKey][]*pluginpb.OperatorSubtaskState) {
	url := ""
	if rec.Savepoint {
		url = rec.Url
	}
	for k, s := range acked {
		c.final[k] = &finalState{cp: rec.CheckpointId, url: url, states: s}
	}
	if rec.Savepoint {
		return
	}
	for k, s := range carried {
		c.final[k] = &finalState{cp: rec.CheckpointId, states: s}
	}
}

// recoverFinal records the last states of tasks from the newest completed
// checkpoint or savepoint of the job: the entries of the operators of each
// task's chain, at its subtask. A task finishes only once a checkpoint it
// acknowledged after its end completed, and every later one holds its
// state, so the newest holds its final state.
func (c *coordinator) recoverFinal(ctx context.Context, dirName string, tasks []taskKey) error {
	st := c.m.raft.State()
	var from *eddypb.CheckpointRecord
	if r, ok := st.LatestCheckpoint(c.id); ok {
		from = r
	}
	for _, s := range st.CheckpointStats(c.id).GetSavepoints() {
		if s.Status == eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED && (from == nil || s.CheckpointId > from.CheckpointId) {
			from = s
		}
	}
	if from == nil {
		return nil
	}
	var md *pluginpb.CheckpointMetadata
	var err error
	url := ""
	if from.Savepoint {
		url = from.Url
		var sst storage.Store
		if sst, err = c.m.cfg.OpenStorage(ctx, url); err == nil {
			md, err = checkpoint.ReadMetadata(ctx, sst, "")
		}
	} else {
		md, err = checkpoint.ReadMetadata(ctx, c.m.cfg.Checkpoints, dirName+"/"+checkpoint.Dir(from.CheckpointId))
	}
	if err != nil {
		return fmt.Errorf("read the state of finished tasks from checkpoint %d: %w", from.CheckpointId, err)
	}
	uid := map[uint32]*pluginpb.Vertex{}
	for _, v := range c.graph.Vertices {
		uid[v.Id] = v
	}
	for _, k := range tasks {
		f := &finalState{cp: from.CheckpointId, url: url}
		for _, ch := range c.graph.Chains {
			if ch.Id != k.chain {
				continue
			}
			for _, vid := range ch.Vertices {
				v := uid[vid]
				if v == nil || v.Uid == "" {
					continue
				}
				op := checkpoint.Operator(md, v.Uid)
				if op == nil {
					continue
				}
				if op.Parallelism != 0 && op.Parallelism != v.Parallelism {
					return fmt.Errorf("read the state of finished tasks from checkpoint %d: operator %q has parallelism %d there and %d in the job", from.CheckpointId, v.Uid, op.Parallelism, v.Parallelism)
				}
				for _, s := range op.Subtasks {
					if s.Subtask == k.subtask {
						f.states = append(f.states, s)
					}
				}
			}
		}
		c.final[k] = f
	}
	c.log()("recovered the state of finished tasks", "checkpoint_id", from.CheckpointId, "tasks", len(tasks))
	return nil
}

// copier rewrites carried states for one checkpoint or savepoint, copying
// the files it must hold itself.
type copier struct {
	c       *coordinator
	rec     *eddypb.CheckpointRecord
	dirName string
	dst     storage.Store            // the savepoint's directory, once opened
	srcs    map[string]storage.Store // savepoint directories carried from, by URL
	copied  map[string]string        // source object -> name in the checkpoint's directory
}

// carry returns s, recorded in f, as the checkpoint in progress holds it.
func (cp *copier) carry(ctx context.Context, f *finalState, s *pluginpb.OperatorSubtaskState) (*pluginpb.OperatorSubtaskState, error) {
	s = proto.CloneOf(s)
	switch {
	case f.url == "" && !cp.rec.Savepoint:
		// A checkpoint references the files in their chk directory.
		s.File = besideName(f.cp, s.File)
		for i, name := range s.Shared {
			s.Shared[i] = besideName(f.cp, name)
		}
		return s, nil
	case len(s.Shared) > 0:
		// Only checkpoints hold incremental state, whose files a
		// savepoint cannot take: its manifest names them relative to the
		// job's checkpoint directory.
		return nil, fmt.Errorf("operator %q subtask %d holds incremental state (the Pebble state backend) of checkpoint %d, which a savepoint cannot copy; take the savepoint before its tasks finish",
			s.Uid, s.Subtask, f.cp)
	}
	if s.File == "" {
		return s, nil
	}
	// Copy the file: into the savepoint, or out of a savepoint into the
	// checkpoint's directory.
	var src storage.Store
	var srcName, dstName string
	if f.url == "" {
		rel := path.Clean(path.Join(checkpoint.Dir(f.cp), s.File))
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(rel, "/") {
			return nil, fmt.Errorf("%w: state file %q of checkpoint %d is outside the job's checkpoint directory", checkpoint.ErrCorrupt, s.File, f.cp)
		}
		src, srcName, dstName = cp.c.m.cfg.Checkpoints, cp.dirName+"/"+rel, finishedDir+"/"+rel
	} else {
		rel := path.Clean(s.File)
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(rel, "/") {
			return nil, fmt.Errorf("%w: state file %q of savepoint %d is outside its directory", checkpoint.ErrCorrupt, s.File, f.cp)
		}
		var err error
		if src, err = cp.source(ctx, f.url); err != nil {
			return nil, err
		}
		srcName, dstName = rel, fmt.Sprintf("%s/sp-%d/%s", finishedDir, f.cp, rel)
	}
	key := src.URL(srcName)
	if name, ok := cp.copied[key]; ok {
		s.File = name
		return s, nil
	}
	dst, prefix, err := cp.target(ctx)
	if err != nil {
		return nil, err
	}
	if err := copyObject(ctx, src, srcName, dst, prefix+dstName, s.Size); err != nil {
		return nil, err
	}
	cp.copied[key] = dstName
	s.File = dstName
	return s, nil
}

// source opens a savepoint directory carried from.
func (cp *copier) source(ctx context.Context, url string) (storage.Store, error) {
	if st := cp.srcs[url]; st != nil {
		return st, nil
	}
	st, err := cp.c.m.cfg.OpenStorage(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open savepoint %s: %w", url, err)
	}
	if cp.srcs == nil {
		cp.srcs = map[string]storage.Store{}
	}
	cp.srcs[url] = st
	return st, nil
}

// target returns the store the copies go into and the prefix of the
// checkpoint's directory in it.
func (cp *copier) target(ctx context.Context) (storage.Store, string, error) {
	if !cp.rec.Savepoint {
		return cp.c.m.cfg.Checkpoints, cp.dirName + "/" + checkpoint.Dir(cp.rec.CheckpointId) + "/", nil
	}
	if cp.dst == nil {
		st, err := cp.c.m.cfg.OpenStorage(ctx, cp.rec.Url)
		if err != nil {
			return nil, "", fmt.Errorf("open savepoint directory %s: %w", cp.rec.Url, err)
		}
		cp.dst = st
	}
	return cp.dst, "", nil
}

// besideName returns the name, relative to a sibling chk directory, of a
// file named name relative to chk-<cp>: names that lead out of chk-<cp>
// already lead to a sibling and stay.
func besideName(cp uint64, name string) string {
	if name == "" || strings.HasPrefix(name, "../") {
		return name
	}
	return "../" + checkpoint.Dir(cp) + "/" + name
}

// copyObject copies an object between stores, checking its size (and, as
// it reads it to the end, its checksum).
func copyObject(ctx context.Context, src storage.Store, srcName string, dst storage.Store, dstName string, size int64) error {
	rc, _, err := src.Open(ctx, srcName)
	if err != nil {
		return fmt.Errorf("copy state file %s: %w", src.URL(srcName), err)
	}
	defer rc.Close()
	info, err := dst.Put(ctx, dstName, rc)
	if err != nil {
		return fmt.Errorf("copy state file %s to %s: %w", src.URL(srcName), dst.URL(dstName), err)
	}
	if info.Size != size {
		return fmt.Errorf("copy state file %s: %w: %d bytes, the metadata records %d", src.URL(srcName), checkpoint.ErrCorrupt, info.Size, size)
	}
	return nil
}
