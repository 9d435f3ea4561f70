package engine

import "github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"

// Checkpoints follow asynchronous barrier snapshotting. The executor's
// TriggerCheckpoint reaches the source tasks, which take the snapshot of
// their chain between two reads and send a barrier down every output
// channel, in order with the records. A task with inputs aligns the
// barriers: a channel that delivered barrier n is held back (its messages
// wait, unacknowledged, so its producer runs out of credits) until every
// open channel delivered it; then the task snapshots its chain, forwards the
// barrier and releases the held messages. A channel that ended counts as
// aligned. The snapshot itself is in-memory blobs taken in the task's
// goroutine; writing them to storage is the caller's (OnSnapshot), off that
// goroutine.
//
// With checkpointing on, a task whose input ended (or a source that read
// everything) does not finish at once: it waits for a checkpoint to be
// triggered after its end, acknowledges it with its final state, and
// finishes when that checkpoint (or a later one) completes, so that sinks
// commit their last transaction and a restore from that checkpoint does
// not replay what they committed. A trigger that reaches such an ended task
// is acknowledged by it directly, and so is one that was pending (received,
// its barrier not yet come) when the input ended. A task that finished is
// gone: the coordinator must not wait for its acknowledgement of a later
// checkpoint, and keeps its last state, as Flink does for finished tasks.
//
// A stop with a savepoint without drain ends the sources right after the
// savepoint's barrier, and the end they send downstream says so: no final
// watermark follows (event time stays where it is), and the savepoint is
// each task's final checkpoint. With drain the sources end first, as at the
// end of their input (the final watermark fires every window and timer), and
// every task acknowledges the savepoint once it ended, with its final state:
// what the drain emitted is in the savepoint's transactions, as in Flink,
// where the drain comes before the savepoint.
//
// The executor's messages reach a task through its mailbox: a source takes
// them in PollCheckpoint, a task with inputs between the messages of its
// gate, an ended task while it waits. Notifications reach the operators in
// the task's goroutine.

// CheckpointOptions describe one checkpoint.
type CheckpointOptions struct {
	ID          uint64
	TimestampMs int64
	// Savepoint asks for a self-contained snapshot.
	Savepoint bool
	// Stop makes sources end (stop with savepoint): without Drain they
	// send their barrier, then end their output, and event time stays;
	// with Drain they end their output first, the final watermark firing
	// every window, and the tasks acknowledge once they ended.
	Stop  bool
	Drain bool
}

// OperatorSnapshot is the state of one operator subtask at a checkpoint.
type OperatorSnapshot struct {
	// KeyGroups holds keyed state and timers, one self-checking blob per key
	// group the subtask owns. A restore hands each blob to the subtask that
	// owns the key group at the new parallelism.
	KeyGroups map[int][]byte
	// Items is operator state (a source's splits, a sink's pending
	// transactions): a list a restore redistributes round robin over the
	// new subtasks (item i of the concatenation over old subtasks, in
	// subtask order, goes to new subtask i mod parallelism).
	Items [][]byte
}

// Empty reports whether the snapshot holds nothing.
func (s *OperatorSnapshot) Empty() bool {
	return s == nil || (len(s.KeyGroups) == 0 && len(s.Items) == 0)
}

// TaskSnapshot is a task's part of a checkpoint: the snapshots of the
// operators of its chain that have state, by vertex.
type TaskSnapshot struct {
	Task       TaskKey
	Checkpoint CheckpointOptions
	Operators  map[*Vertex]*OperatorSnapshot
	// SyncNanos is the time the task's goroutine spent on the snapshot.
	SyncNanos int64
}

// Restorer gives an operator subtask the state it starts from: the key
// groups of range groups and its share of the operator state items. It
// returns nil when the operator starts empty. It is called while a task
// builds its chain, before the operator's Build.
type Restorer func(v *Vertex, subtask, parallelism int, groups keygroup.Range) (*OperatorSnapshot, error)
