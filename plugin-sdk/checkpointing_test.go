package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// gatedSource reads a slice, but only while the records emitted by all its
// subtasks are below a limit the test moves; above it, it is idle.
type gatedSource struct {
	inner   Source[int]
	limit   atomic.Int64
	emitted atomic.Int64
	hold    atomic.Int64 // a subtask held idle whatever the limit; -1 for none
}

func newGatedSource(records []int, limit int64) *gatedSource {
	g := &gatedSource{inner: FromSlice(records)}
	g.limit.Store(limit)
	g.hold.Store(-1)
	return g
}

func (g *gatedSource) Splits(ctx context.Context, sc SourceContext) ([]Split, error) {
	return g.inner.Splits(ctx, sc)
}

func (g *gatedSource) Open(ctx context.Context, sc SourceContext, splits []Split) (Reader[int], error) {
	r, err := g.inner.Open(ctx, sc, splits)
	if err != nil {
		return nil, err
	}
	return &gatedReader{g: g, r: r, subtask: int64(sc.Subtask())}, nil
}

type gatedReader struct {
	g       *gatedSource
	r       Reader[int]
	subtask int64
}

type countingCollector struct {
	out Collector[int]
	n   *atomic.Int64
}

func (c countingCollector) Collect(v int) {
	c.n.Add(1)
	c.out.Collect(v)
}

func (r *gatedReader) Read(ctx context.Context, out Collector[int]) (ReadStatus, error) {
	if r.g.emitted.Load() >= r.g.limit.Load() || r.g.hold.Load() == r.subtask {
		return Idle, nil
	}
	return r.r.Read(ctx, countingCollector{out: out, n: &r.g.emitted})
}

func (r *gatedReader) Snapshot() ([]Split, error) { return r.r.Snapshot() }
func (r *gatedReader) Close() error               { return r.r.Close() }

// lastValues is a sink that keeps the last value of every key, per epoch:
// the epoch a subtask was opened in, which the test moves before it
// deploys a new attempt.
type lastValues struct {
	epoch atomic.Int64
	mu    sync.Mutex
	last  map[int64]map[int]int
}

func (s *lastValues) Open(context.Context, SinkContext) (Writer[pluginKV], error) {
	return &lastValuesWriter{s: s, epoch: s.epoch.Load()}, nil
}

func (s *lastValues) of(epoch int64) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]int{}
	for k, v := range s.last[epoch] {
		out[k] = v
	}
	return out
}

type lastValuesWriter struct {
	s     *lastValues
	epoch int64
}

func (w *lastValuesWriter) Write(_ context.Context, v pluginKV) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.last == nil {
		w.s.last = map[int64]map[int]int{}
	}
	if w.s.last[w.epoch] == nil {
		w.s.last[w.epoch] = map[int]int{}
	}
	w.s.last[w.epoch][v.K] = v.V
	return nil
}

func (w *lastValuesWriter) Flush(context.Context) error { return nil }
func (w *lastValuesWriter) Close(context.Context) error { return nil }

// checkpointedSumJob is gated source -> Map -> KeyBy -> Reduce -> a sink
// of each key's last sum.
func checkpointedSumJob(n int, limit int64) (*Job, *gatedSource, *lastValues) {
	job := NewJob("sum")
	records := make([]int, n)
	for i := range records {
		records[i] = i + 1
	}
	src := newGatedSource(records, limit)
	pairs := Map(FromSource[int](job, src, WithUID("src")), func(x int) pluginKV { return pluginKV{K: x % 7, V: 2 * x} }, WithUID("pair"))
	sums := Reduce(KeyBy(pairs, func(r pluginKV) int { return r.K }), func(a, b pluginKV) pluginKV { return pluginKV{K: a.K, V: a.V + b.V} }, WithUID("sum"))
	out := &lastValues{}
	SinkTo(sums, out, WithUID("out"))
	return job, src, out
}

func expectedSums(n int) map[int]int {
	want := map[int]int{}
	for x := 1; x <= n; x++ {
		want[x%7] += 2 * x
	}
	return want
}

// coordinator plays the control plane's checkpoint coordinator for one
// attempt of a job on one plugin: it triggers a checkpoint, waits for every
// task's acknowledgement, writes the _metadata and completes it.
type coordinator struct {
	t       *testing.T
	h       *pluginHarness
	jobID   string
	attempt uint64
	tasks   []string
	graph   *pluginpb.JobGraph
	dir     string // the job's checkpoint directory URL
	store   storage.Store
	// last is every task's last acknowledgement, and of which checkpoint:
	// a checkpoint carries over the state of the tasks that finished.
	last    map[string]lastAck
	carried int // acknowledgements carried over from earlier checkpoints
}

type lastAck struct {
	id  uint64
	ack *pluginpb.CheckpointAck
}

func newCoordinator(t *testing.T, h *pluginHarness, jobID string, attempt uint64, p uint32, tasks []string, dir string) *coordinator {
	t.Helper()
	d, err := h.client.Describe(context.Background(), &pluginpb.DescribeRequest{Parallelism: p})
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return &coordinator{t: t, h: h, jobID: jobID, attempt: attempt, tasks: tasks, graph: d.GetGraph(), dir: dir, store: st,
		last: map[string]lastAck{}}
}

func (c *coordinator) send(action pluginpb.CheckpointAction, id uint64) error {
	_, err := c.h.client.Checkpoint(context.Background(), &pluginpb.CheckpointRequest{JobId: c.jobID, Attempt: c.attempt,
		CheckpointId: id, Action: action, Url: c.dir + "/" + checkpoint.Dir(id), TimestampMs: time.Now().UnixMilli()})
	return err
}

// acks waits for every task's acknowledgement of checkpoint id; a task
// that finished (when an earlier checkpoint completed) before the trigger
// reached it has none to give.
func (c *coordinator) acks(id uint64, timeout time.Duration) map[string]*pluginpb.CheckpointAck {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.h.mu.Lock()
		got := map[string]*pluginpb.CheckpointAck{}
		done := 0
		for _, k := range c.tasks {
			if a := c.h.acks[k][id]; a != nil {
				got[k] = a
				done++
			} else if c.h.states[k] == pluginpb.TaskState_TASK_STATE_FINISHED {
				done++
			}
		}
		ch := c.h.changed
		states := fmt.Sprint(c.h.states, c.h.errs)
		c.h.mu.Unlock()
		if done == len(c.tasks) {
			return got
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("checkpoint %d: acknowledged by %d of %d tasks (%v); task states %s", id, len(got), len(c.tasks), got, states)
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metadata builds the _metadata of checkpoint id from the tasks'
// acknowledgements, as the coordinator does: a task that finished before
// the checkpoint is represented by its last acknowledgement, whose files
// are in that checkpoint's directory beside this one.
func (c *coordinator) metadata(id uint64, acks map[string]*pluginpb.CheckpointAck) *pluginpb.CheckpointMetadata {
	c.t.Helper()
	all := map[string]*pluginpb.CheckpointAck{}
	for _, task := range c.tasks {
		if a := acks[task]; a != nil {
			all[task] = a
			continue
		}
		prev, ok := c.last[task]
		if !ok {
			c.t.Fatalf("checkpoint %d: task %s finished without acknowledging any checkpoint", id, task)
		}
		carried := proto.CloneOf(prev.ack)
		for _, o := range carried.GetOperators() {
			if o.GetFile() != "" {
				o.File = "../" + checkpoint.Dir(prev.id) + "/" + o.GetFile()
			}
		}
		c.carried++
		all[task] = carried
	}
	acks = all
	m := &pluginpb.CheckpointMetadata{JobId: c.jobID, JobName: c.graph.GetName(), CheckpointId: id,
		TimestampMs: time.Now().UnixMilli(), MaxParallelism: c.graph.GetMaxParallelism()}
	byUID := map[string]*pluginpb.OperatorState{}
	for _, v := range c.graph.GetVertices() {
		byUID[v.GetUid()] = &pluginpb.OperatorState{Uid: v.GetUid(), Name: v.GetName(), Kind: v.GetKind(),
			Parallelism: v.GetParallelism(), MaxParallelism: c.graph.GetMaxParallelism()}
	}
	for task, a := range acks {
		if a.GetError() != "" {
			c.t.Fatalf("task %s declined checkpoint %d: %s", task, id, a.GetError())
		}
		for _, o := range a.GetOperators() {
			op := byUID[o.GetUid()]
			if op == nil {
				c.t.Fatalf("task %s acknowledged state of operator %q, which the job does not have", task, o.GetUid())
			}
			op.Subtasks = append(op.Subtasks, o)
		}
	}
	for _, v := range c.graph.GetVertices() {
		if op := byUID[v.GetUid()]; len(op.Subtasks) > 0 {
			m.Operators = append(m.Operators, op)
		}
	}
	return m
}

// checkpoint takes checkpoint id and returns its metadata and the
// acknowledgements.
func (c *coordinator) checkpoint(id uint64) (*pluginpb.CheckpointMetadata, map[string]*pluginpb.CheckpointAck) {
	c.t.Helper()
	if err := c.send(pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER, id); err != nil {
		c.t.Fatalf("trigger checkpoint %d: %v", id, err)
	}
	acks := c.acks(id, 20*time.Second)
	m := c.metadata(id, acks)
	for task, a := range acks {
		c.last[task] = lastAck{id: id, ack: a}
	}
	if err := checkpoint.WriteMetadata(context.Background(), c.store, checkpoint.Dir(id), m); err != nil {
		c.t.Fatal(err)
	}
	if err := c.send(pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE, id); err != nil {
		c.t.Fatalf("complete checkpoint %d: %v", id, err)
	}
	return m, acks
}

// checkStateFiles checks that every state file a checkpoint's metadata
// names is in storage, and that its slices decode: key-group blobs of the
// right group with a good checksum, source splits.
func checkStateFiles(t *testing.T, st storage.Store, id uint64, m *pluginpb.CheckpointMetadata) {
	t.Helper()
	files := 0
	for _, op := range m.GetOperators() {
		for _, s := range op.GetSubtasks() {
			if s.GetFile() == "" {
				if len(s.GetKeyGroups())+len(s.GetItems()) > 0 {
					t.Fatalf("operator %s subtask %d: slices without a file", op.GetUid(), s.GetSubtask())
				}
				continue
			}
			files++
			if want := checkpoint.StateFileName(op.GetUid(), int(s.GetSubtask())); s.GetFile() != want {
				t.Errorf("operator %s subtask %d: file %q, want %q", op.GetUid(), s.GetSubtask(), s.GetFile(), want)
			}
			rc, info, err := st.Open(context.Background(), checkpoint.Dir(id)+"/"+s.GetFile())
			if err != nil {
				t.Fatalf("state file of %s subtask %d: %v", op.GetUid(), s.GetSubtask(), err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(b)) != s.GetSize() || info.Size != s.GetSize() {
				t.Fatalf("state file %s: %d bytes (%d in storage), acknowledged %d", s.GetFile(), len(b), info.Size, s.GetSize())
			}
			for _, kg := range s.GetKeyGroups() {
				blob := b[kg.GetOffset() : kg.GetOffset()+kg.GetLength()]
				body := blob[:len(blob)-4]
				if string(blob[:len(groupMagic)]) != groupMagic || crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(blob[len(blob)-4:]) {
					t.Fatalf("state file %s: key group %d's slice is not a good key-group blob", s.GetFile(), kg.GetKeyGroup())
				}
				if g, _ := binary.Uvarint(body[len(groupMagic)+1:]); g != uint64(kg.GetKeyGroup()) {
					t.Fatalf("state file %s: the slice of key group %d holds key group %d", s.GetFile(), kg.GetKeyGroup(), g)
				}
			}
			var items [][]byte
			for _, it := range s.GetItems() {
				items = append(items, b[it.GetOffset():it.GetOffset()+it.GetLength()])
			}
			if op.GetUid() == "src" {
				if _, err := decodeSplits(items); err != nil || len(items) == 0 {
					t.Fatalf("state file %s: %d items that do not decode as splits: %v", s.GetFile(), len(items), err)
				}
			}
		}
	}
	if files == 0 {
		t.Fatal("the checkpoint wrote no state file")
	}
}

func fileURL(t *testing.T, dir string) string {
	t.Helper()
	u, err := storage.FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A checkpoint taken in the middle of a bounded job is written to storage
// and acknowledged by every task; a new attempt restored from it, at
// another parallelism, ends with exactly the sums of a run without failure.
func TestTaskExecutorCheckpointAndRestore(t *testing.T) {
	for _, p := range []uint32{2, 3} {
		t.Run(fmt.Sprint("restore-at-", p), func(t *testing.T) { testCheckpointAndRestore(t, p) })
	}
}

func testCheckpointAndRestore(t *testing.T, restoreP uint32) {
	const n = 20000
	job, src, out := checkpointedSumJob(n, n/4)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	dir := fileURL(t, t.TempDir())

	// Attempt 1 runs to a quarter of the input, takes checkpoint 1, goes
	// on to half of it, and is cancelled.
	out.epoch.Store(1)
	req := h.deployRequest("j1", 1, 2, addr)
	req.Checkpoints = dir
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	h.waitFor(20*time.Second, "every task RUNNING", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_RUNNING))
	waitUntil(t, 10*time.Second, "the source read a quarter", func() bool { return src.emitted.Load() >= n/4 })

	c := newCoordinator(t, h, "j1", 1, 2, tasks, dir)
	m, acks := c.checkpoint(1)
	for task, a := range acks {
		if a.GetAsyncMs() < 0 || a.GetSyncMs() < 0 {
			t.Errorf("task %s: ack %v", task, a)
		}
	}
	checkStateFiles(t, c.store, 1, m)
	if checkpoint.Operator(m, "src") == nil || checkpoint.Operator(m, "sum") == nil {
		t.Fatalf("checkpoint 1 lacks the source or the reduce: %v", m)
	}

	// Checkpoint 2 is triggered but never completes: the restore must use
	// 1, and what the tasks do after 1 is lost with the attempt.
	src.limit.Store(n / 2)
	waitUntil(t, 10*time.Second, "the source read half", func() bool { return src.emitted.Load() >= n/2 })
	if err := c.send(pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER, 2); err != nil {
		t.Fatal(err)
	}
	c.acks(2, 20*time.Second)
	if _, err := h.client.Cancel(context.Background(), &pluginpb.CancelRequest{JobId: "j1"}); err != nil {
		t.Fatal(err)
	}
	h.waitFor(20*time.Second, "attempt 1 CANCELED", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_CANCELED, pluginpb.TaskState_TASK_STATE_FAILED))
	if got := out.of(1); fmt.Sprint(got) == fmt.Sprint(expectedSums(n)) {
		t.Fatalf("attempt 1 computed the final sums before it was cancelled: %v", got)
	}

	// Attempt 2 restores checkpoint 1 and runs to the end, taking
	// checkpoints until its tasks finish (each waits for a checkpoint
	// after its end). Source subtask 1 is held until the others finished,
	// so that the last checkpoints carry their state over.
	out.epoch.Store(2)
	src.limit.Store(math.MaxInt64)
	src.hold.Store(1)
	req = h.deployRequest("j1", 2, restoreP, addr)
	req.Checkpoints = dir
	req.Restore = &pluginpb.RestoreSpec{Url: dir + "/" + checkpoint.Dir(1), CheckpointId: 1}
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	tasks = tasks[:0]
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	c2 := newCoordinator(t, h, "j1", 2, restoreP, tasks, dir)
	h.waitFor(20*time.Second, "every task RUNNING", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_RUNNING, pluginpb.TaskState_TASK_STATE_FINISHED))
	for id := uint64(3); ; id++ {
		c2.checkpoint(id)
		h.mu.Lock()
		st := h.states[fmt.Sprintf("j1/2/0/%d", 0)]
		h.mu.Unlock()
		if st == pluginpb.TaskState_TASK_STATE_FINISHED {
			break
		}
		if id > 100 {
			t.Fatal("source subtask 0 did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	src.hold.Store(-1)
	last := c2.runToEnd(c2.lastID() + 1)
	if c2.carried == 0 {
		t.Fatal("no checkpoint carried the state of a finished task over")
	}
	if got, want := out.of(2), expectedSums(n); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sums after the restore %v, want %v", got, want)
	}

	// Attempt 3 restores the last checkpoint, taken when every source had
	// finished (their state carried over from earlier checkpoints): it
	// reads nothing again.
	out.epoch.Store(3)
	req = h.deployRequest("j1", 3, 2, addr)
	req.Checkpoints = dir
	req.Restore = &pluginpb.RestoreSpec{Url: dir + "/" + checkpoint.Dir(last), CheckpointId: last}
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	tasks = tasks[:0]
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	newCoordinator(t, h, "j1", 3, 2, tasks, dir).runToEnd(last + 1)
	if got := out.of(3); len(got) != 0 {
		t.Fatalf("the attempt restored after the end emitted sums %v, want none", got)
	}
}

func (c *coordinator) lastID() uint64 {
	id := uint64(0)
	for _, l := range c.last {
		id = max(id, l.id)
	}
	return id
}

// runToEnd takes checkpoints from id on until every task finished (each
// waits for a checkpoint after its end), and returns the last one's id.
func (c *coordinator) runToEnd(id uint64) uint64 {
	c.t.Helper()
	ended := allTasksIn(c.tasks, pluginpb.TaskState_TASK_STATE_FINISHED, pluginpb.TaskState_TASK_STATE_FAILED, pluginpb.TaskState_TASK_STATE_CANCELED)
	c.h.waitFor(20*time.Second, "every task RUNNING", allTasksIn(c.tasks, pluginpb.TaskState_TASK_STATE_RUNNING, pluginpb.TaskState_TASK_STATE_FINISHED))
	last := uint64(0)
	for first := id; ; id++ {
		c.h.mu.Lock()
		done := ended(c.h.states)
		c.h.mu.Unlock()
		if done {
			break
		}
		if id > first+200 {
			c.t.Fatalf("attempt %d did not finish after 200 checkpoints", c.attempt)
		}
		c.checkpoint(id)
		last = id
		time.Sleep(20 * time.Millisecond)
	}
	c.h.waitFor(time.Second, fmt.Sprintf("attempt %d FINISHED", c.attempt), allTasksIn(c.tasks, pluginpb.TaskState_TASK_STATE_FINISHED))
	return last
}

// A state file that fails its checksum makes the tasks that restore from
// it fail with restore_failed; a missing checkpoint too.
func TestTaskExecutorRestoreFromCorruptCheckpoint(t *testing.T) {
	const n = 5000
	job, src, _ := checkpointedSumJob(n, n/2)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	root := t.TempDir()
	dir := fileURL(t, root)
	req := h.deployRequest("j1", 1, 2, addr)
	req.Checkpoints = dir
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	waitUntil(t, 10*time.Second, "the source read half", func() bool { return src.emitted.Load() >= n/2 })
	c := newCoordinator(t, h, "j1", 1, 2, tasks, dir)
	m, _ := c.checkpoint(1)
	if _, err := h.client.Cancel(context.Background(), &pluginpb.CancelRequest{JobId: "j1"}); err != nil {
		t.Fatal(err)
	}
	// A source subtask that read all its records may have finished.
	h.waitFor(20*time.Second, "attempt 1 ended", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_CANCELED, pluginpb.TaskState_TASK_STATE_FAILED, pluginpb.TaskState_TASK_STATE_FINISHED))

	// Flip a byte of the reduce's first state file.
	var victim string
	for _, s := range checkpoint.Operator(m, "sum").GetSubtasks() {
		if s.GetFile() != "" && s.GetSize() > 0 {
			victim = s.GetFile()
			break
		}
	}
	if victim == "" {
		t.Fatal("the reduce wrote no state file")
	}
	path := filepath.Join(root, checkpoint.Dir(1), victim)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	deployRestore := func(attempt uint64, url string) []string {
		req := h.deployRequest("j1", attempt, 2, addr)
		req.Checkpoints = dir
		req.Restore = &pluginpb.RestoreSpec{Url: url}
		if _, err := h.client.Deploy(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		var tasks []string
		for _, task := range req.Tasks {
			tasks = append(tasks, pluginTaskName(task))
		}
		h.waitFor(20*time.Second, fmt.Sprintf("attempt %d ended", attempt), allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_FAILED, pluginpb.TaskState_TASK_STATE_CANCELED))
		return tasks
	}
	tasks = deployRestore(2, dir+"/"+checkpoint.Dir(1))
	h.mu.Lock()
	var failed []string
	for _, k := range tasks {
		if h.states[k] == pluginpb.TaskState_TASK_STATE_FAILED {
			failed = append(failed, k)
			if !h.restoreFailed[k] || !strings.Contains(h.errs[k], "checksum") || !strings.Contains(h.errs[k], victim) {
				t.Errorf("task %s failed (restore_failed %v) with %q, want restore_failed and the checksum of %s named", k, h.restoreFailed[k], h.errs[k], victim)
			}
		}
	}
	h.mu.Unlock()
	if len(failed) == 0 {
		t.Fatal("no task failed restoring from a corrupt state file")
	}

	// A checkpoint directory without _metadata is no checkpoint.
	tasks = deployRestore(3, dir+"/"+checkpoint.Dir(9))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range tasks {
		if h.states[k] == pluginpb.TaskState_TASK_STATE_FAILED && (!h.restoreFailed[k] || !strings.Contains(h.errs[k], "not found")) {
			t.Errorf("task %s failed (restore_failed %v) with %q, want restore_failed, the metadata not found", k, h.restoreFailed[k], h.errs[k])
		}
	}
}

// A restore into a job that cannot take the checkpoint fails without
// restore_failed: an earlier checkpoint would not do better.
func TestTaskExecutorRestoreRefusesIncompatibleCheckpoint(t *testing.T) {
	job, _, _ := checkpointedSumJob(100, 100)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	root := t.TempDir()
	st, err := storage.Open(context.Background(), fileURL(t, root))
	if err != nil {
		t.Fatal(err)
	}
	m := &pluginpb.CheckpointMetadata{CheckpointId: 4, MaxParallelism: 128, Operators: []*pluginpb.OperatorState{{
		Uid: "removed", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "x", Size: 1, Items: []*pluginpb.Slice{{Length: 1}}}}}}}
	if err := checkpoint.WriteMetadata(context.Background(), st, "", m); err != nil {
		t.Fatal(err)
	}
	req := h.deployRequest("j1", 1, 1, addr)
	req.Restore = &pluginpb.RestoreSpec{Url: fileURL(t, root)}
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	h.waitFor(20*time.Second, "the attempt ended", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_FAILED, pluginpb.TaskState_TASK_STATE_CANCELED))
	h.mu.Lock()
	defer h.mu.Unlock()
	failed := 0
	for _, k := range tasks {
		if h.states[k] == pluginpb.TaskState_TASK_STATE_FAILED {
			failed++
			if h.restoreFailed[k] || !strings.Contains(h.errs[k], `"removed"`) {
				t.Errorf("task %s failed (restore_failed %v) with %q, want the removed operator named, without restore_failed", k, h.restoreFailed[k], h.errs[k])
			}
		}
	}
	if failed == 0 {
		t.Fatal("no task failed")
	}
}

func TestTaskExecutorCheckpointRequests(t *testing.T) {
	h := newPluginHarness(t, pluginEndlessJob())
	addr := h.prepare("j1")
	dir := fileURL(t, t.TempDir())
	req := h.deployRequest("j1", 1, 2, addr)
	req.Checkpoints = dir
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, task := range req.Tasks {
		tasks = append(tasks, pluginTaskName(task))
	}
	h.waitFor(20*time.Second, "every task RUNNING", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_RUNNING))
	cases := []struct {
		name string
		req  *pluginpb.CheckpointRequest
		code codes.Code
	}{
		{"unknown attempt", &pluginpb.CheckpointRequest{JobId: "j1", Attempt: 2, CheckpointId: 1, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER, Url: dir + "/chk-1"}, codes.NotFound},
		{"unknown job", &pluginpb.CheckpointRequest{JobId: "j2", Attempt: 1, CheckpointId: 1, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER, Url: dir + "/chk-1"}, codes.NotFound},
		{"no url", &pluginpb.CheckpointRequest{JobId: "j1", Attempt: 1, CheckpointId: 1, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER}, codes.InvalidArgument},
		{"no id", &pluginpb.CheckpointRequest{JobId: "j1", Attempt: 1, Action: pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE}, codes.InvalidArgument},
		{"no action", &pluginpb.CheckpointRequest{JobId: "j1", Attempt: 1, CheckpointId: 1}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		if _, err := h.client.Checkpoint(context.Background(), tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	// An aborted checkpoint is forgotten: a snapshot reaching it is
	// declined. The next one is acknowledged by every task.
	c := newCoordinator(t, h, "j1", 1, 2, tasks, dir)
	c.checkpoint(1)
	if err := c.send(pluginpb.CheckpointAction_CHECKPOINT_ACTION_ABORT, 7); err != nil {
		t.Fatal(err)
	}
	c.checkpoint(8)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The writer declines a checkpoint it has no directory for, and one whose
// store cannot be written, instead of failing the task.
func TestStateWriterDeclines(t *testing.T) {
	var mu sync.Mutex
	var evs []*pluginpb.TaskEvent
	emit := func(ev *pluginpb.TaskEvent) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := newStateWriter(ctx, "", 1, emit)
	snap := testSnapshot(3)
	w.onSnapshot(snap)                        // never triggered
	w.triggered(4, fileURL(t, file)+"/chk-4") // a directory under a file
	snap = testSnapshot(4)
	w.onSnapshot(snap)
	w.triggered(5, fileURL(t, t.TempDir())+"/chk-5")
	w.onSnapshot(testSnapshot(5))
	w.close()
	mu.Lock()
	defer mu.Unlock()
	byID := map[uint64]*pluginpb.CheckpointAck{}
	for _, ev := range evs {
		byID[ev.GetAck().GetCheckpointId()] = ev.GetAck()
	}
	if a := byID[3]; a == nil || !strings.Contains(a.GetError(), "no directory") {
		t.Errorf("checkpoint 3: %v, want a decline for want of a directory", a)
	}
	if a := byID[4]; a == nil || a.GetError() == "" {
		t.Errorf("checkpoint 4: %v, want a decline with the storage error", a)
	}
	if a := byID[5]; a == nil || a.GetError() != "" || len(a.GetOperators()) != 1 || a.GetOperators()[0].GetSize() != 7 {
		t.Errorf("checkpoint 5: %v, want an acknowledgement of a 7-byte file", a)
	}
}

func testSnapshot(id uint64) *engine.TaskSnapshot {
	v := &engine.Vertex{ID: 1, UID: "op"}
	return &engine.TaskSnapshot{Task: engine.TaskKey{JobID: "j", Attempt: 1}, Checkpoint: engine.CheckpointOptions{ID: id},
		Operators: map[*engine.Vertex]*engine.OperatorSnapshot{v: {
			KeyGroups: map[int][]byte{2: []byte("kg2"), 1: []byte("k1")}, Items: [][]byte{[]byte("xx")}}}}
}

// A checkpoint may name state files of an earlier checkpoint beside it
// ("../chk-1/..."): the restorer reads them there, and refuses names that
// leave the storage.
func TestRestorerReadsFilesBesideTheCheckpoint(t *testing.T) {
	job, _, _ := checkpointedSumJob(10, 10)
	plan, err := job.plan(1)
	if err != nil {
		t.Fatal(err)
	}
	var sum *engine.Vertex
	for _, v := range plan.Vertices {
		if v.UID == "sum" {
			sum = v
		}
	}
	root := t.TempDir()
	st, err := storage.Open(context.Background(), fileURL(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), "chk-1/sum-0.state", strings.NewReader("abcdef")); err != nil {
		t.Fatal(err)
	}
	m := &pluginpb.CheckpointMetadata{CheckpointId: 2, MaxParallelism: uint32(plan.MaxParallelism), Operators: []*pluginpb.OperatorState{{
		Uid: "sum", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "../chk-1/sum-0.state", Size: 6,
			KeyGroups: []*pluginpb.KeyGroupSlice{{KeyGroup: 0, Offset: 0, Length: 2}, {KeyGroup: 5, Offset: 2, Length: 4}}}}}}}
	if err := checkpoint.WriteMetadata(context.Background(), st, "chk-2", m); err != nil {
		t.Fatal(err)
	}
	key := engine.TaskKey{JobID: "j1", Attempt: 1}
	r := newRestorer(context.Background(), &pluginpb.RestoreSpec{Url: fileURL(t, root) + "/chk-2"}, plan, "j1", 1, []engine.TaskKey{key})
	snap, err := r.restore(sum, 0, 1, keygroup.For(0, plan.MaxParallelism, 1))
	if err != nil {
		t.Fatal(err)
	}
	if string(snap.KeyGroups[0]) != "ab" || string(snap.KeyGroups[5]) != "cdef" || len(snap.KeyGroups) != 2 {
		t.Fatalf("restored key groups %v, want 0: ab and 5: cdef", snap.KeyGroups)
	}

	m.Operators[0].Subtasks[0].File = "../../../../../../../../../../../../../../../../../../../x"
	if err := checkpoint.WriteMetadata(context.Background(), st, "chk-3", m); err != nil {
		t.Fatal(err)
	}
	r = newRestorer(context.Background(), &pluginpb.RestoreSpec{Url: fileURL(t, root) + "/chk-3"}, plan, "j1", 1, []engine.TaskKey{key})
	if _, err := r.restore(sum, 0, 1, keygroup.For(0, plan.MaxParallelism, 1)); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("a state file outside the storage: %v, want ErrCorrupt", err)
	}
}

// The event log keeps every state change and the recent acknowledgements
// only; a subscriber's position survives the trimming.
func TestEventLogKeepsStatesAndRecentAcks(t *testing.T) {
	l := newEventLog()
	k := engine.TaskKey{JobID: "j", Attempt: 1}
	l.add(k, engine.TaskDeploying, &pluginpb.TaskEvent{State: pluginpb.TaskState_TASK_STATE_DEPLOYING})
	l.add(k, engine.TaskRunning, &pluginpb.TaskEvent{State: pluginpb.TaskState_TASK_STATE_RUNNING})
	evs, last, _ := l.since(0)
	if len(evs) != 2 || last != 1 {
		t.Fatalf("since 0: %d events up to %d", len(evs), last)
	}
	const n = 5 * maxAcks
	for i := 1; i <= n; i++ {
		l.addAck(&pluginpb.TaskEvent{Ack: &pluginpb.CheckpointAck{CheckpointId: uint64(i)}})
	}
	l.add(k, engine.TaskFinished, &pluginpb.TaskEvent{State: pluginpb.TaskState_TASK_STATE_FINISHED})
	if st, _ := l.state(k); st != engine.TaskFinished {
		t.Fatalf("state %v after acknowledgements, want FINISHED", st)
	}
	evs, last, _ = l.since(0)
	var states []pluginpb.TaskState
	acks := 0
	prev := uint64(0)
	for _, ev := range evs {
		if a := ev.GetAck(); a != nil {
			if a.GetCheckpointId() <= prev {
				t.Fatalf("acknowledgement %d after %d", a.GetCheckpointId(), prev)
			}
			prev = a.GetCheckpointId()
			acks++
			continue
		}
		states = append(states, ev.GetState())
	}
	if len(states) != 3 || states[2] != pluginpb.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("states %v, want all three", states)
	}
	if acks < maxAcks || acks > 2*maxAcks || prev != n {
		t.Fatalf("%d acknowledgements kept, the last %d; want %d to %d, up to %d", acks, prev, maxAcks, 2*maxAcks, n)
	}
	if last != n+2 {
		t.Fatalf("last event %d, want %d", last, n+2)
	}
	// A subscriber that had read up to an event since dropped goes on
	// from the next one kept.
	evs, _, _ = l.since(10)
	if len(evs) != acks+1 {
		t.Fatalf("since 10: %d events, want the %d acknowledgements kept and FINISHED", len(evs), acks)
	}
	if evs, _, _ := l.since(last + 1); len(evs) != 0 {
		t.Fatalf("since the end: %d events", len(evs))
	}
}

// Frozen in-memory state is released on every path through the writer:
// written, declined for want of a directory or a store, handed over after
// the writer closed, or dropped because the attempt ended.
func TestStateWriterReleasesFrozenState(t *testing.T) {
	s := newSnapSubtask(keygroup.Range{Start: 0, End: snapMaxP}, "")
	for i := range 50 {
		s.setKey(t, snapKey(i))
		s.count.Update(int64(i))
	}
	frozen := func(id uint64) *engine.TaskSnapshot {
		t.Helper()
		f, err := freezeKeyed(s.core.be, s.core.timers, false)
		if err != nil {
			t.Fatal(err)
		}
		v := &engine.Vertex{ID: 1, UID: "op"}
		return &engine.TaskSnapshot{Task: engine.TaskKey{JobID: "j", Attempt: 1}, Checkpoint: engine.CheckpointOptions{ID: id},
			Operators: map[*engine.Vertex]*engine.OperatorSnapshot{v: {Deferred: f}}}
	}
	live := func() int {
		s.core.be.cow.mu.Lock()
		defer s.core.be.cow.mu.Unlock()
		n := 0
		for _, c := range s.core.be.cow.live {
			n += c
		}
		return n
	}
	emit, ack := ackRecorder()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newStateWriter(ctx, "", 1, emit)
	w.onSnapshot(frozen(3)) // never triggered
	w.triggered(4, fileURL(t, file)+"/chk-4")
	w.onSnapshot(frozen(4)) // a directory under a file
	dir := t.TempDir()
	w.triggered(5, fileURL(t, dir)+"/chk-5")
	w.onSnapshot(frozen(5))
	w.close()
	w.onSnapshot(frozen(6)) // after the close
	if n := live(); n != 0 {
		t.Fatalf("%d frozen snapshots left after the writer closed", n)
	}
	if a := ack(5); a == nil || a.GetError() != "" || len(a.GetOperators()) != 1 || a.GetOperators()[0].GetSize() == 0 {
		t.Fatalf("checkpoint 5: %v, want an acknowledgement of its state file", a)
	}
	for _, id := range []uint64{3, 4} {
		if a := ack(id); a == nil || a.GetError() == "" {
			t.Fatalf("checkpoint %d: %v, want a decline", id, a)
		}
	}
	// The written file restores to the state.
	b, err := os.ReadFile(filepath.Join(dir, "chk-5", ack(5).GetOperators()[0].GetFile()))
	if err != nil {
		t.Fatal(err)
	}
	groups := map[int][]byte{}
	for _, p := range ack(5).GetOperators()[0].GetKeyGroups() {
		groups[int(p.GetKeyGroup())] = b[p.GetOffset() : p.GetOffset()+p.GetLength()]
	}
	r := newSnapSubtask(keygroup.Range{Start: 0, End: snapMaxP}, "")
	if err := restoreKeyed(r.core.be, r.core.timers, groups, false); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		r.setKey(t, snapKey(i))
		if v, ok := r.count.Value(); !ok || v != int64(i) {
			t.Fatalf("restored %s: %d %v, want %d", snapKey(i), v, ok, i)
		}
	}

	// An attempt that ended drops what is queued.
	w = newStateWriter(ctx, "", 1, emit)
	w.triggered(7, fileURL(t, t.TempDir())+"/chk-7")
	cancel()
	w.onSnapshot(frozen(7))
	w.close()
	if n := live(); n != 0 {
		t.Fatalf("%d frozen snapshots left after the attempt ended", n)
	}
}

// ackRecorder returns an emit function for a stateWriter that keeps the
// last acknowledgement of each checkpoint, and the reader of what it kept.
func ackRecorder() (emit func(*pluginpb.TaskEvent), ack func(id uint64) *pluginpb.CheckpointAck) {
	var mu sync.Mutex
	acks := map[uint64]*pluginpb.CheckpointAck{}
	emit = func(ev *pluginpb.TaskEvent) {
		mu.Lock()
		defer mu.Unlock()
		acks[ev.GetAck().GetCheckpointId()] = ev.GetAck()
	}
	ack = func(id uint64) *pluginpb.CheckpointAck {
		mu.Lock()
		defer mu.Unlock()
		return acks[id]
	}
	return emit, ack
}
