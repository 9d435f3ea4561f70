package fsm

import (
	"maps"
	"slices"
	"strings"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// State is an immutable view of the replicated state. The messages it
// returns are shared with the FSM and must not be modified: Apply replaces
// a message instead of changing it, which is what makes a view cheap.
type State struct {
	clusterID   string
	index       uint64
	members     map[controlplane.NodeID]*eddypb.Member
	jobs        map[controlplane.JobID]*eddypb.Job
	workers     map[controlplane.WorkerID]*eddypb.Worker
	assignments map[controlplane.JobID][]*eddypb.SlotAssignment
	checkpoints map[controlplane.JobID]*eddypb.JobCheckpoints
	tasks       map[controlplane.JobID][]*eddypb.TaskStatus
}

func newState() *State {
	return &State{
		members:     map[controlplane.NodeID]*eddypb.Member{},
		jobs:        map[controlplane.JobID]*eddypb.Job{},
		workers:     map[controlplane.WorkerID]*eddypb.Worker{},
		assignments: map[controlplane.JobID][]*eddypb.SlotAssignment{},
		checkpoints: map[controlplane.JobID]*eddypb.JobCheckpoints{},
		tasks:       map[controlplane.JobID][]*eddypb.TaskStatus{},
	}
}

// clone copies the maps, not the messages they point to.
func (s *State) clone() *State {
	return &State{
		clusterID:   s.clusterID,
		index:       s.index,
		members:     maps.Clone(s.members),
		jobs:        maps.Clone(s.jobs),
		workers:     maps.Clone(s.workers),
		assignments: maps.Clone(s.assignments),
		checkpoints: maps.Clone(s.checkpoints),
		tasks:       maps.Clone(s.tasks),
	}
}

// ClusterID returns the id the cluster was bootstrapped with, or "".
func (s *State) ClusterID() string { return s.clusterID }

// Index returns the Raft index of the last command applied to this state.
func (s *State) Index() uint64 { return s.index }

// Member returns a control plane member by id.
func (s *State) Member(id controlplane.NodeID) (*eddypb.Member, bool) {
	m, ok := s.members[id]
	return m, ok
}

// Members returns the members sorted by id.
func (s *State) Members() []*eddypb.Member {
	return sortedValues(s.members, func(m *eddypb.Member) string { return m.Id })
}

// Job returns a job by id.
func (s *State) Job(id controlplane.JobID) (*eddypb.Job, bool) {
	j, ok := s.jobs[id]
	return j, ok
}

// Jobs returns every job, oldest first.
func (s *State) Jobs() []*eddypb.Job {
	out := slices.Collect(maps.Values(s.jobs))
	slices.SortFunc(out, func(a, b *eddypb.Job) int {
		if a.CreateIndex != b.CreateIndex {
			if a.CreateIndex < b.CreateIndex {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Spec.JobId, b.Spec.JobId)
	})
	return out
}

// Worker returns a worker by id.
func (s *State) Worker(id controlplane.WorkerID) (*eddypb.Worker, bool) {
	w, ok := s.workers[id]
	return w, ok
}

// Workers returns the workers sorted by id.
func (s *State) Workers() []*eddypb.Worker {
	return sortedValues(s.workers, func(w *eddypb.Worker) string { return w.Id })
}

// Assignments returns the slot assignments of a job.
func (s *State) Assignments(id controlplane.JobID) []*eddypb.SlotAssignment {
	return s.assignments[id]
}

// AllAssignments returns every slot assignment, by job id then slot.
func (s *State) AllAssignments() []*eddypb.SlotAssignment {
	var out []*eddypb.SlotAssignment
	for _, id := range slices.Sorted(maps.Keys(s.assignments)) {
		out = append(out, s.assignments[id]...)
	}
	return out
}

// FreeSlots returns how many slots of alive workers are not assigned.
func (s *State) FreeSlots() int {
	used := map[controlplane.WorkerID]int{}
	for _, as := range s.assignments {
		for _, a := range as {
			used[controlplane.WorkerID(a.WorkerId)]++
		}
	}
	free := 0
	for id, w := range s.workers {
		if w.Status == eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
			free += max(int(w.Slots)-used[id], 0)
		}
	}
	return free
}

// Tasks returns the task states of a job's current attempt, by chain and
// subtask.
func (s *State) Tasks(id controlplane.JobID) []*eddypb.TaskStatus {
	return s.tasks[id]
}

// TerminalTask reports whether a task in state st has ended.
func TerminalTask(st eddypb.TaskState) bool {
	switch st {
	case eddypb.TaskState_TASK_STATE_FINISHED, eddypb.TaskState_TASK_STATE_CANCELED, eddypb.TaskState_TASK_STATE_FAILED:
		return true
	}
	return false
}

// Checkpoints returns the retained checkpoint records of a job, oldest first.
func (s *State) Checkpoints(id controlplane.JobID) []*eddypb.CheckpointRecord {
	return s.checkpoints[id].GetRetained()
}

// CheckpointStats returns the checkpoint bookkeeping of a job: counts, the
// checkpoint in progress, the retained ones and the history. It is nil for
// a job that never checkpointed.
func (s *State) CheckpointStats(id controlplane.JobID) *eddypb.JobCheckpoints {
	return s.checkpoints[id]
}

// LatestCheckpoint returns the newest retained checkpoint of a job.
func (s *State) LatestCheckpoint(id controlplane.JobID) (*eddypb.CheckpointRecord, bool) {
	r := s.checkpoints[id].GetRetained()
	if len(r) == 0 {
		return nil, false
	}
	return r[len(r)-1], true
}

func sortedValues[K comparable, V any](m map[K]V, key func(V) string) []V {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b V) int { return strings.Compare(key(a), key(b)) })
	return out
}

// Terminal reports whether a job in status st will not change any more.
func Terminal(st eddypb.JobStatus) bool {
	switch st {
	case eddypb.JobStatus_JOB_STATUS_CANCELED, eddypb.JobStatus_JOB_STATUS_FINISHED, eddypb.JobStatus_JOB_STATUS_FAILED:
		return true
	}
	return false
}
