// Command counts is the job of the end-to-end savepoint tests: it counts
// records per key, keeping the counts in keyed state, and writes them
// through the exactly-once file sink. Its first argument picks a version of
// the job, as a user would change its code between a savepoint and a
// restore:
//
//	v1       Generate(N) of i -> KeyBy(i % K) -> count (value state "count")
//	         -> "k=<key> count=<n>" lines
//	v2       v1 with an extra operator before the key-by (uid "tag") and
//	         another output format, "v2 <key> <n>"; the same UIDs otherwise,
//	         so it restores v1's counts and sources
//	badtype  the count operator keeps its "count" state as another type,
//	         which v1's state cannot be read as
//	nocount  the counts are not kept (no "count" operator): a savepoint of
//	         v1 holds state this version has no operator for
//
// Flags: -n N (records, unbounded when negative), -rate R (records a second
// over all source subtasks), -keys K, -out URL (a directory or s3:// URL),
// -checkpoint D (checkpoint interval, 0: none), -max-parallelism M.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// kc is a key and its count.
type kc struct{ K, C int64 }

// wide is a state type v1's counts cannot be decoded as.
type wide struct{ A, B, C, D float64 }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: counts v1|v2|badtype|nocount [flags]")
		os.Exit(2)
	}
	version := os.Args[1]
	fs := flag.NewFlagSet(version, flag.ExitOnError)
	n := fs.Int64("n", -1, "how many records; unbounded when negative")
	rate := fs.Float64("rate", 500, "records per second over all source subtasks; 0: unlimited")
	keys := fs.Int64("keys", 32, "distinct keys")
	out := fs.String("out", "", "where the exactly-once file sink writes (directory or s3:// URL)")
	every := fs.Duration("checkpoint", 500*time.Millisecond, "checkpoint interval; 0: no checkpoints")
	maxP := fs.Int("max-parallelism", 0, "max parallelism (key groups); 0: the default")
	_ = fs.Parse(os.Args[2:])
	if *out == "" {
		fmt.Fprintln(os.Stderr, "counts: -out is required")
		os.Exit(2)
	}

	job := sdk.NewJob("counts")
	if *every > 0 {
		job.EnableCheckpointing(*every)
	}
	if *maxP > 0 {
		job.SetMaxParallelism(*maxP)
	}
	var opts []sdk.GenerateOption
	if *rate > 0 {
		opts = append(opts, sdk.RatePerSecond(*rate))
	}
	nums := sdk.FromSource(job, sdk.Generate(*n, func(i int64) int64 { return i }, opts...), sdk.WithUID("src"))
	k := *keys
	switch version {
	case "v1", "badtype":
		counts := sdk.Process(sdk.KeyBy(nums, func(i int64) int64 { return i % k }), counter(version == "badtype"), sdk.WithUID("count"))
		sdk.SinkTo(counts, sdk.ExactlyOnceFileSink(*out, func(c kc) string { return fmt.Sprintf("k=%d count=%d", c.K, c.C) }), sdk.WithUID("out"))
	case "v2":
		tagged := sdk.Map(nums, func(i int64) int64 { return i }, sdk.WithUID("tag"))
		counts := sdk.Process(sdk.KeyBy(tagged, func(i int64) int64 { return i % k }), counter(false), sdk.WithUID("count"))
		sdk.SinkTo(counts, sdk.ExactlyOnceFileSink(*out, func(c kc) string { return fmt.Sprintf("v2 %d %d", c.K, c.C) }), sdk.WithUID("out"))
	case "nocount":
		ones := sdk.Map(nums, func(i int64) kc { return kc{K: i % k, C: 1} }, sdk.WithUID("ones"))
		sdk.SinkTo(ones, sdk.ExactlyOnceFileSink(*out, func(c kc) string { return fmt.Sprintf("k=%d one", c.K) }), sdk.WithUID("out"))
	default:
		fmt.Fprintf(os.Stderr, "counts: unknown version %q\n", version)
		os.Exit(2)
	}
	sdk.Main(job)
}

// counter counts the records of each key in value state "count" (of another
// type with wrongType) and emits the key's count after each record.
func counter(wrongType bool) sdk.KeyedProcessFunction[int64, int64, kc] {
	if wrongType {
		return &wideCounter{}
	}
	return &countFn{}
}

type countFn struct{ count sdk.ValueState[int64] }

func (f *countFn) Open(ctx sdk.RuntimeContext) error {
	f.count = sdk.NewValueState[int64](ctx, "count")
	return nil
}

func (f *countFn) ProcessElement(ctx sdk.KeyedContext[int64], _ int64, out sdk.Collector[kc]) error {
	c, _ := f.count.Value()
	c++
	f.count.Update(c)
	out.Collect(kc{K: ctx.Key(), C: c})
	return nil
}

type wideCounter struct{ count sdk.ValueState[wide] }

func (f *wideCounter) Open(ctx sdk.RuntimeContext) error {
	f.count = sdk.NewValueState[wide](ctx, "count")
	return nil
}

func (f *wideCounter) ProcessElement(ctx sdk.KeyedContext[int64], _ int64, out sdk.Collector[kc]) error {
	w, _ := f.count.Value()
	w.A++
	f.count.Update(w)
	out.Collect(kc{K: ctx.Key(), C: int64(w.A)})
	return nil
}
