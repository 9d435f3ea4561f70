package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// readBatch is how many records the built-in readers emit per Read.
const readBatch = 256

// Sequence is a bounded source of the numbers from to to, both included,
// as Flink's fromSequence. The range is cut into one contiguous split per
// source subtask; each split checkpoints the next number it will emit, so a
// restored job emits every number exactly once. An empty range (to < from)
// ends at once.
func Sequence(from, to int64) Source[int64] {
	return &progressionSource[int64]{name: "sequence", first: from, last: to, bounded: true, empty: to < from,
		gen: func(i int64) int64 { return i }}
}

// GenerateOption configures Generate.
type GenerateOption func(*generateConfig)

type generateConfig struct {
	rate float64 // records per second over all subtasks; 0: unlimited
}

// RatePerSecond limits a generated source to r records per second in
// total: each of its P subtasks emits at most r/P records per second. The
// limiter allows a burst of a tenth of a second's worth of records after a
// pause, never more.
func RatePerSecond(r float64) GenerateOption {
	return func(c *generateConfig) { c.rate = r }
}

// Generate is a source of the records gen(0), gen(1), ..., gen(n-1). It is
// bounded when n >= 0; n < 0 makes it unbounded (a job with such a source
// runs until it is cancelled). gen must depend on i alone, so that a
// restored job regenerates the same records: records are then emitted
// exactly once, each i by one subtask. The records of a bounded source
// are split into one contiguous range of i per source subtask; those of an
// unbounded one are dealt out, subtask k producing k, k+P, k+2P, ...
//
// gen is called from the source's subtasks concurrently, each on its own
// values of i.
func Generate[T any](n int64, gen func(i int64) T, opts ...GenerateOption) Source[T] {
	cfg := generateConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	return &progressionSource[T]{name: "generate", first: 0, last: n - 1, bounded: n >= 0, empty: n == 0,
		gen: gen, rate: cfg.rate}
}

// progressionSource emits gen(i) for the values i of arithmetic
// progressions: contiguous ranges of a bounded interval, or for an
// unbounded source one residue class per subtask.
type progressionSource[T any] struct {
	name        string
	first, last int64 // the values of i, both included, when bounded
	bounded     bool
	empty       bool
	gen         func(int64) T
	rate        float64
}

func (s *progressionSource[T]) Splits(_ context.Context, sc SourceContext) ([]Split, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	p := max(sc.Parallelism(), 1)
	var splits []Split
	if !s.bounded {
		for k := range p {
			sp := progression{next: int64(k), step: int64(p), unbounded: true}
			splits = append(splits, Split{ID: fmt.Sprintf("%s-%d-of-%d", s.name, k, p), State: sp.encode()})
		}
		return splits, nil
	}
	if s.empty {
		return nil, nil
	}
	for k, r := range splitRange(s.first, s.last, p) {
		sp := progression{next: r[0], last: r[1], step: 1}
		splits = append(splits, Split{ID: fmt.Sprintf("%s-%d", s.name, k), State: sp.encode()})
	}
	return splits, nil
}

func (s *progressionSource[T]) validate() error {
	if s.gen == nil {
		return fmt.Errorf("%s: nil generator function", s.name)
	}
	if s.rate < 0 || math.IsNaN(s.rate) || math.IsInf(s.rate, 0) {
		return fmt.Errorf("%s: rate %v records per second: want a positive number", s.name, s.rate)
	}
	return nil
}

func (s *progressionSource[T]) Open(_ context.Context, sc SourceContext, splits []Split) (Reader[T], error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	r := &progressionReader[T]{gen: s.gen}
	for _, sp := range splits {
		p, err := decodeProgression(sp.State)
		if err != nil {
			return nil, fmt.Errorf("%s: split %q: %w", s.name, sp.ID, err)
		}
		r.splits = append(r.splits, progressionSplit{id: sp.ID, progression: p})
	}
	if s.rate > 0 {
		perSubtask := s.rate / float64(max(sc.Parallelism(), 1))
		r.limit = &limiter{rate: perSubtask, burst: max(1, perSubtask/10)}
	}
	return r, nil
}

// splitRange cuts the interval [first, last] into at most parts contiguous
// ranges whose sizes differ by at most one. It works for any interval of
// int64, including the whole of it, whose size does not fit a uint64.
func splitRange(first, last int64, parts int) [][2]int64 {
	if parts <= 1 {
		return [][2]int64{{first, last}}
	}
	span := uint64(last) - uint64(first) // the size minus one
	n := uint64(parts)
	// size = q*n + r, computed without overflowing.
	q, r := span/n, span%n+1
	if r == n {
		q, r = q+1, 0
	}
	var out [][2]int64
	start := uint64(first)
	for k := range n {
		size := q
		if k < r {
			size++
		}
		if size == 0 {
			break
		}
		out = append(out, [2]int64{int64(start), int64(start + size - 1)})
		start += size
	}
	return out
}

// progression is the position of one split: the next value of i, the
// step to the one after, and the last value (when bounded). done is set
// once the last value was emitted: last may be math.MaxInt64, so that
// next cannot move past it.
type progression struct {
	next, last int64
	step       int64
	unbounded  bool
	done       bool
}

// progressionVersion is the first byte of a progression's split state.
const progressionVersion = 1

const (
	flagDone      = 1 << 0
	flagUnbounded = 1 << 1
)

func (p progression) encode() []byte {
	var flags byte
	if p.done {
		flags |= flagDone
	}
	if p.unbounded {
		flags |= flagUnbounded
	}
	b := []byte{progressionVersion, flags}
	b = binary.AppendVarint(b, p.next)
	b = binary.AppendVarint(b, p.last)
	return binary.AppendUvarint(b, uint64(p.step))
}

var errBadState = errors.New("corrupt split state")

func decodeProgression(b []byte) (progression, error) {
	if len(b) < 2 {
		return progression{}, errBadState
	}
	if b[0] != progressionVersion {
		return progression{}, fmt.Errorf("split state version %d: want %d", b[0], progressionVersion)
	}
	p := progression{done: b[1]&flagDone != 0, unbounded: b[1]&flagUnbounded != 0}
	b = b[2:]
	var n int
	if p.next, n = binary.Varint(b); n <= 0 {
		return progression{}, errBadState
	}
	b = b[n:]
	if p.last, n = binary.Varint(b); n <= 0 {
		return progression{}, errBadState
	}
	b = b[n:]
	step, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || step == 0 || step > math.MaxInt64 {
		return progression{}, errBadState
	}
	p.step = int64(step)
	if !p.unbounded && !p.done && p.next > p.last {
		return progression{}, errBadState
	}
	return p, nil
}

type progressionSplit struct {
	id string
	progression
}

type progressionReader[T any] struct {
	gen    func(int64) T
	splits []progressionSplit
	cur    int // the first split that is not done
	limit  *limiter
}

func (r *progressionReader[T]) Read(_ context.Context, out Collector[T]) (ReadStatus, error) {
	for r.cur < len(r.splits) && r.splits[r.cur].done {
		r.cur++
	}
	if r.cur == len(r.splits) {
		return Done, nil
	}
	budget := readBatch
	if r.limit != nil {
		budget = r.limit.take(readBatch, time.Now())
		if budget == 0 {
			return Idle, nil
		}
	}
	sp := &r.splits[r.cur]
	for range budget {
		out.Collect(r.gen(sp.next))
		// next <= last, so the difference fits a uint64 even when the
		// subtraction would overflow an int64.
		if !sp.unbounded && uint64(sp.last)-uint64(sp.next) < uint64(sp.step) {
			sp.done = true
			break
		}
		sp.next += sp.step
	}
	return More, nil
}

func (r *progressionReader[T]) Snapshot() ([]Split, error) {
	out := make([]Split, len(r.splits))
	for i, sp := range r.splits {
		out[i] = Split{ID: sp.id, State: sp.encode()}
	}
	return out, nil
}

func (r *progressionReader[T]) Close() error { return nil }

// limiter is a token bucket: rate tokens a second, at most burst saved up.
// It starts with one token, so the first record goes out at once.
type limiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// take returns how many of want records may be emitted now, and spends
// their tokens.
func (l *limiter) take(want int, now time.Time) int {
	if l.last.IsZero() {
		l.tokens = 1
	} else {
		l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.burst)
	}
	l.last = now
	n := min(int(l.tokens), want)
	l.tokens -= float64(n)
	return n
}
