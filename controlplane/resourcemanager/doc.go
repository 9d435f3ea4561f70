// Package resourcemanager is the leader-only part of the control plane that
// owns workers: it registers them and their slots, takes their heartbeats,
// and marks a worker lost when it falls silent past the heartbeat timeout.
//
// Heartbeats are not written to Raft: the leader keeps the time it last heard
// from each worker in memory and writes only status changes. A new leader
// starts every alive worker's clock afresh, so a failover never marks a
// healthy worker lost.
//
// A worker the leader could not connect to (a deploy, checkpoint or cancel
// call refused or cut off) is unreachable until its next heartbeat: it stays
// alive, but the scheduler skips its slots, so that a job's next attempt
// goes to the other workers at once rather than failing again on a dead one
// until the heartbeat timeout. This too is leader memory only.
//
// It depends on fsm and the wire types; it must not depend on server,
// dispatcher, worker or plugin-sdk.
package resourcemanager
