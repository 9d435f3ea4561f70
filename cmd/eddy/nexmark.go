package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/nexmark"
	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

type nexmarkFlags struct {
	query    string
	p        int
	cores    int
	out      string
	cluster  bool
	artifact string
	cfg      nexmark.Config
}

func newNexmarkCmd(g *globals) *cobra.Command {
	f := nexmarkFlags{query: "q0", p: 1, cfg: nexmark.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "nexmark",
		Short: "Run a Nexmark benchmark query and print its throughput",
		Long: `Run one query of the Nexmark benchmark (` + strings.Join(nexmark.Names(), ", ") + `) over
--events generated auction events and print the throughput.

By default the query runs here, in this process, as sdk.RunLocal runs a job:
every operator at parallelism -p, on --cores cores (GOMAXPROCS; default -p,
at most the machine's CPUs). Results are counted and dropped, or written to
part files under --out. Throughput is events generated per second of the
run, and per core: divided by --cores.

With --cluster it runs the query on the cluster at --address instead, as
eddy run does: --artifact must name a built nexmark job binary, which this
command does not build:

  go build -o nexmark-job ./examples/nexmark
  eddy nexmark --cluster --artifact ./nexmark-job --query q5 -p 4

The cluster's throughput is measured from submission to the end of the job,
so it includes scheduling and starting the job's plugins: run enough events
for that to be small. --out then names a directory the workers write to.

The events are those of nexmark-flink's generator, made deterministically
(event i is the same at any parallelism). --rate is the event-time rate,
how far apart their timestamps are, 10 million per second by default as in
nexmark-flink's benchmark suite; --rate-limit bounds how fast they are made.`,
		Example: `  eddy nexmark --query q5 --events 1000000
  eddy nexmark --query q0 --events 10000000 -p 2
  eddy nexmark --query q7 --events 1000000 --out /tmp/q7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if f.cluster {
				return f.runCluster(cmd, g)
			}
			return f.runLocal(cmd)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.query, "query", f.query, "the query: "+strings.Join(nexmark.Names(), ", "))
	fl.IntVarP(&f.p, "parallelism", "p", f.p, "the parallelism of every operator")
	fl.IntVar(&f.cores, "cores", 0, "locally: the cores the run may use (GOMAXPROCS; default -p, at most the CPUs)")
	fl.StringVar(&f.out, "out", "", "write the results to part files in this directory (default: count and drop them)")
	fl.BoolVar(&f.cluster, "cluster", false, "run on the cluster at --address (needs --artifact)")
	fl.StringVar(&f.artifact, "artifact", "", "with --cluster: a nexmark job binary (go build -o nexmark-job ./examples/nexmark)")
	gfs := flag.NewFlagSet("nexmark", flag.ContinueOnError)
	f.cfg.RegisterFlags(gfs)
	fl.AddGoFlagSet(gfs)
	return cmd
}

func (f *nexmarkFlags) check() error {
	if _, ok := nexmark.Lookup(f.query); !ok {
		return fmt.Errorf("--query %q: want one of %s", f.query, strings.Join(nexmark.Names(), ", "))
	}
	if f.p < 1 {
		return fmt.Errorf("-p %d: want at least 1", f.p)
	}
	if f.cores < 0 {
		return fmt.Errorf("--cores %d: want at least 1", f.cores)
	}
	if f.cfg.Events < 0 {
		return errors.New("--events must not be negative: a benchmark needs an end")
	}
	if f.cluster && f.artifact == "" {
		return errors.New("--cluster needs --artifact, a built nexmark job binary: go build -o nexmark-job ./examples/nexmark")
	}
	if !f.cluster && f.artifact != "" {
		return errors.New("--artifact is for --cluster runs; a local run uses the queries built into eddy")
	}
	return f.cfg.Validate()
}

func (f *nexmarkFlags) runLocal(cmd *cobra.Command) error {
	q, _ := nexmark.Lookup(f.query)
	cores := f.cores
	if cores == 0 {
		cores = min(f.p, runtime.NumCPU())
	}
	job := sdk.NewJob("nexmark-" + q.Name)
	var results atomic.Int64
	q.AddTo(nexmark.Events(job, f.cfg), nexmark.Output{Dir: f.out, Count: &results})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cores))
	runtime.GC()
	start := time.Now()
	if err := sdk.RunLocal(cmd.Context(), job, sdk.LocalParallelism(f.p)); err != nil {
		return err
	}
	elapsed := time.Since(start)
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "nexmark %s (%s): %s events, p=%d on %s, locally\n", q.Name, q.Title, commas(float64(f.cfg.Events)), f.p, plural(cores, "core"))
	if f.out == "" {
		fmt.Fprintf(w, "  results:    %s (dropped)\n", commas(float64(results.Load())))
	} else {
		fmt.Fprintf(w, "  results:    written to %s\n", f.out)
	}
	printThroughput(w, f.cfg.Events, elapsed, cores)
	return nil
}

func (f *nexmarkFlags) runCluster(cmd *cobra.Command, g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	args := []string{
		"-query", f.query,
		"-events", strconv.FormatInt(f.cfg.Events, 10),
		"-rate", strconv.FormatFloat(f.cfg.EventRate, 'g', -1, 64),
		"-rate-limit", strconv.FormatFloat(f.cfg.RateLimit, 'g', -1, 64),
		"-generators", strconv.Itoa(f.cfg.NumGenerators),
		"-out-of-order", strconv.FormatInt(f.cfg.OutOfOrderGroupSize, 10),
		"-seed", strconv.FormatUint(f.cfg.Seed, 10),
	}
	if f.out != "" {
		args = append(args, "-out", f.out)
	}
	ctx := cmd.Context()
	start := time.Now()
	j, err := submitArtifact(ctx, c, f.artifact, args, runFlags{parallelism: f.p}, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "job %s submitted: %s, parallelism %d\n", j.ID, j.Name, j.Parallelism)
	if err := follow(ctx, c, j.ID, cmd.ErrOrStderr()); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "nexmark %s: %s events, p=%d, on the cluster at %s (job %s)\n", f.query, commas(float64(f.cfg.Events)), f.p, g.address, j.ID)
	printThroughput(w, f.cfg.Events, time.Since(start), f.p)
	fmt.Fprintln(w, "  (from submission to the end: includes uploading, scheduling and starting the plugins)")
	return nil
}

func printThroughput(w io.Writer, events int64, elapsed time.Duration, cores int) {
	rate := float64(events) / elapsed.Seconds()
	fmt.Fprintf(w, "  time:       %v\n", elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  throughput: %s events/s, %s events/s/core\n", commas(rate), commas(rate/float64(max(cores, 1))))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// commas formats v rounded to an integer with thousands separators.
func commas(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
