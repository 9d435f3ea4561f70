package sdk

import (
	"encoding/binary"
	"fmt"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// The window operator follows Flink's WindowOperator. Per key and window it
// keeps the window's contents S (an accumulator, or the records) and its
// trigger's state; per key, for session windows, the key's open sessions.
// All three live in per-key-group tables of the operator's keyed backend,
// keyed by the encoded key followed by the window, so that they can be
// snapshotted and redistributed by key group like any keyed state. Timers
// are the core's, namespaced by window.
//
// A window lives until its cleanup time, MaxTimestamp plus the allowed
// lateness (event time) or MaxTimestamp (processing time): then its
// contents and trigger state are dropped. A record whose windows are all
// past their cleanup time is late.

// windowFuncs is what distinguishes reduce, aggregate, process and join:
// how a record enters a window's contents, how two windows' contents merge
// (sessions), and what a firing emits.
type windowFuncs[K comparable, T, S, OUT any] struct {
	add   func(s S, created bool, v T) S
	merge func(a, b S) S
	emit  func(k K, w Window, s S, out *collector[OUT]) error
	close func() error
}

// nsTable is a state of the window operator, keyed by the encoded key
// (and window), in the backend's store (tables).
type nsTable[V any] struct{ tab tables[V] }

func newNSTable[V any](be *keyedBackend) *nsTable[V] {
	return &nsTable[V]{tab: newTables[V](be, stateConfig{})}
}

// nsKey is a table key: the group (relative to the backend's range), the
// key bytes and their hash.
type nsKey struct {
	kg   int
	hash uint64
	key  []byte
}

func (s *nsTable[V]) get(k nsKey) *entry[V]         { return s.tab.getAt(k.kg, k.hash, k.key) }
func (s *nsTable[V]) put(k nsKey) (*entry[V], bool) { return s.tab.putAt(k.kg, k.hash, k.key) }
func (s *nsTable[V]) del(k nsKey)                   { s.tab.delAt(k.kg, k.hash, k.key) }

// len returns the number of entries over all key groups.
func (s *nsTable[V]) len() int { return s.tab.len() }

// windowBytes is the encoding of a window in state keys and timers: start
// and end, big-endian with the sign flipped, so that bytes sort as numbers.
const windowBytes = 16

func appendWindow(dst []byte, w Window) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(w.Start)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, uint64(w.End)^(1<<63))
}

func decodeWindow(b string) (Window, error) {
	if len(b) != windowBytes {
		return Window{}, fmt.Errorf("window timer: %d bytes of window", len(b))
	}
	start := binary.BigEndian.Uint64([]byte(b[:8])) ^ (1 << 63)
	end := binary.BigEndian.Uint64([]byte(b[8:])) ^ (1 << 63)
	return Window{Start: int64(start), End: int64(end)}, nil
}

// windower is the window logic of one operator subtask, for operators with
// one input (windowOp) or two (window joins). The caller makes the record's
// key current in core before element.
type windower[K comparable, T, S, OUT any] struct {
	core     *keyedCore[K]
	spec     windowSpec
	trigger  Trigger
	fns      windowFuncs[K, T, S, OUT]
	name     string
	subtask  int
	contents *nsTable[S]
	tstate   *nsTable[map[string]int64]
	sessions *nsTable[[]Window] // by key: the key's sessions, sorted, apart
	out      collector[OUT]
	late     engine.Output[T] // the late records' side output, or nil
	dropped  int64
	tctx     triggerCtx[K, T, S, OUT]

	windows []Window // scratch
	merged  []Window
	nsBuf   []byte
	wbuf    []byte
}

func newWindower[K comparable, T, S, OUT any](tc *engine.TaskContext, core *keyedCore[K], spec windowSpec, lateTag string,
	out engine.Output[OUT], fns windowFuncs[K, T, S, OUT]) (w *windower[K, T, S, OUT], err error) {
	defer func() {
		// A state name taken by the user's function panics in register.
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	rt := core.runtime()
	w = &windower[K, T, S, OUT]{
		core: core, spec: spec, trigger: instance(spec.trigger), fns: fns,
		name: tc.Vertex.Name, subtask: tc.Subtask,
		contents: register(rt, "_window.contents", newNSTable[S]),
		tstate:   register(rt, "_window.trigger", newNSTable[map[string]int64]),
		sessions: register(rt, "_window.sessions", newNSTable[[]Window]),
		out:      collector[OUT]{out: out},
	}
	w.tctx.w = w
	if lateTag != "" {
		w.late, _ = tc.Sides[lateTag].(engine.Output[T])
	}
	core.onTimer = w.onTimer
	return w, nil
}

// at returns the state key of the current key and window win.
func (w *windower[K, T, S, OUT]) at(win Window) nsKey {
	be := w.core.be
	w.nsBuf = appendWindow(append(w.nsBuf[:0], be.key...), win)
	return nsKey{kg: be.kg, hash: keygroup.Hash(w.nsBuf), key: w.nsBuf}
}

// keyOnly returns the state key of the current key.
func (w *windower[K, T, S, OUT]) keyOnly() nsKey {
	be := w.core.be
	return nsKey{kg: be.kg, hash: be.hash, key: be.key}
}

// windowNS returns the namespace of win's timers.
func (w *windower[K, T, S, OUT]) windowNS(win Window) []byte {
	w.wbuf = appendWindow(w.wbuf[:0], win)
	return w.wbuf
}

// element adds a record of the current key to its windows.
func (w *windower[K, T, S, OUT]) element(v T, ts int64) error {
	if w.spec.assigner.eventTime() {
		if ts == NoTimestamp {
			return fmt.Errorf("%v: a record without a timestamp: give the source a watermark strategy (sdk.WithWatermarks), or use processing-time windows", w.spec.assigner)
		}
	} else {
		ts = time.Now().UnixMilli()
	}
	w.windows = w.spec.assigner.assign(w.windows[:0], ts)
	if w.spec.assigner.merging() {
		return w.sessionElement(v, ts, w.windows[0])
	}
	skipped := true
	for _, win := range w.windows {
		if w.isLate(win) {
			continue
		}
		skipped = false
		if err := w.addTo(win, v, ts); err != nil {
			return err
		}
	}
	if skipped && w.isElementLate(ts) {
		// Not merely in a gap between sliding windows: late.
		return w.lateRecord(v, ts)
	}
	return nil
}

// isElementLate reports whether an event-time record is older than the
// watermark by more than the allowed lateness.
func (w *windower[K, T, S, OUT]) isElementLate(ts int64) bool {
	t := ts + w.spec.lateness
	return w.spec.assigner.eventTime() && t >= ts && t <= w.core.wm
}

// addTo adds v to win's contents, asks the trigger, and makes sure the
// window will be cleaned up.
func (w *windower[K, T, S, OUT]) addTo(win Window, v T, ts int64) error {
	e, created := w.contents.put(w.at(win))
	e.val = w.fns.add(e.val, created, v)
	w.tctx.win = win
	if err := w.apply(win, w.trigger.OnElement(&w.tctx, ts, win)); err != nil {
		return err
	}
	w.registerCleanup(win)
	return nil
}

// apply carries out a trigger's decision for win.
func (w *windower[K, T, S, OUT]) apply(win Window, res TriggerResult) error {
	if res.fires() {
		if e := w.contents.get(w.at(win)); e != nil {
			w.out.ts = win.MaxTimestamp()
			if err := w.fns.emit(w.core.cur, win, e.val, &w.out); err != nil {
				return err
			}
			if err := w.out.take(); err != nil {
				return err
			}
		}
	}
	if res.purges() {
		w.contents.del(w.at(win))
	}
	return nil
}

// lateRecord sends a record that came after all its windows were cleaned
// up to the side output, or counts it as dropped.
func (w *windower[K, T, S, OUT]) lateRecord(v T, ts int64) error {
	if w.late != nil {
		return w.late.Process(v, ts)
	}
	w.dropped++
	if w.spec.dropped != nil {
		w.spec.dropped.Add(1)
	}
	return nil
}

// cleanupTime is when win's state goes: math.MaxInt64 for never.
func (w *windower[K, T, S, OUT]) cleanupTime(win Window) int64 {
	if win == globalWindow {
		return math.MaxInt64
	}
	if !w.spec.assigner.eventTime() {
		return win.MaxTimestamp()
	}
	t := win.MaxTimestamp() + w.spec.lateness
	if t < win.MaxTimestamp() {
		return math.MaxInt64
	}
	return t
}

// isLate reports whether an event-time window is past its cleanup time.
func (w *windower[K, T, S, OUT]) isLate(win Window) bool {
	return w.spec.assigner.eventTime() && w.cleanupTime(win) <= w.core.wm
}

func (w *windower[K, T, S, OUT]) registerCleanup(win Window) {
	t := w.cleanupTime(win)
	switch {
	case t == math.MaxInt64:
	case w.spec.assigner.eventTime():
		w.core.registerEventTimer(w.windowNS(win), t)
	default:
		w.core.registerProcessingTimer(w.windowNS(win), t)
	}
}

func (w *windower[K, T, S, OUT]) deleteCleanup(win Window) {
	t := w.cleanupTime(win)
	switch {
	case t == math.MaxInt64:
	case w.spec.assigner.eventTime():
		w.core.deleteEventTimer(w.windowNS(win), t)
	default:
		w.core.deleteProcessingTimer(w.windowNS(win), t)
	}
}

// onTimer handles a timer of the current key: the trigger's, the cleanup,
// or both.
func (w *windower[K, T, S, OUT]) onTimer(ns string, ts int64, domain TimeDomain) error {
	win, err := decodeWindow(ns)
	if err != nil {
		return err
	}
	if w.spec.assigner.merging() && !slices.Contains(w.sessionsOf(), win) {
		// A timer of a session that was merged away.
		return nil
	}
	w.tctx.win = win
	var res TriggerResult
	if domain == EventTime {
		res = w.trigger.OnEventTime(&w.tctx, ts, win)
	} else {
		res = w.trigger.OnProcessingTime(&w.tctx, ts, win)
	}
	if err := w.apply(win, res); err != nil {
		return err
	}
	if w.spec.assigner.eventTime() == (domain == EventTime) && ts == w.cleanupTime(win) {
		w.clear(win)
	}
	return nil
}

// clear drops everything of win.
func (w *windower[K, T, S, OUT]) clear(win Window) {
	w.contents.del(w.at(win))
	w.tctx.win = win
	w.trigger.Clear(&w.tctx, win)
	w.tstate.del(w.at(win))
	if w.spec.assigner.merging() {
		w.removeSession(win)
	}
}

func (w *windower[K, T, S, OUT]) sessionsOf() []Window {
	if e := w.sessions.get(w.keyOnly()); e != nil {
		return e.val
	}
	return nil
}

func (w *windower[K, T, S, OUT]) removeSession(win Window) {
	k := w.keyOnly()
	e := w.sessions.get(k)
	if e == nil {
		return
	}
	if i := slices.Index(e.val, win); i >= 0 {
		e.val = slices.Delete(e.val, i, i+1)
	}
	if len(e.val) == 0 {
		w.sessions.del(k)
	}
}

// sessionElement adds a record to the session it opens, nw, merging nw
// with every session of the key that it overlaps or touches.
func (w *windower[K, T, S, OUT]) sessionElement(v T, ts int64, nw Window) error {
	e, _ := w.sessions.put(w.keyOnly())
	list := e.val
	// The sessions are sorted and apart, so the ones nw touches are a run.
	// Touching counts, as in Flink's TimeWindow.intersects: sessions whose
	// records are gap apart are one.
	lo, _ := slices.BinarySearchFunc(list, nw.Start, func(s Window, start int64) int {
		if s.End < start {
			return -1
		}
		return 1
	})
	hi := lo
	for hi < len(list) && list[hi].Start <= nw.End {
		hi++
	}
	actual := nw
	switch {
	case lo == hi:
		e.val = slices.Insert(list, lo, nw)
	case hi-lo == 1 && list[lo].cover(nw) == list[lo]:
		actual = list[lo]
	default:
		merged := append(w.merged[:0], list[lo:hi]...)
		w.merged = merged
		for _, m := range merged {
			actual = actual.cover(m)
		}
		e.val = slices.Replace(list, lo, hi, actual)
		w.mergeSessions(actual, merged)
	}
	if w.isLate(actual) {
		// Only a new session can be late: the others were cleaned up.
		w.removeSession(actual)
		return w.lateRecord(v, ts)
	}
	return w.addTo(actual, v, ts)
}

// mergeSessions moves the contents and trigger state of merged into into,
// and moves their timers: the trigger registers into's (OnMerge) and
// deletes theirs (Clear), and their cleanup timers go.
func (w *windower[K, T, S, OUT]) mergeSessions(into Window, merged []Window) {
	var acc S
	have := false
	var counts map[string]int64
	for _, m := range merged {
		k := w.at(m)
		if e := w.contents.get(k); e != nil {
			if have {
				acc = w.fns.merge(acc, e.val)
			} else {
				acc, have = e.val, true
			}
			w.contents.del(k)
		}
		if e := w.tstate.get(k); e != nil {
			for name, v := range e.val {
				if counts == nil {
					counts = map[string]int64{}
				}
				counts[name] += v
			}
			w.tstate.del(k)
		}
	}
	k := w.at(into)
	if have {
		e, created := w.contents.put(k)
		if created {
			e.val = acc
		} else {
			e.val = w.fns.merge(e.val, acc)
		}
	}
	for name, v := range counts {
		if v != 0 {
			w.tctx.win = into
			w.tctx.SetState(name, w.tctx.State(name)+v)
		}
	}
	w.tctx.win = into
	w.trigger.(MergingTrigger).OnMerge(&w.tctx, into)
	for _, m := range merged {
		w.tctx.win = m
		w.trigger.Clear(&w.tctx, m)
		w.tstate.del(w.at(m))
		w.deleteCleanup(m)
	}
}

// end fires the pending processing-time windows, the end of input being the
// end of time, and reports the records dropped as late.
func (w *windower[K, T, S, OUT]) end() error {
	if err := w.core.fireAllProcessing(); err != nil {
		return err
	}
	if w.dropped > 0 {
		slog.Info("window operator dropped late records", "operator", w.name, "subtask", w.subtask, "dropped", w.dropped)
	}
	return nil
}

// triggerCtx is the TriggerContext of the window in win, for the current
// key.
type triggerCtx[K comparable, T, S, OUT any] struct {
	w   *windower[K, T, S, OUT]
	win Window
}

func (c *triggerCtx[K, T, S, OUT]) CurrentWatermark() int64      { return c.w.core.wm }
func (c *triggerCtx[K, T, S, OUT]) CurrentProcessingTime() int64 { return time.Now().UnixMilli() }
func (c *triggerCtx[K, T, S, OUT]) RegisterEventTimeTimer(ts int64) {
	c.w.core.registerEventTimer(c.w.windowNS(c.win), ts)
}
func (c *triggerCtx[K, T, S, OUT]) DeleteEventTimeTimer(ts int64) {
	c.w.core.deleteEventTimer(c.w.windowNS(c.win), ts)
}
func (c *triggerCtx[K, T, S, OUT]) RegisterProcessingTimeTimer(ts int64) {
	c.w.core.registerProcessingTimer(c.w.windowNS(c.win), ts)
}
func (c *triggerCtx[K, T, S, OUT]) DeleteProcessingTimeTimer(ts int64) {
	c.w.core.deleteProcessingTimer(c.w.windowNS(c.win), ts)
}

func (c *triggerCtx[K, T, S, OUT]) State(name string) int64 {
	if e := c.w.tstate.get(c.w.at(c.win)); e != nil {
		return e.val[name]
	}
	return 0
}

func (c *triggerCtx[K, T, S, OUT]) SetState(name string, v int64) {
	k := c.w.at(c.win)
	if v == 0 {
		if e := c.w.tstate.get(k); e != nil {
			delete(e.val, name)
			if len(e.val) == 0 {
				c.w.tstate.del(k)
			}
		}
		return
	}
	e, _ := c.w.tstate.put(k)
	if e.val == nil {
		e.val = map[string]int64{}
	}
	e.val[name] = v
}

// windowOp is the window operator of one keyed input.
type windowOp[K comparable, T, S, OUT any] struct {
	w   *windower[K, T, S, OUT]
	key func(T) K
}

func (o *windowOp[K, T, S, OUT]) Process(v T, ts int64) (err error) {
	defer catchSide(&err)
	if err := o.w.core.setKey(o.key(v)); err != nil {
		return err
	}
	o.w.core.ts = ts
	return o.w.element(v, ts)
}

// Watermark fires the windows the watermark passed, then passes it on.
func (o *windowOp[K, T, S, OUT]) Watermark(ts int64) (err error) {
	defer catchSide(&err)
	if err := o.w.core.advanceWatermark(ts); err != nil {
		return err
	}
	return o.w.out.out.Watermark(ts)
}

func (o *windowOp[K, T, S, OUT]) End() (err error) {
	defer catchSide(&err)
	if err := o.w.end(); err != nil {
		return err
	}
	return o.w.out.out.End()
}

// addWindow adds a window operator over ws. funcs is called once per
// subtask, with the subtask's core (for functions that use keyed state).
func addWindow[K comparable, T, S, OUT any](ws *WindowedStream[K, T], kind string, opts []Option,
	funcs func(tc *engine.TaskContext, core *keyedCore[K]) (windowFuncs[K, T, S, OUT], error)) *Stream[OUT] {
	ks, spec, lateTag := ws.ks, ws.spec, ws.lateTag
	return add[OUT](ks.job, kind, true, []engine.Edge{ks.edge()}, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			core := newKeyedCore(tc, ks.keyCodec)
			fns, err := funcs(tc, core)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", tc.Vertex.Name, err)
			}
			w, err := newWindower(tc, core, spec, lateTag, out.(engine.Output[OUT]), fns)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", tc.Vertex.Name, err)
			}
			closeFn := fns.close
			if closeFn == nil {
				closeFn = func() error { return nil }
			}
			eop := &engine.Operator{Inputs: []any{engine.Output[T](&windowOp[K, T, S, OUT]{w: w, key: ks.key})}, Close: closeFn}
			if err := core.checkpoint(eop); err != nil {
				_ = closeFn()
				return nil, fmt.Errorf("%s: %w", tc.Vertex.Name, err)
			}
			return eop, nil
		})
}
