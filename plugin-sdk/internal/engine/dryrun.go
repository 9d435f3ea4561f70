package engine

import (
	"context"
	"fmt"
)

// BuildRestored builds the operator of one subtask of vertex v of the
// plan, as a task would, with restored as the state it starts from, and
// closes it without running it. The operator registers its state and reads
// the restored state through its codecs as it does when a task starts, so
// that a restore the job cannot take is found before any task starts. The
// operator's outputs discard and its timers are not scheduled.
func (p *Plan) BuildRestored(ctx context.Context, v *Vertex, subtask int, restored *OperatorSnapshot, allowNonRestored bool) (err error) {
	tc := newTaskContext(ctx, p, v, subtask)
	tc.Sides, tc.Restored, tc.AllowNonRestored = map[string]any{}, restored, allowNonRestored
	for name, typ := range v.Sides {
		tc.Sides[name] = typ.discard()
	}
	var out any
	if v.Out != nil {
		out = v.Out.discard()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("build %s: panic: %v", v.Name, r)
		}
	}()
	op, err := v.Build(tc, out)
	if err != nil {
		return fmt.Errorf("build %s: %w", v.Name, err)
	}
	if op != nil && op.Close != nil {
		if err := op.Close(); err != nil {
			return fmt.Errorf("close %s: %w", v.Name, err)
		}
	}
	return nil
}
