// Command nexmark measures Eddy on Nexmark queries on one core, next to a
// hand-written Go loop that computes the same query over the same events,
// so that the ratio between the two, measured in one run on one machine,
// says what the framework costs:
//
//   - generator: the nexmark generator alone, making every event;
//   - hand: one goroutine that makes every event with the generator and
//     computes the query in plain Go (maps, a slice), closing windows as the
//     watermark (the highest time seen less 4 s) passes them, as Eddy does;
//   - eddy: the query's job (nexmark.Events and the query's builder) run by
//     sdk.RunLocal at parallelism 1, its results counted and dropped.
//
// Everything runs with GOMAXPROCS 1, so every figure is per core, and the
// generator's cost is in both the hand loop's and Eddy's. Each phase runs
// -runs times; the table shows the medians, the ratio of Eddy to the hand
// loop, and the per-core figures SPEC.md quotes for other systems (measured
// on other hardware: orders of magnitude only).
//
//	go run ./test/bench/nexmark -events 2000000
//	go run ./test/bench/nexmark -events 10000000 -queries q5,q7 -runs 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eddy-streams/eddy/nexmark"
	sdk "github.com/eddy-streams/eddy/plugin-sdk"
	"github.com/eddy-streams/eddy/test/procs"
)

// published are SPEC.md's per-core throughputs, in thousands of events per
// second: Flink (nexmark V1), Flink 2.0 (V2), RisingWave 2023, DBSP; 0 for
// none.
var published = map[string][4]float64{
	"q0": {155, 379, 170, 1173},
	"q1": {158, 395, 168, 1093},
	"q2": {175, 414, 172, 1094},
	"q3": {152, 219, 136, 1008},
	"q5": {22, 74.5, 11.3, 868},
	"q7": {12.3, 22.9, 37.5, 0},
	"q8": {146, 162, 84, 0},
}

// handLoops are the hand-written queries: each makes n events with the
// generator and returns how many results the query has.
var handLoops = map[string]func(g *nexmark.Generator, n int64) int64{
	"q0": handQ0,
	"q1": handQ1,
	"q2": handQ2,
	"q5": handQ5,
	"q7": handQ7,
}

func main() {
	events := flag.Int64("events", 2_000_000, "events per run")
	rate := flag.Float64("rate", nexmark.DefaultEventRate, "event-time rate, events per second")
	runs := flag.Int("runs", 3, "runs of each phase")
	list := flag.String("queries", "q0,q1,q2,q5,q7", "comma-separated queries")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the Eddy runs to this file")
	flag.Parse()
	cfg := nexmark.DefaultConfig()
	cfg.Events = *events
	cfg.EventRate = *rate
	gen, err := nexmark.NewGenerator(cfg)
	if err != nil {
		fail("%v", err)
	}
	var names []string
	for _, q := range strings.Split(*list, ",") {
		q = strings.TrimSpace(q)
		if _, ok := handLoops[q]; !ok {
			fail("no hand loop for query %q: want some of q0, q1, q2, q5, q7", q)
		}
		names = append(names, q)
	}
	if *events < 1 || *runs < 1 {
		fail("-events and -runs must be positive")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fail("%v", err)
		}
		profileEddy = func(run func()) {
			if err := pprof.StartCPUProfile(f); err != nil {
				fail("%v", err)
			}
			run()
			pprof.StopCPUProfile()
		}
		defer f.Close()
	}
	fmt.Printf("nexmark on one core: %s events at %s events/s of event time, %d runs, %s, %d CPUs; load average %s\n",
		procs.Commas(float64(*events)), procs.Commas(*rate), *runs, runtime.Version(), runtime.NumCPU(), procs.LoadAvg())

	genRates := make([]float64, 0, *runs)
	for range *runs {
		r := measure(*events, func() { generateOnly(gen, *events) })
		genRates = append(genRates, r)
		fmt.Printf("  %-12s %14s events/s\n", "generator", procs.Commas(r))
	}
	type row struct {
		name        string
		hand, eddy  float64
		handResults int64
	}
	var rows []row
	for _, name := range names {
		var hands, eddies []float64
		var want int64
		for range *runs {
			var got int64
			r := measure(*events, func() { got = handLoops[name](gen, *events) })
			want = got
			hands = append(hands, r)
			fmt.Printf("  %-12s %14s events/s, %d results\n", name+" hand", procs.Commas(r), got)
			r, n := measureEddy(name, cfg)
			eddies = append(eddies, r)
			fmt.Printf("  %-12s %14s events/s, %d results\n", name+" eddy", procs.Commas(r), n)
			if n != got {
				fail("%s: eddy has %d results, the hand loop %d", name, n, got)
			}
		}
		rows = append(rows, row{name: name, hand: median(hands), eddy: median(eddies), handResults: want})
	}

	g := median(genRates)
	fmt.Printf("\nmedians, thousands of events per second on one core (ns per event in brackets)\n")
	fmt.Printf("%-10s %16s %16s %11s   %s\n", "query", "hand loop", "eddy", "eddy/hand", "published K/s/core: Flink V1, Flink 2.0, RisingWave, DBSP")
	fmt.Printf("%-10s %16s %16s %11s\n", "generator", kps(g), "", "")
	for _, r := range rows {
		p := published[r.name]
		var pub []string
		for _, v := range p {
			if v == 0 {
				pub = append(pub, "-")
			} else {
				pub = append(pub, strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
		fmt.Printf("%-10s %16s %16s %10.0f%%   %s\n", r.name, kps(r.hand), kps(r.eddy), 100*r.eddy/r.hand, strings.Join(pub, ", "))
	}
	fmt.Printf("load average at the end: %s\n", procs.LoadAvg())
	// Reading sink makes the hand loops' stores to it observable.
	fmt.Printf("hand loop checksum: %d\n", sink)
}

// kps formats events per second as thousands, with ns per event.
func kps(rate float64) string {
	return fmt.Sprintf("%s (%.0f ns)", procs.Commas(rate/1000), 1e9/rate)
}

// measure runs f, which processes n events, and returns events per second.
func measure(n int64, f func()) float64 {
	runtime.GC()
	start := time.Now()
	f()
	return float64(n) / time.Since(start).Seconds()
}

// measureEddy runs the query's job at parallelism 1 and returns events per
// second and the number of results.
func measureEddy(name string, cfg nexmark.Config) (float64, int64) {
	q, _ := nexmark.Lookup(name)
	job := sdk.NewJob("nexmark-" + name)
	var results atomic.Int64
	q.AddTo(nexmark.Events(job, cfg), nexmark.Output{Count: &results})
	var err error
	r := measure(cfg.Events, func() {
		profileEddy(func() { err = sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)) })
	})
	if err != nil {
		fail("%s: %v", name, err)
	}
	return r, results.Load()
}

// profileEddy runs an Eddy run, under the CPU profiler when asked to.
var profileEddy = func(run func()) { run() }

// sink keeps the hand loops' results alive, so that the compiler cannot
// drop the work that makes them.
var sink int64

func generateOnly(g *nexmark.Generator, n int64) {
	var e nexmark.Event
	var sum int64
	for i := range n {
		g.Fill(i, &e)
		sum += e.Time()
	}
	sink = sum
}

func handQ0(g *nexmark.Generator, n int64) int64 {
	var e nexmark.Event
	var results, sum int64
	for i := range n {
		g.Fill(i, &e)
		if e.Kind == nexmark.KindBid {
			b := e.Bid
			sum += b.Price
			results++
		}
	}
	sink = sum
	return results
}

func handQ1(g *nexmark.Generator, n int64) int64 {
	var e nexmark.Event
	var results, sum int64
	for i := range n {
		g.Fill(i, &e)
		if e.Kind == nexmark.KindBid {
			b := e.Bid
			b.Price = nexmark.EuroCents(b.Price)
			sum += b.Price
			results++
		}
	}
	sink = sum
	return results
}

func handQ2(g *nexmark.Generator, n int64) int64 {
	var e nexmark.Event
	var results, sum int64
	for i := range n {
		g.Fill(i, &e)
		if e.Kind == nexmark.KindBid && e.Bid.Auction%123 == 0 {
			sum += e.Bid.Price
			results++
		}
	}
	sink = sum
	return results
}

// watermarkDelay is the watermark's lag behind the highest time seen, as
// nexmark.Watermarks' (4 s, and the 1 ms of Flink's bounded
// out-of-orderness).
var watermarkDelay = nexmark.WatermarkDelay.Milliseconds() + 1

// handQ5 counts the bids per auction in sliding windows of 10 s every 2 s
// and emits, when the watermark passes a window, the auctions with its
// highest count.
func handQ5(g *nexmark.Generator, n int64) int64 {
	const size, slide = 10_000, 2_000
	windows := map[int64]map[int64]int64{} // window start -> auction -> count
	var results int64
	var next int64 // the start of the earliest open window
	started := false
	closeWindow := func(start int64) {
		counts := windows[start]
		var top int64
		for _, c := range counts {
			top = max(top, c)
		}
		for _, c := range counts {
			if c == top {
				results++
			}
		}
		delete(windows, start)
	}
	var e nexmark.Event
	for i := range n {
		g.Fill(i, &e)
		if e.Kind != nexmark.KindBid {
			continue
		}
		ts := e.Bid.DateTime
		last := ts - ts%slide
		for start := last; start > ts-size; start -= slide {
			m := windows[start]
			if m == nil {
				m = map[int64]int64{}
				windows[start] = m
			}
			m[e.Bid.Auction]++
		}
		if !started {
			next, started = last-size+slide, true
		}
		for wm := ts - watermarkDelay; next+size-1 <= wm; next += slide {
			closeWindow(next)
		}
	}
	starts := make([]int64, 0, len(windows))
	for s := range windows {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		closeWindow(s)
	}
	return results
}

// handQ7 keeps, per tumbling window of 10 s, the highest price and the
// bids with it, and emits them when the watermark passes the window.
func handQ7(g *nexmark.Generator, n int64) int64 {
	const size = 10_000
	type top struct {
		price int64
		bids  []nexmark.Bid
	}
	windows := map[int64]*top{}
	var results, sum int64
	closeWindow := func(start int64) {
		for _, b := range windows[start].bids {
			sum += b.Price
			results++
		}
		delete(windows, start)
	}
	var next int64 // the start of the earliest open window
	started := false
	var e nexmark.Event
	for i := range n {
		g.Fill(i, &e)
		if e.Kind != nexmark.KindBid {
			continue
		}
		ts := e.Bid.DateTime
		start := ts - ts%size
		if !started {
			next, started = start, true
		}
		w := windows[start]
		if w == nil {
			w = &top{}
			windows[start] = w
		}
		switch {
		case len(w.bids) == 0 || e.Bid.Price > w.price:
			w.price, w.bids = e.Bid.Price, append(w.bids[:0], e.Bid)
		case e.Bid.Price == w.price:
			w.bids = append(w.bids, e.Bid)
		}
		for wm := ts - watermarkDelay; next+size-1 <= wm; next += size {
			if windows[next] != nil {
				closeWindow(next)
			}
		}
	}
	starts := make([]int64, 0, len(windows))
	for s := range windows {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		closeWindow(s)
	}
	sink = sum
	return results
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nexmark bench: "+format+"\n", args...)
	os.Exit(1)
}
