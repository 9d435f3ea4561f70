package sdk_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// joinRec is a record of either side of a join test.
type joinRec struct {
	Key string
	TS  int64
	ID  int
}

func joinTS(r joinRec) int64 { return r.TS }

// genJoin returns n records of keys k0..k(keys-1) at random times in
// [1000, 1000+span), out of order by up to maxDelay ms.
func genJoin(seed uint64, n, keys int, span, maxDelay int64) []joinRec {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([]joinRec, n)
	for i := range out {
		out[i] = joinRec{Key: fmt.Sprintf("k%d", r.IntN(keys)), TS: 1000 + r.Int64N(span), ID: i}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TS < out[j].TS })
	delayed := make([]int64, n)
	for i := range out {
		delayed[i] = out[i].TS + r.Int64N(maxDelay+1)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return delayed[idx[i]] < delayed[idx[j]] })
	shuffled := make([]joinRec, n)
	for i, k := range idx {
		shuffled[i] = out[k]
	}
	return shuffled
}

func joinLine(a, b joinRec) string { return fmt.Sprintf("%s a%d b%d", a.Key, a.ID, b.ID) }

// nestedLoop joins every pair of equal keys once per window they share.
func nestedLoop(as, bs []joinRec, windows func(ts int64) []sdk.Window) []string {
	var out []string
	for _, a := range as {
		for _, b := range bs {
			if a.Key != b.Key {
				continue
			}
			for _, wa := range windows(a.TS) {
				for _, wb := range windows(b.TS) {
					if wa == wb {
						out = append(out, joinLine(a, b))
					}
				}
			}
		}
	}
	return out
}

// sessionJoin joins every pair of equal keys in the same session, the
// sessions being those of both sides' records together.
func sessionJoin(as, bs []joinRec, gap int64) []string {
	type item struct {
		r      joinRec
		second bool
	}
	byKey := map[string][]item{}
	for _, a := range as {
		byKey[a.Key] = append(byKey[a.Key], item{r: a})
	}
	for _, b := range bs {
		byKey[b.Key] = append(byKey[b.Key], item{r: b, second: true})
	}
	var out []string
	for _, items := range byKey {
		sort.SliceStable(items, func(i, j int) bool { return items[i].r.TS < items[j].r.TS })
		start := 0
		for i := 1; i <= len(items); i++ {
			if i < len(items) && items[i].r.TS-items[i-1].r.TS <= gap {
				continue
			}
			session := items[start:i]
			for _, x := range session {
				for _, y := range session {
					if !x.second && y.second {
						out = append(out, joinLine(x.r, y.r))
					}
				}
			}
			start = i
		}
	}
	return out
}

func TestWindowJoinMatchesNestedLoop(t *testing.T) {
	const ms = time.Millisecond
	as := genJoin(11, 400, 5, 3000, 40)
	bs := genJoin(12, 300, 5, 3000, 40)
	// b's IDs apart from a's, to read the lines.
	for i := range bs {
		bs[i].ID += 1000
	}
	cases := []struct {
		name     string
		assigner sdk.WindowAssigner
		want     []string
	}{{
		name:     "tumbling",
		assigner: sdk.TumblingEventTimeWindows(100 * ms),
		want:     nestedLoop(as, bs, func(ts int64) []sdk.Window { return refWindows(ts, 100, 100, 0) }),
	}, {
		name:     "sliding",
		assigner: sdk.SlidingEventTimeWindows(100*ms, 50*ms),
		want:     nestedLoop(as, bs, func(ts int64) []sdk.Window { return refWindows(ts, 100, 50, 0) }),
	}, {
		name:     "session",
		assigner: sdk.EventTimeSessionWindows(20 * ms),
		want:     sessionJoin(as, bs, 20),
	}}
	for _, c := range cases {
		if len(c.want) == 0 {
			t.Fatalf("%s: no expected pairs", c.name)
		}
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("%s/p=%d", c.name, p), func(t *testing.T) {
				job := sdk.NewJob("join")
				wm := sdk.BoundedOutOfOrderness(40*ms, joinTS)
				a := sdk.FromSource(job, sdk.FromSlice(as), sdk.WithUID("a"), sdk.WithWatermarks(wm))
				b := sdk.FromSource(job, sdk.FromSlice(bs), sdk.WithUID("b"), sdk.WithWatermarks(wm))
				key := func(r joinRec) string { return r.Key }
				joined := sdk.WindowJoin(sdk.KeyBy(a, key), sdk.KeyBy(b, key), c.assigner, joinLine, sdk.WithUID("join"))
				out := sdk.Collect[string]()
				sdk.SinkTo(joined, out)
				runJob(t, job, p)
				sameLines(t, "pairs", out.Records(), c.want)
			})
		}
	}
}

// A join's results carry the window's MaxTimestamp, so that a window
// downstream sees them in the right window.
func TestWindowJoinResultsInEventTime(t *testing.T) {
	as := []joinRec{{"x", 5, 1}, {"y", 7, 3}, {"x", 15, 2}}
	bs := []joinRec{{"x", 8, 10}, {"x", 12, 11}, {"y", 19, 12}}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			job := sdk.NewJob("join-time")
			wm := sdk.MonotonousTimestamps(joinTS)
			a := sdk.FromSource(job, oneByOne[joinRec]{as}, sdk.WithUID("a"), sdk.WithParallelism(1), sdk.WithWatermarks(wm))
			b := sdk.FromSource(job, oneByOne[joinRec]{bs}, sdk.WithUID("b"), sdk.WithParallelism(1), sdk.WithWatermarks(wm))
			key := func(r joinRec) string { return r.Key }
			joined := sdk.WindowJoin(sdk.KeyBy(a, key), sdk.KeyBy(b, key), sdk.TumblingEventTimeWindows(10*time.Millisecond), joinLine, sdk.WithUID("join"))
			// Count the pairs per window of their time.
			counts := sdk.WindowAggregate(sdk.WindowBy(sdk.KeyBy(joined, func(string) int { return 0 }), sdk.TumblingEventTimeWindows(10*time.Millisecond)),
				sdk.AggregateFunction[string, int, int](counter[string]{}), sdk.WithUID("count"))
			out := sdk.Collect[string]()
			sdk.SinkTo(sdk.Map(counts, func(r sdk.Windowed[int, int]) string { return fmt.Sprintf("%v %d", r.Window, r.Value) }), out)
			runJob(t, job, p)
			// [0, 10): x a1-b10, at 9; [10, 20): x a2-b11, at 19; y's
			// records are in different windows.
			sameLines(t, "counts", out.Records(), []string{"[0, 10) 1", "[10, 20) 1"})
		})
	}
}
