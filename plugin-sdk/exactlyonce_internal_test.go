package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/internal/s3test"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"google.golang.org/protobuf/proto"
)

// keyCount is a key and how many records of it came so far.
type keyCount struct {
	Key int64
	N   int64
}

const (
	eoRecords = 12000
	eoKeys    = 13
)

// countingJob reads a generator, counts the records per key with keyed
// state and writes every count through the exactly-once file sink at
// location. Each record yields one line "key,n": the n-th record of its
// key. The output, as a multiset, does not depend on the order records
// meet in, so it says exactly whether state or output was lost or
// duplicated across a restore.
func countingJob(location string, rate float64) *Job {
	job := NewJob("exactly-once")
	src := FromSource(job, Generate(eoRecords, func(i int64) int64 { return i }, RatePerSecond(rate)), WithUID("gen"))
	ones := Map(src, func(i int64) keyCount { return keyCount{Key: i % eoKeys, N: 1} })
	counts := Reduce(KeyBy(ones, func(c keyCount) int64 { return c.Key }),
		func(acc, v keyCount) keyCount { return keyCount{Key: acc.Key, N: acc.N + v.N} }, WithUID("count"))
	SinkTo(counts, ExactlyOnceFileSink(location, func(c keyCount) string { return fmt.Sprintf("%d,%d", c.Key, c.N) }),
		WithUID("out"))
	return job
}

// wantCounts is the independent computation of countingJob's output.
func wantCounts() []string {
	perKey := map[int64]int64{}
	for i := range int64(eoRecords) {
		perKey[i%eoKeys]++
	}
	var want []string
	for k, n := range perKey {
		for c := int64(1); c <= n; c++ {
			want = append(want, fmt.Sprintf("%d,%d", k, c))
		}
	}
	slices.Sort(want)
	return want
}

// publishedLines reads every published part under a store (skipping the
// in-progress ones) and returns their lines, sorted, and the parts' names.
func publishedLines(t *testing.T, st storage.Store) ([]string, []string) {
	t.Helper()
	ctx := context.Background()
	infos, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var lines, parts []string
	for _, in := range infos {
		if strings.HasPrefix(in.Name, inProgressDir+"/") {
			continue
		}
		parts = append(parts, in.Name)
		r, _, err := st.Open(ctx, in.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Fields(string(b))...)
	}
	slices.Sort(lines)
	return lines, parts
}

// dirLines reads the published parts of a local output directory.
func dirLines(t *testing.T, dir string) ([]string, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines, parts []string
	for _, e := range entries {
		if e.IsDir() {
			if e.Name() != inProgressDir {
				t.Errorf("unexpected directory %s in the output", e.Name())
			}
			continue
		}
		parts = append(parts, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Fields(string(b))...)
	}
	slices.Sort(lines)
	return lines, parts
}

// sameLines compares two sorted multisets of lines and reports the
// difference briefly.
func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	count := func(ls []string) map[string]int {
		m := map[string]int{}
		for _, l := range ls {
			m[l]++
		}
		return m
	}
	g, w := count(got), count(want)
	var dup, lost []string
	for _, l := range slices.Sorted(maps.Keys(w)) {
		if g[l] > w[l] {
			dup = append(dup, l)
		}
		if g[l] < w[l] {
			lost = append(lost, l)
		}
	}
	extra := 0
	for l := range g {
		if w[l] == 0 {
			extra++
		}
	}
	t.Fatalf("%d lines, want %d: %d duplicated (%q), %d lost (%q), %d unexpected",
		len(got), len(want), len(dup), dup[:min(len(dup), 10)], len(lost), lost[:min(len(lost), 10)], extra)
}

// A job killed mid-run and restored from its last completed checkpoint
// (at another parallelism) publishes every record's result exactly once:
// the source resumes its splits, the counts resume from their state, and
// the sink publishes what the checkpoint had pre-committed, once.
func TestExactlyOnceFileSinkRecoversLocal(t *testing.T) {
	dir := t.TempDir()
	got := killAndRestore(t, countingJob, dir, 2, 3, func() ([]string, []string) { return dirLines(t, dir) })
	sameLines(t, got, wantCounts())
}

func TestExactlyOnceFileSinkRecoversS3(t *testing.T) {
	gw := s3test.Start(t)
	gw.UseEnv(t)
	url := gw.URL("out")
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	got := killAndRestore(t, countingJob, url, 2, 3, func() ([]string, []string) { return publishedLines(t, st) })
	sameLines(t, got, wantCounts())
}

// killAndRestore runs the job build makes at parallelism from, writing to
// location, kills it after a few completed checkpoints (with part of its
// output published), restores it from the last one at parallelism to, and
// returns the output when it finished. build's rate is the records per
// second of the first attempt's source (0 for the second: unlimited).
func killAndRestore(t *testing.T, build func(location string, rate float64) *Job, location string, from, to int,
	published func() ([]string, []string)) []string {
	t.Helper()
	cps := newMemCheckpoints(t)
	// About 0.6 s of input, killed after a few checkpoints.
	a := cps.start(build(location, 20000), from, 1, false, 15*time.Millisecond)
	cps.waitCompleted(a, 3)
	if err := a.kill(); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed attempt: %v, want it cancelled", err)
	}
	before, parts := published()
	if len(before) == 0 {
		t.Fatalf("the killed attempt published nothing: want part of the output, to test the restore")
	}
	if slices.ContainsFunc(parts, func(p string) bool { return !strings.HasPrefix(p, "part-") }) {
		t.Fatalf("published parts %q: want part-<subtask>-<checkpoint>-<n>", parts)
	}
	b := cps.start(build(location, 0), to, 2, true, 20*time.Millisecond)
	if err := b.wait(t); err != nil {
		t.Fatalf("restored attempt: %v", err)
	}
	got, _ := published()
	if len(got) <= len(before) {
		t.Fatalf("the restored attempt published nothing more (%d lines before, %d after)", len(before), len(got))
	}
	return got
}

// uninterrupted runs the job build makes to its end without checkpoints
// and returns its output.
func uninterrupted(t *testing.T, build func(location string, rate float64) *Job, p int) []string {
	t.Helper()
	dir := t.TempDir()
	if err := RunLocal(context.Background(), build(dir, 0), LocalParallelism(p)); err != nil {
		t.Fatal(err)
	}
	got, _ := dirLines(t, dir)
	return got
}

// A source at parallelism 2 restored at 1 and at 3 resumes every split
// where its checkpoint left it: every number once.
func TestSourceRestoreAtOtherParallelism(t *testing.T) {
	numbers := func(location string, rate float64) *Job {
		job := NewJob("numbers")
		src := FromSource(job, Generate(eoRecords, func(i int64) int64 { return i }, RatePerSecond(rate)), WithUID("gen"))
		SinkTo(src, ExactlyOnceFileSink[int64](location, nil), WithUID("out"))
		return job
	}
	var want []string
	for i := range eoRecords {
		want = append(want, fmt.Sprint(i))
	}
	slices.Sort(want)
	for _, to := range []int{1, 3} {
		t.Run(fmt.Sprintf("2 to %d", to), func(t *testing.T) {
			dir := t.TempDir()
			got := killAndRestore(t, numbers, dir, 2, to, func() ([]string, []string) { return dirLines(t, dir) })
			sameLines(t, got, want)
		})
	}
}

// Source snapshots encode their splits; a restore reads them back and
// refuses what it cannot read.
func TestSourceSplitItems(t *testing.T) {
	splits := []Split{{ID: "a", State: []byte{1, 2, 3}}, {ID: "", State: nil}, {ID: "file/x", State: []byte{}}}
	var items [][]byte
	for _, sp := range splits {
		items = append(items, encodeSplit(sp))
	}
	got, err := decodeSplits(items)
	if err != nil {
		t.Fatal(err)
	}
	for i := range splits {
		if got[i].ID != splits[i].ID || !bytes.Equal(got[i].State, splits[i].State) {
			t.Fatalf("split %d: %+v, want %+v", i, got[i], splits[i])
		}
	}
	for _, bad := range [][]byte{nil, {2, 0, 0}, {1, 5, 'a'}, append(encodeSplit(splits[0]), 0)} {
		if _, err := decodeSplits([][]byte{bad}); err == nil {
			t.Errorf("decode %v: no error", bad)
		}
	}
	// A source without a UID is refused when the job is built.
	job := NewJob("no-uid")
	SinkTo(FromSource(job, Sequence(1, 2)), Collect[int64]())
	if _, err := job.plan(1); err == nil || !strings.Contains(err.Error(), "keeps its read positions in checkpoints and needs a stable uid") {
		t.Fatalf("source without a uid: %v", err)
	}
}

// ev is a record with a key and an event time.
type ev struct {
	Key int64
	T   int64
}

// bucketFn counts each key's records per bucket of 100 ms of event time in
// map state and emits the count when an event-time timer at the bucket's
// end fires; at its first record a key registers a processing-time timer
// 300 ms later, remembered in value state, that emits "p,<key>" once.
type bucketFn struct {
	counts MapState[int64, int64]
	armed  ValueState[bool]
}

func (f *bucketFn) Open(ctx RuntimeContext) error {
	f.counts = NewMapState[int64, int64](ctx, "counts")
	f.armed = NewValueState[bool](ctx, "armed")
	return nil
}

func (f *bucketFn) ProcessElement(ctx KeyedContext[int64], e ev, _ Collector[string]) error {
	b := e.T / 100
	n, _ := f.counts.Get(b)
	f.counts.Put(b, n+1)
	ctx.TimerService().RegisterEventTimeTimer(b*100 + 99)
	if _, ok := f.armed.Value(); !ok {
		f.armed.Update(true)
		ctx.TimerService().RegisterProcessingTimeTimer(ctx.TimerService().CurrentProcessingTime() + 300)
	}
	return nil
}

func (f *bucketFn) OnTimer(ctx KeyedContext[int64], ts int64, out Collector[string]) error {
	if ctx.TimeDomain() == ProcessingTime {
		out.Collect(fmt.Sprintf("p,%d", ctx.Key()))
		return nil
	}
	b := ts / 100
	n, _ := f.counts.Get(b)
	f.counts.Remove(b)
	out.Collect(fmt.Sprintf("e,%d,%d,%d", ctx.Key(), b, n))
	return nil
}

func eventSource(job *Job, rate float64) *Stream[ev] {
	return FromSource(job, Generate(eoRecords, func(i int64) ev { return ev{Key: i % 5, T: i} }, RatePerSecond(rate)),
		WithUID("events"), WithWatermarks(MonotonousTimestamps(func(e ev) int64 { return e.T })))
}

// A keyed process function's value and map state and its event-time and
// processing-time timers survive a kill and a restore at another
// parallelism: every bucket is counted whole and emitted once, and every
// key's processing-time timer, registered before the kill and pending
// then, fires once after the restore.
func TestKeyedProcessRestore(t *testing.T) {
	build := func(location string, rate float64) *Job {
		// Slow enough for the processing-time timers to be pending at the
		// kill, and to fire while the restored attempt runs (they do not
		// fire at the end of input).
		if rate == 0 {
			rate = 20000
		} else {
			rate /= 2
		}
		job := NewJob("buckets")
		out := Process(KeyBy(eventSource(job, rate), func(e ev) int64 { return e.Key }),
			KeyedProcessFunction[int64, ev, string](&bucketFn{}), WithUID("buckets"))
		SinkTo(out, ExactlyOnceFileSink[string](location, nil), WithUID("out"))
		return job
	}
	var want []string
	for k := range int64(5) {
		want = append(want, fmt.Sprintf("p,%d", k))
		for b := range int64(eoRecords / 100) {
			want = append(want, fmt.Sprintf("e,%d,%d,20", k, b))
		}
	}
	slices.Sort(want)
	for _, p := range [][2]int{{2, 3}, {2, 1}} {
		t.Run(fmt.Sprintf("%d to %d", p[0], p[1]), func(t *testing.T) {
			dir := t.TempDir()
			got := killAndRestore(t, build, dir, p[0], p[1], func() ([]string, []string) { return dirLines(t, dir) })
			sameLines(t, got, want)
		})
	}
}

// Window operators restored mid-window fire what an uninterrupted run
// fires: tumbling windows, and session windows that merge.
func TestWindowRestore(t *testing.T) {
	for _, tc := range []struct {
		name     string
		assigner WindowAssigner
		// at spreads the records so that sessions form
		at func(i int64) int64
	}{
		{"tumbling", TumblingEventTimeWindows(250 * time.Millisecond), func(i int64) int64 { return i }},
		{"sessions", EventTimeSessionWindows(50 * time.Millisecond), func(i int64) int64 { return i + 100*(i/300) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := func(location string, rate float64) *Job {
				job := NewJob("windows")
				src := FromSource(job, Generate(eoRecords, func(i int64) ev { return ev{Key: i % 5, T: tc.at(i)} }, RatePerSecond(rate)),
					WithUID("events"), WithWatermarks(MonotonousTimestamps(func(e ev) int64 { return e.T })))
				sums := WindowReduce(WindowBy(KeyBy(src, func(e ev) int64 { return e.Key }), tc.assigner),
					func(a, b ev) ev { return ev{Key: a.Key, T: a.T + b.T} }, WithUID("sums"))
				SinkTo(sums, ExactlyOnceFileSink(location, func(w Windowed[int64, ev]) string {
					return fmt.Sprintf("%d,%d,%d,%d", w.Key, w.Window.Start, w.Window.End, w.Value.T)
				}), WithUID("out"))
				return job
			}
			want := uninterrupted(t, build, 2)
			if len(want) < 20 {
				t.Fatalf("the uninterrupted run fired %d windows", len(want))
			}
			dir := t.TempDir()
			got := killAndRestore(t, build, dir, 2, 3, func() ([]string, []string) { return dirLines(t, dir) })
			sameLines(t, got, want)
		})
	}
}

// The operator of a transactional sink: nothing is published before a
// checkpoint completes, what it pre-committed is committed on completion,
// an aborted checkpoint's transaction waits for the next completion, a
// restore commits the restored transactions again without harm, and a
// writer that fails publishes nothing.
func TestTwoPhaseCommitSink(t *testing.T) {
	log := &txnLog{committed: map[string]int{}}
	job := NewJob("2pc")
	src := FromSource(job, FromSlice([]int{1}), WithUID("src"))
	SinkTo(src, Sink[int](&txnTestSink{log: log}), WithUID("out"))
	plan, err := job.plan(1)
	if err != nil {
		t.Fatal(err)
	}
	sinkV := plan.Vertices[1]
	build := func(restored [][]byte) (*txnSinkOp[int], func(uint64) error, func() error) {
		tc := testTaskContext(sinkV)
		tc.Checkpointing = true
		if restored != nil {
			tc.Restored = restoredItems(restored)
		}
		op, err := sinkV.Build(tc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return op.Inputs[0].(*txnSinkOp[int]), op.CheckpointComplete, op.Close
	}
	s, complete, closeOp := build(nil)
	write := func(vs ...int) {
		for _, v := range vs {
			if err := s.Process(v, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	snap := func(id uint64) [][]byte {
		os, err := s.snapshot(ckpt(id))
		if err != nil {
			t.Fatal(err)
		}
		return os.Items
	}
	write(1, 2)
	items1 := snap(1)
	write(3)
	if len(log.published()) != 0 {
		t.Fatalf("published %v before any checkpoint completed", log.published())
	}
	if err := complete(1); err != nil {
		t.Fatal(err)
	}
	if got := log.published(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("after checkpoint 1 completed: %v, want [1 2]", got)
	}
	items2 := snap(2) // aborted: its transaction stays pending
	write(4)
	items3 := snap(3)
	if len(items1) != 1 || len(items2) != 1 || len(items3) != 2 {
		t.Fatalf("pending transactions in snapshots 1, 2, 3: %d, %d, %d; want 1, 1, 2", len(items1), len(items2), len(items3))
	}
	write(5) // never checkpointed
	if err := complete(3); err != nil {
		t.Fatal(err)
	}
	if got := log.published(); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("after checkpoint 3 completed: %v, want [1 2 3 4]", got)
	}
	// A failure: the open transaction is dropped.
	if err := closeOp(); err != nil {
		t.Fatal(err)
	}
	if log.aborted != 1 {
		t.Fatalf("%d transactions aborted, want 1", log.aborted)
	}
	// A restore from checkpoint 3 commits its transactions again: once
	// published, they stay published once.
	_, _, closeOp = build(items3)
	if got := log.published(); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("after a restore from checkpoint 3: %v, want [1 2 3 4]", got)
	}
	if log.commits["3"] < 2 {
		t.Fatalf("the restored transaction of checkpoint 3 was committed %d times, want it committed again", log.commits["3"])
	}
	_ = closeOp()

	// Without checkpointing the sink commits at the end of its input.
	log2 := &txnLog{committed: map[string]int{}}
	job = NewJob("2pc-end")
	SinkTo(FromSource(job, FromSlice([]int{7, 8, 9}), WithUID("src")), Sink[int](&txnTestSink{log: log2}), WithUID("out"))
	if err := RunLocal(context.Background(), job, LocalParallelism(1)); err != nil {
		t.Fatal(err)
	}
	if got := log2.published(); !slices.Equal(got, []string{"7", "8", "9"}) {
		t.Fatalf("without checkpointing: %v, want [7 8 9]", got)
	}
}

// The exactly-once file sink's transactions by hand: nothing is visible
// before the commit, a second commit is a no-op, an empty transaction is
// not published, and an abort leaves nothing behind.
func TestExactlyOnceFileSinkByHand(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			var location string
			var list func() []string
			switch kind {
			case "dir":
				dir := t.TempDir()
				location = dir
				list = func() []string {
					_, parts := dirLines(t, dir)
					return parts
				}
			case "s3":
				gw := s3test.Start(t)
				gw.UseEnv(t)
				location = gw.URL(t.Name())
				st, err := storage.Open(context.Background(), location)
				if err != nil {
					t.Fatal(err)
				}
				list = func() []string {
					_, parts := publishedLines(t, st)
					return parts
				}
			}
			ctx := context.Background()
			w, err := ExactlyOnceFileSink[string](location, nil).OpenTransactional(ctx, fakeSinkContext{subtask: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range []string{"a", "b"} {
				if err := w.Write(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			txn, err := w.PreCommit(ctx, 7)
			if err != nil || txn == nil {
				t.Fatalf("pre-commit: %v, %v", txn, err)
			}
			if empty, err := w.PreCommit(ctx, 8); err != nil || empty != nil {
				t.Fatalf("pre-commit of an empty transaction: %v, %v; want nothing", empty, err)
			}
			if parts := list(); len(parts) != 0 {
				t.Fatalf("visible before the commit: %q", parts)
			}
			for range 2 {
				if err := w.Commit(ctx, [][]byte{txn}); err != nil {
					t.Fatalf("commit: %v", err)
				}
				if parts := list(); !slices.Equal(parts, []string{"part-1-7-0"}) {
					t.Fatalf("published %q, want [part-1-7-0]", parts)
				}
			}
			if err := w.Write(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if err := w.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if parts := list(); !slices.Equal(parts, []string{"part-1-7-0"}) {
				t.Fatalf("after an abort: %q, want [part-1-7-0]", parts)
			}
			if kind == "dir" {
				if left, _ := os.ReadDir(filepath.Join(location, inProgressDir)); len(left) != 0 {
					t.Fatalf("in-progress files left after commit and abort: %v", left)
				}
			}
		})
	}
}

type fakeSinkContext struct{ subtask int }

func (f fakeSinkContext) Subtask() int     { return f.subtask }
func (f fakeSinkContext) Parallelism() int { return 2 }

// txnLog is what the test sink's transactions did.
type txnLog struct {
	committed map[string]int // record -> times it became visible
	commits   map[string]int // record -> times its transaction was committed
	aborted   int
}

func (l *txnLog) published() []string {
	var out []string
	for r, n := range l.committed {
		for range n {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// txnTestSink keeps its transactions in memory: a transaction is its
// records joined by commas, committing publishes the records of a
// transaction not published yet.
type txnTestSink struct{ log *txnLog }

func (s *txnTestSink) Open(ctx context.Context, sc SinkContext) (Writer[int], error) {
	return s.OpenTransactional(ctx, sc)
}

func (s *txnTestSink) OpenTransactional(context.Context, SinkContext) (TransactionalWriter[int], error) {
	return &txnTestWriter{log: s.log}, nil
}

type txnTestWriter struct {
	log  *txnLog
	open []string
}

func (w *txnTestWriter) Write(_ context.Context, v int) error {
	w.open = append(w.open, fmt.Sprint(v))
	return nil
}
func (w *txnTestWriter) Flush(context.Context) error { return nil }
func (w *txnTestWriter) Close(context.Context) error { return nil }

func (w *txnTestWriter) PreCommit(context.Context, uint64) ([]byte, error) {
	if len(w.open) == 0 {
		return nil, nil
	}
	b := []byte(strings.Join(w.open, ","))
	w.open = nil
	return b, nil
}

func (w *txnTestWriter) Commit(_ context.Context, txns [][]byte) error {
	if w.log.commits == nil {
		w.log.commits = map[string]int{}
	}
	for _, t := range txns {
		for _, r := range strings.Split(string(t), ",") {
			w.log.commits[r]++
			if w.log.committed[r] == 0 {
				w.log.committed[r] = 1
			}
		}
	}
	return nil
}

func (w *txnTestWriter) Abort(context.Context) error {
	if len(w.open) > 0 {
		w.log.aborted++
	}
	w.open = nil
	return nil
}

// A stop with a savepoint ends the job after the savepoint completed, with
// the sink's output of everything before it published; a job restored from
// the savepoint goes on as if it had not stopped. Without drain event time
// stays (windows fire after the restore, as in an uninterrupted run); with
// drain the final watermark fires everything first.
func TestStopWithSavepoint(t *testing.T) {
	var plain *Collected[string]
	build := func(location string, rate float64) *Job {
		job := NewJob("stop")
		src := FromSource(job, Generate(eoRecords, func(i int64) ev { return ev{Key: i % 5, T: i} }, RatePerSecond(rate)),
			WithUID("events"), WithWatermarks(MonotonousTimestamps(func(e ev) int64 { return e.T })))
		keyed := KeyBy(src, func(e ev) int64 { return e.Key })
		sums := WindowReduce(WindowBy(keyed, TumblingEventTimeWindows(250*time.Millisecond)),
			func(a, b ev) ev { return ev{Key: a.Key, T: a.T + b.T} }, WithUID("sums"))
		lines := Map(sums, func(w Windowed[int64, ev]) string {
			return fmt.Sprintf("w,%d,%d,%d", w.Key, w.Window.Start, w.Value.T)
		})
		ones := Map(src, func(e ev) keyCount { return keyCount{Key: e.Key, N: 1} })
		counts := Reduce(KeyBy(ones, func(c keyCount) int64 { return c.Key }),
			func(a, b keyCount) keyCount { return keyCount{Key: a.Key, N: a.N + b.N} }, WithUID("count"))
		countLines := Map(counts, func(c keyCount) string { return fmt.Sprintf("c,%d,%d", c.Key, c.N) })
		SinkTo(Union(lines, countLines), ExactlyOnceFileSink[string](location, nil), WithUID("out"))
		if plain != nil {
			// A plain sink sees also what follows the savepoint's barrier.
			SinkTo(lines, plain)
		}
		return job
	}
	only := func(lines []string, prefix string) []string {
		return slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return !strings.HasPrefix(l, prefix) })
	}
	want := uninterrupted(t, build, 1)
	for _, drain := range []bool{false, true} {
		t.Run(fmt.Sprintf("drain=%v", drain), func(t *testing.T) {
			dir := t.TempDir()
			cps := newMemCheckpoints(t)
			// One source subtask: the records read before the stop are a
			// prefix of the sequence.
			plain = Collect[string]()
			a := cps.start(build(dir, 20000), 1, 1, false, 15*time.Millisecond)
			seen := plain
			plain = nil
			cps.waitCompleted(a, 2)
			cps.savepoint(a, engine.CheckpointOptions{Savepoint: true, Stop: true, Drain: drain})
			if err := a.wait(t); err != nil {
				t.Fatalf("stopped attempt: %v", err)
			}
			first, _ := dirLines(t, dir)
			m := int64(len(only(first, "c,")))
			if m == 0 || m >= eoRecords {
				t.Fatalf("%d records before the stop: want part of the input", m)
			}
			// The window of the last record before the stop fires at the
			// stop only with drain.
			last := m - 1
			lastWindow := fmt.Sprintf("w,%d,%d,", last%5, last/250*250)
			fired := len(only(first, lastWindow)) > 0
			firedAtAll := len(only(seen.Records(), lastWindow)) > 0
			if last%250 != 249 && (fired != drain || firedAtAll != drain) {
				t.Fatalf("the window of the last record (%d) fired at the stop: %v (published: %v), want %v", last, firedAtAll, fired, drain)
			}
			b := cps.start(build(dir, 0), 2, 2, true, 20*time.Millisecond)
			if err := b.wait(t); err != nil {
				t.Fatalf("restored attempt: %v", err)
			}
			got, _ := dirLines(t, dir)
			if drain {
				// The drained windows fired early; the counts go on exactly.
				sameLines(t, only(got, "c,"), only(want, "c,"))
				return
			}
			sameLines(t, got, want)
		})
	}
}

// EnableCheckpointing's defaults are Flink's; checkpointing is off unless
// enabled; bad settings are refused when the job is built.
func TestCheckpointConfig(t *testing.T) {
	graph := func(j *Job) *pluginpb.JobGraph {
		t.Helper()
		SinkTo(FromSource(j, Sequence(1, 2), WithUID("src")), Collect[int64]())
		p, err := j.plan(1)
		if err != nil {
			t.Fatal(err)
		}
		return j.graph(p)
	}
	if g := graph(NewJob("off")); g.Checkpointing != nil || g.Restart != nil {
		t.Fatalf("checkpointing %v, restart %v; want both unset by default", g.Checkpointing, g.Restart)
	}
	g := graph(NewJob("on").EnableCheckpointing(time.Second).SetRestartStrategy(ExponentialBackoff(time.Second, time.Minute, 1.5, 0)))
	want := &pluginpb.CheckpointConfig{IntervalMs: 1000, TimeoutMs: 600000, MinPauseMs: 0, TolerableFailures: 0, Retain: 1}
	if !proto.Equal(g.Checkpointing, want) {
		t.Fatalf("checkpointing %v, want %v", g.Checkpointing, want)
	}
	wantR := &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF, DelayMs: 1000, MaxDelayMs: 60000, Multiplier: 1.5}
	if !proto.Equal(g.Restart, wantR) {
		t.Fatalf("restart %v, want %v", g.Restart, wantR)
	}
	g = graph(NewJob("all").EnableCheckpointing(time.Second, CheckpointTimeout(time.Minute), MinPauseBetweenCheckpoints(500*time.Millisecond),
		TolerableCheckpointFailures(2), RetainCheckpoints(4)).SetRestartStrategy(NoRestart()))
	want = &pluginpb.CheckpointConfig{IntervalMs: 1000, TimeoutMs: 60000, MinPauseMs: 500, TolerableFailures: 2, Retain: 4}
	if !proto.Equal(g.Checkpointing, want) || g.Restart.GetKind() != pluginpb.RestartStrategy_KIND_NONE {
		t.Fatalf("checkpointing %v, restart %v", g.Checkpointing, g.Restart)
	}
	for _, tc := range []struct {
		job  *Job
		want string
	}{
		{NewJob("x").EnableCheckpointing(0), "checkpoint interval 0s"},
		{NewJob("x").EnableCheckpointing(time.Second, CheckpointTimeout(0)), "checkpoint timeout"},
		{NewJob("x").EnableCheckpointing(time.Second, RetainCheckpoints(0)), "checkpoints retained"},
		{NewJob("x").SetRestartStrategy(RestartStrategy{}), "use FixedDelay, ExponentialBackoff or NoRestart"},
		{NewJob("x").SetRestartStrategy(ExponentialBackoff(time.Minute, time.Second, 2, 3)), "maximum delay"},
		{NewJob("x").SetRestartStrategy(ExponentialBackoff(time.Second, time.Minute, 0.5, 3)), "multiplier 0.5"},
	} {
		SinkTo(FromSource(tc.job, Sequence(1, 2), WithUID("src")), Collect[int64]())
		if _, err := tc.job.plan(1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want an error with %q", err, tc.want)
		}
	}
}
