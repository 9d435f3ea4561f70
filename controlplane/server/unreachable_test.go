package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/controlplane/server"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// runningOn counts the running tasks of a job's current attempt by worker.
func runningOn(j api.Job) map[string]int {
	on := map[string]int{}
	for _, ts := range j.Execution {
		if ts.State == "RUNNING" {
			on[ts.WorkerID]++
		}
	}
	return on
}

// workerStatus returns a worker's status and instance as the API lists them.
func workerStatus(t *testing.T, cl *client.Client, id string) (status, instance string) {
	t.Helper()
	ws, err := cl.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == id {
			return w.Status, w.InstanceID
		}
	}
	t.Fatalf("worker %s not listed in %+v", id, ws)
	return "", ""
}

// workerUnreachable returns what the API says of a worker the leader
// cannot reach: nil for a reachable one.
func workerUnreachable(t *testing.T, cl *client.Client, id string) *api.Unreachable {
	t.Helper()
	ws, err := cl.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == id {
			return w.Unreachable
		}
	}
	t.Fatalf("worker %s not listed in %+v", id, ws)
	return nil
}

// A worker that stops answering (its process killed) is left out of the
// next placement as soon as a call to it is refused, long before the
// heartbeat timeout would mark it lost: the job's next attempt runs on the
// other worker at its first restart. Once the worker heartbeats again it
// takes tasks again.
func TestUnreachableWorkerSkippedUntilItsNextHeartbeat(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt, func(cfg *server.Config) {
		// Far longer than the test: a worker marked lost would be a bug.
		cfg.WorkerHeartbeatTimeout = 30 * time.Second
	})
	cl := client.New(c.HTTPAddrs())
	ctx := context.Background()
	startCPWorker(t, c, "w1", 4, nil)
	w2 := startCPWorker(t, c, "w2", 4, nil)
	a := uploadFake(t, cl)
	j, err := cl.Submit(ctx, api.SubmitJob{JobID: "survivor", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 2},
			&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 200})})
	if err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 10*time.Second, func() error {
		j, err := cl.Job(ctx, j.ID)
		if err != nil {
			return err
		}
		if on := runningOn(j); j.Status != "RUNNING" || on["w1"] != 2 || on["w2"] != 2 {
			return fmt.Errorf("job %s with running tasks %v, want 2 on each worker", j.Status, on)
		}
		return nil
	})
	waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(2))
	_, w2Instance := workerStatus(t, cl, "w2")

	w2.stop()
	var after api.Job
	cptest.WaitFor(t, 20*time.Second, func() error {
		var err error
		if after, err = cl.Job(ctx, j.ID); err != nil {
			return err
		}
		if on := runningOn(after); after.Status != "RUNNING" || after.Attempt < 2 || on["w1"] != 4 || on["w2"] != 0 {
			return fmt.Errorf("job %s at attempt %d with running tasks %v, want a later attempt with all 4 on w1", after.Status, after.Attempt, on)
		}
		return nil
	})
	// w2 was not marked lost: it was skipped while still alive, and the
	// workers' list says so.
	if st, inst := workerStatus(t, cl, "w2"); st != "ALIVE" || inst != w2Instance {
		t.Fatalf("w2 is %s as instance %s, want ALIVE as %s", st, inst, w2Instance)
	}
	if u := workerUnreachable(t, cl, "w2"); u == nil || u.Cause == "" || u.Since.IsZero() || time.Since(u.Since) > time.Minute {
		t.Fatalf("w2 listed as unreachable %+v, want since when and why", u)
	}
	if u := workerUnreachable(t, cl, "w1"); u != nil {
		t.Fatalf("w1 listed as unreachable %+v", u)
	}
	// One restart: the first attempt after the failure went to w1, none was
	// placed on w2 again to fail at deploy.
	if after.Attempt != 2 || after.Restarts != 1 || !strings.Contains(after.Failure, "w2") {
		t.Fatalf("job after w2 stopped: attempt %d, %d restarts, failure %q; want attempt 2 after 1 restart caused by w2", after.Attempt, after.Restarts, after.Failure)
	}
	if after.RestoredCheckpoint == 0 {
		t.Errorf("attempt 2 started empty, want it restored from the latest checkpoint")
	}

	// A job that needs w2's slots waits while w2 is unreachable, and says so.
	j2, err := cl.Submit(ctx, api.SubmitJob{JobID: "wide", Artifact: &a, Graph: testGraph(4, "count")})
	if err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 10*time.Second, func() error {
		j, err := cl.Job(ctx, j2.ID)
		if err != nil {
			return err
		}
		if j.Status != "CREATED" || !strings.Contains(j.StatusReason, "4 more on unreachable workers") {
			return fmt.Errorf("job %s (%s), want CREATED waiting with w2's 4 slots unreachable", j.Status, j.StatusReason)
		}
		return nil
	})

	// w2 comes back as the same instance: its first heartbeat makes it
	// reachable, and the waiting job runs on it.
	w2.resume()
	cptest.WaitFor(t, 10*time.Second, func() error {
		j, err := cl.Job(ctx, j2.ID)
		if err != nil {
			return err
		}
		if on := runningOn(j); j.Status != "RUNNING" || on["w2"] == 0 {
			return fmt.Errorf("job %s (%s) with running tasks %v, want some on w2", j.Status, j.StatusReason, on)
		}
		return nil
	})
	if st, inst := workerStatus(t, cl, "w2"); st != "ALIVE" || inst != w2Instance {
		t.Fatalf("w2 is %s as instance %s, want ALIVE as %s", st, inst, w2Instance)
	}
	if u := workerUnreachable(t, cl, "w2"); u != nil {
		t.Fatalf("w2 still listed as unreachable after its heartbeat: %+v", u)
	}
	if got, err := cl.Job(ctx, j.ID); err != nil || got.Status != "RUNNING" || got.Attempt != 2 {
		t.Fatalf("first job after w2 came back: %+v, %v; want still RUNNING at attempt 2", got, err)
	}
}
