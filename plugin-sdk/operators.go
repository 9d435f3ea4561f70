package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// edge is how a consumer reads s: forward unless s was repartitioned.
func (s *Stream[T]) edge() engine.Edge {
	e := forward(s)
	if s.part != nil {
		e = *s.part
	}
	e.Side = s.side
	return e
}

// Rebalance spreads the records of s round robin over the next operator's
// parallel instances, evening out skew.
func Rebalance[T any](s *Stream[T]) *Stream[T] {
	c := *s
	c.part = &engine.Edge{From: s.v, Partitioning: pluginpb.Partitioning_PARTITIONING_REBALANCE, Side: s.side}
	return &c
}

// Broadcast sends every record of s to every parallel instance of the next
// operator.
func Broadcast[T any](s *Stream[T]) *Stream[T] {
	c := *s
	c.part = &engine.Edge{From: s.v, Partitioning: pluginpb.Partitioning_PARTITIONING_BROADCAST, Side: s.side}
	return &c
}

// Map applies f to every record.
func Map[IN, OUT any](s *Stream[IN], f func(IN) OUT, opts ...Option) *Stream[OUT] {
	return add[OUT](s.job, kindMap, false, []engine.Edge{s.edge()}, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			return &engine.Operator{Inputs: []any{engine.Output[IN](&mapOp[IN, OUT]{f: f, out: out.(engine.Output[OUT])})}}, nil
		})
}

type mapOp[IN, OUT any] struct {
	f   func(IN) OUT
	out engine.Output[OUT]
}

func (m *mapOp[IN, OUT]) Process(v IN, ts int64) error { return m.out.Process(m.f(v), ts) }
func (m *mapOp[IN, OUT]) Watermark(ts int64) error     { return m.out.Watermark(ts) }
func (m *mapOp[IN, OUT]) End() error                   { return m.out.End() }

// FlatMap calls f for every record; f emits zero or more records to out.
func FlatMap[IN, OUT any](s *Stream[IN], f func(in IN, out Collector[OUT]), opts ...Option) *Stream[OUT] {
	return add[OUT](s.job, kindFlatMap, false, []engine.Edge{s.edge()}, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			return &engine.Operator{Inputs: []any{engine.Output[IN](&flatMapOp[IN, OUT]{f: f, c: collector[OUT]{out: out.(engine.Output[OUT])}})}}, nil
		})
}

// collector passes records on with the timestamp of the record being
// processed, keeping the first error for the caller.
type collector[T any] struct {
	out engine.Output[T]
	ts  int64
	err error
}

func (c *collector[T]) Collect(v T) {
	if c.err == nil {
		c.err = c.out.Process(v, c.ts)
	}
}

func (c *collector[T]) take() error {
	err := c.err
	c.err = nil
	return err
}

type flatMapOp[IN, OUT any] struct {
	f func(IN, Collector[OUT])
	c collector[OUT]
}

func (m *flatMapOp[IN, OUT]) Process(v IN, ts int64) error {
	m.c.ts = ts
	m.f(v, &m.c)
	return m.c.take()
}
func (m *flatMapOp[IN, OUT]) Watermark(ts int64) error { return m.c.out.Watermark(ts) }
func (m *flatMapOp[IN, OUT]) End() error               { return m.c.out.End() }

// Filter keeps the records for which keep returns true.
func Filter[T any](s *Stream[T], keep func(T) bool, opts ...Option) *Stream[T] {
	return add[T](s.job, kindFilter, false, []engine.Edge{s.edge()}, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			return &engine.Operator{Inputs: []any{engine.Output[T](&filterOp[T]{keep: keep, out: out.(engine.Output[T])})}}, nil
		})
}

type filterOp[T any] struct {
	keep func(T) bool
	out  engine.Output[T]
}

func (m *filterOp[T]) Process(v T, ts int64) error {
	if m.keep(v) {
		return m.out.Process(v, ts)
	}
	return nil
}
func (m *filterOp[T]) Watermark(ts int64) error { return m.out.Watermark(ts) }
func (m *filterOp[T]) End() error               { return m.out.End() }

// KeyBy partitions s by the key key returns: records with equal keys go to
// the same parallel instance of the next operator, whose keyed state is
// scoped to the key. The key's type is encoded with its codec and hashed
// into one of the job's key groups.
func KeyBy[K comparable, T any](s *Stream[T], key func(T) K) *KeyedStream[K, T] {
	kc, err := codec.For[K]()
	if err != nil {
		s.job.errs = append(s.job.errs, fmt.Errorf("key of %s: %w", s.v.Name, err))
	}
	ks := &KeyedStream[K, T]{Stream: *s, key: key, keyCodec: kc}
	ks.part = &engine.Edge{From: s.v, Partitioning: pluginpb.Partitioning_PARTITIONING_HASH, Side: s.side,
		KeyGroup: func(maxP int) any {
			var buf []byte
			return func(v T) int {
				buf = kc.Append(buf[:0], key(v))
				return keygroup.Of(buf, maxP)
			}
		}}
	return ks
}

// Union merges streams of one type into one.
func Union[T any](first *Stream[T], rest ...*Stream[T]) *Stream[T] {
	edges := []engine.Edge{first.edge()}
	for _, s := range rest {
		if s.job != first.job {
			first.job.errs = append(first.job.errs, errors.New("union of streams of different jobs"))
			continue
		}
		edges = append(edges, s.edge())
	}
	n := len(edges)
	return add[T](first.job, kindUnion, false, edges, nil,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			u := &unionOp[T]{out: out.(engine.Output[T]), wms: make([]int64, n), idle: make([]bool, n), open: n}
			for i := range u.wms {
				u.wms[i] = minWatermark
			}
			ins := make([]any, n)
			for i := range n {
				ins[i] = engine.Output[T](&unionInput[T]{u: u, i: i})
			}
			return &engine.Operator{Inputs: ins}, nil
		})
}

const minWatermark = -1 << 63

type unionOp[T any] struct {
	out  engine.Output[T]
	wms  []int64
	idle []bool
	wm   int64
	open int
}

type unionInput[T any] struct {
	u *unionOp[T]
	i int
}

func (in *unionInput[T]) Process(v T, ts int64) error { return in.u.out.Process(v, ts) }

func (in *unionInput[T]) Watermark(ts int64) error {
	in.u.wms[in.i] = ts
	return in.u.advance()
}

// InputIdle leaves an idle input out of the union's watermark.
func (in *unionInput[T]) InputIdle(idle bool) error {
	in.u.idle[in.i] = idle
	return in.u.advance()
}

// advance passes on the minimum watermark of the inputs that are not idle.
func (u *unionOp[T]) advance() error {
	lowest, any := int64(MaxWatermark), false
	for i, w := range u.wms {
		if u.idle[i] {
			continue
		}
		any = true
		lowest = min(lowest, w)
	}
	if any && lowest > u.wm {
		u.wm = lowest
		return u.out.Watermark(lowest)
	}
	return nil
}

func (in *unionInput[T]) End() error {
	u := in.u
	u.open--
	u.idle[in.i] = false
	if u.open > 0 {
		return in.Watermark(1<<63 - 1)
	}
	return u.out.End()
}

// SinkTo writes the records of s to sink. A TransactionalSink takes part
// in checkpoints (it needs a UID): its output is committed when the
// checkpoint after it completes, or at the end of input when the job does
// not checkpoint.
func SinkTo[T any](s *Stream[T], sink Sink[T], opts ...Option) {
	if ts, ok := sink.(TransactionalSink[T]); ok {
		add[struct{}](s.job, kindSink, true, []engine.Edge{s.edge()}, opts,
			func(tc *engine.TaskContext, _ any) (*engine.Operator, error) {
				return buildTxnSink(tc, ts)
			})
		return
	}
	add[struct{}](s.job, kindSink, false, []engine.Edge{s.edge()}, opts,
		func(tc *engine.TaskContext, _ any) (*engine.Operator, error) {
			w, err := sink.Open(tc.Ctx, taskInfo{tc})
			if err != nil {
				return nil, fmt.Errorf("open sink %s: %w", tc.Vertex.Name, err)
			}
			op := &sinkOp[T]{ctx: tc.Ctx, w: w}
			tc.OnIdle(func() error { return w.Flush(tc.Ctx) })
			return &engine.Operator{Inputs: []any{engine.Output[T](op)}, Close: op.close}, nil
		})
}

type sinkOp[T any] struct {
	ctx    context.Context
	w      Writer[T]
	closed bool
}

func (s *sinkOp[T]) Process(v T, _ int64) error { return s.w.Write(s.ctx, v) }
func (s *sinkOp[T]) Watermark(int64) error      { return nil }
func (s *sinkOp[T]) End() error {
	if err := s.w.Flush(s.ctx); err != nil {
		return err
	}
	s.closed = true
	return s.w.Close(s.ctx)
}

func (s *sinkOp[T]) close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	// The task failed or was cancelled: release, but do not report a second error.
	_ = s.w.Close(context.Background())
	return nil
}

// taskInfo gives sources and sinks their SourceContext and SinkContext.
type taskInfo struct{ tc *engine.TaskContext }

func (t taskInfo) Subtask() int     { return t.tc.Subtask }
func (t taskInfo) Parallelism() int { return t.tc.Parallelism }

// FromSource adds a source to the job. WithWatermarks gives its records
// event time. A source keeps the positions of its splits in checkpoints, so
// it needs a UID (WithUID), by which a restore finds them.
func FromSource[T any](job *Job, src Source[T], opts ...Option) *Stream[T] {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	var wm *WatermarkStrategy[T]
	if o.watermarks != nil {
		w, ok := o.watermarks.(WatermarkStrategy[T])
		if !ok {
			job.errs = append(job.errs, fmt.Errorf("source %s: watermark strategy for %T records, not for this source's", o.uid, o.watermarks))
		} else {
			wm = &w
		}
	}
	return add[T](job, kindSource, true, nil, opts,
		func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			o := out.(engine.Output[T])
			st := &sourceState[T]{}
			if tc.Restored != nil {
				if len(tc.Restored.KeyGroups) > 0 && !tc.AllowNonRestored {
					return nil, fmt.Errorf("source %s: restore: keyed state for a source (another kind of operator had this uid?)", tc.Vertex.Name)
				}
				splits, err := decodeSplits(tc.Restored.Items)
				if err != nil {
					return nil, fmt.Errorf("source %s: restore: %w", tc.Vertex.Name, err)
				}
				st.restored, st.mine = splits, splits
			}
			return &engine.Operator{
				Run: func(ctx context.Context, idle func()) error {
					return runSource(ctx, tc, src, wm, o, idle, st)
				},
				Snapshot: st.snapshot,
			}, nil
		})
}

// sourceState is what a source subtask checkpoints: the splits of its
// reader with their positions.
type sourceState[T any] struct {
	// restored holds the splits of a restore (nil: none, the subtask asks
	// the source for its splits).
	restored []Split
	// mine are the subtask's splits until the reader is open, and their
	// positions once it closed before the end (a stop with a savepoint).
	mine []Split
	r    Reader[T]
	// ended says the reader read everything: nothing is left to resume.
	ended bool
}

// snapshot encodes the reader's splits as the operator's items, which a
// restore redistributes over the new subtasks.
func (s *sourceState[T]) snapshot(engine.CheckpointOptions) (*engine.OperatorSnapshot, error) {
	splits := s.mine
	switch {
	case s.ended:
		splits = nil
	case s.r != nil:
		var err error
		if splits, err = s.r.Snapshot(); err != nil {
			return nil, fmt.Errorf("snapshot source: %w", err)
		}
	}
	items := make([][]byte, len(splits))
	for i, sp := range splits {
		items[i] = encodeSplit(sp)
	}
	return &engine.OperatorSnapshot{Items: items}, nil
}

// The item of one split in a source's snapshot, version 1: the version
// byte, the split's ID and State (each a uvarint length and the bytes).
const splitItemVersion = 1

func encodeSplit(sp Split) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(sp.ID)+len(sp.State))
	b = append(b, splitItemVersion)
	b = appendSnapBytes(b, []byte(sp.ID))
	return appendSnapBytes(b, sp.State)
}

func decodeSplits(items [][]byte) ([]Split, error) {
	splits := make([]Split, 0, len(items))
	for i, it := range items {
		r := snapReader{b: it}
		if v := r.byte(); r.err == nil && v != splitItemVersion {
			return nil, fmt.Errorf("split %d: %w: split format %d (this SDK reads %d)", i, errSnapshotVersion, v, splitItemVersion)
		}
		id, state := r.bytes(), r.bytes()
		if r.err == nil && len(r.b) != 0 {
			r.err = fmt.Errorf("%w: %d bytes after the split", errSnapshotCorrupt, len(r.b))
		}
		if r.err != nil {
			return nil, fmt.Errorf("split %d: %w", i, r.err)
		}
		splits = append(splits, Split{ID: string(id), State: bytes.Clone(state)})
	}
	return splits, nil
}

// sourceCollector stamps records with event time and tracks the watermark
// of each split.
type sourceCollector[T any] struct {
	collector[T]
	wm       *WatermarkStrategy[T]
	gens     []WatermarkGenerator
	seen     []bool      // the split had records since the last check
	lastSeen []time.Time // when the split last had records
	idle     []bool
	done     []bool // the reader said the split has no more records
	cur      int
	perSplit bool
}

func (c *sourceCollector[T]) Split(i int) {
	if i >= 0 && i < len(c.gens) {
		c.cur, c.perSplit = i, true
	}
}

func (c *sourceCollector[T]) SplitDone(i int) {
	if i >= 0 && i < len(c.done) {
		c.done[i], c.perSplit = true, true
	}
}

func (c *sourceCollector[T]) Collect(v T) {
	if c.wm != nil && len(c.gens) > 0 {
		ts := c.wm.timestamp(v)
		c.gens[c.cur].OnEvent(ts)
		c.seen[c.cur] = true
		c.ts = ts
	}
	c.collector.Collect(v)
}

// watermark returns the source subtask's watermark over its splits that are
// not idle, and whether every split is idle.
func (c *sourceCollector[T]) watermark(now time.Time) (wm int64, allIdle bool) {
	n := len(c.gens)
	if !c.perSplit {
		n = min(n, 1)
	}
	wm, allIdle = MaxWatermark, true
	doneWM, anyDone := MinWatermark, false
	for i := range n {
		if c.seen[i] {
			c.seen[i], c.lastSeen[i], c.idle[i] = false, now, false
		} else if c.wm.idleness > 0 && now.Sub(c.lastSeen[i]) >= c.wm.idleness {
			c.idle[i] = true
		}
		if c.done[i] {
			// A finished split holds nothing back, but it is not idle:
			// its records may still be on their way downstream.
			doneWM, anyDone = max(doneWM, c.gens[i].Watermark()), true
			continue
		}
		if c.idle[i] {
			continue
		}
		allIdle = false
		wm = min(wm, c.gens[i].Watermark())
	}
	if allIdle && anyDone {
		// Only finished (or idle) splits are left: event time stands where
		// the finished ones reached, until the reader ends.
		return doneWM, false
	}
	return wm, allIdle
}

func runSource[T any](ctx context.Context, tc *engine.TaskContext, src Source[T], strategy *WatermarkStrategy[T], out engine.Output[T], idle func(), state *sourceState[T]) (err error) {
	info := taskInfo{tc}
	var mine []Split
	if state.restored != nil {
		// A restore resumes the splits of the snapshot; a subtask that got
		// none has nothing to read.
		mine = state.restored
	} else {
		all, err := src.Splits(ctx, info)
		if err != nil {
			return fmt.Errorf("source %s: splits: %w", tc.Vertex.Name, err)
		}
		for i, s := range all {
			if i%tc.Parallelism == tc.Subtask {
				mine = append(mine, s)
			}
		}
	}
	state.mine = mine
	r, err := src.Open(ctx, info, mine)
	if err != nil {
		return fmt.Errorf("source %s: open: %w", tc.Vertex.Name, err)
	}
	state.r = r
	defer func() {
		if !state.ended {
			// What a later snapshot of the ended subtask (a stop with a
			// savepoint) keeps.
			if splits, serr := r.Snapshot(); serr == nil {
				state.mine = splits
			}
		}
		state.r = nil
		if cerr := r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("source %s: close: %w", tc.Vertex.Name, cerr)
		}
	}()
	c := &sourceCollector[T]{collector: collector[T]{out: out, ts: engine.NoTimestamp}, wm: strategy}
	if strategy != nil {
		// A subtask without splits has nothing to hold event time back: its
		// output is idle from the start, as in Flink.
		n := len(mine)
		if n == 0 {
			if err := tc.SetIdle(true); err != nil {
				return err
			}
		}
		c.gens = make([]WatermarkGenerator, n)
		for i := range c.gens {
			c.gens[i] = strategy.newGenerator()
		}
		c.seen, c.idle, c.done, c.lastSeen = make([]bool, n), make([]bool, n), make([]bool, n), make([]time.Time, n)
		now := time.Now()
		for i := range c.lastSeen {
			c.lastSeen[i] = now
		}
	}
	// Without a strategy the reader gets the plain collector: one call less
	// per record.
	var rc Collector[T] = c
	if strategy == nil {
		rc = &c.collector
	}
	emitted := MinWatermark
	backoff := time.Millisecond
	for {
		st, err := r.Read(ctx, rc)
		if cerr := c.take(); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("source %s: read: %w", tc.Vertex.Name, err)
		}
		if strategy != nil && st != Done {
			wm, allIdle := c.watermark(time.Now())
			switch {
			case allIdle:
				if err := tc.SetIdle(true); err != nil {
					return err
				}
			case wm > emitted && wm != MaxWatermark:
				emitted = wm
				if err := out.Watermark(wm); err != nil {
					return err
				}
			}
		}
		if err := tc.RunDueTimers(); err != nil {
			return err
		}
		if st == Done {
			state.ended = true
			// The final watermark fires every pending window and timer.
			if err := out.Watermark(engine.MaxWatermark); err != nil {
				return err
			}
			return out.End()
		}
		// A checkpoint is taken between reads: the reader's positions are
		// those after the records it emitted.
		stop, err := tc.PollCheckpoint()
		if err != nil {
			return err
		}
		if stop {
			return stopSource(tc, out)
		}
		switch st {
		case Idle:
			idle()
			wait := backoff
			if next, ok := tc.NextTimer(); ok {
				wait = max(min(wait, time.Until(next)), 0)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tc.CheckpointWake():
			case <-time.After(wait):
			}
			backoff = min(backoff*2, 20*time.Millisecond)
		default:
			backoff = time.Millisecond
			if err := tc.MaybeFlush(); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// stopSource ends a source that a stop with a savepoint stopped, after its
// barrier: with drain the final watermark fires every window and timer
// downstream first; without, event time stays where it is, so that the
// job resumes from the savepoint as if it had not stopped. Without drain
// PollCheckpoint held the source until the savepoint completed (one that
// was aborted lets the source read on).
func stopSource[T any](tc *engine.TaskContext, out engine.Output[T]) error {
	if tc.StopDrain() {
		if err := out.Watermark(engine.MaxWatermark); err != nil {
			return err
		}
	}
	return out.End()
}
