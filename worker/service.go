package worker

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// service is the worker's eddypb.WorkerService: the JobManager prepares a
// job attempt on the worker (which starts the job's plugin process),
// deploys tasks onto it, and cancels them.
type service struct {
	eddypb.UnimplementedWorkerServiceServer
	w *Worker
}

// PrepareJob fetches and checks the job's artifact and starts its plugin
// process, once per job attempt: a repeated call returns the same data
// address.
func (s *service) PrepareJob(ctx context.Context, req *eddypb.PrepareJobRequest) (*eddypb.PrepareJobResponse, error) {
	w := s.w
	if req.GetJobId() == "" {
		return nil, status.Error(codes.InvalidArgument, "prepare job: job id is required")
	}
	if req.GetArtifact() == nil {
		return nil, status.Errorf(codes.InvalidArgument, "prepare job %s: artifact is required", req.GetJobId())
	}
	key := jobKey{id: req.GetJobId(), attempt: req.GetAttempt()}
	w.jobsMu.Lock()
	if w.closed {
		w.jobsMu.Unlock()
		return nil, status.Error(codes.Unavailable, "the worker is shutting down")
	}
	if jr, ok := w.jobs[key]; ok {
		w.jobsMu.Unlock()
		select {
		case <-jr.ready:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if jr.err != nil {
			return nil, jr.err
		}
		return &eddypb.PrepareJobResponse{DataAddr: jr.dataAddr, SdkVersion: jr.sdkVersion}, nil
	}
	jr := w.newJobRun(key)
	w.jobs[key] = jr
	// A new process for an attempt this worker ran before starts its tasks
	// afresh: forget how they ended last time.
	for k, e := range w.tasks {
		if k.job == key.id && k.attempt == key.attempt && isTerminal(e.status.GetState()) {
			delete(w.tasks, k)
		}
	}
	w.jobsMu.Unlock()

	jr.log.Info("preparing job", "sha256", req.GetArtifact().GetSha256(), "url", req.GetArtifact().GetUrl())
	if err := jr.start(ctx, req); err != nil {
		jr.err = err
		w.jobsMu.Lock()
		if w.jobs[key] == jr {
			delete(w.jobs, key)
		}
		w.jobsMu.Unlock()
		close(jr.ready)
		jr.log.Warn("prepare job failed", "error", err)
		return nil, err
	}
	close(jr.ready)
	return &eddypb.PrepareJobResponse{DataAddr: jr.dataAddr, SdkVersion: jr.sdkVersion}, nil
}

// prepared returns the started plugin of a job attempt.
func (w *Worker) prepared(ctx context.Context, key jobKey) (*jobRun, error) {
	w.jobsMu.Lock()
	jr := w.jobs[key]
	w.jobsMu.Unlock()
	if jr == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not prepared on this worker (or its plugin process has ended)", key)
	}
	select {
	case <-jr.ready:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if jr.err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%s could not be prepared: %v", key, jr.err)
	}
	return jr, nil
}

// deployTimeout bounds the plugin's Deploy call.
const deployTimeout = 30 * time.Second

// DeployTasks starts tasks of a prepared job attempt in its plugin. An
// attempt is deployed once; its task states then reach the control plane
// through ReportTasks and heartbeats.
func (s *service) DeployTasks(ctx context.Context, req *eddypb.DeployTasksRequest) (*eddypb.DeployTasksResponse, error) {
	w := s.w
	key := jobKey{id: req.GetJobId(), attempt: req.GetAttempt()}
	if len(req.GetTasks()) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "deploy %s: no tasks", key)
	}
	jr, err := w.prepared(ctx, key)
	if err != nil {
		return nil, err
	}
	preq := &pluginpb.DeployRequest{JobId: key.id, Attempt: key.attempt, Args: req.GetArgs(), Config: req.GetConfig(),
		Parallelism: req.GetParallelism(), Restore: req.GetRestore(), Checkpoints: req.GetCheckpoints()}
	keys := make([]taskKey, 0, len(req.GetTasks()))
	for _, t := range req.GetTasks() {
		preq.Tasks = append(preq.Tasks, &pluginpb.TaskID{JobId: key.id, Attempt: key.attempt, Chain: t.GetChain(), Subtask: t.GetSubtask()})
		keys = append(keys, taskKey{job: key.id, attempt: key.attempt, chain: t.GetChain(), subtask: t.GetSubtask()})
	}
	for _, p := range req.GetPlacement() {
		preq.Placement = append(preq.Placement, &pluginpb.Placement{Chain: p.GetChain(), Subtask: p.GetSubtask(), DataAddr: p.GetDataAddr()})
	}

	w.jobsMu.Lock()
	switch {
	case jr.stopping:
		w.jobsMu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "deploy %s: its plugin process is stopping", key)
	case jr.deployed || jr.deploying:
		w.jobsMu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "deploy %s: the attempt is already deployed on this worker", key)
	}
	jr.deploying = true
	for _, k := range keys {
		jr.tasks[k] = true
	}
	w.jobsMu.Unlock()

	// The plugin's answer decides what the worker tracks, so a caller that
	// gives up does not interrupt the call (which only plans and starts).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deployTimeout)
	_, err = jr.exec.Deploy(dctx, preq)
	cancel()

	w.jobsMu.Lock()
	jr.deploying = false
	if err != nil {
		// Tasks the plugin never reported were not deployed.
		for k := range jr.tasks {
			if _, seen := w.tasks[k]; !seen {
				delete(jr.tasks, k)
			}
		}
		w.jobsMu.Unlock()
		st := status.Convert(err)
		jr.log.Warn("deploy failed", "error", st.Message())
		return nil, status.Errorf(st.Code(), "deploy %s: %s", key, st.Message())
	}
	jr.deployed = true
	now := time.Now().UnixMilli()
	for _, k := range keys {
		if _, seen := w.tasks[k]; !seen {
			w.setTaskLocked(&eddypb.TaskStatus{JobId: k.job, Attempt: k.attempt, Chain: k.chain, Subtask: k.subtask,
				State: eddypb.TaskState_TASK_STATE_DEPLOYING, AtMs: now})
		}
	}
	allEnded := jr.checkEndedLocked()
	w.jobsMu.Unlock()
	jr.log.Info("tasks deployed", "tasks", len(keys), "parallelism", req.GetParallelism(),
		"checkpoints", req.GetCheckpoints(), "restore", req.GetRestore().GetUrl())
	if allEnded {
		go jr.stop(true)
	}
	return &eddypb.DeployTasksResponse{}, nil
}

// checkpointTimeout bounds the plugin's Checkpoint call, which only
// passes the request on to the tasks.
const checkpointTimeout = 10 * time.Second

// Checkpoint passes a checkpoint's trigger, completion or abort to the
// plugin of the job attempt. The tasks' acknowledgements come back on the
// plugin's events and go to the control plane (AcknowledgeCheckpoint). A
// job attempt the worker does not run is NotFound.
func (s *service) Checkpoint(ctx context.Context, req *pluginpb.CheckpointRequest) (*pluginpb.CheckpointResponse, error) {
	w := s.w
	key := jobKey{id: req.GetJobId(), attempt: req.GetAttempt()}
	w.jobsMu.Lock()
	jr := w.jobs[key]
	w.jobsMu.Unlock()
	if jr == nil {
		return nil, status.Errorf(codes.NotFound, "checkpoint %d: %s does not run on this worker", req.GetCheckpointId(), key)
	}
	select {
	case <-jr.ready:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if jr.err != nil {
		return nil, status.Errorf(codes.NotFound, "checkpoint %d: %s could not be prepared on this worker: %v", req.GetCheckpointId(), key, jr.err)
	}
	cctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	if _, err := jr.exec.Checkpoint(cctx, req); err != nil {
		st := status.Convert(err)
		return nil, status.Errorf(st.Code(), "checkpoint %d of %s: %s", req.GetCheckpointId(), key, st.Message())
	}
	return &pluginpb.CheckpointResponse{}, nil
}

// CancelTasks cancels the tasks of a job attempt (of every attempt when
// attempt is 0), waits at most Config.CancelTimeout for them to end, and
// stops the plugin process. Tasks that did not end in time end CANCELED
// when their process is killed. Cancelling a job the worker does not run is
// not an error.
func (s *service) CancelTasks(ctx context.Context, req *eddypb.CancelTasksRequest) (*eddypb.CancelTasksResponse, error) {
	w := s.w
	if req.GetJobId() == "" {
		return nil, status.Error(codes.InvalidArgument, "cancel tasks: job id is required")
	}
	w.jobsMu.Lock()
	var runs []*jobRun
	for k, jr := range w.jobs {
		if k.id == req.GetJobId() && (req.GetAttempt() == 0 || k.attempt == req.GetAttempt()) {
			runs = append(runs, jr)
		}
	}
	w.jobsMu.Unlock()
	errs := make(chan error, len(runs))
	for _, jr := range runs {
		go func() { errs <- w.cancelRun(ctx, jr) }()
	}
	var first error
	for range runs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return &eddypb.CancelTasksResponse{}, first
}

func (w *Worker) cancelRun(ctx context.Context, jr *jobRun) error {
	select {
	case <-jr.ready:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	if jr.err != nil {
		return nil // nothing runs
	}
	w.jobsMu.Lock()
	deployed := jr.deployed || jr.deploying
	w.jobsMu.Unlock()
	if !deployed {
		jr.stop(true)
		return nil
	}
	jr.log.Info("cancelling tasks")
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CancelTimeout)
	defer cancel()
	if _, err := jr.exec.Cancel(cctx, &pluginpb.CancelRequest{JobId: jr.key.id}); err != nil {
		jr.log.Warn("plugin did not take the cancel request; killing it", "error", err)
	}
	ended := false
	select {
	case <-jr.ended:
		ended = true
	case <-jr.exited:
	case <-cctx.Done():
	}
	jr.stop(ended)
	jr.endRemaining(eddypb.TaskState_TASK_STATE_CANCELED,
		fmt.Sprintf("cancelled; the task did not stop within %s, so its plugin process was killed", w.cfg.CancelTimeout))
	return nil
}
