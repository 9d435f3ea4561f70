package netx

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// server is the consuming end of the channels from other processes.
type server struct {
	pluginpb.UnimplementedExchangeServer
	x *Exchange
}

// Open attaches the channel the first frame names to its consumer's gate,
// grants engine.Credits credits, and then delivers every frame to the gate,
// returning one credit per frame the task has processed. It returns nil
// after the end event, and fails the stream if the task unregisters first.
//
// The frames are read by a goroutine of their own, so that the handler can
// fail the stream while that goroutine waits in Recv: gRPC offers no other
// way to end a server stream than to return from its handler.
func (s *server) Open(stream pluginpb.Exchange_OpenServer) error {
	x := s.x
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.GetOpen() == nil {
		return status.Error(codes.InvalidArgument, "the first frame must name the channel")
	}
	if len(first.GetRecords()) != 0 || first.GetEvent() != nil {
		return status.Error(codes.InvalidArgument, "the open frame carries a batch or an event")
	}
	k := channelFromWire(first.GetOpen())
	log := x.log.With("channel", channelName(k), "peer", peerAddr(stream.Context()))
	g, err := x.gate(stream.Context(), k.TaskKey())
	switch {
	case errors.Is(err, ErrNotRegistered):
		log.Warn("channel refused", "error", err)
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrConsumerGone):
		return status.Error(codes.Aborted, err.Error())
	case err != nil:
		return status.FromContextError(stream.Context().Err()).Err()
	}
	in, err := g.Attach(k)
	if err != nil {
		log.Warn("channel refused", "error", err)
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	untrack, err := x.track(k.TaskKey(), g, cancel)
	if err != nil {
		return status.Error(codes.Aborted, err.Error())
	}
	defer untrack()
	x.stats.channelsAccepted.Add(1)
	log.Debug("channel attached")

	cr := newCreditor(x, stream)
	defer cr.stop()
	cr.grant(engine.Credits)
	var ending atomic.Bool
	received := make(chan error, 1)
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		received <- s.receive(ctx, stream, in, cr, &ending)
	}()
	select {
	case err = <-received:
	case <-ctx.Done():
		cause := context.Cause(ctx)
		if ending.Load() {
			// The task may end, and unregister, as soon as it has the
			// end event: the channel ended well if Deliver took it.
			if err = <-received; err == nil {
				break
			}
		}
		if errors.Is(cause, ErrConsumerGone) {
			err = status.Error(codes.Aborted, cause.Error())
		} else {
			err = status.FromContextError(ctx.Err()).Err()
		}
	}
	if err != nil {
		log.Warn("channel failed", "error", err)
		return err
	}
	log.Debug("channel ended")
	return nil
}

// receive delivers the frames of a stream to in until the end event, which
// it announces in ending before it delivers it.
func (s *server) receive(ctx context.Context, stream pluginpb.Exchange_OpenServer, in *engine.InChannel, cr *creditor, ending *atomic.Bool) error {
	x := s.x
	var raw rawFrame
	for {
		if err := stream.RecvMsg(&raw); err != nil {
			if err == io.EOF {
				return status.Error(codes.InvalidArgument, "the producer closed the channel before its end event")
			}
			return err
		}
		buf := raw.buf
		f, err := raw.decode()
		if err == nil && f.open {
			err = errors.New("a second open frame")
		}
		var ev *engine.Event
		if err == nil && f.event != nil {
			var e engine.Event
			if e, err = eventFromWire(f.event); err == nil && f.records != nil {
				err = errors.New("a frame with both a batch and an event")
			}
			ev = &e
			// The event is decoded: the buffer is free already.
			x.pool.Put(buf)
			buf = nil
		}
		if err != nil {
			x.pool.Put(buf)
			return status.Error(codes.InvalidArgument, err.Error())
		}
		n := len(f.records)
		if !cr.take(n) {
			return status.Errorf(codes.ResourceExhausted, "the producer sent more than its %d credits", engine.Credits)
		}
		x.stats.framesReceived.Add(1)
		x.stats.bytesReceived.Add(uint64(n))
		end := ev != nil && ev.Kind == engine.EventEnd
		if end {
			ending.Store(true)
		}
		// The records are a slice of buf, which goes back to the pool when
		// the task is done with them.
		if err := in.Deliver(ctx, f.records, int(f.count), ev, cr.done(n, buf)); err != nil {
			return status.FromContextError(err).Err()
		}
		if end {
			return nil
		}
	}
}

// creditor counts a channel's frames in flight and sends the credits back
// from one goroutine, since sends on a gRPC stream must not be concurrent.
// done funcs, called by the consuming task, never block: credits granted
// while a Send is under way are folded into the next Credit message.
type creditor struct {
	x      *Exchange
	stream pluginpb.Exchange_OpenServer

	inFlight, inFlightBytes atomic.Int64
	pending                 atomic.Uint32

	wake   chan struct{}
	quit   chan struct{}
	exited chan struct{}
}

func newCreditor(x *Exchange, stream pluginpb.Exchange_OpenServer) *creditor {
	c := &creditor{x: x, stream: stream, wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	go c.run()
	return c
}

func (c *creditor) run() {
	defer close(c.exited)
	for {
		select {
		case <-c.quit:
			return
		case <-c.wake:
		}
		n := c.pending.Swap(0)
		if n == 0 {
			continue
		}
		if err := c.stream.Send(&pluginpb.Credit{Batches: n}); err != nil {
			return // the stream broke; the handler learns it from Recv
		}
	}
}

// stop ends the sender; the handler must not return before, as a stream may
// not be used after its handler returned.
func (c *creditor) stop() {
	close(c.quit)
	<-c.exited
}

func (c *creditor) grant(n uint32) {
	c.pending.Add(n)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take accounts for a frame of n record bytes that arrived, and reports
// whether the producer had credit for it.
func (c *creditor) take(n int) bool {
	f := c.inFlight.Add(1)
	if f > engine.Credits {
		return false
	}
	b := c.inFlightBytes.Add(int64(n))
	raise(&c.x.stats.peakInFlight, f)
	raise(&c.x.stats.peakInFlightBytes, b)
	return true
}

// done returns the func the gate calls when the task has processed a frame
// of n record bytes held in buf (nil for an event): it releases buf and
// gives the credit back.
func (c *creditor) done(n int, buf *[]byte) func() {
	return func() {
		if buf != nil {
			c.x.pool.Put(buf)
		}
		c.inFlight.Add(-1)
		c.inFlightBytes.Add(-int64(n))
		c.grant(1)
	}
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}
