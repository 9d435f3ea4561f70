package sdk

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/internal/s3test"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// A checkpoint whose storage cannot be reached (a stopped S3 endpoint) or
// refuses the credentials is declined by the tasks with that cause, while
// the tasks keep running; a later checkpoint to good storage with good
// credentials succeeds. The plugin runs in this process and reads the
// credentials from the AWS_* environment, so the test changes it (and
// cannot run in parallel).
func TestTaskExecutorCheckpointToBadStorage(t *testing.T) {
	gw := s3test.Start(t)
	gw.UseEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://"+gw.Endpoint)
	t.Setenv("AWS_REGION", gw.Region)

	job, src, _ := checkpointedSumJob(1000, 500)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	dir := "s3://" + gw.Bucket + "/checkpoints/j1"
	req := h.deployRequest("j1", 1, 2, addr)
	req.Checkpoints = dir
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	h.waitFor(20*time.Second, "every task RUNNING", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_RUNNING))
	waitUntil(t, 10*time.Second, "the source read half", func() bool { return src.emitted.Load() >= 500 })
	c := newCoordinator(t, h, "j1", 1, 2, tasks, dir)

	trigger := func(id uint64, url string) {
		t.Helper()
		if _, err := h.client.Checkpoint(context.Background(), &pluginpb.CheckpointRequest{JobId: "j1", Attempt: 1,
			CheckpointId: id, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER, Url: url,
			TimestampMs: time.Now().UnixMilli()}); err != nil {
			t.Fatalf("trigger checkpoint %d: %v", id, err)
		}
	}
	// declined waits for checkpoint id's acknowledgements and checks that
	// the tasks with state declined it with want in the cause, and that
	// every task still runs.
	declined := func(id uint64, want ...string) {
		t.Helper()
		acks := c.acks(id, time.Minute)
		declines := 0
		for task, a := range acks {
			if a.GetError() == "" {
				if len(a.GetOperators()) > 0 && hasStateFile(a) {
					t.Errorf("task %s acknowledged checkpoint %d with state written: %v", task, id, a)
				}
				continue
			}
			declines++
			t.Logf("task %s declined checkpoint %d: %s", task, id, a.GetError())
			for _, w := range want {
				if !strings.Contains(a.GetError(), w) {
					t.Errorf("task %s declined checkpoint %d with %q, want %q in it", task, id, a.GetError(), w)
				}
			}
		}
		if declines == 0 {
			t.Fatalf("no task declined checkpoint %d: %v", id, acks)
		}
		if err := c.send(pluginpb.CheckpointAction_CHECKPOINT_ACTION_ABORT, id); err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, k := range tasks {
			if st := h.states[k]; st != pluginpb.TaskState_TASK_STATE_RUNNING {
				t.Fatalf("task %s is %v after checkpoint %d failed (%s), want RUNNING", k, st, id, h.errs[k])
			}
		}
	}

	// A stopped S3 endpoint: nothing listens on its port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	trigger(1, fmt.Sprintf("s3://%s/elsewhere/chk-1?endpoint=%s&region=%s&insecure=true", gw.Bucket, dead, gw.Region))
	declined(1, "cannot connect", dead)

	// Wrong credentials for the job's checkpoint directory.
	t.Setenv("AWS_SECRET_ACCESS_KEY", gw.SecretKey+"-wrong")
	trigger(2, dir+"/"+checkpoint.Dir(2))
	declined(2, "access denied", gw.Bucket)

	// Good credentials again: the next checkpoint is written.
	t.Setenv("AWS_SECRET_ACCESS_KEY", gw.SecretKey)
	m, acks := c.checkpoint(3)
	written := 0
	for _, a := range acks {
		if hasStateFile(a) {
			written++
		}
	}
	if written == 0 {
		t.Fatalf("checkpoint 3 wrote no state file: %v", m)
	}
	st, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	checkStateFiles(t, st, 3, m)
	if _, err := h.client.Cancel(context.Background(), &pluginpb.CancelRequest{JobId: "j1"}); err != nil {
		t.Fatal(err)
	}
	h.waitFor(20*time.Second, "the attempt ended", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_CANCELED,
		pluginpb.TaskState_TASK_STATE_FINISHED, pluginpb.TaskState_TASK_STATE_FAILED))
}

func hasStateFile(a *pluginpb.CheckpointAck) bool {
	for _, o := range a.GetOperators() {
		if o.GetFile() != "" {
			return true
		}
	}
	return false
}
