package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// The tests below run small jobs of int64 records: sources that remember
// the sum of what they emitted, and summing operators, both of which
// snapshot their sum.

var int64Codec = func() codec.Codec[int64] {
	c, err := codec.For[int64]()
	if err != nil {
		panic(err)
	}
	return c
}()

func encInt(v int64) []byte { return binary.AppendVarint(nil, v) }

func decInt(b []byte) int64 {
	v, _ := binary.Varint(b)
	return v
}

// recorder collects what the executor and the operators report.
type recorder struct {
	mu        sync.Mutex
	snaps     map[uint64][]*TaskSnapshot
	declined  []string
	completes map[string][]uint64 // "vertex/subtask" -> ids
	aborts    map[string][]uint64
	wms       map[string][]int64
	ends      map[string]int
	sums      map[string]int64 // a summing operator's sum at its end
}

func newRecorder() *recorder {
	return &recorder{snaps: map[uint64][]*TaskSnapshot{}, completes: map[string][]uint64{},
		aborts: map[string][]uint64{}, wms: map[string][]int64{}, ends: map[string]int{}, sums: map[string]int64{}}
}

func (r *recorder) onSnapshot(s *TaskSnapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps[s.Checkpoint.ID] = append(r.snaps[s.Checkpoint.ID], s)
}

func (r *recorder) onDecline(k TaskKey, id uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.declined = append(r.declined, fmt.Sprintf("%s declined %d: %v", k, id, err))
}

func (r *recorder) acks(id uint64) []*TaskSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.snaps[id])
}

func (r *recorder) note(m map[string][]uint64, who string, id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m[who] = append(m[who], id)
}

// has reports whether the task of chain 0 (the sources) and subtask
// reported checkpoint id.
func (r *recorder) has(id uint64, subtask int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.snaps[id] {
		if s.Task.Chain == 0 && s.Task.Subtask == subtask {
			return true
		}
	}
	return false
}

func (r *recorder) notes(m map[string][]uint64, who string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(m[who])
}

func (r *recorder) endsOf(who string) (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ends[who], r.sums[who]
}

func (r *recorder) watermarks(who string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.wms[who])
}

// waitAcks waits until n tasks reported checkpoint id.
func (r *recorder) waitAcks(t *testing.T, id uint64, n int) []*TaskSnapshot {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := r.acks(id); len(s) >= n {
			if len(s) > n {
				t.Fatalf("checkpoint %d: %d acknowledgements, want %d", id, len(s), n)
			}
			return s
		}
		time.Sleep(time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var who []string
	for _, s := range r.snaps[id] {
		who = append(who, s.Task.String())
	}
	t.Fatalf("checkpoint %d: %d of %d tasks acknowledged (%v; declined: %v)", id, len(r.snaps[id]), n, who, r.declined)
	return nil
}

// sourceFunc drives a test source: emit sends a record and adds it to the
// sum the source snapshots.
type sourceFunc func(ctx context.Context, tc *TaskContext, emit func(v int64) error, out Output[int64]) error

func testSource(id, par int, rec *recorder, run sourceFunc) *Vertex {
	v := &Vertex{ID: id, UID: "src", Name: "src", Kind: "source", Parallelism: par, Stateful: true, Out: TypeOf(int64Codec)}
	v.Build = func(tc *TaskContext, o any) (*Operator, error) {
		out := o.(Output[int64])
		var sum int64
		if tc.Restored != nil && len(tc.Restored.Items) > 0 {
			sum = decInt(tc.Restored.Items[0])
		}
		who := fmt.Sprintf("src/%d", tc.Subtask)
		return &Operator{
			Run: func(ctx context.Context, idle func()) error {
				return run(ctx, tc, func(x int64) error {
					sum += x
					return out.Process(x, x)
				}, out)
			},
			Snapshot: func(cp CheckpointOptions) (*OperatorSnapshot, error) {
				return &OperatorSnapshot{Items: [][]byte{encInt(sum)}}, nil
			},
			CheckpointComplete: func(id uint64) error { rec.note(rec.completes, who, id); return nil },
			CheckpointAborted:  func(id uint64) error { rec.note(rec.aborts, who, id); return nil },
		}, nil
	}
	return v
}

// sumOp sums its input; its snapshot is the sum and whether it has seen
// the final watermark.
type sumOp struct {
	rec     *recorder
	who     string
	sum     int64
	sawMax  bool
	onValue func(v int64)
}

func (s *sumOp) Process(v int64, ts int64) error {
	s.sum += v
	if s.onValue != nil {
		s.onValue(v)
	}
	return nil
}

func (s *sumOp) Watermark(ts int64) error {
	s.sawMax = s.sawMax || ts == MaxWatermark
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.wms[s.who] = append(s.rec.wms[s.who], ts)
	return nil
}

func (s *sumOp) End() error {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.ends[s.who]++
	s.rec.sums[s.who] = s.sum
	return nil
}

func testSum(id, par int, from *Vertex, part Partitioning, rec *recorder) *Vertex {
	v := &Vertex{ID: id, UID: "sum", Name: "sum", Kind: "sink", Parallelism: par, Stateful: true,
		Inputs: []Edge{{From: from, Partitioning: part, KeyGroup: func(maxP int) any {
			return func(v int64) int { return int(uint64(v) % uint64(maxP)) }
		}}}}
	v.Build = func(tc *TaskContext, _ any) (*Operator, error) {
		op := &sumOp{rec: rec, who: fmt.Sprintf("sum/%d", tc.Subtask)}
		if tc.Restored != nil && len(tc.Restored.Items) > 0 {
			op.sum = decInt(tc.Restored.Items[0])
		}
		return &Operator{
			Inputs: []any{Output[int64](op)},
			Snapshot: func(cp CheckpointOptions) (*OperatorSnapshot, error) {
				saw := int64(0)
				if op.sawMax {
					saw = 1
				}
				return &OperatorSnapshot{Items: [][]byte{encInt(op.sum), encInt(saw)}}, nil
			},
			CheckpointComplete: func(id uint64) error { rec.note(rec.completes, op.who, id); return nil },
			CheckpointAborted:  func(id uint64) error { rec.note(rec.aborts, op.who, id); return nil },
		}, nil
	}
	return v
}

func allTasks(p *Plan) []TaskKey {
	var ks []TaskKey
	for _, c := range p.Chains {
		for s := range c.Parallelism {
			ks = append(ks, TaskKey{JobID: "j", Attempt: 1, Chain: c.ID, Subtask: s})
		}
	}
	return ks
}

// sumOf adds the first item of vertex v's snapshots.
func sumOf(snaps []*TaskSnapshot, v *Vertex) int64 {
	var total int64
	for _, s := range snaps {
		if os := s.Operators[v]; os != nil && len(os.Items) > 0 {
			total += decInt(os.Items[0])
		}
	}
	return total
}

type testRun struct {
	x    *Executor
	rec  *recorder
	done chan error
}

func startJob(t *testing.T, ctx context.Context, rec *recorder, vs []*Vertex, checkpointing bool, setup func(x *Executor)) *testRun {
	t.Helper()
	p, err := NewPlan("test", vs, 1, 128)
	if err != nil {
		t.Fatal(err)
	}
	x := &Executor{Plan: p, JobID: "j", Attempt: 1, Exchange: NewLocalExchange(), Checkpointing: checkpointing,
		OnSnapshot: rec.onSnapshot, OnDecline: rec.onDecline}
	if setup != nil {
		setup(x)
	}
	r := &testRun{x: x, rec: rec, done: make(chan error, 1)}
	go func() { r.done <- x.Run(ctx, allTasks(p)) }()
	return r
}

// wait returns the result of Run, failing the test if it does not come.
func (r *testRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not end")
		return nil
	}
}

// notEnded fails the test if Run returns within d.
func (r *testRun) notEnded(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-r.done:
		t.Fatalf("the job ended early: %v", err)
	case <-time.After(d):
	}
}

func (r *testRun) noDeclines(t *testing.T) {
	t.Helper()
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	if len(r.rec.declined) > 0 {
		t.Errorf("declined: %v", r.rec.declined)
	}
}

// pollUntil polls for checkpoints until taken reports one was taken.
func pollUntil(ctx context.Context, tc *TaskContext, taken func() bool) (stop bool, err error) {
	for !taken() {
		stop, err := tc.PollCheckpoint()
		if err != nil || stop {
			return stop, err
		}
		if taken() {
			break
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tc.CheckpointWake():
		case <-time.After(time.Millisecond):
		}
	}
	return false, nil
}

func endSource(out Output[int64]) error {
	if err := out.Watermark(MaxWatermark); err != nil {
		return err
	}
	return out.End()
}

var hash = pluginpb.Partitioning_PARTITIONING_HASH

// A source of 0..n-1 at parallelism 2 feeds summing operators at
// parallelism 3 over a hash edge while checkpoints are taken one after
// the other: in every checkpoint the sums add up to what the sources say
// they emitted, and the last ones (taken after the input ended) hold it
// all. The job ends only once a checkpoint after its end completed.
func TestCheckpointsAreConsistent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 200_000
	rec := newRecorder()
	src := testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
		for i := int64(tc.Subtask); i < n; i += 2 {
			if err := emit(i); err != nil {
				return err
			}
			if i%64 < 2 {
				if _, err := tc.PollCheckpoint(); err != nil {
					return err
				}
			}
			if i%1024 < 2 {
				time.Sleep(20 * time.Microsecond)
			}
		}
		return endSource(out)
	})
	sum := testSum(1, 3, src, hash, rec)
	// The test is the coordinator: a checkpoint completes when every task
	// acknowledged it, but for the tasks that finished before (their
	// final checkpoint completed): their last snapshot stands, as Flink
	// keeps the state of finished tasks.
	var mu sync.Mutex
	finished := map[TaskKey]bool{}
	r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, func(x *Executor) {
		x.OnState = func(k TaskKey, s TaskState, err error) {
			mu.Lock()
			defer mu.Unlock()
			if s == TaskFinished {
				finished[k] = true
			}
		}
	})
	latest := map[TaskKey]*TaskSnapshot{}
	var err error
	var last uint64
	running := 0 // checkpoints taken while a source was running
	ended := false
	for id := uint64(1); !ended; id++ {
		if id > 10_000 {
			t.Fatal("the job does not end")
		}
		select {
		case err = <-r.done:
			ended = true
			continue
		default:
		}
		r.x.TriggerCheckpoint(CheckpointOptions{ID: id, TimestampMs: time.Now().UnixMilli()})
		var snaps []*TaskSnapshot
		for deadline := time.Now().Add(10 * time.Second); ; {
			snaps = rec.acks(id)
			mu.Lock()
			acked := map[TaskKey]bool{}
			for _, s := range snaps {
				acked[s.Task] = true
			}
			for k, s := range latest {
				if !acked[k] && finished[k] {
					snaps = append(snaps, s)
				}
			}
			mu.Unlock()
			if len(snaps) == 5 {
				break
			}
			select {
			case err = <-r.done:
				ended = true
			case <-time.After(time.Millisecond):
			}
			if ended {
				break
			}
			if time.Now().After(deadline) {
				rec.waitAcks(t, id, 5) // fails
			}
		}
		if ended {
			break
		}
		emitted, summed := sumOf(snaps, src), sumOf(snaps, sum)
		if emitted != summed {
			t.Fatalf("checkpoint %d: the sources emitted %d, the sums hold %d", id, emitted, summed)
		}
		if emitted < n*(n-1)/2 {
			running++
		}
		for _, s := range snaps {
			if s.Task.JobID != "j" || s.SyncNanos < 0 {
				t.Fatalf("bad snapshot %+v", s)
			}
			latest[s.Task] = s
		}
		r.x.NotifyCheckpointComplete(id)
		last = id
		time.Sleep(2 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.noDeclines(t)
	if running < 2 {
		t.Errorf("only %d of %d checkpoints were taken while the sources ran", running, last)
	}
	var final []*TaskSnapshot
	for _, s := range latest {
		final = append(final, s)
	}
	if got := sumOf(final, sum); got != n*(n-1)/2 {
		t.Errorf("final checkpoint %d holds %d, want %d", last, got, n*(n-1)/2)
	}
	t.Logf("%d checkpoints, %d while the sources ran", last, running)
}

// twoSources returns a source of parallelism 2 whose subtasks run their own
// function, and a summing operator of parallelism 1 reading both.
func twoSources(rec *recorder, sub0, sub1 sourceFunc) (src, sum *Vertex) {
	src = testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
		if tc.Subtask == 0 {
			return sub0(ctx, tc, emit, out)
		}
		return sub1(ctx, tc, emit, out)
	})
	return src, testSum(1, 1, src, hash, rec)
}

func emitAll(emit func(int64) error, vs ...int64) error {
	for _, v := range vs {
		if err := emit(v); err != nil {
			return err
		}
	}
	return nil
}

func waitFor(ctx context.Context, c <-chan struct{}) error {
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A channel that delivered the barrier is held back until the other one
// delivered it: what the fast channel sends after its barrier is not in
// the snapshot, though it reached the task long before the slow barrier.
func TestAlignmentHoldsAFastChannel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	fastDone, release := make(chan struct{}), make(chan struct{})
	src, sum := twoSources(rec,
		func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
			if err := emitAll(emit, 1, 2); err != nil {
				return err
			}
			if _, err := pollUntil(ctx, tc, func() bool { return rec.has(1, 0) }); err != nil {
				return err
			}
			if err := emit(100); err != nil {
				return err
			}
			if err := tc.Idle(); err != nil { // send the batch now
				return err
			}
			close(fastDone)
			if err := waitFor(ctx, release); err != nil {
				return err
			}
			return endSource(out)
		},
		func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
			if err := emit(10); err != nil {
				return err
			}
			if err := waitFor(ctx, fastDone); err != nil {
				return err
			}
			time.Sleep(30 * time.Millisecond)
			if _, err := pollUntil(ctx, tc, func() bool { return rec.has(1, 1) }); err != nil {
				return err
			}
			if err := emit(1000); err != nil {
				return err
			}
			return endSource(out)
		})
	r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, nil)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
	snaps := rec.waitAcks(t, 1, 3)
	if got := sumOf(snaps, sum); got != 13 {
		t.Errorf("the snapshot of the sum holds %d, want 13 (1+2+10)", got)
	}
	if got := sumOf(snaps, src); got != 13 {
		t.Errorf("the sources' snapshots say %d, want 13", got)
	}
	close(release)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if n, got := rec.endsOf("sum/0"); n != 1 || got != 1113 {
		t.Errorf("the sum ended %d times with %d, want once with 1113", n, got)
	}
	r.noDeclines(t)
}

// A channel that ended counts as aligned: when the only channel that had
// not delivered the barrier ends, the alignment completes.
func TestAlignmentCompletesWhenAChannelEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	fastDone, release := make(chan struct{}), make(chan struct{})
	src, sum := twoSources(rec,
		func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
			// Ends without taking part in the checkpoint.
			if err := emit(1); err != nil {
				return err
			}
			if err := waitFor(ctx, fastDone); err != nil {
				return err
			}
			time.Sleep(30 * time.Millisecond)
			return endSource(out)
		},
		func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
			if err := emit(10); err != nil {
				return err
			}
			if _, err := pollUntil(ctx, tc, func() bool { return rec.has(1, 1) }); err != nil {
				return err
			}
			if err := emit(100); err != nil {
				return err
			}
			if err := tc.Idle(); err != nil {
				return err
			}
			close(fastDone)
			if err := waitFor(ctx, release); err != nil {
				return err
			}
			return endSource(out)
		})
	r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, nil)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
	snaps := rec.waitAcks(t, 1, 2)
	if got := sumOf(snaps, sum); got != 11 {
		t.Errorf("the snapshot of the sum holds %d, want 11 (1+10)", got)
	}
	close(release)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if n, got := rec.endsOf("sum/0"); n != 1 || got != 111 {
		t.Errorf("the sum ended %d times with %d, want once with 111", n, got)
	}
	r.noDeclines(t)
}

// boundedJob is a source of 0..n-1 at parallelism 2 that ends at once,
// or when release is closed, without polling, and summing operators at
// parallelism 3.
func boundedJob(rec *recorder, n int64, release <-chan struct{}) (src, sum *Vertex) {
	src = testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
		for i := int64(tc.Subtask); i < n; i += 2 {
			if err := emit(i); err != nil {
				return err
			}
		}
		if release != nil {
			if err := waitFor(ctx, release); err != nil {
				return err
			}
		}
		return endSource(out)
	})
	return src, testSum(1, 3, src, hash, rec)
}

var allOps = []string{"src/0", "src/1", "sum/0", "sum/1", "sum/2"}

// With checkpointing, tasks whose input ended wait for a checkpoint
// triggered after their end, acknowledge it with their final state, and
// finish when it completes (not when one aborts); without, they finish at
// once.
func TestFinalCheckpoint(t *testing.T) {
	const n = 1000
	t.Run("without checkpointing", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := newRecorder()
		src, sum := boundedJob(rec, n, nil)
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, nil)
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("triggered after the end", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := newRecorder()
		src, sum := boundedJob(rec, n, nil)
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, nil)
		r.notEnded(t, 100*time.Millisecond)
		r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
		snaps := rec.waitAcks(t, 1, 5)
		if got := sumOf(snaps, sum); got != n*(n-1)/2 {
			t.Errorf("final snapshot holds %d, want %d", got, n*(n-1)/2)
		}
		r.x.NotifyCheckpointAborted(1)
		r.notEnded(t, 50*time.Millisecond)
		r.x.TriggerCheckpoint(CheckpointOptions{ID: 2})
		snaps = rec.waitAcks(t, 2, 5)
		if got := sumOf(snaps, sum); got != n*(n-1)/2 {
			t.Errorf("final snapshot holds %d, want %d", got, n*(n-1)/2)
		}
		r.notEnded(t, 50*time.Millisecond)
		r.x.NotifyCheckpointComplete(2)
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		for _, who := range allOps {
			if got := rec.notes(rec.completes, who); !slices.Equal(got, []uint64{2}) {
				t.Errorf("%s: completions %v, want [2]", who, got)
			}
			if got := rec.notes(rec.aborts, who); !slices.Equal(got, []uint64{1}) {
				t.Errorf("%s: aborts %v, want [1]", who, got)
			}
		}
		r.noDeclines(t)
	})
	t.Run("triggered before the end", func(t *testing.T) {
		// The sources never poll: the trigger is still pending when they
		// end, and every task acknowledges it with its final state.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := newRecorder()
		release := make(chan struct{})
		src, sum := boundedJob(rec, n, release)
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, nil)
		time.Sleep(20 * time.Millisecond)
		r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
		time.Sleep(20 * time.Millisecond)
		close(release)
		snaps := rec.waitAcks(t, 1, 5)
		if got := sumOf(snaps, sum); got != n*(n-1)/2 {
			t.Errorf("final snapshot holds %d, want %d", got, n*(n-1)/2)
		}
		r.notEnded(t, 50*time.Millisecond)
		r.x.NotifyCheckpointComplete(1)
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		r.noDeclines(t)
	})
	t.Run("cancel ends the wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := newRecorder()
		src, sum := boundedJob(rec, n, nil)
		var mu sync.Mutex
		states := map[TaskKey]TaskState{}
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, func(x *Executor) {
			x.OnState = func(k TaskKey, s TaskState, err error) {
				mu.Lock()
				defer mu.Unlock()
				states[k] = s
			}
		})
		r.notEnded(t, 50*time.Millisecond)
		cancel()
		if err := r.wait(t); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want canceled", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for k, s := range states {
			if s != TaskCanceled {
				t.Errorf("%s: %s, want CANCELED", k, s)
			}
		}
	})
}

// Completions and aborts reach every operator of running tasks, sources
// included, in growing order.
func TestNotificationsReachOperators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	release := make(chan struct{})
	src := testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
		for i := int64(0); ; i++ {
			if err := emit(i); err != nil {
				return err
			}
			if _, err := tc.PollCheckpoint(); err != nil {
				return err
			}
			select {
			case <-release:
				return endSource(out)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Microsecond):
			}
		}
	})
	sum := testSum(1, 3, src, hash, rec)
	r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, nil)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
	rec.waitAcks(t, 1, 5)
	r.x.NotifyCheckpointAborted(1)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 2})
	snaps := rec.waitAcks(t, 2, 5)
	if a, b := sumOf(snaps, src), sumOf(snaps, sum); a != b {
		t.Errorf("checkpoint 2: sources emitted %d, sums hold %d", a, b)
	}
	r.x.NotifyCheckpointComplete(2)
	r.x.NotifyCheckpointComplete(1) // older: dropped
	deadline := time.Now().Add(10 * time.Second)
	for _, who := range allOps {
		for len(rec.notes(rec.completes, who)) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	for _, who := range allOps {
		if got := rec.notes(rec.completes, who); !slices.Equal(got, []uint64{2}) {
			t.Errorf("%s: completions %v, want [2]", who, got)
		}
		if got := rec.notes(rec.aborts, who); !slices.Equal(got, []uint64{1}) {
			t.Errorf("%s: aborts %v, want [1]", who, got)
		}
	}
	r.noDeclines(t)
}

// The restore hook gives each operator subtask its state before it is
// built; a failing restore fails the task, naming the operator.
func TestRestore(t *testing.T) {
	const n = 1000
	t.Run("restored", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := newRecorder()
		src, sum := boundedJob(rec, n, nil)
		var mu sync.Mutex
		var calls []string
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, func(x *Executor) {
			x.AllowNonRestored = true
			x.Restore = func(v *Vertex, subtask, parallelism int, groups keygroup.Range) (*OperatorSnapshot, error) {
				mu.Lock()
				calls = append(calls, fmt.Sprintf("%s/%d", v.UID, subtask))
				mu.Unlock()
				if parallelism != v.Parallelism || groups != keygroup.For(subtask, 128, parallelism) {
					return nil, fmt.Errorf("%s/%d: parallelism %d, groups %v", v.Name, subtask, parallelism, groups)
				}
				if v.UID == "sum" {
					return &OperatorSnapshot{Items: [][]byte{encInt(int64(1000 * (subtask + 1)))}}, nil
				}
				return nil, nil
			}
		})
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		var total int64
		for s := range 3 {
			_, got := rec.endsOf(fmt.Sprintf("sum/%d", s))
			total += got
		}
		if want := int64(n*(n-1)/2 + 6000); total != want {
			t.Errorf("the sums end with %d, want %d", total, want)
		}
		slices.Sort(calls)
		if want := []string{"src/0", "src/1", "sum/0", "sum/1", "sum/2"}; !slices.Equal(calls, want) {
			t.Errorf("restore calls %v, want %v", calls, want)
		}
	})
	t.Run("flags", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := newRecorder()
		src, sum := boundedJob(rec, n, nil)
		build := sum.Build
		var bad error
		var mu sync.Mutex
		sum.Build = func(tc *TaskContext, out any) (*Operator, error) {
			mu.Lock()
			defer mu.Unlock()
			if tc.Restored == nil || !tc.AllowNonRestored || !tc.Checkpointing {
				bad = fmt.Errorf("subtask %d: restored %v, allow %v, checkpointing %v", tc.Subtask, tc.Restored, tc.AllowNonRestored, tc.Checkpointing)
			}
			return build(tc, out)
		}
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, func(x *Executor) {
			x.AllowNonRestored = true
			x.Restore = func(v *Vertex, subtask, parallelism int, groups keygroup.Range) (*OperatorSnapshot, error) {
				return &OperatorSnapshot{}, nil
			}
		})
		r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
		rec.waitAcks(t, 1, 5)
		r.x.NotifyCheckpointComplete(1)
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if bad != nil {
			t.Error(bad)
		}
	})
	t.Run("failed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := newRecorder()
		src, sum := boundedJob(rec, n, nil)
		bad := errors.New("checksum mismatch")
		r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, func(x *Executor) {
			x.Restore = func(v *Vertex, subtask, parallelism int, groups keygroup.Range) (*OperatorSnapshot, error) {
				if v.UID == "sum" && subtask == 1 {
					return nil, bad
				}
				return nil, nil
			}
		})
		err := r.wait(t)
		var re *RestoreError
		if !errors.Is(err, bad) || !errors.As(err, &re) || re.Operator != "sum" || !strings.Contains(err.Error(), "restore sum") {
			t.Fatalf("Run: %v, want a restore error of sum", err)
		}
	})
}

// A stop with a savepoint ends the sources after their barrier. Without
// drain event time stays: no final watermark reaches the operators, and
// the sources hold until the savepoint completes (an abort lets them read
// on: TestStopWithoutDrainAborted). With drain the final watermark comes
// before the savepoint, and the sources end at once, whatever its outcome.
// Either way the savepoint is the tasks' final checkpoint: they finish
// when it completes.
func TestStopWithSavepoint(t *testing.T) {
	for _, c := range []struct{ drain, abort bool }{{false, false}, {true, false}, {true, true}} {
		drain := c.drain
		t.Run(fmt.Sprintf("drain=%v,abort=%v", c.drain, c.abort), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rec := newRecorder()
			src := testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
				for i := int64(1); ; i++ {
					if err := emit(i); err != nil {
						return err
					}
					if err := out.Watermark(i); err != nil {
						return err
					}
					stop, err := tc.PollCheckpoint()
					if err != nil {
						return err
					}
					if stop {
						if tc.StopDrain() {
							if err := out.Watermark(MaxWatermark); err != nil {
								return err
							}
						}
						return out.End()
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(100 * time.Microsecond):
					}
				}
			})
			sum := testSum(1, 1, src, hash, rec)
			r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, nil)
			time.Sleep(20 * time.Millisecond)
			r.x.TriggerCheckpoint(CheckpointOptions{ID: 1, Savepoint: true, Stop: true, Drain: drain})
			snaps := rec.waitAcks(t, 1, 3)
			if a, b := sumOf(snaps, src), sumOf(snaps, sum); a != b || a == 0 {
				t.Errorf("savepoint: sources emitted %d, the sum holds %d", a, b)
			}
			for _, s := range snaps {
				if !s.Checkpoint.Stop || s.Checkpoint.Drain != drain || !s.Checkpoint.Savepoint {
					t.Errorf("%s: options %+v", s.Task, s.Checkpoint)
				}
				if os := s.Operators[sum]; os != nil {
					if saw := decInt(os.Items[1]) == 1; saw != drain {
						t.Errorf("the sum's snapshot saw the final watermark: %v, want %v", saw, drain)
					}
				}
			}
			sumEnded := func() {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for n, _ := rec.endsOf("sum/0"); n == 0 && time.Now().Before(deadline); n, _ = rec.endsOf("sum/0") {
					time.Sleep(time.Millisecond)
				}
				if n, _ := rec.endsOf("sum/0"); n != 1 {
					t.Fatalf("the sum ended %d times, want once", n)
				}
			}
			if drain {
				// The drained sources ended before the savepoint.
				sumEnded()
			}
			r.notEnded(t, 50*time.Millisecond)
			if !drain {
				// The sources hold until the savepoint's outcome is known.
				if n, _ := rec.endsOf("sum/0"); n != 0 {
					t.Fatalf("the sum ended %d times before the savepoint completed", n)
				}
			}
			// Without checkpointing, a drained stop that fails lets the
			// ended tasks finish: nothing else will come.
			if c.abort {
				r.x.NotifyCheckpointAborted(1)
			} else {
				r.x.NotifyCheckpointComplete(1)
			}
			if err := r.wait(t); err != nil {
				t.Fatal(err)
			}
			sumEnded()
			wms := rec.watermarks("sum/0")
			if got := slices.Contains(wms, MaxWatermark); got != drain {
				t.Errorf("final watermark reached the sum: %v, want %v (watermarks %v)", got, drain, wms)
			}
			r.noDeclines(t)
		})
	}
}

// countRecords makes the summing vertex count the records it processes.
func countRecords(sum *Vertex, n *atomic.Int64) {
	build := sum.Build
	sum.Build = func(tc *TaskContext, out any) (*Operator, error) {
		op, err := build(tc, out)
		if err != nil {
			return nil, err
		}
		op.Inputs[0].(*sumOp).onValue = func(int64) { n.Add(1) }
		return op, nil
	}
}

// A stop without drain whose savepoint is aborted takes nothing back: the
// sources, which held after its barrier, read on as if nothing had
// happened, every record is processed exactly once, and the job finishes
// normally at the end of its bounded input (with the final watermark; with
// checkpointing, after a checkpoint taken after its end).
func TestStopWithoutDrainAborted(t *testing.T) {
	const n = 4000
	for _, checkpointing := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpointing=%v", checkpointing), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rec := newRecorder()
			var resumed [2]atomic.Bool
			src := testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
				for i := int64(tc.Subtask); i < n; i += 2 {
					if err := emit(i); err != nil {
						return err
					}
					if i >= n/2 && !resumed[tc.Subtask].Load() {
						// Half way the source waits for the stop.
						stop, err := pollUntil(ctx, tc, func() bool { return rec.has(1, tc.Subtask) })
						if err != nil {
							return err
						}
						if stop {
							return errors.New("stopped though the savepoint was aborted")
						}
						resumed[tc.Subtask].Store(true)
						continue
					}
					stop, err := tc.PollCheckpoint()
					if err != nil {
						return err
					}
					if stop {
						return errors.New("stopped though the savepoint was aborted")
					}
				}
				return endSource(out)
			})
			sum := testSum(1, 3, src, hash, rec)
			var count atomic.Int64
			countRecords(sum, &count)
			r := startJob(t, ctx, rec, []*Vertex{src, sum}, checkpointing, nil)
			r.x.TriggerCheckpoint(CheckpointOptions{ID: 1, Savepoint: true, Stop: true})
			snaps := rec.waitAcks(t, 1, 5)
			if a, b := sumOf(snaps, src), sumOf(snaps, sum); a != b || a == 0 || a >= n*(n-1)/2 {
				t.Errorf("savepoint: sources emitted %d, the sums hold %d", a, b)
			}
			// The sources hold: they emit nothing until the outcome.
			held := count.Load()
			r.notEnded(t, 50*time.Millisecond)
			for s := range resumed {
				if resumed[s].Load() {
					t.Fatalf("source %d went on before the savepoint's outcome", s)
				}
			}
			if got := count.Load(); got != held {
				t.Fatalf("the sums processed %d records while the sources held, then %d", held, got)
			}
			for s := range 3 {
				if k, _ := rec.endsOf(fmt.Sprintf("sum/%d", s)); k != 0 {
					t.Fatalf("sum/%d ended before the savepoint's outcome", s)
				}
			}
			r.x.NotifyCheckpointAborted(1)
			if checkpointing {
				// The job's final checkpoint is one taken after its end.
				deadline := time.Now().Add(10 * time.Second)
				for s := 0; s < 3 && time.Now().Before(deadline); {
					if k, _ := rec.endsOf(fmt.Sprintf("sum/%d", s)); k == 0 {
						time.Sleep(time.Millisecond)
						continue
					}
					s++
				}
				r.notEnded(t, 20*time.Millisecond)
				r.x.TriggerCheckpoint(CheckpointOptions{ID: 2})
				snaps := rec.waitAcks(t, 2, 5)
				if a, b := sumOf(snaps, src), sumOf(snaps, sum); a != n*(n-1)/2 || b != a {
					t.Errorf("final checkpoint: sources emitted %d, the sums hold %d, want %d", a, b, n*(n-1)/2)
				}
				r.x.NotifyCheckpointComplete(2)
			}
			if err := r.wait(t); err != nil {
				t.Fatal(err)
			}
			var total int64
			for s := range 3 {
				who := fmt.Sprintf("sum/%d", s)
				k, got := rec.endsOf(who)
				if k != 1 {
					t.Errorf("%s ended %d times, want once", who, k)
				}
				total += got
				if wms := rec.watermarks(who); !slices.Contains(wms, MaxWatermark) {
					t.Errorf("%s: no final watermark (watermarks %v)", who, wms)
				}
			}
			if total != n*(n-1)/2 || count.Load() != n {
				t.Errorf("the sums end with %d over %d records, want %d over %d", total, count.Load(), n*(n-1)/2, n)
			}
			var completes []uint64
			if checkpointing {
				completes = []uint64{2}
			}
			for _, who := range allOps {
				if got := rec.notes(rec.aborts, who); !slices.Equal(got, []uint64{1}) {
					t.Errorf("%s: aborts %v, want [1]", who, got)
				}
				if got := rec.notes(rec.completes, who); !slices.Equal(got, completes) {
					t.Errorf("%s: completions %v, want %v", who, got, completes)
				}
			}
			r.noDeclines(t)
		})
	}
}

// The completion of a stop's savepoint may reach the downstream tasks
// before the end of their input: the savepoint is their final checkpoint
// all the same, and they finish as soon as their input ends, without
// waiting for another checkpoint.
func TestStopCompletionBeforeEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	src := testSource(0, 2, rec, func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
		for i := int64(1); ; i++ {
			if err := emit(i); err != nil {
				return err
			}
			if err := out.Watermark(i); err != nil {
				return err
			}
			stop, err := tc.PollCheckpoint()
			if err != nil {
				return err
			}
			if stop {
				// The end goes once every sum was told of the completion.
				for s := range 3 {
					for len(rec.notes(rec.completes, fmt.Sprintf("sum/%d", s))) == 0 {
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(time.Millisecond):
						}
					}
				}
				return out.End()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Microsecond):
			}
		}
	})
	sum := testSum(1, 3, src, hash, rec)
	r := startJob(t, ctx, rec, []*Vertex{src, sum}, true, nil)
	time.Sleep(20 * time.Millisecond)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 1, Savepoint: true, Stop: true})
	snaps := rec.waitAcks(t, 1, 5)
	if a, b := sumOf(snaps, src), sumOf(snaps, sum); a != b || a == 0 {
		t.Errorf("savepoint: sources emitted %d, the sums hold %d", a, b)
	}
	r.notEnded(t, 30*time.Millisecond)
	r.x.NotifyCheckpointComplete(1)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	var total int64
	for s := range 3 {
		who := fmt.Sprintf("sum/%d", s)
		k, got := rec.endsOf(who)
		if k != 1 {
			t.Errorf("%s ended %d times, want once", who, k)
		}
		total += got
		if wms := rec.watermarks(who); slices.Contains(wms, MaxWatermark) {
			t.Errorf("%s: final watermark after a stop without drain", who)
		}
	}
	if want := sumOf(snaps, src); total != want {
		t.Errorf("the sums end with %d, the savepoint says %d", total, want)
	}
	for _, who := range allOps {
		if got := rec.notes(rec.completes, who); !slices.Equal(got, []uint64{1}) {
			t.Errorf("%s: completions %v, want [1]", who, got)
		}
	}
	r.noDeclines(t)
}

// An abort of the checkpoint being aligned releases the held channel: the
// task goes on without it, and drops that checkpoint's late barriers.
func TestAbortReleasesAlignment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	fastDone, aborted, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	src, sum := twoSources(rec,
		func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
			if err := emit(1); err != nil {
				return err
			}
			if _, err := pollUntil(ctx, tc, func() bool { return rec.has(1, 0) }); err != nil {
				return err
			}
			if err := emit(100); err != nil {
				return err
			}
			if err := tc.Idle(); err != nil {
				return err
			}
			close(fastDone)
			if _, err := pollUntil(ctx, tc, func() bool { return rec.has(2, 0) }); err != nil {
				return err
			}
			if err := waitFor(ctx, release); err != nil {
				return err
			}
			return endSource(out)
		},
		func(ctx context.Context, tc *TaskContext, emit func(int64) error, out Output[int64]) error {
			if err := emit(10); err != nil {
				return err
			}
			if err := tc.Idle(); err != nil {
				return err
			}
			if err := waitFor(ctx, aborted); err != nil {
				return err
			}
			// Takes the late trigger of 1, then 2.
			if _, err := pollUntil(ctx, tc, func() bool { return rec.has(2, 1) }); err != nil {
				return err
			}
			if err := waitFor(ctx, release); err != nil {
				return err
			}
			return endSource(out)
		})
	r := startJob(t, ctx, rec, []*Vertex{src, sum}, false, nil)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 1})
	if err := waitFor(ctx, fastDone); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	r.x.NotifyCheckpointAborted(1)
	time.Sleep(20 * time.Millisecond)
	close(aborted)
	r.x.TriggerCheckpoint(CheckpointOptions{ID: 2})
	snaps := rec.waitAcks(t, 2, 3)
	if got := sumOf(snaps, sum); got != 111 {
		t.Errorf("checkpoint 2: the sum holds %d, want 111", got)
	}
	for _, s := range rec.acks(1) {
		if s.Task.Chain != 0 {
			t.Errorf("%s acknowledged the aborted checkpoint 1", s.Task)
		}
	}
	close(release)
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := rec.notes(rec.aborts, "sum/0"); !slices.Equal(got, []uint64{1}) {
		t.Errorf("sum: aborts %v, want [1]", got)
	}
	r.noDeclines(t)
}

// The barrier of a newer checkpoint ends the alignment of an older one (it
// was given up upstream): the task declines the older, processes what it
// held, and aligns the newer; later barriers of the older are dropped.
func TestNewerBarrierEndsAlignment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := newRecorder()
	src := testSource(0, 2, rec, nil)
	sum := testSum(1, 1, src, hash, rec)
	p, err := NewPlan("test", []*Vertex{src, sum}, 1, 128)
	if err != nil {
		t.Fatal(err)
	}
	x := &Executor{Plan: p, JobID: "j", Attempt: 1, Exchange: NewLocalExchange(), OnSnapshot: rec.onSnapshot, OnDecline: rec.onDecline}
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, []TaskKey{{JobID: "j", Attempt: 1, Chain: 1}}) }()
	var chans [2]ChannelWriter
	for s := range chans {
		chans[s], err = x.Exchange.Open(ctx, ChannelKey{JobID: "j", Attempt: 1, FromChain: 0, FromSubtask: s, ToChain: 1, ToVertex: 1})
		if err != nil {
			t.Fatal(err)
		}
	}
	record := func(s int, v int64) {
		t.Helper()
		b := binary.AppendVarint(nil, 0)
		if err := chans[s].WriteBatch(ctx, int64Codec.Append(b, v), 1); err != nil {
			t.Fatal(err)
		}
	}
	event := func(s int, k EventKind, v int64) {
		t.Helper()
		if err := chans[s].WriteEvent(ctx, Event{Kind: k, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	event(0, EventBarrier, 1)
	record(0, 100) // held
	record(1, 10)
	time.Sleep(20 * time.Millisecond)
	if s := rec.acks(1); len(s) != 0 {
		t.Fatalf("checkpoint 1 taken without the barrier of channel 1: %v", s)
	}
	event(1, EventBarrier, 2) // 1 was given up upstream
	record(1, 1000)           // held
	event(0, EventBarrier, 2)
	snaps := rec.waitAcks(t, 2, 1)
	if got := sumOf(snaps, sum); got != 110 {
		t.Errorf("checkpoint 2: the sum holds %d, want 110", got)
	}
	event(1, EventBarrier, 1) // late: dropped
	event(0, EventEnd, 0)
	event(1, EventEnd, 0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not end")
	}
	if s := rec.acks(1); len(s) != 0 {
		t.Errorf("checkpoint 1 acknowledged: %v", s)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.declined) != 1 || !strings.Contains(rec.declined[0], "declined 1") {
		t.Errorf("declined %v, want checkpoint 1", rec.declined)
	}
	if got := rec.sums["sum/0"]; got != 1110 {
		t.Errorf("the sum ends with %d, want 1110", got)
	}
}

// fakeDeferred counts how a deferred snapshot is ended.
type fakeDeferred struct{ written, released int }

func (d *fakeDeferred) KeyGroups() (map[int][]byte, error) {
	d.written++
	return map[int][]byte{3: []byte("kg3")}, nil
}
func (d *fakeDeferred) Release() { d.released++ }

// A snapshot that fails in one operator of a chain releases what the
// operators before it froze; one that succeeds hands it over unwritten,
// and Materialize writes it once.
func TestSnapshotReleasesDeferredState(t *testing.T) {
	first, second := &fakeDeferred{}, &fakeDeferred{}
	fail := errors.New("no snapshot today")
	var failing bool
	vs := []*Vertex{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}}
	tk := &task{chain: &Chain{Vertices: vs}, chainOps: []*Operator{
		{Snapshot: func(CheckpointOptions) (*OperatorSnapshot, error) { return &OperatorSnapshot{Deferred: first}, nil }},
		{Snapshot: func(CheckpointOptions) (*OperatorSnapshot, error) {
			if failing {
				return nil, fail
			}
			return &OperatorSnapshot{Deferred: second}, nil
		}},
	}}
	failing = true
	if _, err := tk.snapshot(CheckpointOptions{ID: 1}); !errors.Is(err, fail) {
		t.Fatalf("snapshot: %v, want %v", err, fail)
	}
	if first.released != 1 || first.written != 0 {
		t.Fatalf("after a failed snapshot the first operator's state was written %d and released %d times, want 0 and 1", first.written, first.released)
	}
	// A panic in a later operator releases it too, and goes on up.
	*first = fakeDeferred{}
	tk.chainOps[1].Snapshot = func(CheckpointOptions) (*OperatorSnapshot, error) { panic("operator bug") }
	func() {
		defer func() {
			if r := recover(); r != "operator bug" {
				t.Fatalf("recovered %v, want the operator's panic", r)
			}
		}()
		_, _ = tk.snapshot(CheckpointOptions{ID: 2})
	}()
	if first.released != 1 || first.written != 0 {
		t.Fatalf("after a panicking snapshot the first operator's state was written %d and released %d times, want 0 and 1", first.written, first.released)
	}
	tk.chainOps[1].Snapshot = func(CheckpointOptions) (*OperatorSnapshot, error) {
		if failing {
			return nil, fail
		}
		return &OperatorSnapshot{Deferred: second}, nil
	}
	failing = false
	*first = fakeDeferred{}
	s, err := tk.snapshot(CheckpointOptions{ID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if first.written+first.released+second.written+second.released != 0 {
		t.Fatal("the snapshot wrote or released deferred state in the task's goroutine")
	}
	if s.Operators[vs[0]].Empty() {
		t.Fatal("a snapshot of deferred state only is empty")
	}
	if err := s.Materialize(); err != nil {
		t.Fatal(err)
	}
	s.Release() // nothing is left to release
	for i, d := range []*fakeDeferred{first, second} {
		if d.written != 1 || d.released != 0 {
			t.Fatalf("operator %d: written %d, released %d times, want 1 and 0", i, d.written, d.released)
		}
		if got := string(s.Operators[vs[i]].KeyGroups[3]); got != "kg3" {
			t.Fatalf("operator %d: key group 3 is %q after Materialize", i, got)
		}
	}
}
