// Package fsm is the replicated state machine of the control plane: the jobs,
// workers, slot assignments, members and checkpoint records that every node
// holds and that a new leader rebuilds its view from.
//
// Commands are a type byte followed by a protobuf payload (Encode). Command
// numbers are a wire format: append only, never renumber, never reuse. Apply
// is deterministic: it never reads the clock or a random source; the leader
// stamps times and ids into the command. A payload that cannot be decoded, or
// an unknown command type, means the replicas diverged, and Apply panics.
// Business errors (a job not found) are returned as the response.
//
// This package depends on raft and the wire types only; it must not depend on
// the server, the managers, worker or plugin-sdk.
package fsm
