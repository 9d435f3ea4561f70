package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// acksOf returns the acknowledgements of checkpoint id the control plane
// received for a job attempt, by task ("chain/subtask"), and how many
// times each came.
func (cp *fakeCP) acksOf(job string, attempt, id uint64) (map[string]*pluginpb.CheckpointAck, map[string]int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	acks, count := map[string]*pluginpb.CheckpointAck{}, map[string]int{}
	for _, a := range cp.acks {
		if a.GetJobId() == job && a.GetAttempt() == attempt && a.GetAck().GetCheckpointId() == id {
			k := fmt.Sprintf("%d/%d", a.GetChain(), a.GetSubtask())
			acks[k] = a.GetAck()
			count[k]++
		}
	}
	return acks, count
}

// The worker passes checkpoint requests to the job's plugin and every
// task's acknowledgement to the control plane, once each, retrying while
// the control plane has no leader; the job finishes once a checkpoint
// after the end of its input completed.
func TestCheckpointRelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cp.mu.Lock()
	e.cp.failAck = 2
	e.cp.mu.Unlock()
	ref := e.upload(jobBinary(t), "jobs/sum")
	out := t.TempDir()
	args := []string{"sum", "20000", out}
	resp := e.prepare("j1", 1, ref, args...)
	dir, err := storage.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	tasks := e.deployWith("j1", 1, 2, resp.GetDataAddr(), func(r *eddypb.DeployTasksRequest) { r.Checkpoints = dir }, args...)

	send := func(attempt, id uint64, action pluginpb.CheckpointAction) error {
		_, err := e.ws.Checkpoint(context.Background(), &pluginpb.CheckpointRequest{JobId: "j1", Attempt: attempt,
			CheckpointId: id, Action: action, Url: dir + "/" + checkpoint.Dir(id)})
		return err
	}
	if err := send(2, 1, pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER); status.Code(err) != codes.NotFound {
		t.Fatalf("checkpoint of an attempt the worker does not run: %v, want NotFound", err)
	}

	files := 0
	for id := uint64(1); ; id++ {
		if id > 100 {
			t.Fatal("the job did not finish after 100 checkpoints")
		}
		seq, _ := e.cp.states("j1", 1)
		done := len(seq) == len(tasks)
		for _, s := range seq {
			done = done && s[len(s)-1] == finished
		}
		if done {
			break
		}
		if err := send(1, id, pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER); err != nil {
			if status.Code(err) == codes.NotFound || status.Code(err) == codes.FailedPrecondition {
				// The job ended between the check and the trigger.
				continue
			}
			t.Fatalf("trigger checkpoint %d: %v", id, err)
		}
		// Every task acknowledges, but for one that finished (when an
		// earlier checkpoint completed) before the trigger reached it.
		var acks map[string]*pluginpb.CheckpointAck
		cptest.WaitFor(t, 20*time.Second, func() error {
			acks, _ = e.cp.acksOf("j1", 1, id)
			seq, _ := e.cp.states("j1", 1)
			for _, task := range tasks {
				k := fmt.Sprintf("%d/%d", task.GetChain(), task.GetSubtask())
				if s := seq[k]; acks[k] == nil && (len(s) == 0 || s[len(s)-1] != finished) {
					return fmt.Errorf("checkpoint %d: task %s neither acknowledged nor finished (acks %v, states %v)", id, k, acks, seq)
				}
			}
			return nil
		})
		for k, a := range acks {
			if a.GetError() != "" {
				t.Fatalf("task %s declined checkpoint %d: %s", k, id, a.GetError())
			}
			for _, o := range a.GetOperators() {
				if o.GetFile() == "" {
					continue
				}
				info, err := st.Stat(context.Background(), checkpoint.Dir(id)+"/"+o.GetFile())
				if err != nil || info.Size != o.GetSize() {
					t.Fatalf("task %s checkpoint %d: state file %s: %v %v, want %d bytes", k, id, o.GetFile(), info, err, o.GetSize())
				}
				files++
			}
		}
		if err := send(1, id, pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE); err != nil && status.Code(err) != codes.NotFound {
			t.Fatalf("complete checkpoint %d: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if files == 0 {
		t.Fatal("no checkpoint wrote a state file")
	}
	checkSums(t, out, 20000)
	// Each acknowledgement reached the control plane once, although the
	// first two calls failed and the plugin replays its events.
	e.cp.mu.Lock()
	seen := map[string]int{}
	for _, a := range e.cp.acks {
		seen[fmt.Sprintf("%d/%d@%d", a.GetChain(), a.GetSubtask(), a.GetAck().GetCheckpointId())]++
		if a.GetWorkerId() != "w1" {
			t.Errorf("acknowledgement without the worker id: %v", a)
		}
	}
	e.cp.mu.Unlock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("acknowledgement %s relayed %d times", k, n)
		}
	}
}

// A task that cannot read the checkpoint it restores from is reported
// FAILED with restore_failed.
func TestRestoreFailedReachesControlPlane(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/sum")
	args := []string{"sum", "100", t.TempDir()}
	resp := e.prepare("j1", 1, ref, args...)
	dir, err := storage.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tasks := e.deployWith("j1", 1, 2, resp.GetDataAddr(), func(r *eddypb.DeployTasksRequest) {
		r.Checkpoints = dir
		r.Restore = &pluginpb.RestoreSpec{Url: dir + "/" + checkpoint.Dir(3), CheckpointId: 3}
	}, args...)
	errs := e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, failed, canceled)
	e.cp.mu.Lock()
	defer e.cp.mu.Unlock()
	n := 0
	for _, r := range e.cp.reports {
		if r.GetState() == failed {
			n++
			if !r.GetRestoreFailed() || !strings.Contains(r.GetError(), "not found") {
				t.Errorf("task %d/%d: FAILED with %q (restore_failed %v), want restore_failed", r.GetChain(), r.GetSubtask(), r.GetError(), r.GetRestoreFailed())
			}
		}
	}
	if n == 0 {
		t.Fatalf("no task failed: %v", errs)
	}
}

// Job plugins inherit the worker's environment: that is how they get the
// AWS_* settings and credentials of the checkpoint storage.
func TestPluginInheritsWorkerEnvironment(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "worker-secret")
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/env")
	out := t.TempDir()
	args := []string{"env", "AWS_SECRET_ACCESS_KEY", out}
	resp := e.prepare("j1", 1, ref, args...)
	tasks := e.deployAll("j1", 1, 1, resp.GetDataAddr(), args...)
	e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, finished)
	b, err := os.ReadFile(filepath.Join(out, "env.txt"))
	if err != nil || string(b) != "worker-secret" {
		t.Fatalf("the plugin saw AWS_SECRET_ACCESS_KEY=%q (%v), want the worker's", b, err)
	}
}
