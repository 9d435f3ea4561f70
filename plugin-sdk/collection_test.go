package sdk

import (
	"context"
	"slices"
	"testing"
)

type fixedCtx struct{ sub, par int }

func (c fixedCtx) Subtask() int     { return c.sub }
func (c fixedCtx) Parallelism() int { return c.par }

type gather[T any] struct{ out []T }

func (g *gather[T]) Collect(v T) { g.out = append(g.out, v) }

// TestSliceResumesAtAnotherParallelism reads part of the splits made at
// parallelism 4, then resumes them at parallelism 2: every record once.
func TestSliceResumesAtAnotherParallelism(t *testing.T) {
	ctx := context.Background()
	records := make([]int, 10000)
	for i := range records {
		records[i] = i
	}
	src := FromSlice(records)
	splits, err := src.Splits(ctx, fixedCtx{0, 4})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	var snap []Split
	for sub := range 4 {
		r, err := src.Open(ctx, fixedCtx{sub, 4}, splits[sub:sub+1])
		if err != nil {
			t.Fatal(err)
		}
		g := &gather[int]{}
		if _, err := r.Read(ctx, g); err != nil { // one batch only
			t.Fatal(err)
		}
		got = append(got, g.out...)
		s, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		snap = append(snap, s...)
	}
	for sub := range 2 {
		var mine []Split
		for i, s := range snap {
			if i%2 == sub {
				mine = append(mine, s)
			}
		}
		r, err := src.Open(ctx, fixedCtx{sub, 2}, mine)
		if err != nil {
			t.Fatal(err)
		}
		g := &gather[int]{}
		for {
			st, err := r.Read(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if st == Done {
				break
			}
		}
		got = append(got, g.out...)
	}
	slices.Sort(got)
	if !slices.Equal(got, records) {
		t.Fatalf("got %d records after resuming, want each of %d once", len(got), len(records))
	}
}
