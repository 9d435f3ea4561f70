package resourcemanager

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
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
}

// MaxSlots bounds the slots one worker may offer.
const MaxSlots = 1024

// Manager is the ResourceManager of one leadership term. Its methods are
// safe for concurrent use.
type Manager struct {
	raft  Raft
	cfg   Config
	start time.Time

	mu       sync.Mutex
	lastSeen map[controlplane.WorkerID]seen
}

type seen struct {
	instance string
	at       time.Time
}

// New returns a Manager whose term starts now.
func New(r Raft, cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{raft: r, cfg: cfg, start: cfg.Now(), lastSeen: map[controlplane.WorkerID]seen{}}
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
	m.mu.Lock()
	m.lastSeen[controlplane.WorkerID(req.WorkerId)] = seen{req.InstanceId, now}
	m.mu.Unlock()
	m.cfg.Logger.Info("worker registered", "worker_id", req.WorkerId, "instance_id", req.InstanceId, "slots", req.Slots, "address", req.Address)
	return &eddypb.RegisterWorkerResponse{
		HeartbeatIntervalMs: m.cfg.HeartbeatInterval.Milliseconds(),
		HeartbeatTimeoutMs:  m.cfg.HeartbeatTimeout.Milliseconds(),
	}, nil
}

// Heartbeat records that a worker instance is alive, or tells it to
// register again when the control plane does not know it as alive.
func (m *Manager) Heartbeat(_ context.Context, req *eddypb.HeartbeatRequest) (*eddypb.HeartbeatResponse, error) {
	id := controlplane.WorkerID(req.GetWorkerId())
	w, ok := m.raft.State().Worker(id)
	if !ok || w.InstanceId != req.InstanceId || w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
		return &eddypb.HeartbeatResponse{Reregister: true}, nil
	}
	m.mu.Lock()
	m.lastSeen[id] = seen{req.InstanceId, m.cfg.Now()}
	m.mu.Unlock()
	return &eddypb.HeartbeatResponse{Cancel: m.orphans(req.Tasks)}, nil
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
		m.cfg.Logger.Warn("worker lost: no heartbeat", "worker_id", w.Id, "instance_id", w.InstanceId, "silent_for", now.Sub(last).Round(time.Millisecond).String())
	}
}
