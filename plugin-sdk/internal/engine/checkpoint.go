package engine

import (
	"context"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/storage"
)

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
// A stop with a savepoint without drain is synchronous, as in Flink: each
// source sends the savepoint's barrier, then holds (emits nothing, reads
// nothing) until the savepoint's outcome is known. When it completes the
// sources end, and the end they send downstream says so: no final watermark
// follows (event time stays where it is), and the savepoint is each task's
// final checkpoint, so that a task whose completion came before the end of
// its input finishes as soon as its input ends. When it is aborted (a task
// declined, storage failed, the coordinator gave up) the sources read on as
// if nothing had happened: the downstream tasks, which aligned, snapshotted
// and acknowledged the barrier as for any checkpoint, never stopped, and the
// job keeps running.
//
// With drain the sources end first, as at the end of their input (the
// final watermark fires every window and timer), and every task
// acknowledges the savepoint once it ended, with its final state: what the
// drain emitted is in the savepoint's transactions, as in Flink, where the
// drain comes before the savepoint. A drained stop whose savepoint fails
// cannot be taken back: the input ended and event time reached its end, so
// the job finishes all the same; with checkpointing its tasks wait for the
// next checkpoint, which commits their output, and without they finish
// when the savepoint is aborted.
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
	// send their barrier, hold until the savepoint completes, then end
	// their output, and event time stays (an abort lets them read on);
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
	// Incremental, in a snapshot, is keyed state kept in local files (the
	// Pebble state backend) instead of KeyGroups: taken in the task's
	// goroutine, uploaded by the caller of OnSnapshot off it.
	Incremental IncrementalSnapshot
	// Restored, in a restore, are the incremental snapshots of the old
	// subtasks whose key groups overlap the new subtask's, in old subtask
	// order. KeyGroups may come with them (canonical blobs).
	Restored []RestoredIncremental
	// Deferred, in a snapshot, is keyed state taken in the task's
	// goroutine whose KeyGroups are written off it (the in-memory state
	// backend's copy-on-write snapshots); see Materialize.
	Deferred DeferredKeyGroups
}

// DeferredKeyGroups is keyed state frozen at a checkpoint. Until KeyGroups
// or Release is called, the task copies the state it changes, so the
// caller of OnSnapshot calls one of them, once, as soon as it can.
type DeferredKeyGroups interface {
	// KeyGroups writes the blobs and releases the frozen state.
	KeyGroups() (map[int][]byte, error)
	// Release drops a snapshot that is not written.
	Release()
}

// Materialize writes the Deferred key groups of every operator of s into
// their KeyGroups. On error, the rest are released.
func (s *TaskSnapshot) Materialize() error {
	var err error
	for _, op := range s.Operators {
		if op == nil || op.Deferred == nil {
			continue
		}
		d := op.Deferred
		op.Deferred = nil
		if err != nil {
			d.Release()
			continue
		}
		var groups map[int][]byte
		if groups, err = d.KeyGroups(); err == nil {
			op.KeyGroups = groups
		}
	}
	return err
}

// Release drops what s holds that is not written: the local files of
// incremental snapshots and frozen key groups.
func (s *TaskSnapshot) Release() {
	if s == nil {
		return
	}
	for _, op := range s.Operators {
		if op == nil {
			continue
		}
		if op.Incremental != nil {
			op.Incremental.Release()
		}
		if op.Deferred != nil {
			op.Deferred.Release()
		}
	}
}

// IncrementalSnapshot is keyed state as files: a snapshot uploads only the
// files no confirmed earlier checkpoint of the same state uploaded, and
// references the others.
type IncrementalSnapshot interface {
	// Groups returns the key groups the snapshot holds.
	Groups() keygroup.Range
	// Upload writes the new files into store, the job's checkpoint
	// directory, under prefix, and returns the content of the operator
	// subtask's state file (the snapshot's manifest, which names its files
	// relative to store), the names in store of every file it references,
	// and the bytes it uploaded. It releases the snapshot's local files.
	Upload(ctx context.Context, store storage.Store, prefix string) (state []byte, files []string, uploaded int64, err error)
	// Release drops a snapshot that is not uploaded.
	Release()
}

// RestoredIncremental is the state file of an incremental snapshot to
// restore from, with the store that its manifest names files in.
type RestoredIncremental struct {
	State []byte
	Store storage.Store
}

// Empty reports whether the snapshot holds nothing.
func (s *OperatorSnapshot) Empty() bool {
	return s == nil || (len(s.KeyGroups) == 0 && len(s.Items) == 0 && s.Incremental == nil && len(s.Restored) == 0 && s.Deferred == nil)
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
