package sdk_test

// Tests of windows and window joins, run as jobs at parallelism 1 and 4 and
// checked against results computed here with plain maps and sorts.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// wev is a record with a key, an event time and a value.
type wev struct {
	Key string
	TS  int64
	V   int64
}

func wevTS(e wev) int64 { return e.TS }

func sumWev(a, b wev) wev { return wev{Key: a.Key, TS: max(a.TS, b.TS), V: a.V + b.V} }

// genEvents returns n records in time order: keys k0..k(keys-1), times
// advancing 0 to 5 ms a record, values 1 to 100.
func genEvents(seed uint64, n, keys int) []wev {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]wev, n)
	ts := int64(1000)
	for i := range out {
		ts += r.Int64N(6)
		out[i] = wev{Key: fmt.Sprintf("k%d", r.IntN(keys)), TS: ts, V: r.Int64N(100) + 1}
	}
	return out
}

// disorder delays each record by up to maxDelay ms: no record comes after
// one more than maxDelay younger, so a watermark that trails by maxDelay
// never makes one late.
func disorder(in []wev, maxDelay int64, seed uint64) []wev {
	r := rand.New(rand.NewPCG(seed, 2))
	type keyed struct {
		at int64
		e  wev
	}
	ks := make([]keyed, len(in))
	for i, e := range in {
		ks[i] = keyed{at: e.TS + r.Int64N(maxDelay+1), e: e}
	}
	sort.SliceStable(ks, func(i, j int) bool { return ks[i].at < ks[j].at })
	out := make([]wev, len(in))
	for i, k := range ks {
		out[i] = k.e
	}
	return out
}

// refWindows returns the windows [s, s+size) with s = offset + k*slide that
// hold ts, by trying every start from far enough before it.
func refWindows(ts, size, slide, offset int64) []sdk.Window {
	s := offset
	for s > ts-size {
		s -= slide
	}
	for s+slide <= ts-size {
		s += slide
	}
	var out []sdk.Window
	for ; s <= ts; s += slide {
		if ts >= s && ts < s+size {
			out = append(out, sdk.Window{Start: s, End: s + size})
		}
	}
	return out
}

// refSessions groups each key's records into sessions: sorted by time, a
// record more than gap after the previous one starts a new session.
func refSessions(in []wev, gap int64) map[string]map[sdk.Window][]wev {
	byKey := map[string][]wev{}
	for _, e := range in {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	out := map[string]map[sdk.Window][]wev{}
	for k, es := range byKey {
		sort.SliceStable(es, func(i, j int) bool { return es[i].TS < es[j].TS })
		out[k] = map[sdk.Window][]wev{}
		start := 0
		for i := 1; i <= len(es); i++ {
			if i == len(es) || es[i].TS-es[i-1].TS > gap {
				w := sdk.Window{Start: es[start].TS, End: es[i-1].TS + gap}
				out[k][w] = es[start:i]
				start = i
			}
		}
	}
	return out
}

// refCount cuts each key's records, in input order, into windows of n,
// cumulative or not; the last, incomplete one never fires.
func refCount(in []wev, n int, cumulative bool) map[string][][]wev {
	byKey := map[string][]wev{}
	out := map[string][][]wev{}
	for _, e := range in {
		byKey[e.Key] = append(byKey[e.Key], e)
		if len(byKey[e.Key])%n == 0 {
			all := byKey[e.Key]
			if cumulative {
				out[e.Key] = append(out[e.Key], slices.Clone(all))
			} else {
				out[e.Key] = append(out[e.Key], slices.Clone(all[len(all)-n:]))
			}
		}
	}
	return out
}

// stats is what the tests compute over a window's records.
type stats struct {
	N, Sum int64
}

// countSum is an AggregateFunction to stats.
type countSum struct{}

func (countSum) CreateAccumulator() stats                  { return stats{} }
func (countSum) Add(acc stats, e wev) stats                { return stats{N: acc.N + 1, Sum: acc.Sum + e.V} }
func (countSum) Result(acc stats) stats                    { return acc }
func (countSum) Merge(a, b stats) stats                    { return stats{N: a.N + b.N, Sum: a.Sum + b.Sum} }
func (s stats) String() string                             { return fmt.Sprintf("n=%d sum=%d", s.N, s.Sum) }
func statsOf(es []wev) (s stats)                           { return statsOfSeq(slices.Values(es)) }
func valuesOf(es []wev) []int64                            { return valuesOfSeq(slices.Values(es)) }
func line(k string, w sdk.Window, v any) string            { return fmt.Sprintf("%s %v %v", k, w, v) }
func windowedLine[V any](r sdk.Windowed[string, V]) string { return line(r.Key, r.Window, r.Value) }

func statsOfSeq(es iter.Seq[wev]) (s stats) {
	for e := range es {
		s.N++
		s.Sum += e.V
	}
	return s
}

func valuesOfSeq(es iter.Seq[wev]) []int64 {
	var vs []int64
	for e := range es {
		vs = append(vs, e.V)
	}
	slices.Sort(vs)
	return vs
}

// reference holds the expected lines of the three window functions.
type reference struct{ reduce, aggregate, process []string }

func (r *reference) add(k string, w sdk.Window, es []wev) {
	s := statsOf(es)
	r.reduce = append(r.reduce, line(k, w, s.Sum))
	r.aggregate = append(r.aggregate, line(k, w, s))
	r.process = append(r.process, line(k, w, valuesOf(es)))
}

func TestWindowResultsMatchReference(t *testing.T) {
	const ms = time.Millisecond
	type windowCase struct {
		name     string
		assigner sdk.WindowAssigner
		opts     []sdk.WindowOption
		// byKeyIndex keys records by their index mod 4, so that each key's
		// records come from one source split, in order (count windows
		// depend on the order).
		byKeyIndex bool
		want       func(in []wev) reference
	}
	slidingRef := func(size, slide, offset int64) func(in []wev) reference {
		return func(in []wev) reference {
			groups := map[string]map[sdk.Window][]wev{}
			for _, e := range in {
				for _, w := range refWindows(e.TS, size, slide, offset) {
					if groups[e.Key] == nil {
						groups[e.Key] = map[sdk.Window][]wev{}
					}
					groups[e.Key][w] = append(groups[e.Key][w], e)
				}
			}
			var r reference
			for k, ws := range groups {
				for w, es := range ws {
					r.add(k, w, es)
				}
			}
			return r
		}
	}
	countRef := func(n int, cumulative bool) func(in []wev) reference {
		return func(in []wev) reference {
			var r reference
			for k, firings := range refCount(in, n, cumulative) {
				for _, es := range firings {
					r.add(k, sdk.Window{Start: -1 << 63, End: 1<<63 - 1}, es)
				}
			}
			return r
		}
	}
	cases := []windowCase{{
		name:     "tumbling",
		assigner: sdk.TumblingEventTimeWindows(100 * ms),
		want:     slidingRef(100, 100, 0),
	}, {
		name:     "tumbling with offset",
		assigner: sdk.TumblingEventTimeWindows(100*ms, sdk.WithOffset(-30*ms)),
		want:     slidingRef(100, 100, -30),
	}, {
		name:     "sliding",
		assigner: sdk.SlidingEventTimeWindows(100*ms, 30*ms),
		want:     slidingRef(100, 30, 0),
	}, {
		name:     "sliding with offset",
		assigner: sdk.SlidingEventTimeWindows(50*ms, 20*ms, sdk.WithOffset(7*ms)),
		want:     slidingRef(50, 20, 7),
	}, {
		name:     "session",
		assigner: sdk.EventTimeSessionWindows(15 * ms),
		want: func(in []wev) reference {
			var r reference
			for k, ws := range refSessions(in, 15) {
				for w, es := range ws {
					r.add(k, w, es)
				}
			}
			return r
		},
	}, {
		name:       "global, purging count",
		assigner:   sdk.GlobalWindows(),
		opts:       []sdk.WindowOption{sdk.WithTrigger(sdk.PurgingTrigger(sdk.CountTrigger(7)))},
		byKeyIndex: true,
		want:       countRef(7, false),
	}, {
		name:       "global, count",
		assigner:   sdk.GlobalWindows(),
		opts:       []sdk.WindowOption{sdk.WithTrigger(sdk.CountTrigger(50))},
		byKeyIndex: true,
		want:       countRef(50, true),
	}}
	inOrder := genEvents(7, 3000, 7)
	outOfOrder := disorder(inOrder, 60, 8)
	for _, c := range cases {
		for _, order := range []string{"in order", "out of order"} {
			in := inOrder
			if order == "out of order" {
				in = outOfOrder
			}
			if c.byKeyIndex {
				in = slices.Clone(in)
				for i := range in {
					in[i].Key = fmt.Sprintf("i%d", i%4)
				}
			}
			want := c.want(in)
			if len(want.reduce) == 0 {
				t.Fatalf("%s: no expected windows", c.name)
			}
			for _, p := range parallelisms {
				t.Run(fmt.Sprintf("%s/%s/p=%d", c.name, order, p), func(t *testing.T) {
					job := sdk.NewJob("windows")
					src := sdk.FromSource(job, sdk.FromSlice(in), sdk.WithUID("src"),
						sdk.WithWatermarks(sdk.BoundedOutOfOrderness(60*ms, wevTS)))
					var dropped atomic.Int64
					ws := sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), c.assigner,
						append(slices.Clone(c.opts), sdk.DroppedLateRecords(&dropped))...)
					reduced := sdk.Collect[string]()
					sdk.SinkTo(sdk.Map(sdk.WindowReduce(ws, sumWev, sdk.WithUID("reduce")),
						func(r sdk.Windowed[string, wev]) string { return line(r.Key, r.Window, r.Value.V) }), reduced)
					aggregated := sdk.Collect[string]()
					sdk.SinkTo(sdk.Map(sdk.WindowAggregate(ws, sdk.AggregateFunction[wev, stats, stats](countSum{}), sdk.WithUID("aggregate")),
						windowedLine[stats]), aggregated)
					processed := sdk.Collect[string]()
					sdk.SinkTo(sdk.WindowProcess(ws, sdk.ProcessWindowFunc[string, wev, string](
						func(ctx sdk.WindowContext[string], es iter.Seq[wev], out sdk.Collector[string]) error {
							out.Collect(line(ctx.Key(), ctx.Window(), valuesOfSeq(es)))
							return nil
						}), sdk.WithUID("process")), processed)
					runJob(t, job, p)
					if dropped.Load() != 0 {
						t.Errorf("%d records dropped as late", dropped.Load())
					}
					sameLines(t, "reduce", reduced.Records(), want.reduce)
					sameLines(t, "aggregate", aggregated.Records(), want.aggregate)
					sameLines(t, "process", processed.Records(), want.process)
				})
			}
		}
	}
}

// sameLines compares two multisets of lines, showing a few differences.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return
	}
	count := map[string]int{}
	for _, l := range got {
		count[l]++
	}
	for _, l := range want {
		count[l]--
	}
	var diffs []string
	for l, n := range count {
		switch {
		case n > 0:
			diffs = append(diffs, fmt.Sprintf("unexpected (%d): %s", n, l))
		case n < 0:
			diffs = append(diffs, fmt.Sprintf("missing (%d): %s", -n, l))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], "...")
	}
	t.Errorf("%s: got %d lines, want %d:\n%s", what, len(got), len(want), strings.Join(diffs, "\n"))
}

// oneByOne is a source of one split that emits one record per Read, so
// that the watermark moves after every record. At parallelism 1 the order
// of records and watermarks downstream is exact at any parallelism (at
// more, the idle subtasks' channels could hold the watermark back until
// they end).
type oneByOne[T any] struct{ records []T }

func (s oneByOne[T]) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "only"}}, nil
}

func (s oneByOne[T]) Open(_ context.Context, _ sdk.SourceContext, splits []sdk.Split) (sdk.Reader[T], error) {
	r := &oneByOneReader[T]{}
	if len(splits) > 0 {
		r.records = s.records
	}
	return r, nil
}

type oneByOneReader[T any] struct {
	records []T
	next    int
}

func (r *oneByOneReader[T]) Read(_ context.Context, out sdk.Collector[T]) (sdk.ReadStatus, error) {
	if r.next >= len(r.records) {
		return sdk.Done, nil
	}
	out.Collect(r.records[r.next])
	r.next++
	return sdk.More, nil
}

func (r *oneByOneReader[T]) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *oneByOneReader[T]) Close() error                   { return nil }

// A window fires when the watermark passes its end; records within the
// allowed lateness fire it again with the updated result; later ones go
// to the side output, or are dropped and counted.
func TestWindowLateness(t *testing.T) {
	in := []wev{
		{"a", 1, 1}, {"b", 3, 100}, {"a", 5, 2}, {"a", 12, 3}, // watermark 11: [0, 10) fires
		{"a", 7, 4},  // within the lateness: [0, 10) fires again
		{"a", 16, 5}, // watermark 15: [0, 10) is cleaned up
		{"a", 8, 6},  // late
		{"b", 9, 7},  // late
		{"a", 25, 7}, // watermark 24: [10, 20) fires
	}
	wantA := []string{"a [0, 10) 3", "a [0, 10) 7", "a [10, 20) 8", "a [20, 30) 7"}
	wantB := []string{"b [0, 10) 100"}
	late := sdk.NewOutputTag[wev]("late")
	for _, side := range []bool{true, false} {
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("side=%v/p=%d", side, p), func(t *testing.T) {
				job := sdk.NewJob("lateness")
				src := sdk.FromSource(job, oneByOne[wev]{in}, sdk.WithUID("src"), sdk.WithParallelism(1),
					sdk.WithWatermarks(sdk.MonotonousTimestamps(wevTS)))
				var dropped atomic.Int64
				opts := []sdk.WindowOption{sdk.AllowedLateness(5 * time.Millisecond), sdk.DroppedLateRecords(&dropped)}
				if side {
					opts = append(opts, sdk.LateRecords(late))
				}
				ws := sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(10*time.Millisecond), opts...)
				res := sdk.WindowReduce(ws, sumWev, sdk.WithUID("sum"))
				out := sdk.Collect[string]()
				sdk.SinkTo(sdk.Map(res, func(r sdk.Windowed[string, wev]) string { return line(r.Key, r.Window, r.Value.V) }), out)
				lateOut := sdk.Collect[wev]()
				sdk.SinkTo(sdk.SideOutput(res, late), lateOut)
				runJob(t, job, p)

				var gotA, gotB []string
				for _, l := range out.Records() {
					if strings.HasPrefix(l, "a ") {
						gotA = append(gotA, l)
					} else {
						gotB = append(gotB, l)
					}
				}
				// One key's results come in the order they fired.
				if !slices.Equal(gotA, wantA) {
					t.Errorf("key a: got %q, want %q", gotA, wantA)
				}
				if !slices.Equal(gotB, wantB) {
					t.Errorf("key b: got %q, want %q", gotB, wantB)
				}
				gotLate := lateOut.Records()
				slices.SortFunc(gotLate, func(x, y wev) int { return strings.Compare(x.Key, y.Key) })
				if side {
					if want := []wev{{"a", 8, 6}, {"b", 9, 7}}; !slices.Equal(gotLate, want) {
						t.Errorf("late records %v, want %v", gotLate, want)
					}
					if dropped.Load() != 0 {
						t.Errorf("dropped %d, want 0", dropped.Load())
					}
				} else {
					if len(gotLate) != 0 {
						t.Errorf("late records %v without LateRecords", gotLate)
					}
					if dropped.Load() != 2 {
						t.Errorf("dropped %d, want 2", dropped.Load())
					}
				}
			})
		}
	}
}

// Results carry their window's MaxTimestamp as event time, and their bounds.
func TestWindowedResultsCarryBounds(t *testing.T) {
	in := genEvents(3, 500, 3)
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("bounds")
			src := sdk.FromSource(job, sdk.FromSlice(in), sdk.WithUID("src"),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(wevTS)))
			ws := sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }),
				sdk.SlidingEventTimeWindows(40*time.Millisecond, 10*time.Millisecond))
			res := sdk.WindowProcess(ws, sdk.ProcessWindowFunc[string, wev, sdk.Windowed[string, []int64]](
				func(ctx sdk.WindowContext[string], es iter.Seq[wev], out sdk.Collector[sdk.Windowed[string, []int64]]) error {
					var ts []int64
					for e := range es {
						ts = append(ts, e.TS)
					}
					out.Collect(sdk.Windowed[string, []int64]{Key: ctx.Key(), Window: ctx.Window(), Value: ts})
					return nil
				}), sdk.WithUID("windows"))
			checked := sdk.Process(sdk.KeyBy(res, func(r sdk.Windowed[string, []int64]) string { return r.Key }),
				sdk.ProcessFunc[string, sdk.Windowed[string, []int64], int](
					func(ctx sdk.KeyedContext[string], r sdk.Windowed[string, []int64], out sdk.Collector[int]) error {
						w := r.Window
						if w.End-w.Start != 40 || w.Start%10 != 0 {
							return fmt.Errorf("window %v is not one of 40 ms starting every 10 ms", w)
						}
						if ctx.Timestamp() != w.MaxTimestamp() || w.MaxTimestamp() != w.End-1 {
							return fmt.Errorf("result of %v at %d, want %d", w, ctx.Timestamp(), w.End-1)
						}
						for _, ts := range r.Value {
							if ts < w.Start || ts >= w.End {
								return fmt.Errorf("record at %d in window %v", ts, w)
							}
						}
						out.Collect(len(r.Value))
						return nil
					}), sdk.WithUID("check"))
			counts := sdk.Collect[int]()
			sdk.SinkTo(checked, counts)
			runJob(t, job, p)
			total := 0
			for _, n := range counts.Records() {
				total += n
			}
			if total != 4*len(in) {
				t.Errorf("%d records in windows, want %d (each in 4 windows)", total, 4*len(in))
			}
		})
	}
}

// Records that arrive out of order bridge sessions, which merge: their
// sums and their record lists.
func TestSessionWindowsMergeOutOfOrder(t *testing.T) {
	in := []wev{
		{"a", 0, 1}, {"b", 0, 10}, {"a", 20, 2}, {"b", 30, 20}, {"a", 40, 3},
		{"a", 10, 4},                              // bridges [0, 10) and [20, 30)
		{"a", 30, 5},                              // and [0, 30) with [40, 50)
		{"c", 100, 1}, {"c", 95, 2}, {"c", 90, 3}, // one session, grown backwards
	}
	wantSums := []string{"a [0, 50) 15", "b [0, 10) 10", "b [30, 40) 20", "c [90, 110) 6"}
	wantLists := []string{"a [0, 50) [1 2 3 4 5]", "b [0, 10) [10]", "b [30, 40) [20]", "c [90, 110) [1 2 3]"}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("sessions")
			src := sdk.FromSource(job, oneByOne[wev]{in}, sdk.WithUID("src"), sdk.WithParallelism(1),
				sdk.WithWatermarks(sdk.BoundedOutOfOrderness(time.Second, wevTS)))
			ws := sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.EventTimeSessionWindows(10*time.Millisecond))
			sums := sdk.Collect[string]()
			sdk.SinkTo(sdk.Map(sdk.WindowReduce(ws, sumWev, sdk.WithUID("sum")),
				func(r sdk.Windowed[string, wev]) string { return line(r.Key, r.Window, r.Value.V) }), sums)
			lists := sdk.Collect[string]()
			sdk.SinkTo(sdk.WindowProcess(ws, sdk.ProcessWindowFunc[string, wev, string](
				func(ctx sdk.WindowContext[string], es iter.Seq[wev], out sdk.Collector[string]) error {
					out.Collect(line(ctx.Key(), ctx.Window(), valuesOfSeq(es)))
					return nil
				}), sdk.WithUID("list")), lists)
			runJob(t, job, p)
			sameLines(t, "sums", sums.Records(), wantSums)
			sameLines(t, "lists", lists.Records(), wantLists)
		})
	}
}

// idleRec is a record of the idleness test; heartbeats keep a split active
// while it waits and are filtered out before the windows.
type idleRec struct {
	TS        int64
	Heartbeat bool
}

// idleScript coordinates the two splits of idleSource (and the test): split
// a emits at once; split b is silent until a window has fired without it,
// then catches up, and goes on emitting after a has jumped far ahead.
type idleScript struct {
	fired    atomic.Bool // a window result reached the sink side
	bWakes   atomic.Bool // a saw a firing: b may start
	bActive  atomic.Bool // b's first records and watermark went out
	aJumped  atomic.Bool // a's far-ahead record and watermark went out
	bDone    atomic.Bool
	deadline time.Time
}

type idleSource struct{ s *idleScript }

func (idleSource) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "a"}, {ID: "b"}}, nil
}

func (src idleSource) Open(_ context.Context, _ sdk.SourceContext, splits []sdk.Split) (sdk.Reader[idleRec], error) {
	r := &idleReader{s: src.s}
	for _, sp := range splits {
		r.splits = append(r.splits, &idleSplit{id: sp.ID})
	}
	return r, nil
}

type idleSplit struct {
	id    string
	stage int
	done  bool
}

type idleReader struct {
	s      *idleScript
	splits []*idleSplit
}

func emitRange(out sdk.Collector[idleRec], from, to int64) {
	for ts := from; ts <= to; ts++ {
		out.Collect(idleRec{TS: ts})
	}
}

func (r *idleReader) Read(_ context.Context, out sdk.Collector[idleRec]) (sdk.ReadStatus, error) {
	if time.Now().After(r.s.deadline) {
		return sdk.Done, errors.New("idleness script timed out: a window did not fire while split b was idle, or b did not resume")
	}
	s := r.s
	status := sdk.Done
	for i, sp := range r.splits {
		if sp.done {
			continue
		}
		out.(sdk.SplitCollector).Split(i)
		status = sdk.Idle
		heartbeat := func(ts int64) { out.Collect(idleRec{TS: ts, Heartbeat: true}) }
		switch sp.id + fmt.Sprint(sp.stage) {
		case "a0":
			emitRange(out, 0, 99)
			sp.stage++
		case "a1": // wait for a window to fire while b is idle
			if s.fired.Load() {
				s.bWakes.Store(true)
				sp.stage++
			}
			heartbeat(99)
		case "a2": // wait for b to be active, then jump ahead
			if s.bActive.Load() {
				out.Collect(idleRec{TS: 1000})
				sp.stage++
			} else {
				heartbeat(99)
			}
		case "a3": // the jump and its watermark went out with the last read
			s.aJumped.Store(true)
			heartbeat(1000)
			sp.stage++
		case "a4":
			if s.bDone.Load() {
				sp.done = true
			} else {
				heartbeat(1000)
			}
		case "b0": // silent until a window fired without b
			if s.bWakes.Load() {
				emitRange(out, 100, 109)
				sp.stage++
			}
		case "b1":
			s.bActive.Store(true)
			heartbeat(109)
			sp.stage++
		case "b2": // records far behind a's, after its jump
			if s.aJumped.Load() {
				emitRange(out, 110, 199)
				s.bDone.Store(true)
				sp.done = true
			} else {
				heartbeat(109)
			}
		}
	}
	return status, nil
}

func (r *idleReader) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *idleReader) Close() error                   { return nil }

// A split that is idle for longer than WithIdleness does not hold windows
// back; once it has records again it holds the watermark again, so that
// its records, far behind the other split's, are not late.
func TestIdleSplitDoesNotHoldBackWindows(t *testing.T) {
	var want []string
	counts := map[sdk.Window]int{}
	for _, r := range [][2]int64{{0, 99}, {100, 199}, {1000, 1000}} {
		for ts := r[0]; ts <= r[1]; ts++ {
			counts[sdk.Window{Start: ts / 10 * 10, End: ts/10*10 + 10}]++
		}
	}
	for w, n := range counts {
		want = append(want, line("k", w, n))
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			script := &idleScript{deadline: time.Now().Add(30 * time.Second)}
			job := sdk.NewJob("idleness")
			src := sdk.FromSource(job, idleSource{script}, sdk.WithUID("src"),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(func(r idleRec) int64 { return r.TS }).WithIdleness(100*time.Millisecond)))
			recs := sdk.Filter(src, func(r idleRec) bool { return !r.Heartbeat })
			var dropped atomic.Int64
			ws := sdk.WindowBy(sdk.KeyBy(recs, func(idleRec) string { return "k" }), sdk.TumblingEventTimeWindows(10*time.Millisecond),
				sdk.DroppedLateRecords(&dropped))
			res := sdk.WindowAggregate(ws, sdk.AggregateFunction[idleRec, int, int](counter[idleRec]{}), sdk.WithUID("count"))
			out := sdk.Collect[string]()
			sdk.SinkTo(sdk.Map(res, func(r sdk.Windowed[string, int]) string {
				script.fired.Store(true)
				return windowedLine(r)
			}), out)
			runJob(t, job, p)
			if dropped.Load() != 0 {
				t.Errorf("%d records dropped as late: split b did not hold the watermark back", dropped.Load())
			}
			sameLines(t, "counts", out.Records(), want)
		})
	}
}

// counter counts records.
type counter[T any] struct{}

func (counter[T]) CreateAccumulator() int { return 0 }
func (counter[T]) Add(acc int, _ T) int   { return acc + 1 }
func (counter[T]) Result(acc int) int     { return acc }
func (counter[T]) Merge(a, b int) int     { return a + b }

// procSource emits n records over its subtasks at once, then waits for the
// windows to fire on the wall clock (done reaches n) before it ends, so
// that nothing is fired by the end of input.
type procSource struct {
	n        int
	done     *atomic.Int64
	deadline time.Time
}

func (s procSource) Splits(_ context.Context, sc sdk.SourceContext) ([]sdk.Split, error) {
	splits := make([]sdk.Split, sc.Parallelism())
	for i := range splits {
		splits[i] = sdk.Split{ID: fmt.Sprint(i)}
	}
	return splits, nil
}

func (s procSource) Open(_ context.Context, sc sdk.SourceContext, splits []sdk.Split) (sdk.Reader[wev], error) {
	r := &procReader{s: s}
	for range splits {
		for i := sc.Subtask(); i < s.n; i += sc.Parallelism() {
			r.todo = append(r.todo, wev{Key: fmt.Sprintf("k%d", i%5), V: 1})
		}
	}
	return r, nil
}

type procReader struct {
	s    procSource
	todo []wev
}

func (r *procReader) Read(_ context.Context, out sdk.Collector[wev]) (sdk.ReadStatus, error) {
	for _, e := range r.todo {
		out.Collect(e)
	}
	r.todo = nil
	switch {
	case r.s.done.Load() >= int64(r.s.n):
		return sdk.Done, nil
	case time.Now().After(r.s.deadline):
		return sdk.Done, fmt.Errorf("processing-time windows fired for %d of %d records", r.s.done.Load(), r.s.n)
	}
	return sdk.Idle, nil
}

func (r *procReader) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *procReader) Close() error                   { return nil }

// Processing-time windows fire on the wall clock, while the input is still
// open.
func TestProcessingTimeWindowsFire(t *testing.T) {
	const n = 1000
	cases := []struct {
		name     string
		assigner sdk.WindowAssigner
		// each is how many windows each record is in.
		each  int
		check func(w sdk.Window) error
	}{{
		name: "tumbling", assigner: sdk.TumblingProcessingTimeWindows(20 * time.Millisecond), each: 1,
		check: func(w sdk.Window) error {
			if w.End-w.Start != 20 || w.Start%20 != 0 {
				return fmt.Errorf("window %v", w)
			}
			return nil
		},
	}, {
		name: "sliding", assigner: sdk.SlidingProcessingTimeWindows(20*time.Millisecond, 10*time.Millisecond), each: 2,
		check: func(w sdk.Window) error {
			if w.End-w.Start != 20 || w.Start%10 != 0 {
				return fmt.Errorf("window %v", w)
			}
			return nil
		},
	}, {
		name: "session", assigner: sdk.ProcessingTimeSessionWindows(20 * time.Millisecond), each: 1,
		check: func(w sdk.Window) error {
			if w.End-w.Start < 20 {
				return fmt.Errorf("session %v shorter than the gap", w)
			}
			return nil
		},
	}}
	for _, c := range cases {
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("%s/p=%d", c.name, p), func(t *testing.T) {
				var done atomic.Int64
				start := time.Now().UnixMilli()
				job := sdk.NewJob("processing-time")
				src := sdk.FromSource(job, procSource{n: n, done: &done, deadline: time.Now().Add(30 * time.Second)}, sdk.WithUID("src"))
				ws := sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), c.assigner)
				res := sdk.WindowReduce(ws, sumWev, sdk.WithUID("sum"))
				counted := sdk.Map(res, func(r sdk.Windowed[string, wev]) sdk.Windowed[string, wev] {
					// Count each record once: a sliding record is in one
					// window starting at an even and one at an odd multiple
					// of 10 ms.
					if c.each == 1 || r.Window.Start%20 == 10 {
						done.Add(r.Value.V)
					}
					return r
				})
				out := sdk.Collect[sdk.Windowed[string, wev]]()
				sdk.SinkTo(counted, out)
				runJob(t, job, p)
				total := int64(0)
				for _, r := range out.Records() {
					if err := c.check(r.Window); err != nil {
						t.Error(err)
					}
					if r.Window.End < start || r.Window.Start > time.Now().UnixMilli() {
						t.Errorf("window %v is not around now", r.Window)
					}
					total += r.Value.V
				}
				if total != int64(c.each*n) {
					t.Errorf("windows hold %d records, want %d", total, c.each*n)
				}
			})
		}
	}
}

// fnAgg is an aggregate whose accumulator cannot be encoded.
type fnAgg struct{}

func (fnAgg) CreateAccumulator() func() int { return func() int { return 0 } }
func (fnAgg) Add(acc func() int, _ wev) func() int {
	return func() int { return acc() + 1 }
}
func (fnAgg) Result(acc func() int) int        { return acc() }
func (fnAgg) Merge(a, b func() int) func() int { return func() int { return a() + b() } }

// plainTrigger is a trigger that cannot merge.
type plainTrigger struct{ sdk.Trigger }

func TestWindowMistakes(t *testing.T) {
	const ms = time.Millisecond
	late := sdk.NewOutputTag[string]("late")
	tests := []struct {
		name  string
		build func(job *sdk.Job, src *sdk.Stream[wev])
		want  string
	}{{
		name: "global windows without a trigger",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.GlobalWindows()), sumWev, sdk.WithUID("w"))
		},
		want: "GlobalWindows need a trigger",
	}, {
		name: "no uid",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(ms)), sumWev)
		},
		want: "needs a stable uid",
	}, {
		name: "zero size",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(0)), sumWev, sdk.WithUID("w"))
		},
		want: "window size 0s must be positive",
	}, {
		name: "fraction of a millisecond",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.SlidingEventTimeWindows(10*ms, 1500*time.Microsecond)), sumWev, sdk.WithUID("w"))
		},
		want: "window slide 1.5ms is not a whole number of milliseconds",
	}, {
		name: "offset too large",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(10*ms, sdk.WithOffset(-10*ms))), sumWev, sdk.WithUID("w"))
		},
		want: "offset -10ms: its absolute value must be below 10ms",
	}, {
		name: "zero gap",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.ProcessingTimeSessionWindows(0)), sumWev, sdk.WithUID("w"))
		},
		want: "session gap 0s must be positive",
	}, {
		name: "late records of another type",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(ms), sdk.LateRecords(late)), sumWev, sdk.WithUID("w"))
		},
		want: "late records of type sdk_test.wev go to a side output of type sdk.OutputTag[string]",
	}, {
		name: "a trigger that cannot merge on sessions",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.EventTimeSessionWindows(ms),
				sdk.WithTrigger(plainTrigger{sdk.EventTimeTrigger()})), sumWev, sdk.WithUID("w"))
		},
		want: "does not implement MergingTrigger",
	}, {
		name: "an accumulator that cannot be encoded",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			sdk.WindowAggregate(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(ms)),
				sdk.AggregateFunction[wev, func() int, int](fnAgg{}), sdk.WithUID("w"))
		},
		want: "accumulator: ",
	}, {
		name: "a join on global windows",
		build: func(job *sdk.Job, src *sdk.Stream[wev]) {
			ks := sdk.KeyBy(src, func(e wev) string { return e.Key })
			sdk.WindowJoin(ks, ks, sdk.GlobalWindows(), func(a, b wev) int { return 0 }, sdk.WithUID("w"))
		},
		want: "GlobalWindows have no trigger of their own, and a join takes the assigner's",
	}, {
		name: "event-time windows without event time",
		build: func(job *sdk.Job, _ *sdk.Stream[wev]) {
			src := sdk.FromSource(job, sdk.FromSlice([]wev{{"a", 1, 1}}), sdk.WithUID("plain"))
			res := sdk.WindowReduce(sdk.WindowBy(sdk.KeyBy(src, func(e wev) string { return e.Key }), sdk.TumblingEventTimeWindows(ms)), sumWev, sdk.WithUID("w"))
			sdk.SinkTo(res, sdk.Collect[sdk.Windowed[string, wev]]())
		},
		want: "a record without a timestamp: give the source a watermark strategy",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := sdk.NewJob("mistake")
			src := sdk.FromSource(job, sdk.FromSlice([]wev{{"a", 1, 1}}), sdk.WithUID("src"),
				sdk.WithWatermarks(sdk.MonotonousTimestamps(wevTS)))
			tt.build(job, src)
			err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
