// Package handshake is the contract between an Eddy worker and the job
// plugins it launches: the one go-plugin HandshakeConfig both sides use, the
// name the task executor is dispensed under, and the go-plugin GRPCPlugin
// that serves a pluginpb.TaskExecutorServer in the job binary and hands the
// worker a pluginpb.TaskExecutorClient.
//
// Both the SDK (inside every job binary) and the worker import it, so it must
// stay small, and it must not import the control plane, the worker or the
// rest of the SDK.
package handshake
