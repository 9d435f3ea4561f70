package fsm_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// triggerSavepoint starts a savepoint of j3 (attempt 0).
func triggerSavepoint(url, suffix, request string, stop bool, atMs int64) command {
	return command{fsm.CmdTriggerCheckpoint, &eddypb.TriggerCheckpointCommand{
		JobId: "j3", AtMs: atMs, Url: url, Savepoint: true, SavepointSuffix: suffix, RequestId: request, Stop: stop, Drain: stop,
	}}
}

func TestSavepointsAreRecordedApartFromRetention(t *testing.T) {
	f, next := seeded(t)
	// j3 has checkpoints 1 and 2 retained. Savepoint 3 to a given
	// directory, as a stop.
	next = applyAll(t, f, next, triggerSavepoint("s3://sp/mine", "", "req-a", true, 40))
	st := f.State().CheckpointStats("j3")
	want := &eddypb.CheckpointRecord{
		JobId: "j3", CheckpointId: 3, Url: "s3://sp/mine", TriggeredAtMs: 40,
		Status: eddypb.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS, Savepoint: true, RequestId: "req-a", Stop: true, Drain: true,
	}
	if !proto.Equal(st.InProgress, want) {
		t.Fatalf("in progress %v, want %v", st.InProgress, want)
	}
	next = applyAll(t, f, next, completeCheckpoint(&eddypb.CheckpointRecord{JobId: "j3", CheckpointId: 3, SizeBytes: 77, CompletedAtMs: 45}, 1))
	st = f.State().CheckpointStats("j3")
	if len(st.Savepoints) != 1 || st.Savepoints[0].Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED || st.Savepoints[0].SizeBytes != 77 || st.Savepoints[0].DurationMs != 5 {
		t.Fatalf("savepoints %v", st.Savepoints)
	}
	// Retention (retain 1 given) ignored the savepoint: both checkpoints
	// stay, none dropped.
	if got := f.State().Checkpoints("j3"); len(got) != 2 || got[1].CheckpointId != 2 || len(st.Dropped) != 0 {
		t.Fatalf("retained %v, dropped %v after a savepoint", got, st.Dropped)
	}
	if latest, _ := f.State().LatestCheckpoint("j3"); latest.CheckpointId != 2 {
		t.Errorf("latest checkpoint %d, want 2 (a savepoint is not a retained checkpoint)", latest.CheckpointId)
	}
	// Default directory: the FSM names it with the job, id and suffix.
	next = applyAll(t, f, next, triggerSavepoint("s3://sp", "ab12", "req-b", false, 50))
	if got := f.State().CheckpointStats("j3").InProgress.Url; got != "s3://sp/savepoint-j3-4-ab12" {
		t.Errorf("default savepoint url %q", got)
	}
	// A failed savepoint does not count against the tolerance, and is
	// listed with its cause.
	next = applyAll(t, f, next, failCheckpoint("j3", 4, "declined", 60))
	st = f.State().CheckpointStats("j3")
	if st.ConsecutiveFailures != 0 || len(st.Savepoints) != 2 || st.Savepoints[1].Failure != "declined" || st.Savepoints[1].Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED {
		t.Fatalf("after a failed savepoint: %d consecutive, savepoints %v", st.ConsecutiveFailures, st.Savepoints)
	}
	// Later checkpoints with retention 1 never drop the savepoint; failed
	// savepoints are bounded, completed ones are not.
	for id := uint64(5); id < 5+fsm.FailedSavepoints+3; id++ {
		next = applyAll(t, f, next, triggerSavepoint("s3://sp", "x", fmt.Sprint("f", id), false, int64(id)*10), failCheckpoint("j3", id, "no", int64(id)*10+1))
	}
	cp := checkpoint("j3", 5+fsm.FailedSavepoints+3)
	next = applyAll(t, f, next, triggerCheckpoint(cp), completeCheckpoint(cp, 1))
	st = f.State().CheckpointStats("j3")
	failed, completed := 0, 0
	for _, s := range st.Savepoints {
		if s.Status == eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED {
			failed++
		} else {
			completed++
		}
	}
	if failed != fsm.FailedSavepoints || completed != 1 || st.Savepoints[0].CheckpointId != 3 {
		t.Fatalf("%d failed and %d completed savepoints kept (first %d), want %d and 1 (3)", failed, completed, st.Savepoints[0].CheckpointId, fsm.FailedSavepoints)
	}
	// A savepoint that could not be restored is marked, and stays listed.
	next = applyAll(t, f, next, discardCheckpoint("j3", 3, "unreadable"))
	if s := f.State().CheckpointStats("j3").Savepoints[0]; s.Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_DISCARDED || s.Failure != "unreadable" {
		t.Errorf("discarded savepoint %v", s)
	}
	// Savepoints survive a snapshot.
	g := fsm.New()
	if err := restore(t, g, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(g.State().CheckpointStats("j3"), f.State().CheckpointStats("j3")) {
		t.Error("checkpoint bookkeeping differs after a snapshot round trip")
	}
	_ = next
}

func TestSubmitFromSavepointContinuesCheckpointIDs(t *testing.T) {
	f, next := seeded(t)
	s := spec("j9")
	s.Restore = &pluginpb.RestoreSpec{Url: "s3://sp/x", CheckpointId: 41}
	next = applyAll(t, f, next, command{fsm.CmdSubmitJob, &eddypb.SubmitJobCommand{Spec: s, AtMs: 5}},
		registerWorker("w3", "w3-a", 1, 6), assignSlots("j9", 7, slot("j9", "w3", 0)), jobStatus("j9", eddypb.JobStatus_JOB_STATUS_RUNNING, 8))
	if st := f.State().CheckpointStats("j9"); st.GetLastId() != 41 {
		t.Fatalf("last id %d after submitting from savepoint 41", st.GetLastId())
	}
	cp := checkpoint("j9", 42)
	next = applyAll(t, f, next, triggerCheckpoint(cp))
	if p := f.State().CheckpointStats("j9").InProgress; p.CheckpointId != 42 || p.Url != "s3://cp/j9/chk-42" {
		t.Errorf("first checkpoint after the restore: %v, want 42", p)
	}
	// A restart records what the attempt restores.
	next = applyAll(t, f, next, command{fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{
		JobId: "j9", Attempt: 1, Status: eddypb.JobStatus_JOB_STATUS_SCHEDULED, AtMs: 9, RestoreCheckpointId: 41, RestoreUrl: "s3://sp/x",
	}})
	if j, _ := f.State().Job("j9"); j.RestoredCheckpointId != 41 || j.RestoredUrl != "s3://sp/x" {
		t.Errorf("job restored %d from %q", j.RestoredCheckpointId, j.RestoredUrl)
	}
	_ = next
}

func TestCheckpointAndSavepointURLsKeepTheStorageQuery(t *testing.T) {
	f, next := seeded(t)
	const q = "?endpoint=http%3A%2F%2F10.0.0.1%3A7070&region=eu"
	next = applyAll(t, f, next, command{fsm.CmdTriggerCheckpoint, &eddypb.TriggerCheckpointCommand{JobId: "j3", AtMs: 1, Url: "s3://bucket/cp/j3" + q}})
	if got := f.State().CheckpointStats("j3").InProgress.Url; got != "s3://bucket/cp/j3/chk-3"+q {
		t.Errorf("checkpoint url %q", got)
	}
	next = applyAll(t, f, next, failCheckpoint("j3", 3, "x", 2), triggerSavepoint("s3://bucket/sp/"+q, "ab", "r", false, 3))
	if got := f.State().CheckpointStats("j3").InProgress.Url; got != "s3://bucket/sp/savepoint-j3-4-ab"+q {
		t.Errorf("savepoint url %q", got)
	}
	_ = next
}
