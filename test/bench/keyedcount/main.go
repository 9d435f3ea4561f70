// Command keyedcount measures the throughput of a keyed count, the job of
// examples/keyedcount, three ways in one run, on the same records (record i
// has key i*7919 % keys and count 1):
//
//   - hand: a hand-written Go loop that generates the records and counts
//     them per key in a map, on one core (GOMAXPROCS 1);
//   - local: the job run by sdk.RunLocal in this process at parallelism 1,
//     also with GOMAXPROCS 1, so that it is the throughput per core. At
//     parallelism 1 the whole job is one chain (a keyed edge between two
//     operators of parallelism 1 is chained): records pass by function call;
//   - local-p2 (only when asked for): the same at parallelism 2, still on
//     one core, so that every record crosses the in-process exchange,
//     encoded and decoded;
//   - procs: examples/keyedcount on `eddy local --workers P --slots 1 --run
//     ... -p P`, with plugin processes exchanging records over the network
//     exchange. It runs the job for two sizes, n1 and n, and reports
//     (n-n1)/(t(n)-t(n1)), which cancels the cost of starting the cluster,
//     the plugins and the job.
//
// Every phase runs -runs times; the program prints every run, then the
// median, min and max of each phase, its ratio to the hand loop's median,
// and whether the goals hold: local mode at least 25% of the hand loop per
// core, across processes at least a million records per second.
//
//	go run ./test/bench/keyedcount -n 20000000
//	go run ./test/bench/keyedcount -phases hand,local -runs 5
//
// Results compare phases of one run on one machine; absolute numbers from
// different machines or moments do not compare. The machine's load average
// is printed at the start and the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
	"github.com/eddy-streams/eddy/test/procs"
)

// exampleKeys is the number of distinct keys of examples/keyedcount, which
// has no flag for it.
const exampleKeys = 100_000

// The goals the report checks.
const (
	localGoal = 0.25 // local mode per core, as a fraction of the hand loop
	procsGoal = 1e6  // records per second across processes
)

// prime is coprime to the number of keys, so that the keys of consecutive
// records are far apart and every key comes up once in every keys records.
const prime = 7919

// Column widths of the report.
const (
	nameWidth = 24
	rateWidth = 14
)

type options struct {
	n, n1, keys int64
	phases      map[string]bool
	runs        int
	p           int
	timeout     time.Duration
	keep        bool
}

func main() {
	var o options
	var phases string
	flag.Int64Var(&o.n, "n", 20_000_000, "records per run (for procs: the larger of the two sizes)")
	flag.Int64Var(&o.n1, "n1", 0, "procs: the smaller size (default n/5)")
	flag.Int64Var(&o.keys, "keys", exampleKeys, "distinct keys (procs runs examples/keyedcount, which has 100000)")
	flag.StringVar(&phases, "phases", "hand,local,procs", "comma-separated phases to run: hand, local, local-p2, procs")
	flag.IntVar(&o.runs, "runs", 3, "how many times to run each phase")
	flag.IntVar(&o.p, "p", 2, "procs: parallelism, and number of workers (one slot each)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "procs: bound on each eddy local run")
	flag.BoolVar(&o.keep, "keep", false, "procs: keep the data dirs and logs, and print where they are")
	flag.Parse()
	o.phases = map[string]bool{}
	for _, ph := range strings.Split(phases, ",") {
		switch ph = strings.TrimSpace(ph); ph {
		case "hand", "local", "local-p2", "procs":
			o.phases[ph] = true
		default:
			fmt.Fprintf(os.Stderr, "keyedcount: unknown phase %q: want hand, local, local-p2 or procs\n", ph)
			os.Exit(2)
		}
	}
	if o.n1 == 0 {
		o.n1 = o.n / 5
	}
	switch {
	case o.n < 1 || o.keys < 1 || o.runs < 1 || o.p < 1 || o.timeout <= 0:
		fmt.Fprintln(os.Stderr, "keyedcount: -n, -keys, -runs, -p and -timeout must be positive")
		os.Exit(2)
	case o.phases["procs"] && (o.n1 < 1 || o.n1 >= o.n):
		fmt.Fprintln(os.Stderr, "keyedcount: -n1 must be positive and smaller than -n")
		os.Exit(2)
	case o.phases["procs"] && o.keys != exampleKeys:
		fmt.Fprintf(os.Stderr, "keyedcount: the procs phase runs examples/keyedcount, which has %d keys: drop -keys or leave out procs\n", exampleKeys)
		os.Exit(2)
	}

	m := procs.NewMain()
	m.Cleanup(procs.RemoveBinary)
	fmt.Printf("keyed count: n=%d keys=%d runs=%d, %d CPUs, %s; load average at start: %s\n",
		o.n, o.keys, o.runs, runtime.NumCPU(), runtime.Version(), procs.LoadAvg())
	results := map[string][]float64{}
	var builds *artifacts
	if o.phases["procs"] {
		// Built first, so that the builds do not share the CPU with a
		// measurement.
		builds = build(m, o)
	}
	for run := 1; run <= o.runs; run++ {
		if o.phases["hand"] {
			r := measureHand(m, o.n, o.keys)
			results["hand"] = append(results["hand"], r)
			printRun("hand loop, 1 core", run, r, "")
		}
		if o.phases["local"] {
			r := measureLocal(m, o.n, o.keys, 1)
			results["local"] = append(results["local"], r)
			printRun("local, p=1, 1 core", run, r, "")
		}
		if o.phases["local-p2"] {
			r := measureLocal(m, o.n, o.keys, 2)
			results["local-p2"] = append(results["local-p2"], r)
			printRun("local, p=2, 1 core", run, r, "")
		}
		if o.phases["procs"] {
			r, detail := measureProcs(m, o, builds)
			results["procs"] = append(results["procs"], r)
			printRun(fmt.Sprintf("procs, p=%d", o.p), run, r, detail)
		}
	}
	m.Close()
	if m.Failed() {
		os.Exit(1)
	}
	report(o, results)
}

func printRun(name string, run int, rate float64, detail string) {
	fmt.Printf("  %-*s run %d: %*s records/s%s\n", nameWidth, name, run, rateWidth, procs.Commas(rate), detail)
}

// KeyCount is a key and the number of its records counted so far, as in
// examples/keyedcount.
type KeyCount struct {
	Key   int64
	Count int64
}

// measureHand counts n records per key in a map on one core and returns
// records per second.
func measureHand(m *procs.Main, n, keys int64) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runtime.GC()
	start := time.Now()
	counts := map[int64]int64{}
	for i := range n {
		r := KeyCount{Key: i * prime % keys, Count: 1}
		counts[r.Key] += r.Count
	}
	took := time.Since(start)
	var total int64
	for _, c := range counts {
		total += c
	}
	if total != n || int64(len(counts)) != min(n, keys) {
		m.Fatalf("hand loop: %d records over %d keys, want %d over %d", total, len(counts), n, min(n, keys))
	}
	return float64(n) / took.Seconds()
}

// NewJob builds the job of examples/keyedcount over n records and keys
// keys, its sink counting into received.
func NewJob(n, keys int64, received *atomic.Int64) *sdk.Job {
	job := sdk.NewJob("keyedcount")
	records := sdk.FromSource(job, sdk.Generate(n, func(i int64) KeyCount {
		return KeyCount{Key: i * prime % keys, Count: 1}
	}), sdk.WithUID("records"))
	counts := sdk.Reduce(sdk.KeyBy(records, func(r KeyCount) int64 { return r.Key }),
		func(acc, r KeyCount) KeyCount { return KeyCount{Key: acc.Key, Count: acc.Count + r.Count} },
		sdk.WithUID("count"))
	sdk.SinkTo(counts, discard{received: received}, sdk.WithUID("discard"))
	return job
}

// measureLocal runs the job at parallelism p on one core and returns
// records per second.
func measureLocal(m *procs.Main, n, keys int64, p int) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var received atomic.Int64
	job := NewJob(n, keys, &received)
	runtime.GC()
	start := time.Now()
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(p)); err != nil {
		m.Fatalf("local run: %v", err)
	}
	took := time.Since(start)
	if got := received.Load(); got != n {
		m.Fatalf("local run: the sink received %d records, want %d", got, n)
	}
	return float64(n) / took.Seconds()
}

// discard is a sink that drops records, counting them.
type discard struct{ received *atomic.Int64 }

func (d discard) Open(context.Context, sdk.SinkContext) (sdk.Writer[KeyCount], error) {
	return &counter{received: d.received}, nil
}

// counter is one subtask's writer of discard.
type counter struct {
	received *atomic.Int64
	n        int64
}

func (c *counter) Write(context.Context, KeyCount) error { c.n++; return nil }
func (c *counter) Flush(context.Context) error           { return nil }
func (c *counter) Close(context.Context) error           { c.received.Add(c.n); return nil }

// artifacts are the binaries the procs phase runs.
type artifacts struct {
	eddy, job, dir string
}

func build(m *procs.Main, o options) *artifacts {
	m.Logf("building eddy and examples/keyedcount")
	a := &artifacts{eddy: procs.Binary(m)}
	dir := m.WorkDir("eddy-keyedcount-", o.keep)
	a.dir = dir
	a.job = procs.BuildJob(m, filepath.Join(dir, "keyedcount"), "./examples/keyedcount")
	return a
}

// subtaskLine is what examples/keyedcount prints for each sink subtask.
var subtaskLine = regexp.MustCompile(`(?m)^subtask (\d+): (\d+) records in (\S+) `)

// measureProcs runs the example job for n1 and n records on a local
// cluster and returns (n-n1)/(t(n)-t(n1)), with a description of the two
// runs.
func measureProcs(m *procs.Main, o options, a *artifacts) (float64, string) {
	t1, _ := runProcs(m, o, a, o.n1)
	t2, in2 := runProcs(m, o, a, o.n)
	if t2 <= t1 {
		m.Fatalf("procs: %d records took %s, no longer than %d records (%s): make -n larger", o.n, t2, o.n1, t1)
	}
	rate := float64(o.n-o.n1) / (t2 - t1).Seconds()
	return rate, fmt.Sprintf("  (n1=%d in %s, n=%d in %s; sinks open for %s at n: %s records/s)",
		o.n1, t1.Round(time.Millisecond), o.n, t2.Round(time.Millisecond), in2.Round(time.Millisecond), procs.Commas(float64(o.n)/in2.Seconds()))
}

// runSeq numbers the eddy runs, for their data dirs.
var runSeq int

// lostOutput counts the runs of the procs phase in which the output of a
// sink subtask did not arrive.
var lostOutput int

// runProcs runs the job for n records on a fresh local cluster and returns
// the wall time of the eddy process and the longest time a sink subtask
// was open: the job's own measure, which leaves out the start of the
// cluster and of the plugins but not the deployment of the job.
func runProcs(m *procs.Main, o options, a *artifacts, n int64) (time.Duration, time.Duration) {
	runSeq++
	dataDir := filepath.Join(a.dir, fmt.Sprintf("run-%d-n%d", runSeq, n))
	args := []string{"local", "--data-dir", dataDir,
		"--raft-addr", procs.FreeAddr(m), "--grpc-addr", procs.FreeAddr(m), "--http-addr", procs.FreeAddr(m),
		"--workers", strconv.Itoa(o.p), "--slots", "1", "--log-level", "warn",
		"--run", a.job, "-p", strconv.Itoa(o.p), "--", "-n", strconv.FormatInt(n, 10)}
	r := procs.Run(m, o.timeout, args...)
	if r.Code != 0 || r.Err != nil {
		m.Fatalf("procs: %s", r)
	}
	var total int64
	var longest time.Duration
	subtasks := subtaskLine.FindAllStringSubmatch(r.Stdout, -1)
	for _, s := range subtasks {
		c, _ := strconv.ParseInt(s[2], 10, 64)
		d, err := time.ParseDuration(s[3])
		if err != nil {
			m.Fatalf("procs: subtask line %q: %v", s[0], err)
		}
		total += c
		longest = max(longest, d)
	}
	switch {
	case len(subtasks) == o.p && total == n:
	case len(subtasks) < o.p && total < n:
		// The job finished (eddy exited 0) but a plugin's last lines did
		// not reach eddy's stdout: the run's time stands, its count is
		// only partly checked.
		lostOutput++
		m.Logf("WARNING: procs: n=%d: %d of %d sink subtasks' lines arrived (%d records); the others' output was lost", n, len(subtasks), o.p, total)
	default:
		m.Fatalf("procs: %d sink subtasks received %d records, want %d and %d\n%s", len(subtasks), total, o.p, n, r)
	}
	if !o.keep {
		_ = os.RemoveAll(dataDir)
	}
	return r.Took, longest
}

func report(o options, results map[string][]float64) {
	fmt.Printf("\nload average at the end: %s\n", procs.LoadAvg())
	fmt.Printf("%-*s %*s %*s %*s %s\n", nameWidth, "phase", rateWidth, "median rec/s", rateWidth, "min", rateWidth, "max", "median / hand median")
	hand := median(results["hand"])
	rows := []struct{ key, name string }{
		{"hand", "hand loop, 1 core"},
		{"local", "local, p=1, 1 core"},
		{"local-p2", "local, p=2, 1 core"},
		{"procs", fmt.Sprintf("procs, p=%d (%d workers)", o.p, o.p)},
	}
	for _, row := range rows {
		rs := results[row.key]
		if len(rs) == 0 {
			continue
		}
		ratio := "-"
		if hand > 0 {
			ratio = fmt.Sprintf("%.3f", median(rs)/hand)
		}
		fmt.Printf("%-*s %*s %*s %*s %s\n", nameWidth, row.name, rateWidth, procs.Commas(median(rs)),
			rateWidth, procs.Commas(slices.Min(rs)), rateWidth, procs.Commas(slices.Max(rs)), ratio)
	}
	if rs := results["local"]; len(rs) > 0 && hand > 0 {
		ratio := median(rs) / hand
		fmt.Printf("goal: local at least %.0f%% of the hand loop per core: %.1f%%, %s\n", localGoal*100, ratio*100, verdict(ratio >= localGoal))
	}
	if lostOutput > 0 {
		fmt.Printf("procs: in %d runs the last line of a sink subtask was lost between its plugin and eddy's stdout\n", lostOutput)
	}
	if rs := results["procs"]; len(rs) > 0 {
		fmt.Printf("goal: across processes at least %s records/s: %s, %s\n", procs.Commas(procsGoal), procs.Commas(median(rs)), verdict(median(rs) >= procsGoal))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
