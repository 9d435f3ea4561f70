// Package worker is `eddy worker`: a process that offers task slots to the
// control plane, registers with any control plane node, and heartbeats so
// that the ResourceManager knows it is alive. A worker that the control plane
// marked lost, or that restarted, registers again.
//
// It runs jobs in plugin processes. It serves eddypb.WorkerService to the
// JobManager: PrepareJob fetches a job's artifact from storage, checks its
// SHA-256, caches it under the data dir, and starts it with go-plugin (one
// process per job attempt, SecureConfig checksum, AutoMTLS, its own process
// group); DeployTasks hands tasks to the plugin; CancelTasks cancels them
// and stops the process. Every task state change the plugin reports is
// relayed to the control plane with ReportTasks, and the tasks that have not
// ended ride on every heartbeat. A plugin process ends when all its tasks
// have; one that crashes fails its tasks with its exit status and the end of
// its stderr, and takes down nothing else.
//
// It talks to the control plane over the gRPC API only; it must not import
// the controlplane packages, so that it runs against any compatible server.
package worker
