package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/internal/logging"
	"github.com/eddy-streams/eddy/worker"
)

// startWorker runs a worker against every node of c until the returned stop
// function is called.
func startWorker(t *testing.T, c *cptest.Cluster, id, dir string, slots uint32) (*worker.Worker, func()) {
	t.Helper()
	cfg := worker.DefaultConfig()
	cfg.ID = id
	cfg.DataDir = dir
	cfg.Slots = slots
	cfg.Logger = logging.Test(t, id)
	cfg.Servers = nil
	for _, s := range c.Running() {
		cfg.Servers = append(cfg.Servers, s.GRPCAddr())
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return w, stop
}

func waitWorker(t *testing.T, cl *client.Client, id, status, instance string) api.Worker {
	t.Helper()
	var got api.Worker
	cptest.WaitFor(t, 10*time.Second, func() error {
		ws, err := cl.Workers(context.Background())
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.ID == id {
				got = w
				if w.Status != status || (instance != "" && w.InstanceID != instance) {
					return fmt.Errorf("worker %s is %s (instance %s), want %s (instance %q)", id, w.Status, w.InstanceID, status, instance)
				}
				return nil
			}
		}
		return fmt.Errorf("worker %s not listed", id)
	})
	return got
}

func TestWorkerLostWhenSilentAndBackAfterRestart(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	cl := client.New(c.HTTPAddrs())
	dir := t.TempDir()
	w, stop := startWorker(t, c, "w1", dir, 3)
	got := waitWorker(t, cl, "w1", "ALIVE", w.InstanceID())
	if got.Slots != 3 || got.SlotsFree != 3 || got.Address != w.Addr() {
		t.Fatalf("registered worker: %+v", got)
	}

	stop()
	start := time.Now()
	waitWorker(t, cl, "w1", "LOST", w.InstanceID())
	// The test timeout is 1 s (cptest.FastConfig); it must not be much more.
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("lost after %s", took)
	}

	// Restarted on the same data dir without an id, it keeps its identity
	// and registers a new instance.
	cfgless, _ := startWorkerNoID(t, c, dir)
	if cfgless.ID() != "w1" {
		t.Fatalf("restarted worker id %q, want w1 from the data dir", cfgless.ID())
	}
	waitWorker(t, cl, "w1", "ALIVE", cfgless.InstanceID())
}

func startWorkerNoID(t *testing.T, c *cptest.Cluster, dir string) (*worker.Worker, func()) {
	return startWorker(t, c, "", dir, 3)
}

func TestWorkerSurvivesLeaderFailover(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	cl := client.New(c.HTTPAddrs())
	w, _ := startWorker(t, c, "w1", t.TempDir(), 2)
	waitWorker(t, cl, "w1", "ALIVE", w.InstanceID())

	leader := c.Leader()
	c.Kill(string(leader.ID()))
	newLeader := c.Leader()
	// Past the heartbeat timeout the worker must still be alive, with the
	// same instance: it heartbeats through the survivors.
	time.Sleep(2 * time.Second)
	got := waitWorker(t, cl, "w1", "ALIVE", w.InstanceID())
	if got.StatusChangeAt.After(time.Now().Add(-2 * time.Second)) {
		t.Fatalf("worker status changed during failover: %+v", got)
	}
	if newLeader.ID() == leader.ID() {
		t.Fatal("leader did not change")
	}
}

func TestJobsScheduledOntoSlots(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	ctx := context.Background()
	big, err := cl.Submit(ctx, api.SubmitJob{Name: "big", Parallelism: 5})
	if err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 5*time.Second, func() error {
		j, err := cl.Job(ctx, big.ID)
		if err != nil {
			return err
		}
		if j.Status != "CREATED" || !strings.Contains(j.StatusReason, "waiting for 5 free slots") {
			return fmt.Errorf("job %s: %s %q", j.ID, j.Status, j.StatusReason)
		}
		return nil
	})

	_, _ = startWorker(t, c, "w1", t.TempDir(), 2)
	_, _ = startWorker(t, c, "w2", t.TempDir(), 2)
	small, err := cl.Submit(ctx, api.SubmitJob{Name: "small", Parallelism: 3})
	if err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 5*time.Second, func() error {
		j, err := cl.Job(ctx, small.ID)
		if err != nil {
			return err
		}
		if j.Status != "SCHEDULED" || len(j.Tasks) != 3 {
			return fmt.Errorf("small job: %s with %d tasks", j.Status, len(j.Tasks))
		}
		perWorker := map[string]int{}
		for _, task := range j.Tasks {
			perWorker[task.WorkerID]++
		}
		if perWorker["w1"] == 0 || perWorker["w2"] == 0 {
			return fmt.Errorf("tasks not spread over workers: %v", perWorker)
		}
		return nil
	})
	// The waiting job's reason follows the free slots.
	cptest.WaitFor(t, 5*time.Second, func() error {
		j, err := cl.Job(ctx, big.ID)
		if err != nil {
			return err
		}
		if j.Status != "CREATED" || !strings.Contains(j.StatusReason, "1 of 4 free") {
			return fmt.Errorf("big job: %s %q", j.Status, j.StatusReason)
		}
		return nil
	})
	// Cancelling the small job frees its slots.
	if _, err := cl.Cancel(ctx, small.ID); err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 5*time.Second, func() error {
		ws, err := cl.Workers(ctx)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.SlotsFree != w.Slots {
				return fmt.Errorf("worker %s: %d of %d slots free", w.ID, w.SlotsFree, w.Slots)
			}
		}
		return nil
	})
}
