package jobmanager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/storage"
)

// Raft is what the JobManager needs of its node. Apply submits a command and
// returns the business error of the FSM, or an error if it was not applied.
type Raft interface {
	Apply(ctx context.Context, t fsm.CommandType, msg proto.Message) (uint64, error)
	State() *fsm.State
	Changed() <-chan struct{}
}

// Config configures a Manager.
type Config struct {
	Logger *slog.Logger
	// Now is the clock used to stamp commands.
	Now func() time.Time
	// DefaultMaxParallelism is used when a job does not set one.
	DefaultMaxParallelism uint32
	// Worker returns a client of the worker at a gRPC address.
	Worker func(addr string) (eddypb.WorkerServiceClient, error)
	// Reachable reports whether tasks may be placed on a worker instance
	// that is alive; nil: on every alive worker.
	Reachable func(id controlplane.WorkerID, instance string) bool
	// Unreachable is told of a worker instance that a call could not
	// reach: refused, or cut off before the worker answered. A worker that
	// answered with an error, or too slowly, is not unreachable.
	Unreachable func(id controlplane.WorkerID, instance string, err error)
	// CheckArtifact verifies that an artifact exists with its hash.
	CheckArtifact func(ctx context.Context, a *eddypb.ArtifactRef) error
	// DeployTimeout bounds the preparation and deployment of one attempt.
	DeployTimeout time.Duration
	// CancelTimeout is how long a cancelled job waits for its tasks to end
	// before it is marked cancelled anyway.
	CancelTimeout time.Duration
	// Checkpoints is the store of checkpoints: a job's checkpoint directory
	// is the job id in it. Nil disables checkpoint coordination.
	Checkpoints storage.Store
	// Savepoints is where savepoints go when a request names no directory:
	// savepoint-<job id>-<checkpoint id>-<random> in it. Nil: a savepoint
	// needs a directory.
	Savepoints storage.Store
	// OpenStorage opens the storage at a URL: savepoint directories, and
	// the savepoints jobs are restored from. Default storage.Open.
	OpenStorage func(ctx context.Context, url string) (storage.Store, error)
}

// DefaultConfig returns the defaults: the system clock and 128 key groups.
func DefaultConfig() Config {
	return Config{Logger: slog.Default(), Now: time.Now, DefaultMaxParallelism: 128}
}

// Manager is the JobManager of one leadership term. Its methods are safe for
// concurrent use.
type Manager struct {
	raft Raft
	cfg  Config
	kick chan struct{}

	mu          sync.Mutex
	deploying   map[controlplane.JobID]bool
	cancelling  map[controlplane.JobID]time.Time // when the cancel was sent to workers
	coords      map[controlplane.JobID]*coordinator
	restartWake map[controlplane.JobID]time.Time // when a restarting job's delay ends
	termCtx     context.Context                  // the leadership term; set by Run
	wg          sync.WaitGroup
}

// New returns a Manager that submits its decisions through r.
func New(r Raft, cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultMaxParallelism == 0 {
		cfg.DefaultMaxParallelism = 128
	}
	if cfg.DeployTimeout == 0 {
		cfg.DeployTimeout = 2 * time.Minute
	}
	if cfg.CancelTimeout == 0 {
		cfg.CancelTimeout = 30 * time.Second
	}
	if cfg.OpenStorage == nil {
		cfg.OpenStorage = storage.Open
	}
	return &Manager{raft: r, cfg: cfg, kick: make(chan struct{}, 1), deploying: map[controlplane.JobID]bool{}, cancelling: map[controlplane.JobID]time.Time{}, coords: map[controlplane.JobID]*coordinator{}, restartWake: map[controlplane.JobID]time.Time{}}
}

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// MaxParallelismLimit is the largest max parallelism (number of key groups)
// a job may ask for, as in Flink.
const MaxParallelismLimit = 32768

// Submit validates spec, gives it an id when it has none, and records it.
func (m *Manager) Submit(ctx context.Context, spec *eddypb.JobSpec) (*eddypb.Job, error) {
	if spec == nil {
		return nil, fmt.Errorf("%w: empty job spec", controlplane.ErrInvalidArgument)
	}
	spec = proto.CloneOf(spec)
	if len(spec.Graph) > 0 {
		if err := m.checkGraph(ctx, spec); err != nil {
			return nil, err
		}
	} else if spec.Restore != nil {
		return nil, fmt.Errorf("%w: a job restored from a savepoint needs a job graph", controlplane.ErrInvalidArgument)
	} else if _, ok := spec.Config[ConfigCheckpointInterval]; ok {
		return nil, fmt.Errorf("%w: %s is set but the job has no job graph", controlplane.ErrInvalidArgument, ConfigCheckpointInterval)
	}
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" {
		return nil, fmt.Errorf("%w: the job needs a name", controlplane.ErrInvalidArgument)
	}
	if spec.JobId == "" {
		spec.JobId = newJobID()
	} else if !jobIDPattern.MatchString(spec.JobId) {
		return nil, fmt.Errorf("%w: job id %q: want 1-64 letters, digits, '_' or '-'", controlplane.ErrInvalidArgument, spec.JobId)
	}
	if spec.Parallelism == 0 {
		spec.Parallelism = 1
	}
	if spec.MaxParallelism == 0 {
		spec.MaxParallelism = max(m.cfg.DefaultMaxParallelism, spec.Parallelism)
	}
	if spec.MaxParallelism > MaxParallelismLimit {
		return nil, fmt.Errorf("%w: max parallelism %d exceeds %d", controlplane.ErrInvalidArgument, spec.MaxParallelism, MaxParallelismLimit)
	}
	if spec.Parallelism > spec.MaxParallelism {
		return nil, fmt.Errorf("%w: parallelism %d exceeds max parallelism %d", controlplane.ErrInvalidArgument, spec.Parallelism, spec.MaxParallelism)
	}
	if _, err := m.raft.Apply(ctx, fsm.CmdSubmitJob, &eddypb.SubmitJobCommand{Spec: spec, AtMs: m.cfg.Now().UnixMilli()}); err != nil {
		return nil, err
	}
	m.Kick()
	j, ok := m.raft.State().Job(controlplane.JobID(spec.JobId))
	if !ok {
		return nil, fmt.Errorf("job %s vanished after submit", spec.JobId)
	}
	m.cfg.Logger.Info("job submitted", "job_id", spec.JobId, "name", spec.Name, "parallelism", spec.Parallelism)
	return j, nil
}

// Cancel moves a job that has not ended to CANCELED and releases its slots.
func (m *Manager) Cancel(ctx context.Context, id controlplane.JobID) (*eddypb.Job, error) {
	j, ok := m.raft.State().Job(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if fsm.Terminal(j.Status) {
		return nil, fmt.Errorf("%w: job %s is %s", controlplane.ErrJobNotCancellable, id, StatusName(j.Status))
	}
	// A job with deployed tasks stops them first; one without ends now.
	target := eddypb.JobStatus_JOB_STATUS_CANCELED
	if len(j.Spec.Graph) > 0 && j.Status != eddypb.JobStatus_JOB_STATUS_RESTARTING && (j.Attempt > 0 || j.Status == eddypb.JobStatus_JOB_STATUS_SCHEDULED) {
		// Tasks may run, or be deploying: stop them first.
		target = eddypb.JobStatus_JOB_STATUS_CANCELLING
	}
	_, err := m.raft.Apply(ctx, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
		JobId:    string(id),
		Status:   target,
		Reason:   "cancelled by request",
		AtMs:     m.cfg.Now().UnixMilli(),
		Expected: nonTerminal,
	})
	if errors.Is(err, fsm.ErrStatusMismatch) {
		cur, _ := m.raft.State().Job(id)
		return nil, fmt.Errorf("%w: job %s is %s", controlplane.ErrJobNotCancellable, id, StatusName(cur.GetStatus()))
	}
	if err != nil {
		return nil, err
	}
	m.Kick()
	j, _ = m.raft.State().Job(id)
	m.cfg.Logger.Info("job cancelled", "job_id", id)
	return j, nil
}

var nonTerminal = func() []eddypb.JobStatus {
	var out []eddypb.JobStatus
	for v := range eddypb.JobStatus_name {
		st := eddypb.JobStatus(v)
		if st != eddypb.JobStatus_JOB_STATUS_UNSPECIFIED && !fsm.Terminal(st) {
			out = append(out, st)
		}
	}
	return out
}()

// StatusName returns the Flink-style name of a job status ("RUNNING").
func StatusName(st eddypb.JobStatus) string {
	return strings.TrimPrefix(st.String(), "JOB_STATUS_")
}

// Kick asks the scheduling loop to run soon.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run schedules waiting jobs whenever the state changes, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.termCtx = ctx
	m.mu.Unlock()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	defer m.wg.Wait()
	for {
		changed := m.raft.Changed()
		m.schedule(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-m.kick:
		case <-t.C:
		}
	}
}

type slotRef struct {
	worker string
	slot   uint32
}

// freeSlots lists the unassigned slots of alive workers, interleaved across
// workers so that a job's tasks spread over the cluster. The free slots of
// a worker that reachable refuses are left out and counted in skipped.
func freeSlots(st *fsm.State, reachable func(*eddypb.Worker) bool) (free []slotRef, total, skipped int) {
	used := map[slotRef]bool{}
	for _, a := range st.AllAssignments() {
		used[slotRef{a.WorkerId, a.Slot}] = true
	}
	var perWorker [][]slotRef
	for _, w := range st.Workers() {
		if w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
			continue
		}
		total += int(w.Slots)
		var ws []slotRef
		for i := range w.Slots {
			if r := (slotRef{w.Id, i}); !used[r] {
				ws = append(ws, r)
			}
		}
		if reachable != nil && !reachable(w) {
			skipped += len(ws)
			continue
		}
		perWorker = append(perWorker, ws)
	}
	for i := 0; ; i++ {
		added := false
		for _, ws := range perWorker {
			if i < len(ws) {
				free = append(free, ws[i])
				added = true
			}
		}
		if !added {
			return free, total, skipped
		}
	}
}

// reachable reports whether the scheduler may use a worker's slots.
func (m *Manager) reachable(w *eddypb.Worker) bool {
	return m.cfg.Reachable == nil || m.cfg.Reachable(controlplane.WorkerID(w.Id), w.InstanceId)
}

func (m *Manager) schedule(ctx context.Context) {
	st := m.raft.State()
	free, total, skipped := freeSlots(st, m.reachable)
	for _, j := range st.Jobs() {
		if ctx.Err() != nil {
			return
		}
		m.track(ctx, st, j)
		if j.Status == eddypb.JobStatus_JOB_STATUS_RESTARTING && !m.restartDue(j) {
			continue
		}
		if j.Status != eddypb.JobStatus_JOB_STATUS_CREATED && j.Status != eddypb.JobStatus_JOB_STATUS_RESTARTING {
			continue
		}
		need := int(max(j.Spec.Parallelism, 1))
		if need > len(free) {
			reason := fmt.Sprintf("waiting for %d free slots: %d of %d free", need, len(free), total)
			if skipped > 0 {
				reason += fmt.Sprintf(" (%d more on unreachable workers)", skipped)
			}
			if j.StatusReason == reason {
				continue
			}
			_, err := m.raft.Apply(ctx, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
				JobId: j.Spec.JobId, Status: j.Status, Reason: reason, AtMs: m.cfg.Now().UnixMilli(),
				Expected: []eddypb.JobStatus{j.Status},
			})
			if err != nil && !errors.Is(err, fsm.ErrStatusMismatch) {
				m.cfg.Logger.Warn("record scheduling wait", "job_id", j.Spec.JobId, "error", err)
			}
			continue
		}
		as := make([]*eddypb.SlotAssignment, need)
		for i := range need {
			as[i] = &eddypb.SlotAssignment{
				JobId: j.Spec.JobId, WorkerId: free[i].worker, Slot: free[i].slot,
				Task: fmt.Sprintf("%d", i), Attempt: j.Attempt + 1,
			}
		}
		if _, err := m.raft.Apply(ctx, fsm.CmdAssignSlots, &eddypb.AssignSlotsCommand{
			JobId: j.Spec.JobId, Assignments: as, AtMs: m.cfg.Now().UnixMilli(),
		}); err != nil {
			m.cfg.Logger.Warn("assign slots", "job_id", j.Spec.JobId, "error", err)
			return
		}
		m.cfg.Logger.Info("job scheduled", "job_id", j.Spec.JobId, "slots", need)
		free = free[need:]
	}
}

func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
