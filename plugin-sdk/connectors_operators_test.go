package sdk_test

// Tests of the SDK's operators, run as jobs with the built-in connectors.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

func TestMapFlatMapFilter(t *testing.T) {
	var want []int64
	for x := int64(1); x <= 5000; x++ {
		y := x * 2
		ys := []int64{y}
		if x%3 == 0 {
			ys = append(ys, -y)
		}
		for _, z := range ys {
			if z%8 != 0 {
				want = append(want, z)
			}
		}
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("map-flatmap-filter")
			nums := sdk.FromSource(job, sdk.Sequence(1, 5000), sdk.WithUID("source"))
			doubled := sdk.Map(nums, func(x int64) int64 { return x * 2 })
			signed := sdk.FlatMap(doubled, func(y int64, out sdk.Collector[int64]) {
				out.Collect(y)
				if (y/2)%3 == 0 {
					out.Collect(-y)
				}
			})
			kept := sdk.Filter(signed, func(z int64) bool { return z%8 != 0 })
			out := sdk.Collect[int64]()
			sdk.SinkTo(kept, out)
			runJob(t, job, p)
			sameRecords(t, out.Records(), slices.Clone(want))
		})
	}
}

type event struct {
	Key string
	V   int64
}

func events(n int64, keys int64) []event {
	out := make([]event, n)
	for i := range n {
		out[i] = event{Key: fmt.Sprintf("k%d", (i*7)%keys), V: i%11 + 1}
	}
	return out
}

func TestKeyByReduce(t *testing.T) {
	in := events(20_000, 37)
	sums, counts := map[string]int64{}, map[string]int{}
	for _, e := range in {
		sums[e.Key] += e.V
		counts[e.Key]++
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("reduce")
			evs := sdk.FromSource(job, sdk.FromSlice(in), sdk.WithUID("source"))
			totals := sdk.Reduce(sdk.KeyBy(evs, func(e event) string { return e.Key }),
				func(acc, e event) event { return event{Key: acc.Key, V: acc.V + e.V} }, sdk.WithUID("sum"))
			out := sdk.Collect[event]()
			sdk.SinkTo(totals, out)
			runJob(t, job, p)

			// Reduce emits the running sum after every record: the values are
			// positive, so the largest per key is the final sum.
			got, emitted := map[string]int64{}, map[string]int{}
			for _, e := range out.Records() {
				got[e.Key] = max(got[e.Key], e.V)
				emitted[e.Key]++
			}
			if !maps.Equal(got, sums) {
				t.Fatalf("sums per key:\n got %v\nwant %v", got, sums)
			}
			if !maps.Equal(emitted, counts) {
				t.Fatalf("records emitted per key:\n got %v\nwant %v", emitted, counts)
			}
		})
	}
}

// summary is what allStates emits after every record of a key.
type summary struct {
	Key    string
	Count  int   // ValueState: records since the last reset
	Values []int // ListState: their values, in order
	Map    string
	MapLen int
	Sum    int // ReducingState
}

// allStates is a keyed process function that uses every kind of keyed
// state. A value of 0 clears the key's state.
type allStates struct {
	count  sdk.ValueState[int]
	values sdk.ListState[int]
	marks  sdk.MapState[int, int]
	sum    sdk.ReducingState[int]
}

func (f *allStates) Open(ctx sdk.RuntimeContext) error {
	f.count = sdk.NewValueState[int](ctx, "count")
	f.values = sdk.NewListState[int](ctx, "values")
	f.marks = sdk.NewMapState[int, int](ctx, "marks")
	f.sum = sdk.NewReducingState(ctx, "sum", func(a, b int) int { return a + b })
	return nil
}

func (f *allStates) ProcessElement(ctx sdk.KeyedContext[string], in keyedInt, out sdk.Collector[summary]) error {
	if in.V == 0 {
		f.count.Clear()
		f.values.Clear()
		f.marks.Clear()
		f.sum.Clear()
	} else {
		n, _ := f.count.Value()
		f.count.Update(n + 1)
		f.values.Add(in.V)
		// The map toggles the entry of V%3: put when absent, remove when present.
		if f.marks.Contains(in.V % 3) {
			f.marks.Remove(in.V % 3)
		} else {
			f.marks.Put(in.V%3, in.V)
		}
		f.sum.Add(in.V)
	}
	s := summary{Key: ctx.Key(), Values: slices.Clone(f.values.Get()), MapLen: f.marks.Len()}
	s.Count, _ = f.count.Value()
	s.Sum, _ = f.sum.Get()
	s.Map = fmt.Sprint(maps.Collect(f.marks.All())) // fmt sorts map keys
	out.Collect(s)
	return nil
}

type keyedInt struct {
	K string
	V int
}

// expectedSummaries computes, with plain Go maps, what allStates emits for
// each key, in order.
func expectedSummaries(in []keyedInt) map[string][]summary {
	type st struct {
		count  int
		values []int
		marks  map[int]int
		sum    int
	}
	states := map[string]*st{}
	out := map[string][]summary{}
	for _, r := range in {
		s := states[r.K]
		if s == nil || r.V == 0 {
			s = &st{marks: map[int]int{}}
			states[r.K] = s
		}
		if r.V != 0 {
			s.count++
			s.values = append(s.values, r.V)
			if _, ok := s.marks[r.V%3]; ok {
				delete(s.marks, r.V%3)
			} else {
				s.marks[r.V%3] = r.V
			}
			s.sum += r.V
		}
		out[r.K] = append(out[r.K], summary{Key: r.K, Count: s.count, Values: slices.Clone(s.values),
			Map: fmt.Sprint(s.marks), MapLen: len(s.marks), Sum: s.sum})
	}
	return out
}

func TestProcessWithEveryStateType(t *testing.T) {
	var in []keyedInt
	for i := range 3000 {
		v := (i * 13) % 17 // 0 every 17 records: a reset
		in = append(in, keyedInt{K: fmt.Sprintf("key-%d", i%23), V: v})
	}
	want := expectedSummaries(in)
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("states")
			// One source subtask, so that each key's records arrive in order.
			src := sdk.FromSource(job, sdk.FromSlice(in), sdk.WithParallelism(1), sdk.WithUID("source"))
			summaries := sdk.Process(sdk.KeyBy(src, func(r keyedInt) string { return r.K }),
				sdk.KeyedProcessFunction[string, keyedInt, summary](&allStates{}), sdk.WithUID("states"))
			out := sdk.Collect[summary]()
			sdk.SinkTo(summaries, out)
			runJob(t, job, p)
			got := map[string][]summary{}
			for _, s := range out.Records() {
				got[s.Key] = append(got[s.Key], s)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d keys, want %d", len(got), len(want))
			}
			for k, w := range want {
				g := got[k]
				if len(g) != len(w) {
					t.Fatalf("key %s: %d summaries, want %d", k, len(g), len(w))
				}
				for i := range w {
					if !reflect.DeepEqual(normalise(g[i]), normalise(w[i])) {
						t.Fatalf("key %s, record %d:\n got %+v\nwant %+v", k, i, g[i], w[i])
					}
				}
			}
		})
	}
}

// normalise makes nil and empty lists equal.
func normalise(s summary) summary {
	if len(s.Values) == 0 {
		s.Values = nil
	}
	return s
}

func TestUnionOfThreeStreams(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("union")
			a := sdk.FromSource(job, sdk.Sequence(0, 999), sdk.WithUID("a"))
			b := sdk.FromSource(job, sdk.Sequence(1000, 2999), sdk.WithUID("b"), sdk.WithParallelism(1))
			c := sdk.Map(sdk.FromSource(job, sdk.FromSlice(seq(3000, 3499)), sdk.WithUID("c")),
				func(x int64) int64 { return x })
			out := sdk.Collect[int64]()
			sdk.SinkTo(sdk.Union(a, b, c), out)
			runJob(t, job, p)
			sameRecords(t, out.Records(), seq(0, 3499))
		})
	}
}

// bySubtask is a sink that keeps what every subtask received.
type bySubtask[T any] struct {
	mu  sync.Mutex
	got map[int][]T
}

func newBySubtask[T any]() *bySubtask[T] { return &bySubtask[T]{got: map[int][]T{}} }

func (s *bySubtask[T]) Open(_ context.Context, sc sdk.SinkContext) (sdk.Writer[T], error) {
	return &subtaskWriter[T]{s: s, subtask: sc.Subtask()}, nil
}

func (s *bySubtask[T]) records() map[int][]T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.got)
}

type subtaskWriter[T any] struct {
	s       *bySubtask[T]
	subtask int
}

func (w *subtaskWriter[T]) Write(_ context.Context, v T) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.got[w.subtask] = append(w.s.got[w.subtask], v)
	return nil
}

func (w *subtaskWriter[T]) Flush(context.Context) error { return nil }
func (w *subtaskWriter[T]) Close(context.Context) error { return nil }

func TestRebalance(t *testing.T) {
	const n = 4000
	job := sdk.NewJob("rebalance")
	// One producer: round robin gives each of the 4 consumers exactly n/4.
	src := sdk.FromSource(job, sdk.Sequence(1, n), sdk.WithParallelism(1), sdk.WithUID("source"))
	sink := newBySubtask[int64]()
	sdk.SinkTo(sdk.Rebalance(src), sink)
	runJob(t, job, 4)
	var all []int64
	got := sink.records()
	for s := range 4 {
		if len(got[s]) != n/4 {
			t.Errorf("subtask %d received %d records, want %d", s, len(got[s]), n/4)
		}
		all = append(all, got[s]...)
	}
	sameRecords(t, all, seq(1, n))
}

func TestBroadcast(t *testing.T) {
	for _, srcP := range []int{1, 4} {
		t.Run(fmt.Sprintf("from %d subtasks", srcP), func(t *testing.T) {
			job := sdk.NewJob("broadcast")
			src := sdk.FromSource(job, sdk.Sequence(1, 500), sdk.WithParallelism(srcP), sdk.WithUID("source"))
			sink := newBySubtask[int64]()
			sdk.SinkTo(sdk.Broadcast(src), sink)
			runJob(t, job, 4)
			got := sink.records()
			if len(got) != 4 {
				t.Fatalf("%d sink subtasks received records, want 4", len(got))
			}
			for s, recs := range got {
				t.Run(fmt.Sprintf("subtask %d", s), func(t *testing.T) { sameRecords(t, recs, seq(1, 500)) })
			}
		})
	}
}

// graph is the part of Describe's JSON the tests look at.
type graph struct {
	Vertices []struct {
		Name  string
		Kind  string
		Chain int
	}
	Chains []struct {
		Name string
	}
}

func describe(t *testing.T, job *sdk.Job, p int) graph {
	t.Helper()
	b, err := sdk.Describe(job, p)
	if err != nil {
		t.Fatal(err)
	}
	var g graph
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestChainingDoesNotChangeResults(t *testing.T) {
	// build makes source -> map -> filter -> flat map -> sink; apart, every
	// edge goes through the exchange (Rebalance, or Broadcast to the single
	// instance at parallelism 1, where rebalanced operators still chain).
	build := func(apart bool, p int) (*sdk.Job, *sdk.Collected[string]) {
		split := func(s *sdk.Stream[int64]) *sdk.Stream[int64] { return s }
		if apart {
			split = func(s *sdk.Stream[int64]) *sdk.Stream[int64] {
				if p == 1 {
					return sdk.Broadcast(s)
				}
				return sdk.Rebalance(s)
			}
		}
		job := sdk.NewJob("chaining")
		nums := sdk.FromSource(job, sdk.Sequence(1, 3000), sdk.WithUID("source"))
		squares := sdk.Map(split(nums), func(x int64) int64 { return x * x })
		odd := sdk.Filter(split(squares), func(x int64) bool { return x%2 == 1 })
		strs := sdk.FlatMap(split(odd), func(x int64, out sdk.Collector[string]) {
			out.Collect(fmt.Sprint(x))
			out.Collect(fmt.Sprint(-x))
		})
		out := sdk.Collect[string]()
		sdk.SinkTo(strs, out)
		return job, out
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			chained, chainedOut := build(false, p)
			apart, apartOut := build(true, p)
			if g := describe(t, chained, p); len(g.Chains) != 1 {
				t.Fatalf("chained job has %d chains, want 1: %+v", len(g.Chains), g.Chains)
			}
			if g := describe(t, apart, p); len(g.Chains) != 4 {
				t.Fatalf("unchained job has %d chains, want 4: %+v", len(g.Chains), g.Chains)
			}
			runJob(t, chained, p)
			runJob(t, apart, p)
			got := apartOut.Records()
			if len(got) != 3000 {
				t.Fatalf("unchained job emitted %d records, want 3000", len(got))
			}
			sameRecords(t, got, chainedOut.Records())
		})
	}
}

func TestPanicFailsTheJob(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("panics")
			nums := sdk.FromSource(job, sdk.Sequence(1, 100_000), sdk.WithUID("source"))
			mapped := sdk.Map(nums, func(x int64) int64 {
				if x == 4321 {
					panic(fmt.Sprintf("boom at record %d", x))
				}
				return x
			})
			sdk.SinkTo(mapped, sdk.Collect[int64]())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := sdk.RunLocal(ctx, job, sdk.LocalParallelism(p))
			if err == nil || !strings.Contains(err.Error(), "boom at record 4321") {
				t.Fatalf("RunLocal: %v, want the panic's message", err)
			}
		})
	}
}

func TestProcessFunctionErrorFailsTheJob(t *testing.T) {
	job := sdk.NewJob("fails")
	nums := sdk.FromSource(job, sdk.Sequence(1, 1000), sdk.WithUID("source"))
	bad := errors.New("record 77 is unacceptable")
	out := sdk.Process(sdk.KeyBy(nums, func(x int64) int64 { return x % 10 }),
		sdk.ProcessFunc[int64, int64, int64](func(_ sdk.KeyedContext[int64], x int64, out sdk.Collector[int64]) error {
			if x == 77 {
				return bad
			}
			out.Collect(x)
			return nil
		}), sdk.WithUID("check"))
	sdk.SinkTo(out, sdk.Collect[int64]())
	err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(4))
	if err == nil || !strings.Contains(err.Error(), bad.Error()) {
		t.Fatalf("RunLocal: %v, want %v", err, bad)
	}
}

func TestStatefulOperatorNeedsUID(t *testing.T) {
	cases := map[string]func(*sdk.KeyedStream[int64, int64]){
		"reduce": func(ks *sdk.KeyedStream[int64, int64]) {
			sdk.SinkTo(sdk.Reduce(ks, func(a, b int64) int64 { return a + b }), sdk.Collect[int64]())
		},
		"process": func(ks *sdk.KeyedStream[int64, int64]) {
			f := sdk.ProcessFunc[int64, int64, int64](func(_ sdk.KeyedContext[int64], x int64, out sdk.Collector[int64]) error {
				out.Collect(x)
				return nil
			})
			sdk.SinkTo(sdk.Process(ks, f, sdk.WithName("no-uid")), sdk.Collect[int64]())
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			job := sdk.NewJob("no-uid")
			build(sdk.KeyBy(sdk.FromSource(job, sdk.Sequence(1, 10), sdk.WithUID("source")), func(x int64) int64 { return x % 2 }))
			if _, err := sdk.Describe(job, 1); err == nil || !strings.Contains(err.Error(), "WithUID") {
				t.Fatalf("Describe: %v, want an error mentioning WithUID", err)
			}
			if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err == nil ||
				!strings.Contains(err.Error(), "WithUID") {
				t.Fatalf("RunLocal: %v, want an error mentioning WithUID", err)
			}
		})
	}
}

// marshalCalls counts MarshalEddy calls, to show that records were encoded.
var marshalCalls atomic.Int64

// celsius chooses its own encoding: tenths of a degree as 2 bytes.
type celsius struct{ tenths int16 }

func (c celsius) MarshalEddy(dst []byte) []byte {
	marshalCalls.Add(1)
	return binary.BigEndian.AppendUint16(dst, uint16(c.tenths))
}

func (c *celsius) UnmarshalEddy(src []byte) (int, error) {
	if len(src) < 2 {
		return 0, errors.New("celsius: short input")
	}
	c.tenths = int16(binary.BigEndian.Uint16(src))
	return 2, nil
}

type location struct {
	Lat, Lon float64
}

// reading is a user struct with most kinds of fields.
type reading struct {
	ID       int64
	Station  string
	At       time.Time
	Temp     celsius
	Where    *location
	Tags     []string
	Extra    map[string]int32
	Flags    [3]bool
	Raw      []byte
	internal uint16
}

func TestCodecRoundTripThroughKeyedExchange(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var in []reading
	for i := range int64(2000) {
		r := reading{
			ID: i, Station: fmt.Sprintf("st-%d", i%17), At: base.Add(time.Duration(i) * time.Second),
			Temp: celsius{int16(i%400 - 200)}, Tags: []string{"a", fmt.Sprint(i)},
			Flags: [3]bool{i%2 == 0, i%3 == 0, true}, internal: uint16(i),
		}
		if i%5 != 0 {
			r.Where = &location{Lat: float64(i) / 7, Lon: -float64(i) / 3}
		}
		if i%4 == 0 {
			r.Extra = map[string]int32{"x": int32(i), "y": -1}
			r.Raw = []byte{byte(i), 0, 255}
		}
		in = append(in, r)
	}
	before := marshalCalls.Load()
	job := sdk.NewJob("codec")
	src := sdk.FromSource(job, sdk.FromSlice(in), sdk.WithUID("source"))
	passed := sdk.Process(sdk.KeyBy(src, func(r reading) string { return r.Station }),
		sdk.ProcessFunc[string, reading, reading](func(ctx sdk.KeyedContext[string], r reading, out sdk.Collector[reading]) error {
			if ctx.Key() != r.Station {
				return fmt.Errorf("record %d under key %q", r.ID, ctx.Key())
			}
			out.Collect(r)
			return nil
		}), sdk.WithUID("pass"))
	out := sdk.Collect[reading]()
	sdk.SinkTo(passed, out)
	runJob(t, job, 4)

	got := out.Records()
	slices.SortFunc(got, func(a, b reading) int { return int(a.ID - b.ID) })
	if len(got) != len(in) {
		t.Fatalf("got %d records, want %d", len(got), len(in))
	}
	for i := range in {
		if !reflect.DeepEqual(got[i], in[i]) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], in[i])
		}
		if in[i].Where != nil && got[i].Where == in[i].Where {
			t.Fatalf("record %d arrived with the sender's pointer: it was not encoded", i)
		}
	}
	if n := marshalCalls.Load() - before; n < int64(len(in)) {
		t.Fatalf("MarshalEddy ran %d times for %d records crossing a keyed exchange", n, len(in))
	}
}
