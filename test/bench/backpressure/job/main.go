// Command job is the job that test/bench/backpressure runs on a local
// cluster: an unbounded source that generates records of about -size bytes
// as fast as it can, a Rebalance, so that records cross an exchange (half of
// them to the other plugin process at parallelism 2), and a sink that
// sleeps -sleep after every -every records. Every plugin process prints,
// once a second, how many records its source subtasks produced and its
// sink subtasks consumed:
//
//	progress pid=1234 elapsed=3s produced=81920 consumed=6012
//
// It runs until it is cancelled.
//
//	go build -o /tmp/bpjob ./test/bench/backpressure/job
//	eddy local --workers 2 --run /tmp/bpjob -p 2 -- -sleep 1ms
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// Record is what the source generates: a sequence number and a payload
// that makes the encoded record about -size bytes long.
type Record struct {
	Seq     int64
	Payload string
}

// The counters of this process, printed every second once a sink opened.
var (
	produced, consumed atomic.Int64
	reportOnce         sync.Once
)

func main() {
	fs := flag.NewFlagSet("job", flag.ExitOnError)
	size := fs.Int("size", 200, "approximate encoded size of a record in bytes")
	sleep := fs.Duration("sleep", time.Millisecond, "how long the sink sleeps after every -every records (0: not at all)")
	every := fs.Int("every", 1, "the sink sleeps after this many records")
	_ = fs.Parse(os.Args[1:])
	if *size < 16 || *every < 1 || *sleep < 0 {
		fmt.Fprintln(os.Stderr, "job: -size must be at least 16, -every positive, -sleep not negative")
		os.Exit(2)
	}

	// The sequence number takes up to 9 bytes and the payload's length 2.
	payload := strings.Repeat("x", *size-11)
	job := sdk.NewJob("backpressure")
	records := sdk.FromSource(job, sdk.Generate(-1, func(i int64) Record {
		produced.Add(1)
		return Record{Seq: i, Payload: payload}
	}), sdk.WithUID("records"))
	sdk.SinkTo(sdk.Rebalance(records), slowSink{sleep: *sleep, every: *every}, sdk.WithUID("slow"))
	sdk.Main(job)
}

// slowSink counts records and sleeps after every few of them.
type slowSink struct {
	sleep time.Duration
	every int
}

func (s slowSink) Open(context.Context, sdk.SinkContext) (sdk.Writer[Record], error) {
	// The reporter starts with the first sink, so that a run that only
	// describes the job (EDDY_DESCRIBE) prints nothing but the graph.
	reportOnce.Do(func() { go report(time.Now()) })
	return &slowWriter{slowSink: s}, nil
}

type slowWriter struct {
	slowSink
	n int
}

func (w *slowWriter) Write(ctx context.Context, _ Record) error {
	consumed.Add(1)
	w.n++
	if w.sleep > 0 && w.n%w.every == 0 {
		select {
		case <-time.After(w.sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (w *slowWriter) Flush(context.Context) error { return nil }
func (w *slowWriter) Close(context.Context) error { return nil }

// report prints this process's counters every second until it exits.
func report(start time.Time) {
	pid := os.Getpid()
	for range time.Tick(time.Second) {
		fmt.Printf("progress pid=%d elapsed=%s produced=%d consumed=%d\n",
			pid, time.Since(start).Round(time.Second), produced.Load(), consumed.Load())
	}
}
