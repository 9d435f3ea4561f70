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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// checkGraph validates a submitted job graph and derives the job's slot
// needs from it: everything that can be refused is refused here, before any
// task starts.
func (m *Manager) checkGraph(ctx context.Context, spec *eddypb.JobSpec) error {
	g, err := ParseGraph(spec.Graph)
	if err != nil {
		return err
	}
	if spec.Artifact.GetSha256() == "" {
		return fmt.Errorf("%w: a job with a graph needs an artifact (upload it with POST /v1/artifacts)", controlplane.ErrInvalidArgument)
	}
	if m.cfg.CheckArtifact != nil {
		if err := m.cfg.CheckArtifact(ctx, spec.Artifact); err != nil {
			return err
		}
	}
	var p uint32
	for _, c := range g.Chains {
		p = max(p, c.Parallelism)
	}
	if spec.Parallelism != 0 && spec.Parallelism != p {
		return fmt.Errorf("%w: the graph needs parallelism %d, the job asks for %d", controlplane.ErrInvalidArgument, p, spec.Parallelism)
	}
	spec.Parallelism = p
	if spec.MaxParallelism != 0 && spec.MaxParallelism != g.MaxParallelism {
		return fmt.Errorf("%w: the graph has max parallelism %d, the job asks for %d", controlplane.ErrInvalidArgument, g.MaxParallelism, spec.MaxParallelism)
	}
	spec.MaxParallelism = g.MaxParallelism
	if _, err := CheckpointConfig(spec, g); err != nil {
		return err
	}
	if _, err := RestartStrategy(spec, g); err != nil {
		return err
	}
	if spec.Restore != nil {
		if err := m.checkRestore(ctx, spec, g); err != nil {
			return err
		}
	}
	if spec.Name == "" {
		spec.Name = g.Name
	}
	return nil
}

// ParseGraph decodes and validates a job graph.
func ParseGraph(b []byte) (*pluginpb.JobGraph, error) {
	g := &pluginpb.JobGraph{}
	if err := proto.Unmarshal(b, g); err != nil {
		return nil, fmt.Errorf("%w: job graph: %v", controlplane.ErrInvalidArgument, err)
	}
	if len(g.Vertices) == 0 || len(g.Chains) == 0 {
		return nil, fmt.Errorf("%w: job graph has no operators", controlplane.ErrInvalidArgument)
	}
	if g.MaxParallelism == 0 || g.MaxParallelism > MaxParallelismLimit {
		return nil, fmt.Errorf("%w: job graph max parallelism %d", controlplane.ErrInvalidArgument, g.MaxParallelism)
	}
	uids := map[string]uint32{}
	for _, v := range g.Vertices {
		if v.Stateful && v.Uid == "" {
			return nil, fmt.Errorf("%w: operator %q (%s) keeps state but has no uid; give it one with sdk.WithUID", controlplane.ErrInvalidArgument, v.Name, v.Kind)
		}
		if v.Uid != "" {
			if other, dup := uids[v.Uid]; dup {
				return nil, fmt.Errorf("%w: operators %d and %d share the uid %q", controlplane.ErrInvalidArgument, other, v.Id, v.Uid)
			}
			uids[v.Uid] = v.Id
		}
		if v.Parallelism == 0 || v.Parallelism > g.MaxParallelism {
			return nil, fmt.Errorf("%w: operator %q has parallelism %d (max %d)", controlplane.ErrInvalidArgument, v.Name, v.Parallelism, g.MaxParallelism)
		}
	}
	for i, c := range g.Chains {
		if c.Id != uint32(i) || c.Parallelism == 0 || len(c.Vertices) == 0 {
			return nil, fmt.Errorf("%w: job graph chain %d is malformed", controlplane.ErrInvalidArgument, i)
		}
	}
	return g, nil
}

// totalTasks counts the tasks of a graph: one per chain per subtask.
func totalTasks(g *pluginpb.JobGraph) int {
	n := 0
	for _, c := range g.Chains {
		n += int(c.Parallelism)
	}
	return n
}

// track moves a job along as its tasks report: it deploys scheduled jobs,
// and ends running and cancelling ones from the states of their tasks.
func (m *Manager) track(ctx context.Context, st *fsm.State, j *eddypb.Job) {
	if len(j.Spec.Graph) == 0 {
		return
	}
	id := controlplane.JobID(j.Spec.JobId)
	switch j.Status {
	case eddypb.JobStatus_JOB_STATUS_SCHEDULED:
		m.startDeploy(ctx, j)
	case eddypb.JobStatus_JOB_STATUS_RUNNING:
		g, err := ParseGraph(j.Spec.Graph)
		if err != nil {
			return
		}
		tasks := st.Tasks(id)
		for _, t := range tasks {
			if t.State == eddypb.TaskState_TASK_STATE_FAILED {
				m.failAttempt(ctx, j, g, fmt.Sprintf("task %s failed: %s", taskName(g, t), t.Error), t.RestoreFailed)
				return
			}
		}
		if lost := m.lostWorker(st, id); lost != "" {
			m.failAttempt(ctx, j, g, fmt.Sprintf("worker %s was lost", lost), false)
			return
		}
		m.ensureCoordinator(m.term(), j, g)
		finished := 0
		for _, t := range tasks {
			if t.State == eddypb.TaskState_TASK_STATE_FINISHED {
				finished++
			}
		}
		if finished == totalTasks(g) {
			m.endJob(ctx, j, eddypb.JobStatus_JOB_STATUS_FINISHED, "")
		}
	case eddypb.JobStatus_JOB_STATUS_CANCELLING:
		m.mu.Lock()
		sent, ok := m.cancelling[id]
		if !ok {
			m.cancelling[id] = m.cfg.Now()
		}
		m.mu.Unlock()
		if !ok {
			m.cancelOnWorkers(j, st.Assignments(id))
			return
		}
		allEnded := true
		for _, t := range st.Tasks(id) {
			allEnded = allEnded && fsm.TerminalTask(t.State)
		}
		if allEnded || m.cfg.Now().Sub(sent) > m.cfg.CancelTimeout {
			m.endJob(ctx, j, eddypb.JobStatus_JOB_STATUS_CANCELED, "cancelled by request")
		}
	}
}

func taskName(g *pluginpb.JobGraph, t *eddypb.TaskStatus) string {
	name := fmt.Sprintf("chain %d", t.Chain)
	if int(t.Chain) < len(g.Chains) {
		name = g.Chains[t.Chain].Name
	}
	return fmt.Sprintf("%s (%d/%d)", name, t.Subtask+1, g.Chains[min(int(t.Chain), len(g.Chains)-1)].Parallelism)
}

// lostWorker returns a worker of the job that is no longer alive.
func (m *Manager) lostWorker(st *fsm.State, id controlplane.JobID) string {
	for _, a := range st.Assignments(id) {
		w, ok := st.Worker(controlplane.WorkerID(a.WorkerId))
		if !ok || w.Status != eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
			return a.WorkerId
		}
	}
	return ""
}

// endJob records a job's end and stops whatever still runs of it.
func (m *Manager) endJob(ctx context.Context, j *eddypb.Job, status eddypb.JobStatus, reason string) {
	id := controlplane.JobID(j.Spec.JobId)
	assignments := m.raft.State().Assignments(id)
	_, err := m.raft.Apply(ctx, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
		JobId: j.Spec.JobId, Status: status, Reason: reason, AtMs: m.cfg.Now().UnixMilli(),
		Expected: []eddypb.JobStatus{j.Status},
	})
	if err != nil {
		if !errors.Is(err, fsm.ErrStatusMismatch) {
			m.cfg.Logger.Warn("record job end", "job_id", id, "status", StatusName(status), "error", err)
		}
		return
	}
	m.mu.Lock()
	delete(m.cancelling, id)
	m.mu.Unlock()
	m.cfg.Logger.Info("job ended", "job_id", id, "status", StatusName(status), "reason", reason)
	if status != eddypb.JobStatus_JOB_STATUS_FINISHED {
		m.cancelOnWorkers(j, assignments)
	}
}

// cancelOnWorkers asks every worker of the job to stop its tasks, in the
// background, all at once and each with its own deadline.
func (m *Manager) cancelOnWorkers(j *eddypb.Job, assignments []*eddypb.SlotAssignment) {
	workers := m.workersOf(assignments)
	if m.cfg.Worker == nil || len(workers) == 0 {
		return
	}
	for id, w := range workers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			// Bounded, and over when the leadership term ends: a new leader
			// catches up with heartbeats (orphaned tasks are cancelled then).
			ctx, cancel := context.WithTimeout(m.term(), 30*time.Second)
			defer cancel()
			err := m.callWorker(w, func(c eddypb.WorkerServiceClient, opts ...grpc.CallOption) error {
				_, err := c.CancelTasks(ctx, &eddypb.CancelTasksRequest{JobId: j.Spec.JobId, Attempt: j.Attempt}, opts...)
				return err
			})
			if err != nil {
				m.cfg.Logger.Warn("cancel tasks on worker", "job_id", j.Spec.JobId, "worker_id", id, "error", workerError(err))
			}
		}()
	}
}

// term returns the context of the leadership term.
func (m *Manager) term() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.termCtx == nil {
		return context.Background()
	}
	return m.termCtx
}

// workerError is a worker's error as a person reads it: its message, not
// the gRPC wrapping.
func workerError(err error) error {
	if st, ok := status.FromError(err); ok {
		return errors.New(st.Message())
	}
	return err
}

// workerRef is a worker instance holding slots of a job, as the state knew
// it when a call to it was decided.
type workerRef struct {
	id, addr, instance string
}

// workersOf returns every worker that holds a slot of the job, by id.
func (m *Manager) workersOf(assignments []*eddypb.SlotAssignment) map[string]workerRef {
	st := m.raft.State()
	out := map[string]workerRef{}
	for _, a := range assignments {
		if w, ok := st.Worker(controlplane.WorkerID(a.WorkerId)); ok {
			out[a.WorkerId] = workerRef{id: w.Id, addr: w.Address, instance: w.InstanceId}
		}
	}
	return out
}

// callWorker makes one call to a worker, and reports the worker instance
// unreachable when the call did not reach it. That is told by what came
// back, not by the message: a call that reached the worker's gRPC server
// always receives its metadata (at least a content type), even with an
// error, while a refused dial or a connection cut before the answer gives
// gRPC's Unavailable with none. So a worker that answers Unavailable itself
// (shutting down, or unable to fetch an artifact) is not unreachable, and
// neither is a slow one: its calls end with DeadlineExceeded.
func (m *Manager) callWorker(w workerRef, call func(c eddypb.WorkerServiceClient, opts ...grpc.CallOption) error) error {
	c, err := m.cfg.Worker(w.addr)
	if err != nil {
		return err
	}
	var header, trailer metadata.MD
	err = call(c, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil && m.cfg.Unreachable != nil && unreached(err, header, trailer) {
		m.cfg.Unreachable(controlplane.WorkerID(w.id), w.instance, err)
	}
	return err
}

// unreached reports whether a failed call never got an answer from the
// server: gRPC's Unavailable, with no header and no trailer received.
func unreached(err error, header, trailer metadata.MD) bool {
	return status.Code(err) == codes.Unavailable && len(header) == 0 && len(trailer) == 0
}

// startDeploy deploys a scheduled job once, in the background.
func (m *Manager) startDeploy(ctx context.Context, j *eddypb.Job) {
	id := controlplane.JobID(j.Spec.JobId)
	m.mu.Lock()
	if m.deploying[id] || m.cfg.Worker == nil {
		m.mu.Unlock()
		return
	}
	m.deploying[id] = true
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.deploying, id)
			m.mu.Unlock()
		}()
		// Work from the current state, not the view that triggered this.
		cur, ok := m.raft.State().Job(id)
		if !ok || cur.Status != eddypb.JobStatus_JOB_STATUS_SCHEDULED {
			return
		}
		if err := m.deploy(ctx, cur); err != nil && ctx.Err() == nil {
			m.cfg.Logger.Warn("deploy failed", "job_id", id, "error", err)
			cur, _ := m.raft.State().Job(id)
			if r := (*restoreRefused)(nil); errors.As(err, &r) && cur != nil && !fsm.Terminal(cur.Status) {
				// Restarting would refuse again.
				m.endJob(ctx, cur, eddypb.JobStatus_JOB_STATUS_FAILED, r.msg)
				return
			}
			if cur != nil && !fsm.Terminal(cur.Status) {
				g, gerr := ParseGraph(cur.Spec.Graph)
				if gerr != nil || cur.Status != eddypb.JobStatus_JOB_STATUS_SCHEDULED {
					m.endJob(ctx, cur, eddypb.JobStatus_JOB_STATUS_FAILED, "deploy: "+err.Error())
					return
				}
				m.failAttempt(ctx, cur, g, "deploy: "+err.Error(), false)
			}
		}
	}()
}

// deploy starts a new attempt of a scheduled job: every worker holding a
// slot of it starts the job's plugin, then gets the tasks of its slots with
// the placement of every task, so that the plugins connect to each other.
func (m *Manager) deploy(ctx context.Context, j *eddypb.Job) error {
	id := controlplane.JobID(j.Spec.JobId)
	g, err := ParseGraph(j.Spec.Graph)
	if err != nil {
		return err
	}
	assignments := slices.Clone(m.raft.State().Assignments(id))
	slotOf := map[uint32]*eddypb.SlotAssignment{}
	for _, a := range assignments {
		n, err := strconv.Atoi(a.Task)
		if err != nil {
			return fmt.Errorf("slot assignment with task %q", a.Task)
		}
		slotOf[uint32(n)] = a
	}
	workers := m.workersOf(assignments)
	if j.Attempt > 0 {
		// An earlier leader may have deployed part of the previous attempt.
		m.cancelOnWorkers(j, assignments)
	}
	attempt := j.Attempt + 1
	// A job that checkpoints starts from its latest checkpoint or
	// savepoint; one submitted from a savepoint starts from it.
	restore := j.Spec.Restore
	var checkpoints string
	if cfg, _ := CheckpointConfig(j.Spec, g); cfg != nil {
		_, checkpoints = m.jobCheckpointDir(id)
		restore = m.restorePoint(j)
	}
	// The first attempt of a job submitted from a savepoint has one plugin
	// check, before any task starts, that every state fits the job.
	validate := ""
	if restore != nil && j.Spec.Restore != nil && restore.Url == j.Spec.Restore.Url && j.Attempt == 0 {
		validate = validator(workers)
	}
	if _, err := m.raft.Apply(ctx, fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{
		JobId: j.Spec.JobId, Attempt: attempt, Status: eddypb.JobStatus_JOB_STATUS_SCHEDULED,
		Reason: "deploying", AtMs: m.cfg.Now().UnixMilli(),
		Expected:            []eddypb.JobStatus{eddypb.JobStatus_JOB_STATUS_SCHEDULED},
		RestoreCheckpointId: restore.GetCheckpointId(),
		RestoreUrl:          restore.GetUrl(),
	}); err != nil {
		if errors.Is(err, fsm.ErrStatusMismatch) {
			return nil
		}
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, m.cfg.DeployTimeout)
	defer cancel()

	// Prepare: one plugin process per worker, in parallel.
	dataAddr := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for wid, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &eddypb.PrepareJobRequest{
				JobId: j.Spec.JobId, Attempt: attempt, Artifact: j.Spec.Artifact, Args: j.Spec.Args, Config: j.Spec.Config,
			}
			if wid == validate {
				req.Restore, req.Parallelism, req.ValidateRestore = restore, j.Spec.Parallelism, true
			}
			var resp *eddypb.PrepareJobResponse
			err := m.callWorker(w, func(c eddypb.WorkerServiceClient, opts ...grpc.CallOption) (err error) {
				resp, err = c.PrepareJob(dctx, req, opts...)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && wid == validate {
				if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition {
					// The plugin's message names the savepoint too, after
					// the worker's prefix.
					why := strings.Replace(st.Message(), "restore from "+restore.Url+": ", "", 1)
					errs = append(errs, &restoreRefused{msg: fmt.Sprintf("savepoint %s cannot be restored: %s", restore.Url, why)})
					return
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("worker %s: %w", wid, workerError(err)))
				return
			}
			dataAddr[wid] = resp.DataAddr
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if r := (*restoreRefused)(nil); errors.As(err, &r) {
			return r
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	placement := []*eddypb.TaskPlacement{}
	tasksOf := map[string][]*eddypb.TaskRef{}
	for _, c := range g.Chains {
		for s := range c.Parallelism {
			a, ok := slotOf[s]
			if !ok {
				return fmt.Errorf("no slot for subtask %d of %s", s, c.Name)
			}
			placement = append(placement, &eddypb.TaskPlacement{Chain: c.Id, Subtask: s, DataAddr: dataAddr[a.WorkerId]})
			tasksOf[a.WorkerId] = append(tasksOf[a.WorkerId], &eddypb.TaskRef{Chain: c.Id, Subtask: s})
		}
	}
	for wid, tasks := range tasksOf {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := m.callWorker(workers[wid], func(c eddypb.WorkerServiceClient, opts ...grpc.CallOption) error {
				_, err := c.DeployTasks(dctx, &eddypb.DeployTasksRequest{
					JobId: j.Spec.JobId, Attempt: attempt, Parallelism: j.Spec.Parallelism,
					Tasks: tasks, Placement: placement, Args: j.Spec.Args, Config: j.Spec.Config,
					Restore: restore, Checkpoints: checkpoints,
				}, opts...)
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
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if _, err := m.raft.Apply(ctx, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
		JobId: j.Spec.JobId, Status: eddypb.JobStatus_JOB_STATUS_RUNNING, AtMs: m.cfg.Now().UnixMilli(),
		Expected: []eddypb.JobStatus{eddypb.JobStatus_JOB_STATUS_SCHEDULED},
	}); errors.Is(err, fsm.ErrStatusMismatch) {
		// Cancelled (or failed) while deploying: stop what was just started.
		cur := proto.CloneOf(j)
		cur.Attempt = attempt
		m.cancelOnWorkers(cur, assignments)
		m.cfg.Logger.Info("job stopped while deploying", "job_id", id, "attempt", attempt)
		return nil
	} else if err != nil {
		return err
	}
	m.cfg.Logger.Info("job deployed", "job_id", id, "attempt", attempt, "tasks", totalTasks(g), "workers", len(tasksOf), "restored_checkpoint", restore.GetCheckpointId(), "restored_url", restore.GetUrl())
	return nil
}

// ReportTasks records task state changes reported by a worker.
func (m *Manager) ReportTasks(ctx context.Context, req *eddypb.ReportTasksRequest) error {
	type key struct {
		job     string
		attempt uint64
	}
	groups := map[key][]*eddypb.TaskStatus{}
	var order []key
	for _, t := range req.Tasks {
		k := key{t.JobId, t.Attempt}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	for _, k := range order {
		j, ok := m.raft.State().Job(controlplane.JobID(k.job))
		if !ok {
			continue
		}
		tasks := groups[k]
		for i, t := range tasks {
			if t.WorkerId == "" {
				t = proto.CloneOf(t)
				t.WorkerId = req.WorkerId
				tasks[i] = t
			}
		}
		switch j.Status {
		case eddypb.JobStatus_JOB_STATUS_CANCELLING, eddypb.JobStatus_JOB_STATUS_CANCELED, eddypb.JobStatus_JOB_STATUS_FAILED, eddypb.JobStatus_JOB_STATUS_RESTARTING:
			// Once a job is being stopped, or failed for its first failure,
			// the tasks that fail on the channels it broke were cancelled.
			tasks = cancelledNotFailed(tasks)
		}
		if _, err := m.raft.Apply(ctx, fsm.CmdUpdateTasks, &eddypb.UpdateTasksCommand{JobId: k.job, Attempt: k.attempt, Tasks: tasks}); err != nil {
			return err
		}
	}
	m.Kick()
	return nil
}

// cancelledNotFailed reports the failures of a job that is being cancelled
// as cancellations: the workers stop their tasks one after the other, and a
// task whose peer on another worker stopped first fails on the broken
// channel, because of the cancel.
func cancelledNotFailed(tasks []*eddypb.TaskStatus) []*eddypb.TaskStatus {
	out := make([]*eddypb.TaskStatus, len(tasks))
	for i, t := range tasks {
		if t.State == eddypb.TaskState_TASK_STATE_FAILED {
			t = proto.CloneOf(t)
			t.State = eddypb.TaskState_TASK_STATE_CANCELED
		}
		out[i] = t
	}
	return out
}

// failAttempt handles the failure of a job's current attempt under its
// restart strategy: the job restarts (its remaining tasks are cancelled, and
// after the strategy's delay the next attempt starts from the latest
// checkpoint), or it fails with the cause once no restart is left. A task
// that could not read the checkpoint it restored from discards that
// checkpoint, so that the next attempt starts from the one before.
func (m *Manager) failAttempt(ctx context.Context, j *eddypb.Job, g *pluginpb.JobGraph, cause string, restoreFailed bool) {
	id := controlplane.JobID(j.Spec.JobId)
	r, err := RestartStrategy(j.Spec, g)
	if err != nil || r.Kind == pluginpb.RestartStrategy_KIND_NONE {
		m.endJob(ctx, j, eddypb.JobStatus_JOB_STATUS_FAILED, cause)
		return
	}
	if r.MaxAttempts > 0 && j.Restarts >= r.MaxAttempts {
		m.endJob(ctx, j, eddypb.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("%s (after %d restarts)", cause, j.Restarts))
		return
	}
	if restoreFailed && j.Spec.Restore != nil && j.RestoredUrl == j.Spec.Restore.Url {
		// The savepoint the job was submitted from is unreadable: there is
		// nothing older to start from.
		m.endJob(ctx, j, eddypb.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("savepoint %s could not be restored: %s", j.RestoredUrl, cause))
		return
	}
	if restoreFailed && j.RestoredCheckpointId != 0 {
		_, err := m.raft.Apply(ctx, fsm.CmdDiscardCheckpoint, &eddypb.DiscardCheckpointCommand{
			JobId: j.Spec.JobId, CheckpointId: j.RestoredCheckpointId, Reason: cause, AtMs: m.cfg.Now().UnixMilli(),
		})
		if err != nil && !errors.Is(err, fsm.ErrCheckpointMismatch) {
			m.cfg.Logger.Warn("discard checkpoint", "job_id", id, "checkpoint_id", j.RestoredCheckpointId, "error", err)
			return
		}
		m.cfg.Logger.Warn("checkpoint discarded: it could not be restored", "job_id", id, "checkpoint_id", j.RestoredCheckpointId)
	}
	assignments := m.raft.State().Assignments(id)
	_, err = m.raft.Apply(ctx, fsm.CmdRestartJob, &eddypb.RestartJobCommand{
		JobId: j.Spec.JobId, Attempt: j.Attempt, Reason: cause, AtMs: m.cfg.Now().UnixMilli(),
	})
	if err != nil {
		if !errors.Is(err, fsm.ErrStatusMismatch) {
			m.cfg.Logger.Warn("record job restart", "job_id", id, "error", err)
		}
		return
	}
	cur, _ := m.raft.State().Job(id)
	delay := restartDelay(r, cur.GetRestarts())
	m.cfg.Logger.Warn("job restarting", "job_id", id, "attempt", j.Attempt, "restarts", cur.GetRestarts(), "delay", delay.String(), "cause", cause)
	m.cancelOnWorkers(j, assignments)
}

// restartDue reports whether a RESTARTING job has waited its restart delay.
func (m *Manager) restartDue(j *eddypb.Job) bool {
	g, err := ParseGraph(j.Spec.Graph)
	if err != nil {
		return true
	}
	r, err := RestartStrategy(j.Spec, g)
	if err != nil {
		return true
	}
	due := time.UnixMilli(j.FailureAtMs).Add(restartDelay(r, j.Restarts))
	if wait := due.Sub(m.cfg.Now()); wait > 0 {
		id := controlplane.JobID(j.Spec.JobId)
		m.mu.Lock()
		if !m.restartWake[id].Equal(due) {
			m.restartWake[id] = due
			time.AfterFunc(wait, m.Kick)
		}
		m.mu.Unlock()
		return false
	}
	return true
}
