package fsm

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// ErrStatusMismatch means a conditional job status update found the job in a
// status it did not expect.
var ErrStatusMismatch = errors.New("job status changed")

// ErrSlotTaken means an assignment named a slot that is assigned already or
// does not exist.
var ErrSlotTaken = errors.New("slot not available")

// Response is what Apply returns for every command: the index it was applied
// at and the business error, if any.
type Response struct {
	Index uint64
	Err   error
}

// FSM implements raft.FSM. Apply is called by Raft from one goroutine;
// State, Snapshot and the other readers may be called concurrently with it.
type FSM struct {
	mu    sync.RWMutex
	state *State

	// watch is closed and replaced on every applied command, so that readers
	// can wait for the state to change without polling.
	watch chan struct{}
}

// New returns an FSM with empty state.
func New() *FSM {
	return &FSM{state: newState(), watch: make(chan struct{})}
}

// State returns an immutable view of the current state.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

// Changed returns a channel that is closed at the next applied command.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.watch
}

// Apply applies one committed log entry.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("fsm: empty command at index %d", l.Index))
	}
	t := CommandType(l.Data[0])
	msg := commandFor(t)
	if msg == nil {
		panic(fmt.Sprintf("fsm: unknown command type %d at index %d", l.Data[0], l.Index))
	}
	if err := proto.Unmarshal(l.Data[1:], msg); err != nil {
		panic(fmt.Sprintf("fsm: decode %s at index %d: %v", t, l.Index, err))
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	// Copy-on-write: the previous state stays valid for readers holding it.
	next := f.state.clone()
	next.index = l.Index
	var err error
	switch c := msg.(type) {
	case *eddypb.InitClusterCommand:
		err = next.applyInitCluster(c)
	case *eddypb.UpsertMemberCommand:
		err = next.applyUpsertMember(c)
	case *eddypb.RemoveMemberCommand:
		err = next.applyRemoveMember(c)
	case *eddypb.SubmitJobCommand:
		err = next.applySubmitJob(c, l.Index)
	case *eddypb.UpdateJobStatusCommand:
		err = next.applyUpdateJobStatus(c, l.Index)
	case *eddypb.RegisterWorkerCommand:
		err = next.applyRegisterWorker(c, l.Index)
	case *eddypb.UpdateWorkerStatusCommand:
		err = next.applyUpdateWorkerStatus(c, l.Index)
	case *eddypb.AssignSlotsCommand:
		err = next.applyAssignSlots(c, l.Index)
	case *eddypb.ReleaseSlotsCommand:
		err = next.applyReleaseSlots(c)
	case *eddypb.CompleteCheckpointCommand:
		err = next.applyCompleteCheckpoint(c)
	case *eddypb.UpdateTasksCommand:
		err = next.applyUpdateTasks(c)
	case *eddypb.StartAttemptCommand:
		err = next.applyStartAttempt(c, l.Index)
	case *eddypb.TriggerCheckpointCommand:
		err = next.applyTriggerCheckpoint(c)
	case *eddypb.FailCheckpointCommand:
		err = next.applyFailCheckpoint(c)
	case *eddypb.DiscardCheckpointCommand:
		err = next.applyDiscardCheckpoint(c)
	case *eddypb.RestartJobCommand:
		err = next.applyRestartJob(c, l.Index)
	default:
		panic(fmt.Sprintf("fsm: no apply for %s", t))
	}
	if err == nil {
		f.state = next
	} else {
		// A rejected command changes nothing but the applied index.
		cur := f.state.clone()
		cur.index = l.Index
		f.state = cur
	}
	close(f.watch)
	f.watch = make(chan struct{})
	return &Response{Index: l.Index, Err: err}
}

func (s *State) applyInitCluster(c *eddypb.InitClusterCommand) error {
	if c.ClusterId == "" {
		return fmt.Errorf("%w: empty cluster id", controlplane.ErrInvalidArgument)
	}
	if s.clusterID != "" && s.clusterID != c.ClusterId {
		return fmt.Errorf("%w: cluster is %s, not %s", controlplane.ErrOtherCluster, s.clusterID, c.ClusterId)
	}
	s.clusterID = c.ClusterId
	return nil
}

func (s *State) applyUpsertMember(c *eddypb.UpsertMemberCommand) error {
	if c.Member.GetId() == "" {
		return fmt.Errorf("%w: member without id", controlplane.ErrInvalidArgument)
	}
	s.members[controlplane.NodeID(c.Member.Id)] = c.Member
	return nil
}

func (s *State) applyRemoveMember(c *eddypb.RemoveMemberCommand) error {
	id := controlplane.NodeID(c.NodeId)
	if _, ok := s.members[id]; !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrNodeNotFound, c.NodeId)
	}
	delete(s.members, id)
	return nil
}

func (s *State) applySubmitJob(c *eddypb.SubmitJobCommand, index uint64) error {
	id := controlplane.JobID(c.Spec.GetJobId())
	if id == "" {
		return fmt.Errorf("%w: job without id", controlplane.ErrInvalidArgument)
	}
	if _, ok := s.jobs[id]; ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobExists, id)
	}
	s.jobs[id] = &eddypb.Job{
		Spec:          c.Spec,
		Status:        eddypb.JobStatus_JOB_STATUS_CREATED,
		SubmittedAtMs: c.AtMs,
		UpdatedAtMs:   c.AtMs,
		CreateIndex:   index,
		ModifyIndex:   index,
	}
	if r := c.Spec.GetRestore(); r != nil {
		// A job restored from checkpoint N continues with N+1: sinks name
		// what they commit by checkpoint id.
		s.checkpoints[id] = &eddypb.JobCheckpoints{JobId: string(id), LastId: r.CheckpointId}
	}
	return nil
}

func (s *State) applyUpdateJobStatus(c *eddypb.UpdateJobStatusCommand, index uint64) error {
	id := controlplane.JobID(c.JobId)
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if Terminal(j.Status) {
		// A job that ended stays ended: a late report must not revive it.
		return fmt.Errorf("%w: job %s has ended as %s", ErrStatusMismatch, id, j.Status)
	}
	if len(c.Expected) > 0 && !slices.Contains(c.Expected, j.Status) {
		return fmt.Errorf("%w: job %s is %s", ErrStatusMismatch, id, j.Status)
	}
	nj := proto.CloneOf(j)
	nj.Status = c.Status
	nj.StatusReason = c.Reason
	nj.UpdatedAtMs = c.AtMs
	nj.ModifyIndex = index
	s.jobs[id] = nj
	if Terminal(c.Status) {
		delete(s.assignments, id)
		s.abortCheckpoint(id, "aborted: job "+strings.TrimPrefix(c.Status.String(), "JOB_STATUS_"), c.AtMs)
	}
	return nil
}

func (s *State) applyStartAttempt(c *eddypb.StartAttemptCommand, index uint64) error {
	id := controlplane.JobID(c.JobId)
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if Terminal(j.Status) {
		return fmt.Errorf("%w: job %s has ended as %s", ErrStatusMismatch, id, j.Status)
	}
	if c.Attempt != j.Attempt+1 {
		return fmt.Errorf("%w: job %s is at attempt %d, so the next is %d, not %d", ErrStatusMismatch, id, j.Attempt, j.Attempt+1, c.Attempt)
	}
	if len(c.Expected) > 0 && !slices.Contains(c.Expected, j.Status) {
		return fmt.Errorf("%w: job %s is %s", ErrStatusMismatch, id, j.Status)
	}
	nj := proto.CloneOf(j)
	nj.Attempt = c.Attempt
	nj.Status = c.Status
	nj.StatusReason = c.Reason
	nj.UpdatedAtMs = c.AtMs
	nj.ModifyIndex = index
	nj.RestoredCheckpointId = c.RestoreCheckpointId
	nj.RestoredUrl = c.RestoreUrl
	s.jobs[id] = nj
	delete(s.tasks, id)
	s.abortCheckpoint(id, fmt.Sprintf("aborted: attempt %d started", c.Attempt), c.AtMs)
	return nil
}

func (s *State) applyUpdateTasks(c *eddypb.UpdateTasksCommand) error {
	id := controlplane.JobID(c.JobId)
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if c.Attempt != j.Attempt {
		// A report of an earlier attempt: its tasks are gone already.
		return nil
	}
	list := slices.Clone(s.tasks[id])
	for _, t := range c.Tasks {
		if t.JobId != c.JobId || t.Attempt != c.Attempt {
			return fmt.Errorf("%w: task of job %s attempt %d in an update of job %s attempt %d", controlplane.ErrInvalidArgument, t.JobId, t.Attempt, c.JobId, c.Attempt)
		}
		i, found := slices.BinarySearchFunc(list, t, compareTasks)
		switch {
		case !found:
			list = slices.Insert(list, i, t)
		case !TerminalTask(list[i].State):
			list[i] = t
		}
	}
	s.tasks[id] = list
	return nil
}

func compareTasks(a, b *eddypb.TaskStatus) int {
	if a.Chain != b.Chain {
		return int(a.Chain) - int(b.Chain)
	}
	return int(a.Subtask) - int(b.Subtask)
}

func (s *State) applyRegisterWorker(c *eddypb.RegisterWorkerCommand, index uint64) error {
	w := c.Worker
	if w.GetId() == "" {
		return fmt.Errorf("%w: worker without id", controlplane.ErrInvalidArgument)
	}
	nw := proto.CloneOf(w)
	nw.Status = eddypb.WorkerStatus_WORKER_STATUS_ALIVE
	nw.StatusAtMs = c.AtMs
	nw.ModifyIndex = index
	nw.RegisteredAtMs = c.AtMs
	nw.CreateIndex = index
	if old, ok := s.workers[controlplane.WorkerID(w.Id)]; ok {
		nw.CreateIndex = old.CreateIndex
		if old.InstanceId != w.InstanceId {
			// The worker restarted: whatever its old instance ran is gone.
			s.failTasksOf(w.Id, fmt.Sprintf("worker %s restarted", w.Id), c.AtMs)
		}
	}
	s.workers[controlplane.WorkerID(w.Id)] = nw
	return nil
}

// failTasksOf marks the unfinished tasks a worker ran as failed.
func (s *State) failTasksOf(workerID, reason string, atMs int64) {
	for id, list := range s.tasks {
		changed := false
		var out []*eddypb.TaskStatus
		for _, t := range list {
			if t.WorkerId == workerID && !TerminalTask(t.State) {
				t = proto.CloneOf(t)
				t.State = eddypb.TaskState_TASK_STATE_FAILED
				t.Error = reason
				t.AtMs = atMs
				changed = true
			}
			out = append(out, t)
		}
		if changed {
			s.tasks[id] = out
		}
	}
}

func (s *State) applyUpdateWorkerStatus(c *eddypb.UpdateWorkerStatusCommand, index uint64) error {
	id := controlplane.WorkerID(c.WorkerId)
	w, ok := s.workers[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrWorkerNotFound, id)
	}
	if c.InstanceId != "" && c.InstanceId != w.InstanceId {
		// The worker restarted since the leader decided; the decision is stale.
		return nil
	}
	nw := proto.CloneOf(w)
	nw.Status = c.Status
	nw.StatusAtMs = c.AtMs
	nw.ModifyIndex = index
	s.workers[id] = nw
	return nil
}

func (s *State) applyAssignSlots(c *eddypb.AssignSlotsCommand, index uint64) error {
	id := controlplane.JobID(c.JobId)
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if Terminal(j.Status) {
		return fmt.Errorf("%w: job %s is %s", ErrStatusMismatch, id, j.Status)
	}
	type slot struct {
		w string
		n uint32
	}
	taken := map[slot]bool{}
	for jid, as := range s.assignments {
		if jid == id {
			continue
		}
		for _, a := range as {
			taken[slot{a.WorkerId, a.Slot}] = true
		}
	}
	for _, a := range c.Assignments {
		// Snapshots file an assignment under its own job id, so it must be
		// the command's, or a restored replica would diverge.
		if a.JobId != c.JobId {
			return fmt.Errorf("%w: assignment for job %q in a command for job %s", controlplane.ErrInvalidArgument, a.JobId, id)
		}
		w, ok := s.workers[controlplane.WorkerID(a.WorkerId)]
		k := slot{a.WorkerId, a.Slot}
		if !ok || a.Slot >= w.Slots || taken[k] {
			return fmt.Errorf("%w: slot %d of worker %s", ErrSlotTaken, a.Slot, a.WorkerId)
		}
		taken[k] = true
	}
	s.assignments[id] = c.Assignments
	if j.Status == eddypb.JobStatus_JOB_STATUS_CREATED || j.Status == eddypb.JobStatus_JOB_STATUS_RESTARTING {
		nj := proto.CloneOf(j)
		nj.Status = eddypb.JobStatus_JOB_STATUS_SCHEDULED
		nj.StatusReason = ""
		nj.UpdatedAtMs = c.AtMs
		nj.ModifyIndex = index
		s.jobs[id] = nj
	}
	return nil
}

func (s *State) applyReleaseSlots(c *eddypb.ReleaseSlotsCommand) error {
	delete(s.assignments, controlplane.JobID(c.JobId))
	return nil
}

// Snapshot returns a snapshot of the current state; it is cheap because the
// state is never modified in place.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{state: f.State()}, nil
}

// Restore replaces the state with the one read from a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.state = s
	close(f.watch)
	f.watch = make(chan struct{})
	f.mu.Unlock()
	return nil
}
