// Command job is the job of the recovery benchmark (test/bench/recovery):
// Generate of the numbers i, without end, at -rate records a second in
// total -> KeyBy(i%16) -> Reduce (a running sum per key, in keyed state) ->
// a sink that writes "key sum" lines into -out, checkpointing every
// -checkpoint.
//
// Every time a sink subtask opens (once per subtask per attempt) it creates
// a file of its own, out-<open time, Unix ns>-<subtask>-<pid>, so that the
// output of an attempt is told from an earlier one's by the file name: a
// task of an attempt that is being cancelled never creates a file, and
// every file created after a moment belongs to an attempt deployed after it.
// Lines are buffered and written out when the runtime flushes the sink
// (when its input is idle, and every few milliseconds while busy), as
// sdk.FileSink does.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

type kv struct {
	K, V int64
}

func main() {
	fs := flag.NewFlagSet("recovery-job", flag.ExitOnError)
	rate := fs.Float64("rate", 2000, "records per second over all source subtasks")
	out := fs.String("out", "", "directory of the output files (required)")
	every := fs.Duration("checkpoint", time.Second, "checkpoint interval")
	_ = fs.Parse(os.Args[1:])
	if *out == "" || *rate <= 0 || *every <= 0 {
		fmt.Fprintln(os.Stderr, "recovery job: -out is required, -rate and -checkpoint must be positive")
		os.Exit(2)
	}

	job := sdk.NewJob("recovery-bench")
	job.EnableCheckpointing(*every)
	nums := sdk.FromSource(job, sdk.Generate(-1, func(i int64) int64 { return i }, sdk.RatePerSecond(*rate)), sdk.WithUID("src"))
	pairs := sdk.Map(nums, func(i int64) kv { return kv{K: i % 16, V: i} }, sdk.WithUID("pair"))
	sums := sdk.Reduce(sdk.KeyBy(pairs, func(r kv) int64 { return r.K }),
		func(a, b kv) kv { return kv{K: a.K, V: a.V + b.V} }, sdk.WithUID("sum"))
	sdk.SinkTo(sums, attemptFiles{dir: *out}, sdk.WithUID("out"))
	sdk.Main(job)
}

// attemptFiles is a sink that writes each subtask's lines to a new file
// every time the subtask opens.
type attemptFiles struct{ dir string }

func (s attemptFiles) Open(_ context.Context, sc sdk.SinkContext) (sdk.Writer[kv], error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("out-%d-%d-%d", time.Now().UnixNano(), sc.Subtask(), os.Getpid())
	f, err := os.Create(filepath.Join(s.dir, name))
	if err != nil {
		return nil, err
	}
	return &fileWriter{f: f, bw: bufio.NewWriterSize(f, 64<<10)}, nil
}

// fileWriter writes one subtask's file of one attempt.
type fileWriter struct {
	f   *os.File
	bw  *bufio.Writer
	buf []byte
}

func (w *fileWriter) Write(_ context.Context, r kv) error {
	w.buf = strconv.AppendInt(w.buf[:0], r.K, 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendInt(w.buf, r.V, 10)
	w.buf = append(w.buf, '\n')
	_, err := w.bw.Write(w.buf)
	return err
}

func (w *fileWriter) Flush(context.Context) error { return w.bw.Flush() }

func (w *fileWriter) Close(ctx context.Context) error {
	err := w.bw.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
