package nexmark

import (
	"math"
	"testing"
)

func TestPow10(t *testing.T) {
	for i := range 1_000_000 {
		x := float64(i) / 1_000_000 * 6
		got, want := pow10(x), math.Pow(10, x)
		if math.Abs(got-want) > 1e-12*want {
			t.Fatalf("pow10(%v) = %v, want %v", x, got, want)
		}
	}
}
