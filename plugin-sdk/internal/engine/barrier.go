package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The Value of an EventEnd says how the producer's input ended.
const (
	// endNormal: the input ended; the final watermark fires every window.
	endNormal int64 = iota
	// endStopped: a stop with a savepoint ended the input right after the
	// savepoint's barrier. Event time stays where it is (no final
	// watermark), and that savepoint is the consumer's final checkpoint.
	endStopped
	// endDrained: a stop with a savepoint and drain ended the input as at a
	// normal end; the savepoint is taken once every task has ended, as the
	// final checkpoint.
	endDrained
)

// controlKind tells the messages of a task's control mailbox apart.
type controlKind uint8

const (
	controlTrigger controlKind = iota + 1
	controlComplete
	controlAbort
)

// control is a message from the executor to a task.
type control struct {
	kind controlKind
	cp   CheckpointOptions // for a trigger
	id   uint64            // for a completion or an abort
}

// mailbox carries the executor's checkpoint messages to a task: anyone may
// put, never blocking; the task's goroutine takes them between messages of
// its gate (or between reads, for a source).
type mailbox struct {
	n    atomic.Int32 // len(q), read without the lock on the task's path
	mu   sync.Mutex
	q    []control
	wake chan struct{} // 1-buffered: a token when something was put
}

func (b *mailbox) put(c control) {
	b.mu.Lock()
	b.q = append(b.q, c)
	b.n.Store(int32(len(b.q)))
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take returns what was put since the last take, oldest first.
func (b *mailbox) take() []control {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.q
	b.q = nil
	b.n.Store(0)
	return q
}

// TriggerCheckpoint asks the tasks to take part in a checkpoint: sources
// snapshot and send their barrier at their next PollCheckpoint, tasks whose
// input ended acknowledge it with their final state, and the others align
// the barriers that reach them. It does not block.
func (x *Executor) TriggerCheckpoint(cp CheckpointOptions) {
	x.broadcast(control{kind: controlTrigger, cp: cp, id: cp.ID})
}

// NotifyCheckpointComplete tells the tasks that a checkpoint completed:
// their operators' CheckpointComplete runs (sinks commit), and tasks that
// wait for their final checkpoint finish. It does not block.
func (x *Executor) NotifyCheckpointComplete(id uint64) {
	x.broadcast(control{kind: controlComplete, id: id})
}

// NotifyCheckpointAborted tells the tasks that a checkpoint will not
// complete: a task aligning its barriers gives up and goes on. It does not
// block.
func (x *Executor) NotifyCheckpointAborted(id uint64) {
	x.broadcast(control{kind: controlAbort, id: id})
}

func (x *Executor) broadcast(c control) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.started {
		// Run has not started the tasks yet: they get it when it does.
		x.early = append(x.early, c)
		if len(x.early) > maxPending {
			x.early = x.early[1:]
		}
		return
	}
	for _, t := range x.running {
		t.mb.put(c)
	}
}

// addRunning makes tasks reachable for checkpoint messages, with those
// that came before Run; the returned function removes them.
func (x *Executor) addRunning(ts []*task) func() {
	x.mu.Lock()
	x.running = append(x.running, ts...)
	x.started = true
	for _, t := range ts {
		for _, c := range x.early {
			t.mb.put(c)
		}
	}
	x.early = nil
	x.mu.Unlock()
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.running = slices.DeleteFunc(x.running, func(t *task) bool { return slices.Contains(ts, t) })
	}
}

// PollCheckpoint handles the checkpoint messages that reached a source's
// task: on a trigger it snapshots the chain, sends the barrier down every
// output and reports the snapshot; completions and aborts reach the
// operators. Sources call it between reads. stop is true when the
// checkpoint stops the job (stop with a savepoint): the source must then
// end its output, after the final watermark if StopDrain says so.
//
// A stop without drain is synchronous: after the savepoint's barrier the
// call holds the source (it emits nothing) until the savepoint's outcome is
// known. stop is true once it completed; if it was aborted the operators
// are told and the call returns stop false, so that the source reads on as
// if nothing had happened and the job keeps running.
func (tc *TaskContext) PollCheckpoint() (stop bool, err error) {
	t := tc.task
	if t == nil || t.mb.n.Load() == 0 {
		return false, nil
	}
	q := t.mb.take()
	for len(q) > 0 {
		c := q[0]
		q = q[1:]
		switch c.kind {
		case controlTrigger:
			if stop || c.cp.ID <= t.lastBarrier {
				// After a stop the rest waits for the final checkpoint.
				t.addTrigger(c.cp)
				continue
			}
			if c.cp.Stop && c.cp.Drain {
				// A drained stop ends the input first: the final watermark
				// and everything it fires reach the sinks before the
				// savepoint, which the tasks take as their final
				// checkpoint once they ended.
				t.addTrigger(c.cp)
				t.endValue = endDrained
				stop = true
				continue
			}
			ok, err := t.checkpoint(c.cp)
			if err != nil {
				return false, err
			}
			if ok && c.cp.Stop {
				completed, rest, err := t.holdStop(tc.Ctx, c.cp.ID, q)
				if err != nil {
					return false, err
				}
				q = rest
				if completed {
					t.endValue, t.stopID = endStopped, c.cp.ID
					stop = true
				}
			}
		default:
			if err := t.notify(c); err != nil {
				return false, err
			}
		}
	}
	return stop, nil
}

// holdStop holds a source after the barrier of a stop without drain until
// savepoint id completes (or a later checkpoint does: completed is true)
// or is aborted, taking the messages of q first, then those of the
// mailbox. The notifications reach the operators; triggers that come
// meanwhile are not taken yet: they are returned, in order, with the
// messages that followed the outcome, for the caller to handle next.
func (t *task) holdStop(ctx context.Context, id uint64, q []control) (completed bool, rest []control, err error) {
	// The barrier is on its way; what the chain's operators buffered goes
	// too, as the source may be held for a while.
	if err := t.idle(); err != nil {
		return false, nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var later []control
	for {
		for len(q) > 0 {
			c := q[0]
			q = q[1:]
			if c.kind == controlTrigger {
				later = append(later, c)
				continue
			}
			if err := t.notify(c); err != nil {
				return false, nil, err
			}
			if (c.kind == controlComplete && c.id >= id) || (c.kind == controlAbort && c.id == id) {
				return c.kind == controlComplete, append(later, q...), nil
			}
		}
		select {
		case <-ctx.Done():
			return false, nil, ctx.Err()
		case <-t.mb.wake:
		}
		q = t.mb.take()
	}
}

// CheckpointWake returns a channel that receives when a checkpoint message
// reached the task: a source waiting while idle selects on it, then calls
// PollCheckpoint.
func (tc *TaskContext) CheckpointWake() <-chan struct{} {
	if tc.task == nil {
		return nil
	}
	return tc.task.mb.wake
}

// StopDrain reports whether the stop that PollCheckpoint returned asks to
// drain: the source emits the final watermark before it ends.
func (tc *TaskContext) StopDrain() bool {
	return tc.task != nil && tc.task.endValue == endDrained
}

// addTrigger remembers a trigger of a checkpoint the task has not taken
// yet: a task with inputs takes its options when the barrier comes, and a
// task whose input ends acknowledges it with its final state.
func (t *task) addTrigger(cp CheckpointOptions) {
	if cp.ID <= t.lastBarrier {
		return
	}
	for _, p := range t.triggers {
		if p.ID == cp.ID {
			return
		}
	}
	t.triggers = append(t.triggers, cp)
	if len(t.triggers) > maxPending {
		t.triggers = t.triggers[1:]
	}
}

// maxPending bounds the triggers and unfinished checkpoints a task keeps
// track of.
const maxPending = 64

// options returns the options of checkpoint id as its trigger gave them,
// or the id alone when the barrier came first.
func (t *task) options(id uint64) CheckpointOptions {
	for _, p := range t.triggers {
		if p.ID == id {
			return p
		}
	}
	return CheckpointOptions{ID: id}
}

// passed records that the task is done with checkpoint id: it took its
// snapshot or gave it up. Earlier barriers and triggers are dropped.
func (t *task) passed(id uint64) {
	t.lastBarrier = max(t.lastBarrier, id)
	t.triggers = slices.DeleteFunc(t.triggers, func(p CheckpointOptions) bool { return p.ID <= t.lastBarrier })
}

// snapshot takes the state of the chain's operators, head first.
func (t *task) snapshot(cp CheckpointOptions) (*TaskSnapshot, error) {
	start := time.Now()
	s := &TaskSnapshot{Task: t.key, Checkpoint: cp, Operators: map[*Vertex]*OperatorSnapshot{}}
	defer func() {
		if r := recover(); r != nil {
			s.Release() // what the operators before the panic took
			panic(r)
		}
	}()
	for i, op := range t.chainOps {
		if op == nil || op.Snapshot == nil {
			continue
		}
		v := t.chain.Vertices[i]
		os, err := op.Snapshot(cp)
		if err != nil {
			s.Release() // what the operators before it took
			return nil, fmt.Errorf("snapshot %s: %w", v.Name, err)
		}
		if os == nil {
			os = &OperatorSnapshot{}
		}
		s.Operators[v] = os
	}
	s.SyncNanos = time.Since(start).Nanoseconds()
	return s, nil
}

// checkpoint takes the task's part of a checkpoint while it runs: the
// snapshot, then the barrier on every output channel, then the report. A
// snapshot that fails declines the checkpoint (ok is false) and the task
// goes on; the barrier is sent all the same, so that the consumers do not
// hold their channels back for a checkpoint that will not complete. err is
// an output that failed.
func (t *task) checkpoint(cp CheckpointOptions) (ok bool, err error) {
	s, serr := t.snapshot(cp)
	ev := Event{Kind: EventBarrier, Value: int64(cp.ID)}
	for _, e := range t.encoders {
		if err := e.event(ev); err != nil {
			s.Release()
			return false, err
		}
	}
	t.passed(cp.ID)
	return t.report(cp, s, serr), nil
}

// report hands a snapshot to the executor, or declines the checkpoint.
func (t *task) report(cp CheckpointOptions, s *TaskSnapshot, err error) bool {
	if err != nil {
		if t.x.OnDecline != nil {
			t.x.OnDecline(t.key, cp.ID, err)
		}
		return false
	}
	t.unfinished = append(t.unfinished, cp.ID)
	if len(t.unfinished) > maxPending {
		t.unfinished = t.unfinished[1:]
	}
	if t.x.OnSnapshot != nil {
		t.x.OnSnapshot(s)
	} else {
		s.Release()
	}
	return true
}

// notify passes a completion or an abort to the chain's operators, head
// first. Completions reach them in growing order; one that is not newer
// than the last is dropped.
func (t *task) notify(c control) error {
	if c.id <= t.completed {
		return nil
	}
	switch c.kind {
	case controlComplete:
		t.completed = c.id
		t.unfinished = slices.DeleteFunc(t.unfinished, func(id uint64) bool { return id <= c.id })
		for i, op := range t.chainOps {
			if op != nil && op.CheckpointComplete != nil {
				if err := op.CheckpointComplete(c.id); err != nil {
					return fmt.Errorf("%s: checkpoint %d complete: %w", t.chain.Vertices[i].Name, c.id, err)
				}
			}
		}
	case controlAbort:
		t.unfinished = slices.DeleteFunc(t.unfinished, func(id uint64) bool { return id == c.id })
		for i, op := range t.chainOps {
			if op != nil && op.CheckpointAborted != nil {
				if err := op.CheckpointAborted(c.id); err != nil {
					return fmt.Errorf("%s: checkpoint %d aborted: %w", t.chain.Vertices[i].Name, c.id, err)
				}
			}
		}
	}
	return nil
}

// finish holds a task whose input ended until its final checkpoint
// completed, when the job checkpoints or a stop with a savepoint ended it.
// The final checkpoint is the stop's savepoint when the input ended right
// after its barrier, else every checkpoint triggered that the task has not
// taken yet (it acknowledges each with its final state): the task finishes
// when one of them, or a later one, completes. The sources end after a
// stop without drain only once its savepoint completed: a task that was
// told so already (its completion may come before the end of its input)
// finishes at once, and one that was not waits for that completion only.
//
// Without checkpointing only a stop holds the task, and a stop that failed
// lets it finish.
func (t *task) finish(ctx context.Context) error {
	if !t.x.Checkpointing && t.endValue == endNormal {
		// A drained stop may have reached the task by its trigger only:
		// an end from another process does not say how the input ended.
		if !slices.ContainsFunc(t.triggers, func(p CheckpointOptions) bool { return p.Stop && p.Drain }) {
			return nil
		}
		t.endValue = endDrained
	}
	var final []uint64
	if t.endValue == endStopped && t.stopID != 0 {
		if t.stopID <= t.completed {
			return nil
		}
		if slices.Contains(t.unfinished, t.stopID) {
			final = append(final, t.stopID)
		} else if !t.x.Checkpointing {
			return nil
		}
		// With checkpointing, a task that did not acknowledge the stop's
		// savepoint (its snapshot failed) waits for another checkpoint.
	}
	ack := func(cp CheckpointOptions) {
		if cp.ID <= t.lastBarrier {
			return
		}
		s, err := t.snapshot(cp)
		t.passed(cp.ID)
		if t.report(cp, s, err) {
			final = append(final, cp.ID)
		}
	}
	for _, cp := range slices.SortedFunc(slices.Values(t.triggers), func(a, b CheckpointOptions) int {
		return cmp.Compare(a.ID, b.ID)
	}) {
		ack(cp)
	}
	for {
		for _, id := range final {
			if id <= t.completed {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.mb.wake:
		}
		for _, c := range t.mb.take() {
			switch c.kind {
			case controlTrigger:
				ack(c.cp)
			default:
				if err := t.notify(c); err != nil {
					return err
				}
				if c.kind == controlAbort && slices.Contains(final, c.id) {
					final = slices.DeleteFunc(final, func(id uint64) bool { return id == c.id })
					if len(final) == 0 && !t.x.Checkpointing {
						return nil
					}
				}
			}
		}
	}
}
