package procs

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// TB is the part of testing.TB that procs uses, so that the helpers work in
// tests (*testing.T, *testing.B) and in programs (*Main) alike. As in
// testing, Fatalf and FailNow-like calls must come from the goroutine that
// runs the test or the program's main.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Main is a TB for programs such as benchmarks. Logf writes to its output,
// Fatalf runs the cleanups and exits with status 1, and SIGINT or SIGTERM
// run the cleanups and exit with status 130, so that no child process
// outlives the program. Call Close before returning from main. Cleanups may
// call Errorf but not Fatalf, which waits for Close to finish.
type Main struct {
	out  io.Writer
	sig  chan os.Signal
	done chan struct{} // closed when Close has run the cleanups

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
}

// NewMain returns a Main that logs to stderr and handles SIGINT and SIGTERM.
func NewMain() *Main {
	m := &Main{out: os.Stderr, sig: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(m.sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-m.sig
		if !ok {
			return
		}
		m.Logf("%s: stopping every process", s)
		m.Close()
		os.Exit(130)
	}()
	return m
}

// Helper does nothing; it is there for TB.
func (m *Main) Helper() {}

// Logf prints a line with a timestamp.
func (m *Main) Logf(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(m.out, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Errorf logs and marks the program failed.
func (m *Main) Errorf(format string, args ...any) {
	m.Logf("ERROR: "+format, args...)
	m.mu.Lock()
	m.failed = true
	m.mu.Unlock()
}

// Fatalf logs, runs the cleanups and exits with status 1.
func (m *Main) Fatalf(format string, args ...any) {
	m.Errorf(format, args...)
	m.Close()
	os.Exit(1)
}

// Failed reports whether Errorf or Fatalf was called.
func (m *Main) Failed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

// Cleanup registers f to run at Close, last registered first.
func (m *Main) Cleanup(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cleanups = append(m.cleanups, f)
}

// TempDir returns a new temporary directory that Close removes.
func (m *Main) TempDir() string {
	dir, err := os.MkdirTemp("", "eddy-procs-")
	if err != nil {
		m.Fatalf("temp dir: %v", err)
	}
	m.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Close runs the cleanups once, last registered first, and stops handling
// signals. Later calls wait until the first one is done.
func (m *Main) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.done
		return
	}
	m.closed = true
	cs := m.cleanups
	m.cleanups = nil
	m.mu.Unlock()
	signal.Stop(m.sig)
	close(m.sig) // ends the signal goroutine; Stop guarantees no more sends
	defer close(m.done)
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// WaitFor calls f every 20 ms until it returns nil, and fails t with f's
// last error if that does not happen within timeout.
func WaitFor(t TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := Poll(timeout, 20*time.Millisecond, f); err != nil {
		t.Fatalf("%v", err)
	}
}

// Poll calls f every interval until it returns nil, or returns an error with
// f's last error once timeout has passed.
func Poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}
