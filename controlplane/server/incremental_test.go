package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// sharedFiles lists the shared incremental files of a job, as
// "chk-<id>/<file>".
func sharedFiles(t *testing.T, root, job string) []string {
	t.Helper()
	var out []string
	base := filepath.Join(root, job, "shared")
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasSuffix(d.Name(), ".sha256") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// wantShared waits until the job's shared files are exactly want.
func wantShared(t *testing.T, root, job string, after uint64, want ...string) {
	t.Helper()
	slices.Sort(want)
	cptest.WaitFor(t, 5*time.Second, func() error {
		if got := sharedFiles(t, root, job); !slices.Equal(got, want) {
			return fmt.Errorf("after checkpoint %d the shared files are %v, want %v", after, got, want)
		}
		return nil
	})
}

// TestCleanupOfSharedIncrementalFiles: with retain 1, a shared file stays
// while the retained checkpoint or the one completed before it lists it
// (a plugin that has not yet seen the last completion builds on the
// previous one), goes once neither does, and a file of a checkpoint newer
// than the completed one (it may be in flight) is left alone.
func TestCleanupOfSharedIncrementalFiles(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	s := func(id uint64, f string) string { return fmt.Sprintf("../shared/chk-%d/%s", id, f) }
	startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.shared = func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) (refs, uploads []string) {
			if t.Chain != 0 {
				return nil, nil
			}
			switch req.CheckpointId {
			case 1:
				return []string{s(1, "a"), s(1, "b")}, []string{s(1, "a"), s(1, "b")}
			case 2:
				return []string{s(1, "a"), s(2, "c")}, []string{s(2, "c")}
			case 3:
				// e is uploaded ahead by checkpoint 4, which has not
				// completed when 3's cleanup runs.
				return []string{s(2, "c"), s(3, "d")}, []string{s(3, "d"), s(4, "e")}
			case 4:
				return []string{s(3, "d"), s(4, "e")}, nil
			default:
				return []string{s(3, "d"), s(5, "f")}, []string{s(5, "f")}
			}
		}
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "incr", Artifact: &a,
		Graph: cpGraph(1, &pluginpb.CheckpointConfig{Retain: 1}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	root := filepath.Join(dir, "checkpoints")
	st := openURL(t, "file://"+root)
	want := map[uint64][]string{
		1: {"chk-1/a", "chk-1/b"},
		2: {"chk-1/a", "chk-1/b", "chk-2/c"},            // b: listed by 1, completed before 2
		3: {"chk-1/a", "chk-2/c", "chk-3/d", "chk-4/e"}, // b goes; e: newer than 3
		4: {"chk-2/c", "chk-3/d", "chk-4/e"},            // a goes
		5: {"chk-3/d", "chk-4/e", "chk-5/f"},            // c goes
	}
	for id := uint64(1); id <= 5; id++ {
		md := triggerAndWait(t, cl, st, j.ID, id)
		wantShared(t, root, j.ID, id, want[id]...)
		// The retained checkpoint is whole.
		files, err := checkpoint.Files(md, checkpoint.Dir(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if _, err := st.Stat(context.Background(), j.ID+"/"+f); err != nil {
				t.Errorf("file %s of retained checkpoint %d: %v", f, id, err)
			}
		}
		if got := subtaskState(md, "src", 0).GetShared(); len(got) != 2 {
			t.Errorf("checkpoint %d lists shared files %v", id, got)
		}
	}
	// The chk directories go as before: only the retained one is left.
	cptest.WaitFor(t, 5*time.Second, func() error {
		dirs := chkDirs(t, root, j.ID)
		for id := range dirs {
			if id != 5 {
				return fmt.Errorf("checkpoint %d still holds %v", id, dirs[id])
			}
		}
		return nil
	})
}

// TestFinishedTaskKeepsItsSharedState: a finished task's incremental state
// is carried into later checkpoints with its shared list as it was (the
// names lead from any chk directory to the shared one), so cleanup keeps
// the files; a savepoint, which cannot hold incremental state, fails with
// the cause and leaves the job running.
func TestFinishedTaskKeepsItsSharedState(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	shared := []string{"../shared/chk-1/db-0-000004.sst", "../shared/chk-1/db-0-000005.sst"}
	startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		finishSrc0(w)
		w.shared = func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) (refs, uploads []string) {
			if t.Chain == 0 && t.Subtask == 0 {
				return shared, shared
			}
			return nil, nil
		}
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "fin-incr", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{Retain: 1}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	root := filepath.Join(dir, "checkpoints")
	st := openURL(t, "file://"+root)
	md1 := triggerAndWait(t, cl, st, j.ID, 1)
	if got := subtaskState(md1, "src", 0).GetShared(); !slices.Equal(got, shared) {
		t.Fatalf("checkpoint 1 lists %v, want %v", got, shared)
	}
	for id := uint64(2); id <= 4; id++ {
		md := triggerAndWait(t, cl, st, j.ID, id)
		wantFiles(t, md, "../chk-1/src-0")
		if got := subtaskState(md, "src", 0).GetShared(); !slices.Equal(got, shared) {
			t.Fatalf("checkpoint %d carries shared files %v, want %v", id, got, shared)
		}
		wantShared(t, root, j.ID, id, "chk-1/db-0-000004.sst", "chk-1/db-0-000005.sst")
		files, err := checkpoint.Files(md, checkpoint.Dir(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if _, err := st.Stat(context.Background(), j.ID+"/"+f); err != nil {
				t.Errorf("file %s of retained checkpoint %d: %v", f, id, err)
			}
		}
	}
	tr, err := cl.TriggerSavepoint(context.Background(), j.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := client.WaitSavepoint(context.Background(), cl, j.ID, tr.RequestID, 20*time.Second, 20*time.Millisecond, nil)
	if err == nil || sp.Status != "FAILED" || !strings.Contains(sp.Failure, "incremental state") {
		t.Fatalf("savepoint %+v, %v; want FAILED for the finished task's incremental state", sp, err)
	}
	jj, err := cl.Job(context.Background(), j.ID)
	if err != nil || jj.Status != "RUNNING" {
		t.Fatalf("job after the failed savepoint: %+v, %v", jj, err)
	}
}
