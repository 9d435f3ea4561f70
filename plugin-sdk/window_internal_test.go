package sdk

// Tests that drive one window operator subtask by hand, record by record
// and watermark by watermark, to check Flink's lateness rules exactly and
// that every window's state and timers are gone once it is cleaned up.

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

type tick struct {
	Key string
	V   int64
}

// recorder is an engine.Output that logs what it receives.
type recorder[T any] struct{ log []string }

func (r *recorder[T]) Process(v T, ts int64) error {
	r.log = append(r.log, fmt.Sprintf("%v @%d", v, ts))
	return nil
}
func (r *recorder[T]) Watermark(ts int64) error {
	r.log = append(r.log, fmt.Sprintf("wm %d", ts))
	return nil
}
func (r *recorder[T]) End() error { r.log = append(r.log, "end"); return nil }

// take returns the log and empties it.
func (r *recorder[T]) take() []string {
	l := r.log
	r.log = nil
	return l
}

// harness is one subtask of a window operator, owning every key group.
type harness[K comparable, T, S, OUT any] struct {
	op   *windowOp[K, T, S, OUT]
	out  *recorder[OUT]
	late *recorder[T]
}

func newHarness[K comparable, T, S, OUT any](t testing.TB, s *Stream[OUT], sides ...string) *harness[K, T, S, OUT] {
	t.Helper()
	h := &harness[K, T, S, OUT]{out: &recorder[OUT]{}, late: &recorder[T]{}}
	tc := &engine.TaskContext{JobName: "test", Vertex: s.v, Parallelism: 1, MaxParallelism: 128,
		KeyGroups: keygroup.Range{Start: 0, End: 128}, Ctx: context.Background(), Sides: map[string]any{}}
	for _, id := range sides {
		tc.Sides[id] = engine.Output[T](h.late)
	}
	op, err := s.v.Build(tc, engine.Output[OUT](h.out))
	if err != nil {
		t.Fatal(err)
	}
	h.op = op.Inputs[0].(engine.Output[T]).(*windowOp[K, T, S, OUT])
	return h
}

func (h *harness[K, T, S, OUT]) process(t *testing.T, v T, ts int64) {
	t.Helper()
	if err := h.op.Process(v, ts); err != nil {
		t.Fatal(err)
	}
}

func (h *harness[K, T, S, OUT]) watermark(t *testing.T, wm int64) {
	t.Helper()
	if err := h.op.Watermark(wm); err != nil {
		t.Fatal(err)
	}
}

// empty fails unless the operator holds no window state and no timers.
func (h *harness[K, T, S, OUT]) empty(t *testing.T) {
	t.Helper()
	w := h.op.w
	if n := w.contents.len() + w.tstate.len() + w.sessions.len(); n != 0 {
		t.Errorf("%d window state entries left", n)
	}
	if n := w.core.timers.event.len() + w.core.timers.processing.len(); n != 0 {
		t.Errorf("%d timers left", n)
	}
}

func sameLog(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func sumTicks(a, b tick) tick { return tick{Key: a.Key, V: a.V + b.V} }

func tickJob() (*Job, *KeyedStream[string, tick]) {
	job := NewJob("harness")
	src := FromSource(job, FromSlice([]tick(nil)), WithUID("source"))
	return job, KeyBy(src, func(x tick) string { return x.Key })
}

// Flink's lateness: a window fires when the watermark passes its end, fires
// again for each record within the allowed lateness, is cleaned up when the
// watermark passes its end plus the lateness, and later records are late.
func TestWindowLatenessByHand(t *testing.T) {
	late := NewOutputTag[tick]("late")
	var dropped atomic.Int64
	for _, side := range []bool{true, false} {
		t.Run(fmt.Sprintf("side=%v", side), func(t *testing.T) {
			job, ks := tickJob()
			opts := []WindowOption{AllowedLateness(5 * time.Millisecond), DroppedLateRecords(&dropped)}
			if side {
				opts = append(opts, LateRecords(late))
			}
			res := WindowReduce(WindowBy(ks, TumblingEventTimeWindows(10*time.Millisecond), opts...), sumTicks, WithUID("w"))
			if len(job.errs) > 0 {
				t.Fatal(job.errs)
			}
			dropped.Store(0)
			h := newHarness[string, tick, tick, Windowed[string, tick]](t, res, "late")
			h.process(t, tick{"a", 1}, 1)
			h.process(t, tick{"a", 2}, 5)
			h.process(t, tick{"a", 3}, 12)
			h.watermark(t, 11)
			sameLog(t, "on time", h.out.take(), "a [0, 10): {a 3} @9", "wm 11")
			h.process(t, tick{"a", 4}, 7) // within the lateness: fires the update
			sameLog(t, "late firing", h.out.take(), "a [0, 10): {a 7} @9")
			h.watermark(t, 14) // cleans [0, 10) up
			h.process(t, tick{"a", 6}, 8)
			sameLog(t, "after cleanup", h.out.take(), "wm 14")
			if side {
				sameLog(t, "side output", h.late.take(), "{a 6} @8")
			} else if dropped.Load() != 1 || h.op.w.dropped != 1 {
				t.Errorf("dropped %d (operator %d), want 1", dropped.Load(), h.op.w.dropped)
			}
			h.watermark(t, MaxWatermark)
			sameLog(t, "final", h.out.take(), "a [10, 20): {a 3} @19", fmt.Sprintf("wm %d", MaxWatermark))
			h.empty(t)
		})
	}
}

// A record that is late for some of its sliding windows still counts in
// the others.
func TestSlidingPartlyLateByHand(t *testing.T) {
	_, ks := tickJob()
	res := WindowReduce(WindowBy(ks, SlidingEventTimeWindows(10*time.Millisecond, 5*time.Millisecond)), sumTicks, WithUID("w"))
	h := newHarness[string, tick, tick, Windowed[string, tick]](t, res)
	h.watermark(t, 10)
	h.process(t, tick{"a", 1}, 8) // [0, 10) is gone, [5, 15) is not
	h.watermark(t, MaxWatermark)
	sameLog(t, "out", h.out.take(), "wm 10", "a [5, 15): {a 1} @14", fmt.Sprintf("wm %d", MaxWatermark))
	h.empty(t)
}

// step is a record at ts, or a watermark.
type step struct {
	ts int64
	wm bool
}

func rec(ts int64) step { return step{ts: ts} }
func wmk(ts int64) step { return step{ts: ts, wm: true} }

var wmMax = fmt.Sprintf("wm %d", MaxWatermark)

func TestSessionMergeByHand(t *testing.T) {
	tests := []struct {
		name    string
		opts    []WindowOption
		steps   []step
		want    []string
		dropped int64
	}{{
		name:  "a record bridges two sessions",
		steps: []step{rec(0), rec(20), rec(10), wmk(28), wmk(MaxWatermark)},
		want:  []string{"wm 28", "a [0, 30): {a 3} @29", wmMax},
	}, {
		name:  "apart",
		steps: []step{rec(0), wmk(9), rec(21), wmk(MaxWatermark)},
		want:  []string{"a [0, 10): {a 1} @9", "wm 9", "a [21, 31): {a 1} @30", wmMax},
	}, {
		name:  "touching sessions merge",
		steps: []step{rec(0), rec(10), wmk(9), wmk(MaxWatermark)},
		want:  []string{"wm 9", "a [0, 20): {a 2} @19", wmMax},
	}, {
		name:  "a record inside a session",
		steps: []step{rec(0), rec(5), rec(3), wmk(10), wmk(MaxWatermark)},
		want:  []string{"wm 10", "a [0, 15): {a 3} @14", wmMax},
	}, {
		name:  "out of order, later session first",
		steps: []step{rec(30), rec(32), rec(0), rec(10), rec(20), wmk(MaxWatermark)},
		want:  []string{"a [0, 42): {a 5} @41", wmMax},
	}, {
		// The counts of merged windows add up: 1 + 1 + the bridging record.
		name:  "count trigger",
		opts:  []WindowOption{WithTrigger(CountTrigger(3))},
		steps: []step{rec(0), rec(20), rec(10), wmk(MaxWatermark)},
		want:  []string{"a [0, 30): {a 3} @29", wmMax},
	}, {
		// A record merges into a session that fired, within the lateness:
		// the merged session fires at once.
		name:  "late merge",
		opts:  []WindowOption{AllowedLateness(100 * time.Millisecond)},
		steps: []step{rec(0), rec(50), wmk(60), rec(5), wmk(MaxWatermark)},
		want:  []string{"a [0, 10): {a 1} @9", "a [50, 60): {a 1} @59", "wm 60", "a [0, 15): {a 2} @14", wmMax},
	}, {
		name:    "beyond the lateness",
		steps:   []step{rec(0), wmk(20), rec(5), wmk(MaxWatermark)},
		want:    []string{"a [0, 10): {a 1} @9", "wm 20", wmMax},
		dropped: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ks := tickJob()
			res := WindowReduce(WindowBy(ks, EventTimeSessionWindows(10*time.Millisecond), tt.opts...), sumTicks, WithUID("w"))
			h := newHarness[string, tick, tick, Windowed[string, tick]](t, res)
			for _, s := range tt.steps {
				if s.wm {
					h.watermark(t, s.ts)
				} else {
					h.process(t, tick{"a", 1}, s.ts)
				}
			}
			sameLog(t, "out", h.out.take(), tt.want...)
			if h.op.w.dropped != tt.dropped {
				t.Errorf("dropped %d, want %d", h.op.w.dropped, tt.dropped)
			}
			h.empty(t)
		})
	}
}

// everyTwoAndAtEnd fires a window early after every second record, and
// when the watermark passes its end.
type everyTwoAndAtEnd struct{}

func (everyTwoAndAtEnd) OnElement(ctx TriggerContext, _ int64, w Window) TriggerResult {
	ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	n := ctx.State("n") + 1
	ctx.SetState("n", n)
	if n%2 == 0 {
		return Fire
	}
	return Continue
}

func (everyTwoAndAtEnd) OnEventTime(_ TriggerContext, time int64, w Window) TriggerResult {
	if time == w.MaxTimestamp() {
		return Fire
	}
	return Continue
}

func (everyTwoAndAtEnd) OnProcessingTime(TriggerContext, int64, Window) TriggerResult {
	return Continue
}

func (everyTwoAndAtEnd) Clear(ctx TriggerContext, w Window) {
	ctx.DeleteEventTimeTimer(w.MaxTimestamp())
	ctx.SetState("n", 0)
}

func TestCustomTriggerByHand(t *testing.T) {
	_, ks := tickJob()
	res := WindowReduce(WindowBy(ks, TumblingEventTimeWindows(10*time.Millisecond), WithTrigger(everyTwoAndAtEnd{})), sumTicks, WithUID("w"))
	h := newHarness[string, tick, tick, Windowed[string, tick]](t, res)
	h.process(t, tick{"a", 1}, 1)
	h.process(t, tick{"a", 1}, 2)
	h.process(t, tick{"a", 1}, 3)
	h.process(t, tick{"a", 1}, 13)
	h.watermark(t, 9)
	h.watermark(t, MaxWatermark)
	sameLog(t, "out", h.out.take(), "a [0, 10): {a 2} @9", "a [0, 10): {a 3} @9", "wm 9", "a [10, 20): {a 1} @19", wmMax)
	h.empty(t)
}

// Processing-time windows that are pending at the end of input fire then.
func TestProcessingTimeWindowsFireAtEndByHand(t *testing.T) {
	_, ks := tickJob()
	res := WindowReduce(WindowBy(ks, TumblingProcessingTimeWindows(time.Hour)), sumTicks, WithUID("w"))
	h := newHarness[string, tick, tick, Windowed[string, tick]](t, res)
	before := time.Now().UnixMilli()
	h.process(t, tick{"a", 1}, NoTimestamp)
	h.process(t, tick{"a", 2}, NoTimestamp)
	after := time.Now().UnixMilli()
	if got := h.out.take(); len(got) != 0 {
		t.Fatalf("fired before the end: %q", got)
	}
	if err := h.op.End(); err != nil {
		t.Fatal(err)
	}
	got := h.out.take()
	hour := int64(time.Hour / time.Millisecond)
	start := before / hour * hour
	want := []string{fmt.Sprintf("a [%d, %d): {a 3} @%d", start, start+hour, start+hour-1), "end"}
	if after/hour*hour != start {
		t.Skip("the clock crossed an hour during the test")
	}
	sameLog(t, "out", got, want...)
	h.empty(t)
}

func TestWindowAssign(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		a    WindowAssigner
		ts   int64
		want []Window
	}{
		{TumblingEventTimeWindows(10 * ms), 0, []Window{{0, 10}}},
		{TumblingEventTimeWindows(10 * ms), 9, []Window{{0, 10}}},
		{TumblingEventTimeWindows(10 * ms), -1, []Window{{-10, 0}}},
		{TumblingEventTimeWindows(10*ms, WithOffset(3*ms)), 2, []Window{{-7, 3}}},
		{TumblingEventTimeWindows(10*ms, WithOffset(-3*ms)), 7, []Window{{7, 17}}},
		{SlidingEventTimeWindows(10*ms, 5*ms), 7, []Window{{5, 15}, {0, 10}}},
		{SlidingEventTimeWindows(10*ms, 3*ms), 7, []Window{{6, 16}, {3, 13}, {0, 10}}},
		{SlidingEventTimeWindows(5*ms, 10*ms), 7, nil}, // a gap between windows
		{EventTimeSessionWindows(5 * ms), 7, []Window{{7, 12}}},
		{GlobalWindows(), 7, []Window{globalWindow}},
	}
	for _, tt := range tests {
		if got := tt.a.assign(nil, tt.ts); !slices.Equal(got, tt.want) {
			t.Errorf("%v at %d: %v, want %v", tt.a, tt.ts, got, tt.want)
		}
	}
}

// A record between two sliding windows is in none, and not late.
func TestSlidingGapIsNotLateByHand(t *testing.T) {
	_, ks := tickJob()
	var dropped atomic.Int64
	res := WindowReduce(WindowBy(ks, SlidingEventTimeWindows(5*time.Millisecond, 10*time.Millisecond),
		AllowedLateness(time.Millisecond), DroppedLateRecords(&dropped)), sumTicks, WithUID("w"))
	h := newHarness[string, tick, tick, Windowed[string, tick]](t, res)
	h.process(t, tick{"a", 1}, 2)
	h.process(t, tick{"a", 1}, 7) // in no window
	h.watermark(t, 20)
	h.process(t, tick{"a", 1}, 3) // late
	h.watermark(t, MaxWatermark)
	sameLog(t, "out", h.out.take(), "a [0, 5): {a 1} @4", "wm 20", wmMax)
	if dropped.Load() != 1 {
		t.Errorf("dropped %d, want 1", dropped.Load())
	}
	h.empty(t)
}

func BenchmarkWindowReduceByHand(b *testing.B) {
	for _, a := range []WindowAssigner{
		TumblingEventTimeWindows(time.Second),
		SlidingEventTimeWindows(10*time.Second, 2*time.Second),
		EventTimeSessionWindows(time.Second),
	} {
		b.Run(a.String(), func(b *testing.B) {
			_, ks := tickJob()
			res := WindowReduce(WindowBy(ks, a), sumTicks, WithUID("w"))
			h := newHarness[string, tick, tick, Windowed[string, tick]](b, res)
			h.op.w.out.out = engine.Output[Windowed[string, tick]](discardOut[Windowed[string, tick]]{})
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = fmt.Sprintf("key-%d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ts := int64(i) // a thousand records a second
				if err := h.op.Process(tick{keys[(i*7919)%len(keys)], 1}, ts); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					if err := h.op.Watermark(ts - 1000); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

type discardOut[T any] struct{}

func (discardOut[T]) Process(T, int64) error { return nil }
func (discardOut[T]) Watermark(int64) error  { return nil }
func (discardOut[T]) End() error             { return nil }
