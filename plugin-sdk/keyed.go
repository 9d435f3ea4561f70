package sdk

import (
	"fmt"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
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
				keyedCore: newKeyedCore(tc, ks.keyCodec), fn: fn, key: ks.key,
				c: collector[OUT]{out: out.(engine.Output[OUT])},
			}
			op.ctx = keyedCtx[K]{rt: op.runtime(), op: op}
			if h, ok := fn.(TimerHandler[K, OUT]); ok {
				op.onTimer = func(_ string, ts int64, _ TimeDomain) error {
					op.c.ts = ts
					if err := h.OnTimer(&op.ctx, ts, &op.c); err != nil {
						return err
					}
					return op.c.take()
				}
			}
			if o, ok := fn.(Opener); ok {
				if err := openSafely(o, op.ctx.rt); err != nil {
					op.discard()
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
			eop := &engine.Operator{Inputs: []any{engine.Output[IN](op)}, Close: closeFn}
			if err := op.checkpoint(eop); err != nil {
				_ = closeFn()
				return nil, fmt.Errorf("%s: %w", tc.Vertex.Name, err)
			}
			return eop, nil
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

// keyedOp is one subtask of a keyed process function: the keyed core
// (state, current key, timers) and the function with its context and
// collector.
type keyedOp[K comparable, IN, OUT any] struct {
	*keyedCore[K]
	fn     KeyedProcessFunction[K, IN, OUT]
	key    func(IN) K
	ctx    keyedCtx[K]
	c      collector[OUT]
	direct directFunc[IN]
}

// directFunc is implemented by the SDK's own keyed functions (Reduce) that
// need neither context nor collector: the operator calls them with the key
// current, one call per record instead of three.
type directFunc[IN any] interface {
	bind(out any)
	processDirect(v IN, ts int64) error
}

func (o *keyedOp[K, IN, OUT]) Process(v IN, ts int64) error {
	if err := o.setKey(o.key(v)); err != nil {
		return err
	}
	o.ts = ts
	if o.direct != nil {
		return o.direct.processDirect(v, ts)
	}
	o.c.ts = ts
	if err := o.fn.ProcessElement(&o.ctx, v, &o.c); err != nil {
		return err
	}
	return o.c.take()
}

// Watermark fires the event-time timers at or below ts, in time order,
// then passes the watermark on.
func (o *keyedOp[K, IN, OUT]) Watermark(ts int64) error {
	if err := o.advanceWatermark(ts); err != nil {
		return err
	}
	return o.c.out.Watermark(ts)
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
