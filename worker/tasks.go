package worker

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/eddypb"
)

// taskKey names one task of one attempt of a job.
type taskKey struct {
	job     string
	attempt uint64
	chain   uint32
	subtask uint32
}

func keyOf(s *eddypb.TaskStatus) taskKey {
	return taskKey{job: s.GetJobId(), attempt: s.GetAttempt(), chain: s.GetChain(), subtask: s.GetSubtask()}
}

// taskEntry is the latest known state of a task.
type taskEntry struct {
	status  *eddypb.TaskStatus
	endedAt time.Time // when it reached a terminal state
}

// terminalRetention is how long the worker remembers tasks that ended.
const terminalRetention = 10 * time.Minute

// stateRank orders task states: a task only moves to a higher rank, so an
// update of equal or lower rank is a repeat (the plugin replays its events
// to a new subscriber) and is ignored.
func stateRank(s eddypb.TaskState) int {
	switch s {
	case eddypb.TaskState_TASK_STATE_DEPLOYING:
		return 1
	case eddypb.TaskState_TASK_STATE_RUNNING:
		return 2
	case eddypb.TaskState_TASK_STATE_FINISHED, eddypb.TaskState_TASK_STATE_CANCELED, eddypb.TaskState_TASK_STATE_FAILED:
		return 3
	}
	return 0
}

func isTerminal(s eddypb.TaskState) bool { return stateRank(s) == 3 }

// setTaskLocked records a task state change and queues it for the control
// plane. It reports false, and does nothing, for a repeated or stale state.
// The caller holds w.jobsMu.
func (w *Worker) setTaskLocked(st *eddypb.TaskStatus) bool {
	if stateRank(st.GetState()) == 0 {
		return false
	}
	k := keyOf(st)
	if e, ok := w.tasks[k]; ok && stateRank(st.GetState()) <= stateRank(e.status.GetState()) {
		return false
	}
	e := &taskEntry{status: st}
	if isTerminal(st.GetState()) {
		e.endedAt = time.Now()
	}
	w.tasks[k] = e
	w.reports.add(proto.Clone(st).(*eddypb.TaskStatus))
	return true
}

// activeTasks returns the tasks that have not ended, for heartbeats, and
// forgets tasks that ended long ago.
func (w *Worker) activeTasks() []*eddypb.TaskStatus {
	w.jobsMu.Lock()
	defer w.jobsMu.Unlock()
	var out []*eddypb.TaskStatus
	for k, e := range w.tasks {
		switch {
		case !isTerminal(e.status.GetState()):
			out = append(out, proto.Clone(e.status).(*eddypb.TaskStatus))
		case time.Since(e.endedAt) > terminalRetention:
			delete(w.tasks, k)
		}
	}
	return out
}

// reportQueue holds the task state changes not yet acknowledged by the
// control plane, in order. It is safe for concurrent use.
type reportQueue struct {
	mu      sync.Mutex
	pending []*eddypb.TaskStatus
	wake    chan struct{}
}

// maxReportBatch bounds the task states sent in one ReportTasks call.
const maxReportBatch = 512

func newReportQueue() *reportQueue { return &reportQueue{wake: make(chan struct{}, 1)} }

func (q *reportQueue) add(st *eddypb.TaskStatus) {
	q.mu.Lock()
	q.pending = append(q.pending, st)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// peek returns up to n of the oldest pending states, leaving them queued.
func (q *reportQueue) peek(n int) []*eddypb.TaskStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*eddypb.TaskStatus(nil), q.pending[:min(n, len(q.pending))]...)
}

// drop removes the n oldest pending states, once they were delivered.
func (q *reportQueue) drop(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending[:0:0], q.pending[n:]...)
}

func (q *reportQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// reportLoop delivers task state changes to the control plane in batches,
// in order, until ctx ends. A batch is retried, across the control plane's
// addresses, until the control plane takes it: a state change, least of
// all a terminal one, is never dropped while the worker runs.
func (w *Worker) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.reports.wake:
		}
		for {
			batch := w.reports.peek(maxReportBatch)
			if len(batch) == 0 {
				break
			}
			if err := w.sendReport(ctx, batch); err != nil {
				return
			}
			w.reports.drop(len(batch))
		}
	}
}

// sendReport delivers one batch, retrying until it is taken or ctx ends.
func (w *Worker) sendReport(ctx context.Context, batch []*eddypb.TaskStatus) error {
	req := &eddypb.ReportTasksRequest{WorkerId: w.id, InstanceId: w.instance, Tasks: batch}
	backoff := w.cfg.RetryInterval
	for round := 0; ; round++ {
		for range w.conns {
			c, i := w.client()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := c.ReportTasks(cctx, req)
			cancel()
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if permanent(err) {
				// The control plane will never take this batch: keeping it
				// would block every later report. Heartbeats still carry
				// the live states.
				w.log.Error("control plane refused task states; dropping them", "tasks", len(batch), "error", err)
				return nil
			}
			if round%10 == 0 {
				w.log.Warn("report task states failed; retrying", "via", w.cfg.Servers[i], "tasks", len(batch), "error", err)
			}
			w.rotate(i)
		}
		sleep(ctx, backoff)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// permanent reports whether the control plane refused a call for good, as
// opposed to being unreachable or without a leader for now.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.AlreadyExists, codes.ResourceExhausted, codes.Unimplemented:
		return true
	}
	return false
}
