package keygroup

import (
	"fmt"
	"testing"
)

// TestHashStable pins hash values: they decide where state lives, so a
// change here breaks every savepoint.
func TestHashStable(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint64
	}{
		{"", 0xefd01f60ba992926},
		{"a", 0x82a2a958a9bece5b},
		{"hello", 0xe9c562c0fdb23244},
	} {
		if got := Hash([]byte(tc.key)); got != tc.want {
			t.Errorf("Hash(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
}

func TestRangesPartitionKeyGroups(t *testing.T) {
	for _, maxP := range []int{1, 7, 128, 1000} {
		for p := 1; p <= maxP && p <= 64; p++ {
			t.Run(fmt.Sprintf("max%d_p%d", maxP, p), func(t *testing.T) {
				next := 0
				for s := range p {
					r := For(s, maxP, p)
					if r.Start != next {
						t.Fatalf("subtask %d starts at %d, want %d", s, r.Start, next)
					}
					for kg := r.Start; kg < r.End; kg++ {
						if got := Subtask(kg, maxP, p); got != s {
							t.Fatalf("key group %d: Subtask %d, range of %d", kg, got, s)
						}
					}
					next = r.End
				}
				if next != maxP {
					t.Fatalf("ranges end at %d, want %d", next, maxP)
				}
			})
		}
	}
}

func TestKeysSpread(t *testing.T) {
	const maxP, n = 128, 100000
	counts := make([]int, maxP)
	for i := range n {
		counts[Of([]byte(fmt.Sprintf("key-%d", i)), maxP)]++
	}
	for kg, c := range counts {
		// Expect n/maxP = 781 per group; allow generous slack.
		if c < 600 || c > 980 {
			t.Fatalf("key group %d has %d keys of %d", kg, c, n)
		}
	}
}
