package sdk

import (
	"context"
	"sync"
	"testing"
	"time"
)

type idleSrc struct {
	dur   time.Duration
	burst int // records at start then idle; 0: continuous
}

func (s *idleSrc) Splits(context.Context, SourceContext) ([]Split, error) {
	return []Split{{ID: "0"}}, nil
}
func (s *idleSrc) Open(context.Context, SourceContext, []Split) (Reader[int64], error) {
	return &idleReader{s: s, start: time.Now()}, nil
}

type idleReader struct {
	s     *idleSrc
	start time.Time
	n     int64
}

func (r *idleReader) Read(_ context.Context, out Collector[int64]) (ReadStatus, error) {
	el := time.Since(r.start)
	if el > r.s.dur {
		return Done, nil
	}
	if r.s.burst > 0 {
		if r.n < int64(r.s.burst) {
			r.n++
			out.Collect(1000)
			return More, nil
		}
		return Idle, nil
	}
	out.Collect(el.Milliseconds() + 10000)
	time.Sleep(time.Millisecond)
	return More, nil
}
func (r *idleReader) Snapshot() ([]Split, error) { return nil, nil }
func (r *idleReader) Close() error               { return nil }

// TestTimerOutputKeepsIdleTaskIdle: a task whose inputs went idle stays
// idle when a processing-time window fires and emits; before, the emission
// made it active again with its old watermark, and a union downstream
// stopped advancing for good.
func TestTimerOutputKeepsIdleTaskIdle(t *testing.T) {
	const run = 3 * time.Second
	job := NewJob("idle").SetParallelism(1)
	ws := WithWatermarks(BoundedOutOfOrderness[int64](0, func(v int64) int64 { return v }).WithIdleness(20 * time.Millisecond))
	a := FromSource[int64](job, &idleSrc{dur: run, burst: 1}, ws, WithUID("a"))
	wa := WindowReduce(WindowBy(KeyBy(a, func(int64) int { return 0 }), ProcessingTimeSessionWindows(200*time.Millisecond)),
		func(x, y int64) int64 { return x }, WithUID("wa"), WithParallelism(2))
	ma := Map(wa, func(w Windowed[int, int64]) int64 { return -1 }, WithParallelism(2))
	b := FromSource[int64](job, &idleSrc{dur: run}, ws, WithUID("b"))
	var mu sync.Mutex
	var lags []int64
	out := Process(KeyBy(Union(ma, b), func(int64) int { return 0 }), ProcessFunc[int, int64, int64](func(ctx KeyedContext[int], v int64, o Collector[int64]) error {
		if v > 0 {
			mu.Lock()
			lags = append(lags, v-ctx.TimerService().CurrentWatermark())
			mu.Unlock()
		}
		return nil
	}), WithUID("p"))
	SinkTo(out, Collect[int64]())
	if err := RunLocal(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lags) < 100 {
		t.Fatalf("only %d records from the active source", len(lags))
	}
	// The stuck watermark made the lag grow with the run (seconds); a
	// working one trails by milliseconds. The bound is loose on purpose.
	if last := lags[len(lags)-1]; last > int64(run/time.Millisecond)/2 {
		t.Fatalf("the last record is %d ms ahead of the watermark: the watermark stopped", last)
	}
}
