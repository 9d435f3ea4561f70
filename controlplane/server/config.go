package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"
)

// Config configures one control plane node.
type Config struct {
	// NodeID is the node's stable identity and Raft server id.
	NodeID string
	// DataDir holds the Raft log, snapshots and the node's lock file.
	DataDir string
	// RaftAddr, GRPCAddr and HTTPAddr are listen addresses; port 0 picks a
	// free port (tests).
	RaftAddr string
	GRPCAddr string
	HTTPAddr string
	// Bootstrap makes this node found a new cluster when it has no state.
	Bootstrap bool
	// Join lists addresses (gRPC or HTTP) of existing nodes to join through
	// when this node has no state.
	Join []string

	// Raft timing. Lower values fail over faster but need a quieter machine.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold control log compaction.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries a snapshot leaves in the log.
	TrailingLogs uint64

	// ApplyTimeout bounds a write: without a quorum it fails after this.
	ApplyTimeout time.Duration
	// LeaderWait is how long a call waits for a leader to be elected before
	// it fails with controlplane.ErrNoLeader.
	LeaderWait time.Duration

	// WorkerHeartbeatInterval is how often workers are told to heartbeat;
	// a worker silent for WorkerHeartbeatTimeout is marked lost.
	WorkerHeartbeatInterval time.Duration
	WorkerHeartbeatTimeout  time.Duration

	// Storage is the URL of the store shared by every node and worker of
	// the cluster, for artifacts, checkpoints and savepoints. Empty means
	// file:// under DataDir, which only suits a single node (or nodes on
	// one machine given the same directory).
	Storage string
	// Checkpoints is the URL under which jobs' checkpoint directories go
	// (<Checkpoints>/<job id>/chk-<id>). Empty means <Storage>/checkpoints.
	Checkpoints string
	// Savepoints is the default directory of savepoints, used when a
	// request names none (<Savepoints>/savepoint-<job>-<id>-<random>).
	// Empty means <Storage>/savepoints.
	Savepoints string

	// Logger receives the node's logs.
	Logger *slog.Logger
	// Dial, when set, is used for every connection to another node (tests
	// use it to inject partitions).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultConfig returns a configuration tuned for fast failover on a LAN:
// a killed leader is replaced in about a second.
func DefaultConfig() Config {
	return Config{
		RaftAddr:                "127.0.0.1:7101",
		GRPCAddr:                "127.0.0.1:7102",
		HTTPAddr:                "127.0.0.1:8081",
		HeartbeatTimeout:        500 * time.Millisecond,
		ElectionTimeout:         500 * time.Millisecond,
		LeaderLeaseTimeout:      250 * time.Millisecond,
		CommitTimeout:           20 * time.Millisecond,
		SnapshotInterval:        30 * time.Second,
		SnapshotThreshold:       4096,
		TrailingLogs:            4096,
		ApplyTimeout:            5 * time.Second,
		LeaderWait:              3 * time.Second,
		WorkerHeartbeatInterval: time.Second,
		WorkerHeartbeatTimeout:  10 * time.Second,
		Logger:                  slog.Default(),
	}
}

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if !nodeIDPattern.MatchString(c.NodeID) {
		errs = append(errs, fmt.Errorf("node id %q: want 1-64 letters, digits, '.', '_' or '-'", c.NodeID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	for name, addr := range map[string]string{"raft": c.RaftAddr, "grpc": c.GRPCAddr, "http": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: %w", name, addr, err))
		}
	}
	if c.Bootstrap && len(c.Join) > 0 {
		errs = append(errs, errors.New("bootstrap and join exclude each other: bootstrap the first node, join the others"))
	}
	if c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("raft timeouts: heartbeat %s must be >= 5ms and election %s >= heartbeat", c.HeartbeatTimeout, c.ElectionTimeout))
	}
	if c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("raft leader lease %s must be >= 5ms and <= heartbeat timeout %s", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.CommitTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("raft commit timeout %s must be >= 1ms", c.CommitTimeout))
	}
	if c.ApplyTimeout <= 0 || c.LeaderWait <= 0 {
		errs = append(errs, errors.New("apply timeout and leader wait must be positive"))
	}
	if c.WorkerHeartbeatInterval <= 0 || c.WorkerHeartbeatTimeout <= c.WorkerHeartbeatInterval {
		errs = append(errs, fmt.Errorf("worker heartbeat timeout %s must exceed the interval %s", c.WorkerHeartbeatTimeout, c.WorkerHeartbeatInterval))
	}
	if c.SnapshotInterval < 5*time.Millisecond || c.SnapshotThreshold == 0 {
		errs = append(errs, errors.New("snapshot interval must be >= 5ms and threshold positive"))
	}
	return errors.Join(errs...)
}
