//go:build linux

// Command backpressure checks that the memory of a job's processes stays
// bounded when its sink is slower than its source. It runs the job of
// ./job (an unbounded source of ~200-byte records, a Rebalance, a sink that
// sleeps) on `eddy local --workers P --slots 1 --run JOB -p P`, finds the
// plugin processes (the children of the eddy process), and samples the
// resident memory (VmRSS in /proc/PID/status) of every process, with the
// job's progress (what each plugin's sources produced and sinks consumed,
// printed by the job every second), every -interval for -duration from the
// moment the plugins are there. It then stops eddy with SIGTERM and checks
// that no process is left.
//
// It does so twice by default: with a slow sink (-sleep after every
// -every records) and with a fast one (no sleep), for the same duration.
// With flow control, memory levels off within seconds in both, and the
// records in flight (produced minus consumed) stay bounded however far the
// sink falls behind; without it, the slow variant's memory would grow
// with the backlog.
//
//	go run ./test/bench/backpressure
//	go run ./test/bench/backpressure -variants slow -duration 30s -sleep 1ms -every 1
//
// It reads /proc, so it runs on Linux only.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eddy-streams/eddy/test/procs"
)

type options struct {
	duration, interval time.Duration
	sleep              time.Duration
	every, size, p     int
	variants           []string
	marks              []time.Duration
	maxGrowth          float64
	stopWait           time.Duration
	keep               bool
}

func main() {
	var o options
	var variants, marks string
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "how long to sample each variant, from the moment its plugins run")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "sampling interval")
	flag.DurationVar(&o.sleep, "sleep", time.Millisecond, "slow variant: the sink sleeps this long after every -every records")
	flag.IntVar(&o.every, "every", 1, "slow variant: records between two sleeps of the sink")
	flag.IntVar(&o.size, "size", 200, "approximate encoded size of a record in bytes")
	flag.IntVar(&o.p, "p", 2, "parallelism, and number of workers (one slot each)")
	flag.StringVar(&variants, "variants", "slow,fast", "comma-separated variants to run: slow, fast")
	flag.StringVar(&marks, "marks", "5s,10s,15s", "comma-separated times at which to report memory (and the end)")
	flag.Float64Var(&o.maxGrowth, "max-growth", 0.2, "fail when a process's RSS grows by more than this fraction from the first mark to the end")
	flag.DurationVar(&o.stopWait, "stop-wait", 20*time.Second, "how long eddy may take to stop after SIGTERM")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs and logs, and print where they are")
	flag.Parse()
	for _, v := range strings.Split(variants, ",") {
		if v = strings.TrimSpace(v); v != "slow" && v != "fast" {
			fmt.Fprintf(os.Stderr, "backpressure: unknown variant %q: want slow or fast\n", v)
			os.Exit(2)
		}
		o.variants = append(o.variants, strings.TrimSpace(v))
	}
	for _, s := range strings.Split(marks, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "backpressure: -marks: %q is not a positive duration\n", s)
			os.Exit(2)
		}
		o.marks = append(o.marks, d)
	}
	slices.Sort(o.marks)
	if o.duration <= 0 || o.interval <= 0 || o.sleep < 0 || o.every < 1 || o.size < 16 || o.p < 1 || o.stopWait <= 0 {
		fmt.Fprintln(os.Stderr, "backpressure: -duration, -interval, -every, -p and -stop-wait must be positive, -size at least 16")
		os.Exit(2)
	}

	m := procs.NewMain()
	m.Cleanup(procs.RemoveBinary)
	dir := m.WorkDir("eddy-backpressure-", o.keep)
	m.Logf("building eddy and the job")
	eddy := procs.Binary(m)
	jobBin := procs.BuildJob(m, filepath.Join(dir, "job"), "./test/bench/backpressure/job")
	fmt.Printf("backpressure: %d workers, parallelism %d, records of ~%d bytes, sampling every %s for %s; load average at start: %s\n",
		o.p, o.p, o.size, o.interval, o.duration, procs.LoadAvg())
	var results []*result
	for _, v := range o.variants {
		r := runVariant(m, o, eddy, jobBin, dir, v)
		results = append(results, r)
		r.print(o)
	}
	fmt.Printf("\nload average at the end: %s\n", procs.LoadAvg())
	ok := true
	for _, r := range results {
		ok = r.verdict(o) && ok
	}
	m.Close()
	if !ok || m.Failed() {
		os.Exit(1)
	}
}

// sample is the memory of one process at one time.
type sample struct {
	at       time.Duration // since the plugins were found
	rss, hwm int64         // bytes
}

// series is what was seen of one process.
type series struct {
	pid     int
	name    string // "eddy" or "plugin N"
	samples []sample
}

// progress is the last progress line of one plugin.
type progress struct {
	produced, consumed int64
}

// result is the outcome of one variant.
type result struct {
	variant  string
	args     []string
	procs    []*series
	progress []progressSample // totals over the plugins, at each sample
	stopped  string           // how the stop went
	leftover []int            // pids still alive after the stop
}

type progressSample struct {
	at                 time.Duration
	produced, consumed int64
}

var progressLine = regexp.MustCompile(`^progress pid=(\d+) elapsed=\S+ produced=(\d+) consumed=(\d+)$`)

func runVariant(m *procs.Main, o options, eddy, jobBin, dir, variant string) *result {
	jobArgs := []string{"-size", strconv.Itoa(o.size), "-sleep", "0s"}
	if variant == "slow" {
		jobArgs = []string{"-size", strconv.Itoa(o.size), "-sleep", o.sleep.String(), "-every", strconv.Itoa(o.every)}
	}
	dataDir := filepath.Join(dir, variant)
	args := append([]string{"local", "--data-dir", dataDir,
		"--raft-addr", procs.FreeAddr(m), "--grpc-addr", procs.FreeAddr(m), "--http-addr", procs.FreeAddr(m),
		"--workers", strconv.Itoa(o.p), "--slots", "1", "--log-level", "warn",
		"--run", jobBin, "-p", strconv.Itoa(o.p), "--"}, jobArgs...)
	r := &result{variant: variant, args: jobArgs}

	logf, err := os.Create(filepath.Join(dir, variant+".log"))
	if err != nil {
		m.Fatalf("%v", err)
	}
	// eddy's stdout is a pipe of ours that only the scanner reads, so
	// that waiting for eddy does not depend on reading it to the end.
	pr, pw, err := os.Pipe()
	if err != nil {
		m.Fatalf("%v", err)
	}
	cmd := exec.Command(eddy, args...)
	cmd.Stdout, cmd.Stderr = pw, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	m.Logf("%s: eddy %s", variant, strings.Join(args, " "))
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		m.Fatalf("start eddy: %v", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var mu sync.Mutex
	last := map[int]progress{} // by plugin pid
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s := progressLine.FindStringSubmatch(line)
			mu.Lock()
			fmt.Fprintln(logf, "stdout:", line)
			if s != nil {
				ppid, _ := strconv.Atoi(s[1])
				prod, _ := strconv.ParseInt(s[2], 10, 64)
				cons, _ := strconv.ParseInt(s[3], 10, 64)
				last[ppid] = progress{produced: prod, consumed: cons}
			}
			mu.Unlock()
		}
	}()
	// Whatever happens below, eddy and its plugins do not outlive this
	// program.
	seen := &pidSet{m: map[int]bool{}}
	m.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for _, p := range seen.list() {
			if alive(p) {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})

	// The plugins start once the job is deployed.
	var plugins []int
	err = procs.Poll(60*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-exited:
			return fmt.Errorf("eddy exited before its plugins started; see %s", logf.Name())
		default:
		}
		plugins = descendants(pid)
		if len(plugins) < o.p {
			return fmt.Errorf("%d of %d plugin processes running", len(plugins), o.p)
		}
		return nil
	})
	if err != nil {
		m.Fatalf("%s: %v", variant, err)
	}
	byPid := map[int]*series{pid: {pid: pid, name: "eddy"}}
	r.procs = append(r.procs, byPid[pid])
	slices.Sort(plugins)
	for i, p := range plugins {
		byPid[p] = &series{pid: p, name: fmt.Sprintf("plugin %d", i+1)}
		r.procs = append(r.procs, byPid[p])
		seen.add(p)
	}

	start := time.Now()
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		at := time.Since(start)
		for _, p := range descendants(pid) {
			if _, ok := byPid[p]; !ok {
				// A plugin restarted or another child appeared: follow it too.
				byPid[p] = &series{pid: p, name: fmt.Sprintf("child %d", p)}
				r.procs = append(r.procs, byPid[p])
				seen.add(p)
			}
		}
		for _, s := range r.procs {
			if rss, hwm, err := memory(s.pid); err == nil {
				s.samples = append(s.samples, sample{at: at, rss: rss, hwm: hwm})
			}
		}
		mu.Lock()
		var ps progressSample
		ps.at = at
		for _, pr := range last {
			ps.produced += pr.produced
			ps.consumed += pr.consumed
		}
		mu.Unlock()
		r.progress = append(r.progress, ps)
		if at >= o.duration {
			break
		}
		select {
		case <-tick.C:
		case <-exited:
			m.Fatalf("%s: eddy exited while the job should be running; see %s", variant, logf.Name())
		}
	}
	r.stopped, r.leftover = stop(pid, exited, seen.list(), o.stopWait)
	mu.Lock()
	_ = logf.Close() // the scanner may still run: after this, its writes fail
	mu.Unlock()
	if !o.keep {
		_ = os.RemoveAll(dataDir)
	}
	return r
}

// stop sends SIGTERM to eddy's process group, waits for eddy to exit, and
// returns how that went and which of the pids are still alive (which it
// then kills).
func stop(pid int, exited <-chan struct{}, pids []int, wait time.Duration) (string, []int) {
	t0 := time.Now()
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	how := ""
	select {
	case <-exited:
		how = fmt.Sprintf("eddy exited %s after SIGTERM", time.Since(t0).Round(time.Millisecond))
	case <-time.After(wait):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		how = fmt.Sprintf("eddy did not exit within %s of SIGTERM: killed", wait)
	}
	// Plugins run in process groups of their own; the worker kills them as
	// it stops, and the kernel (Pdeathsig) when eddy dies. Give a killed
	// process a moment to be reaped.
	var left []int
	_ = procs.Poll(2*time.Second, 50*time.Millisecond, func() error {
		left = left[:0]
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) > 0 {
			return errors.New("still alive")
		}
		return nil
	})
	for _, p := range left {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return how, left
}

// pidSet is the set of pids to kill at the latest when the program ends.
type pidSet struct {
	mu sync.Mutex
	m  map[int]bool
}

func (s *pidSet) add(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[pid] = true
}

func (s *pidSet) list() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for p := range s.m {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// descendants returns the pids of every process below pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: the
		// fields after its closing parenthesis are state, then ppid.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// memory returns a process's VmRSS and VmHWM (its peak RSS) in bytes.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("pid %d: no VmRSS (exited?)", pid)
	}
	return rss, hwm, nil
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// at returns the last sample taken at or before d, and whether there is one.
func (s *series) at(d time.Duration) (sample, bool) {
	var out sample
	ok := false
	for _, x := range s.samples {
		if x.at > d {
			break
		}
		out, ok = x, true
	}
	return out, ok
}

// peak returns the largest RSS sampled up to d.
func (s *series) peak(d time.Duration) int64 {
	var p int64
	for _, x := range s.samples {
		if x.at > d {
			break
		}
		p = max(p, x.rss)
	}
	return p
}

func (r *result) progressAt(d time.Duration) progressSample {
	var out progressSample
	for _, p := range r.progress {
		if p.at > d {
			break
		}
		out = p
	}
	return out
}

func (r *result) end() time.Duration {
	if len(r.progress) == 0 {
		return 0
	}
	return r.progress[len(r.progress)-1].at
}

// columns are the marks within the run, and its end.
func (r *result) columns(o options) []time.Duration {
	var cols []time.Duration
	end := r.end()
	for _, mk := range o.marks {
		if mk < end-o.interval/2 {
			cols = append(cols, mk)
		}
	}
	return append(cols, end)
}

func (r *result) print(o options) {
	fmt.Printf("\nvariant %s (job args: %s)\n", r.variant, strings.Join(r.args, " "))
	cols := r.columns(o)
	fmt.Printf("  %-22s", "RSS MiB (peak so far)")
	for _, c := range cols {
		fmt.Printf(" %16s", "at "+c.Round(100*time.Millisecond).String())
	}
	fmt.Printf(" %10s\n", "VmHWM")
	for _, s := range r.procs {
		fmt.Printf("  %-22s", fmt.Sprintf("%s (pid %d)", s.name, s.pid))
		for _, c := range cols {
			x, ok := s.at(c)
			if !ok {
				fmt.Printf(" %16s", "-")
				continue
			}
			fmt.Printf(" %16s", fmt.Sprintf("%.1f (%.1f)", mib(x.rss), mib(s.peak(c))))
		}
		if n := len(s.samples); n > 0 {
			fmt.Printf(" %10.1f", mib(s.samples[n-1].hwm))
		}
		fmt.Println()
	}
	for _, row := range []struct {
		name string
		f    func(progressSample) int64
	}{
		{"produced", func(p progressSample) int64 { return p.produced }},
		{"consumed", func(p progressSample) int64 { return p.consumed }},
		{"in flight", func(p progressSample) int64 { return p.produced - p.consumed }},
	} {
		fmt.Printf("  %-22s", "records "+row.name)
		for _, c := range cols {
			fmt.Printf(" %16d", row.f(r.progressAt(c)))
		}
		fmt.Println()
	}
	first, last := r.progressAt(cols[0]), r.progressAt(cols[len(cols)-1])
	if dt := (last.at - first.at).Seconds(); dt > 0 {
		fmt.Printf("  consumed per second from %s to the end: %.0f (progress lines lag by up to 1 s)\n",
			cols[0], float64(last.consumed-first.consumed)/dt)
	}
	fmt.Printf("  stop: %s", r.stopped)
	if len(r.leftover) > 0 {
		fmt.Printf("; LEFT RUNNING (now killed): %v", r.leftover)
	} else {
		fmt.Printf("; no process left")
	}
	fmt.Println()
}

// verdict prints whether memory levelled off and nothing was left, and
// reports whether both hold.
func (r *result) verdict(o options) bool {
	cols := r.columns(o)
	from, to := cols[0], cols[len(cols)-1]
	ok := len(r.leftover) == 0
	for _, s := range r.procs {
		a, b := s.peak(from), s.peak(to)
		if a == 0 || from == to {
			continue
		}
		growth := float64(b-a) / float64(a)
		if growth > o.maxGrowth {
			fmt.Printf("%s: %s: peak RSS grew %.0f%% (%.1f to %.1f MiB) from %s to %s: NOT BOUNDED\n",
				r.variant, s.name, growth*100, mib(a), mib(b), from, to.Round(100*time.Millisecond))
			ok = false
		}
	}
	if ok {
		fmt.Printf("%s: memory levelled off (peak RSS of no process grew more than %.0f%% after %s) and no process was left running\n",
			r.variant, o.maxGrowth*100, from)
	} else if len(r.leftover) > 0 {
		fmt.Printf("%s: processes %v were still running after eddy stopped\n", r.variant, r.leftover)
	}
	return ok
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
