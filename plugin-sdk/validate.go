package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// This file checks, before any task of a job starts, that the job can
// restore a savepoint (or checkpoint): its _metadata reads and is of a
// format this SDK knows, the max parallelism is the job's, every operator
// with state has its UID in the job (unless the restore allows dropping
// state), and every state blob decodes with the codec of the operator
// that restores it. The last is a dry run of the restore of every
// operator subtask that has state: the subtask's operator is built with
// its part of the state, exactly as a task builds it, and closed without
// running. Sinks are the exception: building one opens its writer (and a
// transactional one commits the transactions it restores), so only the
// state they are handed is decoded.

// validateRestore checks that the job planned at parallelism p can restore
// spec, and says what does not fit and where.
func (s *taskExecutor) validateRestore(ctx context.Context, jobID string, spec *pluginpb.RestoreSpec, p int) error {
	url := spec.GetUrl()
	if url == "" {
		return errors.New("restore: the savepoint's url is required")
	}
	plan, err := s.job.plan(p)
	if err != nil {
		return fmt.Errorf("restore from %s: plan job %s at parallelism %d: %w", url, s.job.name, p, err)
	}
	var tasks []engine.TaskKey
	for _, c := range plan.Chains {
		for st := range c.Parallelism {
			tasks = append(tasks, engine.TaskKey{JobID: jobID, Chain: c.ID, Subtask: st})
		}
	}
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := newRestorer(vctx, spec, plan, jobID, 0, tasks)
	if err := r.load(); err != nil {
		return err
	}
	for _, k := range tasks {
		c := plan.Chains[k.Chain]
		for _, v := range c.Vertices {
			if err := r.validateSubtask(vctx, v, k.Subtask, c.Parallelism); err != nil {
				return fmt.Errorf("restore from %s: operator %q subtask %d: %w", url, v.UID, k.Subtask, err)
			}
		}
	}
	return nil
}

// validateSubtask reads the state subtask of v restores, and dry-runs its
// restore. A failure names the state file whose content the operator
// cannot take.
func (r *restorer) validateSubtask(ctx context.Context, v *engine.Vertex, subtask, parallelism int) error {
	a, err := checkpoint.Assign(r.meta, v.UID, subtask, parallelism, r.groups(subtask, parallelism), r.plan.MaxParallelism)
	if err != nil {
		return err
	}
	if a == nil {
		return nil // not in the savepoint: the operator starts empty
	}
	data := map[string][]byte{}
	for _, f := range a.Files() {
		b, err := r.file(f, a.Sizes[f])
		if err != nil {
			return err
		}
		data[f] = b
	}
	if len(a.KeyGroups) == 0 && len(a.Items) == 0 {
		return nil // in the savepoint without state: nothing to decode
	}
	dry := func(snap *engine.OperatorSnapshot) error {
		if v.Kind == kindSink {
			return validateSinkState(snap, r.allowNonRestored)
		}
		return r.plan.BuildRestored(ctx, v, subtask, snap, r.allowNonRestored)
	}
	err = dry(snapshotOf(a, data, ""))
	if err == nil {
		return nil
	}
	files := a.Files()
	switch len(files) {
	case 0:
		return err
	case 1:
		return fmt.Errorf("in %s: %w", files[0], err)
	}
	// Name the state file the operator cannot take, when one alone makes
	// the restore fail.
	for _, f := range files {
		if ferr := dry(snapshotOf(a, data, f)); ferr != nil {
			return fmt.Errorf("in %s: %w", f, ferr)
		}
	}
	return fmt.Errorf("in %v: %w", files, err)
}

// snapshotOf assembles the state of a subtask's restore from the files'
// contents, only the parts in file if it is not "".
func snapshotOf(a *checkpoint.SubtaskRestore, data map[string][]byte, file string) *engine.OperatorSnapshot {
	snap := &engine.OperatorSnapshot{}
	for _, p := range a.KeyGroups {
		if file != "" && p.File != file {
			continue
		}
		if snap.KeyGroups == nil {
			snap.KeyGroups = map[int][]byte{}
		}
		snap.KeyGroups[p.KeyGroup] = data[p.File][p.Offset : p.Offset+p.Length : p.Offset+p.Length]
	}
	for _, p := range a.Items {
		if file != "" && p.File != file {
			continue
		}
		snap.Items = append(snap.Items, data[p.File][p.Offset:p.Offset+p.Length:p.Offset+p.Length])
	}
	return snap
}

// validateSinkState checks the state a sink restores as its build would,
// without opening the sink: keyed state is another kind of operator's, and
// the items are the transactions of a transactional sink.
func validateSinkState(snap *engine.OperatorSnapshot, allowNonRestored bool) error {
	if len(snap.KeyGroups) > 0 && !allowNonRestored {
		return errors.New("keyed state for a sink (another kind of operator had this uid?)")
	}
	if _, err := decodeTxns(snap.Items); err != nil {
		return fmt.Errorf("the sink's transactions: %w", err)
	}
	return nil
}
