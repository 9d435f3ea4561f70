package resourcemanager

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// Raft is what the ResourceManager needs of its node.
type Raft interface {
	Apply(ctx context.Context, t fsm.CommandType, msg proto.Message) (uint64, error)
	State() *fsm.State
}

// Config configures a Manager.
type Config struct {
	Logger            *slog.Logger
	Now               func() time.Time
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// Reconnect, when set, is called with a worker's address when the
	// worker registers, or heartbeats after the leader could not connect
	// to it: the worker is up, so the leader's connection to it should
	// dial again now rather than wait out its backoff.
	Reconnect func(addr string)
}

// MaxSlots bounds the slots one worker may offer.
const MaxSlots = 1024

// Manager is the ResourceManager of one leadership term. Its methods are
// safe for concurrent use.
type Manager struct {
	raft  Raft
	cfg   Config
	start time.Time

	mu          sync.Mutex
	lastSeen    map[controlplane.WorkerID]seen
	unreachable map[controlplane.WorkerID]seen // when the leader last failed to connect
}

type seen struct {
	instance string
	at       time.Time
	// For an unreachable worker: why, and the first failed call since it
	// was last reachable.
	cause string
	since time.Time
}

// New returns a Manager whose term starts now.
func New(r Raft, cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{raft: r, cfg: cfg, start: cfg.Now(), lastSeen: map[controlplane.WorkerID]seen{}, unreachable: map[controlplane.WorkerID]seen{}}
}

var workerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Register records a worker instance and its slots; a worker that restarted
// registers again with a new instance id.
func (m *Manager) Register(ctx context.Context, req *eddypb.RegisterWorkerRequest) (*eddypb.RegisterWorkerResponse, error) {
	switch {
	case !workerIDPattern.MatchString(req.GetWorkerId()):
		return nil, fmt.Errorf("%w: worker id %q: want 1-64 letters, digits, '.', '_' or '-'", controlplane.ErrInvalidArgument, req.GetWorkerId())
	case req.Slots == 0 || req.Slots > MaxSlots:
		return nil, fmt.Errorf("%w: worker %s offers %d slots, want 1 to %d", controlplane.ErrInvalidArgument, req.WorkerId, req.Slots, MaxSlots)
	case req.InstanceId == "":
		return nil, fmt.Errorf("%w: worker %s has no instance id", controlplane.ErrInvalidArgument, req.WorkerId)
	}
	now := m.cfg.Now()
	if _, err := m.raft.Apply(ctx, fsm.CmdRegisterWorker, &eddypb.RegisterWorkerCommand{
		Worker: &eddypb.Worker{Id: req.WorkerId, Address: req.Address, Slots: req.Slots, InstanceId: req.InstanceId},
		AtMs:   now.UnixMilli(),
	}); err != nil {
		return nil, err
	}
	if m.cfg.Reconnect != nil {
		m.cfg.Reconnect(req.Address)
	}
	m.mu.Lock()
	m.lastSeen[controlplane.WorkerID(req.WorkerId)] = seen{instance: req.InstanceId, at: now}
	if u, ok := m.unreachable[controlplane.WorkerID(req.WorkerId)]; ok && u.instance != req.InstanceId {
		delete(m.unreachable, controlplane.WorkerID(req.WorkerId))
	}
	m.mu.Unlock()
	m.cfg.Logger.Info("worker registered", "worker_id", req.WorkerId, "instance_id", req.InstanceId, "slots", req.Slots, "address", req.Address)
	return &eddypb.RegisterWorkerResponse{
		HeartbeatIntervalMs: m.cfg.HeartbeatInterval.Milliseconds(),
		HeartbeatTimeoutMs:  m.cfg.HeartbeatTimeout.Milliseconds(),
	}, nil
}

// Heartbeat records that a worker instance is alive, or tells it to
// register again when the control plane does not know it as alive.
//
// A heartbeat also makes a worker instance that the leader could not
// connect to reachable again, when it arrives after that failure: the
// worker is up, and so is the network between the two.
func (m *Manager) Heartbeat(_ context.Context, req *eddypb.HeartbeatRequest) (*eddypb.HeartbeatResponse, error) {
	now := m.cfg.Now()
	id := controlplane.WorkerID(req.GetWorkerId())
	w, ok := m.raft.State().Worker(id)
	if !ok || w.InstanceId != req.InstanceId || w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
		return &eddypb.HeartbeatResponse{Reregister: true}, nil
	}
	m.mu.Lock()
	m.lastSeen[id] = seen{instance: req.InstanceId, at: now}
	u, wasUnreachable := m.unreachable[id]
	m.mu.Unlock()
	recovered := wasUnreachable && u.instance == req.InstanceId && now.After(u.at)
	if recovered {
		// Redial first, so that the scheduler, once it sees the worker
		// reachable, does not meet the failed connection again.
		if m.cfg.Reconnect != nil {
			m.cfg.Reconnect(w.Address)
		}
		m.mu.Lock()
		if cur, ok := m.unreachable[id]; ok && cur.instance == u.instance && cur.at.Equal(u.at) {
			delete(m.unreachable, id)
		}
		m.mu.Unlock()
		m.cfg.Logger.Info("worker reachable again: heartbeat after a failed connection", "worker_id", id, "instance_id", req.InstanceId, "unreachable_for", now.Sub(u.at).Round(time.Millisecond).String())
	}
	return &eddypb.HeartbeatResponse{Cancel: m.orphans(req.Tasks)}, nil
}

// MarkUnreachable records that the leader could not connect to a worker
// instance: a call to it failed before reaching it (refused, reset, no
// route). Until a heartbeat of that instance arrives after now, or the
// heartbeat timeout marks the worker lost, Reachable reports false and the
// scheduler leaves its slots alone, so that a job's next attempt does not
// go to a worker that is probably dead. It is leader memory, like the
// heartbeats: a new leader starts with every worker reachable.
func (m *Manager) MarkUnreachable(id controlplane.WorkerID, instance string, cause error) {
	w, ok := m.raft.State().Worker(id)
	if !ok || w.InstanceId != instance || w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
		return
	}
	now := m.cfg.Now()
	m.mu.Lock()
	prev, already := m.unreachable[id]
	since := now
	if already && prev.instance == instance {
		since = prev.since
	}
	m.unreachable[id] = seen{instance: instance, at: now, cause: cause.Error(), since: since}
	m.mu.Unlock()
	if !already {
		m.cfg.Logger.Warn("worker unreachable: its slots are skipped until its next heartbeat", "worker_id", id, "instance_id", instance, "error", cause)
	}
}

// Unreachable lists the alive workers the scheduler skips, oldest first.
func (m *Manager) Unreachable() []*eddypb.UnreachableWorker {
	st := m.raft.State()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*eddypb.UnreachableWorker
	for id, u := range m.unreachable {
		if w, ok := st.Worker(id); !ok || w.InstanceId != u.instance || w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
			continue
		}
		out = append(out, &eddypb.UnreachableWorker{WorkerId: string(id), InstanceId: u.instance, SinceMs: u.since.UnixMilli(), Cause: u.cause})
	}
	slices.SortFunc(out, func(a, b *eddypb.UnreachableWorker) int {
		return cmp.Or(cmp.Compare(a.SinceMs, b.SinceMs), cmp.Compare(a.WorkerId, b.WorkerId))
	})
	return out
}

// Reachable reports whether the scheduler may place tasks on a worker
// instance: false from a failed connection to it until its next heartbeat.
func (m *Manager) Reachable(id controlplane.WorkerID, instance string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.unreachable[id]
	return !ok || u.instance != instance
}

// orphans returns the job attempts a worker still runs tasks of that the
// control plane no longer wants: the job ended, or a newer attempt runs. A
// cancel that did not reach the worker is caught up with this way.
func (m *Manager) orphans(tasks []*eddypb.TaskStatus) []*eddypb.CancelTasksRequest {
	st := m.raft.State()
	type attempt struct {
		job string
		n   uint64
	}
	done := map[attempt]bool{}
	var out []*eddypb.CancelTasksRequest
	for _, t := range tasks {
		a := attempt{t.JobId, t.Attempt}
		if done[a] {
			continue
		}
		j, ok := st.Job(controlplane.JobID(t.JobId))
		if ok && !fsm.Terminal(j.Status) && j.Attempt == t.Attempt {
			continue
		}
		done[a] = true
		out = append(out, &eddypb.CancelTasksRequest{JobId: t.JobId, Attempt: t.Attempt})
	}
	return out
}

// Run marks silent workers lost until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(max(m.cfg.HeartbeatInterval/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.expire(ctx)
		}
	}
}

func (m *Manager) expire(ctx context.Context) {
	now := m.cfg.Now()
	for _, w := range m.raft.State().Workers() {
		if w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
			continue
		}
		id := controlplane.WorkerID(w.Id)
		m.mu.Lock()
		s, ok := m.lastSeen[id]
		m.mu.Unlock()
		last := m.start
		if ok && s.instance == w.InstanceId {
			last = s.at
		}
		if now.Sub(last) <= m.cfg.HeartbeatTimeout {
			continue
		}
		if _, err := m.raft.Apply(ctx, fsm.CmdUpdateWorkerStatus, &eddypb.UpdateWorkerStatusCommand{
			WorkerId: w.Id, Status: eddypb.WorkerStatus_WORKER_STATUS_LOST, InstanceId: w.InstanceId, AtMs: now.UnixMilli(),
		}); err != nil {
			m.cfg.Logger.Warn("mark worker lost", "worker_id", w.Id, "error", err)
			continue
		}
		m.mu.Lock()
		delete(m.unreachable, id)
		m.mu.Unlock()
		m.cfg.Logger.Warn("worker lost: no heartbeat", "worker_id", w.Id, "instance_id", w.InstanceId, "silent_for", now.Sub(last).Round(time.Millisecond).String())
	}
}
