package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// finishSrc0 makes the task of src subtask 0 finish on the first
// completion it sees, as a bounded source that read everything does.
func finishSrc0(w *cpWorker) {
	w.finish = func(_ *pluginpb.CheckpointRequest, t *eddypb.TaskRef) bool { return t.Chain == 0 && t.Subtask == 0 }
}

// triggerAndWait triggers a checkpoint of a job that checkpoints on
// request and waits until it completed; it returns its metadata.
func triggerAndWait(t *testing.T, cl *client.Client, st storage.Store, job string, want uint64) *pluginpb.CheckpointMetadata {
	t.Helper()
	var id uint64
	cptest.WaitFor(t, 10*time.Second, func() (err error) {
		id, err = cl.TriggerCheckpoint(context.Background(), job)
		return err
	})
	if id != want {
		t.Fatalf("triggered checkpoint %d, want %d", id, want)
	}
	waitCheckpoints(t, cl, job, 10*time.Second, func(c api.Checkpoints) error {
		if c.Latest == nil || c.Latest.ID != id {
			return fmt.Errorf("latest %+v, want %d (history %+v)", c.Latest, id, c.History)
		}
		return nil
	})
	md, err := checkpoint.ReadMetadata(context.Background(), st, job+"/"+checkpoint.Dir(id))
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// subtaskState returns the state of operator uid's subtask in md, or nil.
func subtaskState(md *pluginpb.CheckpointMetadata, uid string, subtask uint32) *pluginpb.OperatorSubtaskState {
	for _, s := range checkpoint.Operator(md, uid).GetSubtasks() {
		if s.Subtask == subtask {
			return s
		}
	}
	return nil
}

// wantFiles checks the file of every operator subtask of a checkpoint
// (parallelism 2: src and count).
func wantFiles(t *testing.T, md *pluginpb.CheckpointMetadata, src0 string) {
	t.Helper()
	want := map[string]string{"src/0": src0, "src/1": "src-1", "count/0": "count-0", "count/1": "count-1"}
	got := map[string]string{}
	for _, op := range md.Operators {
		for _, s := range op.Subtasks {
			got[fmt.Sprintf("%s/%d", op.Uid, s.Subtask)] = s.File
			if s.Size != 100+int64(s.Subtask) {
				t.Errorf("checkpoint %d: %s/%d has size %d", md.CheckpointId, op.Uid, s.Subtask, s.Size)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("checkpoint %d holds %v, want %v", md.CheckpointId, got, want)
	}
}

func readAll(t *testing.T, st storage.Store, name string) string {
	t.Helper()
	rc, _, err := st.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFinishedTaskStateStaysInLaterCheckpoints: a task that finished
// after checkpoint 1 acknowledges nothing more, and every later checkpoint
// holds its last state by reference to chk-1 (cleanup keeps the file while
// a retained checkpoint references it); a savepoint holds a copy; once a
// restarted attempt's task acknowledged anew, the old file goes.
func TestFinishedTaskStateStaysInLaterCheckpoints(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w := startCPWorker(t, c, "w1", 4, finishSrc0)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "fin", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{Retain: 1},
			&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 50})})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	root := filepath.Join(dir, "checkpoints")
	st := openURL(t, "file://"+root)

	wantFiles(t, triggerAndWait(t, cl, st, j.ID, 1), "src-0")
	for id := uint64(2); id <= 3; id++ {
		md := triggerAndWait(t, cl, st, j.ID, id)
		wantFiles(t, md, "../chk-1/src-0")
		// Retain 1: of chk-1 only the carried file is left.
		cptest.WaitFor(t, 5*time.Second, func() error {
			dirs := chkDirs(t, root, j.ID)
			if got := dirs[1]; len(got) != 1 || got[0] != "src-0" {
				return fmt.Errorf("checkpoint 1 holds %v, want only src-0", got)
			}
			if id == 3 && len(dirs[2]) != 0 {
				return fmt.Errorf("checkpoint 2 holds %v after 3 completed", dirs[2])
			}
			return nil
		})
		files, err := checkpoint.Files(md, checkpoint.Dir(id))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(files, " "), "chk-1/src-0") {
			t.Errorf("files of checkpoint %d: %v, want chk-1/src-0", id, files)
		}
	}
	// A savepoint holds a copy: nothing in it leads out of its directory.
	tr, err := cl.TriggerSavepoint(context.Background(), j.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	sp := waitSavepoint(t, cl, j.ID, tr.RequestID)
	spst := openURL(t, sp.URL)
	spmd, err := checkpoint.ReadMetadata(context.Background(), spst, "")
	if err != nil {
		t.Fatal(err)
	}
	wantFiles(t, spmd, "finished/chk-1/src-0")
	for _, op := range spmd.Operators {
		for _, s := range op.Subtasks {
			if strings.Contains(s.File, "..") {
				t.Errorf("savepoint file %q leads out of it", s.File)
			}
			if info, err := spst.Stat(context.Background(), s.File); err != nil || info.Size != s.Size {
				t.Errorf("savepoint file %s: %+v, %v", s.File, info, err)
			}
		}
	}
	if got, want := readAll(t, spst, "finished/chk-1/src-0"), readAll(t, st, j.ID+"/chk-1/src-0"); got != want {
		t.Errorf("copied state %q, want %q", got, want)
	}
	// Checkpoints after it still reference chk-1.
	wantFiles(t, triggerAndWait(t, cl, st, j.ID, sp.ID+1), "../chk-1/src-0")

	// A restart restores the latest checkpoint; src 0 starts from its
	// carried state, ends at once, acknowledges with its final state and
	// finishes again. Once no retained checkpoint references chk-1, its
	// file goes.
	if !w.failTask(j.ID, 1, "boom", false) {
		t.Fatal("no task to fail")
	}
	cptest.WaitFor(t, 10*time.Second, func() error {
		jj, err := cl.Job(context.Background(), j.ID)
		if err != nil {
			return err
		}
		if jj.Status != "RUNNING" || jj.Attempt != 2 {
			return fmt.Errorf("job %s at attempt %d", jj.Status, jj.Attempt)
		}
		return nil
	})
	if got, _ := restoreOf([]*cpWorker{w}, 2); got != sp.ID+1 {
		t.Fatalf("attempt 2 restored %d, want %d", got, sp.ID+1)
	}
	first := sp.ID + 2
	wantFiles(t, triggerAndWait(t, cl, st, j.ID, first), "src-0")
	cptest.WaitFor(t, 5*time.Second, func() error {
		if got := chkDirs(t, root, j.ID)[1]; len(got) != 0 {
			return fmt.Errorf("checkpoint 1 still holds %v, referenced by no retained checkpoint", got)
		}
		return nil
	})
	wantFiles(t, triggerAndWait(t, cl, st, j.ID, first+1), fmt.Sprintf("../chk-%d/src-0", first))
	if _, err := os.Stat(filepath.Join(root, j.ID, checkpoint.Dir(first), "src-0")); err != nil {
		t.Errorf("carried file of checkpoint %d: %v", first, err)
	}
}

// TestFinishedTaskStateAfterSavepoint: a task that finished on a
// savepoint's completion has its last state in the savepoint's directory;
// the next checkpoint copies it into its own, and those after reference
// that copy.
func TestFinishedTaskStateAfterSavepoint(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.finish = func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) bool {
			return req.CheckpointId == 2 && t.Chain == 0 && t.Subtask == 0
		}
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "fin-sp", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{Retain: 1}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	root := filepath.Join(dir, "checkpoints")
	st := openURL(t, "file://"+root)
	wantFiles(t, triggerAndWait(t, cl, st, j.ID, 1), "src-0")
	tr, err := cl.TriggerSavepoint(context.Background(), j.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if sp := waitSavepoint(t, cl, j.ID, tr.RequestID); sp.ID != 2 {
		t.Fatalf("savepoint %d, want 2", sp.ID)
	}
	wantFiles(t, triggerAndWait(t, cl, st, j.ID, 3), "finished/sp-2/src-0")
	if got, want := readAll(t, st, j.ID+"/chk-3/finished/sp-2/src-0"), readAll(t, openURL(t, tr.URL), "src-0"); got != want {
		t.Errorf("copied state %q, want %q", got, want)
	}
	wantFiles(t, triggerAndWait(t, cl, st, j.ID, 4), "../chk-3/finished/sp-2/src-0")
	cptest.WaitFor(t, 5*time.Second, func() error {
		if got := chkDirs(t, root, j.ID)[3]; len(got) != 1 || got[0] != "finished" {
			return fmt.Errorf("checkpoint 3 holds %v, want only the carried copy", got)
		}
		return nil
	})
}

// TestNewLeaderCarriesFinishedTaskState: a new leader, which did not see
// the task's acknowledgement, builds the same entry for it from the
// retained checkpoint's metadata.
func TestNewLeaderCarriesFinishedTaskState(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 3, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, finishSrc0)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "fin-ha", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{Retain: 1}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	root := filepath.Join(dir, "checkpoints")
	st := openURL(t, "file://"+root)
	triggerAndWait(t, cl, st, j.ID, 1)
	md2 := triggerAndWait(t, cl, st, j.ID, 2)
	wantFiles(t, md2, "../chk-1/src-0")

	old := c.Leader().ID()
	c.Kill(string(old))
	cptest.WaitFor(t, 10*time.Second, func() error {
		if l := c.Leader(); l == nil || l.ID() == old {
			return errors.New("old leader still leads")
		}
		return nil
	})
	md3 := triggerAndWait(t, cl, st, j.ID, 3)
	wantFiles(t, md3, "../chk-1/src-0")
	if a, b := subtaskState(md2, "src", 0), subtaskState(md3, "src", 0); !proto.Equal(a, b) {
		t.Errorf("new leader carried %v, the old one %v", b, a)
	}
	// And copies it into a savepoint.
	tr, err := cl.TriggerSavepoint(context.Background(), j.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	waitSavepoint(t, cl, j.ID, tr.RequestID)
	spmd, err := checkpoint.ReadMetadata(context.Background(), openURL(t, tr.URL), "")
	if err != nil {
		t.Fatal(err)
	}
	wantFiles(t, spmd, "finished/chk-1/src-0")
}
