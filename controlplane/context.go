package controlplane

import "context"

type staleKey struct{}

// WithStale marks a read as allowed to be served from the answering node's
// own, possibly slightly old, state instead of the leader's. Stale reads work
// without a quorum; default reads are linearizable.
func WithStale(ctx context.Context) context.Context {
	return context.WithValue(ctx, staleKey{}, true)
}

// Stale reports whether ctx allows a stale read.
func Stale(ctx context.Context) bool {
	v, _ := ctx.Value(staleKey{}).(bool)
	return v
}
