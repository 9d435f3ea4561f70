//go:build !race

package procs

// raceEnabled is whether this binary was built with -race; the eddy binary
// is built the same way, so that a race in a server fails the test too.
const raceEnabled = false
