// Command job is the job of the savepoint benchmark (test/bench/savepoint):
// a source of the numbers i -> KeyBy(i % -keys) -> an operator that keeps,
// per key, a -value-byte value in value state, overwritten by every record
// of the key -> a sink (only with -out).
//
// The source emits -n records in all (its subtask k the numbers k, k+P,
// k+2P, ...), at -rate records a second (0: as fast as the job takes them),
// then stays idle without ending, so that the job stays RUNNING with its
// state built: with -n equal to -keys, every key is written exactly once
// and the keyed state holds -keys x -value bytes of values. -n < 0 never
// stops. Once a source subtask has emitted its share it creates the file
// src-<subtask>-done in -markers (when given): a savepoint triggered after
// every subtask's marker exists holds every key, since its barriers follow
// the records.
//
// With -out, the keyed operator emits "key i" for each record and the sink
// writes each as a line "<wall clock, Unix ns> key i" into its own file
// out-<$EDDY_BENCH_CLUSTER>-<subtask>-<pid> under -out, the time taken when
// the sink writes the line. The environment variable tells which cluster's
// worker started the plugin, so that the output of a job migrated from one
// cluster to another says where each line was written. The sink is
// at-least-once: an exactly-once sink publishes only when a checkpoint
// completes, which would hide when output really flowed.
//
// Checkpointing is enabled with -checkpoint as the interval (savepoints
// need it); the benchmark sets it long, so that no periodic checkpoint
// runs while it measures.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

type kv struct{ K, I int64 }

func main() {
	fs := flag.NewFlagSet("savepoint-job", flag.ExitOnError)
	keys := fs.Int64("keys", 1024, "distinct keys")
	value := fs.Int("value", 1024, "bytes of each key's value")
	n := fs.Int64("n", -1, "records to emit before the source idles; negative: without end")
	rate := fs.Float64("rate", 0, "records per second over all source subtasks; 0: unlimited")
	markers := fs.String("markers", "", "directory of the files a source subtask creates once it emitted its share")
	out := fs.String("out", "", "directory of the sink's output files; empty: no sink")
	every := fs.Duration("checkpoint", time.Hour, "checkpoint interval")
	_ = fs.Parse(os.Args[1:])
	if *keys <= 0 || *value <= 0 || *rate < 0 || *every <= 0 {
		fmt.Fprintln(os.Stderr, "savepoint job: -keys, -value and -checkpoint must be positive, -rate not negative")
		os.Exit(2)
	}

	job := sdk.NewJob("savepoint-bench")
	job.EnableCheckpointing(*every)
	nums := sdk.FromSource(job, &burstSource{n: *n, rate: *rate, markers: *markers}, sdk.WithUID("src"))
	k := *keys
	keyed := sdk.KeyBy(nums, func(i int64) int64 { return i % k })
	st := sdk.Process(keyed, &keep{size: *value, emit: *out != ""}, sdk.WithUID("state"))
	if *out != "" {
		sdk.SinkTo(st, stampedFiles{dir: *out}, sdk.WithUID("out"))
	}
	sdk.Main(job)
}

// keep overwrites its key's value with size bytes derived from the record.
type keep struct {
	size int
	emit bool
	val  sdk.ValueState[[]byte]
}

func (f *keep) Open(ctx sdk.RuntimeContext) error {
	f.val = sdk.NewValueState[[]byte](ctx, "value")
	return nil
}

func (f *keep) ProcessElement(ctx sdk.KeyedContext[int64], i int64, out sdk.Collector[kv]) error {
	// A new slice every time: the state keeps the one it was given.
	v := make([]byte, f.size)
	fill(v, uint64(i))
	f.val.Update(v)
	if f.emit {
		out.Collect(kv{K: ctx.Key(), I: i})
	}
	return nil
}

// fill writes pseudo-random bytes seeded by seed (xorshift), so that the
// values do not compress.
func fill(b []byte, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 | 1
	for len(b) >= 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b, x)
		b = b[8:]
	}
	for j := range b {
		b[j] = byte(x >> (8 * j))
	}
}

// burstSource emits its subtask's numbers up to n, then idles.
type burstSource struct {
	n       int64
	rate    float64
	markers string
}

func (s *burstSource) Splits(_ context.Context, sc sdk.SourceContext) ([]sdk.Split, error) {
	p := max(sc.Parallelism(), 1)
	var out []sdk.Split
	for k := range p {
		out = append(out, sdk.Split{ID: fmt.Sprintf("burst-%d-of-%d", k, p), State: binary.AppendVarint(nil, int64(k))})
	}
	return out, nil
}

func (s *burstSource) Open(_ context.Context, sc sdk.SourceContext, splits []sdk.Split) (sdk.Reader[int64], error) {
	if len(splits) != 1 {
		// Restored at another parallelism: not what the benchmark does.
		return nil, fmt.Errorf("burst source: %d splits for subtask %d, want 1 (restore at the same parallelism)", len(splits), sc.Subtask())
	}
	next, m := binary.Varint(splits[0].State)
	if m <= 0 {
		return nil, fmt.Errorf("burst source: corrupt split state")
	}
	r := &burstReader{id: splits[0].ID, next: next, step: int64(max(sc.Parallelism(), 1)), n: s.n, subtask: sc.Subtask(), markers: s.markers}
	if s.rate > 0 {
		r.perSec = s.rate / float64(r.step)
		r.start = time.Now()
	}
	return r, nil
}

type burstReader struct {
	id         string
	next, step int64
	n          int64
	subtask    int
	markers    string
	marked     bool

	perSec  float64 // 0: unlimited
	start   time.Time
	emitted int64 // since start
}

func (r *burstReader) Read(_ context.Context, out sdk.Collector[int64]) (sdk.ReadStatus, error) {
	budget := int64(256)
	if r.perSec > 0 {
		due := int64(time.Since(r.start).Seconds()*r.perSec) + 1
		budget = min(budget, due-r.emitted)
	}
	emitted := int64(0)
	for ; emitted < budget && (r.n < 0 || r.next < r.n); emitted++ {
		out.Collect(r.next)
		r.next += r.step
	}
	r.emitted += emitted
	if r.n >= 0 && r.next >= r.n && !r.marked {
		r.marked = true
		if r.markers != "" {
			if err := os.MkdirAll(r.markers, 0o755); err != nil {
				return sdk.Idle, err
			}
			if err := os.WriteFile(filepath.Join(r.markers, fmt.Sprintf("src-%d-done", r.subtask)), nil, 0o644); err != nil {
				return sdk.Idle, err
			}
		}
	}
	if emitted == 0 {
		return sdk.Idle, nil
	}
	return sdk.More, nil
}

func (r *burstReader) Snapshot() ([]sdk.Split, error) {
	return []sdk.Split{{ID: r.id, State: binary.AppendVarint(nil, r.next)}}, nil
}

func (r *burstReader) Close() error { return nil }

// stampedFiles writes each subtask's lines, stamped with the wall clock,
// to a file of its own named after the cluster and the process.
type stampedFiles struct{ dir string }

func (s stampedFiles) Open(_ context.Context, sc sdk.SinkContext) (sdk.Writer[kv], error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	cluster := os.Getenv("EDDY_BENCH_CLUSTER")
	if cluster == "" {
		cluster = "unknown"
	}
	name := fmt.Sprintf("out-%s-%d-%d", cluster, sc.Subtask(), os.Getpid())
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &stampedWriter{f: f, bw: bufio.NewWriterSize(f, 64<<10)}, nil
}

type stampedWriter struct {
	f   *os.File
	bw  *bufio.Writer
	buf []byte
}

func (w *stampedWriter) Write(_ context.Context, r kv) error {
	w.buf = strconv.AppendInt(w.buf[:0], time.Now().UnixNano(), 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendInt(w.buf, r.K, 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendInt(w.buf, r.I, 10)
	w.buf = append(w.buf, '\n')
	_, err := w.bw.Write(w.buf)
	return err
}

func (w *stampedWriter) Flush(context.Context) error { return w.bw.Flush() }

func (w *stampedWriter) Close(context.Context) error {
	err := w.bw.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
