// Package engine is the task runtime of the SDK: it turns a job's vertices
// into chains of typed operators, runs one goroutine per task, moves record
// batches between tasks through an Exchange with credit-based flow control,
// and merges end-of-input and watermarks over a task's input channels.
//
// The engine is typed only at its edges: the sdk package supplies, for every
// vertex, closures created where the record types are known (Build, the
// stream's Type). Per record there is no reflection and no boxing.
//
// It must not depend on the control plane or the worker.
package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// NoTimestamp is the timestamp of a record that has none.
const NoTimestamp = math.MinInt64

// Output receives the records and events of one stream inside a task. The
// calls come from the task's goroutine only.
type Output[T any] interface {
	// Process handles one record and its event-time timestamp in
	// milliseconds, NoTimestamp when it has none.
	Process(v T, ts int64) error
	// Watermark says no record older than ts will follow on this input.
	Watermark(ts int64) error
	// End says the input has ended: flush and pass End on.
	End() error
}

// EventKind tells events apart.
type EventKind uint8

// The kinds of events that travel with the records.
const (
	EventWatermark EventKind = iota + 1
	// EventBarrier carries a checkpoint id.
	EventBarrier
	// EventEnd ends the channel; its Value is 1 when a stop with a
	// savepoint ended it without drain (event time stays: no final
	// watermark follows), 2 when the stop drained.
	EventEnd
	// EventIdle carries a channel's watermark status: Value 1 for idle, 0
	// for active again.
	EventIdle
)

// MaxWatermark is the watermark of an input that has ended: every window
// and event-time timer fires.
const MaxWatermark = math.MaxInt64

// Event is a control event in a channel, in order with the records.
type Event struct {
	Kind  EventKind
	Value int64
}

// Partitioning aliases the wire enum.
type Partitioning = pluginpb.Partitioning

// Edge is one input of a vertex.
type Edge struct {
	From         *Vertex
	Partitioning Partitioning
	// KeyGroup, for hash edges, returns a function from a record of the
	// producing vertex's type to its key group. It is called once per task,
	// so that the function may own a scratch buffer.
	KeyGroup func(maxParallelism int) any
	// Side, when set, makes the edge carry the producer's side output of
	// that name (of type From.Sides[Side]) instead of its main output.
	Side string
}

// Type returns the type of the records the edge carries.
func (e *Edge) Type() *Type {
	if e.Side != "" {
		return e.From.Sides[e.Side]
	}
	return e.From.Out
}

// Operator is one subtask's instance of a vertex.
type Operator struct {
	// Inputs are Output[IN] values, one per input edge of the vertex.
	Inputs []any
	// Run drives a source: it emits until the input ends or ctx is done.
	// It is nil for operators driven by their inputs.
	Run func(ctx context.Context, idle func()) error
	// Close releases the operator's resources after the task ends.
	Close func() error
	// Snapshot, set by operators with state, returns the subtask's state at
	// a checkpoint: called in the task's goroutine after every record
	// before the barrier and before any record after it.
	Snapshot func(cp CheckpointOptions) (*OperatorSnapshot, error)
	// CheckpointComplete is called, in the task's goroutine, when a
	// checkpoint the subtask took part in completed (ids only grow; a
	// later one completing stands for the earlier): sinks commit.
	CheckpointComplete func(id uint64) error
	// CheckpointAborted is called when a checkpoint will not complete.
	CheckpointAborted func(id uint64) error
}

// Vertex is one operator of the job graph.
type Vertex struct {
	ID          int
	UID         string
	Name        string
	Kind        string
	Parallelism int // 0: the job's default
	Inputs      []Edge
	Stateful    bool
	// Out describes the type of the records the vertex emits; nil for sinks.
	Out *Type
	// Sides are the types of the vertex's side outputs, by name.
	Sides map[string]*Type
	// Build creates the operator of one subtask; out is an Output[OUT] of
	// the vertex's output type, or nil for a sink.
	Build func(tc *TaskContext, out any) (*Operator, error)
}

// TaskContext is what an operator learns of its task when it is built.
type TaskContext struct {
	JobName        string
	Vertex         *Vertex
	Subtask        int
	Parallelism    int
	MaxParallelism int
	KeyGroups      keygroup.Range
	// Ctx is cancelled when the task must stop.
	Ctx context.Context
	// Sides are the vertex's side outputs (Output of each side's type), by
	// name; a side nobody reads discards its records.
	Sides map[string]any
	// Restored is the state the operator starts from, nil for none (an
	// operator that is in the checkpoint gets a non-nil one, even empty).
	Restored *OperatorSnapshot
	// AllowNonRestored lets a restore drop state the operator no longer
	// registers instead of refusing it.
	AllowNonRestored bool
	// Checkpointing says the job checkpoints: exactly-once sinks commit
	// when a checkpoint completes instead of at the end of their input.
	Checkpointing bool

	task *task
}

// BatchSize is the size at which an output batch is sent.
const BatchSize = 32 << 10

// Type carries what the engine needs to know of a record type T without
// being generic itself. TypeOf builds it.
type Type struct {
	Name string
	// newEncoder returns an Output[T] that encodes records into batches for
	// the channels of one edge.
	newEncoder func(tc *TaskContext, chans []ChannelWriter, e *Edge, consumerParallelism int) (flushOutput, error)
	// newDecoder returns a function that decodes a batch of T and feeds
	// next, an Output[T].
	newDecoder func(next any) func(b []byte, count int) error
	// fanOut returns an Output[T] that passes everything to all outs.
	fanOut func(outs []any) any
	// discard returns an Output[T] that drops records.
	discard func() any
	// withSides returns an Output[T] that passes everything to main (an
	// Output[T]) and watermarks and the end of input to sides as well.
	withSides func(main any, sides []eventOutput) any
}

// eventOutput is the untyped part of an Output: what a vertex's side
// outputs receive from its main output.
type eventOutput interface {
	Watermark(ts int64) error
	End() error
}

// flushOutput is an encoder: an Output[T] (boxed) that can flush and mark
// its channels idle.
type flushOutput struct {
	out       any
	flush     func() error
	setIdle   func(bool) error
	isIdle    func() bool
	setSticky func(bool)
	// event flushes and sends an event on every channel (barriers).
	event func(Event) error
	// setEnd makes End send *v as the EventEnd's Value.
	setEnd func(v *int64)
}

// TypeOf describes the record type T, encoded with c.
func TypeOf[T any](c codec.Codec[T]) *Type {
	var zero T
	return &Type{
		Name: fmt.Sprintf("%T", zero),
		newEncoder: func(tc *TaskContext, chans []ChannelWriter, e *Edge, consumerP int) (flushOutput, error) {
			enc := &encoder[T]{ctx: tc.Ctx, codec: c, chans: chans, bufs: make([][]byte, len(chans)),
				counts: make([]int, len(chans)), lastTS: make([]int64, len(chans))}
			switch e.Partitioning {
			case pluginpb.Partitioning_PARTITIONING_FORWARD:
				if len(chans) != 1 {
					return flushOutput{}, fmt.Errorf("forward edge with %d channels", len(chans))
				}
			case pluginpb.Partitioning_PARTITIONING_HASH:
				kg, ok := e.KeyGroup(tc.MaxParallelism).(func(T) int)
				if !ok {
					return flushOutput{}, fmt.Errorf("hash edge from %s: key function of the wrong type", e.From.Name)
				}
				enc.keyGroup, enc.maxP, enc.consumerP = kg, tc.MaxParallelism, consumerP
			case pluginpb.Partitioning_PARTITIONING_REBALANCE:
				enc.next = tc.Subtask % max(len(chans), 1)
			case pluginpb.Partitioning_PARTITIONING_BROADCAST:
			default:
				return flushOutput{}, fmt.Errorf("unknown partitioning %v", e.Partitioning)
			}
			enc.part = e.Partitioning
			return flushOutput{out: Output[T](enc), flush: enc.flush, setIdle: enc.setIdle, isIdle: func() bool { return enc.idle },
				setSticky: func(s bool) { enc.sticky = s }, event: enc.event, setEnd: func(v *int64) { enc.end = v }}, nil
		},
		newDecoder: func(next any) func(b []byte, count int) error {
			out := next.(Output[T])
			return func(b []byte, count int) error {
				var ts int64
				for range count {
					delta, n := binary.Varint(b)
					if n <= 0 {
						return fmt.Errorf("decode batch: bad timestamp")
					}
					ts += delta
					b = b[n:]
					v, n, err := c.Decode(b)
					if err != nil {
						return fmt.Errorf("decode %T: %w", v, err)
					}
					b = b[n:]
					if err := out.Process(v, ts); err != nil {
						return err
					}
				}
				if len(b) != 0 {
					return fmt.Errorf("decode batch: %d bytes left over", len(b))
				}
				return nil
			}
		},
		fanOut: func(outs []any) any {
			typed := make([]Output[T], len(outs))
			for i, o := range outs {
				typed[i] = o.(Output[T])
			}
			return Output[T](fanOut[T](typed))
		},
		discard: func() any { return Output[T](discard[T]{}) },
		withSides: func(main any, sides []eventOutput) any {
			return Output[T](withSides[T]{main: main.(Output[T]), sides: sides})
		},
	}
}

// withSides is the main output of a vertex with side outputs: the side
// outputs have their records from the operator's function, but their
// watermarks and their end from the main output, so that their consumers
// see event time advance and their input end.
type withSides[T any] struct {
	main  Output[T]
	sides []eventOutput
}

func (w withSides[T]) Process(v T, ts int64) error { return w.main.Process(v, ts) }

func (w withSides[T]) Watermark(ts int64) error {
	if err := w.main.Watermark(ts); err != nil {
		return err
	}
	for _, s := range w.sides {
		if err := s.Watermark(ts); err != nil {
			return err
		}
	}
	return nil
}

func (w withSides[T]) End() error {
	errs := []error{w.main.End()}
	for _, s := range w.sides {
		errs = append(errs, s.End())
	}
	return errors.Join(errs...)
}

type fanOut[T any] []Output[T]

func (f fanOut[T]) Process(v T, ts int64) error {
	for _, o := range f {
		if err := o.Process(v, ts); err != nil {
			return err
		}
	}
	return nil
}

func (f fanOut[T]) Watermark(ts int64) error {
	for _, o := range f {
		if err := o.Watermark(ts); err != nil {
			return err
		}
	}
	return nil
}

func (f fanOut[T]) End() error {
	var errs []error
	for _, o := range f {
		errs = append(errs, o.End())
	}
	return errors.Join(errs...)
}

type discard[T any] struct{}

func (discard[T]) Process(T, int64) error { return nil }
func (discard[T]) Watermark(int64) error  { return nil }
func (discard[T]) End() error             { return nil }

// encoder is the Output[T] at the end of a chain for one outgoing edge: it
// encodes records into one batch per channel and sends a batch when it is
// full, when the task is idle (flush) and before every event.
type encoder[T any] struct {
	ctx    context.Context
	codec  codec.Codec[T]
	chans  []ChannelWriter
	bufs   [][]byte
	counts []int
	lastTS []int64 // the timestamp of the last record in each batch
	part   Partitioning

	keyGroup  func(T) int
	maxP      int
	consumerP int
	next      int
	idle      bool // the channels were told this task is idle
	// sticky keeps the output idle when records pass: in a task with
	// inputs, idleness follows the inputs, not the records a timer emits.
	sticky bool
	end    *int64 // the Value of the EventEnd, set by a stop with a savepoint
}

func (e *encoder[T]) Process(v T, ts int64) error {
	if e.idle && !e.sticky {
		if err := e.setIdle(false); err != nil {
			return err
		}
	}
	switch e.part {
	case pluginpb.Partitioning_PARTITIONING_FORWARD:
		return e.add(0, v, ts)
	case pluginpb.Partitioning_PARTITIONING_HASH:
		return e.add(keygroup.Subtask(e.keyGroup(v), e.maxP, e.consumerP), v, ts)
	case pluginpb.Partitioning_PARTITIONING_REBALANCE:
		i := e.next
		e.next = (e.next + 1) % len(e.chans)
		return e.add(i, v, ts)
	default:
		for i := range e.chans {
			if err := e.add(i, v, ts); err != nil {
				return err
			}
		}
		return nil
	}
}

// add appends a record to channel i's batch: its timestamp as a varint
// delta from the previous record's (records without one cost a byte), then
// the record.
func (e *encoder[T]) add(i int, v T, ts int64) error {
	e.bufs[i] = binary.AppendVarint(e.bufs[i], ts-e.lastTS[i])
	e.lastTS[i] = ts
	e.bufs[i] = e.codec.Append(e.bufs[i], v)
	e.counts[i]++
	if len(e.bufs[i]) >= BatchSize {
		return e.send(i)
	}
	return nil
}

func (e *encoder[T]) send(i int) error {
	if e.counts[i] == 0 {
		return nil
	}
	if err := e.chans[i].WriteBatch(e.ctx, e.bufs[i], e.counts[i]); err != nil {
		return err
	}
	e.bufs[i] = e.bufs[i][:0]
	e.counts[i] = 0
	e.lastTS[i] = 0
	return nil
}

func (e *encoder[T]) flush() error {
	for i := range e.chans {
		if err := e.send(i); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder[T]) event(ev Event) error {
	if err := e.flush(); err != nil {
		return err
	}
	for _, c := range e.chans {
		if err := c.WriteEvent(e.ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder[T]) Watermark(ts int64) error {
	if e.idle {
		if err := e.setIdle(false); err != nil {
			return err
		}
	}
	return e.event(Event{Kind: EventWatermark, Value: ts})
}

func (e *encoder[T]) End() error {
	ev := Event{Kind: EventEnd}
	if e.end != nil {
		ev.Value = *e.end
	}
	return e.event(ev)
}

// setIdle tells the consumers that this task's output is idle (it holds no
// watermark back) or active again.
func (e *encoder[T]) setIdle(idle bool) error {
	e.idle = idle
	v := int64(0)
	if idle {
		v = 1
	}
	return e.event(Event{Kind: EventIdle, Value: v})
}
