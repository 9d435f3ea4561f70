package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/plugin-sdk/handshake"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/netx"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// servingPlugin reports whether a worker launched this process as a plugin:
// go-plugin sets the handshake's magic cookie in the environment.
func servingPlugin() bool {
	return os.Getenv(handshake.Config.MagicCookieKey) == handshake.Config.MagicCookieValue
}

// builtinSlogDefault is slog's default logger as the process started: the
// SDK's package initialisation runs before the job's.
var builtinSlogDefault = slog.Default()

// servePlugin serves the worker's plugin protocol until the worker stops it.
func servePlugin(job *Job) error {
	// The logger keeps the process's real stderr: Serve redirects os.Stderr
	// to go-plugin's stdio stream afterwards, while the worker reads JSON log
	// lines from the real stderr and logs them at their level.
	stderr := &lockedWriter{w: os.Stderr} // one line at a time from both loggers
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "eddy-job",
		Output:     stderr,
		JSONFormat: true,
		Level:      hclog.Info,
	})
	slogger := slog.New(pluginLogHandler(stderr, slog.LevelInfo))
	// The job's own logs (slog's and the log package's default loggers)
	// reach the worker at their level too, unless the job chose a logger.
	if slog.Default() == builtinSlogDefault {
		slog.SetDefault(slogger)
	}
	x := newTaskExecutor(job, log, slogger)
	defer x.shutdown()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake.Config,
		Plugins:         handshake.Plugins(x),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          log,
	})
	return nil
}

// taskExecutor is the job's pluginpb.TaskExecutorServer: the worker prepares
// it once (it starts listening for data from its peers), deploys the tasks
// of an attempt of the job onto it, cancels them, and follows their states
// on the Events stream. It is safe for concurrent use.
type taskExecutor struct {
	pluginpb.UnimplementedTaskExecutorServer

	job    *Job
	log    hclog.Logger
	slog   *slog.Logger // for the parts of the runtime that log with slog
	events *eventLog

	// newExchange is the seam through which Prepare builds the data exchange.
	newExchange func(exchangeConfig) (exchange, error)

	mu       sync.Mutex
	prepared *preparedJob
	runs     map[uint64]*attemptRun // by attempt of the prepared job
	closed   bool

	placeMu   sync.RWMutex
	placement map[engine.TaskKey]string // data address of every task deployed so far
}

// preparedJob is what Prepare set up: the data listener and the exchange.
type preparedJob struct {
	jobID string
	addr  string
	x     exchange
}

// attemptRun is one deployed attempt of the job.
type attemptRun struct {
	cancel   context.CancelFunc
	done     chan struct{}
	x        *engine.Executor
	writer   *stateWriter
	restorer *restorer // nil when the attempt starts empty
}

func newTaskExecutor(job *Job, log hclog.Logger, slogger *slog.Logger) *taskExecutor {
	return &taskExecutor{
		job:         job,
		log:         log,
		slog:        slogger,
		events:      newEventLog(),
		newExchange: newNetworkExchange,
		runs:        map[uint64]*attemptRun{},
		placement:   map[engine.TaskKey]string{},
	}
}

// parallelismOf is the default parallelism of a request; 0 means 1, as in
// Describe.
func parallelismOf(p uint32) int {
	if p < 1 {
		return 1
	}
	return int(p)
}

// Describe returns the job graph planned at the requested parallelism.
func (s *taskExecutor) Describe(_ context.Context, req *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	p := parallelismOf(req.GetParallelism())
	plan, err := s.job.plan(p)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "describe job %s at parallelism %d: %v", s.job.name, p, err)
	}
	return &pluginpb.DescribeResponse{Graph: s.job.graph(plan)}, nil
}

// Prepare starts listening for data from the job's other plugin processes.
// Preparing again for the same job returns the same address. With
// validate_restore it first checks that the job at the request's
// parallelism can restore the request's savepoint, and refuses with
// InvalidArgument, saying what does not fit and where, when it cannot.
func (s *taskExecutor) Prepare(ctx context.Context, req *pluginpb.PrepareRequest) (*pluginpb.PrepareResponse, error) {
	if req.GetJobId() == "" {
		return nil, status.Error(codes.InvalidArgument, "prepare: job id is required")
	}
	host := req.GetDataHost()
	if host == "" {
		host = "127.0.0.1"
	}
	if req.GetValidateRestore() && !s.isPrepared(req.GetJobId()) {
		// Outside the lock: reading the savepoint's state takes a while.
		p := parallelismOf(req.GetParallelism())
		start := time.Now()
		if err := s.validateRestore(ctx, req.GetJobId(), req.GetRestore(), p); err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			s.log.Warn("restore refused", "job_id", req.GetJobId(), "restore", req.GetRestore().GetUrl(), "parallelism", p, "error", err)
			return nil, status.Errorf(codes.InvalidArgument, "job %s: %v", req.GetJobId(), err)
		}
		s.log.Info("restore validated", "job_id", req.GetJobId(), "restore", req.GetRestore().GetUrl(), "parallelism", p,
			"took", time.Since(start))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, status.Error(codes.Unavailable, "prepare: the plugin is shutting down")
	}
	if p := s.prepared; p != nil {
		if p.jobID != req.GetJobId() {
			return nil, status.Errorf(codes.FailedPrecondition, "prepare job %s: this plugin process is prepared for job %s", req.GetJobId(), p.jobID)
		}
		return &pluginpb.PrepareResponse{DataAddr: p.addr, SdkVersion: Version}, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "prepare job %s: listen for data on %s: %v", req.GetJobId(), host, err)
	}
	// Peers reach this process by the host the worker gave, not by the
	// address the socket is bound to (which may be a wildcard).
	addr := net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	x, err := s.newExchange(exchangeConfig{listener: ln, self: addr, placement: s.placementOf, log: s.slog.With("job_id", req.GetJobId())})
	if err != nil {
		_ = ln.Close()
		return nil, status.Errorf(codes.Internal, "prepare job %s: data exchange: %v", req.GetJobId(), err)
	}
	s.prepared = &preparedJob{jobID: req.GetJobId(), addr: addr, x: x}
	s.log.Info("prepared", "job_id", req.GetJobId(), "data_addr", addr, "sdk_version", Version)
	return &pluginpb.PrepareResponse{DataAddr: addr, SdkVersion: Version}, nil
}

// isPrepared reports whether Prepare already succeeded for job jobID.
func (s *taskExecutor) isPrepared(jobID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prepared != nil && s.prepared.jobID == jobID
}

// placementOf tells the exchange where a task runs.
func (s *taskExecutor) placementOf(k engine.TaskKey) (string, bool) {
	s.placeMu.RLock()
	defer s.placeMu.RUnlock()
	addr, ok := s.placement[k]
	return addr, ok
}

// Deploy plans the job at the request's parallelism and runs the requested
// tasks in the background; their states follow on the Events stream. An
// attempt is deployed at most once per plugin process.
func (s *taskExecutor) Deploy(_ context.Context, req *pluginpb.DeployRequest) (*pluginpb.DeployResponse, error) {
	jobID, attempt := req.GetJobId(), req.GetAttempt()
	p := parallelismOf(req.GetParallelism())
	plan, err := s.job.plan(p)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "deploy job %s attempt %d: plan at parallelism %d: %v", jobID, attempt, p, err)
	}
	inPlan := func(chain, subtask uint32) error {
		if int(chain) >= len(plan.Chains) {
			return fmt.Errorf("no chain %d (the job has %d)", chain, len(plan.Chains))
		}
		if c := plan.Chains[chain]; int(subtask) >= c.Parallelism {
			return fmt.Errorf("chain %d (%s) has parallelism %d, no subtask %d", chain, c.Name(), c.Parallelism, subtask)
		}
		return nil
	}
	if len(req.GetTasks()) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "deploy job %s attempt %d: no tasks", jobID, attempt)
	}
	keys := make([]engine.TaskKey, 0, len(req.GetTasks()))
	seen := map[engine.TaskKey]bool{}
	for _, t := range req.GetTasks() {
		if (t.GetJobId() != "" && t.GetJobId() != jobID) || (t.GetAttempt() != 0 && t.GetAttempt() != attempt) {
			return nil, status.Errorf(codes.InvalidArgument, "deploy job %s attempt %d: task of job %s attempt %d", jobID, attempt, t.GetJobId(), t.GetAttempt())
		}
		if err := inPlan(t.GetChain(), t.GetSubtask()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "deploy job %s attempt %d: %v", jobID, attempt, err)
		}
		k := engine.TaskKey{JobID: jobID, Attempt: attempt, Chain: int(t.GetChain()), Subtask: int(t.GetSubtask())}
		if seen[k] {
			return nil, status.Errorf(codes.InvalidArgument, "deploy job %s attempt %d: task %s listed twice", jobID, attempt, k)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	placement := map[engine.TaskKey]string{}
	for _, pl := range req.GetPlacement() {
		if err := inPlan(pl.GetChain(), pl.GetSubtask()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "deploy job %s attempt %d: placement: %v", jobID, attempt, err)
		}
		placement[engine.TaskKey{JobID: jobID, Attempt: attempt, Chain: int(pl.GetChain()), Subtask: int(pl.GetSubtask())}] = pl.GetDataAddr()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch prep := s.prepared; {
	case s.closed:
		return nil, status.Error(codes.Unavailable, "deploy: the plugin is shutting down")
	case prep == nil:
		return nil, status.Errorf(codes.FailedPrecondition, "deploy job %s attempt %d: the plugin is not prepared (call Prepare first)", jobID, attempt)
	case prep.jobID != jobID:
		return nil, status.Errorf(codes.FailedPrecondition, "deploy job %s attempt %d: this plugin process is prepared for job %s", jobID, attempt, prep.jobID)
	case s.runs[attempt] != nil:
		return nil, status.Errorf(codes.AlreadyExists, "deploy job %s attempt %d: the attempt is already deployed in this plugin process", jobID, attempt)
	}
	// The tasks deployed here run here, whatever the placement says.
	for _, k := range keys {
		placement[k] = s.prepared.addr
	}
	s.placeMu.Lock()
	for k, addr := range placement {
		s.placement[k] = addr
	}
	s.placeMu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	run := &attemptRun{cancel: cancel, done: make(chan struct{})}
	s.runs[attempt] = run
	// The state of the attempt's checkpoints goes to storage from the
	// writer's goroutines; storage is opened there, so that a store that
	// cannot be reached fails checkpoints, not the deployment.
	run.writer = newStateWriter(ctx, req.GetCheckpoints(), len(keys), s.events.addAck)
	if spec := req.GetRestore(); spec.GetUrl() != "" {
		run.restorer = newRestorer(ctx, spec, plan, jobID, attempt, keys)
	}
	x := &engine.Executor{Plan: plan, JobID: jobID, Attempt: attempt, Exchange: s.prepared.x,
		OnState: func(k engine.TaskKey, st engine.TaskState, err error) {
			s.onState(k, st, err, st == engine.TaskFailed && run.restorer.restoreFailed(k, err))
		},
		Checkpointing:    req.GetCheckpoints() != "",
		AllowNonRestored: req.GetRestore().GetAllowNonRestoredState(),
		OnSnapshot:       run.writer.onSnapshot,
		OnDecline:        run.writer.onDecline,
	}
	if run.restorer != nil {
		x.Restore = run.restorer.restore
	}
	run.x = x
	s.log.Info("deploying", "job_id", jobID, "attempt", attempt, "tasks", len(keys), "parallelism", p,
		"checkpoints", req.GetCheckpoints(), "restore", req.GetRestore().GetUrl())
	go func() {
		defer close(run.done)
		defer cancel()
		err := x.Run(ctx, keys)
		run.writer.close()
		// The executor refuses some tasks before it runs any of them: a
		// task must never be left without a final state.
		cause := "the executor ended without running the task"
		if err != nil {
			cause = err.Error()
		}
		for _, k := range keys {
			if st, ok := s.events.state(k); !ok || !terminal(st) {
				s.onState(k, engine.TaskFailed, errors.New(cause), run.restorer.restoreFailed(k, nil))
			}
		}
		// Everything the tasks printed is in the pipe before this line.
		fmt.Fprintln(os.Stdout, handshake.OutputEnd)
		switch {
		case err == nil:
			s.log.Info("attempt finished", "job_id", jobID, "attempt", attempt)
		case errors.Is(err, context.Canceled):
			s.log.Info("attempt cancelled", "job_id", jobID, "attempt", attempt)
		default:
			s.log.Error("attempt failed", "job_id", jobID, "attempt", attempt, "error", err)
		}
	}()
	return &pluginpb.DeployResponse{}, nil
}

// onState records a task state change; restoreFailed marks a task that
// failed because the checkpoint it restores from could not be read. It must
// not block.
func (s *taskExecutor) onState(k engine.TaskKey, st engine.TaskState, err error, restoreFailed bool) {
	ev := &pluginpb.TaskEvent{
		Task:          wireTask(k),
		State:         wireState(st),
		AtMs:          time.Now().UnixMilli(),
		RestoreFailed: restoreFailed,
	}
	if err != nil {
		ev.Error = err.Error()
	}
	if st == engine.TaskFailed {
		s.log.Error("task failed", "task", k.String(), "error", ev.Error, "restore_failed", restoreFailed)
	} else {
		s.log.Debug("task state", "task", k.String(), "state", st.String())
	}
	s.events.add(k, st, ev)
}

func terminal(st engine.TaskState) bool {
	return st == engine.TaskFinished || st == engine.TaskCanceled || st == engine.TaskFailed
}

func wireState(st engine.TaskState) pluginpb.TaskState {
	switch st {
	case engine.TaskDeploying:
		return pluginpb.TaskState_TASK_STATE_DEPLOYING
	case engine.TaskRunning:
		return pluginpb.TaskState_TASK_STATE_RUNNING
	case engine.TaskFinished:
		return pluginpb.TaskState_TASK_STATE_FINISHED
	case engine.TaskCanceled:
		return pluginpb.TaskState_TASK_STATE_CANCELED
	case engine.TaskFailed:
		return pluginpb.TaskState_TASK_STATE_FAILED
	}
	return pluginpb.TaskState_TASK_STATE_UNSPECIFIED
}

// Cancel cancels every deployed attempt of the job; its tasks end CANCELED
// (those that were about to finish may still end FINISHED). It does not wait:
// the Events stream tells when they have ended. Cancelling a job this
// process does not run is not an error.
func (s *taskExecutor) Cancel(_ context.Context, req *pluginpb.CancelRequest) (*pluginpb.CancelResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prepared == nil || (req.GetJobId() != "" && req.GetJobId() != s.prepared.jobID) {
		return &pluginpb.CancelResponse{}, nil
	}
	for attempt, r := range s.runs {
		s.log.Info("cancelling", "job_id", s.prepared.jobID, "attempt", attempt)
		r.cancel()
	}
	return &pluginpb.CancelResponse{}, nil
}

// Checkpoint passes a checkpoint's trigger, completion or abort to the
// tasks of a deployed attempt. A trigger names the directory the tasks
// write their state files to; every task acknowledges (or declines) on the
// Events stream.
func (s *taskExecutor) Checkpoint(_ context.Context, req *pluginpb.CheckpointRequest) (*pluginpb.CheckpointResponse, error) {
	jobID, attempt, id := req.GetJobId(), req.GetAttempt(), req.GetCheckpointId()
	s.mu.Lock()
	var run *attemptRun
	if s.prepared != nil && s.prepared.jobID == jobID {
		run = s.runs[attempt]
	}
	s.mu.Unlock()
	if run == nil {
		return nil, status.Errorf(codes.NotFound, "checkpoint %d: job %s attempt %d is not deployed in this plugin process", id, jobID, attempt)
	}
	if id == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint of job %s attempt %d: checkpoint id is required", jobID, attempt)
	}
	switch req.GetAction() {
	case pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER:
		if req.GetUrl() == "" {
			return nil, status.Errorf(codes.InvalidArgument, "trigger checkpoint %d of job %s attempt %d: the directory url is required", id, jobID, attempt)
		}
		select {
		case <-run.done:
			return nil, status.Errorf(codes.FailedPrecondition, "trigger checkpoint %d: job %s attempt %d has ended in this plugin process", id, jobID, attempt)
		default:
		}
		run.writer.triggered(id, req.GetUrl())
		s.log.Debug("checkpoint triggered", "job_id", jobID, "attempt", attempt, "checkpoint_id", id, "url", req.GetUrl(), "savepoint", req.GetSavepoint())
		run.x.TriggerCheckpoint(engine.CheckpointOptions{ID: id, TimestampMs: req.GetTimestampMs(),
			Savepoint: req.GetSavepoint(), Stop: req.GetStop(), Drain: req.GetDrain()})
	case pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE:
		run.writer.ended(id)
		run.x.NotifyCheckpointComplete(id)
	case pluginpb.CheckpointAction_CHECKPOINT_ACTION_ABORT:
		run.writer.ended(id)
		run.x.NotifyCheckpointAborted(id)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint %d of job %s attempt %d: unknown action %v", id, jobID, attempt, req.GetAction())
	}
	return &pluginpb.CheckpointResponse{}, nil
}

// Events streams every task state change since the process started, and
// the recent checkpoint acknowledgements, then the new ones as they happen,
// until the caller goes away. A subscriber that connects late (or again)
// misses no state change.
func (s *taskExecutor) Events(_ *pluginpb.EventsRequest, stream pluginpb.TaskExecutor_EventsServer) error {
	ctx := stream.Context()
	var next uint64
	for {
		evs, last, changed := s.events.since(next)
		for _, ev := range evs {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		if len(evs) > 0 {
			next = last + 1
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// shutdown cancels every attempt and releases the data exchange; the
// process is about to exit.
func (s *taskExecutor) shutdown() {
	s.mu.Lock()
	s.closed = true
	runs := make([]*attemptRun, 0, len(s.runs))
	for _, r := range s.runs {
		r.cancel()
		runs = append(runs, r)
	}
	prep := s.prepared
	s.mu.Unlock()
	timeout := time.After(5 * time.Second)
	for _, r := range runs {
		select {
		case <-r.done:
		case <-timeout:
		}
	}
	if prep != nil {
		if err := prep.x.Close(); err != nil {
			s.log.Warn("close data exchange", "error", err)
		}
	}
}

// eventLog keeps every task state event of the process in order, the
// latest state of every task, and the most recent checkpoint
// acknowledgements. A plugin process runs one job attempt, so the state
// events are a few per task and are kept; acknowledgements come with every
// checkpoint, and only the last maxAcks are: a subscriber that connects
// late needs the state changes, and acknowledgements of checkpoints long
// gone are of no use to anyone.
type eventLog struct {
	mu      sync.Mutex
	events  []loggedEvent
	seq     uint64 // of the next event
	acks    int    // acknowledgements in events
	latest  map[engine.TaskKey]engine.TaskState
	changed chan struct{} // closed and replaced when an event is added
}

type loggedEvent struct {
	seq uint64
	ev  *pluginpb.TaskEvent
}

// maxAcks is how many acknowledgements the event log keeps at least.
const maxAcks = 1024

func newEventLog() *eventLog {
	return &eventLog{latest: map[engine.TaskKey]engine.TaskState{}, changed: make(chan struct{})}
}

func (l *eventLog) add(k engine.TaskKey, st engine.TaskState, ev *pluginpb.TaskEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latest[k] = st
	l.appendLocked(ev)
}

// addAck adds an acknowledgement (or decline) of a checkpoint.
func (l *eventLog) addAck(ev *pluginpb.TaskEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks++
	if l.acks > 2*maxAcks {
		// Drop the oldest acknowledgements, keeping maxAcks.
		drop := l.acks - maxAcks
		kept := l.events[:0]
		for _, e := range l.events {
			if drop > 0 && e.ev.GetAck() != nil {
				drop--
				continue
			}
			kept = append(kept, e)
		}
		clear(l.events[len(kept):])
		l.events = kept
		l.acks = maxAcks + 1
	}
	l.appendLocked(ev)
}

func (l *eventLog) appendLocked(ev *pluginpb.TaskEvent) {
	l.events = append(l.events, loggedEvent{seq: l.seq, ev: ev})
	l.seq++
	close(l.changed)
	l.changed = make(chan struct{})
}

// since returns the events numbered seq or later, the number of the last,
// and a channel closed when there are more.
func (l *eventLog) since(seq uint64) ([]*pluginpb.TaskEvent, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].seq >= seq })
	if i == len(l.events) {
		return nil, 0, l.changed
	}
	evs := make([]*pluginpb.TaskEvent, 0, len(l.events)-i)
	for _, e := range l.events[i:] {
		evs = append(evs, e.ev)
	}
	return evs, l.events[len(l.events)-1].seq, l.changed
}

func (l *eventLog) state(k engine.TaskKey) (engine.TaskState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.latest[k]
	return st, ok
}

// exchange is the data exchange of a plugin process.
type exchange interface {
	engine.Exchange
	// Close stops accepting data and releases the listener.
	Close() error
}

// exchangeConfig is what the data exchange of a plugin process needs.
type exchangeConfig struct {
	listener  net.Listener
	self      string // this process's data address, as its peers reach it
	placement func(engine.TaskKey) (string, bool)
	log       *slog.Logger
}

// newNetworkExchange builds the exchange between the job's plugin processes:
// in memory between tasks of this process, gRPC streams to the others.
func newNetworkExchange(cfg exchangeConfig) (exchange, error) {
	return netx.New(netx.Config{Listener: cfg.listener, Self: cfg.self, Placement: cfg.placement, Logger: cfg.log})
}

// pluginLogHandler writes slog records to w as the JSON lines hclog writes,
// so that the worker's go-plugin client parses them and logs them at their
// level. It understands "@level", "@message" and "@timestamp", the last in
// hclog's exact format only (any other makes it log the raw line at debug
// level).
func pluginLogHandler(w io.Writer, level slog.Level) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
		case slog.LevelKey:
			return slog.String("@level", strings.ToLower(a.Value.String()))
		case slog.MessageKey:
			return slog.Attr{Key: "@message", Value: a.Value}
		}
		return a
	}})
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
