package sdk

import (
	"fmt"
	"iter"
	"math"
	"sync/atomic"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// Window is a span of time [Start, End) in milliseconds: event time for
// event-time windows, the wall clock for processing-time windows.
type Window struct {
	Start, End int64
}

// MaxTimestamp is the last millisecond that belongs to the window, End-1:
// the time its results carry, and the watermark at which it fires.
func (w Window) MaxTimestamp() int64 { return w.End - 1 }

// String formats w as [start, end), or "global" for the global window.
func (w Window) String() string {
	if w == globalWindow {
		return "global"
	}
	return fmt.Sprintf("[%d, %d)", w.Start, w.End)
}

// cover returns the smallest window that holds w and o.
func (w Window) cover(o Window) Window {
	return Window{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

// globalWindow is the one window of GlobalWindows: all of time.
var globalWindow = Window{Start: math.MinInt64, End: math.MaxInt64}

// Windowed is one result of a window: the key, the window's bounds and the
// value computed over its records.
type Windowed[K comparable, V any] struct {
	Key    K
	Window Window
	Value  V
}

// String formats r as "key [start, end): value".
func (r Windowed[K, V]) String() string {
	return fmt.Sprintf("%v %v: %v", r.Key, r.Window, r.Value)
}

// WindowAssigner puts each record into zero or more windows. The SDK
// provides the assigners: tumbling, sliding and session windows in event
// time and in processing time, and GlobalWindows.
type WindowAssigner interface {
	// String describes the assigner.
	String() string
	// assign appends the windows of a record with timestamp ts to dst.
	assign(dst []Window, ts int64) []Window
	eventTime() bool
	// merging says that windows merge (sessions).
	merging() bool
	defaultTrigger() Trigger
	err() error
}

// AssignerOption configures a window assigner.
type AssignerOption func(*assignerConfig)

type assignerConfig struct{ offset time.Duration }

// WithOffset shifts the windows of a tumbling or sliding assigner by d:
// with windows of a day and an offset of -8h, days start at 16:00 UTC. Its
// absolute value must be below the size (tumbling) or the slide (sliding).
func WithOffset(d time.Duration) AssignerOption { return func(c *assignerConfig) { c.offset = d } }

func assignerOptions(opts []AssignerOption) assignerConfig {
	var c assignerConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// millis converts a window parameter to milliseconds; it must be a whole
// number of them, and positive unless zeroOK.
func millis(what string, d time.Duration, zeroOK bool) (int64, error) {
	if d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%s %v is not a whole number of milliseconds", what, d)
	}
	ms := d.Milliseconds()
	if ms < 0 || (ms == 0 && !zeroOK) {
		return 0, fmt.Errorf("%s %v must be positive", what, d)
	}
	return ms, nil
}

// windowStart returns the start of the window of the given size (and
// offset) that holds ts, as Flink's TimeWindow.getWindowStartWithOffset.
func windowStart(ts, offset, size int64) int64 {
	r := (ts - offset) % size
	if r < 0 {
		r += size
	}
	return ts - r
}

// slidingAssigner is tumbling (slide == size) and sliding windows.
type slidingAssigner struct {
	size, slide, offset int64
	event               bool
	desc                string
	e                   error
}

func newSliding(desc string, event bool, size, slide time.Duration, opts []AssignerOption) *slidingAssigner {
	a := &slidingAssigner{event: event, desc: desc}
	cfg := assignerOptions(opts)
	var err error
	if a.size, err = millis("window size", size, false); err != nil {
		a.e = fmt.Errorf("%s: %w", desc, err)
		return a
	}
	if a.slide, err = millis("window slide", slide, false); err != nil {
		a.e = fmt.Errorf("%s: %w", desc, err)
		return a
	}
	off := cfg.offset
	if off < 0 {
		off = -off
	}
	if _, err := millis("window offset", off, true); err != nil {
		a.e = fmt.Errorf("%s: %w", desc, err)
		return a
	}
	a.offset = cfg.offset.Milliseconds()
	if off.Milliseconds() >= a.slide {
		a.e = fmt.Errorf("%s: offset %v: its absolute value must be below %v", desc, cfg.offset, slide)
	}
	return a
}

// TumblingEventTimeWindows puts each record in the window of the given
// size that holds its timestamp: [0, size), [size, 2*size), ... shifted by
// WithOffset.
func TumblingEventTimeWindows(size time.Duration, opts ...AssignerOption) WindowAssigner {
	return newSliding(fmt.Sprintf("TumblingEventTimeWindows(%v)", size), true, size, size, opts)
}

// SlidingEventTimeWindows puts each record in every window of the given
// size that holds its timestamp; a window starts every slide.
func SlidingEventTimeWindows(size, slide time.Duration, opts ...AssignerOption) WindowAssigner {
	return newSliding(fmt.Sprintf("SlidingEventTimeWindows(%v, %v)", size, slide), true, size, slide, opts)
}

// TumblingProcessingTimeWindows is TumblingEventTimeWindows on the wall
// clock of the operator: a record belongs to the window of the time it
// arrives, and windows fire when the clock passes their end.
func TumblingProcessingTimeWindows(size time.Duration, opts ...AssignerOption) WindowAssigner {
	return newSliding(fmt.Sprintf("TumblingProcessingTimeWindows(%v)", size), false, size, size, opts)
}

// SlidingProcessingTimeWindows is SlidingEventTimeWindows on the wall clock.
func SlidingProcessingTimeWindows(size, slide time.Duration, opts ...AssignerOption) WindowAssigner {
	return newSliding(fmt.Sprintf("SlidingProcessingTimeWindows(%v, %v)", size, slide), false, size, slide, opts)
}

func (a *slidingAssigner) assign(dst []Window, ts int64) []Window {
	// The latest window first, as Flink.
	for start := windowStart(ts, a.offset, a.slide); start > ts-a.size; start -= a.slide {
		dst = append(dst, Window{Start: start, End: start + a.size})
	}
	return dst
}

func (a *slidingAssigner) String() string  { return a.desc }
func (a *slidingAssigner) eventTime() bool { return a.event }
func (a *slidingAssigner) merging() bool   { return false }
func (a *slidingAssigner) err() error      { return a.e }
func (a *slidingAssigner) defaultTrigger() Trigger {
	if a.event {
		return EventTimeTrigger()
	}
	return ProcessingTimeTrigger()
}

type sessionAssigner struct {
	gap   int64
	event bool
	desc  string
	e     error
}

func newSession(desc string, event bool, gap time.Duration) *sessionAssigner {
	a := &sessionAssigner{event: event, desc: desc}
	var err error
	if a.gap, err = millis("session gap", gap, false); err != nil {
		a.e = fmt.Errorf("%s: %w", desc, err)
	}
	return a
}

// EventTimeSessionWindows groups the records of a key into sessions:
// a record opens the window [ts, ts+gap), and windows that overlap or
// touch merge, so a session ends after gap without records. Records that
// arrive out of order merge the sessions they bridge.
func EventTimeSessionWindows(gap time.Duration) WindowAssigner {
	return newSession(fmt.Sprintf("EventTimeSessionWindows(%v)", gap), true, gap)
}

// ProcessingTimeSessionWindows is EventTimeSessionWindows on the wall
// clock: a session ends when no record arrived for gap.
func ProcessingTimeSessionWindows(gap time.Duration) WindowAssigner {
	return newSession(fmt.Sprintf("ProcessingTimeSessionWindows(%v)", gap), false, gap)
}

func (a *sessionAssigner) assign(dst []Window, ts int64) []Window {
	return append(dst, Window{Start: ts, End: ts + a.gap})
}

func (a *sessionAssigner) String() string  { return a.desc }
func (a *sessionAssigner) eventTime() bool { return a.event }
func (a *sessionAssigner) merging() bool   { return true }
func (a *sessionAssigner) err() error      { return a.e }
func (a *sessionAssigner) defaultTrigger() Trigger {
	if a.event {
		return EventTimeTrigger()
	}
	return ProcessingTimeTrigger()
}

// GlobalWindows puts all records of a key into one window that never ends.
// It needs a trigger (WithTrigger), such as PurgingTrigger(CountTrigger(n))
// for windows of n records. The end of input does not fire it: only the
// trigger does.
func GlobalWindows() WindowAssigner { return globalAssigner{} }

type globalAssigner struct{}

func (globalAssigner) assign(dst []Window, _ int64) []Window { return append(dst, globalWindow) }
func (globalAssigner) String() string                        { return "GlobalWindows" }
func (globalAssigner) eventTime() bool                       { return false }
func (globalAssigner) merging() bool                         { return false }
func (globalAssigner) err() error                            { return nil }
func (globalAssigner) defaultTrigger() Trigger               { return nil }

// WindowOption configures the windows of WindowBy.
type WindowOption func(*windowConfig)

type windowConfig struct {
	lateness time.Duration
	trigger  Trigger
	lateTag  any // OutputTag[T]
	dropped  *atomic.Int64
}

// AllowedLateness keeps event-time windows for d after they fired: a record
// that arrives for such a window fires it again with the updated result. A
// record for a window older than that is late: it goes to the LateRecords
// side output, or is dropped. The default is 0. Processing-time windows
// ignore it.
func AllowedLateness(d time.Duration) WindowOption {
	return func(c *windowConfig) { c.lateness = d }
}

// WithTrigger replaces the assigner's default trigger.
func WithTrigger(t Trigger) WindowOption { return func(c *windowConfig) { c.trigger = t } }

// LateRecords sends records that arrive after their window was cleaned up
// to the side output tag of the window operator (read it with SideOutput on
// the operator's result stream), instead of dropping them.
func LateRecords[T any](tag OutputTag[T]) WindowOption {
	return func(c *windowConfig) { c.lateTag = tag }
}

// DroppedLateRecords adds the number of late records the window operator
// drops (those not sent to a LateRecords side output) to c, over all its
// parallel instances in this process. Each instance also logs its count at
// the end of input when it is not zero.
func DroppedLateRecords(c *atomic.Int64) WindowOption {
	return func(cfg *windowConfig) { cfg.dropped = c }
}

// WindowedStream is a keyed stream cut into windows; WindowReduce,
// WindowAggregate and WindowProcess compute its results.
type WindowedStream[K comparable, T any] struct {
	ks      *KeyedStream[K, T]
	spec    windowSpec
	lateTag string
}

// windowSpec is the configuration of a window operator, checked.
type windowSpec struct {
	assigner WindowAssigner
	trigger  Trigger
	lateness int64
	dropped  *atomic.Int64
}

// WindowBy cuts a keyed stream into windows by the assigner a. Event-time
// windows need records with timestamps (a source WithWatermarks); they
// fire when the watermark passes their end, so the end of a bounded input
// fires them all.
func WindowBy[K comparable, T any](ks *KeyedStream[K, T], a WindowAssigner, opts ...WindowOption) *WindowedStream[K, T] {
	var cfg windowConfig
	for _, o := range opts {
		o(&cfg)
	}
	ws := &WindowedStream[K, T]{ks: ks}
	spec, err := newWindowSpec(a, cfg)
	if err != nil {
		ks.job.errs = append(ks.job.errs, fmt.Errorf("windows of %s: %w", ks.v.Name, err))
	}
	ws.spec = spec
	if cfg.lateTag != nil {
		tag, ok := cfg.lateTag.(OutputTag[T])
		switch {
		case !ok:
			ks.job.errs = append(ks.job.errs, fmt.Errorf("windows of %s: late records of type %T go to a side output of type %T", ks.v.Name, *new(T), cfg.lateTag))
		case tag.id == "":
			ks.job.errs = append(ks.job.errs, fmt.Errorf("windows of %s: the late records' tag has no id", ks.v.Name))
		default:
			ws.lateTag = tag.id
		}
	}
	return ws
}

func newWindowSpec(a WindowAssigner, cfg windowConfig) (windowSpec, error) {
	s := windowSpec{assigner: a, trigger: cfg.trigger, dropped: cfg.dropped}
	if a == nil {
		return s, fmt.Errorf("no window assigner")
	}
	if err := a.err(); err != nil {
		return s, err
	}
	lateness, err := millis("allowed lateness", cfg.lateness, true)
	if err != nil {
		return s, err
	}
	s.lateness = lateness
	if s.trigger == nil {
		s.trigger = a.defaultTrigger()
	}
	if s.trigger == nil {
		return s, fmt.Errorf("%v need a trigger: add sdk.WithTrigger(...)", a)
	}
	if _, ok := s.trigger.(MergingTrigger); a.merging() && !ok {
		return s, fmt.Errorf("%v merge windows, and trigger %v does not implement MergingTrigger", a, s.trigger)
	}
	return s, nil
}

// Operator kinds of windows, as the job graph names them.
const (
	kindWindowReduce    = "window_reduce"
	kindWindowAggregate = "window_aggregate"
	kindWindowProcess   = "window_process"
	kindWindowJoin      = "window_join"
)

// WindowReduce combines the records of each key and window with f as they
// arrive, keeping one value per key and window, and emits it, with the key
// and window, whenever the window fires. The operator keeps state, so it
// needs a UID (WithUID).
func WindowReduce[K comparable, T any](ws *WindowedStream[K, T], f func(a, b T) T, opts ...Option) *Stream[Windowed[K, T]] {
	return addWindow(ws, kindWindowReduce, opts, func(tc *engine.TaskContext, _ *keyedCore[K]) (windowFuncs[K, T, T, Windowed[K, T]], error) {
		return windowFuncs[K, T, T, Windowed[K, T]]{
			add: func(acc T, created bool, v T) T {
				if created {
					return v
				}
				return f(acc, v)
			},
			merge: f,
			emit: func(k K, w Window, acc T, out *collector[Windowed[K, T]]) error {
				out.Collect(Windowed[K, T]{Key: k, Window: w, Value: acc})
				return nil
			},
		}, nil
	})
}

// WindowAggregate folds the records of each key and window into one
// accumulator with agg as they arrive, and emits agg.Result, with the key
// and window, whenever the window fires. Session windows that merge combine
// their accumulators with agg.Merge. The operator keeps state, so it needs a
// UID (WithUID).
func WindowAggregate[K comparable, T, ACC, OUT any](ws *WindowedStream[K, T], agg AggregateFunction[T, ACC, OUT], opts ...Option) *Stream[Windowed[K, OUT]] {
	if _, err := codec.For[ACC](); err != nil {
		// Accumulators are state: checkpoints will encode them.
		ws.ks.job.errs = append(ws.ks.job.errs, fmt.Errorf("window aggregate of %s: accumulator: %w", ws.ks.v.Name, err))
	}
	return addWindow(ws, kindWindowAggregate, opts, func(tc *engine.TaskContext, _ *keyedCore[K]) (windowFuncs[K, T, ACC, Windowed[K, OUT]], error) {
		agg := instance(agg)
		return windowFuncs[K, T, ACC, Windowed[K, OUT]]{
			add: func(acc ACC, created bool, v T) ACC {
				if created {
					acc = agg.CreateAccumulator()
				}
				return agg.Add(acc, v)
			},
			merge: agg.Merge,
			emit: func(k K, w Window, acc ACC, out *collector[Windowed[K, OUT]]) error {
				out.Collect(Windowed[K, OUT]{Key: k, Window: w, Value: agg.Result(acc)})
				return nil
			},
		}, nil
	})
}

// ProcessWindowFunction computes the results of a window from all its
// records, when it fires. It may emit any number of records. Implement
// Opener to set up (keyed state created there is per key, shared by the
// key's windows), and Closer to release resources; a pointer to a struct is
// copied for every parallel instance.
type ProcessWindowFunction[K comparable, T, OUT any] interface {
	// Process is called when a window fires. elements iterates over the
	// window's records in the order they arrived (sessions that merged
	// concatenate theirs, earliest session first); it is valid only during
	// the call.
	Process(ctx WindowContext[K], elements iter.Seq[T], out Collector[OUT]) error
}

// ProcessWindowFunc adapts a function to a ProcessWindowFunction.
type ProcessWindowFunc[K comparable, T, OUT any] func(ctx WindowContext[K], elements iter.Seq[T], out Collector[OUT]) error

// Process calls f.
func (f ProcessWindowFunc[K, T, OUT]) Process(ctx WindowContext[K], elements iter.Seq[T], out Collector[OUT]) error {
	return f(ctx, elements, out)
}

// WindowContext is what a ProcessWindowFunction sees of the window that
// fired. Emit sends records to side outputs with it.
type WindowContext[K comparable] interface {
	RuntimeContext
	// Key is the key of the window.
	Key() K
	// Window is the window that fired.
	Window() Window
	// CurrentWatermark is the operator's event time.
	CurrentWatermark() int64
	// CurrentProcessingTime is the wall clock in milliseconds.
	CurrentProcessingTime() int64
}

// WindowProcess keeps the records of each key and window and calls fn with
// all of them whenever the window fires. It costs memory in proportion to
// the records: prefer WindowReduce or WindowAggregate when a running value
// is enough. Records fn emits carry the window's MaxTimestamp. The operator
// keeps state, so it needs a UID (WithUID).
func WindowProcess[K comparable, T, OUT any](ws *WindowedStream[K, T], fn ProcessWindowFunction[K, T, OUT], opts ...Option) *Stream[OUT] {
	return addWindow(ws, kindWindowProcess, opts, func(tc *engine.TaskContext, core *keyedCore[K]) (windowFuncs[K, T, []T, OUT], error) {
		fn := instance(fn)
		wctx := &windowCtx[K]{core: core}
		if o, ok := fn.(Opener); ok {
			if err := openSafely(o, core.runtime()); err != nil {
				return windowFuncs[K, T, []T, OUT]{}, err
			}
		}
		wf := windowFuncs[K, T, []T, OUT]{
			add: func(list []T, _ bool, v T) []T { return append(list, v) },
			merge: func(a, b []T) []T {
				return append(a, b...)
			},
			emit: func(k K, w Window, list []T, out *collector[OUT]) error {
				wctx.win = w
				return fn.Process(wctx, listSeq(list), out)
			},
		}
		if c, ok := fn.(Closer); ok {
			wf.close = c.Close
		}
		return wf, nil
	})
}

func listSeq[T any](list []T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, v := range list {
			if !yield(v) {
				return
			}
		}
	}
}

// windowCtx implements WindowContext.
type windowCtx[K comparable] struct {
	core *keyedCore[K]
	win  Window
}

func (c *windowCtx[K]) Subtask() int                 { return c.core.tc.Subtask }
func (c *windowCtx[K]) Parallelism() int             { return c.core.tc.Parallelism }
func (c *windowCtx[K]) JobName() string              { return c.core.tc.JobName }
func (c *windowCtx[K]) state() *keyedBackend         { return c.core.be }
func (c *windowCtx[K]) Key() K                       { return c.core.cur }
func (c *windowCtx[K]) Window() Window               { return c.win }
func (c *windowCtx[K]) CurrentWatermark() int64      { return c.core.wm }
func (c *windowCtx[K]) CurrentProcessingTime() int64 { return time.Now().UnixMilli() }
func (c *windowCtx[K]) sideOutput(id string) any     { return c.core.tc.Sides[id] }
func (c *windowCtx[K]) timestamp() int64             { return c.win.MaxTimestamp() }

// joinItem is a record of either input of a window join.
type joinItem[A, B any] struct {
	second bool
	a      A
	b      B
}

// joinBuf is the records of both inputs in one window.
type joinBuf[A, B any] struct {
	as []A
	bs []B
}

// WindowJoin joins two keyed streams by key and window: when a window
// fires, join is called for every pair of a record of a and a record of b
// with equal keys in that window (an inner join), and its results are
// emitted with the window's MaxTimestamp. Both inputs' records are kept
// until their window is cleaned up, at its end (no allowed lateness); late
// records are dropped. The operator keeps state, so it needs a UID.
func WindowJoin[K comparable, A, B, OUT any](a *KeyedStream[K, A], b *KeyedStream[K, B], assigner WindowAssigner, join func(a A, b B) OUT, opts ...Option) *Stream[OUT] {
	spec, err := newWindowSpec(assigner, windowConfig{})
	if assigner != nil && assigner.defaultTrigger() == nil {
		err = fmt.Errorf("%v have no trigger of their own, and a join takes the assigner's", assigner)
	}
	if err != nil {
		a.job.errs = append(a.job.errs, fmt.Errorf("window join of %s and %s: %w", a.v.Name, b.v.Name, err))
	}
	return addTwoInput(a, b, kindWindowJoin, opts, func(tc *engine.TaskContext, op *twoInputOp[K, A, B, OUT]) error {
		w, err := newWindower(tc, op.core, spec, "", op.out, windowFuncs[K, joinItem[A, B], joinBuf[A, B], OUT]{
			add: func(buf joinBuf[A, B], _ bool, v joinItem[A, B]) joinBuf[A, B] {
				if v.second {
					buf.bs = append(buf.bs, v.b)
				} else {
					buf.as = append(buf.as, v.a)
				}
				return buf
			},
			merge: func(x, y joinBuf[A, B]) joinBuf[A, B] {
				return joinBuf[A, B]{as: append(x.as, y.as...), bs: append(x.bs, y.bs...)}
			},
			emit: func(_ K, _ Window, buf joinBuf[A, B], out *collector[OUT]) error {
				for _, x := range buf.as {
					for _, y := range buf.bs {
						out.Collect(join(x, y))
					}
				}
				return nil
			},
		})
		if err != nil {
			return err
		}
		op.first = func(v A, ts int64) error { return w.element(joinItem[A, B]{a: v}, ts) }
		op.second = func(v B, ts int64) error { return w.element(joinItem[A, B]{second: true, b: v}, ts) }
		op.endInput = w.end
		return nil
	})
}
