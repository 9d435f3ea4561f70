package sdk_test

import (
	"context"
	"testing"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

type genSrc struct{ n int64 }

func (g genSrc) Splits(context.Context, sdk.SourceContext) ([]sdk.Split, error) {
	return []sdk.Split{{ID: "0"}}, nil
}
func (g genSrc) Open(context.Context, sdk.SourceContext, []sdk.Split) (sdk.Reader[int64], error) {
	return &genReader{n: g.n}, nil
}

type genReader struct{ i, n int64 }

func (r *genReader) Read(_ context.Context, out sdk.Collector[int64]) (sdk.ReadStatus, error) {
	for k := 0; k < 1024 && r.i < r.n; k++ {
		out.Collect(r.i * 7919 % 100000)
		r.i++
	}
	if r.i >= r.n {
		return sdk.Done, nil
	}
	return sdk.More, nil
}
func (r *genReader) Snapshot() ([]sdk.Split, error) { return nil, nil }
func (r *genReader) Close() error                   { return nil }

type nullSink struct{}

func (nullSink) Open(context.Context, sdk.SinkContext) (sdk.Writer[int64], error) {
	return nullW{}, nil
}

type nullW struct{}

func (nullW) Write(context.Context, int64) error { return nil }
func (nullW) Flush(context.Context) error        { return nil }
func (nullW) Close(context.Context) error        { return nil }

func BenchmarkSmokeKeyedCountLocal(b *testing.B) {
	job := sdk.NewJob("kc")
	src := sdk.FromSource(job, genSrc{int64(b.N)}, sdk.WithUID("src"))
	counts := sdk.Reduce(sdk.KeyBy(src, func(k int64) int64 { return k }), func(a, v int64) int64 { return a + 1 }, sdk.WithUID("count"))
	sdk.SinkTo(counts, nullSink{})
	b.ResetTimer()
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSmokeKeyedCountHand(b *testing.B) {
	m := map[int64]int64{}
	for i := int64(0); i < int64(b.N); i++ {
		m[i*7919%100000]++
	}
}
