// Package procs runs real eddy processes for end-to-end tests and benchmark
// programs: it builds the eddy binary once per test binary (and job binaries
// on request), starts `eddy server` nodes, optionally sharing one storage
// directory, and `eddy worker`s on free loopback ports with a log file each,
// kills them with SIGKILL, restarts them on their old data dir and ports, and
// finds the leader over the REST API. Every wait is bounded, and
// every process it starts is killed, with its whole process group, when the
// test (or the Main of a program) ends.
//
// Where cptest gives an in-process cluster for fast, fine-grained tests, procs
// exercises what a user runs: the CLI, its flags, its exit codes, and real
// crashes of whole processes.
//
// It is for tests and benchmarks only: production code must not import it.
// It depends on api and client only, never on the control plane's internals.
package procs
