package sdk

// Tests that drive one interval join subtask by hand, record by record and
// watermark by watermark, to check its edges exactly: which pairs match,
// when a record's buffer entry goes, which records are late.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

type ijhRec struct {
	K  string
	ID string
}

// ijhOutput logs what the join emits.
type ijhOutput struct{ log []string }

func (o *ijhOutput) Process(v string, ts int64) error {
	o.log = append(o.log, fmt.Sprintf("%s@%d", v, ts))
	return nil
}
func (o *ijhOutput) Watermark(ts int64) error {
	o.log = append(o.log, fmt.Sprint("wm ", ts))
	return nil
}
func (o *ijhOutput) End() error { o.log = append(o.log, "end"); return nil }

func (o *ijhOutput) take() []string {
	l := o.log
	o.log = nil
	return l
}

// ijHarness is one subtask of an interval join owning every key group.
type ijHarness struct {
	t           *testing.T
	left, right engine.Output[ijhRec]
	out         *ijhOutput
	op          *twoInputOp[string, ijhRec, ijhRec, string]
}

func newIJHarness(t *testing.T, lower, upper time.Duration) *ijHarness {
	t.Helper()
	job := NewJob("harness")
	key := func(r ijhRec) string { return r.K }
	a := KeyBy(FromSource(job, FromSlice([]ijhRec(nil)), WithUID("source-1")), key)
	b := KeyBy(FromSource(job, FromSlice([]ijhRec(nil)), WithUID("source-2")), key)
	s := IntervalJoin(a, b, lower, upper, func(x, y ijhRec) string { return x.ID + "+" + y.ID }, WithUID("join"))
	if len(job.errs) > 0 {
		t.Fatal(job.errs)
	}
	h := &ijHarness{t: t, out: &ijhOutput{}}
	tc := &engine.TaskContext{JobName: "harness", Vertex: s.v, Parallelism: 1, MaxParallelism: 128,
		KeyGroups: keygroup.Range{Start: 0, End: 128}, Ctx: context.Background(), Sides: map[string]any{}}
	op, err := s.v.Build(tc, engine.Output[string](h.out))
	if err != nil {
		t.Fatal(err)
	}
	h.left, h.right = op.Inputs[0].(engine.Output[ijhRec]), op.Inputs[1].(engine.Output[ijhRec])
	h.op = op.Inputs[0].(firstInput[string, ijhRec, ijhRec, string]).op
	return h
}

func (h *ijHarness) l(id string, ts int64) { h.t.Helper(); h.do(h.left.Process(ijhRec{"k", id}, ts)) }
func (h *ijHarness) r(id string, ts int64) { h.t.Helper(); h.do(h.right.Process(ijhRec{"k", id}, ts)) }

// wm brings both inputs to watermark ts.
func (h *ijHarness) wm(ts int64) {
	h.t.Helper()
	h.do(h.left.Watermark(ts))
	h.do(h.right.Watermark(ts))
}

func (h *ijHarness) do(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// buffered returns the timestamps buffered on each side, sorted.
func (h *ijHarness) buffered() (left, right []int64) {
	h.t.Helper()
	be := h.op.core.be
	count := func(name string) []int64 {
		var out []int64
		switch s := be.states[name].(type) {
		case *mapState[int64, []ijhRec]:
			for _, tab := range s.t.t {
				for e := range tab.all() {
					for ts := range e.val {
						out = append(out, ts)
					}
				}
			}
		default:
			h.t.Fatalf("state %s is a %T", name, s)
		}
		slices.Sort(out)
		return out
	}
	return count("interval-join-left"), count("interval-join-right")
}

func (h *ijHarness) expect(what string, want ...string) {
	h.t.Helper()
	if got := h.out.take(); !slices.Equal(got, want) {
		h.t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func (h *ijHarness) expectBuffered(what string, left, right []int64) {
	h.t.Helper()
	l, r := h.buffered()
	if !slices.Equal(l, left) || !slices.Equal(r, right) {
		h.t.Errorf("%s: buffered left %v right %v, want %v and %v", what, l, r, left, right)
	}
}

// The bounds are inclusive on both ends, pairs are stamped with the later
// time, a record's buffer entry goes exactly when the watermark makes a
// match impossible, and records at or below the watermark are late.
func TestIntervalJoinEdgesByHand(t *testing.T) {
	h := newIJHarness(t, -2*time.Millisecond, 3*time.Millisecond)
	// b.ts in [a.ts-2, a.ts+3].
	h.l("a10", 10)
	h.r("b7", 7)   // below a10's interval
	h.r("b8", 8)   // its lower edge
	h.r("b13", 13) // its upper edge
	h.r("b14", 14) // above
	h.expect("edges", "a10+b8@10", "a10+b13@13")
	h.l("a11", 11) // matches b13 and b14 ([9, 14]), in time order
	h.expect("second left", "a11+b13@13", "a11+b14@14")
	h.expectBuffered("before any watermark", []int64{10, 11}, []int64{7, 8, 13, 14})

	// A left record at ts is kept until ts+3: right records above the
	// watermark may still reach it. A right record until ts+2.
	h.wm(9) // right 7 goes (7+2 <= 9)
	h.expect("wm 9", "wm 9")
	h.expectBuffered("at 9", []int64{10, 11}, []int64{8, 13, 14})
	h.wm(12) // right 8 goes (8+2 <= 12); left 10 stays until 13
	h.expect("wm 12", "wm 12")
	h.expectBuffered("at 12", []int64{10, 11}, []int64{13, 14})
	h.r("b13b", 13) // in time: 13 > 12; still meets a10 (upper edge) and a11
	h.expect("late-ish right", "a10+b13b@13", "a11+b13b@13")
	h.wm(13) // left 10 goes: no right record at or below 13 can come
	h.expect("wm 13", "wm 13")
	h.expectBuffered("at 13", []int64{11}, []int64{13, 14})

	// Late records: at or below the watermark, dropped, not buffered.
	h.l("late", 13)
	h.r("late", 12)
	h.expect("late records")
	h.expectBuffered("after late records", []int64{11}, []int64{13, 14})
	// One just above the watermark is in time.
	h.l("a14", 14) // [12, 17]: b13, b13b, b14
	h.expect("in time", "a14+b13@14", "a14+b13b@14", "a14+b14@14")

	// The end of both inputs flushes everything.
	h.do(h.left.End())
	h.expect("one input ended") // the other still holds the watermark
	h.do(h.right.End())
	h.expect("both ended", fmt.Sprint("wm ", MaxWatermark), "end")
	h.expectBuffered("at the end", nil, nil)
	if n := h.op.core.timers.event.len(); n != 0 {
		t.Errorf("%d timers left", n)
	}
}

// With bounds entirely below zero the cleanup times are the records' own
// (Flink's rule): left at ts, right at ts-lower.
func TestIntervalJoinNegativeBoundsByHand(t *testing.T) {
	h := newIJHarness(t, -10*time.Millisecond, -5*time.Millisecond)
	// b.ts in [a.ts-10, a.ts-5].
	h.r("b0", 0)
	h.r("b5", 5)
	h.l("a10", 10) // [0, 5]
	h.l("a16", 16) // [6, 11]
	h.expect("matches", "a10+b0@10", "a10+b5@10")
	h.wm(10) // right 0 kept until 10, goes; left 10 kept until 10, goes
	h.expectBuffered("at 10", []int64{16}, []int64{5})
	h.wm(15) // right 5 goes at 15
	h.expectBuffered("at 15", []int64{16}, nil)
	h.r("b16", 16) // in time; a16 wants [6, 11]: no
	h.r("b11", 11) // late
	h.expect("after", "wm 10", "wm 15")
	h.wm(16)
	h.expectBuffered("at 16", nil, []int64{16})
}

// A record without a timestamp fails the join.
func TestIntervalJoinNeedsTimestamps(t *testing.T) {
	h := newIJHarness(t, 0, time.Millisecond)
	if err := h.left.Process(ijhRec{"k", "x"}, NoTimestamp); err == nil {
		t.Fatal("no error for a record without a timestamp")
	}
}
