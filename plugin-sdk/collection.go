package sdk

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
)

// FromSlice is a bounded source of the given records, split into one split
// per source subtask. It checkpoints its position, so a restored job resumes
// after the last record it emitted.
func FromSlice[T any](records []T) Source[T] {
	return &sliceSource[T]{records: records}
}

type sliceSource[T any] struct{ records []T }

// Split i of P holds records i, i+P, i+2P, ...; its state is (i, P, pos),
// so that it resumes correctly at any parallelism.
func (s *sliceSource[T]) Splits(_ context.Context, sc SourceContext) ([]Split, error) {
	p := sc.Parallelism()
	splits := make([]Split, p)
	for i := range p {
		splits[i] = Split{ID: fmt.Sprintf("slice-%d-of-%d", i, p), State: sliceState(i, p, 0)}
	}
	return splits, nil
}

func sliceState(start, every, pos int) []byte {
	b := binary.AppendUvarint(nil, uint64(start))
	b = binary.AppendUvarint(b, uint64(every))
	return binary.AppendUvarint(b, uint64(pos))
}

func (s *sliceSource[T]) Open(_ context.Context, _ SourceContext, splits []Split) (Reader[T], error) {
	r := &sliceReader[T]{records: s.records}
	for _, sp := range splits {
		var vals [3]uint64
		b := sp.State
		for i := range vals {
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("slice source: split %q: bad state", sp.ID)
			}
			vals[i], b = v, b[n:]
		}
		if vals[1] == 0 {
			return nil, fmt.Errorf("slice source: split %q: zero step", sp.ID)
		}
		r.splits = append(r.splits, sliceSplit{id: sp.ID, start: int(vals[0]), every: int(vals[1]), pos: int(vals[2])})
	}
	return r, nil
}

// sliceSplit reads records start, start+every, start+2*every, ...
type sliceSplit struct {
	id    string
	start int
	every int
	pos   int // records of this split emitted so far
}

type sliceReader[T any] struct {
	records []T
	splits  []sliceSplit
}

func (r *sliceReader[T]) Read(_ context.Context, out Collector[T]) (ReadStatus, error) {
	for i := range r.splits {
		sp := &r.splits[i]
		for n := 0; n < 256; n++ {
			idx := sp.start + sp.pos*sp.every
			if idx >= len(r.records) {
				break
			}
			out.Collect(r.records[idx])
			sp.pos++
		}
		if sp.start+sp.pos*sp.every < len(r.records) {
			return More, nil
		}
	}
	return Done, nil
}

func (r *sliceReader[T]) Snapshot() ([]Split, error) {
	out := make([]Split, len(r.splits))
	for i, sp := range r.splits {
		out[i] = Split{ID: sp.id, State: sliceState(sp.start, sp.every, sp.pos)}
	}
	return out, nil
}

func (r *sliceReader[T]) Close() error { return nil }

// Collected is a sink that keeps every record in memory, for tests and
// local runs. Records reports what every subtask received.
type Collected[T any] struct {
	mu      sync.Mutex
	records []T
}

// Collect returns a sink that collects records into memory.
func Collect[T any]() *Collected[T] { return &Collected[T]{} }

// Records returns a copy of the records collected so far.
func (c *Collected[T]) Records() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.records)
}

// Open implements Sink.
func (c *Collected[T]) Open(context.Context, SinkContext) (Writer[T], error) {
	return &collectWriter[T]{c: c}, nil
}

type collectWriter[T any] struct {
	c   *Collected[T]
	buf []T
}

func (w *collectWriter[T]) Write(_ context.Context, v T) error {
	w.buf = append(w.buf, v)
	if len(w.buf) >= 1024 {
		return w.Flush(context.Background())
	}
	return nil
}

func (w *collectWriter[T]) Flush(context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	w.c.mu.Lock()
	w.c.records = append(w.c.records, w.buf...)
	w.c.mu.Unlock()
	w.buf = w.buf[:0]
	return nil
}

func (w *collectWriter[T]) Close(ctx context.Context) error { return w.Flush(ctx) }
