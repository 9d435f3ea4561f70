package sdk_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// countingSource emits 1 KiB records without end, counting them.
type countingSource struct{ emitted *atomic.Int64 }

func (s countingSource) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "all"}}, nil
}

func (s countingSource) Open(context.Context, sdk.SourceContext, []sdk.Split) (sdk.Reader[string], error) {
	return &countingReader{s.emitted, strings.Repeat("x", 1024)}, nil
}

type countingReader struct {
	emitted *atomic.Int64
	rec     string
}

func (r *countingReader) Read(_ context.Context, out sdk.Collector[string]) (sdk.ReadStatus, error) {
	for range 16 {
		out.Collect(r.rec)
		r.emitted.Add(1)
	}
	return sdk.More, nil
}
func (r *countingReader) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *countingReader) Close() error                   { return nil }

// slowSink takes a millisecond per record.
type slowSink struct{ consumed *atomic.Int64 }

func (s slowSink) Open(context.Context, sdk.SinkContext) (sdk.Writer[string], error) { return s, nil }
func (s slowSink) Write(context.Context, string) error {
	time.Sleep(time.Millisecond)
	s.consumed.Add(1)
	return nil
}
func (s slowSink) Flush(context.Context) error { return nil }
func (s slowSink) Close(context.Context) error { return nil }

// TestSlowSinkHoldsTheSourceBack checks credit-based flow control end to
// end: however long a fast source runs ahead of a slow sink, the records in
// flight stay within what the channels' credits allow.
func TestSlowSinkHoldsTheSourceBack(t *testing.T) {
	var emitted, consumed atomic.Int64
	job := sdk.NewJob("backpressure")
	src := sdk.FromSource(job, countingSource{&emitted}, sdk.WithParallelism(1), sdk.WithUID("source"))
	sdk.SinkTo(sdk.Rebalance(src), slowSink{&consumed}, sdk.WithParallelism(2))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.RunLocal(ctx, job) }()

	// Per channel: the credits, the batch being filled and the batch being
	// written. A batch holds BatchSize / ~1 KiB records; two channels.
	perBatch := int64(engine.BatchSize/1024 + 1)
	bound := 2 * int64(engine.Credits+2) * perBatch
	worst := int64(0)
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		ahead := emitted.Load() - consumed.Load()
		worst = max(worst, ahead)
		if ahead > bound {
			cancel()
			err := <-done
			t.Fatalf("source ran %d records ahead of the sink; flow control allows %d (job ended with %v)", ahead, bound, err)
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("an endless job ended without error when cancelled")
	}
	if consumed.Load() == 0 || emitted.Load() <= consumed.Load() {
		t.Fatalf("no back-pressure situation: emitted %d, consumed %d", emitted.Load(), consumed.Load())
	}
	t.Logf("emitted %d, consumed %d, at most %d ahead (bound %d)", emitted.Load(), consumed.Load(), worst, bound)
}
