package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// stdoutMu serialises the Print sinks of a process, so that lines of
// different sinks and subtasks never interleave on stdout.
var stdoutMu sync.Mutex

// Print is a sink that writes every record, formatted with fmt's %v, on its
// own line to the standard output of the process that runs the sink
// subtask, as Flink's print() does. When the sink runs with parallelism
// greater than 1, each line starts with the number of the subtask that
// wrote it, counted from 1 as in Flink: "2> record". To print records in
// another format, Map them to strings first.
//
// The standard output is looked up when the sink opens, so a process that
// redirects os.Stdout before the job runs (a test, the plugin server)
// gets the output. Lines are buffered and written when the runtime flushes
// the sink: when its input is idle, every few milliseconds while busy, and
// at the end.
func Print[T any]() Sink[T] {
	return &printSink[T]{mu: &stdoutMu}
}

// PrintTo is Print writing to w instead of the standard output. Every sink
// subtask of the process writes whole lines to w under one lock, so w
// needs no locking of its own.
func PrintTo[T any](w io.Writer) Sink[T] {
	return &printSink[T]{w: w, mu: &sync.Mutex{}}
}

type printSink[T any] struct {
	w  io.Writer // nil: os.Stdout at Open
	mu *sync.Mutex
}

func (s *printSink[T]) Open(_ context.Context, sc SinkContext) (Writer[T], error) {
	w := s.w
	if w == nil {
		w = os.Stdout
	}
	pw := &printWriter[T]{w: w, mu: s.mu}
	if sc.Parallelism() > 1 {
		pw.prefix = strconv.Itoa(sc.Subtask()+1) + "> "
	}
	return pw, nil
}

// printFlushSize is the size at which a print writer writes its lines
// without waiting for a flush.
const printFlushSize = 32 << 10

type printWriter[T any] struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (p *printWriter[T]) Write(ctx context.Context, v T) error {
	p.buf = append(p.buf, p.prefix...)
	p.buf = fmt.Appendf(p.buf, "%v", v)
	p.buf = append(p.buf, '\n')
	if len(p.buf) >= printFlushSize {
		return p.Flush(ctx)
	}
	return nil
}

func (p *printWriter[T]) Flush(context.Context) error {
	if len(p.buf) == 0 {
		return nil
	}
	p.mu.Lock()
	_, err := p.w.Write(p.buf)
	p.mu.Unlock()
	p.buf = p.buf[:0]
	if err != nil {
		return fmt.Errorf("print: %w", err)
	}
	return nil
}

func (p *printWriter[T]) Close(ctx context.Context) error { return p.Flush(ctx) }
