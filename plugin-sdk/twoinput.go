package sdk

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// This file holds the building blocks of keyed operators other than
// Process: keyedCore, the per-subtask key, state and timer machinery, and
// twoInputOp, a keyed operator with two inputs (window joins build on it).
// Both are internal: operators build on them, users see only the typed
// functions that add the operators.
//
// Using them, in short:
//
//	return addTwoInput(a, b, kindX, opts, func(tc *engine.TaskContext, op *twoInputOp[K, A, B, OUT]) error {
//		// op.core: keyed backend (register state with op.core.runtime()),
//		// timers, current key; op.out: the main output.
//		op.first = func(v A, ts int64) error { ... }  // v's key is current
//		op.second = func(v B, ts int64) error { ... }
//		op.core.onTimer = func(ns string, ts int64, d TimeDomain) error { ... }
//		return nil
//	})
//
// A function that wants a KeyedContext[K] (key, timestamp, TimerService)
// gets one with keyedCtx[K]{rt: op.core.runtime(), op: op.core}.

// keyedCore is what every keyed operator subtask has: the keyed backend
// (state by key group), the current key, the current record's timestamp,
// the watermark, and timers per key. Timers may carry a namespace (a window,
// for window operators): a timer is (time, key, namespace), and the
// namespace is handed back to onTimer when it fires. All its methods run in
// the task's goroutine.
type keyedCore[K comparable] struct {
	tc       *engine.TaskContext
	be       *keyedBackend
	keyCodec codec.Codec[K]
	maxP     int
	keyBuf   []byte
	tbuf     []byte // scratch for timer keys
	cur      K
	ts       int64 // the record's timestamp, or the firing timer's time
	domain   TimeDomain
	wm       int64
	timers   *timers
	// pbErr is why the Pebble store of the state could not be opened.
	pbErr error
	// onTimer is called for each timer that fires, with its key current and
	// the namespace it was registered with.
	onTimer func(ns string, ts int64, domain TimeDomain) error
}

func newKeyedCore[K comparable](tc *engine.TaskContext, keyCodec codec.Codec[K]) *keyedCore[K] {
	c := &keyedCore[K]{
		tc: tc, be: newKeyedBackend(tc.KeyGroups), keyCodec: keyCodec, maxP: tc.MaxParallelism,
		wm: MinWatermark, ts: NoTimestamp, timers: newTimers(),
		onTimer: func(string, int64, TimeDomain) error { return nil },
	}
	if b := stateBackendOf(tc.Ctx); b.pebble != nil {
		// A database that cannot be made fails the operator's build in
		// checkpoint, which every keyed operator calls.
		c.be.pb, c.pbErr = openPebbleBackend(tc, b.pebble)
		if c.pbErr != nil {
			c.be.pb = nil
		}
	}
	return c
}

// runtime returns the RuntimeContext of the operator, through which state
// constructors reach the backend.
func (c *keyedCore[K]) runtime() rtContext { return rtContext{tc: c.tc, be: c.be} }

// checkpoint makes op, the operator of the core, take part in checkpoints:
// its Snapshot writes the core's keyed state and timers by key group. When
// the task restores, the restored key groups are read back now, so it must
// be called after the operator's functions registered their states (after
// Open). Restored processing-time timers are scheduled with the task.
// Operator-level values that are not keyed (the watermark) start afresh,
// as in Flink: the inputs bring the watermark again.
func (c *keyedCore[K]) checkpoint(op *engine.Operator) (err error) {
	if c.pbErr != nil {
		return c.pbErr
	}
	pb := c.be.pb
	if pb != nil {
		closeFn := op.Close
		op.Close = func() error {
			err := closeFn()
			if cerr := pb.close(); err == nil {
				err = cerr
			}
			return err
		}
		defer func() {
			if err != nil {
				_ = pb.close()
			}
		}()
		op.CheckpointComplete = chainNotify(op.CheckpointComplete, func(id uint64) error { pb.complete(id); return nil })
		op.CheckpointAborted = chainNotify(op.CheckpointAborted, func(id uint64) error { pb.aborted(id); return nil })
	}
	op.Snapshot = func(cp engine.CheckpointOptions) (*engine.OperatorSnapshot, error) {
		if pb != nil && !cp.Savepoint {
			// The state is in the database's files, uploaded off the
			// task's goroutine; the timers are in the key-group blobs.
			groups, err := snapshotTimers(c.be, c.timers)
			if err != nil {
				return nil, err
			}
			s, err := pb.snapshot(cp.ID)
			if err != nil {
				return nil, err
			}
			return &engine.OperatorSnapshot{KeyGroups: groups, Incremental: s}, nil
		}
		// In memory, and savepoints on Pebble: the state is frozen here
		// and its canonical blobs, which restore into either backend, are
		// written off the task's goroutine.
		f, err := freezeKeyed(c.be, c.timers, cp.Savepoint)
		if err != nil {
			return nil, err
		}
		return &engine.OperatorSnapshot{Deferred: f}, nil
	}
	r := c.tc.Restored
	if r == nil {
		return nil
	}
	if len(r.Items) > 0 && !c.tc.AllowNonRestored {
		return fmt.Errorf("restore: %d items of operator state for a keyed operator (another kind of operator had this uid?)", len(r.Items))
	}
	if len(r.Restored) > 0 {
		if pb == nil {
			if err := restoreIncrementalInMemory(c.tc.Ctx, c.be, r.Restored, c.tc.AllowNonRestored); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		} else if err := pb.restore(c.tc.Ctx, r.Restored); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := restoreKeyed(c.be, c.timers, r.KeyGroups, c.tc.AllowNonRestored); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	times := map[int64]bool{}
	for t := range c.timers.processing.set {
		if !times[t.ts] {
			times[t.ts] = true
			c.tc.AtProcessingTime(time.UnixMilli(t.ts), c.fireProcessing)
		}
	}
	return nil
}

// discard releases the core's state store when its operator is not built
// (checkpoint was not reached).
func (c *keyedCore[K]) discard() {
	if c.be.pb != nil {
		_ = c.be.pb.close()
		c.be.pb = nil
	}
}

// chainNotify returns a checkpoint notification that calls f, then g.
func chainNotify(f, g func(id uint64) error) func(id uint64) error {
	if f == nil {
		return g
	}
	return func(id uint64) error {
		if err := f(id); err != nil {
			return err
		}
		return g(id)
	}
}

// setKey makes k the current key of the backend and of timers.
func (c *keyedCore[K]) setKey(k K) error {
	c.keyBuf = c.keyCodec.Append(c.keyBuf[:0], k)
	h := keygroup.Hash(c.keyBuf)
	kg := keygroup.OfHash(h, c.maxP)
	if !c.be.groups.Contains(kg) {
		return fmt.Errorf("key %v belongs to key group %d, outside this subtask's %d-%d", k, kg, c.be.groups.Start, c.be.groups.End-1)
	}
	c.be.setKey(c.keyBuf, h, kg)
	c.cur = k
	if c.be.pb != nil && c.be.pb.err != nil {
		return c.be.pb.err
	}
	return nil
}

// timerBytes returns the key of the current key's timers in namespace ns:
// the encoded key followed by ns.
func (c *keyedCore[K]) timerBytes(ns []byte) []byte {
	c.tbuf = append(append(c.tbuf[:0], c.be.key...), ns...)
	return c.tbuf
}

// addTimer registers the current key's timer at ts in namespace ns and
// reports whether it is new. Registering the same timer for every record
// is common (a window's end), so it is looked up first without building
// its key string (the map index with a conversion does not allocate).
func (c *keyedCore[K]) addTimer(q *timerQueue, ns []byte, ts int64) bool {
	b, kg := c.timerBytes(ns), c.be.kg+c.be.groups.Start
	if _, dup := q.set[timerKey{ts: ts, kg: kg, key: string(b)}]; dup {
		return false
	}
	return q.add(timerKey{ts: ts, kg: kg, key: string(b)})
}

func (c *keyedCore[K]) removeTimer(q *timerQueue, ns []byte, ts int64) {
	q.remove(timerKey{ts: ts, kg: c.be.kg + c.be.groups.Start, key: string(c.timerBytes(ns))})
}

func (c *keyedCore[K]) registerEventTimer(ns []byte, ts int64) { c.addTimer(&c.timers.event, ns, ts) }
func (c *keyedCore[K]) deleteEventTimer(ns []byte, ts int64)   { c.removeTimer(&c.timers.event, ns, ts) }

func (c *keyedCore[K]) registerProcessingTimer(ns []byte, ts int64) {
	if c.addTimer(&c.timers.processing, ns, ts) {
		c.tc.AtProcessingTime(time.UnixMilli(ts), c.fireProcessing)
	}
}

func (c *keyedCore[K]) deleteProcessingTimer(ns []byte, ts int64) {
	c.removeTimer(&c.timers.processing, ns, ts)
}

// fire makes a timer's key current and calls onTimer. The namespace is
// whatever follows the encoded key in the timer: key codecs are
// self-delimiting.
func (c *keyedCore[K]) fire(t timerKey, domain TimeDomain) error {
	c.keyBuf = append(c.keyBuf[:0], t.key...)
	k, n, err := c.keyCodec.Decode(c.keyBuf)
	if err != nil {
		return fmt.Errorf("timer key: %w", err)
	}
	c.be.setKey(c.keyBuf[:n], keygroup.Hash(c.keyBuf[:n]), t.kg)
	c.cur, c.ts, c.domain = k, t.ts, domain
	if c.be.pb != nil && c.be.pb.err != nil {
		return c.be.pb.err
	}
	return c.onTimer(t.key[n:], t.ts, domain)
}

// advanceWatermark fires the event-time timers at or below wm, in time
// order. The caller passes the watermark on afterwards.
func (c *keyedCore[K]) advanceWatermark(wm int64) error {
	c.wm = wm
	for {
		t, ok := c.timers.event.popDue(wm)
		if !ok {
			return nil
		}
		if err := c.fire(t, EventTime); err != nil {
			return err
		}
	}
}

// fireProcessing fires the processing-time timers that are due.
func (c *keyedCore[K]) fireProcessing() (err error) {
	defer catchSide(&err)
	return c.fireProcessingUntil(time.Now().UnixMilli())
}

func (c *keyedCore[K]) fireProcessingUntil(now int64) error {
	for {
		t, ok := c.timers.processing.popDue(now)
		if !ok {
			return nil
		}
		if err := c.fire(t, ProcessingTime); err != nil {
			return err
		}
	}
}

// fireAllProcessing fires every pending processing-time timer, as if the
// clock had jumped past the latest of them: at the end of input there is no
// later time to wait for. Timers registered meanwhile beyond that time are
// left, so that a trigger that re-arms itself cannot loop.
func (c *keyedCore[K]) fireAllProcessing() error {
	last := int64(math.MinInt64)
	for t := range c.timers.processing.set {
		last = max(last, t.ts)
	}
	return c.fireProcessingUntil(last)
}

// The methods keyedCtx needs, so that functions of operators built on a
// core get a KeyedContext whose TimerService registers timers without
// namespace.
func (c *keyedCore[K]) currentKey() K              { return c.cur }
func (c *keyedCore[K]) timestamp() int64           { return c.ts }
func (c *keyedCore[K]) timeDomain() TimeDomain     { return c.domain }
func (c *keyedCore[K]) timerService() TimerService { return coreTimerService[K]{c} }

// coreTimerService is the TimerService of a core: timers of the current key
// with an empty namespace.
type coreTimerService[K comparable] struct{ c *keyedCore[K] }

func (s coreTimerService[K]) CurrentWatermark() int64         { return s.c.wm }
func (s coreTimerService[K]) CurrentProcessingTime() int64    { return time.Now().UnixMilli() }
func (s coreTimerService[K]) RegisterEventTimeTimer(ts int64) { s.c.registerEventTimer(nil, ts) }
func (s coreTimerService[K]) DeleteEventTimeTimer(ts int64)   { s.c.deleteEventTimer(nil, ts) }
func (s coreTimerService[K]) RegisterProcessingTimeTimer(ts int64) {
	s.c.registerProcessingTimer(nil, ts)
}
func (s coreTimerService[K]) DeleteProcessingTimeTimer(ts int64) { s.c.deleteProcessingTimer(nil, ts) }

// twoInputOp is one subtask of a keyed operator with two inputs, first (A)
// and second (B), both partitioned by a key of type K so that the records
// of one key from both meet in one subtask and share its keyed state and
// timers. It makes each record's key current before calling first or
// second, keeps the operator's watermark at the minimum of its inputs'
// that are not idle (firing event-time timers as it rises, then passing it
// on), and ends its output when both inputs have ended. The setup function of addTwoInput
// fills in first, second and, as needed, core.onTimer, endInput and close.
type twoInputOp[K comparable, A, B, OUT any] struct {
	core *keyedCore[K]
	out  engine.Output[OUT]
	keyA func(A) K
	keyB func(B) K

	// first and second handle a record of each input, its key current.
	first  func(v A, ts int64) error
	second func(v B, ts int64) error
	// endInput, if set, runs when both inputs have ended (after the final
	// watermark), before the output ends.
	endInput func() error
	// close, if set, releases resources when the task ends.
	close func() error

	wms   [2]int64
	idle  [2]bool // the input is idle as a whole
	ended [2]bool
}

// addTwoInput adds a keyed two-input operator reading a and b. The
// operator is stateful (it needs a UID). setup is called once per subtask,
// with op.core and op.out set.
func addTwoInput[K comparable, A, B, OUT any](a *KeyedStream[K, A], b *KeyedStream[K, B], kind string, opts []Option,
	setup func(tc *engine.TaskContext, op *twoInputOp[K, A, B, OUT]) error) *Stream[OUT] {
	if a.job != b.job {
		a.job.errs = append(a.job.errs, fmt.Errorf("%s of streams of different jobs", kind))
	}
	return add[OUT](a.job, kind, true, []engine.Edge{a.edge(), b.edge()}, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			op := &twoInputOp[K, A, B, OUT]{
				core: newKeyedCore(tc, a.keyCodec), out: out.(engine.Output[OUT]),
				keyA: a.key, keyB: b.key, wms: [2]int64{MinWatermark, MinWatermark},
			}
			if err := setup(tc, op); err != nil {
				op.core.discard()
				return nil, fmt.Errorf("open %s: %w", tc.Vertex.Name, err)
			}
			if op.first == nil || op.second == nil {
				op.core.discard()
				return nil, errors.New("two-input operator without input handlers")
			}
			closeFn := op.close
			if closeFn == nil {
				closeFn = func() error { return nil }
			}
			eop := &engine.Operator{
				Inputs: []any{engine.Output[A](firstInput[K, A, B, OUT]{op}), engine.Output[B](secondInput[K, A, B, OUT]{op})},
				Close:  closeFn,
			}
			if err := op.core.checkpoint(eop); err != nil {
				_ = closeFn()
				return nil, fmt.Errorf("%s: %w", tc.Vertex.Name, err)
			}
			return eop, nil
		})
}

// watermark records input i's watermark and advances the operator's.
func (o *twoInputOp[K, A, B, OUT]) watermark(i int, ts int64) error {
	o.wms[i] = max(o.wms[i], ts)
	return o.advance()
}

// advance fires the timers up to the minimum watermark of the inputs that
// are not idle, and passes it on, when it rose. While both inputs are idle
// the watermark holds.
func (o *twoInputOp[K, A, B, OUT]) advance() (err error) {
	defer catchSide(&err)
	wm, active := MaxWatermark, false
	for i := range o.wms {
		if o.idle[i] {
			continue
		}
		active = true
		wm = min(wm, o.wms[i])
	}
	if !active || wm <= o.core.wm {
		return nil
	}
	if err := o.core.advanceWatermark(wm); err != nil {
		return err
	}
	return o.out.Watermark(wm)
}

// inputIdle excludes input i from the watermark while it is idle as a
// whole (the engine says so), as Flink's two-input operators do.
func (o *twoInputOp[K, A, B, OUT]) inputIdle(i int, idle bool) error {
	o.idle[i] = idle && !o.ended[i]
	return o.advance()
}

// end ends input i; the output ends with the second.
func (o *twoInputOp[K, A, B, OUT]) end(i int) (err error) {
	defer catchSide(&err)
	if o.ended[i] {
		return nil
	}
	o.ended[i], o.idle[i], o.wms[i] = true, false, MaxWatermark
	if err := o.advance(); err != nil {
		return err
	}
	if !o.ended[0] || !o.ended[1] {
		return nil
	}
	if o.endInput != nil {
		if err := o.endInput(); err != nil {
			return err
		}
	}
	return o.out.End()
}

type firstInput[K comparable, A, B, OUT any] struct{ op *twoInputOp[K, A, B, OUT] }

func (in firstInput[K, A, B, OUT]) Process(v A, ts int64) (err error) {
	defer catchSide(&err)
	if err := in.op.core.setKey(in.op.keyA(v)); err != nil {
		return err
	}
	in.op.core.ts = ts
	return in.op.first(v, ts)
}
func (in firstInput[K, A, B, OUT]) Watermark(ts int64) error  { return in.op.watermark(0, ts) }
func (in firstInput[K, A, B, OUT]) End() error                { return in.op.end(0) }
func (in firstInput[K, A, B, OUT]) InputIdle(idle bool) error { return in.op.inputIdle(0, idle) }

type secondInput[K comparable, A, B, OUT any] struct{ op *twoInputOp[K, A, B, OUT] }

func (in secondInput[K, A, B, OUT]) Process(v B, ts int64) (err error) {
	defer catchSide(&err)
	if err := in.op.core.setKey(in.op.keyB(v)); err != nil {
		return err
	}
	in.op.core.ts = ts
	return in.op.second(v, ts)
}
func (in secondInput[K, A, B, OUT]) Watermark(ts int64) error  { return in.op.watermark(1, ts) }
func (in secondInput[K, A, B, OUT]) End() error                { return in.op.end(1) }
func (in secondInput[K, A, B, OUT]) InputIdle(idle bool) error { return in.op.inputIdle(1, idle) }
