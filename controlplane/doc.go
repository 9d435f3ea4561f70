// Package controlplane holds what every part of Eddy's control plane shares:
// typed identifiers, the sentinel errors callers branch on, and the one table
// that maps those errors to gRPC codes, HTTP statuses and stable error codes.
//
// The control plane itself lives in the sub-packages: fsm (the replicated
// state), jobmanager and resourcemanager (leader-only logic), dispatcher (the
// REST API) and server (one `eddy server` node wiring them to Raft and gRPC).
// This package must not depend on any of them, nor on worker or plugin-sdk.
package controlplane
