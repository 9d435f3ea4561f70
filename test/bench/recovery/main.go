// Command recovery measures how long a job's output stops when a worker
// crashes: the time from a worker's SIGKILL to output flowing again from the
// job's next attempt, restored from its last checkpoint.
//
// It starts one `eddy server` and two `eddy worker`s as separate processes
// (each worker with -slots slots, enough to hold the whole job alone) and,
// for each round, submits a fresh copy of test/bench/recovery/job at
// parallelism 2: an unbounded source at -rate records a second, a keyed
// running sum, and a sink writing lines into a local directory,
// checkpointing every -interval. Once the job is RUNNING, has completed a
// checkpoint in its attempt and has written output, the round SIGKILLs a
// worker that holds tasks of the attempt (w1 in odd rounds, w2 in even ones
// when both do), with its job plugins, and measures:
//
//   - output: from the kill to the first byte written by the next attempt.
//     The job's sink creates a new file, named with its open time in Unix
//     nanoseconds, every time a subtask opens, that is once per subtask per
//     attempt; the tasks of the failed attempt that survive on the other
//     worker keep writing to files created before the kill until they are
//     cancelled, and never create one. So the first file named with a time
//     after the kill that is not empty, found by listing the directory every
//     5 ms, is the new attempt's output flowing. (The job writes with an
//     at-least-once sink on purpose: an exactly-once sink publishes its
//     output only when a checkpoint completes, which would add up to one
//     interval to the measure.)
//   - along the way, from a poll of the REST API every 20 ms: when the
//     control plane failed the attempt (the job's failure_at, and its cause),
//     when it marked the worker LOST, how many restarts it took and when the
//     attempt that produced the output was seen RUNNING.
//
// It then cancels the job and restarts the killed worker before the next
// round. It prints every round, and the median, min and max of each measure.
//
// The server runs with the worker heartbeat timeout a user gets from `eddy
// server`; -heartbeat-timeouts adds settings to compare, each on a cluster
// of its own (e.g. "default,3s"):
//
//	go run ./test/bench/recovery -rounds 5 -heartbeat-timeouts default,3s
//
// Results are from one machine at one moment; the load average is printed
// at the start and the end. Every wait is bounded, and every process and
// temp dir is removed at the end, on error, and on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/test/procs"
)

type options struct {
	rounds       int
	rate         float64
	interval     time.Duration
	slots        int
	p            int
	timeouts     []string // "default" or a duration
	roundTimeout time.Duration
	keep         bool
}

func main() {
	var o options
	var timeouts string
	flag.IntVar(&o.rounds, "rounds", 5, "worker kills to measure per setting")
	flag.Float64Var(&o.rate, "rate", 2000, "records per second of the job's source")
	flag.DurationVar(&o.interval, "interval", time.Second, "the job's checkpoint interval")
	flag.IntVar(&o.slots, "slots", 2, "slots per worker (one worker must hold the whole job)")
	flag.IntVar(&o.p, "p", 2, "the job's parallelism")
	flag.StringVar(&timeouts, "heartbeat-timeouts", "default", `comma-separated --worker-heartbeat-timeout settings of the server, "default" for the server's own`)
	flag.DurationVar(&o.roundTimeout, "round-timeout", 90*time.Second, "bound on each wait of a round")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs, output and logs, and print where they are")
	flag.Parse()
	for _, s := range strings.Split(timeouts, ",") {
		s = strings.TrimSpace(s)
		if s != "default" {
			if d, err := time.ParseDuration(s); err != nil || d <= 0 {
				fmt.Fprintf(os.Stderr, "recovery: -heartbeat-timeouts: %q is neither default nor a positive duration\n", s)
				os.Exit(2)
			}
		}
		o.timeouts = append(o.timeouts, s)
	}
	if o.rounds < 1 || o.rate <= 0 || o.interval <= 0 || o.slots < o.p || o.p < 1 || o.roundTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "recovery: -rounds, -rate, -interval, -p and -round-timeout must be positive, -slots at least -p")
		os.Exit(2)
	}

	m := procs.NewMain()
	m.Cleanup(procs.RemoveBinary)
	fmt.Printf("recovery: 1 server, 2 workers x %d slots, job at p=%d, %.0f records/s, checkpoints every %s, %d rounds per setting; %d CPUs, %s; load average at start: %s\n",
		o.slots, o.p, o.rate, o.interval, o.rounds, runtime.NumCPU(), runtime.Version(), procs.LoadAvg())
	m.Logf("building eddy and the job")
	procs.Binary(m)
	dir := m.WorkDir("eddy-recovery-", o.keep)
	bin := procs.BuildJob(m, filepath.Join(dir, "job"), "./test/bench/recovery/job")

	results := map[string][]sample{}
	for i, hb := range o.timeouts {
		results[hb] = runSetting(m, o, filepath.Join(dir, fmt.Sprintf("cluster-%d", i+1)), bin, hb)
	}
	m.Close()
	if m.Failed() {
		os.Exit(1)
	}
	fmt.Printf("\nload average at the end: %s\n", procs.LoadAvg())
	for _, hb := range o.timeouts {
		report(hb, results[hb])
	}
}

// sample is one round's measurement; the durations are from the kill.
type sample struct {
	round    int
	victim   string
	tasks    string        // the victim's slots of the attempt, "k of n"
	failed   time.Duration // the control plane failed the attempt (failure_at); -1 if not seen
	cause    string
	last     string        // the cause of the last restart, when there were several
	lost     time.Duration // the victim listed as not ALIVE; -1 if not seen
	running  time.Duration // the attempt that wrote the output seen RUNNING; -1 if not seen
	output   time.Duration // first byte of the new attempt's output
	restarts uint32        // restarts between the kill and the output
	restored uint64        // the checkpoint the new attempt restored
	doomed   int           // files of attempts that failed again, written before the counted output
}

func runSetting(m *procs.Main, o options, dir, bin, hb string) []sample {
	var serverArgs []string
	if hb != "default" {
		serverArgs = []string{"--worker-heartbeat-timeout", hb}
	}
	m.Logf("worker heartbeat timeout %s: starting a server and 2 workers in %s", hb, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.Fatalf("%v", err)
	}
	c := procs.New(m, procs.Config{Dir: dir, SharedStorage: true, ServerArgs: serverArgs, StartTimeout: o.roundTimeout})
	c.StartServers(1)
	c.StartWorker("w1", o.slots)
	c.StartWorker("w2", o.slots)
	var out []sample
	for round := 1; round <= o.rounds; round++ {
		s := measure(m, c, o, bin, dir, hb, round)
		out = append(out, s)
		oneLine := strings.NewReplacer("\n", " ")
		s.cause, s.last = oneLine.Replace(s.cause), oneLine.Replace(s.last)
		restarts := fmt.Sprintf("%d restarts", s.restarts)
		if s.last != "" {
			restarts += fmt.Sprintf(" (the last: %s)", s.last)
		}
		if s.doomed > 0 {
			restarts += fmt.Sprintf("; %d output files of attempts that failed again not counted", s.doomed)
		}
		fmt.Printf("heartbeat timeout %-7s round %d: killed %s (it held %s slots of the attempt); attempt failed after %s (%s); %s not ALIVE after %s; %s; attempt restored from checkpoint %d seen RUNNING after %s; its first output after %s\n",
			hb, s.round, s.victim, s.tasks, ms(s.failed), s.cause, s.victim, ms(s.lost), restarts, s.restored, ms(s.running), ms(s.output))
	}
	c.Close()
	return out
}

func measure(m *procs.Main, c *procs.Cluster, o options, bin, dir, hb string, round int) sample {
	id := fmt.Sprintf("r%d", round)
	outDir := filepath.Join(dir, "out-"+id)
	r := c.Eddy(o.roundTimeout, "--address", c.Addresses(), "run", "--detach", "--job-id", id, "-p", strconv.Itoa(o.p), bin,
		"--", "-rate", strconv.FormatFloat(o.rate, 'f', -1, 64), "-out", outDir, "-checkpoint", o.interval.String())
	if r.Code != 0 || r.Err != nil {
		m.Fatalf("submit: %s", r)
	}
	cl := c.Client()
	// The job runs, has checkpointed in its attempt and writes output.
	var job api.Job
	procs.WaitFor(m, o.roundTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if job, err = cl.Job(ctx, id); err != nil {
			return err
		}
		if job.Status != "RUNNING" {
			return fmt.Errorf("job %s is %s", id, job.Status)
		}
		cps, err := cl.Checkpoints(ctx, id)
		if err != nil {
			return err
		}
		if cps.Latest == nil || cps.Latest.Attempt != job.Attempt {
			return fmt.Errorf("job %s: no checkpoint completed in attempt %d", id, job.Attempt)
		}
		sizes, err := newOutput(outDir, 0)
		if err != nil {
			return err
		}
		for _, size := range sizes {
			if size > 0 {
				return nil
			}
		}
		return fmt.Errorf("job %s has written no output", id)
	})
	held := map[string]int{}
	total := 0
	for _, t := range job.Tasks {
		if t.Attempt == job.Attempt {
			held[t.WorkerID]++
			total++
		}
	}
	victim := "w1"
	if round%2 == 0 {
		victim = "w2"
	}
	if held[victim] == 0 {
		victim = map[string]string{"w1": "w2", "w2": "w1"}[victim]
	}
	if held[victim] == 0 {
		m.Fatalf("job %s attempt %d: no tasks on w1 or w2: %+v", id, job.Attempt, job.Tasks)
	}
	s := sample{round: round, victim: victim, tasks: fmt.Sprintf("%d of %d", held[victim], total), failed: -1, lost: -1, running: -1}

	mon := &monitor{c: c, id: id, victim: victim, attempt: job.Attempt, restarts: job.Restarts}
	killedAt := time.Now()
	mon.killedAt = killedAt
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		mon.run(ctx)
	}()
	c.Kill(victim)

	// Every file created after the kill, with when it was first seen not
	// empty. An attempt that fails again (deployed while the control plane
	// still counted the dead worker's slots) may have written a little
	// before it was cancelled: only files still growing count, so the
	// watch goes on for settle after the first byte, and a file counts if
	// it grew in the last half of that.
	const settle = 2 * time.Second
	firstByte := map[string]time.Duration{}
	var mark map[string]int64 // sizes half way through the settle time
	var firstAny time.Duration = -1
	deadline := time.Now().Add(o.roundTimeout)
	for {
		sizes, err := newOutput(outDir, killedAt.UnixNano())
		if err != nil {
			stop()
			m.Fatalf("round %d: %v", round, err)
		}
		now := time.Since(killedAt)
		for name, size := range sizes {
			if _, ok := firstByte[name]; !ok && size > 0 {
				firstByte[name] = now
				if firstAny < 0 {
					firstAny = now
				}
			}
		}
		if firstAny >= 0 && mark == nil && now >= firstAny+settle/2 {
			mark = sizes
		}
		if firstAny >= 0 && now >= firstAny+settle {
			s.output = -1
			for name, size := range sizes {
				if size > mark[name] && (s.output < 0 || firstByte[name] < s.output) {
					s.output = firstByte[name]
				}
			}
			for name, t := range firstByte {
				if sizes[name] == mark[name] && t < max(s.output, 0) {
					s.doomed++
				}
			}
			if s.output >= 0 {
				break
			}
			// Every file stopped growing: the attempts that wrote them
			// failed; wait for the next.
			firstAny, mark = -1, nil
			clear(firstByte)
		}
		if time.Now().After(deadline) {
			stop()
			wg.Wait()
			m.Fatalf("round %d: no output from a new attempt within %s of killing %s; job: %s", round, o.roundTimeout, victim, mon.summary())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Let the monitor see the attempt that wrote it RUNNING (it may have
	// been RUNNING for less than a poll); if it never does, the breakdown
	// says so.
	_ = procs.Poll(5*time.Second, 20*time.Millisecond, func() error {
		if mon.get().running < 0 {
			return fmt.Errorf("not seen RUNNING")
		}
		return nil
	})
	stop()
	wg.Wait()
	got := mon.get()
	s.failed, s.cause, s.last, s.lost, s.running, s.restarts, s.restored = got.failed, got.cause, got.last, got.lost, got.running, got.restarts, got.restored

	// Clean up for the next round: cancel the job, bring the worker back.
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := cl.Cancel(cctx, id)
	cancel()
	if err != nil {
		m.Fatalf("cancel %s: %v", id, err)
	}
	procs.WaitFor(m, o.roundTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		j, err := cl.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.Status != "CANCELED" {
			return fmt.Errorf("job %s is %s", id, j.Status)
		}
		return nil
	})
	c.Restart(victim)
	procs.WaitFor(m, o.roundTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ws, err := cl.Workers(ctx)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.Status != "ALIVE" || w.SlotsFree != w.Slots {
				return fmt.Errorf("worker %s is %s with %d of %d slots free", w.ID, w.Status, w.SlotsFree, w.Slots)
			}
		}
		return nil
	})
	if !o.keep {
		_ = os.RemoveAll(outDir)
	}
	return s
}

// newOutput returns the sizes of the output files created after after
// (Unix ns).
func newOutput(dir string, after int64) (map[string]int64, error) {
	out := map[string]int64{}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		f := strings.Split(e.Name(), "-")
		if len(f) != 4 || f[0] != "out" {
			continue
		}
		opened, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || opened <= after {
			continue
		}
		if info, err := e.Info(); err == nil {
			out[e.Name()] = info.Size()
		}
	}
	return out, nil
}

// monitor polls the REST API during a round and records when things were
// first seen.
type monitor struct {
	c        *procs.Cluster
	id       string
	victim   string
	attempt  uint64 // the attempt killed
	restarts uint32 // the job's restarts before the kill
	killedAt time.Time

	mu  sync.Mutex
	got observed
}

type observed struct {
	failed, lost, running time.Duration
	cause, last           string
	restarts              uint32
	restored              uint64
	status                string
	attempt               uint64
	runningAttempt        uint64
}

func (mo *monitor) get() observed {
	mo.mu.Lock()
	defer mo.mu.Unlock()
	return mo.got
}

func (mo *monitor) summary() string {
	g := mo.get()
	return fmt.Sprintf("%s attempt %d, %d restarts, last cause %q", g.status, g.attempt, g.restarts, g.cause)
}

func (mo *monitor) run(ctx context.Context) {
	mo.mu.Lock()
	mo.got = observed{failed: -1, lost: -1, running: -1}
	mo.mu.Unlock()
	cl := mo.c.Client()
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		j, jerr := cl.Job(rctx, mo.id)
		ws, werr := cl.Workers(rctx)
		cancel()
		at := time.Since(mo.killedAt)
		mo.mu.Lock()
		if jerr == nil {
			mo.got.status, mo.got.attempt = j.Status, j.Attempt
			mo.got.restarts = j.Restarts - mo.restarts
			if j.FailureAt != nil && j.FailureAt.After(mo.killedAt) && mo.got.failed < 0 {
				mo.got.failed = j.FailureAt.Sub(mo.killedAt)
				mo.got.cause = j.Failure
			}
			if j.Failure != mo.got.cause {
				mo.got.last = j.Failure
			}
			// The attempt that writes the output is the last one seen
			// RUNNING: an attempt deployed to the dead worker fails again.
			if j.Status == "RUNNING" && j.Attempt > mo.attempt && j.Attempt != mo.got.runningAttempt {
				mo.got.running, mo.got.runningAttempt, mo.got.restored = at, j.Attempt, j.RestoredCheckpoint
			}
		}
		if werr == nil && mo.got.lost < 0 {
			for _, w := range ws {
				if w.ID == mo.victim && w.Status != "ALIVE" {
					mo.got.lost = at
				}
			}
		}
		mo.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func report(hb string, samples []sample) {
	pick := func(f func(sample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, s := range samples {
			if d := f(s); d >= 0 {
				out = append(out, d)
			}
		}
		return out
	}
	fmt.Printf("worker heartbeat timeout %s, %d rounds:\n", hb, len(samples))
	fmt.Printf("  kill to the new attempt's first output: %s\n", stats(pick(func(s sample) time.Duration { return s.output })))
	fmt.Printf("  kill to the attempt failed:             %s\n", stats(pick(func(s sample) time.Duration { return s.failed })))
	fmt.Printf("  kill to the worker not ALIVE:           %s\n", stats(pick(func(s sample) time.Duration { return s.lost })))
	fmt.Printf("  kill to the new attempt seen RUNNING:   %s\n", stats(pick(func(s sample) time.Duration { return s.running })))
	fmt.Printf("  attempt failed to first output (restart delay, placement, deploy, restore): %s\n", stats(pick(func(s sample) time.Duration {
		if s.failed < 0 {
			return -1
		}
		return s.output - s.failed
	})))
	causes := map[string]int{}
	var restarts []string
	for _, s := range samples {
		causes[kind(s.cause)]++
		restarts = append(restarts, strconv.Itoa(int(s.restarts)))
	}
	var cs []string
	for k, n := range causes {
		cs = append(cs, fmt.Sprintf("%s (%d)", k, n))
	}
	slices.Sort(cs)
	fmt.Printf("  restarts per round: %s; what failed the attempt first: %s\n", strings.Join(restarts, " "), strings.Join(cs, ", "))
}

func stats(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	n := len(d)
	med := d[n/2]
	if n%2 == 0 {
		med = (d[n/2-1] + d[n/2]) / 2
	}
	return fmt.Sprintf("median %s, min %s, max %s (%d samples)", ms(med), ms(d[0]), ms(d[n-1]), n)
}

func ms(d time.Duration) string {
	if d < 0 {
		return "not seen"
	}
	return d.Round(time.Millisecond).String()
}

// kind says in a few words what a failure cause is.
func kind(cause string) string {
	switch {
	case cause == "":
		return "not seen"
	case strings.Contains(cause, "checkpoints failed") && strings.Contains(cause, "trigger"):
		return "a checkpoint trigger could not reach the worker"
	case strings.Contains(cause, "channel") && strings.Contains(cause, "peer"):
		return "a surviving task's exchange channel to the dead worker broke"
	case strings.Contains(cause, "lost"):
		return "the worker was marked lost"
	case strings.Contains(cause, "deploy"):
		return "a deploy could not reach the worker"
	}
	if len(cause) > 80 {
		cause = cause[:80] + "..."
	}
	return cause
}
