package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// Job configuration keys (JobSpec.config) the control plane honours.
const (
	// ConfigCheckpointInterval overrides the job's checkpoint interval (a
	// Go duration, "10s"; "0" stops periodic checkpoints).
	ConfigCheckpointInterval = "checkpoint.interval"
	// ConfigRestartAttempts overrides the restarts the job's restart
	// strategy allows ("0": no limit).
	ConfigRestartAttempts = "restart.attempts"
)

// Checkpoint defaults, as in Flink.
const (
	DefaultCheckpointTimeout = 10 * time.Minute
	DefaultRetain            = 1
	DefaultRestartDelay      = time.Second
	DefaultMaxRestartDelay   = 5 * time.Minute
)

// CheckpointConfig returns the checkpointing of a job with the overrides of
// its spec applied, or nil when the job does not checkpoint.
func CheckpointConfig(spec *eddypb.JobSpec, g *pluginpb.JobGraph) (*pluginpb.CheckpointConfig, error) {
	if g.GetCheckpointing() == nil {
		if _, ok := spec.GetConfig()[ConfigCheckpointInterval]; ok {
			return nil, fmt.Errorf("%w: %s is set but the job does not checkpoint (enable checkpointing in the job)", controlplane.ErrInvalidArgument, ConfigCheckpointInterval)
		}
		return nil, nil
	}
	c := &pluginpb.CheckpointConfig{
		IntervalMs: g.Checkpointing.IntervalMs, TimeoutMs: g.Checkpointing.TimeoutMs, MinPauseMs: g.Checkpointing.MinPauseMs,
		TolerableFailures: g.Checkpointing.TolerableFailures, Retain: g.Checkpointing.Retain,
	}
	if v, ok := spec.GetConfig()[ConfigCheckpointInterval]; ok {
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s=%q: %v", controlplane.ErrInvalidArgument, ConfigCheckpointInterval, v, err)
		}
		c.IntervalMs = d.Milliseconds()
	}
	if c.TimeoutMs <= 0 {
		c.TimeoutMs = DefaultCheckpointTimeout.Milliseconds()
	}
	if c.Retain == 0 {
		c.Retain = DefaultRetain
	}
	return c, nil
}

func parseDuration(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("negative duration")
	}
	return d, err
}

// RestartStrategy returns the restart strategy of a job with the overrides
// of its spec applied: the graph's, or by default a fixed delay of a second
// without limit for a job that checkpoints and no restart for one that
// does not.
func RestartStrategy(spec *eddypb.JobSpec, g *pluginpb.JobGraph) (*pluginpb.RestartStrategy, error) {
	r := &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_NONE}
	if g.GetRestart() != nil && g.Restart.Kind != pluginpb.RestartStrategy_KIND_UNSPECIFIED {
		r = &pluginpb.RestartStrategy{Kind: g.Restart.Kind, MaxAttempts: g.Restart.MaxAttempts, DelayMs: g.Restart.DelayMs, MaxDelayMs: g.Restart.MaxDelayMs, Multiplier: g.Restart.Multiplier}
	} else if g.GetCheckpointing() != nil {
		r = &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: DefaultRestartDelay.Milliseconds()}
	}
	if v, ok := spec.GetConfig()[ConfigRestartAttempts]; ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: %s=%q: want a number of restarts", controlplane.ErrInvalidArgument, ConfigRestartAttempts, v)
		}
		if r.Kind == pluginpb.RestartStrategy_KIND_NONE {
			r = &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: DefaultRestartDelay.Milliseconds()}
		}
		r.MaxAttempts = uint32(n)
	}
	return r, nil
}

// restartDelay is how long the restart number n (from 1) waits.
func restartDelay(r *pluginpb.RestartStrategy, n uint32) time.Duration {
	d := time.Duration(r.DelayMs) * time.Millisecond
	if r.DelayMs <= 0 {
		d = DefaultRestartDelay
	}
	if r.Kind != pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF {
		return d
	}
	ceil := time.Duration(r.MaxDelayMs) * time.Millisecond
	if ceil <= 0 {
		ceil = DefaultMaxRestartDelay
	}
	mult := r.Multiplier
	if mult <= 1 {
		mult = 2
	}
	f := float64(d)
	for i := uint32(1); i < n && f < float64(ceil); i++ {
		f *= mult
	}
	return min(time.Duration(f), ceil)
}

// jobCheckpointDir returns the name and URL of a job's checkpoint directory.
func (m *Manager) jobCheckpointDir(id controlplane.JobID) (name, url string) {
	if m.cfg.Checkpoints == nil {
		return "", ""
	}
	return string(id), m.cfg.Checkpoints.URL(string(id))
}

// coordinator triggers and completes the checkpoints of one attempt of a
// job, on the leader. It runs while the attempt is RUNNING.
type coordinator struct {
	m       *Manager
	id      controlplane.JobID
	attempt uint64
	spec    *eddypb.JobSpec
	graph   *pluginpb.JobGraph
	cfg     *pluginpb.CheckpointConfig

	acks chan *eddypb.AcknowledgeCheckpointRequest
	// prevRefs are the files the retained checkpoints referenced at the
	// previous cleanup, the previously completed checkpoint's among them:
	// a plugin that has not yet seen the last completion (a COMPLETE may
	// reach it after the next trigger) builds its next incremental
	// checkpoint on those, so they stay one more round. Nil until this
	// coordinator cleaned up once; cleanup then reads the previously
	// completed checkpoint's metadata instead. cleanup's goroutine only.
	prevRefs map[string]bool
	manual   chan *manualReq
	queued   []*manualReq  // requests that came during a checkpoint; run's goroutine only
	done     chan struct{} // closed when the coordinator stops
	// stopped is set once a stop with savepoint completed: the tasks are
	// finishing, nothing more is triggered. run's goroutine only.
	stopped bool
	// final is, by task, the state each task acknowledged in the last
	// completed checkpoint it acknowledged (or that carried it): what the
	// later checkpoints hold of it once it finished. run's goroutine only.
	final map[taskKey]*finalState
}

// manualReq is a request for a checkpoint, or, with savepoint set, for a
// savepoint. reply gets the result once it is triggered.
type manualReq struct {
	savepoint *savepointReq
	reply     chan manualResult
}

// savepointReq is what a savepoint request asks for.
type savepointReq struct {
	requestID string
	url       string // the directory; empty: a new one under the default
	stop      bool
	drain     bool
}

type manualResult struct {
	id  uint64
	url string
	err error
}

// ensureCoordinator starts the coordinator of a RUNNING job's attempt if
// the job checkpoints and it does not run yet.
func (m *Manager) ensureCoordinator(ctx context.Context, j *eddypb.Job, g *pluginpb.JobGraph) *coordinator {
	if m.cfg.Worker == nil || m.cfg.Checkpoints == nil {
		return nil
	}
	cfg, err := CheckpointConfig(j.Spec, g)
	if err != nil || cfg == nil {
		return nil
	}
	id := controlplane.JobID(j.Spec.JobId)
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.coords[id]; c != nil && c.attempt == j.Attempt {
		return c
	}
	c := &coordinator{
		m: m, id: id, attempt: j.Attempt, spec: j.Spec, graph: g, cfg: cfg,
		acks: make(chan *eddypb.AcknowledgeCheckpointRequest, 256), manual: make(chan *manualReq),
		done: make(chan struct{}), final: map[taskKey]*finalState{},
	}
	m.coords[id] = c
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(c.done)
		c.run(ctx)
		m.mu.Lock()
		if m.coords[id] == c {
			delete(m.coords, id)
		}
		m.mu.Unlock()
	}()
	return c
}

// AcknowledgeCheckpoint hands a task's acknowledgement (or decline) to the
// coordinator of its job. Acknowledgements of another attempt than the
// coordinated one, or of another checkpoint, are dropped.
func (m *Manager) AcknowledgeCheckpoint(ctx context.Context, req *eddypb.AcknowledgeCheckpointRequest) error {
	m.mu.Lock()
	c := m.coords[controlplane.JobID(req.JobId)]
	m.mu.Unlock()
	if c == nil || c.attempt != req.Attempt {
		return nil
	}
	select {
	case c.acks <- req:
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// TriggerCheckpoint starts a checkpoint of a running job now (after the one
// in progress, if any) and returns its id.
func (m *Manager) TriggerCheckpoint(ctx context.Context, id controlplane.JobID) (uint64, error) {
	j, ok := m.raft.State().Job(id)
	if !ok {
		return 0, fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, id)
	}
	if len(j.Spec.Graph) == 0 {
		return 0, fmt.Errorf("%w: job %s has no job graph", controlplane.ErrCheckpointNotPossible, id)
	}
	g, err := ParseGraph(j.Spec.Graph)
	if err != nil {
		return 0, err
	}
	if g.Checkpointing == nil {
		return 0, fmt.Errorf("%w: job %s does not checkpoint (enable checkpointing in the job)", controlplane.ErrCheckpointNotPossible, id)
	}
	if j.Status != eddypb.JobStatus_JOB_STATUS_RUNNING {
		return 0, fmt.Errorf("%w: job %s is %s, not RUNNING", controlplane.ErrCheckpointNotPossible, id, StatusName(j.Status))
	}
	r := m.request(ctx, j, g, nil)
	return r.id, r.err
}

// request hands a manual checkpoint or savepoint request to the job's
// coordinator and waits until it is triggered.
func (m *Manager) request(ctx context.Context, j *eddypb.Job, g *pluginpb.JobGraph, sp *savepointReq) manualResult {
	id := controlplane.JobID(j.Spec.JobId)
	c := m.ensureCoordinator(m.term(), j, g)
	if c == nil {
		return manualResult{err: fmt.Errorf("%w: the control plane has no checkpoint storage", controlplane.ErrCheckpointNotPossible)}
	}
	req := &manualReq{savepoint: sp, reply: make(chan manualResult, 1)}
	select {
	case c.manual <- req:
	case <-c.done:
		return manualResult{err: fmt.Errorf("%w: job %s is no longer running", controlplane.ErrCheckpointNotPossible, id)}
	case <-ctx.Done():
		return manualResult{err: fmt.Errorf("%w: %v", controlplane.ErrTimeout, ctx.Err())}
	}
	select {
	case r := <-req.reply:
		return r
	case <-ctx.Done():
		return manualResult{err: fmt.Errorf("%w: %v", controlplane.ErrTimeout, ctx.Err())}
	}
}

func (c *coordinator) log() func(msg string, args ...any) {
	return func(msg string, args ...any) {
		c.m.cfg.Logger.Info(msg, append([]any{"job_id", c.id, "attempt", c.attempt}, args...)...)
	}
}

// current reports whether the coordinated attempt still runs.
func (c *coordinator) current() bool {
	j, ok := c.m.raft.State().Job(c.id)
	return ok && j.Attempt == c.attempt && j.Status == eddypb.JobStatus_JOB_STATUS_RUNNING
}

func (c *coordinator) run(ctx context.Context) {
	interval := time.Duration(c.cfg.IntervalMs) * time.Millisecond
	minPause := time.Duration(c.cfg.MinPauseMs) * time.Millisecond
	// A checkpoint left in progress by an earlier leader (or coordinator)
	// will never complete: its acknowledgements went elsewhere.
	if p := c.m.raft.State().CheckpointStats(c.id).GetInProgress(); p != nil {
		c.fail(ctx, p.CheckpointId, "aborted: leader changed")
		if p.Attempt == c.attempt {
			c.abortOnWorkers(c.m.workersOf(c.m.raft.State().Assignments(c.id)), p.CheckpointId)
		}
	}
	lastStart, lastEnd := c.m.cfg.Now(), c.m.cfg.Now()
	tick := time.NewTicker(c.pollEvery())
	defer tick.Stop()
	var waiting []*manualReq
	answer := func(err error) {
		for _, w := range waiting {
			w.reply <- manualResult{err: err}
		}
		waiting = nil
	}
	for {
		if !c.current() {
			answer(fmt.Errorf("%w: job %s is no longer running", controlplane.ErrCheckpointNotPossible, c.id))
			return
		}
		if c.stopped {
			answer(fmt.Errorf("%w: job %s is stopping after its savepoint", controlplane.ErrCheckpointNotPossible, c.id))
		}
		now := c.m.cfg.Now()
		due := !c.stopped && interval > 0 && !now.Before(lastStart.Add(interval)) && !now.Before(lastEnd.Add(minPause))
		if (due || len(waiting) > 0) && c.ready() {
			lastStart = now
			// A savepoint runs alone, first come first served; checkpoint
			// requests share one checkpoint.
			var run, rest []*manualReq
			var sp *savepointReq
			if i := slices.IndexFunc(waiting, func(r *manualReq) bool { return r.savepoint != nil }); i >= 0 {
				sp = waiting[i].savepoint
				run = []*manualReq{waiting[i]}
				rest = slices.Delete(slices.Clone(waiting), i, i+1)
			} else {
				run = waiting
			}
			c.checkpoint(ctx, run, sp)
			waiting, c.queued = append(rest, c.queued...), nil
			lastEnd = c.m.cfg.Now()
			continue
		}
		select {
		case <-ctx.Done():
			answer(fmt.Errorf("%w: leadership lost", controlplane.ErrNotLeader))
			return
		case r := <-c.manual:
			waiting = append(waiting, r)
		case <-c.acks: // of no checkpoint in progress: late
		case <-tick.C:
		case <-c.m.raft.Changed():
		}
	}
}

func (c *coordinator) pollEvery() time.Duration {
	d := time.Duration(c.cfg.IntervalMs) * time.Millisecond / 4
	return min(max(d, 10*time.Millisecond), 200*time.Millisecond)
}

// ready reports whether every task of the attempt runs or has finished,
// and some still run.
func (c *coordinator) ready() bool {
	tasks := c.m.raft.State().Tasks(c.id)
	if len(tasks) < totalTasks(c.graph) {
		return false
	}
	running := 0
	for _, t := range tasks {
		switch t.State {
		case eddypb.TaskState_TASK_STATE_RUNNING:
			running++
		case eddypb.TaskState_TASK_STATE_FINISHED:
		default:
			return false
		}
	}
	return running > 0
}

type taskKey struct{ chain, subtask uint32 }

// checkpoint runs one checkpoint (or, with sp, one savepoint) from its
// trigger to its completion or failure. It answers the manual requests
// waiting for it with its id once it is triggered.
func (c *coordinator) checkpoint(ctx context.Context, waiting []*manualReq, sp *savepointReq) {
	m := c.m
	dirName, dirURL := m.jobCheckpointDir(c.id)
	start := m.cfg.Now()
	cmd := &eddypb.TriggerCheckpointCommand{
		JobId: string(c.id), Attempt: c.attempt, AtMs: start.UnixMilli(), Url: dirURL, Manual: len(waiting) > 0,
	}
	if sp != nil {
		cmd.Savepoint, cmd.RequestId, cmd.Stop, cmd.Drain, cmd.Url = true, sp.requestID, sp.stop, sp.drain, sp.url
		if sp.url == "" {
			cmd.Url, cmd.SavepointSuffix = m.cfg.Savepoints.URL(""), shortID()
		}
	}
	_, err := m.raft.Apply(ctx, fsm.CmdTriggerCheckpoint, cmd)
	var rec *eddypb.CheckpointRecord
	if err == nil {
		rec = m.raft.State().CheckpointStats(c.id).GetInProgress()
		if rec == nil || rec.Attempt != c.attempt {
			err = fmt.Errorf("%w: checkpoint of job %s ended at once", controlplane.ErrCheckpointNotPossible, c.id)
		}
	} else if errors.Is(err, fsm.ErrStatusMismatch) {
		err = fmt.Errorf("%w: %v", controlplane.ErrCheckpointNotPossible, err)
	}
	for _, w := range waiting {
		if err != nil {
			w.reply <- manualResult{err: err}
		} else {
			w.reply <- manualResult{id: rec.CheckpointId, url: rec.Url}
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Logger.Warn("trigger checkpoint", "job_id", c.id, "error", err)
		}
		return
	}
	id := rec.CheckpointId
	log := c.log()

	// Every task that has not finished acknowledges.
	pending := map[taskKey]bool{}
	for _, t := range m.raft.State().Tasks(c.id) {
		if t.State == eddypb.TaskState_TASK_STATE_RUNNING {
			pending[taskKey{t.Chain, t.Subtask}] = true
		}
	}
	workers := m.workersOf(m.raft.State().Assignments(c.id))
	if err := c.send(ctx, workers, &pluginpb.CheckpointRequest{
		JobId: string(c.id), Attempt: c.attempt, CheckpointId: id, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER,
		Url: rec.Url, TimestampMs: start.UnixMilli(), Savepoint: rec.Savepoint, Stop: rec.Stop, Drain: rec.Drain,
	}); err != nil {
		c.failAndAbort(ctx, workers, id, "trigger: "+err.Error())
		return
	}
	acked := map[taskKey][]*pluginpb.OperatorSubtaskState{}
	timeout := time.NewTimer(time.Duration(c.cfg.TimeoutMs) * time.Millisecond)
	defer timeout.Stop()
	for len(pending) > 0 {
		changed := m.raft.Changed()
		if !c.current() {
			// The attempt ended: the FSM failed the checkpoint with it.
			c.abortOnWorkers(workers, id)
			return
		}
		for _, t := range m.raft.State().Tasks(c.id) {
			if t.State == eddypb.TaskState_TASK_STATE_FINISHED {
				delete(pending, taskKey{t.Chain, t.Subtask})
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			for _, r := range c.queued {
				r.reply <- manualResult{err: fmt.Errorf("%w: leadership lost", controlplane.ErrNotLeader)}
			}
			c.queued = nil
			return
		case <-timeout.C:
			c.failAndAbort(ctx, workers, id, fmt.Sprintf("expired: not acknowledged within %s by %d of its tasks", time.Duration(c.cfg.TimeoutMs)*time.Millisecond, len(pending)))
			return
		case r := <-c.manual:
			// Triggered once this one ends.
			c.queued = append(c.queued, r)
		case a := <-c.acks:
			if a.Ack.GetCheckpointId() != id {
				continue
			}
			k := taskKey{a.Chain, a.Subtask}
			if a.Ack.Error != "" {
				c.failAndAbort(ctx, workers, id, fmt.Sprintf("declined by task %s: %s", taskName(c.graph, &eddypb.TaskStatus{Chain: a.Chain, Subtask: a.Subtask}), a.Ack.Error))
				return
			}
			if pending[k] {
				delete(pending, k)
				acked[k] = a.Ack.Operators
			}
		case <-changed:
		}
	}

	// Every task acknowledged. The tasks that finished without
	// acknowledging it are in it with their last state.
	carried, err := c.carryFinished(ctx, rec, dirName, acked)
	if err != nil {
		c.failAndAbort(ctx, workers, id, err.Error())
		return
	}
	var states []*pluginpb.OperatorSubtaskState
	for _, k := range sortedKeys(acked, carried) {
		states = append(states, acked[k]...)
		states = append(states, carried[k]...)
	}
	// The metadata makes it a checkpoint in storage, the Raft commit makes
	// it the job's.
	md, size := c.metadata(id, start, states)
	md.Savepoint = rec.Savepoint
	if err := c.writeMetadata(ctx, rec, dirName, md); err != nil {
		c.failAndAbort(ctx, workers, id, err.Error())
		return
	}
	end := m.cfg.Now()
	_, err = m.raft.Apply(ctx, fsm.CmdCompleteCheckpoint, &eddypb.CompleteCheckpointCommand{
		Checkpoint: &eddypb.CheckpointRecord{JobId: string(c.id), CheckpointId: id, Attempt: c.attempt, SizeBytes: size, CompletedAtMs: end.UnixMilli()},
		Retain:     c.cfg.Retain,
	})
	if err != nil {
		if errors.Is(err, fsm.ErrStatusMismatch) || errors.Is(err, fsm.ErrCheckpointMismatch) {
			c.abortOnWorkers(workers, id)
		}
		if ctx.Err() == nil {
			m.cfg.Logger.Warn("complete checkpoint", "job_id", c.id, "checkpoint_id", id, "error", err)
		}
		return
	}
	c.recordFinal(rec, acked, carried)
	kind := "checkpoint"
	if rec.Savepoint {
		kind = "savepoint"
		// Once a stop's savepoint completed the tasks finish: nothing more
		// is triggered.
		c.stopped = rec.Stop
	}
	log(kind+" completed", "checkpoint_id", id, "url", rec.Url, "size", size, "took", end.Sub(start).Round(time.Millisecond).String())
	_ = c.send(ctx, workers, &pluginpb.CheckpointRequest{
		JobId: string(c.id), Attempt: c.attempt, CheckpointId: id, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE,
	})
	if !rec.Savepoint {
		c.cleanup(ctx, dirName, id)
	}
}

// writeMetadata writes a checkpoint's _metadata into its directory: under
// the job's checkpoint directory, or a savepoint's own.
func (c *coordinator) writeMetadata(ctx context.Context, rec *eddypb.CheckpointRecord, dirName string, md *pluginpb.CheckpointMetadata) error {
	if !rec.Savepoint {
		return checkpoint.WriteMetadata(ctx, c.m.cfg.Checkpoints, dirName+"/"+checkpoint.Dir(rec.CheckpointId), md)
	}
	st, err := c.m.cfg.OpenStorage(ctx, rec.Url)
	if err != nil {
		return fmt.Errorf("open savepoint directory %s: %w", rec.Url, err)
	}
	return checkpoint.WriteMetadata(ctx, st, "", md)
}

// metadata builds a checkpoint's _metadata from the acknowledged states:
// operators by UID, with their parallelism from the graph.
func (c *coordinator) metadata(id uint64, start time.Time, states []*pluginpb.OperatorSubtaskState) (*pluginpb.CheckpointMetadata, int64) {
	md := &pluginpb.CheckpointMetadata{
		JobId: string(c.id), JobName: c.spec.Name, CheckpointId: id, TimestampMs: start.UnixMilli(), MaxParallelism: c.graph.MaxParallelism,
	}
	byUID := map[string]*pluginpb.OperatorState{}
	for _, v := range c.graph.Vertices {
		if v.Uid == "" {
			continue
		}
		op := &pluginpb.OperatorState{Uid: v.Uid, Name: v.Name, Kind: v.Kind, Parallelism: v.Parallelism, MaxParallelism: c.graph.MaxParallelism}
		byUID[v.Uid] = op
	}
	var size int64
	for _, s := range states {
		size += s.Size
		op := byUID[s.Uid]
		if op == nil {
			op = &pluginpb.OperatorState{Uid: s.Uid, MaxParallelism: c.graph.MaxParallelism}
			byUID[s.Uid] = op
		}
		op.Subtasks = append(op.Subtasks, s)
	}
	for _, uid := range slicesSorted(byUID) {
		op := byUID[uid]
		if len(op.Subtasks) == 0 {
			continue
		}
		slices.SortFunc(op.Subtasks, func(a, b *pluginpb.OperatorSubtaskState) int { return int(a.Subtask) - int(b.Subtask) })
		md.Operators = append(md.Operators, op)
	}
	return md, size
}

// sortedKeys returns the tasks of both maps, in order.
func sortedKeys(a, b map[taskKey][]*pluginpb.OperatorSubtaskState) []taskKey {
	out := make([]taskKey, 0, len(a)+len(b))
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(x, y taskKey) int {
		if x.chain != y.chain {
			return int(x.chain) - int(y.chain)
		}
		return int(x.subtask) - int(y.subtask)
	})
	return out
}

func slicesSorted[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// cleanup deletes the files of every checkpoint of the job older than the
// one just completed that is not retained: the ones retention dropped and
// the remains of failed ones, and the shared incremental files of older
// checkpoints that neither a retained checkpoint nor the previously
// completed one lists. It runs after the completion is committed, so a
// retained checkpoint's files are never deleted.
func (c *coordinator) cleanup(ctx context.Context, dirName string, completed uint64) {
	st := c.m.cfg.Checkpoints
	keep := map[uint64]bool{}
	// Files a retained checkpoint carried over from an older one stay.
	referenced := map[string]bool{}
	for _, r := range c.m.raft.State().Checkpoints(c.id) {
		keep[r.CheckpointId] = true
		md, err := checkpoint.ReadMetadata(ctx, st, dirName+"/"+checkpoint.Dir(r.CheckpointId))
		var files []string
		if err == nil {
			files, err = checkpoint.Files(md, checkpoint.Dir(r.CheckpointId))
		}
		if err != nil {
			c.m.cfg.Logger.Warn("read retained checkpoint for cleanup; nothing deleted", "job_id", c.id, "checkpoint_id", r.CheckpointId, "error", err)
			return
		}
		for _, f := range files {
			referenced[dirName+"/"+f] = true
		}
	}
	objs, err := st.List(ctx, dirName+"/chk-")
	if err != nil {
		c.m.cfg.Logger.Warn("list checkpoints for cleanup", "job_id", c.id, "error", err)
		return
	}
	prev := c.prevRefs
	if prev == nil {
		// The first cleanup of this coordinator (a new attempt or a new
		// leader): the previously completed checkpoint, retained or not,
		// is in the history, and its metadata still in storage unless an
		// earlier cleanup already deleted it.
		prev = map[string]bool{}
		if p, ok := previousCompleted(c.m.raft.State().CheckpointStats(c.id).GetHistory(), completed); ok && !keep[p] {
			md, err := checkpoint.ReadMetadata(ctx, st, dirName+"/"+checkpoint.Dir(p))
			var files []string
			if err == nil {
				files, err = checkpoint.Files(md, checkpoint.Dir(p))
			}
			switch {
			case err == nil:
				for _, f := range files {
					prev[dirName+"/"+f] = true
				}
			case !errors.Is(err, storage.ErrNotFound):
				c.m.cfg.Logger.Warn("read previous checkpoint for cleanup; nothing deleted", "job_id", c.id, "checkpoint_id", p, "error", err)
				return
			}
		}
	}
	shared, err := st.List(ctx, dirName+"/shared/chk-")
	if err != nil {
		c.m.cfg.Logger.Warn("list shared checkpoint files for cleanup", "job_id", c.id, "error", err)
		return
	}
	for _, name := range cleanupVictims(dirName, completed, objs, shared, keep, referenced, prev) {
		if err := st.Delete(ctx, name); err != nil {
			c.m.cfg.Logger.Warn("delete checkpoint file", "job_id", c.id, "name", name, "error", err)
		}
	}
	c.prevRefs = referenced
}

// previousCompleted returns the newest checkpoint (not savepoint) of a
// history that completed before checkpoint completed.
func previousCompleted(history []*eddypb.CheckpointRecord, completed uint64) (uint64, bool) {
	var id uint64
	ok := false
	for _, r := range history {
		if r.Status == eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED && !r.Savepoint && r.CheckpointId < completed && (!ok || r.CheckpointId > id) {
			id, ok = r.CheckpointId, true
		}
	}
	return id, ok
}

// cleanupVictims returns the checkpoint files that cleanup deletes once
// checkpoint completed is committed: files of checkpoint directories
// (objs, under dirName/chk-) older than completed and not retained (keep),
// and incremental files shared between checkpoints (shared, under
// dirName/shared/chk-N/, N the checkpoint that uploaded them) older than
// completed; never a file a retained checkpoint references, nor one the
// retained checkpoints of the previous round referenced (prev).
func cleanupVictims(dirName string, completed uint64, objs, shared []storage.Info, keep map[uint64]bool, referenced, prev map[string]bool) []string {
	var out []string
	id := func(name, prefix string) (uint64, bool) {
		rest := strings.TrimPrefix(name, prefix)
		n, err := strconv.ParseUint(rest[:max(strings.IndexByte(rest, '/'), 0)], 10, 64)
		return n, err == nil
	}
	for _, o := range objs {
		n, ok := id(o.Name, dirName+"/chk-")
		if !ok || n >= completed || keep[n] || referenced[o.Name] {
			continue
		}
		out = append(out, o.Name)
	}
	for _, o := range shared {
		n, ok := id(o.Name, dirName+"/shared/chk-")
		if !ok || n >= completed || referenced[o.Name] || prev[o.Name] {
			continue
		}
		out = append(out, o.Name)
	}
	return out
}

// send passes a checkpoint request to every worker of the attempt, in
// parallel; it returns the first error.
func (c *coordinator) send(ctx context.Context, workers map[string]workerRef, req *pluginpb.CheckpointRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for wid, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.m.callWorker(w, func(wc eddypb.WorkerServiceClient, opts ...grpc.CallOption) error {
				_, err := wc.Checkpoint(ctx, req, opts...)
				return err
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("worker %s: %w", wid, workerError(err)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *coordinator) abortOnWorkers(workers map[string]workerRef, id uint64) {
	c.m.wg.Add(1)
	go func() {
		defer c.m.wg.Done()
		_ = c.send(c.m.term(), workers, &pluginpb.CheckpointRequest{
			JobId: string(c.id), Attempt: c.attempt, CheckpointId: id, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_ABORT,
		})
	}()
}

// failAndAbort fails a checkpoint of the attempt, tells the workers, and
// restarts the job when more checkpoints failed in a row than it tolerates.
func (c *coordinator) failAndAbort(ctx context.Context, workers map[string]workerRef, id uint64, cause string) {
	c.abortOnWorkers(workers, id)
	if !c.fail(ctx, id, cause) {
		return
	}
	m := c.m
	if h := m.raft.State().CheckpointStats(c.id).GetHistory(); len(h) > 0 && h[len(h)-1].CheckpointId == id && h[len(h)-1].Savepoint {
		// A failed savepoint leaves the job running, as it was.
		return
	}
	n := m.raft.State().CheckpointStats(c.id).GetConsecutiveFailures()
	if n <= c.cfg.TolerableFailures {
		return
	}
	j, ok := m.raft.State().Job(c.id)
	if !ok || j.Attempt != c.attempt || j.Status != eddypb.JobStatus_JOB_STATUS_RUNNING {
		return
	}
	m.failAttempt(ctx, j, c.graph, fmt.Sprintf("%d consecutive checkpoints failed (%d tolerated), the last: %s", n, c.cfg.TolerableFailures, cause), false)
}

// fail records a checkpoint's failure; it reports whether it did.
func (c *coordinator) fail(ctx context.Context, id uint64, cause string) bool {
	m := c.m
	m.cfg.Logger.Warn("checkpoint failed", "job_id", c.id, "checkpoint_id", id, "cause", cause)
	if _, err := m.raft.Apply(ctx, fsm.CmdFailCheckpoint, &eddypb.FailCheckpointCommand{
		JobId: string(c.id), CheckpointId: id, Failure: cause, AtMs: m.cfg.Now().UnixMilli(),
	}); err != nil {
		if !errors.Is(err, fsm.ErrCheckpointMismatch) && ctx.Err() == nil {
			m.cfg.Logger.Warn("record checkpoint failure", "job_id", c.id, "error", err)
		}
		return false
	}
	return true
}
