package netx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// process is one Exchange standing for one plugin process.
type process struct {
	x    *Exchange
	addr string
	lis  *trackingListener
}

// startProcess starts an Exchange on 127.0.0.1:0 that finds tasks in pl.
func startProcess(t testing.TB, pl *placement, mods ...func(*Config)) *process {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &trackingListener{Listener: lis}
	cfg := DefaultConfig()
	cfg.Listener = tl
	cfg.Self = lis.Addr().String()
	cfg.Placement = pl.lookup
	cfg.Logger = testLogger(t)
	for _, m := range mods {
		m(&cfg)
	}
	x, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.Self, err)
		}
	})
	return &process{x: x, addr: cfg.Self, lis: tl}
}

// placement maps (chain, subtask) to a data address, for every job.
type placement struct {
	mu sync.Mutex
	at map[[2]int]string
}

func newPlacement() *placement { return &placement{at: map[[2]int]string{}} }

func (p *placement) set(chain, subtask int, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at[[2]int{chain, subtask}] = addr
}

func (p *placement) lookup(k engine.TaskKey) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.at[[2]int{k.Chain, k.Subtask}]
	return a, ok
}

// trackingListener remembers the connections it accepted, so that a test
// can cut them the way a crashing process would, with no goodbye.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) crash() {
	_ = l.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}

// freezer dials connections that it can freeze all at once, like a network
// partition: writes vanish and nothing more is read, but no connection
// closes until its owner gives up on it.
type freezer struct{ frozen atomic.Bool }

func (f *freezer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &frozenConn{Conn: c, f: f}, nil
}

type frozenConn struct {
	net.Conn
	f *freezer
}

func (c *frozenConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err != nil || !c.f.frozen.Load() {
			return n, err
		}
	}
}

func (c *frozenConn) Write(p []byte) (int, error) {
	if c.f.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// testLogger writes to t.Log, so that a failing test shows its logs.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// waitFor polls f until it returns nil, and fails with its last error after
// timeout.
func waitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rec is a test record: which source subtask emitted it, and its sequence
// number there, which is also its event time.
type rec struct{ Src, Seq uint64 }

const recSize = 16

type recCodec struct{}

func (recCodec) Append(dst []byte, r rec) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.Src)
	return binary.LittleEndian.AppendUint64(dst, r.Seq)
}

func (recCodec) Decode(src []byte) (rec, int, error) {
	if len(src) < recSize {
		return rec{}, 0, errors.New("short record")
	}
	return rec{Src: binary.LittleEndian.Uint64(src), Seq: binary.LittleEndian.Uint64(src[8:])}, recSize, nil
}

// blobCodec encodes a byte slice with a length prefix.
type blobCodec struct{}

func (blobCodec) Append(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func (blobCodec) Decode(src []byte) ([]byte, int, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || uint64(len(src)-k) < n {
		return nil, 0, errors.New("short blob")
	}
	return append([]byte(nil), src[k:k+int(n)]...), k + int(n), nil
}

// sinkOutput adapts funcs to an engine.Output.
type sinkOutput[T any] struct {
	process   func(T) error
	watermark func(int64) error
	end       func() error
}

func (s sinkOutput[T]) Process(v T, _ int64) error { return s.process(v) }

func (s sinkOutput[T]) Watermark(ts int64) error {
	if s.watermark == nil {
		return nil
	}
	return s.watermark(ts)
}

func (s sinkOutput[T]) End() error {
	if s.end == nil {
		return nil
	}
	return s.end()
}

// sinkVertex returns a vertex that reads from `from` over an edge of the
// given partitioning and feeds out(subtask).
func sinkVertex[T any](id int, from *engine.Vertex, p pluginpb.Partitioning, par int, out func(subtask int) engine.Output[T]) *engine.Vertex {
	return &engine.Vertex{
		ID: id, Name: "sink", Kind: "sink", Parallelism: par,
		Inputs: []engine.Edge{{From: from, Partitioning: p}},
		Build: func(tc *engine.TaskContext, _ any) (*engine.Operator, error) {
			return &engine.Operator{Inputs: []any{out(tc.Subtask)}}, nil
		},
	}
}

// job places the tasks of a plan and runs every process's share with an
// engine.Executor, as the plugin of each process would.
type job struct {
	plan  *engine.Plan
	id    string
	pl    *placement
	tasks map[*process][]engine.TaskKey
}

func newJob(plan *engine.Plan, id string, pl *placement, where func(chain, subtask int) *process) *job {
	j := &job{plan: plan, id: id, pl: pl, tasks: map[*process][]engine.TaskKey{}}
	for _, c := range plan.Chains {
		for s := range c.Parallelism {
			p := where(c.ID, s)
			if p == nil {
				continue
			}
			pl.set(c.ID, s, p.addr)
			j.tasks[p] = append(j.tasks[p], engine.TaskKey{JobID: id, Attempt: 1, Chain: c.ID, Subtask: s})
		}
	}
	return j
}

// start runs the job's tasks; the returned func waits for them all.
func (j *job) start(ctx context.Context) (wait func() error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for p, tasks := range j.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := &engine.Executor{Plan: j.plan, JobID: j.id, Attempt: 1, Exchange: p.x}
			if err := x.Run(ctx, tasks); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("process %s: %w", p.addr, err))
				mu.Unlock()
			}
		}()
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}
