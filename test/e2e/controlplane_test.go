// Package e2e tests Eddy as a user runs it: real `eddy server` and
// `eddy worker` processes started from the CLI binary, driven through the CLI
// and the REST API, and crashed with SIGKILL.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/test/procs"
)

func TestMain(m *testing.M) {
	code := m.Run()
	procs.RemoveBinary()
	os.Exit(code)
}

// cliTimeout bounds one eddy client command.
const cliTimeout = 20 * time.Second

// failoverBound is how long the survivors may take, from the SIGKILL of the
// leader, to answer reads and acknowledge a write. The default Raft timing
// replaces a leader in about a second; the margin is for a loaded machine
// running the race detector.
const failoverBound = 10 * time.Second

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real eddy processes; skipped with -short")
	}
}

// eddyJSON runs an eddy client command with --json and decodes its output
// into out; it returns an error for a non-zero exit.
func eddyJSON(c *procs.Cluster, out any, args ...string) error {
	r := c.Eddy(cliTimeout, append(args, "--json")...)
	if r.Code != 0 {
		return errors.New(r.String())
	}
	if err := json.Unmarshal([]byte(r.Stdout), out); err != nil {
		return fmt.Errorf("decode output of %v: %w\n%s", args, err, r.Stdout)
	}
	return nil
}

// missingJobs returns the ids that jobs lacks.
func missingJobs(jobs []api.Job, ids []string) []string {
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(jobs, func(j api.Job) bool { return j.ID == id }) {
			missing = append(missing, id)
		}
	}
	return missing
}

func findWorker(ws []api.Worker, id string) (api.Worker, bool) {
	i := slices.IndexFunc(ws, func(w api.Worker) bool { return w.ID == id })
	if i < 0 {
		return api.Worker{}, false
	}
	return ws[i], true
}

// TestLeaderFailover runs three servers and a worker, kills the leader with
// SIGKILL, and checks that the survivors keep the jobs and the worker, take
// writes again, and show the new leader.
func TestLeaderFailover(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const (
		hbInterval = 250 * time.Millisecond
		hbTimeout  = 3 * time.Second
	)
	// A short worker heartbeat timeout makes "the worker is still ALIVE"
	// mean something within the test's time: the new leader would mark it
	// LOST after hbTimeout if its heartbeats did not reach the survivors.
	c := procs.New(t, procs.Config{ServerArgs: []string{
		"--worker-heartbeat-interval=" + hbInterval.String(),
		"--worker-heartbeat-timeout=" + hbTimeout.String(),
	}})
	servers := c.StartServers(3)
	c.StartWorker("w1", 4)

	// Submit through each node in turn: followers forward to the leader.
	var ids []string
	for i, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		j, err := client.New([]string{s.HTTPAddr}).Submit(ctx, api.SubmitJob{Name: fmt.Sprintf("job-%d", i+1), Parallelism: 1})
		cancel()
		if err != nil {
			t.Fatalf("submit through %s: %v", s.ID, err)
		}
		ids = append(ids, j.ID)
	}

	var before api.Worker
	for _, s := range servers {
		var jobs []api.Job
		if err := eddyJSON(c, &jobs, "--address", s.HTTPAddr, "list"); err != nil {
			t.Fatal(err)
		}
		if m := missingJobs(jobs, ids); len(m) > 0 {
			t.Fatalf("eddy list through %s lacks jobs %v: %+v", s.ID, m, jobs)
		}
		var ws []api.Worker
		if err := eddyJSON(c, &ws, "--address", s.HTTPAddr, "workers"); err != nil {
			t.Fatal(err)
		}
		w, ok := findWorker(ws, "w1")
		if !ok || w.Status != "ALIVE" || w.Slots != 4 {
			t.Fatalf("eddy workers through %s: want w1 ALIVE with 4 slots, got %+v", s.ID, ws)
		}
		before = w
	}

	old := c.Leader()
	var survivors []string
	for _, s := range servers {
		if s != old {
			survivors = append(survivors, s.ID)
		}
	}
	addrs := c.Addresses(survivors...)
	t.Logf("killing leader %s; survivors %v at %s", old.ID, survivors, addrs)
	c.Kill(old.ID)
	killed := time.Now()

	// Reads through the survivors: the jobs are all there. Until the
	// survivors notice the leader is gone, they fail reads at once.
	failed := 0
	err := procs.Poll(failoverBound, 50*time.Millisecond, func() error {
		var jobs []api.Job
		if err := eddyJSON(c, &jobs, "--address", addrs, "list"); err != nil {
			failed++
			return err
		}
		if m := missingJobs(jobs, ids); len(m) > 0 {
			return fmt.Errorf("eddy list lacks jobs %v: %+v", m, jobs)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("eddy --address %s list after the leader's kill: %v", addrs, err)
	}
	t.Logf("jobs listed through the survivors %s after the kill (%d failed attempts before)", time.Since(killed).Round(time.Millisecond), failed)

	// A write through the survivors. The fixed id makes a retry after an
	// unknown outcome harmless: job_exists then means it was applied.
	cl := client.New(strings.Split(addrs, ","))
	err = procs.Poll(failoverBound, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := cl.Submit(ctx, api.SubmitJob{JobID: "after-failover", Name: "after-failover", Parallelism: 1})
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == "job_exists" {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("submit through the survivors after the leader's kill: %v", err)
	}
	t.Logf("write acknowledged through the survivors %s after the kill", time.Since(killed).Round(time.Millisecond))
	ids = append(ids, "after-failover")

	// The new leader, as `eddy cluster members` shows it.
	var members api.Cluster
	if err := eddyJSON(c, &members, "--address", addrs, "cluster", "members"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(survivors, members.LeaderID) {
		t.Fatalf("eddy cluster members: leader %q, want one of %v: %+v", members.LeaderID, survivors, members)
	}
	if len(members.Members) != 3 {
		t.Fatalf("eddy cluster members: %d members, want 3 (the killed node stays a member): %+v", len(members.Members), members)
	}
	r := c.Eddy(cliTimeout, "--address", addrs, "cluster", "members")
	if r.Code != 0 {
		t.Fatal(r)
	}
	if !strings.Contains(r.Stdout, "leader "+members.LeaderID+"\n") || !rowHas(r.Stdout, members.LeaderID, "leader") || !rowHas(r.Stdout, old.ID, "follower") {
		t.Fatalf("eddy cluster members does not show %s as the leader and %s as a follower:\n%s", members.LeaderID, old.ID, r.Stdout)
	}

	// The worker heartbeats to the survivors: past the heartbeat timeout of
	// the new leader's term it is still ALIVE, and was never marked LOST
	// (which would have changed its status time when it registered again).
	if wait := hbTimeout + time.Second - time.Since(killed); wait > 0 {
		time.Sleep(wait)
	}
	var ws []api.Worker
	if err := eddyJSON(c, &ws, "--address", addrs, "workers"); err != nil {
		t.Fatal(err)
	}
	w, ok := findWorker(ws, "w1")
	if !ok || w.Status != "ALIVE" {
		t.Fatalf("eddy workers after the failover: want w1 ALIVE, got %+v", ws)
	}
	if w.InstanceID != before.InstanceID || !w.StatusChangeAt.Equal(before.StatusChangeAt) {
		t.Fatalf("worker w1 changed status during the failover: before %+v, after %+v", before, w)
	}
	var jobs []api.Job
	if err := eddyJSON(c, &jobs, "--address", addrs, "list"); err != nil {
		t.Fatal(err)
	}
	if m := missingJobs(jobs, ids); len(m) > 0 {
		t.Fatalf("eddy list lacks jobs %v: %+v", m, jobs)
	}
}

// rowHas reports whether a line of a table starts with the cell first and
// has the cell other.
func rowHas(table, first, other string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == first && slices.Contains(f[1:], other) {
			return true
		}
	}
	return false
}

// TestDataDirInUse starts a second server on the data dir of a running one:
// it must exit at once with an error that names the data dir, and leave the
// first server running.
func TestDataDirInUse(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := procs.New(t, procs.Config{})
	s := c.StartServer("solo", "")
	c.Leader()

	r := c.Eddy(cliTimeout, "server", "--node-id", "solo", "--data-dir", s.DataDir,
		"--raft-addr", procs.FreeAddr(t), "--grpc-addr", procs.FreeAddr(t), "--http-addr", procs.FreeAddr(t))
	if r.Code != 1 {
		t.Fatalf("want exit code 1, got %s", r)
	}
	for _, want := range []string{"data dir is in use", s.DataDir, strconv.Itoa(s.PID())} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, r.Stderr)
		}
	}
	if r.Took > 10*time.Second {
		t.Errorf("the refusal took %s; want it at once", r.Took)
	}
	if !s.Alive() {
		t.Fatalf("the first server exited")
	}
	if n, err := s.Node(); err != nil || n.State != "Leader" {
		t.Fatalf("the first server after the refused start: %+v, %v", n, err)
	}
}

// TestAddressFallover gives the CLI a dead address before a live one: it
// must move on to the live node.
func TestAddressFallover(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := procs.New(t, procs.Config{})
	s := c.StartServer("solo", "")
	c.Leader()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	j, err := c.Client().Submit(ctx, api.SubmitJob{Name: "fallover", Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}

	dead := procs.FreeAddr(t) // nothing listens there
	addrs := dead + "," + s.HTTPAddr
	var jobs []api.Job
	if err := eddyJSON(c, &jobs, "--address", addrs, "list"); err != nil {
		t.Fatal(err)
	}
	if m := missingJobs(jobs, []string{j.ID}); len(m) > 0 {
		t.Fatalf("eddy --address %s list lacks job %s: %+v", addrs, j.ID, jobs)
	}
	var got api.Job
	if err := eddyJSON(c, &got, "--address", addrs, "info", j.ID); err != nil {
		t.Fatal(err)
	}
	if got.ID != j.ID || got.Name != "fallover" {
		t.Fatalf("eddy info: got %+v", got)
	}

	// With only dead addresses the command fails with a clear error.
	r := c.Eddy(cliTimeout, "--address", dead, "list")
	if r.Code != 1 || !strings.Contains(r.Stderr, "connection refused") {
		t.Fatalf("want exit 1 and a connection error, got %s", r)
	}
}
