package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/plugin-sdk/handshake"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// pluginHarness is a job's task executor served over go-plugin's real gRPC
// boundary in this process, as a worker sees it.
type pluginHarness struct {
	t      *testing.T
	client pluginpb.TaskExecutorClient

	mu     sync.Mutex
	events []*pluginpb.TaskEvent
	states map[string]pluginpb.TaskState
	errs   map[string]string
	// order records, per task, the states it went through.
	order map[string][]pluginpb.TaskState
	// acks are the checkpoint acknowledgements (and declines), by task and
	// checkpoint id.
	acks map[string]map[uint64]*pluginpb.CheckpointAck
	// restoreFailed are the tasks that failed with restore_failed set.
	restoreFailed map[string]bool
	changed       chan struct{}
}

func newPluginHarness(t *testing.T, job *Job) *pluginHarness {
	t.Helper()
	lw := &pluginLogWriter{t: t}
	t.Cleanup(lw.stop)
	x := newTaskExecutor(job, hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: lw, Level: hclog.Debug}),
		slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(x.shutdown)
	client, server := plugin.TestPluginGRPCConn(t, false, handshake.Plugins(x))
	_ = server // stopped by client.Close, through go-plugin's controller
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(handshake.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := raw.(*handshake.Client)
	if !ok {
		t.Fatalf("dispensed %T, want *handshake.Client", raw)
	}
	h := &pluginHarness{t: t, client: c, states: map[string]pluginpb.TaskState{}, errs: map[string]string{},
		order: map[string][]pluginpb.TaskState{}, acks: map[string]map[uint64]*pluginpb.CheckpointAck{},
		restoreFailed: map[string]bool{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Events(ctx, &pluginpb.EventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			h.mu.Lock()
			k := pluginTaskName(ev.GetTask())
			h.events = append(h.events, ev)
			if ack := ev.GetAck(); ack != nil {
				if h.acks[k] == nil {
					h.acks[k] = map[uint64]*pluginpb.CheckpointAck{}
				}
				h.acks[k][ack.GetCheckpointId()] = ack
			} else {
				h.states[k] = ev.GetState()
				h.errs[k] = ev.GetError()
				h.order[k] = append(h.order[k], ev.GetState())
				if ev.GetRestoreFailed() {
					h.restoreFailed[k] = true
				}
			}
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// pluginLogWriter writes to t.Log until the test ends, and drops lines after
// that: a late goroutine must not panic the test binary.
type pluginLogWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *pluginLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *pluginLogWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func pluginTaskName(t *pluginpb.TaskID) string {
	return fmt.Sprintf("%s/%d/%d/%d", t.GetJobId(), t.GetAttempt(), t.GetChain(), t.GetSubtask())
}

// waitFor waits until cond holds over the task states, and fails with the
// states it last saw.
func (h *pluginHarness) waitFor(timeout time.Duration, what string, cond func(states map[string]pluginpb.TaskState) bool) {
	h.t.Helper()
	deadline := time.After(timeout)
	for {
		h.mu.Lock()
		ok := cond(h.states)
		ch := h.changed
		snapshot := fmt.Sprint(h.states, h.errs)
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; task states: %s", what, snapshot)
		}
	}
}

func allTasksIn(keys []string, want ...pluginpb.TaskState) func(map[string]pluginpb.TaskState) bool {
	return func(states map[string]pluginpb.TaskState) bool {
		for _, k := range keys {
			ok := false
			for _, w := range want {
				ok = ok || states[k] == w
			}
			if !ok {
				return false
			}
		}
		return true
	}
}

// prepare prepares the plugin for jobID and returns its data address.
func (h *pluginHarness) prepare(jobID string) string {
	h.t.Helper()
	resp, err := h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{JobId: jobID, DataHost: "127.0.0.1"})
	if err != nil {
		h.t.Fatalf("prepare: %v", err)
	}
	return resp.GetDataAddr()
}

// deployAll deploys every task of the job at parallelism p onto the plugin
// and returns the tasks' names.
func (h *pluginHarness) deployAll(jobID string, attempt uint64, p uint32, addr string) []string {
	h.t.Helper()
	req := h.deployRequest(jobID, attempt, p, addr)
	if _, err := h.client.Deploy(context.Background(), req); err != nil {
		h.t.Fatalf("deploy: %v", err)
	}
	var names []string
	for _, t := range req.Tasks {
		names = append(names, pluginTaskName(t))
	}
	return names
}

func (h *pluginHarness) deployRequest(jobID string, attempt uint64, p uint32, addr string) *pluginpb.DeployRequest {
	h.t.Helper()
	d, err := h.client.Describe(context.Background(), &pluginpb.DescribeRequest{Parallelism: p})
	if err != nil {
		h.t.Fatalf("describe: %v", err)
	}
	req := &pluginpb.DeployRequest{JobId: jobID, Attempt: attempt, Parallelism: p}
	for _, c := range d.GetGraph().GetChains() {
		for s := range c.GetParallelism() {
			req.Tasks = append(req.Tasks, &pluginpb.TaskID{JobId: jobID, Attempt: attempt, Chain: c.GetId(), Subtask: s})
			req.Placement = append(req.Placement, &pluginpb.Placement{Chain: c.GetId(), Subtask: s, DataAddr: addr})
		}
	}
	return req
}

type pluginKV struct {
	K, V int
}

// pluginSumJob is FromSlice -> Map -> KeyBy -> Reduce -> a collecting sink; the
// sink's last record per key is the key's sum.
func pluginSumJob(n int, panicAt int) (*Job, *Collected[pluginKV]) {
	job := NewJob("sum")
	records := make([]int, n)
	for i := range records {
		records[i] = i + 1
	}
	src := FromSource(job, FromSlice(records), WithUID("src"))
	pairs := Map(src, func(x int) pluginKV {
		if x == panicAt {
			panic(fmt.Sprintf("boom at record %d", x))
		}
		return pluginKV{K: x % 7, V: 2 * x}
	}, WithUID("pair"))
	sums := Reduce(KeyBy(pairs, func(r pluginKV) int { return r.K }), func(a, b pluginKV) pluginKV { return pluginKV{K: a.K, V: a.V + b.V} }, WithUID("sum"))
	out := Collect[pluginKV]()
	SinkTo(sums, out, WithUID("out"))
	return job, out
}

func TestTaskExecutorDescribe(t *testing.T) {
	job, _ := pluginSumJob(10, -1)
	h := newPluginHarness(t, job)
	for _, p := range []uint32{0, 1, 3} {
		t.Run(fmt.Sprint("parallelism-", p), func(t *testing.T) {
			resp, err := h.client.Describe(context.Background(), &pluginpb.DescribeRequest{Parallelism: p})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Describe(job, int(p))
			if err != nil {
				t.Fatal(err)
			}
			want := &pluginpb.JobGraph{}
			if err := protojson.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(resp.GetGraph(), want) {
				t.Fatalf("graph over the plugin boundary:\n%v\nwant (as Describe):\n%v", resp.GetGraph(), want)
			}
			if got := resp.GetGraph().GetSdkVersion(); got != Version {
				t.Fatalf("sdk version %q, want %q", got, Version)
			}
		})
	}

	bad := NewJob("bad")
	Reduce(KeyBy(FromSource(bad, FromSlice([]int{1}), WithUID("source")), func(x int) int { return x }), func(a, b int) int { return a + b })
	h = newPluginHarness(t, bad)
	_, err := h.client.Describe(context.Background(), &pluginpb.DescribeRequest{Parallelism: 1})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "needs a stable uid") {
		t.Fatalf("describe of an invalid job: %v, want InvalidArgument naming the missing uid", err)
	}
}

func TestTaskExecutorPrepare(t *testing.T) {
	job, _ := pluginSumJob(10, -1)
	h := newPluginHarness(t, job)
	resp, err := h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{JobId: "j1", DataHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSdkVersion() != Version {
		t.Fatalf("sdk version %q, want %q", resp.GetSdkVersion(), Version)
	}
	host, port, err := net.SplitHostPort(resp.GetDataAddr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("data address %q (%v): want 127.0.0.1 and a port", resp.GetDataAddr(), err)
	}
	// Something listens there.
	conn, err := net.DialTimeout("tcp", resp.GetDataAddr(), time.Second)
	if err != nil {
		t.Fatalf("dial the data address: %v", err)
	}
	_ = conn.Close()

	again, err := h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{JobId: "j1", DataHost: "127.0.0.1"})
	if err != nil || again.GetDataAddr() != resp.GetDataAddr() {
		t.Fatalf("prepare again: %v %v, want the same address %s", again, err, resp.GetDataAddr())
	}
	_, err = h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{JobId: "j2"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "prepared for job j1") {
		t.Fatalf("prepare another job: %v, want FailedPrecondition", err)
	}
	_, err = h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("prepare without a job id: %v, want InvalidArgument", err)
	}
}

func TestTaskExecutorRunsJob(t *testing.T) {
	const n = 5000
	job, out := pluginSumJob(n, -1)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	tasks := h.deployAll("j1", 1, 2, addr)
	if len(tasks) != 4 {
		t.Fatalf("deployed %d tasks (%v), want 4: two chains at parallelism 2", len(tasks), tasks)
	}
	h.waitFor(20*time.Second, "every task FINISHED", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_FINISHED))

	h.mu.Lock()
	for _, k := range tasks {
		got := h.order[k]
		want := []pluginpb.TaskState{pluginpb.TaskState_TASK_STATE_DEPLOYING, pluginpb.TaskState_TASK_STATE_RUNNING, pluginpb.TaskState_TASK_STATE_FINISHED}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("task %s went through %v, want %v", k, got, want)
		}
	}
	for _, ev := range h.events {
		if ev.GetAtMs() == 0 || ev.GetError() != "" {
			t.Errorf("event %v: want a time and no error", ev)
		}
	}
	h.mu.Unlock()

	want := map[int]int{}
	for x := 1; x <= n; x++ {
		want[x%7] += 2 * x
	}
	got := map[int]int{}
	for _, r := range out.Records() {
		got[r.K] = max(got[r.K], r.V)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sums %v, want %v", got, want)
	}
	if len(out.Records()) != n {
		t.Fatalf("the sink saw %d records, want %d", len(out.Records()), n)
	}

	// A second deployment of the same attempt is refused, and runs nothing.
	_, err := h.client.Deploy(context.Background(), h.deployRequest("j1", 1, 2, addr))
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "already deployed") {
		t.Fatalf("deploy twice: %v, want AlreadyExists", err)
	}
	if len(out.Records()) != n {
		t.Fatalf("the refused deployment ran: %d records", len(out.Records()))
	}
}

func TestTaskExecutorRefusesBadDeployments(t *testing.T) {
	job, _ := pluginSumJob(10, -1)
	h := newPluginHarness(t, job)
	req := h.deployRequest("j1", 1, 2, "127.0.0.1:1")
	_, err := h.client.Deploy(context.Background(), req)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not prepared") {
		t.Fatalf("deploy before prepare: %v, want FailedPrecondition", err)
	}
	addr := h.prepare("j1")
	cases := []struct {
		name string
		edit func(r *pluginpb.DeployRequest)
		code codes.Code
		msg  string
	}{
		{"other job", func(r *pluginpb.DeployRequest) {
			r.JobId = "j2"
			for _, t := range r.Tasks {
				t.JobId = "j2"
			}
		}, codes.FailedPrecondition, "prepared for job j1"},
		{"no tasks", func(r *pluginpb.DeployRequest) { r.Tasks = nil }, codes.InvalidArgument, "no tasks"},
		{"unknown chain", func(r *pluginpb.DeployRequest) { r.Tasks[0].Chain = 9 }, codes.InvalidArgument, "no chain 9"},
		{"subtask out of range", func(r *pluginpb.DeployRequest) { r.Tasks[0].Subtask = 2 }, codes.InvalidArgument, "no subtask 2"},
		{"task of another attempt", func(r *pluginpb.DeployRequest) { r.Tasks[0].Attempt = 7 }, codes.InvalidArgument, "attempt 7"},
		{"task twice", func(r *pluginpb.DeployRequest) { r.Tasks = append(r.Tasks, r.Tasks[0]) }, codes.InvalidArgument, "listed twice"},
		{"placement out of range", func(r *pluginpb.DeployRequest) { r.Placement[0].Chain = 5 }, codes.InvalidArgument, "placement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := h.deployRequest("j1", 1, 2, addr)
			c.edit(req)
			_, err := h.client.Deploy(context.Background(), req)
			if status.Code(err) != c.code || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("deploy: %v, want %v with %q", err, c.code, c.msg)
			}
		})
	}
	// None of the refused deployments took the attempt.
	tasks := h.deployAll("j1", 1, 2, addr)
	h.waitFor(20*time.Second, "every task FINISHED", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_FINISHED))
}

// A job split over two plugin processes exchanges its records over the
// network exchange.
func TestTaskExecutorJobAcrossTwoProcesses(t *testing.T) {
	const n = 20000
	job, out := pluginSumJob(n, -1)
	h1, h2 := newPluginHarness(t, job), newPluginHarness(t, job)
	addr1, addr2 := h1.prepare("j1"), h2.prepare("j1")
	if addr1 == addr2 {
		t.Fatalf("both plugins listen at %s", addr1)
	}
	// Subtask 0 of every chain runs in the first process, subtask 1 in the
	// second: the keyed edge crosses between them.
	all := h1.deployRequest("j1", 1, 2, "")
	reqs := []*pluginpb.DeployRequest{
		{JobId: "j1", Attempt: 1, Parallelism: 2},
		{JobId: "j1", Attempt: 1, Parallelism: 2},
	}
	addrs := []string{addr1, addr2}
	for _, r := range reqs {
		for _, pl := range all.Placement {
			r.Placement = append(r.Placement, &pluginpb.Placement{Chain: pl.Chain, Subtask: pl.Subtask, DataAddr: addrs[pl.Subtask]})
		}
	}
	var tasks [2][]string
	for _, task := range all.Tasks {
		reqs[task.Subtask].Tasks = append(reqs[task.Subtask].Tasks, task)
		tasks[task.Subtask] = append(tasks[task.Subtask], pluginTaskName(task))
	}
	for i, h := range []*pluginHarness{h1, h2} {
		if _, err := h.client.Deploy(context.Background(), reqs[i]); err != nil {
			t.Fatalf("deploy on plugin %d: %v", i, err)
		}
	}
	h1.waitFor(30*time.Second, "the first process's tasks FINISHED", allTasksIn(tasks[0], pluginpb.TaskState_TASK_STATE_FINISHED))
	h2.waitFor(30*time.Second, "the second process's tasks FINISHED", allTasksIn(tasks[1], pluginpb.TaskState_TASK_STATE_FINISHED))
	want := map[int]int{}
	for x := 1; x <= n; x++ {
		want[x%7] += 2 * x
	}
	got := map[int]int{}
	for _, r := range out.Records() {
		got[r.K] = max(got[r.K], r.V)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sums %v, want %v", got, want)
	}
}

// endlessPluginSource is a source that never ends: it emits a record now
// and then.
type endlessPluginSource struct{}

func (endlessPluginSource) Splits(_ context.Context, sc SourceContext) ([]Split, error) {
	splits := make([]Split, sc.Parallelism())
	for i := range splits {
		splits[i] = Split{ID: fmt.Sprint(i)}
	}
	return splits, nil
}

func (endlessPluginSource) Open(context.Context, SourceContext, []Split) (Reader[int], error) {
	return &endlessPluginReader{}, nil
}

type endlessPluginReader struct{ n int }

func (r *endlessPluginReader) Read(_ context.Context, out Collector[int]) (ReadStatus, error) {
	r.n++
	out.Collect(r.n)
	return Idle, nil
}

func (r *endlessPluginReader) Snapshot() ([]Split, error) { return nil, nil }
func (r *endlessPluginReader) Close() error               { return nil }

func pluginEndlessJob() *Job {
	job := NewJob("endless")
	s := Map(FromSource[int](job, endlessPluginSource{}, WithUID("src")), func(x int) int { return x * 2 })
	SinkTo(Rebalance(s), Collect[int](), WithUID("out"), WithParallelism(1))
	return job
}

func TestTaskExecutorCancel(t *testing.T) {
	h := newPluginHarness(t, pluginEndlessJob())
	addr := h.prepare("j1")
	tasks := h.deployAll("j1", 3, 2, addr)
	h.waitFor(20*time.Second, "every task RUNNING", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_RUNNING))

	// Cancelling another job does nothing.
	if _, err := h.client.Cancel(context.Background(), &pluginpb.CancelRequest{JobId: "other"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	h.waitFor(time.Second, "tasks still RUNNING", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_RUNNING))

	if _, err := h.client.Cancel(context.Background(), &pluginpb.CancelRequest{JobId: "j1"}); err != nil {
		t.Fatal(err)
	}
	h.waitFor(20*time.Second, "every task CANCELED", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_CANCELED))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range tasks {
		if h.errs[k] != "" {
			t.Errorf("task %s cancelled with error %q", k, h.errs[k])
		}
	}
}

func TestTaskExecutorTaskPanicFailsTheTask(t *testing.T) {
	job, _ := pluginSumJob(5000, 2500)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	tasks := h.deployAll("j1", 1, 2, addr)
	h.waitFor(20*time.Second, "every task ended", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_FAILED,
		pluginpb.TaskState_TASK_STATE_CANCELED, pluginpb.TaskState_TASK_STATE_FINISHED))
	h.mu.Lock()
	defer h.mu.Unlock()
	var failed []string
	for _, k := range tasks {
		if h.states[k] == pluginpb.TaskState_TASK_STATE_FAILED {
			failed = append(failed, k)
			if !strings.Contains(h.errs[k], "panic: boom at record 2500") {
				t.Errorf("task %s failed with %q, want the panic's message", k, h.errs[k])
			}
		}
	}
	// Record 2500 is read by one source subtask: that task fails, and the
	// executor cancels the others (the other source may have finished).
	if len(failed) != 1 {
		t.Fatalf("failed tasks %v, want exactly the one that panicked; states %v", failed, h.states)
	}
}

// Events reaches a subscriber that connects after the tasks ran, and a
// second subscriber too.
func TestTaskExecutorEventsReplayForLateSubscribers(t *testing.T) {
	job, _ := pluginSumJob(100, -1)
	h := newPluginHarness(t, job)
	addr := h.prepare("j1")
	tasks := h.deployAll("j1", 1, 1, addr)
	h.waitFor(20*time.Second, "every task FINISHED", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_FINISHED))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := h.client.Events(ctx, &pluginpb.EventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	want := len(h.events)
	h.mu.Unlock()
	for i := range want {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		h.mu.Lock()
		if !proto.Equal(ev, h.events[i]) {
			t.Errorf("late event %d: %v, want %v", i, ev, h.events[i])
		}
		h.mu.Unlock()
	}
	cancel()
	if _, err := stream.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("after cancel: %v, want a cancelled stream", err)
	}
}
