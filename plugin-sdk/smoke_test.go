package sdk_test

import (
	"context"
	"strings"
	"testing"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

type wc struct {
	Word  string
	Count int
}

func TestSmokeWordCount(t *testing.T) {
	for _, p := range []int{1, 4} {
		lines := []string{"a b c", "a b", "a", "d d d d"}
		job := sdk.NewJob("wc")
		src := sdk.FromSource(job, sdk.FromSlice(lines), sdk.WithUID("src"))
		words := sdk.FlatMap(src, func(l string, out sdk.Collector[wc]) {
			for _, w := range strings.Fields(l) {
				out.Collect(wc{w, 1})
			}
		})
		counts := sdk.Reduce(sdk.KeyBy(words, func(w wc) string { return w.Word }), func(a, b wc) wc { return wc{a.Word, a.Count + b.Count} }, sdk.WithUID("count"))
		out := sdk.Collect[wc]()
		sdk.SinkTo(counts, out)
		if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(p)); err != nil {
			t.Fatal(err)
		}
		final := map[string]int{}
		for _, r := range out.Records() {
			final[r.Word] = max(final[r.Word], r.Count)
		}
		if final["a"] != 3 || final["b"] != 2 || final["c"] != 1 || final["d"] != 4 {
			t.Fatalf("p=%d: %v", p, final)
		}
	}
}
