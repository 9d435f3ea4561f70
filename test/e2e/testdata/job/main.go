// Command job is the job binary of the end-to-end tests. Its first argument
// picks the job:
//
//	stream [-n N] [-rate R] [-panic-at I] [-out DIR] [-exactly-once] [-checkpoint D]
//	        Generate(N) of the numbers i (unbounded when N < 0) at R records
//	        a second in total -> a Map that panics at record I -> KeyBy(i%16)
//	        -> Reduce (a running sum per key) -> a FileSink in DIR writing
//	        "key sum" lines (with -exactly-once an ExactlyOnceFileSink, DIR
//	        then a directory or an s3:// URL), or a sink that drops them;
//	        -checkpoint D checkpoints every D
//	nouid   stream, whose Reduce has no UID: the SDK refuses the graph
//
// The package variable variant, set with -ldflags "-X main.variant=V",
// changes the binary's content (and so its SHA-256) and nothing else: tests
// build variants to get artifacts no worker has cached.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

var variant string

type kv struct {
	K, V int64
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: job stream|nouid [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	n := fs.Int64("n", -1, "how many records; unbounded when negative")
	rate := fs.Float64("rate", 1000, "records per second over all source subtasks; 0: unlimited")
	panicAt := fs.Int64("panic-at", -1, "record at which the Map panics; negative: never")
	out := fs.String("out", "", "directory of the part files; empty: drop the records")
	exactlyOnce := fs.Bool("exactly-once", false, "write -out with the exactly-once file sink")
	every := fs.Duration("checkpoint", 0, "checkpoint interval; 0: no checkpoints")
	_ = fs.Parse(os.Args[2:])

	name := "e2e-" + mode
	if variant != "" {
		name += "-" + variant
	}
	job := sdk.NewJob(name)
	if *every > 0 {
		job.EnableCheckpointing(*every)
	}
	var opts []sdk.GenerateOption
	if *rate > 0 {
		opts = append(opts, sdk.RatePerSecond(*rate))
	}
	nums := sdk.FromSource(job, sdk.Generate(*n, func(i int64) int64 { return i }, opts...), sdk.WithUID("src"))
	checked := sdk.Map(nums, func(i int64) kv {
		if i == *panicAt {
			panic(fmt.Sprintf("boom at record %d", i))
		}
		return kv{K: i % 16, V: i}
	}, sdk.WithUID("check"))
	keyed := sdk.KeyBy(checked, func(r kv) int64 { return r.K })
	sum := func(a, b kv) kv { return kv{K: a.K, V: a.V + b.V} }
	var sums *sdk.Stream[kv]
	switch mode {
	case "stream":
		sums = sdk.Reduce(keyed, sum, sdk.WithUID("sum"))
	case "nouid":
		sums = sdk.Reduce(keyed, sum)
	default:
		fmt.Fprintf(os.Stderr, "unknown job %q\n", mode)
		os.Exit(2)
	}
	format := func(r kv) string { return fmt.Sprintf("%d %d", r.K, r.V) }
	switch {
	case *out != "" && *exactlyOnce:
		sdk.SinkTo(sums, sdk.ExactlyOnceFileSink(*out, format), sdk.WithUID("out"))
	case *out != "":
		sdk.SinkTo(sums, sdk.FileSink(*out, format), sdk.WithUID("out"))
	default:
		sdk.SinkTo(sums, discard{}, sdk.WithUID("out"))
	}
	sdk.Main(job)
}

// discard is a sink that drops its records.
type discard struct{}

func (discard) Open(context.Context, sdk.SinkContext) (sdk.Writer[kv], error) { return discard{}, nil }
func (discard) Write(context.Context, kv) error                               { return nil }
func (discard) Flush(context.Context) error                                   { return nil }
func (discard) Close(context.Context) error                                   { return nil }
