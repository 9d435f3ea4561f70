package netx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// checkSink is one sink subtask of the pipeline job: it checks that the
// records of every source arrive in order, that no record arrives behind a
// watermark, and that every watermark arrives after the records before it.
type checkSink struct {
	seqs       [2][]uint64
	last       [2]int64
	wm         int64
	watermarks int
	ended      bool
}

func newCheckSink() *checkSink { return &checkSink{last: [2]int64{-1, -1}, wm: math.MinInt64} }

func (s *checkSink) output() engine.Output[rec] {
	return sinkOutput[rec]{
		process: func(r rec) error {
			if r.Src > 1 {
				return fmt.Errorf("record from source %d", r.Src)
			}
			if int64(r.Seq) <= s.last[r.Src] {
				return fmt.Errorf("source %d: record %d after %d", r.Src, r.Seq, s.last[r.Src])
			}
			if int64(r.Seq) <= s.wm {
				return fmt.Errorf("source %d: record %d behind watermark %d", r.Src, r.Seq, s.wm)
			}
			s.last[r.Src] = int64(r.Seq)
			s.seqs[r.Src] = append(s.seqs[r.Src], r.Seq)
			return nil
		},
		watermark: func(ts int64) error {
			if ts <= s.wm {
				return fmt.Errorf("watermark %d after %d", ts, s.wm)
			}
			if ts == engine.MaxWatermark {
				// The final watermark, at the end of input.
				s.wm = ts
				return nil
			}
			// Records alternate between the two sinks: the last record at
			// or before ts that was meant for this one is ts or ts-1.
			for src, last := range s.last {
				if last < ts-1 {
					return fmt.Errorf("watermark %d arrived before record %d of source %d", ts, ts-1, src)
				}
			}
			s.wm = ts
			s.watermarks++
			return nil
		},
		end: func() error {
			s.ended = true
			return nil
		},
	}
}

// pipeline is a job of two source subtasks that emit n records each, with
// a watermark every 1000, round robin to two sink subtasks.
func pipeline(t *testing.T, n int, sinks []*checkSink) *engine.Plan {
	t.Helper()
	src := &engine.Vertex{
		ID: 0, Name: "source", Kind: "source", Parallelism: 2, Out: engine.TypeOf[rec](recCodec{}),
		Build: func(tc *engine.TaskContext, out any) (*engine.Operator, error) {
			o := out.(engine.Output[rec])
			return &engine.Operator{Run: func(ctx context.Context, idle func()) error {
				for i := range n {
					if err := o.Process(rec{Src: uint64(tc.Subtask), Seq: uint64(i)}, int64(i)); err != nil {
						return err
					}
					if i%1000 == 999 {
						if err := o.Watermark(int64(i)); err != nil {
							return err
						}
					}
					if i%4096 == 0 {
						if err := tc.MaybeFlush(); err != nil {
							return err
						}
					}
				}
				return o.End()
			}}, nil
		},
	}
	sink := sinkVertex(1, src, pluginpb.Partitioning_PARTITIONING_REBALANCE, 2,
		func(s int) engine.Output[rec] { return sinks[s].output() })
	plan, err := engine.NewPlan("pipeline", []*engine.Vertex{src, sink}, 2, 128)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Chains) != 2 {
		t.Fatalf("plan has %d chains, want 2", len(plan.Chains))
	}
	return plan
}

// runPipeline runs the pipeline with the sources on a and sink subtask s on
// sinkAt[s], and checks that every record arrived once and in order.
func runPipeline(t *testing.T, n int, a *process, sinkAt [2]*process, pl *placement) {
	t.Helper()
	sinks := []*checkSink{newCheckSink(), newCheckSink()}
	plan := pipeline(t, n, sinks)
	j := newJob(plan, "pipeline-"+t.Name(), pl, func(chain, subtask int) *process {
		if chain == 0 {
			return a
		}
		return sinkAt[subtask]
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := j.start(ctx)(); err != nil {
		t.Fatal(err)
	}
	for src := range 2 {
		var all []uint64
		for i, s := range sinks {
			if !s.ended {
				t.Fatalf("sink %d did not end", i)
			}
			if s.watermarks == 0 {
				t.Errorf("sink %d saw no watermark", i)
			}
			all = append(all, s.seqs[src]...)
		}
		slices.Sort(all)
		if len(all) != n {
			t.Fatalf("source %d: %d records arrived, want %d", src, len(all), n)
		}
		for i, seq := range all {
			if seq != uint64(i) {
				t.Fatalf("source %d: record %d missing or duplicated (found %d at %d)", src, i, seq, i)
			}
		}
	}
}

// TestPipeline sends 200k records from two producer tasks on one process to
// two consumer tasks on another (or one local and one remote), with
// watermarks and end of input, through the engine's encoders.
func TestPipeline(t *testing.T) {
	const n = 100_000 // per source subtask
	for _, tc := range []struct {
		name       string
		sinkOnA    [2]bool
		wantRemote uint64
		wantLocal  uint64
	}{
		{name: "remote", wantRemote: 4},
		{name: "mixed", sinkOnA: [2]bool{true, false}, wantRemote: 2, wantLocal: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := newPlacement()
			a, b := startProcess(t, pl), startProcess(t, pl)
			var sinkAt [2]*process
			for s, onA := range tc.sinkOnA {
				sinkAt[s] = b
				if onA {
					sinkAt[s] = a
				}
			}
			runPipeline(t, n, a, sinkAt, pl)
			sa, sb := a.x.Stats(), b.x.Stats()
			t.Logf("producer: %+v", sa)
			t.Logf("consumer: %+v", sb)
			if sa.RemoteChannels != tc.wantRemote || sb.AcceptedChannels != tc.wantRemote || sa.LocalChannels != tc.wantLocal {
				t.Errorf("channels: %d remote, %d accepted by the peer, %d local; want %d, %d, %d",
					sa.RemoteChannels, sb.AcceptedChannels, sa.LocalChannels, tc.wantRemote, tc.wantRemote, tc.wantLocal)
			}
			if sa.FramesSent != sb.FramesReceived || sa.BytesSent != sb.BytesReceived {
				t.Errorf("sent %d frames (%d bytes), received %d (%d bytes)", sa.FramesSent, sa.BytesSent, sb.FramesReceived, sb.BytesReceived)
			}
			if sb.PeakInFlight > engine.Credits {
				t.Errorf("peak in flight %d frames, want at most %d", sb.PeakInFlight, engine.Credits)
			}
		})
	}
}

// TestLocalPlacementOpensNoStream runs the pipeline inside one process: its
// channels are the engine's in-memory ones, and no gRPC stream is opened.
func TestLocalPlacementOpensNoStream(t *testing.T) {
	pl := newPlacement()
	a, b := startProcess(t, pl), startProcess(t, pl)
	runPipeline(t, 20_000, a, [2]*process{a, a}, pl)
	sa, sb := a.x.Stats(), b.x.Stats()
	if sa.LocalChannels != 4 {
		t.Errorf("%d local channels, want 4", sa.LocalChannels)
	}
	if sa.RemoteChannels+sa.AcceptedChannels+sb.RemoteChannels+sb.AcceptedChannels != 0 || sa.FramesSent != 0 {
		t.Errorf("streams were opened: %+v, %+v", sa, sb)
	}
}

// TestBackPressure has a consumer that takes 20 ms per batch: the producer's
// WriteBatch waits for credit, and at no point are more than engine.Credits
// batches sent and not yet processed.
func TestBackPressure(t *testing.T) {
	const batches = 25
	pl := newPlacement()
	a, b := startProcess(t, pl), startProcess(t, pl)
	var processed atomic.Int64
	src := &engine.Vertex{ID: 0, Name: "source", Kind: "source", Parallelism: 1, Out: engine.TypeOf[[]byte](blobCodec{})}
	sink := sinkVertex(1, src, pluginpb.Partitioning_PARTITIONING_BROADCAST, 1, func(int) engine.Output[[]byte] {
		return sinkOutput[[]byte]{process: func([]byte) error {
			time.Sleep(20 * time.Millisecond)
			processed.Add(1)
			return nil
		}}
	})
	plan, err := engine.NewPlan("backpressure", []*engine.Vertex{src, sink}, 1, 128)
	if err != nil {
		t.Fatal(err)
	}
	// Only the consumer runs as a task; the test is its producer.
	pl.set(0, 0, a.addr)
	j := newJob(plan, "backpressure", pl, func(chain, _ int) *process {
		if chain == 1 {
			return b
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wait := j.start(ctx)

	w, err := a.x.Open(ctx, engine.ChannelKey{JobID: "backpressure", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1})
	if err != nil {
		t.Fatal(err)
	}
	// One record per batch, so that one Process call is one batch.
	// A batch is, per record, a timestamp delta (varint) and the record.
	batch := blobCodec{}.Append(binary.AppendVarint(nil, 0), make([]byte, engine.BatchSize-64))
	var sent, peak int64
	for range batches {
		if err := w.WriteBatch(ctx, batch, 1); err != nil {
			t.Fatal(err)
		}
		sent++
		if sent == engine.Credits && a.x.Stats().CreditWaits != 0 {
			t.Fatalf("the producer waited within its first %d credits", engine.Credits)
		}
		// Processed counts up before the credit is returned, so this
		// holds whenever WriteBatch honours the credit.
		outstanding := sent - processed.Load()
		peak = max(peak, outstanding)
		if outstanding > engine.Credits {
			t.Fatalf("%d batches sent and not processed, want at most %d", outstanding, engine.Credits)
		}
	}
	if err := w.WriteEvent(ctx, engine.Event{Kind: engine.EventEnd}); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := processed.Load(); got != batches {
		t.Fatalf("%d batches processed, want %d", got, batches)
	}
	sa, sb := a.x.Stats(), b.x.Stats()
	t.Logf("peak outstanding %d; producer %+v; consumer %+v", peak, sa, sb)
	if sa.CreditWaits < batches/2 {
		t.Errorf("the producer waited for credit %d times, want at least %d", sa.CreditWaits, batches/2)
	}
	if sb.PeakInFlight > engine.Credits {
		t.Errorf("consumer held %d batches at once, want at most %d", sb.PeakInFlight, engine.Credits)
	}
	if limit := int64(engine.Credits * len(batch)); sb.PeakInFlightBytes > limit {
		t.Errorf("consumer held %d bytes at once, want at most %d", sb.PeakInFlightBytes, limit)
	}
}

// TestConsumerNeverRegisters opens a channel to a task that never
// registers: Open fails with ErrNotRegistered after Config.RegisterWait.
func TestConsumerNeverRegisters(t *testing.T) {
	const wait = 300 * time.Millisecond
	pl := newPlacement()
	short := func(c *Config) { c.RegisterWait = wait }
	a, b := startProcess(t, pl, short), startProcess(t, pl, short)
	for _, tc := range []struct {
		name string
		at   *process
	}{
		{"remote", b},
		{"local", a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := engine.ChannelKey{JobID: "absent-" + tc.name, Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
			pl.set(1, 0, tc.at.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := a.x.Open(ctx, k)
			took := time.Since(start)
			if !errors.Is(err, ErrNotRegistered) {
				t.Fatalf("open: %v, want ErrNotRegistered", err)
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			for _, want := range []string{k.TaskKey().String(), tc.at.addr, wait.String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if took < wait || took > 10*wait {
				t.Errorf("open failed after %s, want about %s", took, wait)
			}
		})
	}
}

// TestPeerDies breaks the consumer's process while the producer waits for
// credit: WriteBatch fails with an error naming the peer, and so does the
// next Open.
func TestPeerDies(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(*process)
	}{
		{"close", func(p *process) { _ = p.x.Close() }},
		{"crash", func(p *process) { p.lis.crash() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := newPlacement()
			a, b := startProcess(t, pl), startProcess(t, pl)
			k := engine.ChannelKey{JobID: "dies", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
			pl.set(1, 0, b.addr)
			// A consumer that never reads: the producer runs out of credit.
			defer b.x.Register(k.TaskKey(), engine.NewGate(map[engine.ChannelKey]int{k: 0}))()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			w, err := a.x.Open(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				batch := make([]byte, 1024)
				for {
					if err := w.WriteBatch(ctx, batch, 1); err != nil {
						errc <- err
						return
					}
				}
			}()
			waitFor(t, 10*time.Second, func() error {
				if a.x.Stats().CreditWaits == 0 {
					return errors.New("the producer has not run out of credit")
				}
				return nil
			})
			tc.kill(b)
			var werr error
			select {
			case werr = <-errc:
			case <-time.After(20 * time.Second):
				t.Fatal("WriteBatch still blocked 20s after the peer died")
			}
			t.Logf("write: %v", werr)
			if ctx.Err() != nil || !strings.Contains(werr.Error(), b.addr) {
				t.Errorf("write error %q: want one naming the peer %s", werr, b.addr)
			}
			if err := w.WriteEvent(ctx, engine.Event{Kind: engine.EventWatermark, Value: 1}); err == nil {
				t.Error("a write after the stream broke succeeded")
			}
			octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
			defer ocancel()
			_, err = a.x.Open(octx, k)
			t.Logf("open: %v", err)
			if err == nil || octx.Err() != nil || !strings.Contains(err.Error(), b.addr) {
				t.Errorf("open to the dead peer: %v, want an error naming %s", err, b.addr)
			}
			_ = w.Close()
		})
	}
}

// TestPeerVanishes cuts the network to the consumer's process without
// closing a connection: keepalive finds the peer dead, and the producer's
// WriteBatch fails instead of waiting for credit for ever. It takes over
// 10 s, gRPC's shortest client ping interval.
func TestPeerVanishes(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for keepalive")
	}
	pl := newPlacement()
	var partition freezer
	a := startProcess(t, pl, func(c *Config) { c.Dial, c.KeepAlive = partition.dial, time.Second })
	b := startProcess(t, pl)
	k := engine.ChannelKey{JobID: "vanishes", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
	pl.set(1, 0, b.addr)
	defer b.x.Register(k.TaskKey(), engine.NewGate(map[engine.ChannelKey]int{k: 0}))()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := a.x.Open(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range engine.Credits {
		if err := w.WriteBatch(ctx, []byte("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	partition.frozen.Store(true)
	start := time.Now()
	err = w.WriteBatch(ctx, []byte("x"), 1)
	t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), b.addr) {
		t.Fatalf("write: %v, want an error naming %s before the test's deadline", err, b.addr)
	}
}

// TestConsumerGone unregisters the consumer while the producer waits for
// credit: the producer fails with ErrConsumerGone instead of waiting for
// ever.
func TestConsumerGone(t *testing.T) {
	pl := newPlacement()
	a, b := startProcess(t, pl), startProcess(t, pl)
	k := engine.ChannelKey{JobID: "gone", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
	pl.set(1, 0, b.addr)
	unregister := b.x.Register(k.TaskKey(), engine.NewGate(map[engine.ChannelKey]int{k: 0}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := a.x.Open(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range engine.Credits {
		if err := w.WriteBatch(ctx, []byte("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	time.AfterFunc(50*time.Millisecond, unregister)
	err = w.WriteBatch(ctx, []byte("x"), 1)
	if !errors.Is(err, ErrConsumerGone) || !strings.Contains(err.Error(), b.addr) {
		t.Fatalf("write: %v, want ErrConsumerGone naming %s", err, b.addr)
	}
	t.Log(err)
}

// TestWriteHonoursContext cancels a WriteBatch that waits for credit.
func TestWriteHonoursContext(t *testing.T) {
	pl := newPlacement()
	a, b := startProcess(t, pl), startProcess(t, pl)
	k := engine.ChannelKey{JobID: "ctx", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
	pl.set(1, 0, b.addr)
	defer b.x.Register(k.TaskKey(), engine.NewGate(map[engine.ChannelKey]int{k: 0}))()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := a.x.Open(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range engine.Credits {
		if err := w.WriteBatch(ctx, []byte("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	err = w.WriteBatch(short, []byte("x"), 1)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), b.addr) {
		t.Fatalf("write: %v, want a deadline error naming %s", err, b.addr)
	}
}

// TestBatchSize sends a batch larger than engine.BatchSize (a big record),
// and refuses one larger than Config.MaxMessageSize without breaking the
// channel.
func TestBatchSize(t *testing.T) {
	const limit = 1 << 20
	pl := newPlacement()
	small := func(c *Config) { c.MaxMessageSize = limit }
	a, b := startProcess(t, pl, small), startProcess(t, pl, small)
	k := engine.ChannelKey{JobID: "big", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
	pl.set(1, 0, b.addr)
	defer b.x.Register(k.TaskKey(), engine.NewGate(map[engine.ChannelKey]int{k: 0}))()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := a.x.Open(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.WriteBatch(ctx, make([]byte, limit), 1)
	if err == nil || !strings.Contains(err.Error(), "max message size") {
		t.Fatalf("write of %d bytes: %v, want a max message size error", limit, err)
	}
	big := limit - frameOverhead
	if err := w.WriteBatch(ctx, make([]byte, big), 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if got := b.x.Stats().BytesReceived; got != uint64(big) {
			return fmt.Errorf("%d bytes received, want %d", got, big)
		}
		return nil
	})
}

// TestProtocolErrors speaks to the Exchange service directly, as a faulty
// peer would.
func TestProtocolErrors(t *testing.T) {
	pl := newPlacement()
	b := startProcess(t, pl)
	cc, err := grpc.NewClient("passthrough:///"+b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	k := engine.ChannelKey{JobID: "proto", Attempt: 1, FromChain: 0, ToChain: 1, ToVertex: 1}
	defer b.x.Register(k.TaskKey(), engine.NewGate(map[engine.ChannelKey]int{k: 0}))()
	open := func(t *testing.T, first *pluginpb.Frame) pluginpb.Exchange_OpenClient {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		s, err := pluginpb.NewExchangeClient(cc).Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(first); err != nil {
			t.Fatal(err)
		}
		return s
	}
	wantCode := func(t *testing.T, s pluginpb.Exchange_OpenClient, code codes.Code) {
		t.Helper()
		for {
			_, err := s.Recv()
			if err != nil {
				if status.Code(err) != code {
					t.Fatalf("stream ended with %v, want %v", err, code)
				}
				return
			}
		}
	}
	t.Run("no open frame", func(t *testing.T) {
		wantCode(t, open(t, &pluginpb.Frame{Records: []byte("x"), Count: 1}), codes.InvalidArgument)
	})
	t.Run("unexpected channel", func(t *testing.T) {
		other := k
		other.ToInput = 3
		wantCode(t, open(t, &pluginpb.Frame{Open: channelToWire(other)}), codes.FailedPrecondition)
	})
	t.Run("more frames than credit", func(t *testing.T) {
		s := open(t, &pluginpb.Frame{Open: channelToWire(k)})
		c, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if c.Batches != engine.Credits {
			t.Errorf("first credit %d, want %d", c.Batches, engine.Credits)
		}
		for range engine.Credits + 1 {
			if err := s.Send(&pluginpb.Frame{Records: []byte("x"), Count: 1}); err != nil {
				break
			}
		}
		wantCode(t, s, codes.ResourceExhausted)
	})
	t.Run("channel attached twice", func(t *testing.T) {
		wantCode(t, open(t, &pluginpb.Frame{Open: channelToWire(k)}), codes.FailedPrecondition)
	})
}

func TestEventWire(t *testing.T) {
	for _, ev := range []engine.Event{
		{Kind: engine.EventWatermark, Value: math.MinInt64},
		{Kind: engine.EventWatermark, Value: 1234},
		{Kind: engine.EventBarrier, Value: 42},
		{Kind: engine.EventEnd},
		{Kind: engine.EventEnd, Value: 1},
		{Kind: engine.EventEnd, Value: 2},
	} {
		pe, err := eventToWire(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := eventFromWire(pe)
		if err != nil || got != ev {
			t.Errorf("%+v came back as %+v, %v", ev, got, err)
		}
	}
	if _, err := eventToWire(engine.Event{Kind: 99}); err == nil {
		t.Error("an unknown event kind went on the wire")
	}
	if _, err := eventFromWire(&pluginpb.Event{}); err == nil {
		t.Error("an empty event came off the wire")
	}
	k := engine.ChannelKey{JobID: "j", Attempt: 7, FromChain: 1, FromSubtask: 2, ToChain: 3, ToSubtask: 4, ToVertex: 5, ToInput: 6}
	if got := channelFromWire(channelToWire(k)); got != k {
		t.Errorf("channel %+v came back as %+v", k, got)
	}
}

func TestConfigValidate(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	valid := func() Config {
		c := DefaultConfig()
		c.Listener, c.Self = lis, lis.Addr().String()
		c.Placement = func(engine.TaskKey) (string, bool) { return "", false }
		return c
	}
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"zero values take defaults", func(c *Config) { c.RegisterWait, c.MaxMessageSize, c.KeepAlive = 0, 0, 0 }, ""},
		{"no listener", func(c *Config) { c.Listener = nil }, "listener"},
		{"no self", func(c *Config) { c.Self = "" }, "self"},
		{"no placement", func(c *Config) { c.Placement = nil }, "placement"},
		{"small messages", func(c *Config) { c.MaxMessageSize = engine.BatchSize }, "max message size"},
		{"negative wait", func(c *Config) { c.RegisterWait = -time.Second }, "register wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
