package sdk

import (
	"context"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
)

// Marshaler lets a type choose its own encoding (with Unmarshaler on its
// pointer); the SDK's codecs use it instead of encoding the fields.
type Marshaler = codec.Marshaler

// Unmarshaler decodes what MarshalEddy encoded.
type Unmarshaler = codec.Unmarshaler

// Codec encodes and decodes the records of one type. The SDK picks one for
// every stream by its type; a type may choose its own encoding by
// implementing codec's MarshalEddy and UnmarshalEddy methods.
type Codec[T any] = codec.Codec[T]

// Collector receives the records a function emits. It is valid only during
// the call it was passed to.
type Collector[T any] interface {
	Collect(v T)
}

// Split is one independently readable part of a source (a file, a range of
// a sequence, a partition) with its position. Sources encode their position
// in State so that a checkpoint can store it and a restore resume from it.
type Split struct {
	ID    string
	State []byte
}

// SourceContext tells a source where it runs.
type SourceContext interface {
	// Subtask is the index of the source subtask, from 0.
	Subtask() int
	// Parallelism is the number of source subtasks.
	Parallelism() int
}

// Source is a parallel source of records. Every source subtask calls
// Splits, which must therefore return the same splits in the same order
// every time; split i goes to subtask i mod parallelism, which opens a
// Reader over its share. A restore passes the splits of a snapshot to Open
// instead, possibly at another parallelism: a split's State must say all
// that is needed to resume it.
type Source[T any] interface {
	Splits(ctx context.Context, sc SourceContext) ([]Split, error)
	Open(ctx context.Context, sc SourceContext, splits []Split) (Reader[T], error)
}

// ReadStatus says what a Reader has left after a call to Read.
type ReadStatus int

// The states of a reader.
const (
	// More means more records are available now: call Read again.
	More ReadStatus = iota
	// Idle means no record is available now; the runtime calls Read again
	// after a short pause, flushing buffered output meanwhile.
	Idle
	// Done means every split is exhausted: the source subtask ends.
	Done
)

// Reader reads the splits of one source subtask. Read, Snapshot and Close
// are called from one goroutine.
type Reader[T any] interface {
	// Read emits a batch of records (a few hundred is a good size) to out.
	Read(ctx context.Context, out Collector[T]) (ReadStatus, error)
	// Snapshot returns the splits with their current positions.
	Snapshot() ([]Split, error)
	Close() error
}

// SinkContext tells a sink where it runs.
type SinkContext interface {
	Subtask() int
	Parallelism() int
}

// Sink consumes the records of a stream. Every sink subtask opens a Writer.
type Sink[T any] interface {
	Open(ctx context.Context, sc SinkContext) (Writer[T], error)
}

// Writer writes the records of one sink subtask. Its methods are called
// from one goroutine. Flush is called when the input is idle and before
// Close, which is called once at the end of input.
type Writer[T any] interface {
	Write(ctx context.Context, v T) error
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// TransactionalWriter is a Writer whose output becomes visible in two
// phases, in step with checkpoints, for exactly-once results: what it
// writes between two checkpoints is one transaction. Its methods are
// called from one goroutine.
//
// At a checkpoint's barrier the sink calls PreCommit, which ends the
// current transaction (its output durable but not yet visible, say a file
// written under a hidden name) and starts the next; the bytes it returns
// are what Commit needs to publish it, and are kept in the checkpoint.
// When the checkpoint completes, Commit publishes the transactions of that
// checkpoint and any earlier one still pending. After a failure the job
// restores from its last completed checkpoint and commits that
// checkpoint's transactions again, so Commit must be idempotent: committing
// a transaction that is already committed succeeds and changes nothing.
// Abort drops the open transaction (after a failure, or at the end once
// everything is committed). Close releases the writer's resources without
// committing anything.
type TransactionalWriter[T any] interface {
	Writer[T]
	// PreCommit ends the current transaction and returns what Commit needs
	// to publish it, or nil when it holds nothing to publish.
	PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error)
	// Commit publishes pre-committed transactions, in order.
	Commit(ctx context.Context, txns [][]byte) error
	// Abort drops the open transaction.
	Abort(ctx context.Context) error
}

// TransactionalSink is a Sink whose output is exactly-once: SinkTo opens
// its writers with OpenTransactional, and its operator keeps the
// pre-committed transactions in checkpoints, so it needs a UID (WithUID).
// Open is not called by SinkTo; it may return the same writer.
type TransactionalSink[T any] interface {
	Sink[T]
	OpenTransactional(ctx context.Context, sc SinkContext) (TransactionalWriter[T], error)
}

// RuntimeContext tells a function where it runs and gives it access to
// keyed state (see NewValueState and the other state constructors).
type RuntimeContext interface {
	// Subtask is the index of this parallel instance, from 0.
	Subtask() int
	// Parallelism is the number of parallel instances of the operator.
	Parallelism() int
	// JobName is the name of the job.
	JobName() string
	state() *keyedBackend
}

// Opener is implemented by functions that need to set up before the first
// record, such as registering keyed state.
type Opener interface {
	Open(ctx RuntimeContext) error
}

// Closer is implemented by functions that release resources at the end.
type Closer interface {
	Close() error
}

// KeyedContext is what a keyed process function sees of the current record
// or timer.
type KeyedContext[K comparable] interface {
	RuntimeContext
	// Key is the key of the record (or timer) being processed.
	Key() K
	// Timestamp is the event time of the record, or the time of the timer,
	// in milliseconds; NoTimestamp when the record has none.
	Timestamp() int64
	// TimerService registers timers for the current key.
	TimerService() TimerService
	// TimeDomain says, in OnTimer, which kind of timer fired.
	TimeDomain() TimeDomain
}

// NoTimestamp is the timestamp of a record without event time.
const NoTimestamp int64 = MinWatermark

// TimeDomain tells event-time timers from processing-time timers.
type TimeDomain int

// The time domains.
const (
	EventTime TimeDomain = iota
	ProcessingTime
)

// TimerService registers timers for the current key. A timer is a (key,
// time) pair: registering the same one twice fires it once. Event-time
// timers fire when the watermark reaches their time, in time order;
// processing-time timers when the clock does.
type TimerService interface {
	CurrentWatermark() int64
	// CurrentProcessingTime is the wall clock in milliseconds.
	CurrentProcessingTime() int64
	RegisterEventTimeTimer(ts int64)
	DeleteEventTimeTimer(ts int64)
	RegisterProcessingTimeTimer(ts int64)
	DeleteProcessingTimeTimer(ts int64)
}

// TimerHandler is implemented by keyed process functions that register
// timers: OnTimer is called for each timer that fires, with the timer's key
// current, and may emit records (stamped with the timer's time) and use
// state.
type TimerHandler[K comparable, OUT any] interface {
	OnTimer(ctx KeyedContext[K], ts int64, out Collector[OUT]) error
}

// KeyedProcessFunction processes the records of a keyed stream one by one,
// with keyed state scoped to the record's key. Implement Opener to create
// the state handles, and Closer to release resources.
type KeyedProcessFunction[K comparable, IN, OUT any] interface {
	ProcessElement(ctx KeyedContext[K], in IN, out Collector[OUT]) error
}

// ProcessFunc adapts a function to a KeyedProcessFunction.
type ProcessFunc[K comparable, IN, OUT any] func(ctx KeyedContext[K], in IN, out Collector[OUT]) error

// ProcessElement calls f.
func (f ProcessFunc[K, IN, OUT]) ProcessElement(ctx KeyedContext[K], in IN, out Collector[OUT]) error {
	return f(ctx, in, out)
}
