package nexmark

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// BlockSize is the number of consecutive events a source split emits
// before it skips the blocks of the other splits.
const BlockSize = 500

// readBatch is how many events a reader emits per Read.
const readBatch = 256

// Source returns a source of the events of cfg, in event order within
// each split. It has one split per source subtask; split k of P emits the
// blocks of BlockSize consecutive events k, k+P, k+2P, ..., so that all
// subtasks move through event time together, as nexmark-flink's parallel
// generators do, while every event stays the one the configuration
// defines whatever the parallelism. A split's state is the index of its
// next event, so a restored job emits every event exactly once, at any
// parallelism. With cfg.Events < 0 the source is unbounded.
//
// Give it its event time with WithWatermarks(Watermarks()), or use Events,
// which does.
func Source(cfg Config) sdk.Source[Event] { return &source{cfg: cfg} }

// Watermarks returns the watermark strategy of Flink's Nexmark DDL: event
// time is the event's dateTime, and the watermark trails it by 4 s.
func Watermarks() sdk.WatermarkStrategy[Event] {
	return sdk.BoundedOutOfOrderness(WatermarkDelay, Event.Time)
}

// Events adds the source of cfg's events to job, with Flink's watermarks
// and the UID "events" (opts come after and may override them).
func Events(job *sdk.Job, cfg Config, opts ...sdk.Option) *sdk.Stream[Event] {
	opts = append([]sdk.Option{sdk.WithUID("events"), sdk.WithWatermarks(Watermarks())}, opts...)
	return sdk.FromSource(job, Source(cfg), opts...)
}

type source struct{ cfg Config }

func (s *source) Splits(_ context.Context, sc sdk.SourceContext) ([]sdk.Split, error) {
	if err := s.cfg.Validate(); err != nil {
		return nil, err
	}
	p := int64(max(sc.Parallelism(), 1))
	var splits []sdk.Split
	for k := range p {
		st := splitState{next: k * BlockSize, block: BlockSize, parts: p}
		if s.cfg.Events >= 0 && st.next >= s.cfg.Events {
			break
		}
		splits = append(splits, sdk.Split{ID: fmt.Sprintf("nexmark-%d-of-%d", k, p), State: st.encode()})
	}
	return splits, nil
}

func (s *source) Open(_ context.Context, sc sdk.SourceContext, splits []sdk.Split) (sdk.Reader[Event], error) {
	g, err := NewGenerator(s.cfg)
	if err != nil {
		return nil, err
	}
	r := &reader{gen: g, n: s.cfg.Events}
	for _, sp := range splits {
		st, err := decodeSplitState(sp.State)
		if err != nil {
			return nil, fmt.Errorf("nexmark source: split %q: %w", sp.ID, err)
		}
		r.splits = append(r.splits, readerSplit{id: sp.ID, splitState: st})
	}
	if s.cfg.RateLimit > 0 {
		rate := s.cfg.RateLimit / float64(max(sc.Parallelism(), 1))
		r.limit = &limiter{rate: rate, burst: max(1, rate/10)}
	}
	return r, nil
}

// splitState is the position of a split: the next event index, and the
// blocks it reads (those whose index is congruent to its own modulo
// parts).
type splitState struct {
	next, block, parts int64
}

const splitVersion = 1

func (s splitState) encode() []byte {
	b := binary.AppendUvarint([]byte{splitVersion}, uint64(s.next))
	b = binary.AppendUvarint(b, uint64(s.block))
	return binary.AppendUvarint(b, uint64(s.parts))
}

var errBadSplit = errors.New("corrupt split state")

func decodeSplitState(b []byte) (splitState, error) {
	if len(b) == 0 {
		return splitState{}, errBadSplit
	}
	if b[0] != splitVersion {
		return splitState{}, fmt.Errorf("split state version %d: want %d", b[0], splitVersion)
	}
	b = b[1:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > math.MaxInt64 {
			return splitState{}, errBadSplit
		}
		vals[i], b = v, b[n:]
	}
	s := splitState{next: int64(vals[0]), block: int64(vals[1]), parts: int64(vals[2])}
	if len(b) != 0 || s.block < 1 || s.parts < 1 || s.block > math.MaxInt64/s.parts {
		return splitState{}, errBadSplit
	}
	return s, nil
}

type readerSplit struct {
	id string
	splitState
}

type reader struct {
	gen    *Generator
	n      int64 // events; negative: unbounded
	splits []readerSplit
	cur    int // the split the next Read starts with
	limit  *limiter
	e      Event
}

func (r *reader) done(sp *readerSplit) bool { return r.n >= 0 && sp.next >= r.n }

// Read emits up to readBatch events of one split, taking the splits in
// turn so that they advance in event time together.
func (r *reader) Read(_ context.Context, out sdk.Collector[Event]) (sdk.ReadStatus, error) {
	idx := -1
	for k := range r.splits {
		i := (r.cur + k) % len(r.splits)
		if !r.done(&r.splits[i]) {
			idx = i
			break
		}
	}
	if idx < 0 {
		return sdk.Done, nil
	}
	budget := int64(readBatch)
	if r.limit != nil {
		budget = r.limit.take(readBatch, time.Now())
		if budget == 0 {
			return sdk.Idle, nil
		}
	}
	if sc, ok := out.(sdk.SplitCollector); ok {
		sc.Split(idx)
	}
	sp := &r.splits[idx]
	stride := sp.block * (sp.parts - 1)
	for range budget {
		if r.done(sp) {
			break
		}
		r.gen.Fill(sp.next, &r.e)
		out.Collect(r.e)
		sp.next++
		if sp.next%sp.block == 0 {
			sp.next += stride
		}
	}
	if r.done(sp) {
		// A finished split must not hold the others' watermark back.
		if sc, ok := out.(sdk.SplitCollector); ok {
			sc.SplitDone(idx)
		}
	}
	r.cur = idx + 1
	return sdk.More, nil
}

func (r *reader) Snapshot() ([]sdk.Split, error) {
	out := make([]sdk.Split, len(r.splits))
	for i, sp := range r.splits {
		out[i] = sdk.Split{ID: sp.id, State: sp.encode()}
	}
	return out, nil
}

func (r *reader) Close() error { return nil }

// limiter is a token bucket: rate tokens a second, at most burst saved up.
// It starts with one token, so the first event goes out at once.
type limiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// take returns how many of want events may be emitted now, and spends
// their tokens.
func (l *limiter) take(want int64, now time.Time) int64 {
	if l.last.IsZero() {
		l.tokens = 1
	} else {
		l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.burst)
	}
	l.last = now
	n := min(int64(l.tokens), want)
	l.tokens -= float64(n)
	return n
}
