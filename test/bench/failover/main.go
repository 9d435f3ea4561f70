// Command failover measures how long Eddy's control plane refuses writes when
// its leader crashes. It starts three real `eddy server` processes and, for
// each round, writes jobs continuously through the two followers, kills the
// leader with SIGKILL, and measures the time from the kill to the first write
// (POST /v1/jobs answered 201) sent after the kill and acknowledged through a
// survivor. It then restarts the killed node and waits for three healthy
// members before the next round. It prints every round, then the median, p90
// and max.
//
//	go run ./test/bench/failover -rounds 10
//
// The servers run with the Raft timing a user gets from `eddy server`; flags
// override it. Every wait is bounded, and every process and temp dir is
// removed at the end, on error, and on Ctrl-C.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/test/procs"
)

type options struct {
	rounds         int
	interval       time.Duration
	requestTimeout time.Duration
	roundTimeout   time.Duration
	allWait        time.Duration
	keep           bool
	serverArgs     []string
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 10, "how many leader kills to measure")
	flag.DurationVar(&o.interval, "interval", 10*time.Millisecond, "pause between two writes of one writer")
	flag.DurationVar(&o.requestTimeout, "request-timeout", time.Second, "bound on each write request")
	flag.DurationVar(&o.roundTimeout, "round-timeout", 30*time.Second, "bound on each wait of a round (a first write, a healthy cluster)")
	flag.DurationVar(&o.allWait, "all-wait", 5*time.Second, "after the first acknowledged write, how long to wait for one through every survivor")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs and logs, and print where they are")
	// Server flags are passed on only when given, so that the default is
	// exactly what `eddy server` does.
	for _, name := range []string{"raft-heartbeat-timeout", "raft-election-timeout", "raft-leader-lease-timeout", "raft-commit-timeout", "leader-wait", "apply-timeout"} {
		flag.Func(name, "passed to every `eddy server` as --"+name+" (default: the server's)", func(v string) error {
			if _, err := time.ParseDuration(v); err != nil {
				return err
			}
			o.serverArgs = append(o.serverArgs, "--"+name+"="+v)
			return nil
		})
	}
	flag.Parse()
	if o.rounds < 1 || o.interval <= 0 || o.requestTimeout <= 0 || o.roundTimeout <= 0 || o.allWait <= 0 {
		fmt.Fprintln(os.Stderr, "failover: -rounds, -interval, -request-timeout, -round-timeout and -all-wait must be positive")
		os.Exit(2)
	}

	m := procs.NewMain()
	m.Cleanup(procs.RemoveBinary)
	dir := m.WorkDir("eddy-failover-", o.keep)
	samples := run(m, o, dir)
	m.Close()
	if m.Failed() {
		os.Exit(1)
	}
	report(samples, o.allWait)
}

// sample is one round's measurement.
type sample struct {
	round     int
	killed    string
	newLeader string
	via       string
	took      time.Duration // kill to first acknowledged write
	all       time.Duration // kill to a write acknowledged through every survivor; -1 if not within allWait
	failures  map[string]int
	recovered time.Duration // kill to three healthy members again
}

func run(m *procs.Main, o options, dir string) []sample {
	args := "default"
	if len(o.serverArgs) > 0 {
		args = strings.Join(o.serverArgs, " ")
	}
	m.Logf("building eddy and starting 3 servers (raft timing: %s)", args)
	c := procs.New(m, procs.Config{ServerArgs: o.serverArgs, Dir: dir, StartTimeout: o.roundTimeout})
	c.StartServers(3)
	w := newWriter(o)
	defer w.close()

	var samples []sample
	for round := 1; round <= o.rounds; round++ {
		s := measure(m, c, w, o, round)
		samples = append(samples, s)
		fmt.Printf("round %2d: killed %s, new leader %s: first write after %s via %s (failed before: %s); through both survivors after %s; 3 healthy members after %s\n",
			s.round, s.killed, s.newLeader, s.took.Round(time.Millisecond), s.via, failures(s.failures), allString(s.all, o.allWait), s.recovered.Round(time.Millisecond))
	}
	return samples
}

func measure(m *procs.Main, c *procs.Cluster, w *writer, o options, round int) sample {
	leader := c.WaitHealthy(3)
	var survivors []*procs.Proc
	for _, p := range c.Servers() {
		if p != leader {
			survivors = append(survivors, p)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	results := make(chan result, 1024)
	var wg sync.WaitGroup
	for _, p := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, p, round, results)
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	// Writes flow through every survivor before the kill.
	ok := map[string]bool{}
	deadline := time.After(o.roundTimeout)
	for len(ok) < len(survivors) {
		select {
		case r := <-results:
			if r.err == nil {
				ok[r.via] = true
			}
		case <-deadline:
			m.Fatalf("round %d: writes through %v did not all succeed within %s before the kill", round, names(survivors), o.roundTimeout)
		}
	}

	killedAt := time.Now()
	c.Kill(leader.ID)
	s := sample{round: round, killed: leader.ID, failures: map[string]int{}, all: -1}
	// The first acknowledged write is the measure; the wait goes on, for at
	// most o.allWait more, until a write went through every survivor, which
	// is what a client that talks to one node sees.
	acked := map[string]bool{}
	deadline = time.After(o.roundTimeout)
	var allDeadline <-chan time.Time
wait:
	for len(acked) < len(survivors) {
		select {
		case r := <-results:
			if r.start.Before(killedAt) {
				continue // sent in the old leader's term: proves nothing
			}
			if r.err != nil {
				if len(acked) == 0 {
					s.failures[r.err.Error()]++
				}
				continue
			}
			if len(acked) == 0 {
				s.took, s.via = r.end.Sub(killedAt), r.via
				allDeadline = time.After(o.allWait)
			}
			acked[r.via] = true
			if len(acked) == len(survivors) {
				s.all = r.end.Sub(killedAt)
			}
		case <-deadline:
			m.Fatalf("round %d: no write acknowledged within %s of killing %s; failures: %s", round, o.roundTimeout, leader.ID, failures(s.failures))
		case <-allDeadline:
			break wait
		}
	}
	stop()
	wg.Wait()

	nl := c.Leader()
	s.newLeader = nl.ID
	c.Restart(leader.ID)
	c.WaitHealthy(3)
	s.recovered = time.Since(killedAt)
	return s
}

func allString(d, wait time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("more than %s more", wait)
	}
	return d.Round(time.Millisecond).String()
}

func names(ps []*procs.Proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func failures(f map[string]int) string {
	if len(f) == 0 {
		return "none"
	}
	var keys []string
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x%d", k, f[k]))
	}
	return strings.Join(parts, ", ")
}

// result is the outcome of one write.
type result struct {
	via        string
	start, end time.Time
	err        error // nil when the write was acknowledged with 201
}

// writer posts jobs with a short bound on each request.
type writer struct {
	o  options
	hc *http.Client
	tr *http.Transport
}

func newWriter(o options) *writer {
	tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	return &writer{o: o, tr: tr, hc: &http.Client{Transport: tr}}
}

func (w *writer) close() { w.tr.CloseIdleConnections() }

// loop writes through p every interval until ctx ends, sending each outcome
// to out without blocking (the reader only needs the first ones).
func (w *writer) loop(ctx context.Context, p *procs.Proc, round int, out chan<- result) {
	for i := 0; ctx.Err() == nil; i++ {
		start := time.Now()
		err := w.post(ctx, p.HTTPAddr, api.SubmitJob{Name: fmt.Sprintf("bench-r%d-%s-%d", round, p.ID, i), Parallelism: 1})
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- result{via: p.ID, start: start, end: time.Now(), err: err}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.o.interval):
		}
	}
}

// post submits a job and returns nil only for 201 Created. Errors are short
// categories, so that a round can count them.
func (w *writer) post(ctx context.Context, addr string, job api.SubmitJob) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.requestTimeout)
	defer cancel()
	body, _ := json.Marshal(job)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("request timeout (%s)", w.o.requestTimeout)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return errors.New("connection refused")
		}
		return errors.New("transport error")
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusCreated {
		return nil
	}
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return fmt.Errorf("%d %s", resp.StatusCode, e.Error.Code)
}

func report(samples []sample, allWait time.Duration) {
	var first, all []time.Duration
	missing := 0
	for _, s := range samples {
		first = append(first, s.took)
		if s.all >= 0 {
			all = append(all, s.all)
		} else {
			missing++
		}
	}
	fmt.Printf("\nkill to first acknowledged write, %d rounds: %s\n", len(first), stats(first))
	line := fmt.Sprintf("kill to a write acknowledged through both survivors: %s", stats(all))
	if missing > 0 {
		line += fmt.Sprintf("; in %d rounds not within %s of the first", missing, allWait)
	}
	fmt.Println(line)
}

func stats(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	r := func(x time.Duration) time.Duration { return x.Round(time.Millisecond) }
	return fmt.Sprintf("median %s, p90 %s, max %s (min %s)", r(median(d)), r(percentile(d, 0.9)), r(d[len(d)-1]), r(d[0]))
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile returns the nearest-rank percentile p (0 < p <= 1).
func percentile(sorted []time.Duration, p float64) time.Duration {
	k := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(k, 0)]
}
