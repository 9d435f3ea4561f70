package sdk_test

import (
	"context"
	"sync"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// twoSplits reads a short split 0 (timestamps up to 1000, then done) and a
// long split 1 (timestamps up to 5000) in one reader.
type twoSplits struct{}

func (twoSplits) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "short"}, {ID: "long"}}, nil
}

func (twoSplits) Open(context.Context, sdk.SourceContext, []sdk.Split) (sdk.Reader[int64], error) {
	return &twoSplitsReader{}, nil
}

type twoSplitsReader struct{ short, long int64 }

func (r *twoSplitsReader) Read(_ context.Context, out sdk.Collector[int64]) (sdk.ReadStatus, error) {
	sc := out.(sdk.SplitCollector)
	if r.short < 1000 {
		sc.Split(0)
		r.short += 100
		out.Collect(r.short)
		if r.short == 1000 {
			sc.SplitDone(0)
		}
	}
	if r.long < 5000 {
		sc.Split(1)
		r.long += 100
		out.Collect(r.long)
		time.Sleep(time.Millisecond)
		return sdk.More, nil
	}
	return sdk.Done, nil
}
func (r *twoSplitsReader) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *twoSplitsReader) Close() error                   { return nil }

// TestFinishedSplitReleasesTheWatermark: once a split is done, the
// watermark follows the splits that go on, before the end of input.
func TestFinishedSplitReleasesTheWatermark(t *testing.T) {
	job := sdk.NewJob("splitdone")
	src := sdk.FromSource(job, twoSplits{}, sdk.WithUID("src"), sdk.WithParallelism(1),
		sdk.WithWatermarks(sdk.MonotonousTimestamps(func(v int64) int64 { return v })))
	var mu sync.Mutex
	highest := sdk.MinWatermark
	out := sdk.Process(sdk.KeyBy(src, func(int64) int { return 0 }),
		sdk.ProcessFunc[int, int64, int64](func(ctx sdk.KeyedContext[int], v int64, _ sdk.Collector[int64]) error {
			mu.Lock()
			defer mu.Unlock()
			if wm := ctx.TimerService().CurrentWatermark(); wm < sdk.MaxWatermark {
				highest = max(highest, wm)
			}
			return nil
		}), sdk.WithUID("p"), sdk.WithParallelism(2))
	sdk.SinkTo(out, sdk.Collect[int64]())
	if err := sdk.RunLocal(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Held at the finished split's 999 without SplitDone.
	if highest < 3000 {
		t.Fatalf("highest watermark seen before the end: %d; the finished split held it back", highest)
	}
}
