// Package resourcemanager is the leader-only part of the control plane that
// owns workers: it registers them and their slots, takes their heartbeats,
// and marks a worker lost when it falls silent past the heartbeat timeout.
//
// Heartbeats are not written to Raft: the leader keeps the time it last heard
// from each worker in memory and writes only status changes. A new leader
// starts every alive worker's clock afresh, so a failover never marks a
// healthy worker lost.
//
// It depends on fsm and the wire types; it must not depend on server,
// dispatcher, worker or plugin-sdk.
package resourcemanager
