package sdk_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// busySource emits one record per read, never idle, and records whether it
// has finished.
type busySource struct {
	n    int
	done *atomic.Bool
}

func (s busySource) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "0"}}, nil
}

func (s busySource) Open(context.Context, sdk.SourceContext, []sdk.Split) (sdk.Reader[int], error) {
	return &busyReader{s: s}, nil
}

type busyReader struct {
	s busySource
	i int
}

func (r *busyReader) Read(_ context.Context, out sdk.Collector[int]) (sdk.ReadStatus, error) {
	if r.i == r.s.n {
		r.s.done.Store(true)
		return sdk.Done, nil
	}
	time.Sleep(10 * time.Millisecond)
	out.Collect(r.i)
	r.i++
	return sdk.More, nil
}
func (r *busyReader) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *busyReader) Close() error                   { return nil }

// earlySink counts the records that arrive before the source finished.
type earlySink struct {
	done  *atomic.Bool
	early *atomic.Int64
}

func (s earlySink) Open(context.Context, sdk.SinkContext) (sdk.Writer[int], error) { return s, nil }
func (s earlySink) Write(context.Context, int) error {
	if !s.done.Load() {
		s.early.Add(1)
	}
	return nil
}
func (s earlySink) Flush(context.Context) error { return nil }
func (s earlySink) Close(context.Context) error { return nil }

// TestBufferTimeoutBoundsLatency: a busy source's records leave their batch
// within the buffer timeout, not only when the batch is full or the input
// ends.
func TestBufferTimeoutBoundsLatency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		early   bool
	}{
		{"default", 0, true},
		{"an hour", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done atomic.Bool
			var early atomic.Int64
			job := sdk.NewJob("latency")
			if tc.timeout > 0 {
				job.SetBufferTimeout(tc.timeout)
			}
			src := sdk.FromSource(job, busySource{n: 30, done: &done}, sdk.WithParallelism(1), sdk.WithUID("source"))
			// Broadcast to two instances: records cross the exchange in batches.
			sdk.SinkTo(sdk.Broadcast(src), earlySink{&done, &early}, sdk.WithParallelism(2))
			if err := sdk.RunLocal(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			if got := early.Load() > 0; got != tc.early {
				t.Fatalf("records delivered while the source ran: %d; want some: %v", early.Load(), tc.early)
			}
		})
	}
}
