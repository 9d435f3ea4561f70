package netx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// Defaults of Config.
const (
	DefaultRegisterWait   = 30 * time.Second
	DefaultMaxMessageSize = 64 << 20
	DefaultKeepAlive      = 10 * time.Second
)

// minClientPing is the shortest interval at which gRPC lets a client ping.
const minClientPing = 10 * time.Second

var (
	// ErrNotRegistered is wrapped by the error of Open when the consuming
	// task did not register its gate within Config.RegisterWait.
	ErrNotRegistered = errors.New("consumer task not registered")
	// ErrConsumerGone is wrapped by the errors of a channel whose consuming
	// task unregistered before the channel ended.
	ErrConsumerGone = errors.New("consumer task ended")
	// ErrClosed is returned by Open after Close.
	ErrClosed = errors.New("exchange closed")
)

// Config configures an Exchange.
type Config struct {
	// Listener is the data port: the Exchange serves the pluginpb Exchange
	// service on it, and closes it on Close.
	Listener net.Listener
	// Self is this process's data address as its peers see it. A channel
	// whose consumer is placed at Self stays in memory.
	Self string
	// Placement returns the data address of the process that runs a task,
	// or false if the task is not placed.
	Placement func(engine.TaskKey) (addr string, ok bool)
	// Dial connects to a peer; nil means TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// RegisterWait bounds how long a channel waits for its consuming task to
	// register, since producers and consumers are deployed concurrently.
	// Zero means DefaultRegisterWait.
	RegisterWait time.Duration
	// MaxMessageSize bounds a frame on the wire, hence the size of one batch
	// and of the largest record. Zero means DefaultMaxMessageSize.
	MaxMessageSize int
	// KeepAlive is how long a connection may go without traffic before
	// this end pings the peer, and how long a ping may go unanswered before
	// the peer counts as dead and the connection's streams fail. gRPC clients
	// ping no more often than every 10 s (minClientPing), so a producer finds
	// a vanished consumer after at most 10 s plus KeepAlive. Zero means
	// DefaultKeepAlive.
	KeepAlive time.Duration
}

// DefaultConfig returns a configuration with the defaults filled in; the
// caller sets Listener, Self and Placement.
func DefaultConfig() Config {
	return Config{
		Logger:         slog.Default(),
		RegisterWait:   DefaultRegisterWait,
		MaxMessageSize: DefaultMaxMessageSize,
		KeepAlive:      DefaultKeepAlive,
	}
}

// Validate reports the problems with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Listener == nil {
		errs = append(errs, errors.New("listener is required"))
	}
	if c.Self == "" {
		errs = append(errs, errors.New("self address is required"))
	}
	if c.Placement == nil {
		errs = append(errs, errors.New("placement is required"))
	}
	if c.RegisterWait < 0 {
		errs = append(errs, fmt.Errorf("register wait %s: want a positive duration", c.RegisterWait))
	}
	if c.MaxMessageSize != 0 && c.MaxMessageSize < 2*engine.BatchSize {
		errs = append(errs, fmt.Errorf("max message size %d: want at least twice the batch size, %d", c.MaxMessageSize, 2*engine.BatchSize))
	}
	if c.KeepAlive < 0 {
		errs = append(errs, fmt.Errorf("keepalive %s: want a positive duration", c.KeepAlive))
	}
	return errors.Join(errs...)
}

// Exchange is an engine.Exchange between processes. Channels whose consumer
// runs in this process use the engine's in-memory channels; the others are
// gRPC streams to the consumer's process, one per channel, over one
// connection per peer. It is safe for concurrent use.
type Exchange struct {
	cfg    Config
	log    *slog.Logger
	local  *engine.LocalExchange
	pool   *bufPool
	srv    *grpc.Server
	served chan struct{} // closed when Serve returns
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	conns     map[string]*grpc.ClientConn
	consumers map[engine.TaskKey]*consumer
	nextID    uint64

	stats counters
}

var _ engine.Exchange = (*Exchange)(nil)

// consumer is a registered task, with the streams attached to its gate so
// that they fail when it unregisters.
type consumer struct {
	gate    *engine.Gate
	streams map[uint64]context.CancelCauseFunc
}

// New starts serving the data port and returns the exchange.
func New(cfg Config) (*Exchange, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("exchange config: %w", err)
	}
	def := DefaultConfig()
	if cfg.Logger == nil {
		cfg.Logger = def.Logger
	}
	if cfg.RegisterWait == 0 {
		cfg.RegisterWait = def.RegisterWait
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = def.MaxMessageSize
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = def.KeepAlive
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	x := &Exchange{
		cfg:       cfg,
		log:       cfg.Logger.With("data_addr", cfg.Self),
		local:     engine.NewLocalExchange(),
		pool:      &bufPool{},
		served:    make(chan struct{}),
		conns:     map[string]*grpc.ClientConn{},
		consumers: map[engine.TaskKey]*consumer{},
	}
	// No stats handlers or interceptors: WriteBatch relies on SendMsg
	// marshalling the frame before it returns, so that it need not copy
	// the batch.
	x.srv = grpc.NewServer(
		grpc.ForceServerCodecV2(wireCodec{x.pool}),
		experimental.BufferPool(x.pool),
		grpc.MaxRecvMsgSize(cfg.MaxMessageSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepAlive, Timeout: cfg.KeepAlive}),
		// Below every client's interval, whatever its KeepAlive.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPing / 2, PermitWithoutStream: true}),
		grpc.WaitForHandlers(true),
	)
	pluginpb.RegisterExchangeServer(x.srv, &server{x: x})
	go func() {
		defer close(x.served)
		if err := x.srv.Serve(cfg.Listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			x.log.Error("data port stopped serving", "error", err)
		}
	}()
	return x, nil
}

// Register makes a local task's gate reachable for the channels that end at
// it, from this process and from its peers. Unregistering fails the streams
// of the task's channels that have not ended yet, so that their producers
// stop waiting for credit.
func (x *Exchange) Register(k engine.TaskKey, g *engine.Gate) func() {
	// Tracked before it can be found, so that a stream that finds the
	// gate can always track itself.
	x.mu.Lock()
	x.consumers[k] = &consumer{gate: g, streams: map[uint64]context.CancelCauseFunc{}}
	x.mu.Unlock()
	unregister := x.local.Register(k, g)
	return func() {
		unregister()
		x.mu.Lock()
		c := x.consumers[k]
		if c == nil || c.gate != g {
			x.mu.Unlock()
			return
		}
		delete(x.consumers, k)
		cancels := make([]context.CancelCauseFunc, 0, len(c.streams))
		for _, cancel := range c.streams {
			cancels = append(cancels, cancel)
		}
		x.mu.Unlock()
		for _, cancel := range cancels {
			cancel(fmt.Errorf("%w: task %s unregistered at %s", ErrConsumerGone, k, x.cfg.Self))
		}
	}
}

// Open returns the writer of a channel, once the consumer has attached it;
// either way it waits at most RegisterWait for the consumer to register. A
// channel to a task of this process is the engine's in-memory channel. Any
// other is a stream to the consumer's process, which lives until the
// channel's end event is acknowledged, the writer is closed, or ctx ends: ctx
// should be the producing task's. Like every ChannelWriter, the writer is
// used from one goroutine.
func (x *Exchange) Open(ctx context.Context, k engine.ChannelKey) (engine.ChannelWriter, error) {
	addr, ok := x.cfg.Placement(k.TaskKey())
	if !ok {
		return nil, fmt.Errorf("channel %s: task %s is not placed", channelName(k), k.TaskKey())
	}
	if addr == x.cfg.Self {
		return x.openLocal(ctx, k)
	}
	return x.openRemote(ctx, k, addr)
}

// openLocal does what engine.LocalExchange.Open does, with the wait for the
// consumer bounded by RegisterWait.
func (x *Exchange) openLocal(ctx context.Context, k engine.ChannelKey) (engine.ChannelWriter, error) {
	if x.isClosed() {
		return nil, fmt.Errorf("channel %s: %w", channelName(k), ErrClosed)
	}
	g, err := x.gate(ctx, k.TaskKey())
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", channelName(k), err)
	}
	in, err := g.Attach(k)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", channelName(k), err)
	}
	x.stats.channelsLocal.Add(1)
	return engine.NewCreditWriter(in), nil
}

// gate waits, at most RegisterWait, for a task of this process to register.
func (x *Exchange) gate(ctx context.Context, k engine.TaskKey) (*engine.Gate, error) {
	wctx, cancel := context.WithTimeout(ctx, x.cfg.RegisterWait)
	defer cancel()
	g, err := x.local.Gate(wctx, k)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("wait for task %s: %w", k, ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("%w: task %s did not register at %s within %s", ErrNotRegistered, k, x.cfg.Self, x.cfg.RegisterWait)
	case g == nil:
		// It registered and unregistered while we waited.
		return nil, fmt.Errorf("%w: task %s unregistered at %s", ErrConsumerGone, k, x.cfg.Self)
	}
	return g, nil
}

// track records a stream attached to a registered gate; cancel fails it if
// the task unregisters first.
func (x *Exchange) track(k engine.TaskKey, g *engine.Gate, cancel context.CancelCauseFunc) (untrack func(), err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.consumers[k]
	if c == nil || c.gate != g {
		return nil, fmt.Errorf("%w: task %s unregistered at %s", ErrConsumerGone, k, x.cfg.Self)
	}
	x.nextID++
	id := x.nextID
	c.streams[id] = cancel
	return func() {
		x.mu.Lock()
		delete(c.streams, id)
		x.mu.Unlock()
	}, nil
}

// client returns the connection to a peer, creating it on first use, and
// counts a goroutine that will use it in x.wg.
func (x *Exchange) client(addr string) (*grpc.ClientConn, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	cc, ok := x.conns[addr]
	if !ok {
		var err error
		cc, err = grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(x.cfg.Dial),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(wireCodec{x.pool}),
				grpc.MaxCallSendMsgSize(x.cfg.MaxMessageSize), grpc.MaxCallRecvMsgSize(x.cfg.MaxMessageSize)),
			experimental.WithBufferPool(x.pool),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: max(x.cfg.KeepAlive, minClientPing), Timeout: x.cfg.KeepAlive}),
			grpc.WithDisableRetry(),
		)
		if err != nil {
			return nil, err
		}
		x.conns[addr] = cc
	}
	x.wg.Add(1)
	return cc, nil
}

func (x *Exchange) isClosed() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.closed
}

// Close stops serving, breaks every stream from and to this process, closes
// the listener and the connections to the peers, and waits for the
// exchange's goroutines. In-memory channels are left to their tasks.
func (x *Exchange) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	conns := x.conns
	x.conns = nil
	x.mu.Unlock()
	x.srv.Stop()
	var errs []error
	for addr, cc := range conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	<-x.served
	x.wg.Wait()
	return errors.Join(errs...)
}

// Stats are the exchange's counters since New.
type Stats struct {
	// LocalChannels, RemoteChannels and AcceptedChannels count the channels
	// opened to tasks of this process, opened to peers, and opened by peers.
	LocalChannels, RemoteChannels, AcceptedChannels uint64
	// FramesSent and BytesSent count the batches and events sent to peers
	// and the record bytes they carried; FramesReceived and BytesReceived
	// the same from peers.
	FramesSent, BytesSent, FramesReceived, BytesReceived uint64
	// CreditWaits counts the writes to peers that found no credit and
	// waited for it; BackPressure is the time they waited.
	CreditWaits  uint64
	BackPressure time.Duration
	// PeakInFlight and PeakInFlightBytes are the most frames, and record
	// bytes, that one channel from a peer held at once: delivered to a task
	// and not yet processed. PeakInFlight is at most engine.Credits.
	PeakInFlight, PeakInFlightBytes int64
}

type counters struct {
	channelsLocal, channelsRemote, channelsAccepted                   atomic.Uint64
	framesSent, bytesSent, framesReceived, bytesReceived, creditWaits atomic.Uint64
	backPressure                                                      atomic.Int64
	peakInFlight, peakInFlightBytes                                   atomic.Int64
}

// Stats returns the exchange's counters.
func (x *Exchange) Stats() Stats {
	c := &x.stats
	return Stats{
		LocalChannels: c.channelsLocal.Load(), RemoteChannels: c.channelsRemote.Load(), AcceptedChannels: c.channelsAccepted.Load(),
		FramesSent: c.framesSent.Load(), BytesSent: c.bytesSent.Load(),
		FramesReceived: c.framesReceived.Load(), BytesReceived: c.bytesReceived.Load(),
		CreditWaits: c.creditWaits.Load(), BackPressure: time.Duration(c.backPressure.Load()),
		PeakInFlight: c.peakInFlight.Load(), PeakInFlightBytes: c.peakInFlightBytes.Load(),
	}
}

func raise(peak *atomic.Int64, v int64) {
	for {
		old := peak.Load()
		if v <= old || peak.CompareAndSwap(old, v) {
			return
		}
	}
}
