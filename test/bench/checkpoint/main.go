// Command checkpoint measures what periodic checkpoints cost a job's
// throughput: it runs the keyed count of examples/keyedcount on `eddy local
// --workers P --slots 1 --run ... -p P` (plugin processes exchanging records
// over the network, keyed state of -keys counts, 100,000 by default) without checkpoints and
// with a checkpoint every -interval (1 s), interleaved: without, with,
// without, with, ... so that a change of the machine's load hits both alike.
//
// Each measurement runs the job twice, for n1 and n records, and reports
// (n-n1)/(t(n)-t(n1)), with t the wall time of the eddy process, as the
// keyedcount benchmark does: that cancels the cost of starting the cluster,
// the plugins and the job, and, with checkpoints, the wait at the end of a
// bounded job for the final checkpoint (a sink's input ended, it waits for a
// checkpoint triggered after that, at most an interval plus the checkpoint's
// own time): both runs pay it, so only its spread (up to an interval) stays
// in the difference, which is why n should keep the job busy for 10 s or
// more.
//
// Checkpoints are counted from the control plane's log ("checkpoint
// completed", printed at --log-level info) of each run; a measurement with
// checkpoints whose larger run completed no more checkpoints than its smaller
// one does not count (it did not checkpoint while it was measured) and is
// reported as excluded. The checkpoints go to the default storage of `eddy
// local`: a file:// directory under its data dir.
//
// The program prints every run, the median, min and max records/s of each
// mode, the ratio of the medians (with / without) and whether the goal
// holds: at least 0.9. It also prints the ratio of each run with
// checkpoints to the run without just before it, whose spread shows how
// much the machine's load moved during the measurement. The sinks' own rate (records over the time a sink
// subtask was open, which leaves the final checkpoint out) is printed beside
// each run as a second view.
//
//	go run ./test/bench/checkpoint -n 100000000 -runs 3
//
// Results compare modes of one run on one machine; absolute numbers from
// different machines or moments do not compare. The machine's load average
// is printed at the start and the end.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-streams/eddy/test/procs"
)

// goal is the least ratio of the median rate with checkpoints to the median
// rate without.
const goal = 0.9

type options struct {
	n, n1    int64
	keys     int64
	runs     int
	p        int
	interval time.Duration
	timeout  time.Duration
	keep     bool
}

func main() {
	var o options
	flag.Int64Var(&o.n, "n", 100_000_000, "records of the larger run of each measurement")
	flag.Int64Var(&o.n1, "n1", 0, "records of the smaller run (default n/5)")
	flag.IntVar(&o.runs, "runs", 3, "measurements of each mode (without and with checkpoints)")
	flag.IntVar(&o.p, "p", 2, "parallelism, and number of workers (one slot each)")
	flag.Int64Var(&o.keys, "keys", 100_000, "distinct keys of the job, each a count in its state")
	flag.DurationVar(&o.interval, "interval", time.Second, "checkpoint interval of the runs with checkpoints")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on each eddy local run")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs (with the checkpoints), and print where they are")
	flag.Parse()
	if o.n1 == 0 {
		o.n1 = o.n / 5
	}
	if o.n < 2 || o.n1 < 1 || o.n1 >= o.n || o.runs < 1 || o.p < 1 || o.interval <= 0 || o.timeout <= 0 {
		fmt.Fprintln(os.Stderr, "checkpoint: -n, -runs, -p, -interval and -timeout must be positive, -n1 positive and smaller than -n")
		os.Exit(2)
	}

	m := procs.NewMain()
	m.Cleanup(procs.RemoveBinary)
	fmt.Printf("checkpoint cost: keyed count, n1=%d n=%d, p=%d on %d workers, checkpoints every %s, %d runs; %d CPUs, %s; load average at start: %s\n",
		o.n1, o.n, o.p, o.p, o.interval, o.runs, runtime.NumCPU(), runtime.Version(), procs.LoadAvg())
	// Built first, so that the builds do not share the CPU with a
	// measurement.
	m.Logf("building eddy and examples/keyedcount")
	eddy := procs.Binary(m)
	dir := m.WorkDir("eddy-checkpoint-", o.keep)
	job := procs.BuildJob(m, filepath.Join(dir, "keyedcount"), "./examples/keyedcount")
	b := &bench{m: m, o: o, eddy: eddy, job: job, dir: dir}

	var without, with, pairs []float64
	excluded := 0
	for run := 1; run <= o.runs; run++ {
		r := b.measure(0)
		without = append(without, r.rate)
		fmt.Printf("  without checkpoints run %d: %14s records/s  %s\n", run, procs.Commas(r.rate), r.detail)
		r = b.measure(o.interval)
		if r.counts {
			with = append(with, r.rate)
			pairs = append(pairs, r.rate/without[len(without)-1])
			fmt.Printf("  with %-6s checkpoints run %d: %14s records/s  %s; %.3f of the run before\n", o.interval, run, procs.Commas(r.rate), r.detail, pairs[len(pairs)-1])
		} else {
			excluded++
			fmt.Printf("  with %-6s checkpoints run %d: EXCLUDED (no checkpoint while measured)  %s\n", o.interval, run, r.detail)
		}
	}
	m.Close()
	if m.Failed() {
		os.Exit(1)
	}

	fmt.Printf("\nload average at the end: %s\n", procs.LoadAvg())
	fmt.Printf("%-26s %14s %14s %14s\n", "mode", "median rec/s", "min", "max")
	row := func(name string, rs []float64) {
		if len(rs) == 0 {
			fmt.Printf("%-26s %14s\n", name, "no runs")
			return
		}
		fmt.Printf("%-26s %14s %14s %14s\n", name, procs.Commas(median(rs)), procs.Commas(slices.Min(rs)), procs.Commas(slices.Max(rs)))
	}
	row("without checkpoints", without)
	row(fmt.Sprintf("with checkpoints every %s", o.interval), with)
	if len(b.failed) > 0 {
		fmt.Printf("%d runs failed and were run again:\n", len(b.failed))
		for _, f := range b.failed {
			fmt.Printf("  %s\n", f)
		}
	}
	if excluded > 0 {
		fmt.Printf("%d runs with checkpoints excluded: they completed no checkpoint while measured\n", excluded)
	}
	if len(with) == 0 {
		fmt.Println("goal: no run with checkpoints counts: make -n larger")
		os.Exit(1)
	}
	ratio := median(with) / median(without)
	v := "met"
	if ratio < goal {
		v = "MISSED"
	}
	fmt.Printf("ratio of each run with checkpoints to the run without just before it: median %.3f, min %.3f, max %.3f\n",
		median(pairs), slices.Min(pairs), slices.Max(pairs))
	fmt.Printf("goal: throughput with checkpoints every %s at least %.2f of without: %.3f, %s\n", o.interval, goal, ratio, v)
}

type bench struct {
	m         *procs.Main
	o         options
	eddy, job string
	dir       string
	seq       int
	failed    []string // runs that failed and were run again
}

// maxRetries is how many times a failed run is run again.
const maxRetries = 2

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// measurement is the result of one pair of runs.
type measurement struct {
	rate   float64
	counts bool // false: with checkpoints, but none completed while measured
	detail string
}

// measure runs the job for n1 and n records, with checkpoints every interval
// (none when 0).
func (b *bench) measure(interval time.Duration) measurement {
	r1 := b.run(b.o.n1, interval)
	r2 := b.run(b.o.n, interval)
	if r2.took <= r1.took {
		b.m.Fatalf("%d records took %s, no longer than %d records (%s): make -n larger", b.o.n, r2.took, b.o.n1, r1.took)
	}
	rate := float64(b.o.n-b.o.n1) / (r2.took - r1.took).Seconds()
	detail := fmt.Sprintf("(n1 in %s, n in %s; sinks: %s records/s", r1.took.Round(time.Millisecond), r2.took.Round(time.Millisecond),
		procs.Commas(float64(b.o.n)/r2.sinkOpen.Seconds()))
	counts := true
	if interval > 0 {
		detail += fmt.Sprintf("; checkpoints completed: %d at n1, %d at n, median %s, %s each", r1.checkpoints, r2.checkpoints,
			r2.medianTook.Round(time.Millisecond), bytesString(r2.size))
		counts = r2.checkpoints > r1.checkpoints
	}
	return measurement{rate: rate, counts: counts, detail: detail + ")"}
}

// subtaskLine is what examples/keyedcount prints for each sink subtask.
var subtaskLine = regexp.MustCompile(`(?m)^subtask (\d+): (\d+) records in (\S+) `)

// completedLine is the control plane's log line of a completed checkpoint.
var completedLine = regexp.MustCompile(`msg="checkpoint completed" .* size=(\d+) took=(\S+)`)

// runResult is what one eddy local run reports.
type runResult struct {
	took        time.Duration // wall time of the eddy process
	sinkOpen    time.Duration // longest time a sink subtask was open
	checkpoints int           // checkpoints completed
	medianTook  time.Duration // median time a checkpoint took
	size        int64         // size of the last checkpoint
}

// run runs the job for n records on a fresh local cluster.
func (b *bench) run(n int64, interval time.Duration) runResult {
	b.seq++
	dataDir := filepath.Join(b.dir, fmt.Sprintf("run-%d-n%d", b.seq, n))
	args := []string{"local", "--data-dir", dataDir,
		"--raft-addr", procs.FreeAddr(b.m), "--grpc-addr", procs.FreeAddr(b.m), "--http-addr", procs.FreeAddr(b.m),
		"--workers", strconv.Itoa(b.o.p), "--slots", "1", "--log-level", "info",
		"--run", b.job, "-p", strconv.Itoa(b.o.p), "--", "-n", strconv.FormatInt(n, 10), "-keys", strconv.FormatInt(b.o.keys, 10)}
	if interval > 0 {
		args = append(args, "-checkpoint", interval.String())
	}
	r := procs.Run(b.m, b.o.timeout, args...)
	for retry := 1; (r.Code != 0 || r.Err != nil) && retry <= maxRetries; retry++ {
		// A failed run is reported and run again, and counted in the
		// report: the job itself must not fail, but a benchmark that stops
		// at the first failure measures nothing.
		b.failed = append(b.failed, fmt.Sprintf("n=%d checkpoint=%s: exit %d: %s", n, interval, r.Code, lastLine(r.Stderr)))
		b.m.Logf("WARNING: run failed, running it again: exit %d: %s", r.Code, lastLine(r.Stderr))
		_ = os.RemoveAll(dataDir)
		r = procs.Run(b.m, b.o.timeout, args...)
	}
	if r.Code != 0 || r.Err != nil {
		b.m.Fatalf("%s", r)
	}
	var out runResult
	out.took = r.Took
	var total int64
	subtasks := subtaskLine.FindAllStringSubmatch(r.Stdout, -1)
	for _, s := range subtasks {
		c, _ := strconv.ParseInt(s[2], 10, 64)
		d, err := time.ParseDuration(s[3])
		if err != nil {
			b.m.Fatalf("subtask line %q: %v", s[0], err)
		}
		total += c
		out.sinkOpen = max(out.sinkOpen, d)
	}
	if len(subtasks) != b.o.p || total != n {
		b.m.Fatalf("%d sink subtasks received %d records, want %d and %d\n%s", len(subtasks), total, b.o.p, n, r)
	}
	var tooks []time.Duration
	for _, s := range completedLine.FindAllStringSubmatch(r.Stdout+r.Stderr, -1) {
		out.size, _ = strconv.ParseInt(s[1], 10, 64)
		if d, err := time.ParseDuration(s[2]); err == nil {
			tooks = append(tooks, d)
		}
	}
	out.checkpoints = len(tooks)
	if len(tooks) > 0 {
		slices.Sort(tooks)
		out.medianTook = tooks[len(tooks)/2]
	}
	if interval == 0 && out.checkpoints > 0 {
		b.m.Fatalf("a run without checkpoints completed %d checkpoints", out.checkpoints)
	}
	if !b.o.keep {
		_ = os.RemoveAll(dataDir)
	}
	return out
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
