package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/eddy-streams/eddy/plugin-sdk/handshake"
)

// stderrTail keeps the last lines a plugin wrote to its real stderr (its
// JSON logs, and what the Go runtime prints when the process dies), so that
// a crash can be reported with its cause. It is safe for concurrent use.
type stderrTail struct {
	mu      sync.Mutex
	partial []byte
	lines   []string // ring of the last maxTailLines lines
	next    int
	full    bool
	// panicLine is the first line of the last Go panic or fatal error: the
	// stack trace that follows it pushes it out of the ring.
	panicLine string
}

const (
	maxTailLines = 40
	maxLineBytes = 1024
)

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := maxLineBytes - len(t.partial); room > 0 {
				t.partial = append(t.partial, p[:min(room, len(p))]...)
			}
			break
		}
		if room := maxLineBytes - len(t.partial); room > 0 {
			t.partial = append(t.partial, p[:min(room, i)]...)
		}
		t.add(string(t.partial))
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (t *stderrTail) add(line string) {
	if line == "" {
		return
	}
	line = plainLogLine(line)
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		t.panicLine = line
	}
	if len(t.lines) < maxTailLines {
		t.lines = append(t.lines, line)
		return
	}
	t.lines[t.next] = line
	t.next = (t.next + 1) % maxTailLines
	t.full = true
}

// last returns up to n of the last lines, oldest first, preceded by the
// line that started a panic if it is no longer among them.
func (t *stderrTail) last(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := t.lines
	if t.full {
		all = append(append([]string{}, t.lines[t.next:]...), t.lines[:t.next]...)
	}
	if len(t.partial) > 0 {
		all = append(append([]string{}, all...), string(t.partial))
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	if t.panicLine != "" {
		found := false
		for _, l := range all {
			found = found || l == t.panicLine
		}
		if !found {
			all = append([]string{t.panicLine, "..."}, all...)
		}
	}
	return all
}

// lineLogger logs every line written to it. Plugins' stdout and stderr
// (after go-plugin redirected them) arrive here.
type lineLogger struct {
	log     *slog.Logger
	level   slog.Level
	mu      sync.Mutex
	partial []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) >= 64<<10 {
				l.emit()
			}
			return n, nil
		}
		l.partial = append(l.partial, p[:i]...)
		l.emit()
		p = p[i+1:]
	}
}

func (l *lineLogger) emit() {
	l.log.Log(context.Background(), l.level, strings.TrimRight(string(l.partial), "\r"))
	l.partial = l.partial[:0]
}

// plainLogLine renders a JSON log line of the plugin (hclog's format) as
// "[level] message key=value ...", which reads better in a failure cause;
// other lines are returned as they are.
func plainLogLine(line string) string {
	if !strings.HasPrefix(line, "{") {
		return line
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return line
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return line
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%v] %s", m["@level"], msg)
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, m[k])
	}
	return b.String()
}

// jobStdout is where a job plugin's standard output goes.
func (w *Worker) jobStdout(log *slog.Logger) io.Writer {
	if w.cfg.JobStdout != nil {
		return w.cfg.JobStdout
	}
	return &lineLogger{log: log.With("stream", "stdout"), level: slog.LevelInfo}
}

// endWatcher passes a plugin's output on a line at a time, taking out the
// output-end line and reporting it.
type endWatcher struct {
	next    io.Writer
	onEnd   func()
	mu      sync.Mutex
	partial []byte
}

func (e *endWatcher) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := len(p)
	e.partial = append(e.partial, p...)
	for {
		i := bytes.IndexByte(e.partial, '\n')
		if i < 0 {
			break
		}
		line := e.partial[:i+1]
		if string(bytes.TrimRight(line, "\r\n")) == handshake.OutputEnd {
			e.onEnd()
		} else if _, err := e.next.Write(line); err != nil {
			return n, err
		}
		e.partial = e.partial[i+1:]
	}
	if len(e.partial) >= 64<<10 {
		// A line without end: pass it on rather than grow.
		if _, err := e.next.Write(e.partial); err != nil {
			return n, err
		}
		e.partial = e.partial[:0]
	}
	return n, nil
}
