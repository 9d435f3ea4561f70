package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// Environment variables through which eddy tells a job binary what to do.
const (
	// EnvDescribe set to "1" makes Main print the job graph as JSON and exit.
	EnvDescribe = "EDDY_DESCRIBE"
	// EnvParallelism sets the default parallelism when describing or
	// running locally.
	EnvParallelism = "EDDY_PARALLELISM"
)

// Main runs job the way the process was asked to: as a worker's plugin, as
// a description of its graph for the CLI, or, run directly, as a complete
// local execution. It does not return; it exits with status 1 on failure.
func Main(job *Job) {
	if servingPlugin() {
		// The worker manages the plugin's life; it must not catch signals.
		if err := servePlugin(job); err != nil {
			fmt.Fprintf(os.Stderr, "eddy job %s: %v\n", job.name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, job)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "eddy job %s: %v\n", job.name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func run(ctx context.Context, job *Job) error {
	p, err := parallelismFromEnv()
	if err != nil {
		return err
	}
	switch {
	case servingPlugin():
		return servePlugin(job)
	case os.Getenv(EnvDescribe) == "1":
		b, err := Describe(job, p)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	default:
		return RunLocal(ctx, job, LocalParallelism(p))
	}
}

func parallelismFromEnv() (int, error) {
	s := os.Getenv(EnvParallelism)
	if s == "" {
		return 0, nil
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number", EnvParallelism, s)
	}
	return p, nil
}

// Describe returns the job graph, resolved for the default parallelism p
// (0: the job's own, SetParallelism, or 1), as the JSON the eddy CLI
// submits.
func Describe(job *Job, p int) ([]byte, error) {
	if p < 1 {
		p = max(job.parallelism, 1)
	}
	plan, err := job.plan(p)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(job.graph(plan))
}

// LocalOption configures RunLocal.
type LocalOption func(*localConfig)

type localConfig struct {
	parallelism int
}

// LocalParallelism sets the default parallelism of a local run; 0 means
// the job's own (SetParallelism), or else the number of CPUs.
func LocalParallelism(p int) LocalOption { return func(c *localConfig) { c.parallelism = p } }

// RunLocal executes the whole job in this process, every task in its own
// goroutine, and returns when the job finishes, fails or ctx ends.
func RunLocal(ctx context.Context, job *Job, opts ...LocalOption) error {
	cfg := localConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.parallelism < 1 {
		cfg.parallelism = job.parallelism
	}
	if cfg.parallelism < 1 {
		cfg.parallelism = runtime.NumCPU()
	}
	plan, err := job.plan(cfg.parallelism)
	if err != nil {
		return err
	}
	x := &engine.Executor{Plan: plan, JobID: "local", Attempt: 1, Exchange: engine.NewLocalExchange()}
	var tasks []engine.TaskKey
	for _, c := range plan.Chains {
		for s := range c.Parallelism {
			tasks = append(tasks, engine.TaskKey{JobID: "local", Attempt: 1, Chain: c.ID, Subtask: s})
		}
	}
	err = x.Run(ctx, tasks)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("job %s cancelled", job.name)
	}
	return err
}
