package netx

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// BenchmarkExchangeThroughput sends 32 KiB batches of 16-byte records over
// loopback to a consumer task that decodes and counts them; one op is one
// batch. "local" is the in-memory path for comparison.
func BenchmarkExchangeThroughput(b *testing.B) {
	for _, remote := range []bool{true, false} {
		for _, channels := range []int{1, 4} {
			name := fmt.Sprintf("local/channels=%d", channels)
			if remote {
				name = fmt.Sprintf("remote/channels=%d", channels)
			}
			b.Run(name, func(b *testing.B) { benchThroughput(b, remote, channels) })
		}
	}
}

func benchThroughput(b *testing.B, remote bool, channels int) {
	const perBatch = engine.BatchSize / recSize
	pl := newPlacement()
	quiet := func(c *Config) { c.Logger = nil }
	a, c := startProcess(b, pl, quiet), startProcess(b, pl, quiet)
	if !remote {
		c = a
	}
	var records atomic.Int64
	src := &engine.Vertex{ID: 0, Name: "source", Kind: "source", Parallelism: channels, Out: engine.TypeOf[rec](recCodec{})}
	sink := sinkVertex(1, src, pluginpb.Partitioning_PARTITIONING_BROADCAST, 1, func(int) engine.Output[rec] {
		var n int64
		return sinkOutput[rec]{
			process: func(rec) error { n++; return nil },
			end:     func() error { records.Add(n); return nil },
		}
	})
	plan, err := engine.NewPlan("bench", []*engine.Vertex{src, sink}, 1, 128)
	if err != nil {
		b.Fatal(err)
	}
	for s := range channels {
		pl.set(0, s, a.addr)
	}
	j := newJob(plan, "bench", pl, func(chain, _ int) *process {
		if chain == 1 {
			return c
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wait := j.start(ctx)
	ws := make([]engine.ChannelWriter, channels)
	for s := range ws {
		ws[s], err = a.x.Open(ctx, engine.ChannelKey{JobID: "bench", Attempt: 1, FromChain: 0, FromSubtask: s, ToChain: 1, ToVertex: 1})
		if err != nil {
			b.Fatal(err)
		}
	}
	var batch []byte
	for i := range perBatch {
		batch = recCodec{}.Append(batch, rec{Seq: uint64(i)})
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for s, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := b.N / channels
			if s < b.N%channels {
				n++
			}
			for range n {
				if err := w.WriteBatch(ctx, batch, perBatch); err != nil {
					b.Error(err)
					return
				}
			}
			if err := w.WriteEvent(ctx, engine.Event{Kind: engine.EventEnd}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := wait(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got, want := records.Load(), int64(b.N)*perBatch; got != want {
		b.Fatalf("%d records arrived, want %d", got, want)
	}
	b.ReportMetric(float64(b.N)*perBatch/elapsed.Seconds(), "records/s")
	if remote {
		b.ReportMetric(float64(a.x.Stats().CreditWaits)/float64(b.N), "waits/op")
	}
}
