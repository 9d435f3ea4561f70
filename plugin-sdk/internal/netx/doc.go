// Package netx is the data exchange between plugin processes: an
// engine.Exchange that carries record batches and events between tasks in
// different processes over gRPC (the pluginpb Exchange service), and between
// tasks of the same process over the engine's in-memory channels.
//
// # Wire protocol
//
// Every channel (one producer subtask to one consumer subtask over one edge)
// is one bidirectional Exchange.Open stream; the streams to one peer share
// one HTTP/2 connection. The producer sends a first Frame that names the
// channel (Frame.open), then one Frame per batch (records, count) or event,
// in order. The consumer answers with Credit messages: engine.Credits of them
// once the channel is attached to the consuming task's gate, then one for
// every frame the task has processed (several may be folded into one Credit).
// Every frame after the first costs the producer one credit, so that a
// channel never has more than engine.Credits frames in flight and a slow
// consumer holds its producers back with bounded memory: per channel at most
// engine.Credits batches of about engine.BatchSize bytes (a batch exceeds
// BatchSize by at most its last record). A consumer fails a stream whose
// producer sends more frames than it has credit for.
//
// After its end-of-input event the producer half-closes and waits for the
// consumer to end the stream, which it does once the event is in the task's
// gate: a channel's end is acknowledged before the producing task may finish
// and cancel its context, which would otherwise drop frames still queued in
// the transport.
//
// A single batch, hence a single record, may not exceed Config.MaxMessageSize
// (64 MiB by default); WriteBatch refuses a larger one with an error and the
// channel stays usable.
//
// # Buffers
//
// Both ends use a codec of their own (wire compatible with gRPC's "proto"
// codec) with a pool of power-of-two buffers. A producer's batch is copied
// once, when gRPC marshals its frame. A consumer copies a frame once out of
// gRPC's read buffers into a pooled buffer, hands the task a slice of it, and
// takes it back when the task returns the credit. gRPC's default pool would
// put a frame of a full batch in a zeroed 1 MiB buffer on each end.
//
// # Failures
//
// A stream that breaks (the peer died, the connection dropped, the consuming
// task unregistered before the channel ended) fails the producer's pending
// or next WriteBatch or WriteEvent with an error naming the channel and the
// peer's address; the writer stays failed. A consumer that does not register
// within Config.RegisterWait fails Open with ErrNotRegistered. Neither side
// retries: a broken channel fails the attempt, and the job restarts from its
// last checkpoint. HTTP/2 keepalive pings (Config.KeepAlive) find a peer that
// vanished without closing its connections.
//
// The package must not depend on the control plane or the worker: it knows
// tasks only by engine.TaskKey and peers only by address.
package netx
