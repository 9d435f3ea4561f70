package worker

import (
	"context"
	"time"

	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// ackKey names one task's acknowledgement of one checkpoint.
type ackKey struct {
	task taskKey
	id   uint64
}

// ackWindow is how far below the newest acknowledged checkpoint the worker
// remembers which acknowledgements it relayed.
const ackWindow = 64

// Relaying an acknowledgement is retried this many times, from
// ackRetryInterval on, doubling: a checkpoint times out on the control
// plane anyway, and an acknowledgement of an old one is of no use.
const (
	ackAttempts      = 6
	ackRetryInterval = 50 * time.Millisecond
	ackCallTimeout   = 5 * time.Second
)

// onAck relays a task's acknowledgement (or decline) of a checkpoint to
// the control plane, once: the plugin replays its events to every new
// subscriber.
func (jr *jobRun) onAck(t *pluginpb.TaskID, ack *pluginpb.CheckpointAck) {
	k := ackKey{task: taskKey{job: t.GetJobId(), attempt: t.GetAttempt(), chain: t.GetChain(), subtask: t.GetSubtask()}, id: ack.GetCheckpointId()}
	w := jr.w
	w.jobsMu.Lock()
	if jr.acked[k] || (jr.maxAcked > ackWindow && k.id < jr.maxAcked-ackWindow) {
		w.jobsMu.Unlock()
		return
	}
	jr.acked[k] = true
	if k.id > jr.maxAcked {
		jr.maxAcked = k.id
		if len(jr.acked) > 4*ackWindow {
			for a := range jr.acked {
				if jr.maxAcked > ackWindow && a.id < jr.maxAcked-ackWindow {
					delete(jr.acked, a)
				}
			}
		}
	}
	w.jobsMu.Unlock()
	if ack.GetError() != "" {
		jr.log.Warn("task declined a checkpoint", "chain", k.task.chain, "subtask", k.task.subtask,
			"checkpoint_id", k.id, "error", ack.GetError())
	}
	req := &eddypb.AcknowledgeCheckpointRequest{WorkerId: w.id, JobId: t.GetJobId(), Attempt: t.GetAttempt(),
		Chain: t.GetChain(), Subtask: t.GetSubtask(), Ack: ack}
	go w.acknowledge(req)
}

// acknowledge delivers an acknowledgement to the control plane's leader,
// retrying a few times across the control plane's addresses while there is
// no leader or it cannot be reached, and drops it after that.
func (w *Worker) acknowledge(req *eddypb.AcknowledgeCheckpointRequest) {
	backoff := ackRetryInterval
	var err error
	for try := 1; ; try++ {
		c, i := w.client()
		ctx, cancel := context.WithTimeout(w.ctx, ackCallTimeout)
		_, err = c.AcknowledgeCheckpoint(ctx, req)
		cancel()
		if err == nil {
			return
		}
		if w.ctx.Err() != nil || permanent(err) || try == ackAttempts {
			break
		}
		w.rotate(i)
		sleep(w.ctx, backoff)
		backoff *= 2
	}
	if w.ctx.Err() == nil {
		w.log.Warn("could not acknowledge a checkpoint; dropping the acknowledgement", "job_id", req.GetJobId(),
			"attempt", req.GetAttempt(), "chain", req.GetChain(), "subtask", req.GetSubtask(),
			"checkpoint_id", req.GetAck().GetCheckpointId(), "error", err)
	}
}
