package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/dispatcher"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/controlplane/jobmanager"
	"github.com/eddy-streams/eddy/controlplane/resourcemanager"
	"github.com/eddy-streams/eddy/internal/logging"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/storage"
)

// Server is one control plane node. Its methods are safe for concurrent use.
type Server struct {
	eddypb.UnimplementedControlPlaneServer

	cfg  Config
	log  *slog.Logger
	lock *os.File

	fsm   *fsm.FSM
	blobs storage.Store
	cps   storage.Store // checkpoints: a job's directory is its id
	sps   storage.Store // the default savepoint directory
	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore

	raftAddr, grpcAddr, httpAddr string
	grpcLn, httpLn               net.Listener
	grpc                         *grpc.Server
	http                         *http.Server

	notify    chan bool
	leader    atomic.Pointer[leadership]
	clusterID atomic.Value // string

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// leadership is what a node runs while it is the established leader.
type leadership struct {
	jobs      *jobmanager.Manager
	resources *resourcemanager.Manager
}

// New starts a node: it takes the data dir's lock, opens its Raft state,
// starts serving, bootstraps or joins a cluster when asked and the node has
// no state yet, and returns once it is up. Close stops it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger.With("node_id", cfg.NodeID),
		lock:   lock,
		fsm:    fsm.New(),
		notify: make(chan bool, 16),
		conns:  map[string]*grpc.ClientConn{},
		ctx:    ctx,
		cancel: cancel,
	}
	s.clusterID.Store(readClusterID(cfg.DataDir))
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	storeURL := s.cfg.Storage
	if storeURL == "" {
		u, err := storage.FileURL(filepath.Join(s.cfg.DataDir, "storage"))
		if err != nil {
			return err
		}
		storeURL = u
	}
	st, err := storage.Open(s.ctx, storeURL)
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	s.blobs = st
	under := func(folder string) (string, error) {
		// The path gets the folder; a query (s3 options) stays as it is.
		u, err := url.Parse(storeURL)
		if err != nil {
			return "", fmt.Errorf("storage url %q: %w", storeURL, err)
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + folder
		u.RawPath = ""
		return u.String(), nil
	}
	cpURL, spURL := s.cfg.Checkpoints, s.cfg.Savepoints
	if cpURL == "" {
		if cpURL, err = under("checkpoints"); err != nil {
			return err
		}
	}
	if spURL == "" {
		if spURL, err = under("savepoints"); err != nil {
			return err
		}
	}
	if s.cps, err = storage.Open(s.ctx, cpURL); err != nil {
		return fmt.Errorf("open checkpoint storage: %w", err)
	}
	if s.sps, err = storage.Open(s.ctx, spURL); err != nil {
		return fmt.Errorf("open savepoint storage: %w", err)
	}
	hasState, err := s.setupRaft()
	if err != nil {
		return err
	}
	if err := s.serve(); err != nil {
		return err
	}
	s.goRun(s.leaderLoop)
	s.goRun(s.persistClusterID)

	switch {
	case hasState:
		if s.cfg.Bootstrap || len(s.cfg.Join) > 0 {
			s.log.Info("node has state: rejoining its cluster, ignoring --bootstrap and --join")
		}
	case s.cfg.Bootstrap:
		cfg := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(s.cfg.NodeID), Address: raft.ServerAddress(s.raftAddr)}}}
		if err := s.raft.BootstrapCluster(cfg).Error(); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		s.log.Info("bootstrapped a new cluster")
	case len(s.cfg.Join) > 0:
		if err := s.joinCluster(); err != nil {
			return err
		}
	default:
		s.log.Info("node has no state: waiting to be added with `eddy cluster join`")
	}
	return nil
}

func (s *Server) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// streamLayer is Raft's TCP transport with our own dialer.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (l *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.dial(ctx, "tcp", string(addr))
}

func (l *streamLayer) Addr() net.Addr { return l.advertise }

func (s *Server) setupRaft() (bool, error) {
	dir := filepath.Join(s.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create raft dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return false, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	s.store = store
	hl := logging.HCLog(s.log, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return false, fmt.Errorf("open raft snapshots: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.RaftAddr)
	if err != nil {
		return false, fmt.Errorf("listen raft %s: %w", s.cfg.RaftAddr, err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
		_ = ln.Close()
		return false, fmt.Errorf("raft address %s: give an address other nodes can reach, not an unspecified one", s.cfg.RaftAddr)
	}
	s.raftAddr = ln.Addr().String()
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{Listener: ln, advertise: ln.Addr(), dial: s.cfg.Dial},
		MaxPool: 3,
		Timeout: 2 * time.Second,
		Logger:  hl,
	})
	hasState, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return false, fmt.Errorf("read raft state: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.Logger = hl
	rc.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = s.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = s.cfg.CommitTimeout
	rc.SnapshotInterval = s.cfg.SnapshotInterval
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	if s.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = s.cfg.TrailingLogs
	}
	rc.NotifyCh = s.notify
	r, err := raft.NewRaft(rc, s.fsm, store, store, snaps, s.trans)
	if err != nil {
		return false, fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return hasState, nil
}

func (s *Server) serve() error {
	gl, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc %s: %w", s.cfg.GRPCAddr, err)
	}
	s.grpcLn, s.grpcAddr = gl, gl.Addr().String()
	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn, s.httpAddr = hl, hl.Addr().String()

	s.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(errorInterceptor))
	eddypb.RegisterControlPlaneServer(s.grpc, s)
	s.http = &http.Server{
		Handler:           dispatcher.New(s, s.log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.goRun(func() { _ = s.grpc.Serve(gl) })
	s.goRun(func() {
		if err := s.http.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "error", err)
		}
	})
	s.log.Info("serving", "raft_addr", s.raftAddr, "grpc_addr", s.grpcAddr, "http_addr", s.httpAddr)
	return nil
}

// Close stops the node without leaving the cluster: it is what a crash or a
// restart looks like to the others. It is safe to call more than once.
func (s *Server) Close() {
	s.closed.Do(func() {
		s.cancel()
		if s.http != nil {
			_ = s.http.Close()
		}
		if s.grpc != nil {
			s.grpc.Stop()
		}
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				s.log.Warn("raft shutdown", "error", err)
			}
		}
		if s.trans != nil {
			_ = s.trans.Close()
		}
		s.wg.Wait()
		if s.store != nil {
			_ = s.store.Close()
		}
		s.connMu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.conns = nil
		s.connMu.Unlock()
		unlockDataDir(s.lock)
	})
}

// ID returns the node id.
func (s *Server) ID() controlplane.NodeID { return controlplane.NodeID(s.cfg.NodeID) }

// RaftAddr returns the Raft address the node listens on and advertises.
func (s *Server) RaftAddr() string { return s.raftAddr }

// GRPCAddr returns the gRPC address the node listens on.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr returns the HTTP address the node listens on.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// State returns the node's own view of the replicated state.
func (s *Server) State() *fsm.State { return s.fsm.State() }

// IsLeader reports whether the node is the established leader.
func (s *Server) IsLeader() bool { return s.leader.Load() != nil }

// LeaderID returns the id of the leader this node knows of, or "".
func (s *Server) LeaderID() controlplane.NodeID {
	_, id := s.raft.LeaderWithID()
	return controlplane.NodeID(id)
}

// ClusterID returns the id of the cluster the node belongs to, or "".
func (s *Server) ClusterID() string {
	if id := s.fsm.State().ClusterID(); id != "" {
		return id
	}
	return s.clusterID.Load().(string)
}

// Raft exposes the node's Raft instance to tests and metrics.
func (s *Server) Raft() *raft.Raft { return s.raft }

// raftApply submits a command through Raft and waits until it is applied,
// returning its index and the FSM's business error.
func (s *Server) raftApply(ctx context.Context, t fsm.CommandType, msg proto.Message) (uint64, error) {
	b, err := fsm.Encode(t, msg)
	if err != nil {
		return 0, err
	}
	timeout := s.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("apply %s: %w", t, controlplane.ErrTimeout)
	}
	f := s.raft.Apply(b, timeout)
	// An entry committed but not applied when Raft shuts down may never get
	// an answer (hashicorp/raft#498): do not wait past Close.
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, fmt.Errorf("apply %s: %w", t, raftError(err))
		}
	case <-s.ctx.Done():
		return 0, fmt.Errorf("apply %s: %w: the node is shutting down; the write may or may not have been applied", t, controlplane.ErrTimeout)
	}
	resp, ok := f.Response().(*fsm.Response)
	if !ok {
		return 0, fmt.Errorf("apply %s: unexpected response %T", t, f.Response())
	}
	return resp.Index, resp.Err
}

// raftError maps Raft's errors to the control plane's sentinels: whether a
// write certainly did not happen (not leader) or may have (timeout).
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", controlplane.ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %v; the write may or may not have been applied", controlplane.ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		// Also returned for entries committed but not yet applied.
		return fmt.Errorf("%w: %v; the write may or may not have been applied", controlplane.ErrTimeout, err)
	}
	return err
}

// applier gives the managers the node's Raft without the rest of the node.
type applier struct{ s *Server }

func (a applier) Apply(ctx context.Context, t fsm.CommandType, msg proto.Message) (uint64, error) {
	return a.s.raftApply(ctx, t, msg)
}
func (a applier) State() *fsm.State        { return a.s.fsm.State() }
func (a applier) Changed() <-chan struct{} { return a.s.fsm.Changed() }

// leaderLoop runs the leader-only components while the node leads.
func (s *Server) leaderLoop() {
	type term struct {
		stop context.CancelFunc
		done chan struct{}
	}
	var cur *term
	revoke := func() {
		if cur == nil {
			return
		}
		s.leader.Store(nil)
		cur.stop()
		<-cur.done
		cur = nil
		s.log.Info("leadership lost")
	}
	defer revoke()
	for {
		select {
		case <-s.ctx.Done():
			return
		case isLeader := <-s.notify:
			switch {
			case isLeader && cur == nil:
				ctx, stop := context.WithCancel(s.ctx)
				cur = &term{stop: stop, done: make(chan struct{})}
				go func(done chan struct{}) {
					defer close(done)
					s.lead(ctx)
				}(cur.done)
			case !isLeader:
				revoke()
			}
		}
	}
}

// lead establishes leadership and then runs the managers until ctx ends.
func (s *Server) lead(ctx context.Context) {
	start := time.Now()
	// The barrier makes sure every entry of earlier terms is applied, so the
	// managers and consistent reads see everything committed.
	for {
		if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			s.log.Warn("leader barrier", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The setup writes are retried until they succeed or the term ends: a
	// leader without its managers would refuse every call.
	setup := func() error {
		if s.fsm.State().ClusterID() == "" {
			if _, err := s.raftApply(ctx, fsm.CmdInitCluster, &eddypb.InitClusterCommand{ClusterId: newID(), CreatedAtMs: time.Now().UnixMilli()}); err != nil {
				return fmt.Errorf("initialise cluster id: %w", err)
			}
		}
		self := &eddypb.Member{Id: s.cfg.NodeID, RaftAddr: s.raftAddr, GrpcAddr: s.grpcAddr, HttpAddr: s.httpAddr}
		if m, ok := s.fsm.State().Member(s.ID()); !ok || !proto.Equal(m, self) {
			if _, err := s.raftApply(ctx, fsm.CmdUpsertMember, &eddypb.UpsertMemberCommand{Member: self}); err != nil {
				return fmt.Errorf("record own member entry: %w", err)
			}
		}
		return nil
	}
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		err := setup()
		if err == nil {
			break
		}
		s.log.Warn("leader setup", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
	resources := resourcemanager.New(applier{s}, resourcemanager.Config{
		Logger:            s.log.With("component", "resourcemanager"),
		HeartbeatInterval: s.cfg.WorkerHeartbeatInterval,
		HeartbeatTimeout:  s.cfg.WorkerHeartbeatTimeout,
		Reconnect:         s.reconnect,
	})
	l := &leadership{
		jobs: jobmanager.New(applier{s}, jobmanager.Config{
			Logger:        s.log.With("component", "jobmanager"),
			Worker:        s.workerClient,
			Reachable:     resources.Reachable,
			Unreachable:   resources.MarkUnreachable,
			CheckArtifact: s.checkArtifact,
			Checkpoints:   s.cps,
			Savepoints:    s.sps,
		}),
		resources: resources,
	}
	s.leader.Store(l)
	s.log.Info("leadership established", "took", time.Since(start).Round(time.Millisecond).String())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.jobs.Run(ctx) }()
	go func() { defer wg.Done(); l.resources.Run(ctx) }()
	wg.Wait()
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// persistClusterID writes the cluster id to the data dir once it is known,
// so that a restarted node knows its cluster before it has a leader.
func (s *Server) persistClusterID() {
	for {
		ch := s.fsm.Changed()
		if id := s.fsm.State().ClusterID(); id != "" && id != s.clusterID.Load().(string) {
			if err := os.WriteFile(filepath.Join(s.cfg.DataDir, "cluster-id"), []byte(id+"\n"), 0o644); err != nil {
				s.log.Warn("persist cluster id", "error", err)
			} else {
				s.clusterID.Store(id)
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-ch:
		}
	}
}

func readClusterID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cluster-id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// DataDir returns the node's data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }
