package sdk_test

import (
	"context"
	"fmt"
	"testing"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// benchRecord is a record of the keyed count benchmarks.
type benchRecord struct {
	Key   int64
	Count int64
}

// BenchmarkKeyedCount is the job of examples/keyedcount (and of
// test/bench/keyedcount) run by RunLocal at parallelism 1, where the whole
// job is one chain, next to the hand-written loop it is measured against;
// one op is one record, so that ns/op compare directly. It runs with the
// example's 100,000 keys, whose state does not fit in a core's caches, and
// with 1,000, whose state does: the difference is the cost of cache misses.
// Run it on one core, and profile the local job:
//
//	go test ./plugin-sdk -run '^$' -bench KeyedCount -cpu 1 -count 5
//	go test ./plugin-sdk -run '^$' -bench 'KeyedCount/keys=100000/local' -cpu 1 -cpuprofile cpu.out
func BenchmarkKeyedCount(b *testing.B) {
	for _, keys := range []int64{100_000, 1_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			b.Run("hand", func(b *testing.B) { benchKeyedCountHand(b, keys) })
			b.Run("local", func(b *testing.B) { benchKeyedCountLocal(b, keys) })
		})
	}
}

func benchKeyedCountHand(b *testing.B, keys int64) {
	counts := map[int64]int64{}
	for i := range int64(b.N) {
		r := benchRecord{Key: i * 7919 % keys, Count: 1}
		counts[r.Key] += r.Count
	}
	b.StopTimer()
	var total int64
	for _, c := range counts {
		total += c
	}
	if total != int64(b.N) {
		b.Fatalf("counted %d records, want %d", total, b.N)
	}
}

func benchKeyedCountLocal(b *testing.B, keys int64) {
	job := sdk.NewJob("keyedcount")
	records := sdk.FromSource(job, sdk.Generate(int64(b.N), func(i int64) benchRecord {
		return benchRecord{Key: i * 7919 % keys, Count: 1}
	}), sdk.WithUID("records"))
	counts := sdk.Reduce(sdk.KeyBy(records, func(r benchRecord) int64 { return r.Key }),
		func(acc, r benchRecord) benchRecord { return benchRecord{Key: acc.Key, Count: acc.Count + r.Count} },
		sdk.WithUID("count"))
	sink := &countSink{}
	sdk.SinkTo(counts, sink, sdk.WithUID("discard"))
	b.ReportAllocs()
	if err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if sink.n != int64(b.N) {
		b.Fatalf("the sink received %d records, want %d", sink.n, b.N)
	}
}

// countSink counts the records of its one subtask.
type countSink struct{ n int64 }

func (s *countSink) Open(context.Context, sdk.SinkContext) (sdk.Writer[benchRecord], error) {
	return s, nil
}

func (s *countSink) Write(context.Context, benchRecord) error { s.n++; return nil }
func (s *countSink) Flush(context.Context) error              { return nil }
func (s *countSink) Close(context.Context) error              { return nil }
