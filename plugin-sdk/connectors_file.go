package sdk

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// fileBufferSize is the buffer of the file readers and writers.
const fileBufferSize = 64 << 10

// FileLines is a bounded source of the lines of text files, without their
// line endings ("\n" or "\r\n"). A final line without a newline is a line;
// an empty file has none. Each path is a file, a directory (its regular
// files whose names do not start with "." or "_", not recursively) or a
// glob pattern as filepath.Match understands it. Every file is one split,
// assigned round robin to the source's subtasks, and checkpoints the byte
// offset of its next line, so a restored job resumes after the last line it
// emitted. A missing file, or a pattern that matches nothing, fails the job
// with an error that names it.
//
// The files are listed by every source subtask when the job starts, so on a
// cluster they must be visible to every worker at the same paths.
func FileLines(paths ...string) Source[string] {
	return &fileSource{paths: slices.Clone(paths)}
}

type fileSource struct{ paths []string }

func (s *fileSource) Splits(context.Context, SourceContext) ([]Split, error) {
	files, err := expandPaths(s.paths)
	if err != nil {
		return nil, fmt.Errorf("file lines: %w", err)
	}
	splits := make([]Split, len(files))
	for i, f := range files {
		splits[i] = Split{ID: f, State: fileSplit{}.encode()}
	}
	return splits, nil
}

// expandPaths lists the files that paths name, in the order given, each
// once.
func expandPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths given")
	}
	var files []string
	seen := map[string]bool{}
	add := func(f string) {
		f = filepath.Clean(f)
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	for _, p := range paths {
		if hasMeta(p) {
			matches, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", p, err)
			}
			n := 0
			for _, m := range matches {
				fi, err := os.Stat(m)
				if err != nil {
					return nil, err
				}
				if fi.Mode().IsRegular() {
					add(m)
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("no file matches %q", p)
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			add(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") || !e.Type().IsRegular() {
				continue
			}
			add(filepath.Join(p, e.Name()))
		}
	}
	return files, nil
}

func hasMeta(path string) bool { return strings.ContainsAny(path, `*?[\`) }

func (s *fileSource) Open(_ context.Context, _ SourceContext, splits []Split) (Reader[string], error) {
	r := &fileReader{}
	for _, sp := range splits {
		fs, err := decodeFileSplit(sp.State)
		if err != nil {
			return nil, fmt.Errorf("file lines: split %q: %w", sp.ID, err)
		}
		fs.path = sp.ID
		r.splits = append(r.splits, fs)
	}
	return r, nil
}

// fileSplit is one file and the offset of its next line. done is set at
// the end of the file, so that a restored job does not open it again.
type fileSplit struct {
	path   string
	offset int64
	done   bool
}

const fileSplitVersion = 1

func (f fileSplit) encode() []byte {
	var flags byte
	if f.done {
		flags = flagDone
	}
	return binary.AppendUvarint([]byte{fileSplitVersion, flags}, uint64(f.offset))
}

func decodeFileSplit(b []byte) (fileSplit, error) {
	if len(b) < 2 {
		return fileSplit{}, errBadState
	}
	if b[0] != fileSplitVersion {
		return fileSplit{}, fmt.Errorf("split state version %d: want %d", b[0], fileSplitVersion)
	}
	off, n := binary.Uvarint(b[2:])
	if n <= 0 || n != len(b)-2 || off > 1<<62 {
		return fileSplit{}, errBadState
	}
	return fileSplit{offset: int64(off), done: b[1]&flagDone != 0}, nil
}

type fileReader struct {
	splits []fileSplit
	cur    int // the split being read: the first that is not done
	f      *os.File
	br     *bufio.Reader
	line   []byte // scratch for lines longer than the buffer
}

func (r *fileReader) Read(_ context.Context, out Collector[string]) (ReadStatus, error) {
	for n := 0; n < readBatch; {
		for r.cur < len(r.splits) && r.splits[r.cur].done {
			r.cur++
		}
		if r.cur == len(r.splits) {
			return Done, nil
		}
		sp := &r.splits[r.cur]
		if r.f == nil {
			if err := r.open(sp); err != nil {
				return Done, err
			}
		}
		line, size, err := r.readLine()
		if size > 0 {
			out.Collect(string(line))
			sp.offset += int64(size)
			n++
		}
		switch {
		case err == io.EOF:
			sp.done = true
			if err := r.closeFile(); err != nil {
				return Done, fmt.Errorf("file lines: %w", err)
			}
		case err != nil:
			return Done, fmt.Errorf("file lines: read %s: %w", sp.path, err)
		}
	}
	return More, nil
}

func (r *fileReader) open(sp *fileSplit) error {
	f, err := os.Open(sp.path)
	if err != nil {
		return fmt.Errorf("file lines: %w", err)
	}
	if _, err := f.Seek(sp.offset, io.SeekStart); err != nil {
		_ = f.Close()
		return fmt.Errorf("file lines: seek %s to %d: %w", sp.path, sp.offset, err)
	}
	r.f = f
	if r.br == nil {
		r.br = bufio.NewReaderSize(f, fileBufferSize)
	} else {
		r.br.Reset(f)
	}
	return nil
}

func (r *fileReader) closeFile() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// readLine returns the next line without its ending, and its size in the
// file with the ending. At the end of the file it returns io.EOF, with
// the last line if that has no newline. The line is valid until the next
// call.
func (r *fileReader) readLine() (line []byte, size int, err error) {
	chunk, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.line = append(r.line[:0], chunk...)
		for err == bufio.ErrBufferFull {
			chunk, err = r.br.ReadSlice('\n')
			r.line = append(r.line, chunk...)
		}
		chunk = r.line
	}
	if err != nil && err != io.EOF {
		return nil, 0, err
	}
	size = len(chunk)
	line = chunk
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line, size, err
}

func (r *fileReader) Snapshot() ([]Split, error) {
	out := make([]Split, len(r.splits))
	for i, sp := range r.splits {
		out[i] = Split{ID: sp.path, State: sp.encode()}
	}
	return out, nil
}

func (r *fileReader) Close() error { return r.closeFile() }

// FileSink writes every record, formatted by format (fmt's %v when format
// is nil), as one line to a file per sink subtask: dir/part-0,
// dir/part-1, ... It creates dir if needed and truncates the files when
// the job starts. Lines are buffered and written out when the runtime
// flushes the sink (when its input is idle, every few milliseconds while
// busy, and at the end), so after a failure a file holds a prefix of its
// lines: the sink is at-least-once across restarts at best.
// ExactlyOnceFileSink publishes its parts with checkpoints instead.
//
// format is called from the sink's subtasks concurrently.
func FileSink[T any](dir string, format func(T) string) Sink[T] {
	return &fileSink[T]{dir: dir, format: format}
}

type fileSink[T any] struct {
	dir    string
	format func(T) string
}

func (s *fileSink[T]) Open(_ context.Context, sc SinkContext) (Writer[T], error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	path := filepath.Join(s.dir, fmt.Sprintf("part-%d", sc.Subtask()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	format := s.format
	if format == nil {
		format = func(v T) string { return fmt.Sprint(v) }
	}
	return &fileWriter[T]{path: path, f: f, bw: bufio.NewWriterSize(f, fileBufferSize), format: format}, nil
}

// fileWriter writes one part file.
type fileWriter[T any] struct {
	path   string
	f      *os.File
	bw     *bufio.Writer
	format func(T) string
}

func (w *fileWriter[T]) Write(_ context.Context, v T) error {
	if w.f == nil {
		return fmt.Errorf("file sink: write to %s after close", w.path)
	}
	// bufio.Writer's errors are sticky: the second call reports the first's.
	_, _ = w.bw.WriteString(w.format(v))
	if err := w.bw.WriteByte('\n'); err != nil {
		return fmt.Errorf("file sink: write %s: %w", w.path, err)
	}
	return nil
}

func (w *fileWriter[T]) Flush(context.Context) error {
	if w.f == nil {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("file sink: write %s: %w", w.path, err)
	}
	return nil
}

func (w *fileWriter[T]) Close(ctx context.Context) error {
	if w.f == nil {
		return nil
	}
	err := w.Flush(ctx)
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("file sink: close %s: %w", w.path, cerr)
	}
	w.f = nil
	return err
}
