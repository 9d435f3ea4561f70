package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
)

// Kind says what a process is.
type Kind string

// The kinds of process a Cluster starts.
const (
	Server Kind = "server"
	Worker Kind = "worker"
)

// Config configures a Cluster. The zero value is ready to use.
type Config struct {
	// ServerArgs are extra flags for every `eddy server`, such as Raft
	// timing ("--raft-heartbeat-timeout=300ms"). Without them the servers
	// run with the defaults a user gets.
	ServerArgs []string
	// WorkerArgs are extra flags for every `eddy worker`.
	WorkerArgs []string
	// StartTimeout bounds every wait for a process or the cluster to be
	// ready; zero means 30 s.
	StartTimeout time.Duration
	// Dir holds the processes' data dirs and logs; empty means t.TempDir().
	Dir string
	// LogTail is how many last lines of each process's log are shown when
	// the test has failed; zero means 80, negative means none.
	LogTail int
	// SharedStorage gives every server the same --storage, the directory
	// StorageDir returns, as a real cluster has: an artifact uploaded
	// through one node is then found by the others and by every worker.
	// Without it each server keeps its storage under its own data dir.
	SharedStorage bool
	// Storage, when set, is the --storage URL of every server (an s3://
	// URL of a test's S3 server, say); it takes the place of SharedStorage.
	Storage string
	// Env is added to the environment of every process (and so of the
	// plugins workers start), e.g. the AWS_* variables of an S3 server.
	Env []string
}

// killWait bounds how long a SIGKILLed process may take to be reaped.
const killWait = 10 * time.Second

// requestTimeout bounds each REST call the helpers make.
const requestTimeout = 2 * time.Second

// Cluster is a set of eddy processes of one test: control plane nodes and
// workers. Its methods are safe for concurrent use, but those that fail the
// test must be called from the test's goroutine.
type Cluster struct {
	t      TB
	cfg    Config
	bin    string
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	procs []*Proc // in start order
}

// New returns an empty cluster whose processes are all killed when t ends.
// It builds the eddy binary if this process has not yet.
func New(t TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.LogTail == 0 {
		cfg.LogTail = 80
	}
	if cfg.Dir == "" {
		// Registered before Close, so that the logs still exist while Close
		// shows them.
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{t: t, cfg: cfg, bin: Binary(t), ctx: ctx, cancel: cancel}
	t.Cleanup(c.Close)
	return c
}

// Bin returns the path of the eddy binary.
func (c *Cluster) Bin() string { return c.bin }

// Dir returns the directory that holds the data dirs and logs.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// StorageDir returns the directory of the storage the servers share, or ""
// without Config.SharedStorage.
func (c *Cluster) StorageDir() string {
	if !c.cfg.SharedStorage {
		return ""
	}
	dir := filepath.Join(c.cfg.Dir, "storage")
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // a file:// URL needs an absolute path
	}
	return dir
}

// Proc is one eddy process, across its restarts.
type Proc struct {
	ID      string
	Kind    Kind
	DataDir string
	// LogPath is the file that receives the process's stdout and stderr,
	// appended to by each restart.
	LogPath string
	// RaftAddr, GRPCAddr and HTTPAddr are a server's addresses; they stay
	// the same across restarts.
	RaftAddr, GRPCAddr, HTTPAddr string

	args []string

	mu      sync.Mutex
	pid     int
	done    chan struct{} // closed when the current run has been reaped
	running bool
	state   string // how the last run ended
	starts  int
}

// Alive reports whether the process is running (started and not reaped).
func (p *Proc) Alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// PID returns the pid of the current or last run.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Args returns the command line of the process, without the binary.
func (p *Proc) Args() []string { return slices.Clone(p.args) }

// Node asks a server who it is (GET /v1/node), within requestTimeout.
func (p *Proc) Node() (api.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return client.New([]string{p.HTTPAddr}).Node(ctx)
}

// Cluster asks a server for its view of the Raft group (GET /v1/cluster),
// within requestTimeout.
func (p *Proc) Cluster() (api.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return client.New([]string{p.HTTPAddr}).Cluster(ctx)
}

// LogTail returns the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartServers starts n servers, node1 to nodeN: node1 founds the cluster
// with --bootstrap and the others --join it through its gRPC address. It
// returns once every node is a voter and all agree on a leader.
func (c *Cluster) StartServers(n int) []*Proc {
	c.t.Helper()
	first := c.StartServer("node1", "")
	c.Leader()
	out := []*Proc{first}
	for i := 2; i <= n; i++ {
		out = append(out, c.StartServer(fmt.Sprintf("node%d", i), first.GRPCAddr))
	}
	c.WaitHealthy(n)
	return out
}

// StartServer starts an `eddy server` on fresh ports and waits until it
// answers GET /v1/node. With join empty it bootstraps a new cluster;
// otherwise it joins through join (comma-separated gRPC or HTTP addresses).
// A node that joins may not yet be a member when StartServer returns: use
// WaitHealthy.
func (c *Cluster) StartServer(id, join string) *Proc {
	c.t.Helper()
	p := &Proc{
		ID: id, Kind: Server,
		DataDir:  filepath.Join(c.cfg.Dir, id),
		LogPath:  filepath.Join(c.cfg.Dir, id+".log"),
		RaftAddr: FreeAddr(c.t), GRPCAddr: FreeAddr(c.t), HTTPAddr: FreeAddr(c.t),
	}
	p.args = []string{"server", "--node-id", id, "--data-dir", p.DataDir,
		"--raft-addr", p.RaftAddr, "--grpc-addr", p.GRPCAddr, "--http-addr", p.HTTPAddr}
	if join == "" {
		p.args = append(p.args, "--bootstrap")
	} else {
		p.args = append(p.args, "--join", join)
	}
	if c.cfg.Storage != "" {
		p.args = append(p.args, "--storage", c.cfg.Storage)
	} else if dir := c.StorageDir(); dir != "" {
		p.args = append(p.args, "--storage", (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String())
	}
	p.args = append(p.args, c.cfg.ServerArgs...)
	c.add(p)
	c.start(p)
	c.waitServerUp(p)
	return p
}

// StartWorker starts an `eddy worker` with the given id and slots that knows
// every server started so far, and waits until the control plane lists it
// as ALIVE.
func (c *Cluster) StartWorker(id string, slots int) *Proc {
	c.t.Helper()
	var grpcAddrs []string
	for _, s := range c.Servers() {
		grpcAddrs = append(grpcAddrs, s.GRPCAddr)
	}
	if len(grpcAddrs) == 0 {
		c.t.Fatalf("start worker %s: no server started", id)
	}
	p := &Proc{
		ID: id, Kind: Worker,
		DataDir: filepath.Join(c.cfg.Dir, id),
		LogPath: filepath.Join(c.cfg.Dir, id+".log"),
	}
	p.args = []string{"worker", "--id", id, "--data-dir", p.DataDir,
		"--servers", strings.Join(grpcAddrs, ","), "--slots", fmt.Sprint(slots)}
	p.args = append(p.args, c.cfg.WorkerArgs...)
	c.add(p)
	c.start(p)
	c.WaitWorker(id, "ALIVE")
	return p
}

// WaitWorker waits until the control plane, asked through any live server,
// lists the worker with the given status.
func (c *Cluster) WaitWorker(id, status string) api.Worker {
	c.t.Helper()
	var found api.Worker
	c.waitFor(fmt.Sprintf("worker %s %s", id, status), c.cfg.StartTimeout, func() error {
		if p := c.Proc(id); p != nil && p.Kind == Worker && !p.Alive() {
			return errExited{p}
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		ws, err := c.Client().Workers(ctx)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.ID == id {
				if w.Status != status {
					return fmt.Errorf("worker %s is %s", id, w.Status)
				}
				found = w
				return nil
			}
		}
		return fmt.Errorf("worker %s is not listed", id)
	})
	return found
}

func (c *Cluster) add(p *Proc) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.procs {
		if q.ID == p.ID {
			c.t.Fatalf("start %s: a process with this id exists", p.ID)
		}
	}
	c.procs = append(c.procs, p)
}

// Proc returns the process with the given id, or nil.
func (c *Cluster) Proc(id string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// Servers returns every server, live or killed, in start order.
func (c *Cluster) Servers() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Proc
	for _, p := range c.procs {
		if p.Kind == Server {
			out = append(out, p)
		}
	}
	return out
}

// Alive returns the live servers in start order.
func (c *Cluster) Alive() []*Proc {
	var out []*Proc
	for _, p := range c.Servers() {
		if p.Alive() {
			out = append(out, p)
		}
	}
	return out
}

// Addresses returns the HTTP addresses of the given servers (of every
// server when ids is empty), comma-separated as --address takes them.
func (c *Cluster) Addresses(ids ...string) string {
	var out []string
	for _, p := range c.Servers() {
		if len(ids) == 0 || slices.Contains(ids, p.ID) {
			out = append(out, p.HTTPAddr)
		}
	}
	return strings.Join(out, ",")
}

// Client returns a REST client of the given servers (of the live ones when
// ids is empty).
func (c *Cluster) Client(ids ...string) *client.Client {
	var addrs []string
	if len(ids) == 0 {
		for _, p := range c.Alive() {
			addrs = append(addrs, p.HTTPAddr)
		}
	} else {
		for _, id := range ids {
			if p := c.Proc(id); p != nil {
				addrs = append(addrs, p.HTTPAddr)
			}
		}
	}
	return client.New(addrs)
}

// start runs p once more. The child gets its own process group, so that a
// kill reaches whatever it starts, and its output goes to p.LogPath.
func (c *Cluster) start(p *Proc) {
	c.t.Helper()
	if c.ctx.Err() != nil {
		c.t.Fatalf("start %s: the cluster is closed", p.ID)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("start %s: %v", p.ID, err)
	}
	defer f.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		c.t.Fatalf("start %s: already running as pid %d", p.ID, p.pid)
	}
	p.starts++
	fmt.Fprintf(f, "=== %s start #%d: eddy %s\n", time.Now().Format(time.RFC3339Nano), p.starts, strings.Join(p.args, " "))
	cmd := exec.CommandContext(c.ctx, c.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(childEnv(), c.cfg.Env...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = killWait
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.ID, err)
	}
	done := make(chan struct{})
	p.pid, p.done, p.running, p.state = cmd.Process.Pid, done, true, ""
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.running = false
		if cmd.ProcessState != nil {
			p.state = cmd.ProcessState.String()
		} else {
			p.state = fmt.Sprint(err)
		}
		p.mu.Unlock()
		close(done)
	}()
}

// childEnv is this process's environment without EDDY_ADDRESS, so that only
// explicit --address flags pick the nodes a command talks to. A race-enabled
// binary sleeps a second before a successful exit by default: GORACE turns
// that off, so that a CLI command takes as long as it works.
func childEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "EDDY_ADDRESS=") })
	gorace := os.Getenv("GORACE")
	if !strings.Contains(gorace, "atexit_sleep_ms") {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GORACE=") })
		env = append(env, strings.TrimSpace("GORACE="+gorace+" atexit_sleep_ms=0"))
	}
	return env
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pid, err)
	}
	return nil
}

type errExited struct{ p *Proc }

func (e errExited) Error() string {
	e.p.mu.Lock()
	state := e.p.state
	e.p.mu.Unlock()
	return fmt.Sprintf("%s exited (%s); its log ends with:\n%s", e.p.ID, state, e.p.LogTail(40))
}

// waitFor is WaitFor that stops at once, without waiting out the timeout,
// when f reports that a process exited.
func (c *Cluster) waitFor(what string, timeout time.Duration, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		var ex errExited
		if errors.As(err, &ex) {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: not within %s: %v", what, timeout, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-c.ctx.Done():
			c.t.Fatalf("waiting for %s: the cluster was closed", what)
		}
	}
}

func (c *Cluster) waitServerUp(p *Proc) {
	c.t.Helper()
	c.waitFor(p.ID+" to answer GET /v1/node", c.cfg.StartTimeout, func() error {
		if !p.Alive() {
			return errExited{p}
		}
		n, err := p.Node()
		if err != nil {
			return err
		}
		if n.ID != p.ID {
			return fmt.Errorf("%s answers as node %q: another process has its port", p.HTTPAddr, n.ID)
		}
		return nil
	})
}

// Kill sends SIGKILL to a process's group and waits until it is reaped. Its
// data dir and ports are kept for Restart.
func (c *Cluster) Kill(id string) {
	c.t.Helper()
	p := c.Proc(id)
	if p == nil {
		c.t.Fatalf("kill %s: no such process", id)
	}
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		c.t.Fatalf("kill %s: not running (%s)", id, p.state)
	}
	pid, done := p.pid, p.done
	err := killGroup(pid)
	p.mu.Unlock()
	if err != nil {
		c.t.Fatalf("kill %s: %v", id, err)
	}
	select {
	case <-done:
	case <-time.After(killWait):
		c.t.Fatalf("kill %s: pid %d still not reaped after %s", id, pid, killWait)
	}
}

// Restart starts a killed process again with the same flags, data dir and
// ports, and waits until it is up: a server answers GET /v1/node, a worker is
// listed as ALIVE.
func (c *Cluster) Restart(id string) {
	c.t.Helper()
	p := c.Proc(id)
	if p == nil {
		c.t.Fatalf("restart %s: no such process", id)
	}
	c.start(p)
	if p.Kind == Server {
		c.waitServerUp(p)
	} else {
		c.WaitWorker(id, "ALIVE")
	}
}

// Leader waits until the live servers agree on a live leader that knows it
// leads, and returns it.
func (c *Cluster) Leader() *Proc {
	c.t.Helper()
	var leader *Proc
	c.waitFor("a leader", c.cfg.StartTimeout, func() error {
		var err error
		leader, err = c.leader()
		return err
	})
	return leader
}

// leader returns the leader the live servers agree on, or why there is none.
func (c *Cluster) leader() (*Proc, error) {
	alive := c.Alive()
	if len(alive) == 0 {
		return nil, errors.New("no server is running")
	}
	var id string
	for _, p := range alive {
		cl, err := p.Cluster()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.ID, err)
		}
		switch {
		case cl.LeaderID == "":
			return nil, fmt.Errorf("%s knows no leader", p.ID)
		case id == "":
			id = cl.LeaderID
		case cl.LeaderID != id:
			return nil, fmt.Errorf("servers disagree on the leader: %s and %s", id, cl.LeaderID)
		}
	}
	l := c.Proc(id)
	if l == nil || !l.Alive() {
		return nil, fmt.Errorf("leader %s is not running", id)
	}
	n, err := l.Node()
	if err != nil {
		return nil, fmt.Errorf("leader %s: %w", id, err)
	}
	if n.State != "Leader" {
		return nil, fmt.Errorf("leader %s says it is %s", id, n.State)
	}
	return l, nil
}

// WaitHealthy waits until the cluster has n voters, every live server agrees
// on a live leader and is a leader or follower, and each has applied what the
// leader had applied when asked. It returns the leader.
func (c *Cluster) WaitHealthy(n int) *Proc {
	c.t.Helper()
	var leader *Proc
	c.waitFor(fmt.Sprintf("%d healthy members", n), c.cfg.StartTimeout, func() error {
		l, err := c.leader()
		if err != nil {
			return err
		}
		cl, err := l.Cluster()
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range cl.Members {
			if m.Suffrage == "voter" {
				voters++
			}
		}
		if voters != n || len(cl.Members) != n {
			return fmt.Errorf("%d members, %d voters, want %d voters", len(cl.Members), voters, n)
		}
		ln, err := l.Node()
		if err != nil {
			return err
		}
		for _, p := range c.Alive() {
			node, err := p.Node()
			if err != nil {
				return fmt.Errorf("%s: %w", p.ID, err)
			}
			if node.State != "Leader" && node.State != "Follower" {
				return fmt.Errorf("%s is %s", p.ID, node.State)
			}
			if node.AppliedIndex < ln.AppliedIndex {
				return fmt.Errorf("%s applied up to %d, the leader %d", p.ID, node.AppliedIndex, ln.AppliedIndex)
			}
		}
		leader = l
		return nil
	})
	return leader
}

// Close kills every process, with its process group, and waits for them; it
// then fails the test if a race-enabled process reported a data race, and
// shows the end of each log if the test failed. It runs at the end of the
// test; later calls do nothing.
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	c.cancel()
	for _, p := range procs {
		p.mu.Lock()
		if p.running {
			_ = killGroup(p.pid)
		}
		done, pid := p.done, p.pid
		p.mu.Unlock()
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-time.After(killWait):
			c.t.Errorf("%s: pid %d still not reaped after %s", p.ID, pid, killWait)
		}
	}
	for _, p := range procs {
		if b, err := os.ReadFile(p.LogPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			c.t.Errorf("%s reported a data race; see its log below", p.ID)
		}
	}
	if c.t.Failed() && c.cfg.LogTail > 0 {
		for _, p := range procs {
			c.t.Logf("--- last %d lines of %s (%s) ---\n%s", c.cfg.LogTail, p.ID, p.LogPath, p.LogTail(c.cfg.LogTail))
		}
	}
}

// Result is the outcome of one eddy command.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	// Code is the exit code, or -1 if the command did not exit by itself
	// (it timed out or could not start; see Err).
	Code int
	// Err is an error other than a non-zero exit.
	Err  error
	Took time.Duration
	// Lines are the lines of Stdout and Stderr, in the order they were
	// read, each with when it was read after the command started: the
	// timings of a command that prints its progress.
	Lines []Line
}

// Line is one line a command printed.
type Line struct {
	// At is when the line was read, from the command's start.
	At     time.Duration
	Stderr bool
	Text   string
}

// lineStamper records the lines written to it with the time they arrive.
// The writers of stdout and stderr run in goroutines of their own, so
// they share it under a mutex.
type lineStamper struct {
	mu    sync.Mutex
	start time.Time
	lines []Line
}

// stream returns the writer of one stream: it keeps its bytes in buf and
// stamps each complete line.
func (s *lineStamper) stream(buf *bytes.Buffer, stderr bool) io.Writer {
	var partial []byte
	return writerFunc(func(b []byte) (int, error) {
		now := time.Since(s.start)
		s.mu.Lock()
		defer s.mu.Unlock()
		buf.Write(b)
		partial = append(partial, b...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			s.lines = append(s.lines, Line{At: now, Stderr: stderr, Text: string(partial[:i])})
			partial = partial[i+1:]
		}
		return len(b), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (r Result) String() string {
	s := fmt.Sprintf("eddy %s: exit %d after %s", strings.Join(r.Args, " "), r.Code, r.Took.Round(time.Millisecond))
	if r.Err != nil {
		s += fmt.Sprintf(" (%v)", r.Err)
	}
	return s + fmt.Sprintf("\nstdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
}

// Eddy runs the eddy binary with args, killing it with its process group if
// it has not exited within timeout.
func (c *Cluster) Eddy(timeout time.Duration, args ...string) Result {
	return run(c.bin, timeout, args)
}

// Run runs the eddy binary (built if needed) with args, killing it with its
// process group if it has not exited within timeout.
func Run(t TB, timeout time.Duration, args ...string) Result {
	t.Helper()
	return run(Binary(t), timeout, args)
}

func run(bin string, timeout time.Duration, args []string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	stamp := &lineStamper{start: start}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = stamp.stream(&stdout, false), stamp.stream(&stderr, true)
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = killWait
	err := cmd.Run()
	r := Result{Args: args, Took: time.Since(start), Code: -1}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		r.Err = err
		if ctx.Err() != nil {
			r.Err = fmt.Errorf("no exit within %s: %w", timeout, err)
		}
	}
	stamp.mu.Lock()
	r.Stdout, r.Stderr, r.Lines = stdout.String(), stderr.String(), stamp.lines
	stamp.mu.Unlock()
	return r
}
