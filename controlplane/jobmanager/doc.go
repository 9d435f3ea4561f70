// Package jobmanager is the leader-only part of the control plane that owns
// jobs: it validates submissions, stamps them with an id and a time, cancels
// jobs, and schedules waiting jobs onto free worker slots. Everything it
// decides goes through Raft; it keeps no state that a new leader would miss.
//
// It depends on fsm and the wire types; it must not depend on server,
// dispatcher, worker or plugin-sdk.
package jobmanager
