package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/controlplane/server"
)

// failoverBound is how soon after the leader dies a write must succeed
// again. The product goal is a median under 2 s with the default timing;
// tests run with cptest.FastConfig under the race detector.
const failoverBound = 3 * time.Second

func followers(c *cptest.Cluster, leader *server.Server) []*server.Server {
	var out []*server.Server
	for _, s := range c.Running() {
		if s != leader {
			out = append(out, s)
		}
	}
	return out
}

func addrs(ss []*server.Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.HTTPAddr())
	}
	return out
}

// requireJobsEverywhere waits until every running node's own state holds
// every job in ids.
func requireJobsEverywhere(t *testing.T, c *cptest.Cluster, ids []string) {
	t.Helper()
	for _, s := range c.Running() {
		cptest.WaitFor(t, 5*time.Second, func() error {
			st := s.State()
			for _, id := range ids {
				if _, ok := st.Job(controlplane.JobID(id)); !ok {
					return fmt.Errorf("node %s lacks acknowledged job %s", s.ID(), id)
				}
			}
			return nil
		})
	}
}

func TestLeaderKilledNewLeaderTakesWritesAndKeepsAcknowledged(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	ctx := context.Background()
	leader := c.Leader()
	cl := client.New(addrs(followers(c, leader)))

	var acked []string
	for i := range 10 {
		j, err := cl.Submit(ctx, api.SubmitJob{Name: fmt.Sprintf("job-%d", i)})
		if err != nil {
			t.Fatalf("submit %d through a follower: %v", i, err)
		}
		acked = append(acked, j.ID)
	}

	old := string(leader.ID())
	killed := time.Now()
	c.Kill(old)
	var tookOver time.Duration
	cptest.WaitFor(t, 2*failoverBound, func() error {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		j, err := cl.Submit(rctx, api.SubmitJob{Name: "after-failover"})
		if err != nil {
			return err
		}
		tookOver = time.Since(killed)
		acked = append(acked, j.ID)
		return nil
	})
	t.Logf("first write acknowledged %s after the leader was killed", tookOver)
	if tookOver > failoverBound {
		t.Errorf("failover took %s, bound %s", tookOver, failoverBound)
	}
	if nl := c.Leader(); string(nl.ID()) == old {
		t.Fatalf("killed node %s still leads", old)
	}
	requireJobsEverywhere(t, c, acked)

	// The old leader comes back as a follower and catches up.
	c.Restart(old)
	requireJobsEverywhere(t, c, acked)
	jobs, err := client.New(c.HTTPAddrs()).Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(acked) {
		t.Fatalf("%d jobs listed, %d acknowledged", len(jobs), len(acked))
	}
}

func TestPartitionedLeaderStepsDownAndTakesNoWrites(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	ctx := context.Background()
	leader := c.Leader()
	old := string(leader.ID())

	c.Partition(old)
	// The majority elects a new leader; the old one loses its lease.
	cptest.WaitFor(t, failoverBound, func() error {
		if leader.IsLeader() {
			return errors.New("partitioned leader still leads")
		}
		for _, s := range followers(c, leader) {
			if s.IsLeader() {
				return nil
			}
		}
		return errors.New("majority has no leader yet")
	})

	// A write through the minority node fails within a bound and is not
	// applied anywhere.
	start := time.Now()
	_, err := client.New([]string{leader.HTTPAddr()}).Submit(ctx, api.SubmitJob{JobID: "minority-write", Name: "x"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("write through the partitioned node: %v, want a 503", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("refusal took %s", took)
	}
	if _, ok := leader.State().Job("minority-write"); ok {
		t.Fatal("the partitioned node applied a write")
	}
	// The majority keeps taking writes.
	j, err := client.New(addrs(followers(c, leader))).Submit(ctx, api.SubmitJob{JobID: "majority-write", Name: "y"})
	if err != nil {
		t.Fatalf("write through the majority: %v", err)
	}

	c.Heal()
	requireJobsEverywhere(t, c, []string{j.ID})
	for _, s := range c.Running() {
		if _, ok := s.State().Job("minority-write"); ok {
			t.Fatalf("node %s has the refused write", s.ID())
		}
	}
}

func TestFullRestartKeepsJobsAndWorkers(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	ctx := context.Background()
	cl := client.New(c.HTTPAddrs())
	var ids []string
	for i := range 5 {
		j, err := cl.Submit(ctx, api.SubmitJob{Name: fmt.Sprintf("job-%d", i), Parallelism: 2})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	if _, err := cl.Cancel(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leader().RegisterWorker(ctx, registerReq("w1", 4)); err != nil {
		t.Fatal(err)
	}
	before, err := cl.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	requireJobsEverywhere(t, c, ids)

	for _, id := range c.IDs() {
		c.Kill(id)
	}
	for _, id := range c.IDs() {
		c.Restart(id)
	}
	c.Leader()
	after, err := cl.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("after restart %d jobs, before %d", len(after), len(before))
	}
	for i := range before {
		// Scheduling may move on, but identity and cancellation must stay.
		if after[i].ID != before[i].ID || after[i].Name != before[i].Name {
			t.Fatalf("job %d: before %+v after %+v", i, before[i], after[i])
		}
	}
	if after[0].Status != "CANCELED" {
		t.Fatalf("cancelled job is %s after restart", after[0].Status)
	}
	ws, err := cl.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].ID != "w1" || ws[0].Slots != 4 {
		t.Fatalf("workers after restart: %+v", ws)
	}
}

func TestRemoveNodeAndAddNewKeepsThree(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	ctx := context.Background()
	cl := client.New(c.HTTPAddrs())
	leaving := c.IDs()[2]
	cluster, err := cl.Leave(ctx, leaving)
	if err != nil {
		t.Fatalf("leave %s: %v", leaving, err)
	}
	c.Kill(leaving)
	cptest.WaitFor(t, 5*time.Second, func() error {
		cluster, err = cl.Cluster(ctx)
		if err != nil {
			return err
		}
		if len(cluster.Members) != 2 {
			return fmt.Errorf("members %v", cluster.Members)
		}
		return nil
	})

	// A fresh node, started with neither --bootstrap nor --join, is added
	// through the REST API as `eddy cluster join` does.
	cfg := server.DefaultConfig()
	cptest.FastConfig(&cfg)
	cfg.NodeID, cfg.DataDir = "node4", t.TempDir()
	cfg.RaftAddr, cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	n4, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n4.Close)
	info := n4.Node()
	if _, err := cl.Join(ctx, api.JoinRequest{NodeID: info.ID, RaftAddr: info.RaftAddr, GRPCAddr: info.GRPCAddr, HTTPAddr: info.HTTPAddr}); err != nil {
		t.Fatalf("join node4: %v", err)
	}
	j, err := cl.Submit(ctx, api.SubmitJob{Name: "after-join"})
	if err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 5*time.Second, func() error {
		if _, ok := n4.State().Job(controlplane.JobID(j.ID)); !ok {
			return errors.New("node4 has not replicated the job")
		}
		cl, err := n4.Cluster(ctx, nil)
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range cl.Members {
			if m.Suffrage != "voter" {
				return fmt.Errorf("member %s is %s", m.Member.Id, m.Suffrage)
			}
			ids = append(ids, m.Member.Id)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"node1", "node2", "node4"}) {
			return fmt.Errorf("members %v", ids)
		}
		return nil
	})
	// node4 is reachable for forwarding: a write through it works.
	if _, err := client.New([]string{n4.HTTPAddr()}).Submit(ctx, api.SubmitJob{Name: "via-node4"}); err != nil {
		t.Fatalf("write through node4: %v", err)
	}
}
