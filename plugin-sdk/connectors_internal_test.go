package sdk

import (
	"math"
	"testing"
	"time"
)

func TestSplitRange(t *testing.T) {
	cases := []struct {
		first, last int64
		parts       int
	}{
		{0, 9, 1}, {0, 9, 4}, {0, 3, 4}, {0, 2, 4}, {5, 5, 3}, {-10, 10, 7},
		{math.MinInt64, math.MaxInt64, 1},
		{math.MinInt64, math.MaxInt64, 2},
		{math.MinInt64, math.MaxInt64, 5},
		{math.MaxInt64 - 3, math.MaxInt64, 8},
	}
	for _, c := range cases {
		rs := splitRange(c.first, c.last, c.parts)
		if len(rs) == 0 || len(rs) > c.parts {
			t.Fatalf("splitRange(%d, %d, %d) = %v", c.first, c.last, c.parts, rs)
		}
		if rs[0][0] != c.first || rs[len(rs)-1][1] != c.last {
			t.Fatalf("splitRange(%d, %d, %d) = %v: does not cover the interval", c.first, c.last, c.parts, rs)
		}
		var smallest, largest uint64 = math.MaxUint64, 0
		for i, r := range rs {
			if r[1] < r[0] {
				t.Fatalf("splitRange(%d, %d, %d): empty range %v", c.first, c.last, c.parts, r)
			}
			if i > 0 && r[0] != rs[i-1][1]+1 {
				t.Fatalf("splitRange(%d, %d, %d) = %v: gap or overlap at %d", c.first, c.last, c.parts, rs, i)
			}
			size := uint64(r[1]) - uint64(r[0]) // size minus one
			smallest, largest = min(smallest, size), max(largest, size)
		}
		if largest-smallest > 1 {
			t.Fatalf("splitRange(%d, %d, %d) = %v: uneven", c.first, c.last, c.parts, rs)
		}
	}
}

func TestProgressionStateRoundTrip(t *testing.T) {
	for _, p := range []progression{
		{next: math.MinInt64, last: math.MaxInt64, step: 1},
		{next: math.MaxInt64, last: math.MaxInt64, step: 1, done: true},
		{next: 3, step: 4, unbounded: true},
	} {
		got, err := decodeProgression(p.encode())
		if err != nil || got != p {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", p, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 2}, {1, 0, 0, 0, 0}, {1, 0, 4, 2, 2}, {1, 0, 0, 0, 2, 9}} {
		if _, err := decodeProgression(bad); err == nil {
			t.Fatalf("decodeProgression(%v) accepted corrupt state", bad)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := &limiter{rate: 100, burst: 10}
	t0 := time.Unix(1000, 0)
	if n := l.take(256, t0); n != 1 {
		t.Fatalf("first take = %d, want the one starting token", n)
	}
	if n := l.take(256, t0); n != 0 {
		t.Fatalf("take at the same instant = %d, want 0", n)
	}
	if n := l.take(256, t0.Add(50*time.Millisecond)); n != 5 {
		t.Fatalf("take after 50ms at 100/s = %d, want 5", n)
	}
	if n := l.take(3, t0.Add(time.Hour)); n != 3 {
		t.Fatalf("take(3) after a pause = %d, want 3", n)
	}
	if n := l.take(256, t0.Add(time.Hour)); n != 7 {
		t.Fatalf("take after a pause = %d, want the rest of the burst of 10, 7", n)
	}
}
