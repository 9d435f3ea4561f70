package sdk

import (
	"math"
	"time"
)

// Event time is in milliseconds since the Unix epoch, as in Flink.

// MinWatermark is the watermark before any event time has passed.
const MinWatermark int64 = math.MinInt64

// MaxWatermark is the watermark at the end of bounded input: every window
// and event-time timer fires.
const MaxWatermark int64 = math.MaxInt64

// WatermarkGenerator tracks the event time of one source split. Its
// methods are called from one goroutine.
type WatermarkGenerator interface {
	// OnEvent is told the timestamp of every record of the split.
	OnEvent(ts int64)
	// Watermark returns how far event time has progressed: no record with
	// a timestamp at or below it is expected any more. MinWatermark means
	// none yet.
	Watermark() int64
}

// WatermarkStrategy says how a source stamps its records with event time
// and generates watermarks, per split, so that one slow partition holds the
// watermark back and no fast one runs ahead of it.
type WatermarkStrategy[T any] struct {
	timestamp    func(T) int64
	newGenerator func() WatermarkGenerator
	idleness     time.Duration
}

// BoundedOutOfOrderness expects records up to maxDelay late: the
// watermark trails the highest timestamp seen by maxDelay (and 1 ms, as in
// Flink). timestamp returns a record's event time in milliseconds.
func BoundedOutOfOrderness[T any](maxDelay time.Duration, timestamp func(T) int64) WatermarkStrategy[T] {
	delay := maxDelay.Milliseconds()
	return WatermarkStrategy[T]{timestamp: timestamp, newGenerator: func() WatermarkGenerator {
		return &boundedGenerator{delay: delay, max: MinWatermark}
	}}
}

// MonotonousTimestamps expects timestamps that never decrease within a
// split: the watermark is the highest timestamp seen, minus 1 ms.
func MonotonousTimestamps[T any](timestamp func(T) int64) WatermarkStrategy[T] {
	return BoundedOutOfOrderness(0, timestamp)
}

// CustomWatermarks uses a watermark generator of your own, one per split.
func CustomWatermarks[T any](timestamp func(T) int64, generator func() WatermarkGenerator) WatermarkStrategy[T] {
	return WatermarkStrategy[T]{timestamp: timestamp, newGenerator: generator}
}

// WithIdleness marks a split idle when it has had no record for d: an idle
// split does not hold the watermark back until it has records again, so a
// quiet partition never stalls the job.
func (w WatermarkStrategy[T]) WithIdleness(d time.Duration) WatermarkStrategy[T] {
	w.idleness = d
	return w
}

type boundedGenerator struct {
	delay int64
	max   int64
}

func (g *boundedGenerator) OnEvent(ts int64) {
	if ts > g.max {
		g.max = ts
	}
}

func (g *boundedGenerator) Watermark() int64 {
	if g.max == MinWatermark {
		return MinWatermark
	}
	return g.max - g.delay - 1
}

// WithWatermarks gives a source its watermark strategy; records of a
// source without one have no timestamp.
func WithWatermarks[T any](w WatermarkStrategy[T]) Option {
	return func(o *options) { o.watermarks = w }
}

// SplitCollector is implemented by the collector a Reader is given. A
// reader that reads several splits calls Split with the index of the split
// (in the order Open received them) before emitting its records, so that
// watermarks are generated per split.
type SplitCollector interface {
	Split(index int)
	// SplitDone says split index has no more records: it no longer holds
	// the watermark back, while the reader's other splits go on.
	SplitDone(index int)
}
