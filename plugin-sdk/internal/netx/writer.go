package netx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// errPeerEnded is why a stream ended when the consumer closed it: the
// acknowledgement of the end event, or a protocol error before it.
var errPeerEnded = errors.New("peer ended the channel")

// remoteWriter is the producing end of a channel to another process. Its
// methods are called from the producing task's goroutine; receive runs in
// its own and only adds credit.
type remoteWriter struct {
	x      *Exchange
	key    engine.ChannelKey
	addr   string
	stream pluginpb.Exchange_OpenClient
	cancel context.CancelFunc
	// opened is the Done channel of Open's ctx, which the stream's
	// context is derived from.
	opened <-chan struct{}

	avail  atomic.Int64  // credit granted and not yet spent
	notify chan struct{} // signalled when credit arrives
	done   chan struct{} // closed when receive returns
	err    error         // why the stream ended; read after done

	frame  pluginpb.Frame // reused: Send marshals it before returning
	ended  bool           // the end event was sent
	failed error          // sticky: the stream broke
}

func (x *Exchange) openRemote(ctx context.Context, k engine.ChannelKey, addr string) (engine.ChannelWriter, error) {
	cc, err := x.client(addr)
	if err != nil {
		return nil, fmt.Errorf("channel %s: peer %s: %w", channelName(k), addr, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	w := &remoteWriter{x: x, key: k, addr: addr, cancel: cancel, opened: ctx.Done(),
		notify: make(chan struct{}, 1), done: make(chan struct{})}
	w.stream, err = pluginpb.NewExchangeClient(cc).Open(sctx)
	if err != nil {
		cancel()
		x.wg.Done()
		return nil, w.errorf(err)
	}
	go w.receive()
	x.stats.channelsRemote.Add(1)
	if err := w.stream.Send(&pluginpb.Frame{Open: channelToWire(k)}); err != nil {
		<-w.done
		cancel()
		return nil, w.errorf(w.err)
	}
	// The consumer grants the first credits once the channel is attached.
	for w.avail.Load() == 0 {
		select {
		case <-w.notify:
		case <-w.done:
			cancel()
			return nil, w.errorf(w.err)
		case <-ctx.Done():
			cancel()
			<-w.done
			return nil, w.errorf(fmt.Errorf("wait for the consumer: %w", ctx.Err()))
		}
	}
	return w, nil
}

func (w *remoteWriter) receive() {
	defer w.x.wg.Done()
	defer close(w.done)
	var c pluginpb.Credit
	for {
		if err := w.stream.RecvMsg(&c); err != nil {
			if err == io.EOF {
				err = errPeerEnded
			}
			w.err = err
			return
		}
		w.avail.Add(int64(c.GetBatches()))
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

// WriteBatch sends b as one frame once the consumer has credit for it; b is
// marshalled into the frame, not copied first.
func (w *remoteWriter) WriteBatch(ctx context.Context, b []byte, count int) error {
	if err := w.usable(); err != nil {
		return err
	}
	if len(b)+frameOverhead > w.x.cfg.MaxMessageSize {
		return w.errorf(fmt.Errorf("batch of %d bytes exceeds the max message size of %d bytes", len(b), w.x.cfg.MaxMessageSize))
	}
	if err := w.take(ctx); err != nil {
		return err
	}
	w.frame.Records, w.frame.Count = b, uint32(count)
	err := w.send(ctx)
	w.frame.Records, w.frame.Count = nil, 0
	if err != nil {
		return err
	}
	w.x.stats.framesSent.Add(1)
	w.x.stats.bytesSent.Add(uint64(len(b)))
	return nil
}

// WriteEvent sends an event, which costs a credit like a batch. After the
// end event it half-closes the stream and waits for the consumer to end it,
// so that the channel's end is acknowledged before the producer moves on.
func (w *remoteWriter) WriteEvent(ctx context.Context, ev engine.Event) error {
	if err := w.usable(); err != nil {
		return err
	}
	pe, err := eventToWire(ev)
	if err != nil {
		return w.errorf(err)
	}
	if err := w.take(ctx); err != nil {
		return err
	}
	w.frame.Event = pe
	err = w.send(ctx)
	w.frame.Event = nil
	if err != nil {
		return err
	}
	w.x.stats.framesSent.Add(1)
	if ev.Kind != engine.EventEnd {
		return nil
	}
	w.ended = true
	_ = w.stream.CloseSend() // always nil
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		return w.errorf(fmt.Errorf("wait for the end to be acknowledged: %w", ctx.Err()))
	}
	w.cancel()
	if w.err != errPeerEnded && status.Code(w.err) != codes.Unavailable {
		w.failed = w.errorf(w.err)
		return w.failed
	}
	// The end event went out: a consumer whose process ended before it
	// closed the stream (its task finished, its plugin stopped) leaves the
	// connection lost rather than the stream ended. Had the consumer not
	// read the end, its own task fails and the job with it; the producer
	// has nothing left to deliver either way.
	return nil
}

// Close cancels the stream unless the channel has ended, and waits for it
// to wind down.
func (w *remoteWriter) Close() error {
	w.cancel()
	<-w.done
	return nil
}

func (w *remoteWriter) usable() error {
	if w.failed != nil {
		return w.failed
	}
	if w.ended {
		return w.errorf(errors.New("write after the end event"))
	}
	return nil
}

// take spends one credit, waiting for the consumer to grant one.
func (w *remoteWriter) take(ctx context.Context) error {
	if w.avail.Load() > 0 {
		w.avail.Add(-1)
		return nil
	}
	w.x.stats.creditWaits.Add(1)
	start := time.Now()
	defer func() { w.x.stats.backPressure.Add(int64(time.Since(start))) }()
	for {
		select {
		case <-w.notify:
			if w.avail.Load() > 0 {
				w.avail.Add(-1)
				return nil
			}
		case <-w.done:
			w.failed = w.errorf(w.err)
			return w.failed
		case <-ctx.Done():
			return w.errorf(fmt.Errorf("wait for credit: %w", ctx.Err()))
		}
	}
}

// send sends w.frame. Send blocks only on HTTP/2 flow control; if ctx ends
// meanwhile the stream is cancelled, since a frame cannot be taken back.
func (w *remoteWriter) send(ctx context.Context) error {
	// Usually ctx is Open's, or derived from it without a deadline of its
	// own: its end cancels the stream already.
	if done := ctx.Done(); done != nil && done != w.opened {
		stop := context.AfterFunc(ctx, w.cancel)
		defer stop()
	}
	if err := w.stream.Send(&w.frame); err != nil {
		// The stream is aborted; receive has or will have its status.
		<-w.done
		cause := w.err
		if ctx.Err() != nil {
			cause = fmt.Errorf("send: %w", ctx.Err())
		}
		w.failed = w.errorf(cause)
		return w.failed
	}
	return nil
}

// errorf names the channel and the peer in err, and maps the consumer's
// status codes back to this package's errors.
func (w *remoteWriter) errorf(err error) error {
	name := channelName(w.key)
	if st, ok := status.FromError(err); ok {
		var sentinel error
		switch st.Code() {
		case codes.NotFound:
			sentinel = ErrNotRegistered
		case codes.Aborted:
			sentinel = ErrConsumerGone
		}
		if sentinel != nil {
			// The consumer's message starts with the sentinel's text.
			msg := strings.TrimPrefix(st.Message(), sentinel.Error()+": ")
			return fmt.Errorf("channel %s: peer %s: %w: %s", name, w.addr, sentinel, msg)
		}
	}
	return fmt.Errorf("channel %s: peer %s: %w", name, w.addr, err)
}
