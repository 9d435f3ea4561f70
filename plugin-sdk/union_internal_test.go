package sdk

import (
	"slices"
	"testing"
)

type wmRecorder struct{ wms []int64 }

func (r *wmRecorder) Process(int, int64) error { return nil }
func (r *wmRecorder) Watermark(ts int64) error { r.wms = append(r.wms, ts); return nil }
func (r *wmRecorder) End() error               { return nil }

// TestUnionLeavesIdleInputsOut: an idle input does not hold the union's
// watermark back, and holds it again once active.
func TestUnionLeavesIdleInputsOut(t *testing.T) {
	out := &wmRecorder{}
	u := &unionOp[int]{out: out, wms: []int64{MinWatermark, MinWatermark}, idle: make([]bool, 2), wm: MinWatermark, open: 2}
	a, b := &unionInput[int]{u: u, i: 0}, &unionInput[int]{u: u, i: 1}
	steps := []func() error{
		func() error { return a.Watermark(100) },  // b has none yet: held
		func() error { return b.InputIdle(true) }, // b idle: 100 passes
		func() error { return a.Watermark(200) },  // 200 passes
		func() error { return b.InputIdle(false) },
		func() error { return b.Watermark(150) }, // b active and behind: held at 200
		func() error { return b.Watermark(300) }, // min(200, 300) = 200: nothing new
		func() error { return a.Watermark(400) }, // 300
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if want := []int64{100, 200, 300}; !slices.Equal(out.wms, want) {
		t.Fatalf("watermarks %v, want %v", out.wms, want)
	}
}
