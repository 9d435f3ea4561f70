package engine

import (
	"context"
	"fmt"
	"sync"
)

// ChannelWriter is the producing end of one channel. The calls come from
// the producing task's goroutine. WriteBatch blocks while the consumer has
// no credit left, which is how a slow consumer holds its producers back; it
// does not retain b after it returns.
type ChannelWriter interface {
	WriteBatch(ctx context.Context, b []byte, count int) error
	WriteEvent(ctx context.Context, ev Event) error
	Close() error
}

// ChannelKey names a channel: one producer subtask to one consumer subtask
// over one edge, in one attempt of a job.
type ChannelKey struct {
	JobID       string
	Attempt     uint64
	FromChain   int
	FromSubtask int
	ToChain     int
	ToSubtask   int
	ToVertex    int
	ToInput     int
}

// TaskKey names a consuming task.
func (k ChannelKey) TaskKey() TaskKey {
	return TaskKey{JobID: k.JobID, Attempt: k.Attempt, Chain: k.ToChain, Subtask: k.ToSubtask}
}

// TaskKey names one task of one attempt of a job.
type TaskKey struct {
	JobID   string
	Attempt uint64
	Chain   int
	Subtask int
}

func (k TaskKey) String() string {
	return fmt.Sprintf("%s/%d/chain-%d/%d", k.JobID, k.Attempt, k.Chain, k.Subtask)
}

// Exchange connects tasks. Open returns the writer of a channel, wherever
// its consumer runs; Register makes a local task's gate reachable for the
// channels that end at it.
type Exchange interface {
	Open(ctx context.Context, k ChannelKey) (ChannelWriter, error)
	Register(k TaskKey, g *Gate) (unregister func())
}

// Credits is how many batches a channel may have in flight: the memory a
// channel holds is at most Credits * BatchSize.
const Credits = 4

// message is one batch or event that arrived at a gate.
type message struct {
	ch    *InChannel
	data  []byte
	count int
	event *Event
	// done returns the credit (and the buffer) to the producer.
	done func()
}

// Gate is the input side of a task: every channel that ends at the task
// delivers into it, and the task takes messages out in arrival order.
type Gate struct {
	msgs chan message

	mu       sync.Mutex
	channels map[ChannelKey]*InChannel
	expected map[ChannelKey]int // channel -> input index, for the channels the gate waits for
	ready    chan struct{}      // closed when every expected channel is attached
}

// InChannel is one channel as its gate sees it.
type InChannel struct {
	Key   ChannelKey
	Input int
	gate  *Gate
}

// NewGate returns a gate that expects the given channels, each feeding the
// input index it maps to.
func NewGate(expected map[ChannelKey]int) *Gate {
	g := &Gate{
		msgs:     make(chan message, max(len(expected)*Credits, 1)),
		channels: map[ChannelKey]*InChannel{},
		expected: expected,
		ready:    make(chan struct{}),
	}
	if len(expected) == 0 {
		close(g.ready)
	}
	return g
}

// Attach connects a channel to the gate.
func (g *Gate) Attach(k ChannelKey) (*InChannel, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	input, ok := g.expected[k]
	if !ok {
		return nil, fmt.Errorf("task %s does not expect channel %+v", k.TaskKey(), k)
	}
	if _, dup := g.channels[k]; dup {
		return nil, fmt.Errorf("channel %+v attached twice", k)
	}
	c := &InChannel{Key: k, Input: input, gate: g}
	g.channels[k] = c
	if len(g.channels) == len(g.expected) {
		close(g.ready)
	}
	return c, nil
}

// Deliver hands a batch or an event to the gate; done is called when the
// task has processed it, to return the credit.
func (c *InChannel) Deliver(ctx context.Context, data []byte, count int, ev *Event, done func()) error {
	select {
	case c.gate.msgs <- message{ch: c, data: data, count: count, event: ev, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LocalExchange connects tasks of one process with in-memory channels. It
// is safe for concurrent use.
type LocalExchange struct {
	mu    sync.Mutex
	gates map[TaskKey]*Gate
	wait  map[TaskKey]chan struct{}
}

// NewLocalExchange returns an empty exchange.
func NewLocalExchange() *LocalExchange {
	return &LocalExchange{gates: map[TaskKey]*Gate{}, wait: map[TaskKey]chan struct{}{}}
}

// Register makes a gate reachable.
func (x *LocalExchange) Register(k TaskKey, g *Gate) func() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gates[k] = g
	if w, ok := x.wait[k]; ok {
		close(w)
		delete(x.wait, k)
	}
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.gates[k] == g {
			delete(x.gates, k)
		}
	}
}

// Gate returns the registered gate of a task, waiting for it to register.
func (x *LocalExchange) Gate(ctx context.Context, k TaskKey) (*Gate, error) {
	x.mu.Lock()
	g, ok := x.gates[k]
	var w chan struct{}
	if !ok {
		w, ok = x.wait[k]
		if !ok {
			w = make(chan struct{})
			x.wait[k] = w
		}
	}
	x.mu.Unlock()
	if g != nil {
		return g, nil
	}
	select {
	case <-w:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for task %s: %w", k, ctx.Err())
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.gates[k], nil
}

// Open connects to a local task's gate.
func (x *LocalExchange) Open(ctx context.Context, k ChannelKey) (ChannelWriter, error) {
	g, err := x.Gate(ctx, k.TaskKey())
	if err != nil {
		return nil, err
	}
	in, err := g.Attach(k)
	if err != nil {
		return nil, err
	}
	return NewCreditWriter(in), nil
}

// CreditWriter is a ChannelWriter into a gate in the same process.
type CreditWriter struct {
	in      *InChannel
	credits chan struct{}
	pool    sync.Pool
}

// NewCreditWriter returns a writer into in with Credits batches of credit.
func NewCreditWriter(in *InChannel) *CreditWriter {
	w := &CreditWriter{in: in, credits: make(chan struct{}, Credits)}
	for range Credits {
		w.credits <- struct{}{}
	}
	return w
}

func (w *CreditWriter) take(ctx context.Context) error {
	select {
	case <-w.credits:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WriteBatch copies b into a pooled buffer and delivers it.
func (w *CreditWriter) WriteBatch(ctx context.Context, b []byte, count int) error {
	if err := w.take(ctx); err != nil {
		return err
	}
	var buf []byte
	if p, ok := w.pool.Get().(*[]byte); ok {
		buf = (*p)[:0]
	}
	buf = append(buf, b...)
	return w.in.Deliver(ctx, buf, count, nil, func() {
		w.pool.Put(&buf)
		w.credits <- struct{}{}
	})
}

// WriteEvent delivers an event; events take credit too, so that a stream of
// watermarks cannot grow the queue without bound.
func (w *CreditWriter) WriteEvent(ctx context.Context, ev Event) error {
	if err := w.take(ctx); err != nil {
		return err
	}
	e := ev
	return w.in.Deliver(ctx, nil, 0, &e, func() { w.credits <- struct{}{} })
}

// Close does nothing: a local channel ends with its end event.
func (w *CreditWriter) Close() error { return nil }
