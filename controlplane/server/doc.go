// Package server is one control plane node, `eddy server`: it runs the Raft
// replica of the FSM, serves the gRPC API (to workers, to other nodes and to
// followers forwarding writes) and the REST API (through the dispatcher), and
// runs the JobManager and ResourceManager while it is the leader.
//
// A follower never applies a write itself: it forwards the call to the
// leader over gRPC. Reads are served by the leader after it confirmed its
// leadership, so they are linearizable, unless the caller asked for a stale
// read (controlplane.WithStale), which any node answers from its own state.
//
// This package must not be imported by worker or plugin-sdk.
package server
