package jobmanager

import (
	"slices"
	"testing"

	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/storage"
)

// Cleanup after checkpoint 5 completed, with 4 and 5 retained: the
// directories of older checkpoints go (but for the files a retained one
// carried over), and so do shared incremental files uploaded by older
// checkpoints that no retained checkpoint references, unless the previous
// round's retained checkpoints referenced them; nothing of checkpoint 5 or
// of a newer one in flight is touched.
func TestCleanupVictims(t *testing.T) {
	infos := func(names ...string) []storage.Info {
		var out []storage.Info
		for _, n := range names {
			out = append(out, storage.Info{Name: n})
		}
		return out
	}
	objs := infos(
		"job/chk-2/_metadata", "job/chk-2/src-0.state", // old: deleted
		"job/chk-3/_metadata", "job/chk-3/src-1.state", // carried over by 5: src-1 stays
		"job/chk-4/_metadata", "job/chk-4/src-0.state", // retained
		"job/chk-5/_metadata", "job/chk-6/src-0.state", // the completed one, one in flight
		"job/chk-x/junk",
	)
	shared := infos(
		"job/shared/chk-1/a.sst", // referenced by 5: stays
		"job/shared/chk-2/b.sst", // referenced by nobody now or before: deleted
		"job/shared/chk-3/c.sst", // referenced by the previous round: stays one more
		"job/shared/chk-4/d.sst", // referenced by 4: stays
		"job/shared/chk-6/e.sst", // uploaded by the checkpoint in flight
	)
	keep := map[uint64]bool{4: true, 5: true}
	referenced := map[string]bool{
		"job/chk-3/src-1.state": true, "job/shared/chk-1/a.sst": true, "job/shared/chk-4/d.sst": true,
	}
	prev := map[string]bool{"job/shared/chk-3/c.sst": true}
	got := cleanupVictims("job", 5, objs, shared, keep, referenced, prev)
	want := []string{"job/chk-2/_metadata", "job/chk-2/src-0.state", "job/chk-3/_metadata", "job/shared/chk-2/b.sst"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("cleanup deletes %q, want %q", got, want)
	}
}

// A coordinator's first cleanup keeps the files of the checkpoint that
// completed before: the newest completed checkpoint, not a savepoint nor a
// failed one, older than the one just completed.
func TestPreviousCompleted(t *testing.T) {
	done := eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
	h := []*eddypb.CheckpointRecord{
		{CheckpointId: 2, Status: done},
		{CheckpointId: 3, Status: done},
		{CheckpointId: 4, Status: eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED},
		{CheckpointId: 5, Status: done, Savepoint: true},
		{CheckpointId: 6, Status: done},
	}
	if id, ok := previousCompleted(h, 6); !ok || id != 3 {
		t.Errorf("previous of 6: %d, %v; want 3", id, ok)
	}
	if _, ok := previousCompleted(h, 2); ok {
		t.Error("a checkpoint before the first completed one")
	}
}
