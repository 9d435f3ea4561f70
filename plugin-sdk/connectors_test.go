package sdk_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// runJob runs job locally at parallelism p and fails the test on error.
func runJob(t *testing.T, job *sdk.Job, p int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sdk.RunLocal(ctx, job, sdk.LocalParallelism(p)); err != nil {
		t.Fatalf("run %s at parallelism %d: %v", job.Name(), p, err)
	}
}

// collect runs a job that reads src into a Collect sink and returns the
// records, sorted.
func collect[T cmp.Ordered](t *testing.T, src sdk.Source[T], p int) []T {
	t.Helper()
	job := sdk.NewJob("collect")
	out := sdk.Collect[T]()
	sdk.SinkTo(sdk.FromSource(job, src, sdk.WithUID("src")), out, sdk.WithUID("out"))
	runJob(t, job, p)
	got := out.Records()
	slices.Sort(got)
	return got
}

// sameRecords fails the test unless got and want hold the same records,
// each as often; both are sorted in place.
func sameRecords[T cmp.Ordered](t *testing.T, got, want []T) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("records differ at %d (sorted): got %v, want %v", i, got[i], want[i])
		}
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

var parallelisms = []int{1, 4}

func TestSequence(t *testing.T) {
	cases := []struct {
		name     string
		from, to int64
	}{
		{"range", -5, 10_000},
		{"one number", 7, 7},
		{"fewer numbers than subtasks", 1, 3},
		{"empty", 10, 9},
		{"up to the largest int64", math.MaxInt64 - 1000, math.MaxInt64},
		{"down to the smallest int64", math.MinInt64, math.MinInt64 + 1000},
	}
	for _, c := range cases {
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("%s/p=%d", c.name, p), func(t *testing.T) {
				want := []int64{}
				for i := c.from; i <= c.to; i++ {
					want = append(want, i)
					if i == math.MaxInt64 {
						break
					}
				}
				sameRecords(t, collect(t, sdk.Sequence(c.from, c.to), p), want)
			})
		}
	}
}

func TestGenerate(t *testing.T) {
	for _, n := range []int64{0, 1, 3, 10_000} {
		for _, p := range parallelisms {
			t.Run(fmt.Sprintf("n=%d/p=%d", n, p), func(t *testing.T) {
				got := collect(t, sdk.Generate(n, func(i int64) string { return "r" + strconv.FormatInt(i, 10) }), p)
				want := []string{}
				for i := range n {
					want = append(want, "r"+strconv.FormatInt(i, 10))
				}
				sameRecords(t, got, want)
			})
		}
	}
}

// stopAfter is a sink that keeps records and cancels the job once it has n.
type stopAfter struct {
	mu     sync.Mutex
	n      int
	got    []int64
	cancel context.CancelFunc
}

func (s *stopAfter) Open(context.Context, sdk.SinkContext) (sdk.Writer[int64], error) {
	return s, nil
}

func (s *stopAfter) Write(_ context.Context, v int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, v)
	if len(s.got) >= s.n {
		s.cancel()
	}
	return nil
}

func (s *stopAfter) Flush(context.Context) error { return nil }
func (s *stopAfter) Close(context.Context) error { return nil }

func TestGenerateUnbounded(t *testing.T) {
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sink := &stopAfter{n: 20_000, cancel: cancel}
			job := sdk.NewJob("unbounded")
			sdk.SinkTo(sdk.FromSource(job, sdk.Generate(-1, func(i int64) int64 { return i }), sdk.WithUID("src")),
				sdk.Sink[int64](sink), sdk.WithUID("out"))
			err := sdk.RunLocal(ctx, job, sdk.LocalParallelism(p))
			if err == nil || !strings.Contains(err.Error(), "cancelled") {
				t.Fatalf("RunLocal: %v, want the job cancelled", err)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if len(sink.got) < sink.n {
				t.Fatalf("got %d records, want at least %d", len(sink.got), sink.n)
			}
			seen := map[int64]bool{}
			for _, v := range sink.got {
				if seen[v] {
					t.Fatalf("record %d emitted twice", v)
				}
				seen[v] = true
			}
		})
	}
}

func TestGenerateRatePerSecond(t *testing.T) {
	const n, rate = 400, 2000 // at least 0.2 s
	start := time.Now()
	got := collect(t, sdk.Generate(n, func(i int64) int64 { return i }, sdk.RatePerSecond(rate)), 2)
	elapsed := time.Since(start)
	sameRecords(t, got, seq(0, n-1))
	if min := 150 * time.Millisecond; elapsed < min {
		t.Fatalf("%d records at %d per second took %v, want at least %v", n, rate, elapsed, min)
	}
}

func TestGenerateRejectsBadRate(t *testing.T) {
	job := sdk.NewJob("bad-rate")
	sdk.SinkTo(sdk.FromSource(job, sdk.Generate(10, func(i int64) int64 { return i }, sdk.RatePerSecond(-1)), sdk.WithUID("source")),
		sdk.Collect[int64]())
	err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(1))
	if err == nil || !strings.Contains(err.Error(), "rate -1") {
		t.Fatalf("RunLocal: %v, want an error about the rate", err)
	}
}

// writeFiles creates files in dir with the given contents.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// linesOf splits file contents into lines the way FileLines promises to,
// independently of its implementation.
func linesOf(contents ...string) []string {
	out := []string{}
	for _, c := range contents {
		if c == "" {
			continue
		}
		ls := strings.Split(c, "\n")
		if strings.HasSuffix(c, "\n") {
			ls = ls[:len(ls)-1]
		}
		for _, l := range ls {
			out = append(out, strings.TrimSuffix(l, "\r"))
		}
	}
	return out
}

// testFiles returns contents that exercise FileLines: several files, one
// without a trailing newline, an empty one, blank and CRLF lines, a line
// longer than the reader's buffer and a file of many lines.
func testFiles() map[string]string {
	var many strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&many, "many %d\n", i)
	}
	return map[string]string{
		"a.txt":     "alpha\nbeta\ngamma\n",
		"b.txt":     "one\ntwo\nthree without newline",
		"empty.txt": "",
		"c.txt":     "crlf 1\r\ncrlf 2\r\n\n\nafter blanks\n",
		"long.txt":  "short\n" + strings.Repeat("x", 200_000) + "\nend\n",
		"many.txt":  many.String(),
	}
}

func TestFileLines(t *testing.T) {
	dir := t.TempDir()
	files := testFiles()
	writeFiles(t, dir, files)
	var contents []string
	for _, c := range files {
		contents = append(contents, c)
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("glob/p=%d", p), func(t *testing.T) {
			// a.txt is named twice: it is read once.
			got := collect(t, sdk.FileLines(filepath.Join(dir, "*.txt"), filepath.Join(dir, "a.txt")), p)
			sameRecords(t, got, linesOf(contents...))
		})
		t.Run(fmt.Sprintf("paths/p=%d", p), func(t *testing.T) {
			got := collect(t, sdk.FileLines(filepath.Join(dir, "b.txt"), filepath.Join(dir, "empty.txt")), p)
			sameRecords(t, got, linesOf(files["b.txt"]))
		})
	}
}

func TestFileLinesDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"part-0": "a\nb\n", "part-1": "c\n", ".hidden": "no\n", "_SUCCESS": "no\n"})
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(dir, "sub"), map[string]string{"x": "not recursive\n"})
	sameRecords(t, collect(t, sdk.FileLines(dir), 2), []string{"a", "b", "c"})
}

func TestFileLinesMissingFileFailsTheJob(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"there.txt": "x\n"})
	cases := []struct{ name, path, want string }{
		{"file", filepath.Join(dir, "missing.txt"), filepath.Join(dir, "missing.txt")},
		{"pattern", filepath.Join(dir, "*.csv"), `no file matches "` + filepath.Join(dir, "*.csv") + `"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := sdk.NewJob("missing")
			src := sdk.FileLines(filepath.Join(dir, "there.txt"), c.path)
			sdk.SinkTo(sdk.FromSource(job, src, sdk.WithUID("src")), sdk.Collect[string]())
			err := sdk.RunLocal(context.Background(), job, sdk.LocalParallelism(2))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("RunLocal: %v, want an error naming %s", err, c.want)
			}
		})
	}
}

func TestPrint(t *testing.T) {
	records := seq(1, 1000)
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			var buf bytes.Buffer
			job := sdk.NewJob("print")
			sdk.SinkTo(sdk.FromSource(job, sdk.FromSlice(records), sdk.WithUID("source")), sdk.PrintTo[int64](&buf))
			runJob(t, job, p)
			var got []int64
			subtasks := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
				if p > 1 {
					prefix, rest, ok := strings.Cut(line, "> ")
					if !ok {
						t.Fatalf("line %q has no subtask prefix", line)
					}
					if n, err := strconv.Atoi(prefix); err != nil || n < 1 || n > p {
						t.Fatalf("line %q: prefix %q is not a subtask number from 1 to %d", line, prefix, p)
					}
					subtasks[prefix] = true
					line = rest
				}
				v, err := strconv.ParseInt(line, 10, 64)
				if err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				got = append(got, v)
			}
			sameRecords(t, got, slices.Clone(records))
			if p > 1 && len(subtasks) != p {
				t.Fatalf("lines came from subtasks %v, want all %d", subtasks, p)
			}
		})
	}
}

func TestFileSink(t *testing.T) {
	type reading struct {
		Sensor string
		Value  int64
	}
	var records []reading
	var want []string
	for i := range int64(5000) {
		r := reading{Sensor: fmt.Sprintf("s%d", i%13), Value: i}
		records = append(records, r)
		want = append(want, fmt.Sprintf("%s,%d", r.Sensor, r.Value))
	}
	for _, p := range parallelisms {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out") // created by the sink
			job := sdk.NewJob("file-sink")
			sdk.SinkTo(sdk.FromSource(job, sdk.FromSlice(records), sdk.WithUID("source")),
				sdk.FileSink(dir, func(r reading) string { return fmt.Sprintf("%s,%d", r.Sensor, r.Value) }))
			runJob(t, job, p)
			parts, err := filepath.Glob(filepath.Join(dir, "part-*"))
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != p {
				t.Fatalf("files %v, want one per subtask", parts)
			}
			var got []string
			for i := range p {
				b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("part-%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, linesOf(string(b))...)
			}
			sameRecords(t, got, slices.Clone(want))
		})
	}
}

func TestFileSinkDefaultFormat(t *testing.T) {
	dir := t.TempDir()
	job := sdk.NewJob("file-sink")
	sdk.SinkTo(sdk.FromSource(job, sdk.Sequence(1, 3), sdk.WithUID("source")), sdk.FileSink[int64](dir, nil))
	runJob(t, job, 1)
	b, err := os.ReadFile(filepath.Join(dir, "part-0"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "1\n2\n3\n" {
		t.Fatalf("part-0 holds %q", b)
	}
}

// sourceContext is what the runtime tells a source subtask.
type sourceContext struct{ subtask, parallelism int }

func (c sourceContext) Subtask() int     { return c.subtask }
func (c sourceContext) Parallelism() int { return c.parallelism }

type sliceCollector[T any] struct{ got []T }

func (c *sliceCollector[T]) Collect(v T) { c.got = append(c.got, v) }

// readWithRestores reads src the way a job restored from a checkpoint
// after every batch would: in each round, the current splits are dealt
// round robin to pars[round % len(pars)] readers, each reader reads one
// batch, then every reader is snapshotted and closed, and the snapshot's
// splits are the next round's. It returns everything emitted.
func readWithRestores[T any](t *testing.T, src sdk.Source[T], pars []int) []T {
	t.Helper()
	ctx := context.Background()
	splits, err := src.Splits(ctx, sourceContext{0, pars[0]})
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for round := 0; ; round++ {
		if round > 10_000 {
			t.Fatal("the readers never finished")
		}
		p := pars[round%len(pars)]
		var next []sdk.Split
		more := false
		for k := range p {
			var mine []sdk.Split
			for i, sp := range splits {
				if i%p == k {
					mine = append(mine, sp)
				}
			}
			r, err := src.Open(ctx, sourceContext{k, p}, mine)
			if err != nil {
				t.Fatalf("round %d: open: %v", round, err)
			}
			c := &sliceCollector[T]{}
			st, err := r.Read(ctx, c)
			if err != nil {
				t.Fatalf("round %d: read: %v", round, err)
			}
			out = append(out, c.got...)
			if st != sdk.Done {
				more = true
			}
			snap, err := r.Snapshot()
			if err != nil {
				t.Fatalf("round %d: snapshot: %v", round, err)
			}
			if len(snap) != len(mine) {
				t.Fatalf("round %d: a reader of %d splits snapshotted %d", round, len(mine), len(snap))
			}
			next = append(next, snap...)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}
		splits = next
		if !more {
			return out
		}
	}
}

func TestReaderSnapshotResumes(t *testing.T) {
	dir := t.TempDir()
	files := testFiles()
	writeFiles(t, dir, files)
	var contents []string
	for _, c := range files {
		contents = append(contents, c)
	}
	gen := func(i int64) string { return fmt.Sprintf("g%06d", i) }
	var generated []string
	for i := range int64(9000) {
		generated = append(generated, gen(i))
	}
	strs := func(vs []int64) []string {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = strconv.FormatInt(v, 10)
		}
		return out
	}
	// Every case reads its source with a restore after every batch.
	type resumeCase struct {
		name string
		pars []int // the parallelism of the successive restores
		read func(pars []int) (got, want []string)
	}
	var cases []resumeCase
	for _, pars := range [][]int{{1}, {4}, {4, 3, 1, 2}} {
		cases = append(cases,
			resumeCase{"sequence", pars, func(pars []int) ([]string, []string) {
				return strs(readWithRestores(t, sdk.Sequence(-3000, 7000), pars)), strs(seq(-3000, 7000))
			}},
			resumeCase{"generate", pars, func(pars []int) ([]string, []string) {
				return readWithRestores(t, sdk.Generate(9000, gen), pars), slices.Clone(generated)
			}},
			resumeCase{"file lines", pars, func(pars []int) ([]string, []string) {
				return readWithRestores(t, sdk.FileLines(filepath.Join(dir, "*")), pars), linesOf(contents...)
			}},
		)
	}
	// FromSlice's splits are only valid at the parallelism that made them.
	for _, p := range parallelisms {
		cases = append(cases, resumeCase{"from slice", []int{p}, func(pars []int) ([]string, []string) {
			return strs(readWithRestores(t, sdk.FromSlice(seq(-3000, 7000)), pars)), strs(seq(-3000, 7000))
		}})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/p=%v", c.name, c.pars), func(t *testing.T) {
			got, want := c.read(c.pars)
			sameRecords(t, got, want)
		})
	}
}

func TestGenerateUnboundedSnapshotResumes(t *testing.T) {
	ctx := context.Background()
	src := sdk.Generate(-1, func(i int64) int64 { return i })
	splits, err := src.Splits(ctx, sourceContext{0, 3})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	// Read a few batches per round, restoring at another parallelism.
	for round, p := range []int{3, 2, 1, 4} {
		var next []sdk.Split
		for k := range p {
			var mine []sdk.Split
			for i, sp := range splits {
				if i%p == k {
					mine = append(mine, sp)
				}
			}
			r, err := src.Open(ctx, sourceContext{k, p}, mine)
			if err != nil {
				t.Fatal(err)
			}
			c := &sliceCollector[int64]{}
			want := sdk.More
			if len(mine) == 0 {
				want = sdk.Done
			}
			for range 3 {
				if st, err := r.Read(ctx, c); err != nil || st != want {
					t.Fatalf("round %d: subtask %d of %d splits: Read = %v, %v; want %v", round, k, len(mine), st, err, want)
				}
			}
			for _, v := range c.got {
				seen[v]++
			}
			snap, err := r.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			next = append(next, snap...)
		}
		splits = next
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%d emitted %d times", v, n)
		}
	}
	// Each of the 3 splits emitted a prefix of its residue class.
	for k := range int64(3) {
		n := int64(0)
		for seen[k+3*n] > 0 {
			n++
		}
		for v := range seen {
			if v%3 == k && v >= k+3*n {
				t.Fatalf("split %d skipped %d", k, k+3*n)
			}
		}
	}
}
