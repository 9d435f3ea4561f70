package sdk_test

// Tests of the time machinery: watermarks per split, idleness, event- and
// processing-time timers, the final watermark, state TTL, side outputs and
// timestamps across the exchange. Names here start with "et" so that they
// do not collide with other test files of the package.

import (
	"context"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// etSource is a source of a number of splits whose readers follow a
// script: every Read calls step once for each split the reader owns and
// has not finished, with the number of earlier calls for that split, and
// step emits that split's next records. A reader returns Idle after each
// round (so a script runs at one round per few milliseconds, up to 20),
// or More if more is set, and Done when step has said done for all its
// splits. step is called from the goroutine of the subtask that owns the
// split.
type etSource[T any] struct {
	splits int
	more   bool
	step   func(split, call int, emit func(T)) (done bool, err error)
}

func (s *etSource[T]) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	out := make([]sdk.Split, s.splits)
	for i := range out {
		out[i] = sdk.Split{ID: strconv.Itoa(i)}
	}
	return out, nil
}

func (s *etSource[T]) Open(_ context.Context, _ sdk.SourceContext, splits []sdk.Split) (sdk.Reader[T], error) {
	r := &etReader[T]{s: s}
	for _, sp := range splits {
		id, err := strconv.Atoi(sp.ID)
		if err != nil {
			return nil, err
		}
		r.ids = append(r.ids, id)
	}
	r.calls, r.done = make([]int, len(r.ids)), make([]bool, len(r.ids))
	return r, nil
}

type etReader[T any] struct {
	s     *etSource[T]
	ids   []int
	calls []int
	done  []bool
}

func (r *etReader[T]) Read(_ context.Context, out sdk.Collector[T]) (sdk.ReadStatus, error) {
	left := 0
	for i, id := range r.ids {
		if r.done[i] {
			continue
		}
		if sc, ok := out.(sdk.SplitCollector); ok {
			sc.Split(i)
		}
		done, err := r.s.step(id, r.calls[i], out.Collect)
		r.calls[i]++
		if err != nil {
			return sdk.Done, err
		}
		r.done[i] = done
		if !done {
			left++
		}
	}
	switch {
	case left == 0:
		return sdk.Done, nil
	case r.s.more:
		return sdk.More, nil
	}
	return sdk.Idle, nil
}

func (r *etReader[T]) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *etReader[T]) Close() error                   { return nil }

// etRec is a record of split Split at event time TS.
type etRec struct {
	Split int
	TS    int64
	Phase int
}

func etTimestamp(r etRec) int64 { return r.TS }

// etObs is what etObserver saw of a record or a timer.
type etObs struct {
	Key   int
	TS    int64 // the record's TS, or the timer's time
	CtxTS int64 // ctx.Timestamp()
	WM    int64 // the operator's watermark then
	Sub   int
	Timer bool
	Phase int
}

// etObserver reports every record and timer with the watermark it saw;
// records of split 0 (or those timer selects) register an event-time
// timer. check, if set, is called with every watermark observed.
type etObserver struct {
	timer   func(r etRec) (int64, bool)
	check   func(wm int64, r *etRec)
	onTimer func(ts, wm int64)
}

func (o *etObserver) ProcessElement(ctx sdk.KeyedContext[int], r etRec, out sdk.Collector[etObs]) error {
	wm := ctx.TimerService().CurrentWatermark()
	if o.check != nil {
		o.check(wm, &r)
	}
	if o.timer != nil {
		if ts, ok := o.timer(r); ok {
			ctx.TimerService().RegisterEventTimeTimer(ts)
		}
	}
	out.Collect(etObs{Key: ctx.Key(), TS: r.TS, CtxTS: ctx.Timestamp(), WM: wm, Sub: ctx.Subtask(), Phase: r.Phase})
	return nil
}

func (o *etObserver) OnTimer(ctx sdk.KeyedContext[int], ts int64, out sdk.Collector[etObs]) error {
	wm := ctx.TimerService().CurrentWatermark()
	if o.check != nil {
		o.check(wm, nil)
	}
	if o.onTimer != nil {
		o.onTimer(ts, wm)
	}
	if ctx.TimeDomain() != sdk.EventTime {
		return fmt.Errorf("timer %d: domain %v, want event time", ts, ctx.TimeDomain())
	}
	out.Collect(etObs{Key: ctx.Key(), TS: ts, CtxTS: ctx.Timestamp(), WM: wm, Sub: ctx.Subtask(), Timer: true})
	return nil
}

func etObserve(ks *sdk.KeyedStream[int, etRec], o *etObserver) *sdk.Stream[etObs] {
	return sdk.Process(ks, sdk.KeyedProcessFunction[int, etRec, etObs](o), sdk.WithUID("observe"))
}

func etSplit(obs []etObs) (records, timers []etObs) {
	for _, o := range obs {
		if o.Timer {
			timers = append(timers, o)
		} else {
			records = append(records, o)
		}
	}
	return records, timers
}

// A source subtask reading several splits emits the minimum of their
// watermarks: a lagging split holds event time back, exactly.
func TestWatermarkIsTheMinimumOverSplits(t *testing.T) {
	const reads = 60
	// Read n emits one record per split: split 0 at 100n, split 1 at
	// 100n+50, split 2 lagging 3 s behind.
	offsets := []int64{0, 50, -3000}
	const delay = 500 // ms of out-of-orderness
	wmAfter := func(n int) int64 { return int64(100*n) + offsets[2] - delay - 1 }
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("watermark-splits")
			src := &etSource[etRec]{splits: 3, more: true, step: func(split, call int, emit func(etRec)) (bool, error) {
				if call == reads {
					return true, nil
				}
				emit(etRec{Split: split, TS: int64(100*call) + offsets[split]})
				return false, nil
			}}
			// One source subtask reads the three splits; records and
			// watermarks travel in order on each channel, so the
			// watermark every record sees is exact even at parallelism 4.
			recs := sdk.FromSource(job, src, sdk.WithUID("src"), sdk.WithParallelism(1),
				sdk.WithWatermarks(sdk.BoundedOutOfOrderness(delay*time.Millisecond, etTimestamp)))
			obs := etObserve(sdk.KeyBy(recs, func(r etRec) int { return r.Split }), &etObserver{
				timer: func(r etRec) (int64, bool) { return r.TS, r.Split == 0 },
			})
			out := sdk.Collect[etObs]()
			sdk.SinkTo(obs, out)
			runJob(t, job, p)

			records, timers := etSplit(out.Records())
			if len(records) != 3*reads || len(timers) != reads {
				t.Fatalf("got %d records and %d timers, want %d and %d", len(records), len(timers), 3*reads, reads)
			}
			for _, o := range records {
				n := int((o.TS - offsets[o.Key]) / 100)
				want := sdk.MinWatermark
				if n > 0 {
					want = wmAfter(n - 1)
				}
				if o.WM != want {
					t.Fatalf("record of split %d at %d (read %d) saw watermark %d, want %d", o.Key, o.TS, n, o.WM, want)
				}
				if o.CtxTS != o.TS {
					t.Fatalf("record at %d has timestamp %d", o.TS, o.CtxTS)
				}
			}
			for _, o := range timers {
				// The first watermark at or past the timer fires it; the
				// ones the lagging split never lets through fire at the end.
				want := sdk.MaxWatermark
				for n := range reads {
					if wmAfter(n) >= o.TS {
						want = wmAfter(n)
						break
					}
				}
				if o.WM != want {
					t.Fatalf("timer at %d fired at watermark %d, want %d", o.TS, o.WM, want)
				}
			}
		})
	}
}

// With splits spread over four source subtasks, an operator's watermark
// is the minimum over all of them: never above what the slowest split
// allows, and still advancing.
func TestWatermarkIsTheMinimumOverSourceSubtasks(t *testing.T) {
	const splits, reads, lagging = 8, 60, 5
	var maxTS [splits]atomic.Int64
	bound := func() int64 {
		lowest := int64(math.MaxInt64)
		for i := range maxTS {
			lowest = min(lowest, maxTS[i].Load())
		}
		if lowest == math.MinInt64 {
			return sdk.MinWatermark
		}
		return lowest - 1
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			for i := range maxTS {
				maxTS[i].Store(math.MinInt64)
			}
			var mu sync.Mutex
			var violations []string
			job := sdk.NewJob("watermark-subtasks")
			src := &etSource[etRec]{splits: splits, more: true, step: func(split, call int, emit func(etRec)) (bool, error) {
				if call == reads {
					// An ended split no longer holds anything back.
					maxTS[split].Store(math.MaxInt64)
					return true, nil
				}
				ts := int64(100 * call)
				if split == lagging {
					ts -= 3000
				}
				maxTS[split].Store(ts)
				emit(etRec{Split: split, TS: ts})
				return false, nil
			}}
			recs := sdk.FromSource(job, src, sdk.WithUID("src"), sdk.WithParallelism(4),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(etTimestamp)))
			obs := etObserve(sdk.KeyBy(recs, func(r etRec) int { return r.Split }), &etObserver{
				timer: func(r etRec) (int64, bool) { return r.TS, r.Split == 0 },
				check: func(wm int64, _ *etRec) {
					if b := bound(); wm != sdk.MaxWatermark && wm > b {
						mu.Lock()
						violations = append(violations, fmt.Sprintf("watermark %d above the slowest split's %d", wm, b))
						mu.Unlock()
					}
				},
			})
			out := sdk.Collect[etObs]()
			sdk.SinkTo(obs, out)
			runJob(t, job, p)
			if len(violations) > 0 {
				t.Fatalf("%d violations, first: %s", len(violations), violations[0])
			}
			_, timers := etSplit(out.Records())
			if len(timers) != reads {
				t.Fatalf("%d timers fired, want %d", len(timers), reads)
			}
			// The lagging split ends at 5900-3000: timers up to there fire
			// before the final watermark.
			for _, o := range timers {
				if o.TS <= 2800 && o.WM == sdk.MaxWatermark {
					t.Errorf("timer at %d fired only at the end of input", o.TS)
				}
				if o.WM < o.TS {
					t.Errorf("timer at %d fired at watermark %d", o.TS, o.WM)
				}
			}
		})
	}
}

// etIdleScript drives TestIdleSplitDoesNotHoldBackTimers. Split 0 emits
// steadily, 10 ms of event time per record; split 1 emits one record and
// falls silent (phase 1) until a timer has fired, then resumes far behind
// (phase 2: its records are late), then catches up (phase 3).
type etIdleScript struct {
	deadline  time.Time
	phase     atomic.Int32
	fired1    atomic.Bool  // a timer fired while split 1 was idle
	resumed   atomic.Bool  // the operator saw split 1's first record of phase 2
	s0Resume  atomic.Int64 // split 0's latest timestamp then
	fired3    atomic.Bool  // a timer of split 0 after the resumption fired
	split0Max atomic.Int64
	split1Max atomic.Int64
	n0, k2    int // split 0's records and its records since the resumption

	mu         sync.Mutex
	violations []string
}

func (s *etIdleScript) step(split, call int, emit func(etRec)) (bool, error) {
	if time.Now().After(s.deadline) {
		return true, fmt.Errorf("idle script stuck in phase %d (split %d)", s.phase.Load(), split)
	}
	phase := int(s.phase.Load())
	if split == 1 {
		switch {
		case phase == 1 && call == 0:
			s.split1Max.Store(0)
			emit(etRec{Split: 1, TS: 0, Phase: 1})
		case phase == 2:
			// Far behind the watermark, which must now hold.
			emit(etRec{Split: 1, TS: 1, Phase: 2})
		case phase == 3:
			if s.fired3.Load() {
				return true, nil
			}
			ts := s.split0Max.Load() + 500
			s.split1Max.Store(ts)
			emit(etRec{Split: 1, TS: ts, Phase: 3})
		}
		return false, nil
	}
	switch phase {
	case 1:
		if s.fired1.Load() {
			// Pause split 0 until the operator has seen split 1 resume,
			// so that no watermark of split 0 alone is in flight then.
			s.phase.Store(2)
			return false, nil
		}
	case 2:
		if !s.resumed.Load() {
			return false, nil
		}
		if s.k2++; s.k2 > 20 {
			s.phase.Store(3)
		}
	case 3:
		if s.fired3.Load() {
			return true, nil
		}
	}
	ts := int64(10 * s.n0)
	s.n0++
	s.split0Max.Store(ts)
	emit(etRec{Split: 0, TS: ts, Phase: phase})
	return false, nil
}

func (s *etIdleScript) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// An idle split does not hold event time back, and takes part again as
// soon as it has records: its lagging watermark then holds the others'
// back until it catches up. Both when the idle split shares a source
// subtask with an active one (split idleness) and when it is alone in its
// subtask (the subtask's channels are marked idle downstream).
func TestIdleSplitDoesNotHoldBackTimers(t *testing.T) {
	for _, sourceP := range []int{1, 2} {
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("source-p=%d/p=%d", sourceP, p), func(t *testing.T) {
				s := &etIdleScript{deadline: time.Now().Add(30 * time.Second)}
				s.phase.Store(1)
				job := sdk.NewJob("idle-split")
				src := &etSource[etRec]{splits: 2, step: s.step}
				recs := sdk.FromSource(job, src, sdk.WithUID("src"), sdk.WithParallelism(sourceP),
					sdk.WithWatermarks(sdk.MonotonousTimestamps(etTimestamp).WithIdleness(100*time.Millisecond)))
				obs := etObserve(sdk.KeyBy(recs, func(r etRec) int { return r.Split }), &etObserver{
					timer: func(r etRec) (int64, bool) { return r.TS, r.Split == 0 },
					check: func(wm int64, r *etRec) {
						if r != nil && r.Split == 1 && r.Phase == 2 && !s.resumed.Load() {
							s.s0Resume.Store(s.split0Max.Load())
							s.resumed.Store(true)
						}
						if wm == sdk.MaxWatermark || !s.resumed.Load() {
							return
						}
						// Once split 1 is back, only it can let the
						// watermark past where split 0 had taken it.
						if bound := max(s.s0Resume.Load(), s.split1Max.Load()) - 1; wm > bound {
							s.violation("watermark %d after split 1 resumed, above %d", wm, bound)
						}
					},
					onTimer: func(ts, wm int64) {
						if wm == sdk.MaxWatermark {
							return
						}
						if s.phase.Load() == 1 {
							s.fired1.Store(true)
						}
						if s.resumed.Load() && ts > s.s0Resume.Load() {
							s.fired3.Store(true)
						}
					},
				})
				out := sdk.Collect[etObs]()
				sdk.SinkTo(obs, out)
				runJob(t, job, p)
				if len(s.violations) > 0 {
					t.Fatalf("%d violations, first: %s", len(s.violations), s.violations[0])
				}
				records, timers := etSplit(out.Records())
				late := 0
				for _, o := range records {
					if o.Key == 1 && o.Phase == 2 {
						late++
					}
				}
				if late == 0 || len(timers) != s.n0 {
					t.Fatalf("%d late records of split 1, %d timers for %d records of split 0", late, len(timers), s.n0)
				}
			})
		}
	}
}

// etTimerRec is a record of TestEventTimersFireInOrder.
type etTimerRec struct {
	Key int
	TS  int64
	Seq int
}

// etTimerOrder registers several timers per record, out of order, deletes
// one, and registers a follow-up timer from some timers.
type etTimerOrder struct{}

// etTimersOf returns the timers a record keeps and the one it deletes.
// All are above the record's timestamp, so above the watermark: they fire
// in time order over the whole subtask.
func etTimersOf(r etTimerRec) (keep []int64, deleted int64) {
	base := 4 * r.TS
	return []int64{base + 4*int64(r.Seq*31%211), base, base + 4*int64(r.Seq%97) + 4}, base + 1
}

func (etTimerOrder) ProcessElement(ctx sdk.KeyedContext[int], r etTimerRec, _ sdk.Collector[etObs]) error {
	keep, del := etTimersOf(r)
	ts := ctx.TimerService()
	ts.RegisterEventTimeTimer(del)
	for _, k := range keep {
		ts.RegisterEventTimeTimer(k)
	}
	ts.DeleteEventTimeTimer(del)
	return nil
}

func (etTimerOrder) OnTimer(ctx sdk.KeyedContext[int], ts int64, out sdk.Collector[etObs]) error {
	wm := ctx.TimerService().CurrentWatermark()
	if ts%8 == 0 {
		// At or below the watermark: fires in this same advance, in order.
		ctx.TimerService().RegisterEventTimeTimer(ts + 4)
	}
	out.Collect(etObs{Key: ctx.Key(), TS: ts, CtxTS: ctx.Timestamp(), WM: wm, Sub: ctx.Subtask(), Timer: true})
	return nil
}

// etShuffle returns records in an order that is out of order by at most
// delay: each one's position is its timestamp plus a random delay.
func etShuffle[T any](recs []T, ts func(T) int64, delay int64, seed uint64) []T {
	r := rand.New(rand.NewPCG(seed, seed))
	type keyed struct {
		at int64
		v  T
	}
	ks := make([]keyed, len(recs))
	for i, v := range recs {
		ks[i] = keyed{at: ts(v) + r.Int64N(delay+1), v: v}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return int(a.at - b.at) })
	out := make([]T, len(ks))
	for i, k := range ks {
		out[i] = k.v
	}
	return out
}

// Timers fire in time order: per key, and over all keys of a subtask; each
// once, however often and in whatever order it was registered; a deleted
// one never.
func TestEventTimersFireInOrder(t *testing.T) {
	const n, keys, delay = 3000, 13, 40
	r := rand.New(rand.NewPCG(7, 7))
	var recs []etTimerRec
	for i := range n {
		recs = append(recs, etTimerRec{Key: r.IntN(keys), TS: int64(i*3 + r.IntN(5)), Seq: i})
	}
	recs = etShuffle(recs, func(r etTimerRec) int64 { return r.TS }, delay, 11)
	type kt struct {
		key int
		ts  int64
	}
	want := map[kt]bool{}
	for _, r := range recs {
		keep, _ := etTimersOf(r)
		for _, ts := range keep {
			want[kt{r.Key, ts}] = true
		}
	}
	for k := range want {
		if k.ts%8 == 0 {
			want[kt{k.key, k.ts + 4}] = true
		}
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("timer-order")
			src := sdk.FromSource(job, sdk.FromSlice(recs), sdk.WithUID("src"),
				sdk.WithWatermarks(sdk.BoundedOutOfOrderness(delay*time.Millisecond, func(r etTimerRec) int64 { return r.TS })))
			fired := sdk.Process(sdk.KeyBy(src, func(r etTimerRec) int { return r.Key }),
				sdk.KeyedProcessFunction[int, etTimerRec, etObs](etTimerOrder{}), sdk.WithUID("timers"))
			out := sdk.Collect[etObs]()
			sdk.SinkTo(fired, out, sdk.WithParallelism(1))
			// The sink has parallelism 1, fed by a forward or a rebalance
			// edge from each subtask: per subtask, the order is kept.
			runJob(t, job, p)

			got := map[kt]bool{}
			lastOfSub, lastOfKey := map[int]int64{}, map[int]int64{}
			for _, o := range out.Records() {
				k := kt{o.Key, o.TS}
				if got[k] {
					t.Fatalf("timer %v fired twice", k)
				}
				got[k] = true
				if !want[k] {
					t.Fatalf("timer %v fired but was never registered (or was deleted)", k)
				}
				if last, ok := lastOfSub[o.Sub]; ok && o.TS < last {
					t.Fatalf("subtask %d fired %d after %d", o.Sub, o.TS, last)
				}
				if last, ok := lastOfKey[o.Key]; ok && o.TS <= last {
					t.Fatalf("key %d fired %d after %d", o.Key, o.TS, last)
				}
				lastOfSub[o.Sub], lastOfKey[o.Key] = o.TS, o.TS
				if o.WM < o.TS || o.CtxTS != o.TS {
					t.Fatalf("timer %v fired at watermark %d with timestamp %d", k, o.WM, o.CtxTS)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d timers fired, want %d", len(got), len(want))
			}
		})
	}
}

// etProcTimer registers a processing-time timer 50 ms ahead, and one 30 ms
// ahead that it deletes at once.
type etProcTimer struct {
	fired *atomic.Bool
	want  *atomic.Int64 // the timer's time
	fires *etLog
}

// etLog is a log that subtasks may write to concurrently.
type etLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *etLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (f *etProcTimer) ProcessElement(ctx sdk.KeyedContext[int], _ etRec, _ sdk.Collector[string]) error {
	ts := ctx.TimerService()
	now := ts.CurrentProcessingTime()
	if d := now - time.Now().UnixMilli(); d > 1 || d < -1 {
		return fmt.Errorf("processing time %d is not the clock's", now)
	}
	f.want.Store(now + 50)
	ts.RegisterProcessingTimeTimer(now + 50)
	ts.RegisterProcessingTimeTimer(now + 30)
	ts.DeleteProcessingTimeTimer(now + 30)
	return nil
}

func (f *etProcTimer) OnTimer(ctx sdk.KeyedContext[int], ts int64, out sdk.Collector[string]) error {
	now := time.Now().UnixMilli()
	f.fires.add("timer %d (want %d) fired at %d, domain %v, key %d, timestamp %d",
		ts, f.want.Load(), now, ctx.TimeDomain(), ctx.Key(), ctx.Timestamp())
	switch {
	case ctx.TimeDomain() != sdk.ProcessingTime:
		return fmt.Errorf("timer %d: domain %v", ts, ctx.TimeDomain())
	case now < ts:
		return fmt.Errorf("processing-time timer %d fired early, at %d", ts, now)
	case ts != f.want.Load():
		return fmt.Errorf("timer %d fired, want only %d (the other was deleted)", ts, f.want.Load())
	}
	f.fired.Store(true)
	out.Collect("fired")
	return nil
}

// A processing-time timer fires when the clock reaches it, not before, in
// a task driven by a source (parallelism 1, chained) and in one driven by
// its inputs (parallelism 4), while the input is quiet.
func TestProcessingTimeTimerFiresOnTime(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			var fired atomic.Bool
			var want atomic.Int64
			fires := &etLog{}
			start := time.Now()
			job := sdk.NewJob("processing-time")
			// One record, then nothing until the timer fired.
			src := &etSource[etRec]{splits: 1, step: func(_, call int, emit func(etRec)) (bool, error) {
				if call == 0 {
					emit(etRec{Split: 0, TS: 1})
					return false, nil
				}
				if time.Since(start) > 10*time.Second {
					return true, fmt.Errorf("the processing-time timer did not fire within 10 s")
				}
				return fired.Load(), nil
			}}
			recs := sdk.FromSource(job, src, sdk.WithUID("src"), sdk.WithParallelism(1))
			fn := &etProcTimer{fired: &fired, want: &want, fires: fires}
			outs := sdk.Process(sdk.KeyBy(recs, func(r etRec) int { return r.Split }),
				sdk.KeyedProcessFunction[int, etRec, string](fn), sdk.WithUID("proc"))
			out := sdk.Collect[string]()
			sdk.SinkTo(outs, out)
			runJob(t, job, p)
			if got := out.Records(); len(got) != 1 || len(fires.lines) != 1 {
				t.Fatalf("outputs %v, timers fired: %v", got, fires.lines)
			}
			t.Log(fires.lines[0])
		})
	}
}

// etFinal registers an event-time timer far ahead for every record, and
// emits from it.
type etFinal struct{ stage int }

func (f *etFinal) ProcessElement(ctx sdk.KeyedContext[int], r etTimerRec, _ sdk.Collector[etTimerRec]) error {
	ctx.TimerService().RegisterEventTimeTimer(1_000_000_000 + int64(r.Seq))
	return nil
}

func (f *etFinal) OnTimer(ctx sdk.KeyedContext[int], ts int64, out sdk.Collector[etTimerRec]) error {
	if wm := ctx.TimerService().CurrentWatermark(); wm != sdk.MaxWatermark {
		return fmt.Errorf("stage %d: timer %d fired at watermark %d, before the end", f.stage, ts, wm)
	}
	out.Collect(etTimerRec{Key: ctx.Key(), TS: ctx.Timestamp(), Seq: int(ts - 1_000_000_000)})
	return nil
}

// The final watermark at the end of bounded input fires every pending
// timer, with or without event time in the records; what the timers emit
// is stamped with their time and reaches a second stage before its input
// ends, where the final watermark fires that stage's timers in turn.
func TestFinalWatermarkFiresPendingTimers(t *testing.T) {
	const n = 500
	var recs []etTimerRec
	for i := range n {
		recs = append(recs, etTimerRec{Key: i % 17, TS: int64(i), Seq: i})
	}
	for _, withTime := range []bool{false, true} {
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("event-time=%v/p=%d", withTime, p), func(t *testing.T) {
				job := sdk.NewJob("final-watermark")
				var opts []sdk.Option
				if withTime {
					opts = append(opts, sdk.WithWatermarks(sdk.MonotonousTimestamps(func(r etTimerRec) int64 { return r.TS })))
				}
				src := sdk.FromSource(job, sdk.FromSlice(recs), append(opts, sdk.WithUID("src"))...)
				first := sdk.Process(sdk.KeyBy(src, func(r etTimerRec) int { return r.Key }),
					sdk.KeyedProcessFunction[int, etTimerRec, etTimerRec](&etFinal{stage: 1}), sdk.WithUID("first"))
				// Rekeyed, so that the second stage is another task at p=4.
				second := sdk.Process(sdk.KeyBy(first, func(r etTimerRec) int { return r.Seq % 5 }),
					sdk.KeyedProcessFunction[int, etTimerRec, etTimerRec](&etFinal{stage: 2}), sdk.WithUID("second"))
				out := sdk.Collect[etTimerRec]()
				sdk.SinkTo(second, out)
				runJob(t, job, p)
				got := out.Records()
				if len(got) != n {
					t.Fatalf("%d timers fired in the second stage, want %d", len(got), n)
				}
				seen := map[int]bool{}
				for _, r := range got {
					if r.TS != 1_000_000_000+int64(r.Seq) {
						t.Fatalf("second stage timer %d has timestamp %d", r.Seq, r.TS)
					}
					seen[r.Seq] = true
				}
				if len(seen) != n {
					t.Fatalf("%d distinct timers, want %d", len(seen), n)
				}
			})
		}
	}
}

// etTTLRec asks etTTL to do Op on key K.
type etTTLRec struct {
	K  string
	Op string
}

type etTTL struct {
	v sdk.ValueState[int]
	l sdk.ListState[int]
	m sdk.MapState[string, int]
}

const etTTLTime = 50 * time.Millisecond

func (f *etTTL) Open(ctx sdk.RuntimeContext) error {
	f.v = sdk.NewValueState[int](ctx, "v", sdk.WithTTL(etTTLTime))
	f.l = sdk.NewListState[int](ctx, "l", sdk.WithTTL(etTTLTime))
	f.m = sdk.NewMapState[string, int](ctx, "m", sdk.WithTTL(etTTLTime))
	return nil
}

func (f *etTTL) present() string {
	v, ok := f.v.Value()
	return fmt.Sprintf("value=%v/%v list=%v map=%v", v, ok, f.l.Get(), f.m.Len())
}

func (f *etTTL) ProcessElement(ctx sdk.KeyedContext[string], r etTTLRec, out sdk.Collector[string]) error {
	switch r.Op {
	case "write":
		f.v.Update(1)
		f.l.Add(1)
		f.m.Put("a", 1)
		out.Collect(ctx.Key() + " written: " + f.present())
	case "read":
		out.Collect(ctx.Key() + " read: " + f.present())
	case "renew":
		// Write, rewrite 30 ms later, read 30 ms after that: the first
		// write has expired by then, the rewrite has not. The clock decides
		// whether an attempt shows that; report the ones that do.
		ms := func() int64 { return time.Now().UnixMilli() }
		f.v.Update(1)
		wrote := ms()
		time.Sleep(30 * time.Millisecond)
		before := ms()
		f.v.Update(2)
		time.Sleep(30 * time.Millisecond)
		readAt := ms()
		v, ok := f.v.Value()
		after := ms()
		if readAt >= wrote+etTTLTime.Milliseconds() && after < before+etTTLTime.Milliseconds() {
			out.Collect(fmt.Sprintf("%s renewed: %v/%v", ctx.Key(), v, ok))
		}
	}
	return nil
}

// State with a time to live is gone once it has not been written for that
// long, and every write renews it.
func TestStateTTLExpiresEntries(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			var wrote time.Time
			job := sdk.NewJob("ttl")
			src := &etSource[etTTLRec]{splits: 1, step: func(_, call int, emit func(etTTLRec)) (bool, error) {
				switch {
				case call == 0:
					emit(etTTLRec{K: "a", Op: "write"})
					emit(etTTLRec{K: "b", Op: "write"})
					wrote = time.Now()
				case time.Since(wrote) < 3*etTTLTime:
					// Let the entries expire.
				default:
					emit(etTTLRec{K: "a", Op: "read"})
					emit(etTTLRec{K: "b", Op: "write"})
					emit(etTTLRec{K: "b", Op: "read"})
					for i := range 10 {
						emit(etTTLRec{K: fmt.Sprint("r", i), Op: "renew"})
					}
					return true, nil
				}
				return false, nil
			}}
			recs := sdk.FromSource(job, src, sdk.WithUID("src"), sdk.WithParallelism(1))
			res := sdk.Process(sdk.KeyBy(recs, func(r etTTLRec) string { return r.K }),
				sdk.KeyedProcessFunction[string, etTTLRec, string](&etTTL{}), sdk.WithUID("ttl"))
			out := sdk.Collect[string]()
			sdk.SinkTo(res, out, sdk.WithParallelism(1))
			runJob(t, job, p)
			got := out.Records()
			var renewed []string
			rest := got[:0:0]
			for _, s := range got {
				if strings.Contains(s, "renewed") {
					renewed = append(renewed, s)
				} else {
					rest = append(rest, s)
				}
			}
			slices.Sort(rest)
			want := []string{
				"a read: value=0/false list=[] map=0",
				"a written: value=1/true list=[1] map=1",
				"b read: value=1/true list=[1] map=1",
				"b written: value=1/true list=[1] map=1",
				"b written: value=1/true list=[1] map=1",
			}
			if !slices.Equal(rest, want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(rest, "\n"), strings.Join(want, "\n"))
			}
			if len(renewed) == 0 {
				t.Fatal("no renewal attempt ran in time (the clock was too slow 10 times)")
			}
			for _, s := range renewed {
				if !strings.HasSuffix(s, ": 2/true") {
					t.Fatalf("a rewritten value expired with the first write: %s", s)
				}
			}
		})
	}
}

// etSides emits every record, sends odd ones to a side output of another
// type and, from a timer, a summary to a second side output.
type etSides struct {
	count sdk.ValueState[int]
}

var (
	etOdd     = sdk.NewOutputTag[string]("odd")
	etSummary = sdk.NewOutputTag[etTimerRec]("summary")
	etUnread  = sdk.NewOutputTag[int]("unread")
)

func (f *etSides) Open(ctx sdk.RuntimeContext) error {
	f.count = sdk.NewValueState[int](ctx, "count")
	return nil
}

func (f *etSides) ProcessElement(ctx sdk.KeyedContext[int], r etTimerRec, out sdk.Collector[int]) error {
	out.Collect(r.Seq)
	if r.Seq%2 == 1 {
		sdk.Emit(ctx, etOdd, fmt.Sprintf("odd %d", r.Seq))
	}
	sdk.Emit(ctx, etUnread, r.Seq)
	c, _ := f.count.Value()
	f.count.Update(c + 1)
	ctx.TimerService().RegisterEventTimeTimer(1000)
	return nil
}

func (f *etSides) OnTimer(ctx sdk.KeyedContext[int], ts int64, _ sdk.Collector[int]) error {
	c, _ := f.count.Value()
	sdk.Emit(ctx, etSummary, etTimerRec{Key: ctx.Key(), TS: ts, Seq: c})
	return nil
}

// Side outputs of a keyed process function, emitted from records and from
// timers, reach the streams SideOutput returns, with their timestamps; one
// nobody reads costs nothing.
func TestSideOutputsOfAKeyedProcessFunction(t *testing.T) {
	const n, keys = 2000, 9
	var recs []etTimerRec
	for i := range n {
		recs = append(recs, etTimerRec{Key: i % keys, TS: int64(i / 10), Seq: i})
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("side-outputs")
			src := sdk.FromSource(job, sdk.FromSlice(recs), sdk.WithUID("src"),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(func(r etTimerRec) int64 { return r.TS })))
			main := sdk.Process(sdk.KeyBy(src, func(r etTimerRec) int { return r.Key }),
				sdk.KeyedProcessFunction[int, etTimerRec, int](&etSides{}), sdk.WithUID("sides"))
			mainOut := sdk.Collect[int]()
			sdk.SinkTo(main, mainOut)
			oddOut := sdk.Collect[string]()
			sdk.SinkTo(sdk.SideOutput(main, etOdd), oddOut)
			// The summaries go through another keyed exchange, which checks
			// their timestamp: the timer's time.
			summaries := sdk.Process(sdk.KeyBy(sdk.SideOutput(main, etSummary), func(r etTimerRec) int { return r.Key }),
				sdk.ProcessFunc[int, etTimerRec, string](func(ctx sdk.KeyedContext[int], r etTimerRec, out sdk.Collector[string]) error {
					out.Collect(fmt.Sprintf("key %d: %d records, timer %d, timestamp %d", r.Key, r.Seq, r.TS, ctx.Timestamp()))
					return nil
				}), sdk.WithUID("summaries"))
			sumOut := sdk.Collect[string]()
			sdk.SinkTo(summaries, sumOut)
			runJob(t, job, p)

			var wantMain []int
			var wantOdd, wantSum []string
			for i := range n {
				wantMain = append(wantMain, i)
				if i%2 == 1 {
					wantOdd = append(wantOdd, fmt.Sprintf("odd %d", i))
				}
			}
			for k := range keys {
				c := 0
				for i := range n {
					if i%keys == k {
						c++
					}
				}
				wantSum = append(wantSum, fmt.Sprintf("key %d: %d records, timer 1000, timestamp 1000", k, c))
			}
			sameRecords(t, mainOut.Records(), wantMain)
			sameRecords(t, oddOut.Records(), wantOdd)
			sameRecords(t, sumOut.Records(), wantSum)
		})
	}
}

// etStamped is a record that carries the timestamp it was given.
type etStamped struct {
	Key  string
	TS   int64
	Seen []int64 // the timestamps operators saw, in order
}

// Records keep their timestamps through chains, keyed exchanges and
// rebalances, and records without one keep having none.
func TestTimestampsSurviveTheExchange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	var recs []etStamped
	for i := range 5000 {
		// Timestamps jump around (big deltas, negative ones), so that the
		// delta encoding of a batch is exercised.
		ts := int64(i)*1000 + r.Int64N(1<<40) - 1<<39
		recs = append(recs, etStamped{Key: fmt.Sprint("k", r.IntN(50)), TS: ts})
	}
	see := func(ctx sdk.KeyedContext[string], s etStamped, out sdk.Collector[etStamped]) error {
		s.Seen = append(slices.Clone(s.Seen), ctx.Timestamp())
		out.Collect(s)
		return nil
	}
	for _, withTime := range []bool{true, false} {
		for _, p := range []int{4, 1} {
			t.Run(fmt.Sprintf("event-time=%v/p=%d", withTime, p), func(t *testing.T) {
				job := sdk.NewJob("timestamps")
				opts := []sdk.Option{sdk.WithUID("src")}
				if withTime {
					// Idle-free and bounded: the watermark never passes a record.
					opts = append(opts, sdk.WithWatermarks(sdk.BoundedOutOfOrderness(1<<40*time.Millisecond, func(s etStamped) int64 { return s.TS })))
				}
				src := sdk.FromSource(job, sdk.FromSlice(recs), opts...)
				mapped := sdk.Map(src, func(s etStamped) etStamped { s.Key += "!"; return s })
				first := sdk.Process(sdk.KeyBy(mapped, func(s etStamped) string { return s.Key }),
					sdk.ProcessFunc[string, etStamped, etStamped](see), sdk.WithUID("first"))
				spread := sdk.Map(sdk.Rebalance(first), func(s etStamped) etStamped { return s }, sdk.WithParallelism(3))
				second := sdk.Process(sdk.KeyBy(spread, func(s etStamped) string { return s.Key[:2] }),
					sdk.ProcessFunc[string, etStamped, etStamped](see), sdk.WithUID("second"))
				out := sdk.Collect[etStamped]()
				sdk.SinkTo(second, out)
				runJob(t, job, p)
				got := out.Records()
				if len(got) != len(recs) {
					t.Fatalf("%d records, want %d", len(got), len(recs))
				}
				for _, s := range got {
					want := s.TS
					if !withTime {
						want = sdk.NoTimestamp
					}
					if len(s.Seen) != 2 || s.Seen[0] != want || s.Seen[1] != want {
						t.Fatalf("record stamped %d (want %d) was seen with %v", s.TS, want, s.Seen)
					}
				}
			})
		}
	}
}

// A source with event time: BoundedOutOfOrderness takes each record's time
// from a field and lets the watermark trail the highest time seen by the
// bound, so the late 1:00:03 click still counts in its minute.
func ExampleBoundedOutOfOrderness() {
	type click struct {
		User string
		At   int64 // ms
	}
	const sec = int64(1000)
	clicks := []click{
		{"ann", 3600 * sec}, {"bob", 3601 * sec}, {"ann", 3605 * sec}, {"ann", 3661 * sec},
		{"ann", 3603 * sec}, // 58 s late: within the bound
		{"bob", 3725 * sec},
	}
	job := sdk.NewJob("clicks")
	src := sdk.FromSource(job, sdk.FromSlice(clicks), sdk.WithUID("clicks"),
		sdk.WithWatermarks(sdk.BoundedOutOfOrderness(time.Minute, func(c click) int64 { return c.At })))
	// Count per user and minute with a timer at the end of each minute.
	perMinute := sdk.Process(sdk.KeyBy(src, func(c click) string { return c.User }),
		sdk.KeyedProcessFunction[string, click, string](&minuteCounter[click]{}), sdk.WithUID("per-minute"))
	sdk.SinkTo(perMinute, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// ann minute 60: 3 clicks
	// bob minute 60: 1 clicks
	// ann minute 61: 1 clicks
	// bob minute 62: 1 clicks
}

// minuteCounter counts each key's records per minute of event time and
// emits the count when the watermark passes the end of the minute.
type minuteCounter[T any] struct {
	counts sdk.MapState[int64, int]
}

func (m *minuteCounter[T]) Open(ctx sdk.RuntimeContext) error {
	m.counts = sdk.NewMapState[int64, int](ctx, "counts")
	return nil
}

func (m *minuteCounter[T]) ProcessElement(ctx sdk.KeyedContext[string], _ T, _ sdk.Collector[string]) error {
	minute := ctx.Timestamp() / 60_000
	n, _ := m.counts.Get(minute)
	m.counts.Put(minute, n+1)
	ctx.TimerService().RegisterEventTimeTimer((minute+1)*60_000 - 1)
	return nil
}

func (m *minuteCounter[T]) OnTimer(ctx sdk.KeyedContext[string], ts int64, out sdk.Collector[string]) error {
	minute := (ts+1)/60_000 - 1
	n, _ := m.counts.Get(minute)
	m.counts.Remove(minute)
	out.Collect(fmt.Sprintf("%s minute %d: %d clicks", ctx.Key(), minute, n))
	return nil
}

// WithWatermarks gives a source event time; timers of a keyed process
// function then fire as the watermark passes them, here once per key at
// the end of each minute in which it had records.
func ExampleWithWatermarks() {
	type reading struct {
		Sensor string
		At     int64 // ms
		Temp   float64
	}
	readings := []reading{
		{"s1", 0, 20}, {"s2", 10_000, 30}, {"s1", 30_000, 22}, {"s1", 70_000, 25}, {"s2", 80_000, 31},
	}
	job := sdk.NewJob("sensors")
	src := sdk.FromSource(job, sdk.FromSlice(readings), sdk.WithUID("readings"),
		sdk.WithWatermarks(sdk.MonotonousTimestamps(func(r reading) int64 { return r.At })))
	maxima := sdk.Process(sdk.KeyBy(src, func(r reading) string { return r.Sensor }),
		sdk.KeyedProcessFunction[string, reading, string](&maxPerMinute[reading]{temp: func(r reading) float64 { return r.Temp }}),
		sdk.WithUID("max"))
	sdk.SinkTo(maxima, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// s1 max 22.0 in the minute to 60000
	// s2 max 30.0 in the minute to 60000
	// s1 max 25.0 in the minute to 120000
	// s2 max 31.0 in the minute to 120000
}

// maxPerMinute keeps the highest temperature of the current minute per key
// and emits it from a timer at the minute's end.
type maxPerMinute[T any] struct {
	temp func(T) float64
	hi   sdk.MapState[int64, float64] // minute end -> highest
}

func (m *maxPerMinute[T]) Open(ctx sdk.RuntimeContext) error {
	m.hi = sdk.NewMapState[int64, float64](ctx, "hi")
	return nil
}

func (m *maxPerMinute[T]) ProcessElement(ctx sdk.KeyedContext[string], r T, _ sdk.Collector[string]) error {
	end := (ctx.Timestamp()/60_000 + 1) * 60_000
	if hi, ok := m.hi.Get(end); !ok || m.temp(r) > hi {
		m.hi.Put(end, m.temp(r))
	}
	ctx.TimerService().RegisterEventTimeTimer(end - 1)
	return nil
}

func (m *maxPerMinute[T]) OnTimer(ctx sdk.KeyedContext[string], ts int64, out sdk.Collector[string]) error {
	end := ts + 1
	hi, _ := m.hi.Get(end)
	m.hi.Remove(end)
	out.Collect(fmt.Sprintf("%s max %.1f in the minute to %d", ctx.Key(), hi, end))
	return nil
}

// A keyed process function with timers: it emits each user's session (a
// run of clicks less than 30 s apart) when 30 s of event time pass without
// a click, and the final watermark at the end of input closes the rest.
func ExampleTimerHandler() {
	type click struct {
		User string
		At   int64 // s
	}
	clicks := []click{{"ann", 0}, {"bob", 5}, {"ann", 20}, {"ann", 45}, {"bob", 100}, {"ann", 200}}
	job := sdk.NewJob("sessions")
	src := sdk.FromSource(job, sdk.FromSlice(clicks), sdk.WithUID("clicks"),
		sdk.WithWatermarks(sdk.MonotonousTimestamps(func(c click) int64 { return c.At * 1000 })))
	sessions := sdk.Process(sdk.KeyBy(src, func(c click) string { return c.User }),
		sdk.KeyedProcessFunction[string, click, string](&sessionizer[click]{}), sdk.WithUID("sessions"))
	sdk.SinkTo(sessions, sdk.Print[string]())
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		log.Fatal(err)
	}
	// Output:
	// bob: 1 clicks from 5s to 5s
	// ann: 3 clicks from 0s to 45s
	// bob: 1 clicks from 100s to 100s
	// ann: 1 clicks from 200s to 200s
}

// sessionGap ends a session: 30 s of event time without a click.
const sessionGap = 30_000

// sessionizer tracks the current session per key: its first and last
// time and its size, and a timer a gap after the last click.
type sessionizer[T any] struct {
	first, last sdk.ValueState[int64]
	count       sdk.ValueState[int]
}

func (s *sessionizer[T]) Open(ctx sdk.RuntimeContext) error {
	s.first = sdk.NewValueState[int64](ctx, "first")
	s.last = sdk.NewValueState[int64](ctx, "last")
	s.count = sdk.NewValueState[int](ctx, "count")
	return nil
}

func (s *sessionizer[T]) ProcessElement(ctx sdk.KeyedContext[string], _ T, out sdk.Collector[string]) error {
	ts := ctx.Timestamp()
	if last, ok := s.last.Value(); ok {
		ctx.TimerService().DeleteEventTimeTimer(last + sessionGap)
		if ts >= last+sessionGap {
			// The watermark had not yet passed the gap: close the session here.
			s.emit(ctx.Key(), out)
		}
	}
	if _, ok := s.first.Value(); !ok {
		s.first.Update(ts)
	}
	s.last.Update(ts)
	n, _ := s.count.Value()
	s.count.Update(n + 1)
	ctx.TimerService().RegisterEventTimeTimer(ts + sessionGap)
	return nil
}

func (s *sessionizer[T]) OnTimer(ctx sdk.KeyedContext[string], _ int64, out sdk.Collector[string]) error {
	s.emit(ctx.Key(), out)
	return nil
}

// emit emits the current session and forgets it.
func (s *sessionizer[T]) emit(key string, out sdk.Collector[string]) {
	first, _ := s.first.Value()
	last, _ := s.last.Value()
	n, _ := s.count.Value()
	out.Collect(fmt.Sprintf("%s: %d clicks from %ds to %ds", key, n, first/1000, last/1000))
	s.first.Clear()
	s.last.Clear()
	s.count.Clear()
}

// A partition that ended and one that is idle: the idle one may still
// resume, so the watermark must hold where it was, not jump to the end of
// time (which would fire every timer and make the resumed records late).
func TestEndedAndIdlePartitionsHoldTheWatermark(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			var quiet time.Time
			job := sdk.NewJob("ended-and-idle")
			src := &etSource[etRec]{splits: 2, step: func(split, call int, emit func(etRec)) (bool, error) {
				if split == 0 {
					// Bounded: all at once, then done.
					for ts := range int64(101) {
						emit(etRec{Split: 0, TS: ts})
					}
					return true, nil
				}
				switch {
				case call == 0:
					emit(etRec{Split: 1, TS: 0})
					quiet = time.Now()
				case time.Since(quiet) < 300*time.Millisecond:
					// Idle for a while.
				default:
					for ts := range int64(10) {
						emit(etRec{Split: 1, TS: 50 + ts, Phase: 2})
					}
					return true, nil
				}
				return false, nil
			}}
			// One split per source subtask: split 0's subtask ends, split 1's
			// is marked idle.
			recs := sdk.FromSource(job, src, sdk.WithUID("src"), sdk.WithParallelism(2),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(etTimestamp).WithIdleness(50*time.Millisecond)))
			obs := etObserve(sdk.KeyBy(recs, func(r etRec) int { return r.Split }), &etObserver{
				timer: func(r etRec) (int64, bool) { return r.TS + 1000, true },
			})
			out := sdk.Collect[etObs]()
			sdk.SinkTo(obs, out)
			runJob(t, job, p)
			records, timers := etSplit(out.Records())
			for _, o := range records {
				if o.Phase == 2 && o.WM >= o.TS {
					t.Fatalf("resumed record at %d saw watermark %d: the watermark ran ahead while its partition was idle", o.TS, o.WM)
				}
			}
			// Distinct per key: 101 of split 0, 11 of split 1.
			if len(records) != 112 || len(timers) != 112 {
				t.Fatalf("%d records, %d timers fired, want 112 and 112", len(records), len(timers))
			}
		})
	}
}
