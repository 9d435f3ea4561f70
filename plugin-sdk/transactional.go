package sdk

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
)

// The operator of a TransactionalSink: two-phase commit in step with
// checkpoints.
//
// At a checkpoint's snapshot the writer pre-commits its transaction, which
// then waits, pending, under the checkpoint's id; the snapshot's items are
// every pending transaction, so that whichever checkpoint a restore starts
// from knows every transaction it must still publish. When a checkpoint
// completes, the pending transactions of it and of earlier ones are
// committed. An aborted checkpoint leaves its transaction pending: it
// commits with the next checkpoint that completes. A restored subtask
// commits the transactions it is handed when it opens (they were
// pre-committed in a checkpoint that completed; some may be committed
// already, and committing them again changes nothing). Without
// checkpointing the sink pre-commits and commits at the end of its input.
//
// The item of one transaction, version 1: the version byte, the uvarint
// checkpoint id, then the transaction's bytes (a uvarint length and the
// bytes).

const txnItemVersion = 1

type pendingTxn struct {
	checkpoint uint64
	data       []byte
}

type txnSinkOp[T any] struct {
	tc      *engine.TaskContext
	w       TransactionalWriter[T]
	pending []pendingTxn
	ended   bool // the input ended
	closed  bool
}

func buildTxnSink[T any](tc *engine.TaskContext, sink TransactionalSink[T]) (*engine.Operator, error) {
	var restored [][]byte
	if r := tc.Restored; r != nil {
		if len(r.KeyGroups) > 0 && !tc.AllowNonRestored {
			return nil, fmt.Errorf("sink %s: restore: keyed state for a sink (another kind of operator had this uid?)", tc.Vertex.Name)
		}
		txns, err := decodeTxns(r.Items)
		if err != nil {
			return nil, fmt.Errorf("sink %s: restore: %w", tc.Vertex.Name, err)
		}
		for _, t := range txns {
			restored = append(restored, t.data)
		}
	}
	w, err := sink.OpenTransactional(tc.Ctx, taskInfo{tc})
	if err != nil {
		return nil, fmt.Errorf("open sink %s: %w", tc.Vertex.Name, err)
	}
	op := &txnSinkOp[T]{tc: tc, w: w}
	if len(restored) > 0 {
		if err := w.Commit(tc.Ctx, restored); err != nil {
			_ = op.close()
			return nil, fmt.Errorf("sink %s: commit the transactions of the restored checkpoint: %w", tc.Vertex.Name, err)
		}
	}
	tc.OnIdle(func() error { return w.Flush(tc.Ctx) })
	return &engine.Operator{
		Inputs:             []any{engine.Output[T](op)},
		Close:              op.close,
		Snapshot:           op.snapshot,
		CheckpointComplete: op.complete,
		CheckpointAborted:  func(uint64) error { return nil },
	}, nil
}

func (s *txnSinkOp[T]) Process(v T, _ int64) error { return s.w.Write(s.tc.Ctx, v) }
func (s *txnSinkOp[T]) Watermark(int64) error      { return nil }

// End flushes. With checkpointing the last transaction is pre-committed by
// the checkpoint the task waits for after its input ended, and committed
// when that completes; without, it is committed now.
func (s *txnSinkOp[T]) End() error {
	s.ended = true
	if err := s.w.Flush(s.tc.Ctx); err != nil {
		return err
	}
	if s.tc.Checkpointing {
		return nil
	}
	data, err := s.w.PreCommit(s.tc.Ctx, 0)
	if err != nil {
		return fmt.Errorf("pre-commit: %w", err)
	}
	if data != nil {
		if err := s.w.Commit(s.tc.Ctx, [][]byte{data}); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	s.closed = true
	return s.w.Close(s.tc.Ctx)
}

func (s *txnSinkOp[T]) snapshot(cp engine.CheckpointOptions) (*engine.OperatorSnapshot, error) {
	data, err := s.w.PreCommit(s.tc.Ctx, cp.ID)
	if err != nil {
		return nil, fmt.Errorf("pre-commit for checkpoint %d: %w", cp.ID, err)
	}
	if data != nil {
		s.pending = append(s.pending, pendingTxn{checkpoint: cp.ID, data: data})
	}
	items := make([][]byte, len(s.pending))
	for i, t := range s.pending {
		items[i] = encodeTxn(t)
	}
	return &engine.OperatorSnapshot{Items: items}, nil
}

// complete commits the pending transactions of checkpoint id and earlier.
func (s *txnSinkOp[T]) complete(id uint64) error {
	n := 0
	for n < len(s.pending) && s.pending[n].checkpoint <= id {
		n++
	}
	if n == 0 {
		return nil
	}
	txns := make([][]byte, n)
	for i := range n {
		txns[i] = s.pending[i].data
	}
	if err := s.w.Commit(s.tc.Ctx, txns); err != nil {
		return fmt.Errorf("commit checkpoint %d: %w", id, err)
	}
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return nil
}

// close drops the open transaction and releases the writer. Pending
// transactions stay as they are: a restore from the checkpoint that holds
// them commits them.
func (s *txnSinkOp[T]) close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	ctx := context.Background()
	aerr := s.w.Abort(ctx)
	cerr := s.w.Close(ctx)
	if !s.ended {
		// The task failed or was cancelled: do not report a second error.
		return nil
	}
	if aerr != nil {
		return fmt.Errorf("sink %s: abort: %w", s.tc.Vertex.Name, aerr)
	}
	if cerr != nil {
		return fmt.Errorf("sink %s: close: %w", s.tc.Vertex.Name, cerr)
	}
	return nil
}

func encodeTxn(t pendingTxn) []byte {
	b := []byte{txnItemVersion}
	b = binary.AppendUvarint(b, t.checkpoint)
	return appendSnapBytes(b, t.data)
}

func decodeTxns(items [][]byte) ([]pendingTxn, error) {
	txns := make([]pendingTxn, 0, len(items))
	for i, it := range items {
		r := snapReader{b: it}
		if v := r.byte(); r.err == nil && v != txnItemVersion {
			return nil, fmt.Errorf("transaction %d: %w: format %d (this SDK reads %d)", i, errSnapshotVersion, v, txnItemVersion)
		}
		id, data := r.uvarint(), r.bytes()
		if r.err == nil && len(r.b) != 0 {
			r.err = fmt.Errorf("%w: %d bytes after the transaction", errSnapshotCorrupt, len(r.b))
		}
		if r.err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, r.err)
		}
		txns = append(txns, pendingTxn{checkpoint: id, data: data})
	}
	return txns, nil
}
