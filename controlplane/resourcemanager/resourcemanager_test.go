package resourcemanager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// localRaft applies commands to an FSM directly, one index after another.
type localRaft struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (r *localRaft) Apply(_ context.Context, t fsm.CommandType, msg proto.Message) (uint64, error) {
	data, err := fsm.Encode(t, msg)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	resp := r.f.Apply(&raft.Log{Type: raft.LogCommand, Index: r.index, Data: data}).(*fsm.Response)
	return r.index, resp.Err
}

func (r *localRaft) State() *fsm.State { return r.f.State() }

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestUnreachableUntilNextHeartbeatOfThatInstance(t *testing.T) {
	r := &localRaft{f: fsm.New()}
	clk := &clock{now: time.UnixMilli(1_000_000)}
	var redialed []string
	m := New(r, Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.Now,
		HeartbeatInterval: time.Second, HeartbeatTimeout: 10 * time.Second,
		Reconnect: func(addr string) { redialed = append(redialed, addr) },
	})
	ctx := context.Background()
	for _, w := range []string{"w1", "w2"} {
		if _, err := m.Register(ctx, &eddypb.RegisterWorkerRequest{WorkerId: w, InstanceId: w + "-a", Address: w + ":1", Slots: 2}); err != nil {
			t.Fatal(err)
		}
	}
	redialed = nil
	heartbeat := func(w, instance string) {
		t.Helper()
		resp, err := m.Heartbeat(ctx, &eddypb.HeartbeatRequest{WorkerId: w, InstanceId: instance})
		if err != nil || resp.Reregister {
			t.Fatalf("heartbeat of %s/%s: %v, %v", w, instance, resp, err)
		}
	}
	refused := errors.New("connection refused")

	if !m.Reachable("w1", "w1-a") {
		t.Fatal("a registered worker is unreachable")
	}
	m.MarkUnreachable("w1", "w1-a", refused)
	if m.Reachable("w1", "w1-a") || !m.Reachable("w2", "w2-a") {
		t.Fatal("w1 should be unreachable, w2 reachable")
	}
	// Listed since the first failure, with its cause, while failures go on.
	since := clk.Now()
	clk.advance(10 * time.Millisecond)
	m.MarkUnreachable("w1", "w1-a", refused)
	if u := m.Unreachable(); len(u) != 1 || u[0].WorkerId != "w1" || u[0].InstanceId != "w1-a" || u[0].SinceMs != since.UnixMilli() || u[0].Cause != refused.Error() {
		t.Fatalf("unreachable workers %v, want w1 since %d: %v", u, since.UnixMilli(), refused)
	}
	// A heartbeat of the same moment may have left before the failure.
	heartbeat("w1", "w1-a")
	if m.Reachable("w1", "w1-a") {
		t.Fatal("a heartbeat no later than the failure made w1 reachable")
	}
	// Another worker's heartbeat changes nothing for w1.
	clk.advance(100 * time.Millisecond)
	heartbeat("w2", "w2-a")
	if m.Reachable("w1", "w1-a") || len(redialed) != 0 {
		t.Fatalf("w2's heartbeat made w1 reachable, or redialed %v", redialed)
	}
	heartbeat("w1", "w1-a")
	if !m.Reachable("w1", "w1-a") || len(m.Unreachable()) != 0 {
		t.Fatalf("w1 still unreachable after its next heartbeat: %v", m.Unreachable())
	}
	if len(redialed) != 1 || redialed[0] != "w1:1" {
		t.Fatalf("redialed %v, want w1's address once", redialed)
	}

	// A failure of an instance that is gone, or of a worker that is not
	// known, marks nothing.
	m.MarkUnreachable("w1", "w1-old", refused)
	m.MarkUnreachable("w9", "w9-a", refused)
	if !m.Reachable("w1", "w1-a") || !m.Reachable("w9", "w9-a") {
		t.Fatal("a stale instance's failure made a worker unreachable")
	}

	// A worker that restarts is a new instance: reachable at once.
	m.MarkUnreachable("w1", "w1-a", refused)
	if _, err := m.Register(ctx, &eddypb.RegisterWorkerRequest{WorkerId: "w1", InstanceId: "w1-b", Address: "w1:2", Slots: 2}); err != nil {
		t.Fatal(err)
	}
	if !m.Reachable("w1", "w1-b") {
		t.Fatal("a restarted worker is unreachable")
	}

	// An unreachable worker that stays silent is lost at the timeout, as
	// any silent worker.
	m.MarkUnreachable("w2", "w2-a", refused)
	clk.advance(5 * time.Second)
	heartbeat("w1", "w1-b")
	clk.advance(6 * time.Second)
	m.expire(ctx)
	if w, _ := r.State().Worker("w2"); w.Status != eddypb.WorkerStatus_WORKER_STATUS_LOST {
		t.Fatalf("w2 is %s, want lost", w.Status)
	}
	if w, _ := r.State().Worker("w1"); w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
		t.Fatalf("w1 is %s, want alive", w.Status)
	}
	m.mu.Lock()
	_, kept := m.unreachable[controlplane.WorkerID("w2")]
	m.mu.Unlock()
	if kept {
		t.Error("a lost worker is still listed as unreachable")
	}
}
