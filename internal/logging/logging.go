// Package logging holds Eddy's logging glue: the one adapter that gives Raft
// and go-plugin an hclog.Logger over log/slog, and a slog handler for tests
// that writes to t.Log so that a failing test shows its cluster's logs.
//
// It must not depend on any other Eddy package.
package logging

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// HCLog returns an hclog.Logger that writes through l.
func HCLog(l *slog.Logger, name string) hclog.Logger {
	level := hclog.Info
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return &hcAdapter{base: l, l: l.With("component", name), name: name, level: level}
}

type hcAdapter struct {
	base  *slog.Logger // without the component, so that renaming replaces it
	l     *slog.Logger
	name  string
	level hclog.Level
	args  []any
}

func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hcAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < a.level {
		return
	}
	a.l.Log(context.Background(), toSlog(level), msg, snake(args)...)
}

// snake turns hclog's key names ("remote-address") into snake_case.
func snake(args []any) []any {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok {
			args[i] = strings.NewReplacer("-", "_", " ", "_").Replace(k)
		}
	}
	return args
}

func (a *hcAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hcAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hcAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hcAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hcAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hcAdapter) IsTrace() bool { return a.level <= hclog.Trace }
func (a *hcAdapter) IsDebug() bool { return a.level <= hclog.Debug }
func (a *hcAdapter) IsInfo() bool  { return a.level <= hclog.Info }
func (a *hcAdapter) IsWarn() bool  { return a.level <= hclog.Warn }
func (a *hcAdapter) IsError() bool { return a.level <= hclog.Error }

func (a *hcAdapter) ImpliedArgs() []any { return a.args }

func (a *hcAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.args = append(append([]any{}, a.args...), args...)
	c.l = a.l.With(snake(append([]any{}, args...))...)
	return &c
}

func (a *hcAdapter) Name() string { return a.name }

func (a *hcAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hcAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	c.l = a.base.With("component", name).With(snake(append([]any{}, a.args...))...)
	return &c
}

func (a *hcAdapter) SetLevel(level hclog.Level) { a.level = level }
func (a *hcAdapter) GetLevel() hclog.Level      { return a.level }

func (a *hcAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hcAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.l.Info(strings.TrimSpace(string(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TB is the part of testing.TB the test logger needs.
type TB interface {
	Helper()
	Log(args ...any)
	Cleanup(func())
}

// Test returns a logger that writes to t.Log until the test ends, and drops
// lines after that (a late goroutine must not panic the test binary).
func Test(t TB, name string) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

type testWriter struct {
	t    TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
