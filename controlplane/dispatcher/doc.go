// Package dispatcher serves Eddy's REST API (JSON under /v1) on every control
// plane node. It translates HTTP to calls on the node's API, which forwards
// writes to the leader, and errors to JSON through controlplane's one table.
//
// It depends on api, controlplane and the wire types; it must not depend on
// server, worker or plugin-sdk.
package dispatcher
