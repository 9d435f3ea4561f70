// Command keyedcount is a throughput benchmark job: it generates n records
// over -keys distinct keys (100,000 by default), keys them, keeps a count per key and discards
// the results, each sink subtask printing how many records it received.
// Every record crosses one keyed exchange and updates keyed state. With
// -checkpoint D the job checkpoints every D (the counts and the source's
// position), so that it measures what checkpoints cost.
//
//	go run ./examples/keyedcount -n 1000000
//	eddy run -p 4 ./keyedcount -- -n 100000000 -checkpoint 1s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// KeyCount is a key and the number of its records counted so far.
type KeyCount struct {
	Key   int64
	Count int64
}

// stride is the distance between the keys of consecutive records: a prime,
// so that with any number of keys it is not a multiple of, the keys of
// consecutive records are far apart and every key comes up once in every
// -keys records.
const stride = 7919

func main() {
	fs := flag.NewFlagSet("keyedcount", flag.ExitOnError)
	n := fs.Int64("n", 1_000_000, "how many records to generate (negative: without end)")
	rate := fs.Float64("rate", 0, "records per second over all source subtasks (0: as fast as possible)")
	every := fs.Duration("checkpoint", 0, "checkpoint interval (0: no checkpoints)")
	keys := fs.Int64("keys", 100_000, "how many distinct keys (not a multiple of 7919)")
	_ = fs.Parse(os.Args[1:])
	if *keys <= 0 || *keys%stride == 0 {
		fmt.Fprintf(os.Stderr, "keyedcount: -keys %d: want a positive number that is not a multiple of %d\n", *keys, stride)
		os.Exit(2)
	}
	k := *keys

	var opts []sdk.GenerateOption
	if *rate > 0 {
		opts = append(opts, sdk.RatePerSecond(*rate))
	}
	job := sdk.NewJob("keyedcount")
	if *every > 0 {
		job.EnableCheckpointing(*every)
	}
	records := sdk.FromSource(job, sdk.Generate(*n, func(i int64) KeyCount {
		return KeyCount{Key: i * stride % k, Count: 1}
	}, opts...), sdk.WithUID("records"))
	counts := sdk.Reduce(sdk.KeyBy(records, func(r KeyCount) int64 { return r.Key }),
		func(acc, r KeyCount) KeyCount { return KeyCount{Key: acc.Key, Count: acc.Count + r.Count} },
		sdk.WithUID("count"))
	sdk.SinkTo(counts, discard{}, sdk.WithUID("discard"))
	sdk.Main(job)
}

// discard is a sink that drops records, counting them.
type discard struct{}

func (discard) Open(_ context.Context, sc sdk.SinkContext) (sdk.Writer[KeyCount], error) {
	return &counter{subtask: sc.Subtask(), start: time.Now()}, nil
}

// counter is one subtask's writer of discard.
type counter struct {
	subtask int
	start   time.Time
	n       int64
}

func (c *counter) Write(context.Context, KeyCount) error {
	c.n++
	return nil
}

func (c *counter) Flush(context.Context) error { return nil }

func (c *counter) Close(context.Context) error {
	d := time.Since(c.start)
	fmt.Printf("subtask %d: %d records in %v (%.0f records/s)\n", c.subtask, c.n, d.Round(time.Millisecond),
		float64(c.n)/d.Seconds())
	return nil
}
