// Package cptest starts in-process control plane clusters for tests:
// TestCluster(t, 3) gives three nodes on loopback with Leader, Kill, Restart,
// Partition and Heal, cleaned up when the test ends. Partitions go through
// faultnet, so they need no privileges. Each node logs to t.Log.
//
// It is for tests only; production code must not import it.
package cptest

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/controlplane/server"
	"github.com/eddy-streams/eddy/internal/faultnet"
	"github.com/eddy-streams/eddy/internal/logging"
)

// Cluster is a set of in-process control plane nodes.
type Cluster struct {
	t   testing.TB
	Net *faultnet.Network

	mu    sync.Mutex
	ids   []string
	cfgs  map[string]server.Config
	nodes map[string]*server.Server // nil while killed
}

// Option changes the configuration of every node of a test cluster.
type Option func(*server.Config)

// FastConfig returns the Raft timing tests use: quick failover, but loose
// enough for a loaded two-core machine running the race detector.
func FastConfig(c *server.Config) {
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.WorkerHeartbeatInterval = 100 * time.Millisecond
	c.WorkerHeartbeatTimeout = time.Second
	c.LeaderWait = 2 * time.Second
	c.ApplyTimeout = 3 * time.Second
}

// TestCluster starts n nodes: the first bootstraps, the others join it. It
// returns once every node is a voter and a leader is established.
func TestCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Net: faultnet.New(), cfgs: map[string]server.Config{}, nodes: map[string]*server.Server{}}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	for i := range n {
		id := fmt.Sprintf("node%d", i+1)
		cfg := server.DefaultConfig()
		cfg.NodeID = id
		cfg.DataDir = filepath.Join(dir, id)
		cfg.RaftAddr, cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.Logger = logging.Test(t, id)
		cfg.Dial = c.Net.Dialer(id)
		FastConfig(&cfg)
		for _, o := range opts {
			o(&cfg)
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{c.nodes["node1"].GRPCAddr()}
		}
		s, err := server.New(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		// Later starts reuse the ports, so that the others find the node again.
		cfg.RaftAddr, cfg.GRPCAddr, cfg.HTTPAddr = s.RaftAddr(), s.GRPCAddr(), s.HTTPAddr()
		cfg.Bootstrap, cfg.Join = false, nil
		c.Net.Register(id, s.RaftAddr())
		c.Net.Register(id, s.GRPCAddr())
		c.Net.Register(id, s.HTTPAddr())
		c.mu.Lock()
		c.ids = append(c.ids, id)
		c.cfgs[id] = cfg
		c.nodes[id] = s
		c.mu.Unlock()
		if i == 0 {
			c.Leader()
		}
	}
	WaitFor(t, 10*time.Second, func() error {
		l := c.Leader()
		cl, err := l.Cluster(context.Background(), nil)
		if err != nil {
			return err
		}
		if len(cl.Members) != n {
			return fmt.Errorf("%d members, want %d", len(cl.Members), n)
		}
		return nil
	})
	return c
}

// IDs returns the node ids in start order.
func (c *Cluster) IDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// Node returns a running node, or nil while it is killed.
func (c *Cluster) Node(id string) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Running returns the running nodes in start order.
func (c *Cluster) Running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, id := range c.ids {
		if s := c.nodes[id]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// HTTPAddrs returns the HTTP addresses of every node, killed ones too.
func (c *Cluster) HTTPAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.ids {
		out = append(out, c.cfgs[id].HTTPAddr)
	}
	return out
}

// Leader waits up to 10 s for exactly one running node to be the established
// leader and returns it.
func (c *Cluster) Leader() *server.Server {
	c.t.Helper()
	var leader *server.Server
	WaitFor(c.t, 10*time.Second, func() error {
		leader = nil
		var ids []string
		for _, s := range c.Running() {
			if s.IsLeader() {
				leader = s
				ids = append(ids, string(s.ID()))
			}
		}
		if len(ids) != 1 {
			return fmt.Errorf("established leaders: %v", ids)
		}
		return nil
	})
	return leader
}

// Kill stops a node abruptly, keeping its data dir.
func (c *Cluster) Kill(id string) {
	c.t.Helper()
	c.mu.Lock()
	s := c.nodes[id]
	c.nodes[id] = nil
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("kill %s: not running", id)
	}
	s.Close()
}

// Restart starts a killed node again from its data dir, on its old ports.
func (c *Cluster) Restart(id string) {
	c.t.Helper()
	c.mu.Lock()
	cfg, ok := c.cfgs[id]
	running := c.nodes[id] != nil
	c.mu.Unlock()
	if !ok || running {
		c.t.Fatalf("restart %s: unknown or running", id)
	}
	var s *server.Server
	// The old ports are normally free at once; allow a moment if not.
	WaitFor(c.t, 5*time.Second, func() error {
		var err error
		s, err = server.New(cfg)
		return err
	})
	c.mu.Lock()
	c.nodes[id] = s
	c.mu.Unlock()
}

// Partition cuts the given nodes off from the rest (they still reach each
// other). Clients in the test can still reach every node.
func (c *Cluster) Partition(ids ...string) { c.Net.Partition(ids...) }

// Heal undoes every partition.
func (c *Cluster) Heal() { c.Net.Heal() }

// Close stops every node.
func (c *Cluster) Close() {
	for _, s := range c.Running() {
		s.Close()
	}
	c.mu.Lock()
	for id := range c.nodes {
		c.nodes[id] = nil
	}
	c.mu.Unlock()
}

// WaitFor calls f until it returns nil, failing the test with f's last error
// if that does not happen within timeout.
func WaitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HTTPClient is a client with a bound on every request, for tests.
var HTTPClient = &http.Client{Timeout: 20 * time.Second}
