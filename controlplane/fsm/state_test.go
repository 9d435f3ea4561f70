package fsm_test

import (
	"slices"
	"testing"

	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

func TestFreeSlots(t *testing.T) {
	const lost = eddypb.WorkerStatus_WORKER_STATUS_LOST
	tests := []struct {
		name string
		cmds []command
		want int
	}{
		{"no workers", nil, 0},
		{"idle workers", []command{
			registerWorker("w1", "a", 4, 1),
			registerWorker("w2", "a", 2, 1),
		}, 6},
		{"some slots assigned", []command{
			registerWorker("w1", "a", 4, 1),
			registerWorker("w2", "a", 2, 1),
			submitJob("j1", 1),
			assignSlots("j1", 1, slot("j1", "w1", 0), slot("j1", "w2", 1)),
			submitJob("j2", 1),
			assignSlots("j2", 1, slot("j2", "w1", 3)),
		}, 3},
		{"lost worker does not count", []command{
			registerWorker("w1", "a", 4, 1),
			registerWorker("w2", "a", 2, 1),
			workerStatus("w1", "a", lost, 2),
		}, 2},
		{"lost worker's assignments do not count", []command{
			registerWorker("w1", "a", 4, 1),
			registerWorker("w2", "a", 2, 1),
			submitJob("j1", 1),
			assignSlots("j1", 1, slot("j1", "w1", 0), slot("j1", "w1", 1)),
			workerStatus("w1", "a", lost, 2),
		}, 2},
		{"re-registered lost worker counts again", []command{
			registerWorker("w1", "a", 4, 1),
			workerStatus("w1", "a", lost, 2),
			registerWorker("w1", "b", 3, 3),
		}, 3},
		{"never negative when a worker shrinks", []command{
			registerWorker("w1", "a", 3, 1),
			registerWorker("w2", "a", 2, 1),
			submitJob("j1", 1),
			assignSlots("j1", 1, slot("j1", "w1", 0), slot("j1", "w1", 1), slot("j1", "w1", 2)),
			registerWorker("w1", "b", 1, 2),
		}, 2},
		{"terminal job gives slots back", []command{
			registerWorker("w1", "a", 4, 1),
			submitJob("j1", 1),
			assignSlots("j1", 1, slot("j1", "w1", 0), slot("j1", "w1", 1)),
			jobStatus("j1", eddypb.JobStatus_JOB_STATUS_FAILED, 2),
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			applyAll(t, f, 1, tt.cmds...)
			if got := f.State().FreeSlots(); got != tt.want {
				t.Errorf("FreeSlots() = %d, want %d", got, tt.want)
			}
		})
	}
}

func jobIDs(jobs []*eddypb.Job) []string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.Spec.JobId)
	}
	return ids
}

func TestJobsOldestFirst(t *testing.T) {
	f := fsm.New()
	next := applyAll(t, f, 1,
		submitJob("b", 1),
		submitJob("c", 1),
		submitJob("a", 1),
	)
	want := []string{"b", "c", "a"}
	if got := jobIDs(f.State().Jobs()); !slices.Equal(got, want) {
		t.Fatalf("Jobs() = %v, want %v", got, want)
	}

	// Order is by creation, not by the last change.
	applyAll(t, f, next,
		jobStatus("b", eddypb.JobStatus_JOB_STATUS_RUNNING, 2),
		jobStatus("c", eddypb.JobStatus_JOB_STATUS_FINISHED, 2),
	)
	if got := jobIDs(f.State().Jobs()); !slices.Equal(got, want) {
		t.Errorf("Jobs() after status changes = %v, want %v", got, want)
	}

	// Raft never applies two entries at one index, but the order must be
	// total for snapshots to be deterministic: ties go by id.
	g := fsm.New()
	for _, id := range []string{"z", "x", "y"} {
		mustApply(t, g, 1, fsm.CmdSubmitJob, submitJob(id, 1).msg)
	}
	if got := jobIDs(g.State().Jobs()); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Errorf("Jobs() with equal create indexes = %v, want [x y z]", got)
	}
}

func TestMembersAndWorkersSortedByID(t *testing.T) {
	f := fsm.New()
	applyAll(t, f, 1,
		upsertMember(member("n3")), upsertMember(member("n1")), upsertMember(member("n2")),
		registerWorker("w2", "a", 1, 1), registerWorker("w3", "a", 1, 1), registerWorker("w1", "a", 1, 1),
	)
	var members, workers []string
	for _, m := range f.State().Members() {
		members = append(members, m.Id)
	}
	for _, w := range f.State().Workers() {
		workers = append(workers, w.Id)
	}
	if want := []string{"n1", "n2", "n3"}; !slices.Equal(members, want) {
		t.Errorf("Members() = %v, want %v", members, want)
	}
	if want := []string{"w1", "w2", "w3"}; !slices.Equal(workers, want) {
		t.Errorf("Workers() = %v, want %v", workers, want)
	}
}

func TestAllAssignmentsByJobID(t *testing.T) {
	f := fsm.New()
	applyAll(t, f, 1,
		registerWorker("w1", "a", 8, 1),
		submitJob("jb", 1), submitJob("ja", 1), submitJob("jc", 1),
		assignSlots("jb", 1, slot("jb", "w1", 2), slot("jb", "w1", 3)),
		assignSlots("jc", 1, slot("jc", "w1", 4)),
		assignSlots("ja", 1, slot("ja", "w1", 0), slot("ja", "w1", 1)),
	)
	want := []*eddypb.SlotAssignment{
		slot("ja", "w1", 0), slot("ja", "w1", 1),
		slot("jb", "w1", 2), slot("jb", "w1", 3),
		slot("jc", "w1", 4),
	}
	if got := f.State().AllAssignments(); !equalMessages(got, want) {
		t.Errorf("AllAssignments() = %v, want %v", got, want)
	}
	if got := fsm.New().State().AllAssignments(); len(got) != 0 {
		t.Errorf("AllAssignments() of an empty state = %v, want none", got)
	}
}

func TestTerminal(t *testing.T) {
	terminal := map[eddypb.JobStatus]bool{
		eddypb.JobStatus_JOB_STATUS_CANCELED: true,
		eddypb.JobStatus_JOB_STATUS_FINISHED: true,
		eddypb.JobStatus_JOB_STATUS_FAILED:   true,
	}
	if len(eddypb.JobStatus_name) != 10 {
		t.Fatalf("JobStatus has %d values, this test knows 10: decide whether the new ones are terminal", len(eddypb.JobStatus_name))
	}
	for n := range eddypb.JobStatus_name {
		st := eddypb.JobStatus(n)
		if got := fsm.Terminal(st); got != terminal[st] {
			t.Errorf("Terminal(%s) = %v, want %v", st, got, terminal[st])
		}
	}
}
