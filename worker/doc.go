// Package worker is `eddy worker`: a process that offers task slots to the
// control plane, registers with any control plane node, and heartbeats so
// that the ResourceManager knows it is alive. A worker that the control plane
// marked lost, or that restarted, registers again.
//
// It talks to the control plane over the gRPC API only; it must not import
// the controlplane packages, so that it runs against any compatible server.
package worker
