package sdk

import "github.com/eddy-streams/eddy/plugin-sdk/internal/engine"

// Operator kinds of the two-input operators of this file and of
// intervaljoin.go, as the job graph names them.
const (
	kindCoProcess    = "co_process"
	kindIntervalJoin = "interval_join"
)

// ConnectedStreams is two keyed streams with the same key type, connected
// so that one two-input operator (CoProcess) reads both: the records of
// both inputs with equal keys reach the same parallel instance, which
// keeps one keyed state and one set of timers per key for both.
type ConnectedStreams[K comparable, A, B any] struct {
	first  *KeyedStream[K, A]
	second *KeyedStream[K, B]
}

// Connect connects two keyed streams, as Flink's connect: a CoProcess over
// them sees the records of a and of b, each with its key current. Both
// streams are partitioned by their own key functions into the same key
// type K, encoded and hashed with K's codec, so that equal keys of a and b
// land in the same key group and so in the same subtask.
func Connect[K comparable, A, B any](a *KeyedStream[K, A], b *KeyedStream[K, B]) *ConnectedStreams[K, A, B] {
	return &ConnectedStreams[K, A, B]{first: a, second: b}
}

// KeyedCoProcessFunction processes the records of two connected keyed
// streams, with keyed state and timers scoped to the record's key and
// shared by both inputs: a record of the first input calls
// ProcessElement1, one of the second ProcessElement2. They are never
// called concurrently within a subtask; how the records of the two inputs
// interleave is not defined (use event time and timers where it matters).
// Implement Opener to create state handles, Closer to release resources,
// and TimerHandler to use timers.
type KeyedCoProcessFunction[K comparable, A, B, OUT any] interface {
	ProcessElement1(ctx KeyedContext[K], a A, out Collector[OUT]) error
	ProcessElement2(ctx KeyedContext[K], b B, out Collector[OUT]) error
}

// CoProcess runs a keyed co-process function over connected streams, as
// Flink's connect(...).process(KeyedCoProcessFunction). Its event time is
// the minimum of the watermarks of its two inputs (an input that is idle
// as a whole does not count), so an event-time timer fires only when both
// inputs have passed it; its input ends, and the final watermark fires the
// remaining timers, when both inputs have ended. Records emitted from
// ProcessElement1/2 carry the record's timestamp, from OnTimer the
// timer's. The operator keeps state, so it needs a UID (WithUID).
func CoProcess[K comparable, A, B, OUT any](cs *ConnectedStreams[K, A, B], fn KeyedCoProcessFunction[K, A, B, OUT], opts ...Option) *Stream[OUT] {
	if cs == nil || cs.first == nil || cs.second == nil {
		panic("sdk: CoProcess of a nil stream")
	}
	return addTwoInput(cs.first, cs.second, kindCoProcess, opts,
		func(tc *engine.TaskContext, op *twoInputOp[K, A, B, OUT]) error {
			fn := instance(fn)
			ctx := &keyedCtx[K]{rt: op.core.runtime(), op: op.core}
			c := &collector[OUT]{out: op.out}
			op.first = func(v A, ts int64) error {
				c.ts = ts
				if err := fn.ProcessElement1(ctx, v, c); err != nil {
					return err
				}
				return c.take()
			}
			op.second = func(v B, ts int64) error {
				c.ts = ts
				if err := fn.ProcessElement2(ctx, v, c); err != nil {
					return err
				}
				return c.take()
			}
			if h, ok := fn.(TimerHandler[K, OUT]); ok {
				op.core.onTimer = func(_ string, ts int64, _ TimeDomain) error {
					c.ts = ts
					if err := h.OnTimer(ctx, ts, c); err != nil {
						return err
					}
					return c.take()
				}
			}
			if o, ok := fn.(Opener); ok {
				if err := openSafely(o, ctx.rt); err != nil {
					return err
				}
			}
			if cl, ok := fn.(Closer); ok {
				op.close = cl.Close
			}
			return nil
		})
}
