// Command job is the job binary of the worker's tests. Its first argument
// picks the job:
//
//	sum N DIR     FromSlice(1..N) -> Map -> KeyBy -> Reduce -> a sink that
//	              writes each key's final sum to DIR/sum-<subtask>.txt
//	slow N DIR    sum, with a source that takes about 2ms per record
//	panic N AT    sum, whose Map panics at record AT
//	endless       a source that never ends -> Map -> a sink
//	crash AT      endless, whose Map starts a goroutine that panics at AT
//	env NAME DIR  writes the value of the environment variable NAME, as the
//	              plugin process sees it, to DIR/env.txt
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

type kv struct {
	K, V int
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: job sum|slow|panic|endless|crash ...")
		os.Exit(2)
	}
	job := sdk.NewJob(os.Args[1])
	switch os.Args[1] {
	case "sum", "slow":
		n, dir := atoi(2), arg(3)
		var src sdk.Source[int] = sdk.FromSlice(seq(n))
		if os.Args[1] == "slow" {
			src = slowSource{n: n}
		}
		sumJob(job, src, -1, dir)
	case "panic":
		sumJob(job, sdk.FromSlice(seq(atoi(2))), atoi(3), "")
	case "endless":
		endlessJob(job, -1)
	case "crash":
		endlessJob(job, atoi(2))
	case "env":
		name, dir := arg(2), arg(3)
		sdk.SinkTo(sdk.FromSource(job, sdk.FromSlice([]int{1}), sdk.WithUID("src")), envSink{name: name, dir: dir},
			sdk.WithUID("out"), sdk.WithParallelism(1))
	default:
		fmt.Fprintf(os.Stderr, "unknown job %q\n", os.Args[1])
		os.Exit(2)
	}
	sdk.Main(job)
}

func arg(i int) string {
	if i >= len(os.Args) {
		fmt.Fprintf(os.Stderr, "%s: argument %d is missing\n", os.Args[1], i)
		os.Exit(2)
	}
	return os.Args[i]
}

func atoi(i int) int {
	n, err := strconv.Atoi(arg(i))
	if err != nil {
		fmt.Fprintf(os.Stderr, "argument %d: %v\n", i, err)
		os.Exit(2)
	}
	return n
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func sumJob(job *sdk.Job, src sdk.Source[int], panicAt int, dir string) {
	nums := sdk.FromSource(job, src, sdk.WithUID("src"))
	pairs := sdk.Map(nums, func(x int) kv {
		if x == panicAt {
			panic(fmt.Sprintf("boom at record %d", x))
		}
		return kv{K: x % 7, V: x}
	}, sdk.WithUID("pair"))
	sums := sdk.Reduce(sdk.KeyBy(pairs, func(r kv) int { return r.K }),
		func(a, b kv) kv { return kv{K: a.K, V: a.V + b.V} }, sdk.WithUID("sum"))
	sdk.SinkTo(sums, fileSink{dir: dir}, sdk.WithUID("out"))
}

// fileSink keeps the last value of every key and writes them at the end.
type fileSink struct{ dir string }

func (s fileSink) Open(_ context.Context, sc sdk.SinkContext) (sdk.Writer[kv], error) {
	return &fileWriter{dir: s.dir, subtask: sc.Subtask(), last: map[int]int{}}, nil
}

type fileWriter struct {
	dir     string
	subtask int
	last    map[int]int
}

func (w *fileWriter) Write(_ context.Context, v kv) error {
	w.last[v.K] = v.V
	return nil
}

func (w *fileWriter) Flush(context.Context) error { return nil }

func (w *fileWriter) Close(context.Context) error {
	if w.dir == "" {
		return nil
	}
	keys := make([]int, 0, len(w.last))
	for k := range w.last {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var b []byte
	for _, k := range keys {
		b = fmt.Appendf(b, "%d %d\n", k, w.last[k])
	}
	return os.WriteFile(filepath.Join(w.dir, fmt.Sprintf("sum-%d.txt", w.subtask)), b, 0o644)
}

// slowSource emits 1..n, one record about every 2ms, split over the
// source's subtasks.
type slowSource struct{ n int }

func (s slowSource) Splits(_ context.Context, sc sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "all"}}, nil
}

func (s slowSource) Open(_ context.Context, sc sdk.SourceContext, splits []sdk.Split) (sdk.Reader[int], error) {
	r := &counter{next: 1, limit: 0}
	if len(splits) > 0 {
		r.limit = s.n
	}
	r.delay = 2 * time.Millisecond
	return r, nil
}

// counter emits next, next+1, ... up to limit (forever if limit < 0).
type counter struct {
	next, limit int
	delay       time.Duration
}

func (c *counter) Read(ctx context.Context, out sdk.Collector[int]) (sdk.ReadStatus, error) {
	if c.limit >= 0 && c.next > c.limit {
		return sdk.Done, nil
	}
	out.Collect(c.next)
	c.next++
	if c.delay > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(c.delay):
		}
		return sdk.More, nil
	}
	return sdk.Idle, nil
}

func (c *counter) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (c *counter) Close() error                   { return nil }

// endlessSource emits forever.
type endlessSource struct{}

func (endlessSource) Splits(_ context.Context, sc sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "all"}}, nil
}

func (endlessSource) Open(context.Context, sdk.SourceContext, []sdk.Split) (sdk.Reader[int], error) {
	return &counter{next: 1, limit: -1}, nil
}

func endlessJob(job *sdk.Job, crashAt int) {
	nums := sdk.FromSource[int](job, endlessSource{}, sdk.WithUID("src"))
	doubled := sdk.Map(nums, func(x int) int {
		if x == 1 {
			slog.Warn("first record", "x", x)
			fmt.Println("hello from stdout")
		}
		if x == crashAt {
			// A goroutine the SDK did not start: its panic ends the process.
			go panic(fmt.Sprintf("crash outside the sdk at record %d", x))
		}
		return 2 * x
	})
	sdk.SinkTo(sdk.Rebalance(doubled), discard{}, sdk.WithUID("out"), sdk.WithParallelism(1))
}

type discard struct{}

func (discard) Open(context.Context, sdk.SinkContext) (sdk.Writer[int], error) { return discard{}, nil }
func (discard) Write(context.Context, int) error                               { return nil }
func (discard) Flush(context.Context) error                                    { return nil }
func (discard) Close(context.Context) error                                    { return nil }

// envSink writes an environment variable's value when it opens.
type envSink struct{ name, dir string }

func (s envSink) Open(context.Context, sdk.SinkContext) (sdk.Writer[int], error) {
	return discard{}, os.WriteFile(filepath.Join(s.dir, "env.txt"), []byte(os.Getenv(s.name)), 0o644)
}
