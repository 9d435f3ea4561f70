package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// DefaultFlushInterval bounds how long a record may wait in a partly filled
// batch while its task is busy, unless the plan sets its own.
const DefaultFlushInterval = 5 * time.Millisecond

// TaskState is the life cycle of a task.
type TaskState int

// The task states, in order.
const (
	TaskDeploying TaskState = iota + 1
	TaskRunning
	TaskFinished
	TaskCanceled
	TaskFailed
)

func (s TaskState) String() string {
	switch s {
	case TaskDeploying:
		return "DEPLOYING"
	case TaskRunning:
		return "RUNNING"
	case TaskFinished:
		return "FINISHED"
	case TaskCanceled:
		return "CANCELED"
	case TaskFailed:
		return "FAILED"
	}
	return fmt.Sprintf("TaskState(%d)", int(s))
}

// Executor runs tasks of one attempt of a job.
type Executor struct {
	Plan     *Plan
	JobID    string
	Attempt  uint64
	Exchange Exchange
	// OnState, if set, is told of every task state change. It must not block.
	OnState func(k TaskKey, s TaskState, err error)
	// Checkpointing makes tasks whose input ended wait for a final
	// checkpoint before they finish (see checkpoint.go).
	Checkpointing bool
	// Restore, if set, gives operators the state they start from.
	Restore Restorer
	// OnSnapshot receives every task's part of every checkpoint. It is
	// called from the task's goroutine: it must hand the writing off, and
	// materialize (TaskSnapshot.Materialize) or release the snapshot.
	OnSnapshot func(s *TaskSnapshot)
	// OnDecline is told when a task cannot take part in a checkpoint.
	OnDecline func(k TaskKey, id uint64, err error)
	// AllowNonRestored lets operators drop restored state they no longer
	// register (TaskContext.AllowNonRestored).
	AllowNonRestored bool

	mu      sync.Mutex
	running []*task   // the tasks checkpoint messages reach
	started bool      // Run started its tasks
	early   []control // the messages that came before
}

// Run runs the given tasks until all end. The first failure cancels the
// other tasks and is returned.
func (x *Executor) Run(ctx context.Context, tasks []TaskKey) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Gates are registered before any task opens its outputs, so that
	// producers find their local consumers.
	ts := make([]*task, len(tasks))
	for i, k := range tasks {
		if k.Chain < 0 || k.Chain >= len(x.Plan.Chains) {
			return fmt.Errorf("task %s: no chain %d", k, k.Chain)
		}
		c := x.Plan.Chains[k.Chain]
		if k.Subtask < 0 || k.Subtask >= c.Parallelism {
			return fmt.Errorf("task %s: chain %d has parallelism %d", k, k.Chain, c.Parallelism)
		}
		ts[i] = &task{x: x, key: k, chain: c, mb: mailbox{wake: make(chan struct{}, 1)}}
		ts[i].gate = NewGate(ts[i].expectedChannels())
		unregister := x.Exchange.Register(k, ts[i].gate)
		defer unregister()
		x.state(k, TaskDeploying, nil)
	}
	defer x.addRunning(ts)()
	var wg sync.WaitGroup
	errs := make([]error, len(ts))
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t.run(ctx)
			if err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("task %s (%s) failed: %w", t.key, t.chain.Name(), err))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return ctx.Err()
}

func (x *Executor) state(k TaskKey, s TaskState, err error) {
	if x.OnState != nil {
		x.OnState(k, s, err)
	}
}

type task struct {
	x     *Executor
	key   TaskKey
	chain *Chain
	gate  *Gate

	ops       []*Operator
	decoders  []func([]byte, int) error
	head      *Operator
	onIdle    []func() error
	encoders  []flushOutput
	lastFlush time.Time
	timers    timerHeap
	seq       uint64

	// Checkpoints (barrier.go).
	mb       mailbox
	chainOps []*Operator // the chain's operators, head first
	// lastBarrier is the highest checkpoint the task took its snapshot of
	// or gave up: barriers and triggers up to it are dropped.
	lastBarrier uint64
	triggers    []CheckpointOptions // triggers of checkpoints after lastBarrier
	unfinished  []uint64            // checkpoints reported, not completed or aborted
	completed   uint64              // the last completion the operators were told of
	// endValue is the Value of the EventEnd the task's outputs send: how a
	// stop with a savepoint ended the input.
	endValue int64
	stopID   uint64 // the stop's savepoint, when endValue is endStopped
	// Barrier alignment in consume.
	aligning uint64    // the checkpoint being aligned, 0 for none
	aligned  int       // channels that delivered its barrier
	held     []message // messages of aligned channels, in arrival order
	replay   []message // messages to process before the gate's
}

func (t *task) expectedChannels() map[ChannelKey]int {
	exp := map[ChannelKey]int{}
	for _, in := range t.chain.Inputs {
		k := ChannelKey{JobID: t.key.JobID, Attempt: t.key.Attempt, FromChain: in.From.ID,
			ToChain: t.chain.ID, ToSubtask: t.key.Subtask, ToVertex: in.To.ID, ToInput: in.Input}
		if in.Forwarded {
			k.FromSubtask = t.key.Subtask
			exp[k] = in.Input
			continue
		}
		for s := range in.From.Parallelism {
			k.FromSubtask = s
			exp[k] = in.Input
		}
	}
	return exp
}

func (t *task) taskContext(ctx context.Context, v *Vertex) *TaskContext {
	tc := newTaskContext(ctx, t.x.Plan, v, t.key.Subtask)
	tc.task, tc.AllowNonRestored, tc.Checkpointing = t, t.x.AllowNonRestored, t.x.Checkpointing
	return tc
}

// newTaskContext is what every operator subtask of v learns of where it
// runs, for a task and for a dry-run restore alike.
func newTaskContext(ctx context.Context, p *Plan, v *Vertex, subtask int) *TaskContext {
	return &TaskContext{
		JobName: p.JobName, Vertex: v, Subtask: subtask, Parallelism: v.Parallelism,
		MaxParallelism: p.MaxParallelism,
		KeyGroups:      keygroup.For(subtask, p.MaxParallelism, v.Parallelism),
		Ctx:            ctx,
	}
}

// OnIdle registers f to run whenever the task is idle or FlushInterval has
// passed: outputs flush their batches, sinks their writers.
func (tc *TaskContext) OnIdle(f func() error) {
	if tc.task != nil {
		tc.task.onIdle = append(tc.task.onIdle, f)
	}
}

// SetIdle marks the task's output idle (its consumers stop waiting for its
// watermark) or active. Sending a record or a watermark makes it active.
func (tc *TaskContext) SetIdle(idle bool) error {
	if tc.task == nil {
		return nil
	}
	return tc.task.setIdle(idle)
}

func (t *task) setIdle(idle bool) error {
	for _, e := range t.encoders {
		if e.isIdle() == idle {
			continue
		}
		if err := e.flush(); err != nil {
			return err
		}
		if err := e.setIdle(idle); err != nil {
			return err
		}
	}
	return nil
}

// AtProcessingTime runs f in the task's goroutine at (or soon after) the
// given time. Operators use it for processing-time timers and windows.
func (tc *TaskContext) AtProcessingTime(at time.Time, f func() error) {
	if tc.task == nil {
		return
	}
	tc.task.seq++
	heap.Push(&tc.task.timers, &timer{at: at, seq: tc.task.seq, f: f})
}

// RunDueTimers runs the processing-time callbacks that are due. Sources
// call it between reads; other tasks are woken for them.
func (tc *TaskContext) RunDueTimers() error {
	if tc.task == nil {
		return nil
	}
	return tc.task.runDue(time.Now())
}

// NextTimer returns when the next processing-time callback is due.
func (tc *TaskContext) NextTimer() (time.Time, bool) {
	if tc.task == nil || len(tc.task.timers) == 0 {
		return time.Time{}, false
	}
	return tc.task.timers[0].at, true
}

func (t *task) runDue(now time.Time) error {
	for len(t.timers) > 0 && !t.timers[0].at.After(now) {
		tm := heap.Pop(&t.timers).(*timer)
		if err := tm.f(); err != nil {
			return err
		}
	}
	return nil
}

// MaybeFlush runs the idle hooks if FlushInterval has passed since they
// last ran. Sources call it between reads.
func (tc *TaskContext) MaybeFlush() error {
	if tc.task == nil {
		return nil
	}
	return tc.task.maybeFlush()
}

// Idle runs the idle hooks now.
func (tc *TaskContext) Idle() error {
	if tc.task == nil {
		return nil
	}
	return tc.task.idle()
}

func (t *task) idle() error {
	t.lastFlush = time.Now()
	for _, f := range t.onIdle {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (t *task) maybeFlush() error {
	if time.Since(t.lastFlush) < t.x.Plan.flushInterval() {
		return nil
	}
	return t.idle()
}

// build creates the chain's operators from the tail to the head, wiring
// each vertex's output to its chained successor and to encoders for the
// edges that leave the chain, and its side outputs to theirs.
func (t *task) build(ctx context.Context) error {
	plan := t.x.Plan
	t.chainOps = make([]*Operator, len(t.chain.Vertices))
	var next any // Output of the chained successor's first input
	for i := len(t.chain.Vertices) - 1; i >= 0; i-- {
		v := t.chain.Vertices[i]
		tc := t.taskContext(ctx, v)
		var outs []any
		if next != nil {
			outs = append(outs, next)
		}
		sides := map[string][]any{}
		for _, c := range plan.Consumers(v) {
			enc, err := t.openEncoder(ctx, tc, v, c)
			if err != nil {
				return err
			}
			if c.Edge.Side != "" {
				sides[c.Edge.Side] = append(sides[c.Edge.Side], enc)
				continue
			}
			outs = append(outs, enc)
		}
		var out any
		if v.Out != nil {
			out = combine(v.Out, outs)
		}
		tc.Sides = map[string]any{}
		var read []eventOutput
		for name, typ := range v.Sides {
			tc.Sides[name] = combine(typ, sides[name])
			if len(sides[name]) > 0 {
				read = append(read, tc.Sides[name].(eventOutput))
			}
		}
		if out != nil && len(read) > 0 {
			// The side outputs that are read follow the main output's
			// watermarks and end.
			out = v.Out.withSides(out, read)
		}
		if t.x.Restore != nil {
			r, err := t.x.Restore(v, t.key.Subtask, v.Parallelism, tc.KeyGroups)
			if err != nil {
				return &RestoreError{Operator: v.Name, Err: err}
			}
			tc.Restored = r
		}
		op, err := v.Build(tc, out)
		if err != nil {
			return fmt.Errorf("build %s: %w", v.Name, err)
		}
		t.ops = append(t.ops, op)
		t.chainOps[i] = op
		if i > 0 {
			if len(op.Inputs) != 1 {
				return fmt.Errorf("chained operator %s has %d inputs", v.Name, len(op.Inputs))
			}
			next = op.Inputs[0]
		} else {
			t.head = op
		}
	}
	head := t.chain.Vertices[0]
	t.decoders = make([]func([]byte, int) error, len(head.Inputs))
	for k := range head.Inputs {
		if k >= len(t.head.Inputs) {
			return fmt.Errorf("operator %s built %d inputs, has %d edges", head.Name, len(t.head.Inputs), len(head.Inputs))
		}
		t.decoders[k] = head.Inputs[k].Type().newDecoder(t.head.Inputs[k])
	}
	return nil
}

// combine returns one Output of typ that feeds all outs (or discards).
func combine(typ *Type, outs []any) any {
	switch len(outs) {
	case 0:
		return typ.discard()
	case 1:
		return outs[0]
	}
	return typ.fanOut(outs)
}

func (t *task) openEncoder(ctx context.Context, tc *TaskContext, v *Vertex, c ChainInput) (any, error) {
	k := ChannelKey{JobID: t.key.JobID, Attempt: t.key.Attempt, FromChain: t.chain.ID, FromSubtask: t.key.Subtask,
		ToVertex: c.To.ID, ToInput: c.Input}
	consumer := t.x.Plan.ChainOf(c.To)
	k.ToChain = consumer.ID
	var chans []ChannelWriter
	targets := []int{t.key.Subtask}
	if !c.Forwarded {
		targets = targets[:0]
		for s := range consumer.Parallelism {
			targets = append(targets, s)
		}
	}
	for _, s := range targets {
		k.ToSubtask = s
		w, err := t.x.Exchange.Open(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("open channel to %s subtask %d: %w", c.To.Name, s, err)
		}
		chans = append(chans, w)
	}
	enc, err := c.Edge.Type().newEncoder(tc, chans, c.Edge, consumer.Parallelism)
	if err != nil {
		return nil, err
	}
	enc.setEnd(&t.endValue)
	t.onIdle = append(t.onIdle, enc.flush)
	t.encoders = append(t.encoders, enc)
	return enc.out, nil
}

func (t *task) run(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
		for _, op := range t.ops {
			if op.Close != nil {
				if cerr := op.Close(); cerr != nil && err == nil {
					err = cerr
				}
			}
		}
		switch {
		case err == nil:
			t.x.state(t.key, TaskFinished, nil)
		case ctx.Err() != nil:
			t.x.state(t.key, TaskCanceled, nil)
		default:
			t.x.state(t.key, TaskFailed, err)
		}
	}()
	if err := t.build(ctx); err != nil {
		return err
	}
	t.x.state(t.key, TaskRunning, nil)
	t.lastFlush = time.Now()
	if t.head.Run != nil {
		if err := t.head.Run(ctx, func() { _ = t.idle() }); err != nil {
			return err
		}
		return t.finish(ctx)
	}
	// A task with inputs is idle when its inputs are, whatever a timer
	// emits meanwhile (a source becomes active by emitting).
	for _, e := range t.encoders {
		e.setSticky(true)
	}
	if err := t.consume(ctx); err != nil {
		return err
	}
	return t.finish(ctx)
}

// RestoreError is the error of a task whose operator could not be given
// its state from the checkpoint it restores from.
type RestoreError struct {
	Operator string
	Err      error
}

func (e *RestoreError) Error() string { return fmt.Sprintf("restore %s: %v", e.Operator, e.Err) }
func (e *RestoreError) Unwrap() error { return e.Err }

// channelState is what a task knows of one input channel.
type channelState struct {
	wm    int64 // the channel's watermark; MaxWatermark once it ended
	hasWM bool
	idle  bool
	// blocked: the channel delivered the barrier being aligned; its
	// messages are held until the alignment ends.
	blocked bool
}

// consume processes the gate's messages until every input channel ended.
func (t *task) consume(ctx context.Context) error {
	head := t.chain.Vertices[0]
	type inputState struct {
		channels, ended int
		wm              int64
		idle            bool // every open channel of the input is idle
		stopped         bool // a channel ended by a stop without drain
	}
	inputs := make([]inputState, len(head.Inputs))
	for _, in := range t.gate.expected {
		inputs[in].channels++
	}
	for i := range inputs {
		inputs[i].wm = math.MinInt64
	}
	chans := map[ChannelKey]*channelState{}
	for k := range t.gate.expected {
		chans[k] = &channelState{}
	}
	// advance passes on an input's watermark when its minimum rose.
	advance := func(in int) error {
		if wm, ok := t.minWatermark(in, chans); ok && wm > inputs[in].wm {
			inputs[in].wm = wm
			return t.head.Inputs[in].(watermarker).Watermark(wm)
		}
		return nil
	}
	// status tells an operator that combines the watermarks of several
	// inputs when one of them goes idle as a whole or becomes active again,
	// so that an idle input does not hold its watermark back.
	status := func(in int) error {
		idle := t.inputIdle(in, chans)
		if idle == inputs[in].idle {
			return nil
		}
		inputs[in].idle = idle
		if s, ok := t.head.Inputs[in].(InputIdler); ok {
			return s.InputIdle(idle)
		}
		return nil
	}
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	remaining := len(t.gate.expected)
	for remaining > 0 {
		if t.mb.n.Load() != 0 {
			if err := t.control(chans); err != nil {
				return err
			}
		}
		var m message
		if len(t.replay) > 0 {
			// Messages held back by an alignment go first.
			m = t.replay[0]
			t.replay[0] = message{}
			t.replay = t.replay[1:]
		} else {
			select {
			case m = <-t.gate.msgs:
			default:
				if err := t.idle(); err != nil {
					return err
				}
				var due <-chan time.Time
				if len(t.timers) > 0 {
					wake.Reset(time.Until(t.timers[0].at))
					due = wake.C
				}
				select {
				case m = <-t.gate.msgs:
				case <-due:
					if err := t.runDue(time.Now()); err != nil {
						return err
					}
					continue
				case <-t.mb.wake:
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		in := m.ch.Input
		st := chans[m.ch.Key]
		if st.blocked {
			// Kept without returning its credit: the producer stops when
			// it runs out.
			t.held = append(t.held, m)
			continue
		}
		if m.event == nil {
			// Records do not change a channel's status: a producer that
			// becomes active says so first (EventIdle 0), and one whose
			// inputs are idle stays idle while its timers emit.
			err := t.decoders[in](m.data, m.count)
			m.done()
			if err != nil {
				return err
			}
			if err := t.maybeFlush(); err != nil {
				return err
			}
			if err := t.runDue(time.Now()); err != nil {
				return err
			}
			continue
		}
		ev := *m.event
		m.done()
		switch ev.Kind {
		case EventEnd:
			remaining--
			st.wm, st.hasWM, st.idle = MaxWatermark, true, false
			inputs[in].ended++
			switch ev.Value {
			case endStopped:
				// The stop's barrier came just before: its savepoint is
				// the task's final checkpoint.
				inputs[in].stopped = true
				t.endValue, t.stopID = endStopped, t.lastBarrier
			case endDrained:
				if t.endValue == endNormal {
					t.endValue = endDrained
				}
			}
			if err := status(in); err != nil {
				return err
			}
			// The channels left may all be idle: then so is this task.
			if err := t.followIdleness(chans); err != nil {
				return err
			}
			if inputs[in].ended == inputs[in].channels {
				// The final watermark fires every window and timer, so a
				// bounded job gives the result of a batch run; after a stop
				// without drain event time stays.
				if inputs[in].wm < MaxWatermark && !inputs[in].stopped {
					inputs[in].wm = MaxWatermark
					if err := t.head.Inputs[in].(watermarker).Watermark(MaxWatermark); err != nil {
						return err
					}
				}
				if err := t.head.Inputs[in].(ender).End(); err != nil {
					return err
				}
				// An ended channel counts as aligned.
				if err := t.completeAlignment(chans, remaining); err != nil {
					return err
				}
				continue
			}
		case EventWatermark:
			if !st.hasWM || ev.Value > st.wm {
				st.wm, st.hasWM = ev.Value, true
			}
			if st.idle {
				st.idle = false
				if err := status(in); err != nil {
					return err
				}
			}
		case EventBarrier:
			if err := t.barrier(uint64(ev.Value), st, chans, remaining); err != nil {
				return err
			}
			continue
		case EventIdle:
			st.idle = ev.Value != 0
			if err := t.followIdleness(chans); err != nil {
				return err
			}
			if err := status(in); err != nil {
				return err
			}
		}
		if inputs[in].ended < inputs[in].channels {
			if err := advance(in); err != nil {
				return err
			}
		}
		if ev.Kind == EventEnd {
			// An ended channel counts as aligned.
			if err := t.completeAlignment(chans, remaining); err != nil {
				return err
			}
		}
	}
	return nil
}

// control handles the checkpoint messages that reached a task with
// inputs. Its triggers only give the options of the checkpoints whose
// barriers will come (or that it acknowledges once its input ended); an
// abort of the checkpoint being aligned releases the held channels.
func (t *task) control(chans map[ChannelKey]*channelState) error {
	for _, c := range t.mb.take() {
		switch c.kind {
		case controlTrigger:
			t.addTrigger(c.cp)
			continue
		case controlAbort:
			if t.aligning == c.id {
				t.release(chans, c.id)
			}
		}
		if err := t.notify(c); err != nil {
			return err
		}
	}
	return nil
}

// barrier handles the barrier of checkpoint id on a channel: the channel is
// held back until every open channel delivered it, then the task takes its
// snapshot. The barrier of a checkpoint taken or given up is dropped; that
// of a newer checkpoint than the one being aligned means the older was given
// up upstream: its alignment ends (the held messages go first) and the
// newer one's starts.
func (t *task) barrier(id uint64, st *channelState, chans map[ChannelKey]*channelState, remaining int) error {
	if id <= t.lastBarrier || id < t.aligning {
		return nil
	}
	if t.aligning != 0 && id > t.aligning {
		if t.x.OnDecline != nil {
			t.x.OnDecline(t.key, t.aligning, fmt.Errorf("barrier of checkpoint %d came before the alignment of %d ended", id, t.aligning))
		}
		t.release(chans, t.aligning)
	}
	t.aligning = id
	if !st.blocked {
		st.blocked = true
		t.aligned++
	}
	return t.completeAlignment(chans, remaining)
}

// completeAlignment takes the checkpoint being aligned once every channel
// that has not ended delivered its barrier: the snapshot, the barrier on
// every output, the release of the held messages, the report.
func (t *task) completeAlignment(chans map[ChannelKey]*channelState, remaining int) error {
	if t.aligning == 0 || t.aligned < remaining {
		return nil
	}
	cp := t.options(t.aligning)
	s, serr := t.snapshot(cp)
	ev := Event{Kind: EventBarrier, Value: int64(cp.ID)}
	for _, e := range t.encoders {
		if err := e.event(ev); err != nil {
			s.Release()
			return err
		}
	}
	t.release(chans, cp.ID)
	t.report(cp, s, serr)
	return nil
}

// release ends the alignment of checkpoint id, taken or given up: its
// held messages are processed next, before any new one.
func (t *task) release(chans map[ChannelKey]*channelState, id uint64) {
	t.passed(id)
	t.aligning, t.aligned = 0, 0
	for _, c := range chans {
		c.blocked = false
	}
	if len(t.held) > 0 {
		t.replay = append(t.held, t.replay...)
		t.held = nil
	}
}

// followIdleness marks the task's output idle when every open input
// channel is idle, and active when one is not.
func (t *task) followIdleness(chans map[ChannelKey]*channelState) error {
	allIdle, open := true, 0
	for _, c := range chans {
		if c.wm == MaxWatermark && c.hasWM {
			continue
		}
		open++
		allIdle = allIdle && c.idle
	}
	// setIdle compares with each encoder's own status: a record sent since
	// the output was marked idle made the encoders that carried it active
	// again, and they must be marked idle again now.
	return t.setIdle(open > 0 && allIdle)
}

// InputIdler is implemented by the inputs of operators that combine the
// watermarks of several inputs (unions, two-input operators). InputIdle is
// called, from the task's goroutine, when every open channel of the input
// has gone idle, and when one is active again: an idle input must not hold
// the operator's watermark back, as Flink's two-input operators exclude
// idle inputs.
type InputIdler interface {
	InputIdle(idle bool) error
}

// inputIdle reports whether every channel of an input that has not ended is
// idle (and there is one).
func (t *task) inputIdle(input int, chans map[ChannelKey]*channelState) bool {
	open := 0
	for k, in := range t.gate.expected {
		if in != input {
			continue
		}
		c := chans[k]
		if c.wm == MaxWatermark && c.hasWM {
			continue
		}
		if !c.idle {
			return false
		}
		open++
	}
	return open > 0
}

// minWatermark returns the lowest watermark over an input's channels that
// are neither idle nor ended; ok is false when there is none (the
// watermark holds; the end of the last channel brings MaxWatermark).
func (t *task) minWatermark(input int, chans map[ChannelKey]*channelState) (int64, bool) {
	lowest, any := int64(math.MaxInt64), false
	for k, in := range t.gate.expected {
		if in != input {
			continue
		}
		c := chans[k]
		if c.idle || (c.hasWM && c.wm == MaxWatermark) {
			// An ended channel holds nothing back, but it must not stand
			// for the input either: if the others are idle, the input is
			// idle and its watermark holds (they may resume with records
			// far below the end of time).
			continue
		}
		any = true
		if !c.hasWM {
			return math.MinInt64, true
		}
		lowest = min(lowest, c.wm)
	}
	return lowest, any
}

type ender interface{ End() error }
type watermarker interface{ Watermark(int64) error }

// timer is a processing-time callback.
type timer struct {
	at  time.Time
	seq uint64
	f   func() error
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(*timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
