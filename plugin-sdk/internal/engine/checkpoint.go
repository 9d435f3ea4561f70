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
// is acknowledged by it directly.

// CheckpointOptions describe one checkpoint.
type CheckpointOptions struct {
	ID          uint64
	TimestampMs int64
	// Savepoint asks for a self-contained snapshot.
	Savepoint bool
	// Stop makes sources end after this barrier (stop with savepoint):
	// they send their barrier, then end their output; with Drain the final
	// watermark fires every window first, without it event time stays.
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
