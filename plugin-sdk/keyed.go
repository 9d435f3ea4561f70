package sdk

import (
	"fmt"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// Process runs a keyed process function over a keyed stream. The operator
// keeps state, so it needs a UID (WithUID).
func Process[K comparable, IN, OUT any](ks *KeyedStream[K, IN], fn KeyedProcessFunction[K, IN, OUT], opts ...Option) *Stream[OUT] {
	return process(ks, kindKeyedProcess, fn, opts)
}

func process[K comparable, IN, OUT any](ks *KeyedStream[K, IN], kind string, fn KeyedProcessFunction[K, IN, OUT], opts []Option) *Stream[OUT] {
	return add[OUT](ks.job, kind, true, []engine.Edge{ks.edge()}, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			fn := instance(fn)
			op := &keyedOp[K, IN, OUT]{
				fn: fn, key: ks.key, keyCodec: ks.keyCodec, maxP: tc.MaxParallelism,
				be: newKeyedBackend(tc.KeyGroups),
				c:  collector[OUT]{out: out.(engine.Output[OUT])},
			}
			op.ctx = keyedCtx[K]{rt: rtContext{tc: tc, be: op.be}, op: op}
			op.timers = newTimers()
			op.wm = MinWatermark
			op.tc = tc
			if h, ok := fn.(TimerHandler[K, OUT]); ok {
				op.onTimer = h
			}
			if o, ok := fn.(Opener); ok {
				if err := openSafely(o, op.ctx.rt); err != nil {
					return nil, fmt.Errorf("open %s: %w", tc.Vertex.Name, err)
				}
			}
			// Expired state of keys that never come back is swept while the
			// task is idle (or between batches), a key group at a time.
			tc.OnIdle(func() error { op.be.sweep(); return nil })
			if d, ok := any(fn).(directFunc[IN]); ok {
				d.bind(out)
				op.direct = d
			}
			closeFn := func() error { return nil }
			if c, ok := fn.(Closer); ok {
				closeFn = c.Close
			}
			return &engine.Operator{Inputs: []any{engine.Output[IN](op)}, Close: closeFn}, nil
		})
}

// openSafely turns a panic in Open (such as a misused state constructor)
// into an error.
func openSafely(o Opener, ctx RuntimeContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return o.Open(ctx)
}

type keyedOp[K comparable, IN, OUT any] struct {
	tc       *engine.TaskContext
	onTimer  TimerHandler[K, OUT]
	timers   *timers
	wm       int64
	fn       KeyedProcessFunction[K, IN, OUT]
	key      func(IN) K
	keyCodec codec.Codec[K]
	maxP     int
	be       *keyedBackend
	keyBuf   []byte
	cur      K
	ctx      keyedCtx[K]
	c        collector[OUT]
	domain   TimeDomain
	direct   directFunc[IN]
}

// directFunc is implemented by the SDK's own keyed functions (Reduce) that
// need neither context nor collector: the operator calls them with the key
// current, one call per record instead of three.
type directFunc[IN any] interface {
	bind(out any)
	processDirect(v IN, ts int64) error
}

func (o *keyedOp[K, IN, OUT]) Process(v IN, ts int64) error {
	k := o.key(v)
	o.keyBuf = o.keyCodec.Append(o.keyBuf[:0], k)
	h := keygroup.Hash(o.keyBuf)
	kg := keygroup.OfHash(h, o.maxP)
	if !o.be.groups.Contains(kg) {
		return fmt.Errorf("key %v belongs to key group %d, outside this subtask's %d-%d", k, kg, o.be.groups.Start, o.be.groups.End-1)
	}
	o.be.setKey(o.keyBuf, h, kg)
	if o.direct != nil {
		return o.direct.processDirect(v, ts)
	}
	o.cur = k
	o.c.ts = ts
	if err := o.fn.ProcessElement(&o.ctx, v, &o.c); err != nil {
		return err
	}
	return o.c.take()
}

// Watermark fires the event-time timers at or below ts, in time order,
// then passes the watermark on.
func (o *keyedOp[K, IN, OUT]) Watermark(ts int64) error {
	o.wm = ts
	for {
		t, ok := o.timers.event.popDue(ts)
		if !ok {
			break
		}
		if err := o.fire(t, EventTime); err != nil {
			return err
		}
	}
	return o.c.out.Watermark(ts)
}

// fire calls the function's OnTimer for one timer, scoped to its key.
func (o *keyedOp[K, IN, OUT]) fire(t timerKey, domain TimeDomain) error {
	if o.onTimer == nil {
		return nil
	}
	o.keyBuf = append(o.keyBuf[:0], t.key...)
	o.be.setKey(o.keyBuf, keygroup.Hash(o.keyBuf), t.kg)
	k, _, err := o.keyCodec.Decode(o.keyBuf)
	if err != nil {
		return fmt.Errorf("timer key: %w", err)
	}
	o.cur = k
	o.c.ts = t.ts
	o.domain = domain
	if err := o.onTimer.OnTimer(&o.ctx, t.ts, &o.c); err != nil {
		return err
	}
	return o.c.take()
}

// fireProcessing fires the processing-time timers that are due.
func (o *keyedOp[K, IN, OUT]) fireProcessing() error {
	now := time.Now().UnixMilli()
	for {
		t, ok := o.timers.processing.popDue(now)
		if !ok {
			return nil
		}
		if err := o.fire(t, ProcessingTime); err != nil {
			return err
		}
	}
}
func (o *keyedOp[K, IN, OUT]) End() error { return o.c.out.End() }

// rtContext implements RuntimeContext.
type rtContext struct {
	tc *engine.TaskContext
	be *keyedBackend
}

func (c rtContext) Subtask() int         { return c.tc.Subtask }
func (c rtContext) Parallelism() int     { return c.tc.Parallelism }
func (c rtContext) JobName() string      { return c.tc.JobName }
func (c rtContext) state() *keyedBackend { return c.be }

type keyedCtx[K comparable] struct {
	rt rtContext
	op interface {
		currentKey() K
		timestamp() int64
		timeDomain() TimeDomain
		timerService() TimerService
	}
}

func (c *keyedCtx[K]) Subtask() int         { return c.rt.Subtask() }
func (c *keyedCtx[K]) Parallelism() int     { return c.rt.Parallelism() }
func (c *keyedCtx[K]) JobName() string      { return c.rt.JobName() }
func (c *keyedCtx[K]) state() *keyedBackend { return c.rt.be }
func (c *keyedCtx[K]) Key() K               { return c.op.currentKey() }
func (c *keyedCtx[K]) Timestamp() int64     { return c.op.timestamp() }
func (c *keyedCtx[K]) TimerService() TimerService {
	return c.op.timerService()
}
func (c *keyedCtx[K]) TimeDomain() TimeDomain   { return c.op.timeDomain() }
func (c *keyedCtx[K]) sideOutput(id string) any { return c.rt.tc.Sides[id] }
func (c *keyedCtx[K]) timestamp() int64         { return c.op.timestamp() }
func (c *keyedCtx[K]) sideFailed(err error) {
	if f, ok := c.op.(sideFailer); ok {
		f.sideFailed(err)
		return
	}
	panic(sideError{err})
}

func (o *keyedOp[K, IN, OUT]) sideFailed(err error) {
	if o.c.err == nil {
		o.c.err = fmt.Errorf("side output: %w", err)
	}
}

func (o *keyedOp[K, IN, OUT]) currentKey() K              { return o.cur }
func (o *keyedOp[K, IN, OUT]) timestamp() int64           { return o.c.ts }
func (o *keyedOp[K, IN, OUT]) timeDomain() TimeDomain     { return o.domain }
func (o *keyedOp[K, IN, OUT]) timerService() TimerService { return timerService[K, IN, OUT]{o} }

// timerService registers timers for the current key.
type timerService[K comparable, IN, OUT any] struct{ o *keyedOp[K, IN, OUT] }

func (s timerService[K, IN, OUT]) CurrentWatermark() int64 { return s.o.wm }
func (s timerService[K, IN, OUT]) CurrentProcessingTime() int64 {
	return time.Now().UnixMilli()
}
func (s timerService[K, IN, OUT]) key() timerKey {
	return timerKey{kg: s.o.be.kg + s.o.be.groups.Start, key: string(s.o.be.key)}
}
func (s timerService[K, IN, OUT]) RegisterEventTimeTimer(ts int64) {
	k := s.key()
	k.ts = ts
	s.o.timers.event.add(k)
}
func (s timerService[K, IN, OUT]) DeleteEventTimeTimer(ts int64) {
	k := s.key()
	k.ts = ts
	s.o.timers.event.remove(k)
}
func (s timerService[K, IN, OUT]) RegisterProcessingTimeTimer(ts int64) {
	k := s.key()
	k.ts = ts
	if s.o.timers.processing.add(k) {
		s.o.tc.AtProcessingTime(time.UnixMilli(ts), s.o.fireProcessing)
	}
}
func (s timerService[K, IN, OUT]) DeleteProcessingTimeTimer(ts int64) {
	k := s.key()
	k.ts = ts
	s.o.timers.processing.remove(k)
}

// Reduce keeps, per key, the running reduction of the records with f and
// emits it after every record, as Flink's reduce does.
func Reduce[K comparable, T any](ks *KeyedStream[K, T], f func(acc, v T) T, opts ...Option) *Stream[T] {
	return process(ks, kindReduce, KeyedProcessFunction[K, T, T](&reducer[K, T]{f: f}), opts)
}

type reducer[K comparable, T any] struct {
	f   func(acc, v T) T
	acc *reducingState[T]
	out engine.Output[T]
}

func (r *reducer[K, T]) bind(out any) { r.out = out.(engine.Output[T]) }

func (r *reducer[K, T]) processDirect(v T, ts int64) error {
	return r.out.Process(r.acc.addGet(v), ts)
}

func (r *reducer[K, T]) Open(ctx RuntimeContext) error {
	r.acc = NewReducingState(ctx, "reduce", r.f).(*reducingState[T])
	return nil
}

func (r *reducer[K, T]) ProcessElement(_ KeyedContext[K], v T, out Collector[T]) error {
	out.Collect(r.acc.addGet(v))
	return nil
}
