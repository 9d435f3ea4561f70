package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/controlplane/server"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// cpWorker is a fake worker that heartbeats, runs tasks until they are
// cancelled or failed, and answers checkpoint triggers the way a real one
// does: every running task writes its state into the checkpoint directory
// and acknowledges through the control plane.
type cpWorker struct {
	eddypb.UnimplementedWorkerServiceServer
	t    *testing.T
	id   string
	addr string
	cps  []eddypb.ControlPlaneClient // every node: calls go to the first that answers

	// ack, when set, decides a task's answer to a trigger: decline with
	// a cause, or stay silent.
	ack func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) (decline string, silent bool)
	// noState makes tasks acknowledge without writing state.
	noState bool
	// carry, when set and returning a name, makes a task acknowledge with
	// that file (relative to the checkpoint's directory) instead of
	// writing one: a file carried over from an earlier checkpoint.
	carry func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) string
	// shared, when set, gives a task's incremental state: the shared
	// files its state lists (refs) and those it writes first (uploads),
	// both named relative to the checkpoint's directory
	// ("../shared/chk-<id>/<file>").
	shared func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) (refs, uploads []string)
	// finish, when set, decides on a completion which tasks finish (a
	// task whose input ended finishes once a checkpoint it acknowledged
	// after its end completed): they acknowledge nothing more and are
	// reported FINISHED.
	finish func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) bool
	// onDeploy, when set, may fail a deployed task at once.
	onDeploy func(req *eddypb.DeployTasksRequest) (fail string, restoreFailed bool)
	// onPrepare, when set, may refuse to prepare.
	onPrepare func(req *eddypb.PrepareJobRequest) error

	// hb is held while the worker heartbeats; down, set under it, stops
	// the heartbeats of a stopped worker.
	hb   sync.Mutex
	down bool

	mu       sync.Mutex
	gs       *grpc.Server
	prepared []*eddypb.PrepareJobRequest
	deployed []*eddypb.DeployTasksRequest
	running  map[string][]*eddypb.TaskRef // by job/attempt
	requests []*pluginpb.CheckpointRequest
	cancels  int
	// acks tracks the goroutines that write state and acknowledge, so that
	// the test's cleanup waits for them before removing its directories.
	acks sync.WaitGroup
}

func startCPWorker(t *testing.T, c *cptest.Cluster, id string, slots uint32, setup func(*cpWorker)) *cpWorker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &cpWorker{t: t, id: id, addr: ln.Addr().String(), running: map[string][]*eddypb.TaskRef{}}
	if setup != nil {
		setup(w)
	}
	for _, s := range c.Running() {
		conn, err := grpc.NewClient("passthrough:///"+s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		w.cps = append(w.cps, eddypb.NewControlPlaneClient(conn))
	}
	w.serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		w.mu.Lock()
		gs := w.gs
		w.mu.Unlock()
		gs.Stop()
		w.acks.Wait()
	})
	if err := w.register(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			w.hb.Lock()
			if !w.down {
				var resp *eddypb.HeartbeatResponse
				_ = w.call(ctx, func(cp eddypb.ControlPlaneClient) (err error) {
					resp, err = cp.Heartbeat(ctx, &eddypb.HeartbeatRequest{WorkerId: w.id, InstanceId: w.id + "-i"})
					return err
				})
				if resp.GetReregister() {
					_ = w.register(ctx)
				}
			}
			w.hb.Unlock()
		}
	}()
	return w
}

func (w *cpWorker) serve(ln net.Listener) {
	gs := grpc.NewServer()
	eddypb.RegisterWorkerServiceServer(gs, w)
	w.mu.Lock()
	w.gs = gs
	w.mu.Unlock()
	go func() { _ = gs.Serve(ln) }()
}

// stop makes the worker vanish as a killed process does: no heartbeat
// goes out once it returns, and its address refuses connections.
func (w *cpWorker) stop() {
	w.hb.Lock()
	w.down = true
	w.hb.Unlock()
	w.mu.Lock()
	gs := w.gs
	w.mu.Unlock()
	gs.Stop()
}

// resume brings a stopped worker back on its address, as the same
// instance: a worker that was cut off, not restarted.
func (w *cpWorker) resume() {
	w.t.Helper()
	var ln net.Listener
	cptest.WaitFor(w.t, 5*time.Second, func() (err error) {
		ln, err = net.Listen("tcp", w.addr)
		return err
	})
	w.serve(ln)
	w.hb.Lock()
	w.down = false
	w.hb.Unlock()
}

func (w *cpWorker) register(ctx context.Context) error {
	return w.call(ctx, func(cp eddypb.ControlPlaneClient) error {
		_, err := cp.RegisterWorker(ctx, &eddypb.RegisterWorkerRequest{WorkerId: w.id, Address: w.addr, Slots: 4, InstanceId: w.id + "-i"})
		return err
	})
}

// call tries every node in turn, a few rounds, as a worker does with its
// list of control plane addresses.
func (w *cpWorker) call(ctx context.Context, f func(eddypb.ControlPlaneClient) error) error {
	var err error
	for range 20 {
		for _, cp := range w.cps {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = f(cp)
			cancel()
			if err == nil || ctx.Err() != nil {
				return err
			}
			_ = cctx
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return err
}

func key(job string, attempt uint64) string { return fmt.Sprintf("%s/%d", job, attempt) }

func (w *cpWorker) report(job string, attempt uint64, tasks []*eddypb.TaskRef, st eddypb.TaskState, msg string, restoreFailed bool) {
	var ts []*eddypb.TaskStatus
	for _, t := range tasks {
		ts = append(ts, &eddypb.TaskStatus{JobId: job, Attempt: attempt, Chain: t.Chain, Subtask: t.Subtask, State: st, Error: msg, RestoreFailed: restoreFailed})
	}
	_ = w.call(context.Background(), func(cp eddypb.ControlPlaneClient) error {
		_, err := cp.ReportTasks(context.Background(), &eddypb.ReportTasksRequest{WorkerId: w.id, InstanceId: w.id + "-i", Tasks: ts})
		return err
	})
}

func (w *cpWorker) PrepareJob(_ context.Context, req *eddypb.PrepareJobRequest) (*eddypb.PrepareJobResponse, error) {
	w.mu.Lock()
	w.prepared = append(w.prepared, req)
	w.mu.Unlock()
	if w.onPrepare != nil {
		if err := w.onPrepare(req); err != nil {
			return nil, err
		}
	}
	return &eddypb.PrepareJobResponse{DataAddr: "data-" + w.id}, nil
}

func (w *cpWorker) DeployTasks(_ context.Context, req *eddypb.DeployTasksRequest) (*eddypb.DeployTasksResponse, error) {
	w.mu.Lock()
	w.deployed = append(w.deployed, req)
	w.running[key(req.JobId, req.Attempt)] = req.Tasks
	w.mu.Unlock()
	go func() {
		w.report(req.JobId, req.Attempt, req.Tasks, eddypb.TaskState_TASK_STATE_RUNNING, "", false)
		if w.onDeploy != nil {
			if msg, rf := w.onDeploy(req); msg != "" {
				w.failTask(req.JobId, req.Attempt, msg, rf)
			}
		}
	}()
	return &eddypb.DeployTasksResponse{}, nil
}

// failTask fails the first task the worker runs of an attempt.
func (w *cpWorker) failTask(job string, attempt uint64, msg string, restoreFailed bool) bool {
	w.mu.Lock()
	tasks := w.running[key(job, attempt)]
	w.mu.Unlock()
	if len(tasks) == 0 {
		return false
	}
	w.report(job, attempt, tasks[:1], eddypb.TaskState_TASK_STATE_FAILED, msg, restoreFailed)
	return true
}

func (w *cpWorker) CancelTasks(_ context.Context, req *eddypb.CancelTasksRequest) (*eddypb.CancelTasksResponse, error) {
	w.mu.Lock()
	w.cancels++
	tasks := w.running[key(req.JobId, req.Attempt)]
	delete(w.running, key(req.JobId, req.Attempt))
	w.mu.Unlock()
	go w.report(req.JobId, req.Attempt, tasks, eddypb.TaskState_TASK_STATE_CANCELED, "", false)
	return &eddypb.CancelTasksResponse{}, nil
}

func (w *cpWorker) Checkpoint(_ context.Context, req *pluginpb.CheckpointRequest) (*pluginpb.CheckpointResponse, error) {
	w.mu.Lock()
	w.requests = append(w.requests, req)
	tasks := slices.Clone(w.running[key(req.JobId, req.Attempt)])
	stop := false
	if req.Action == pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE {
		for _, r := range w.requests {
			stop = stop || (r.Action == pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER && r.CheckpointId == req.CheckpointId && r.JobId == req.JobId && r.Stop)
		}
		if stop {
			delete(w.running, key(req.JobId, req.Attempt))
		} else if w.finish != nil {
			var left []*eddypb.TaskRef
			finished := tasks[:0]
			for _, t := range tasks {
				if w.finish(req, t) {
					finished = append(finished, t)
				} else {
					left = append(left, t)
				}
			}
			w.running[key(req.JobId, req.Attempt)] = left
			tasks, stop = finished, len(finished) > 0
		}
	}
	w.mu.Unlock()
	if stop {
		// Stop with savepoint: the tasks finish once it completed; or
		// those that finish.
		go w.report(req.JobId, req.Attempt, tasks, eddypb.TaskState_TASK_STATE_FINISHED, "", false)
	}
	if req.Action != pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER {
		return &pluginpb.CheckpointResponse{}, nil
	}
	w.acks.Add(1)
	go func() {
		defer w.acks.Done()
		ctx := context.Background()
		var st storage.Store
		var err error
		if !w.noState {
			st, err = storage.Open(ctx, req.Url)
		}
		for _, t := range tasks {
			ack := &pluginpb.CheckpointAck{CheckpointId: req.CheckpointId}
			if w.ack != nil {
				decline, silent := w.ack(req, t)
				if silent {
					continue
				}
				ack.Error = decline
			}
			if ack.Error == "" && !w.noState {
				uid := "src"
				if t.Chain == 1 {
					uid = "count"
				}
				name := fmt.Sprintf("%s-%d", uid, t.Subtask)
				var info storage.Info
				if w.carry != nil {
					if c := w.carry(req, t); c != "" {
						ack.Operators = []*pluginpb.OperatorSubtaskState{{Uid: uid, Subtask: t.Subtask, File: c, Size: 100 + int64(t.Subtask)}}
						goto send
					}
				}
				if err == nil {
					info, err = st.Put(ctx, name, strings.NewReader(strings.Repeat("s", 100+int(t.Subtask))))
				}
				var refs []string
				if err == nil && w.shared != nil {
					var uploads []string
					refs, uploads = w.shared(req, t)
					err = putShared(ctx, req.Url, uploads)
				}
				if err != nil {
					ack.Error = err.Error()
				} else {
					ack.Operators = []*pluginpb.OperatorSubtaskState{{Uid: uid, Subtask: t.Subtask, File: name, Size: info.Size, Shared: refs}}
				}
			}
		send:
			_ = w.call(ctx, func(cp eddypb.ControlPlaneClient) error {
				_, err := cp.AcknowledgeCheckpoint(ctx, &eddypb.AcknowledgeCheckpointRequest{
					WorkerId: w.id, JobId: req.JobId, Attempt: req.Attempt, Chain: t.Chain, Subtask: t.Subtask, Ack: ack,
				})
				return err
			})
		}
	}()
	return &pluginpb.CheckpointResponse{}, nil
}

// putShared writes files named relative to checkpoint directory url, in
// the job's checkpoint directory beside it.
func putShared(ctx context.Context, url string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	st, err := storage.Open(ctx, url[:strings.LastIndex(url, "/")])
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := st.Put(ctx, strings.TrimPrefix(n, "../"), strings.NewReader("sst "+n)); err != nil {
			return err
		}
	}
	return nil
}

func (w *cpWorker) deploys() []*eddypb.DeployTasksRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.deployed)
}

func (w *cpWorker) actions(a pluginpb.CheckpointAction) []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []uint64
	for _, r := range w.requests {
		if r.Action == a {
			out = append(out, r.CheckpointId)
		}
	}
	return out
}

// cpGraph is testGraph's two chains with checkpointing and a restart
// strategy.
func cpGraph(p uint32, cfg *pluginpb.CheckpointConfig, restart *pluginpb.RestartStrategy) json.RawMessage {
	var g pluginpb.JobGraph
	if err := protojson.Unmarshal(testGraph(p, "count"), &g); err != nil {
		panic(err)
	}
	g.Checkpointing = cfg
	g.Restart = restart
	b, err := protojson.Marshal(&g)
	if err != nil {
		panic(err)
	}
	return b
}

// sharedStorage makes every node of a test cluster use one storage folder,
// and returns it.
func sharedStorage(t *testing.T) (string, cptest.Option) {
	dir := t.TempDir()
	u, err := storage.FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, func(c *server.Config) { c.Storage = u }
}

func waitCheckpoints(t *testing.T, cl *client.Client, id string, timeout time.Duration, ok func(api.Checkpoints) error) api.Checkpoints {
	t.Helper()
	var cps api.Checkpoints
	cptest.WaitFor(t, timeout, func() error {
		var err error
		if cps, err = cl.Checkpoints(context.Background(), id); err != nil {
			return err
		}
		return ok(cps)
	})
	return cps
}

func completedAtLeast(n uint64) func(api.Checkpoints) error {
	return func(c api.Checkpoints) error {
		if c.Counts.Completed < n {
			return fmt.Errorf("%d checkpoints completed, want %d (history %+v)", c.Counts.Completed, n, c.History)
		}
		return nil
	}
}

// chkDirs lists the checkpoint directories of a job that hold files, by id.
func chkDirs(t *testing.T, root, job string) map[uint64][]string {
	t.Helper()
	out := map[uint64][]string{}
	entries, err := os.ReadDir(filepath.Join(root, job))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var id uint64
		if _, err := fmt.Sscanf(e.Name(), "chk-%d", &id); err != nil {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(root, job, e.Name()))
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), ".sha256") && !strings.HasPrefix(f.Name(), ".") {
				out[id] = append(out[id], f.Name())
			}
		}
	}
	return out
}

func TestCheckpointsCompleteAndRetainExactlyN(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w1 := startCPWorker(t, c, "w1", 2, nil)
	w2 := startCPWorker(t, c, "w2", 2, nil)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "cp-job", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 2, TimeoutMs: 5000}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	// The job's checkpoint directory is passed to the tasks.
	for _, d := range append(w1.deploys(), w2.deploys()...) {
		if want, _ := storage.FileURL(filepath.Join(dir, "checkpoints", j.ID)); d.Checkpoints != want || d.Restore != nil {
			t.Fatalf("deployed with checkpoints %q (want %q) and restore %v", d.Checkpoints, want, d.Restore)
		}
	}
	waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(5))
	if _, err := cl.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "CANCELED")
	cps, err := cl.Checkpoints(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps.Retained) != 2 || cps.Latest == nil || cps.Latest.ID != cps.Retained[1].ID || cps.Config == nil || cps.Config.Retain != 2 || cps.Config.IntervalMs != 50 {
		t.Fatalf("checkpoints after cancel: %+v", cps)
	}
	if cps.Config.Restart.Strategy != "fixed-delay" || cps.Config.Restart.MaxAttempts != 0 {
		t.Errorf("default restart of a checkpointing job: %+v, want fixed-delay without limit", cps.Config.Restart)
	}
	for _, h := range cps.History {
		if h.Status == "COMPLETED" && (h.SizeBytes != 4*100+2 || h.URL == "" || h.CompletedAt.Before(h.TriggeredAt)) {
			t.Errorf("completed checkpoint %+v: want size %d", h, 4*100+2)
		}
	}
	// Storage holds exactly the retained checkpoints (and maybe the one
	// the cancel aborted), each complete with its metadata.
	root := filepath.Join(dir, "checkpoints")
	dirs := chkDirs(t, root, j.ID)
	st, err := storage.Open(context.Background(), "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cps.Retained {
		if len(dirs[r.ID]) != 5 {
			t.Errorf("retained checkpoint %d holds %v, want 4 state files and _metadata", r.ID, dirs[r.ID])
		}
		md, err := checkpoint.ReadMetadata(context.Background(), st, j.ID+"/"+checkpoint.Dir(r.ID))
		if err != nil {
			t.Fatalf("metadata of retained checkpoint %d: %v", r.ID, err)
		}
		if md.CheckpointId != r.ID || len(md.Operators) != 2 || md.Operators[0].Uid != "count" || len(md.Operators[0].Subtasks) != 2 ||
			md.Operators[0].Parallelism != 2 || md.Operators[0].MaxParallelism != 128 || md.Operators[1].Uid != "src" {
			t.Errorf("metadata of %d: %v", r.ID, md)
		}
	}
	for id, files := range dirs {
		if id < cps.Latest.ID && !slices.ContainsFunc(cps.Retained, func(r api.Checkpoint) bool { return r.ID == id }) {
			t.Errorf("dropped checkpoint %d still holds %v", id, files)
		}
	}
	// Every worker got every completion.
	for _, w := range []*cpWorker{w1, w2} {
		if got := w.actions(pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE); len(got) < 5 {
			t.Errorf("worker %s got completions %v", w.id, got)
		}
	}
}

func TestCheckpointDeclineTimeoutAndStorageErrorsKeepJobRunning(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.ack = func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) (string, bool) {
			switch req.CheckpointId {
			case 1:
				if t.Chain == 1 && t.Subtask == 0 {
					return "disk full", false
				}
			case 2:
				return "", t.Chain == 0 && t.Subtask == 1 // never acknowledged: expires
			}
			return "", false
		}
		w.noState = true
	})
	a := uploadFake(t, cl)
	// The job's checkpoint directory is a file for checkpoint 3: writing
	// its metadata fails.
	root := filepath.Join(dir, "checkpoints")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bad-job"), []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "bad-job", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, TimeoutMs: 400, TolerableFailures: 10}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	cps := waitCheckpoints(t, cl, j.ID, 20*time.Second, func(c api.Checkpoints) error {
		if c.Counts.Failed < 3 {
			return fmt.Errorf("%d failed", c.Counts.Failed)
		}
		return nil
	})
	byID := map[uint64]api.Checkpoint{}
	for _, h := range cps.History {
		byID[h.ID] = h
	}
	if h := byID[1]; h.Status != "FAILED" || !strings.Contains(h.Failure, "declined by task count (1/2): disk full") {
		t.Errorf("checkpoint 1: %+v, want declined", h)
	}
	if h := byID[2]; h.Status != "FAILED" || !strings.Contains(h.Failure, "expired") || h.DurationMs < 400 {
		t.Errorf("checkpoint 2: %+v, want expired after 400ms", h)
	}
	if h := byID[3]; h.Status != "FAILED" || !strings.Contains(h.Failure, "write checkpoint metadata") {
		t.Errorf("checkpoint 3: %+v, want the storage error", h)
	}
	if j, _ := cl.Job(context.Background(), j.ID); j.Status != "RUNNING" || j.Attempt != 1 {
		t.Fatalf("job %s at attempt %d after failed checkpoints", j.Status, j.Attempt)
	}
	// Storage back: the next checkpoint completes.
	if err := os.Remove(filepath.Join(root, "bad-job")); err != nil {
		t.Fatal(err)
	}
	cps = waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(1))
	if cps.Counts.ConsecutiveFailures != 0 {
		t.Errorf("consecutive failures %d after a completion", cps.Counts.ConsecutiveFailures)
	}
}

func TestTooManyCheckpointFailuresRestartTheJob(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.ack = func(*pluginpb.CheckpointRequest, *eddypb.TaskRef) (string, bool) { return "no", false }
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(1, &pluginpb.CheckpointConfig{IntervalMs: 30, TolerableFailures: 2},
			&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 50, MaxAttempts: 1})})
	if err != nil {
		t.Fatal(err)
	}
	j = waitStatus(t, cl, j.ID, "FAILED")
	if j.Restarts != 1 || j.Attempt != 2 || !strings.Contains(j.StatusReason, "3 consecutive checkpoints failed (2 tolerated)") || !strings.Contains(j.StatusReason, "after 1 restarts") {
		t.Fatalf("job %+v", j)
	}
}

// restoreOf returns the checkpoint id an attempt was deployed with.
func restoreOf(ws []*cpWorker, attempt uint64) (uint64, bool) {
	for _, w := range ws {
		for _, d := range w.deploys() {
			if d.Attempt == attempt {
				return d.Restore.GetCheckpointId(), true
			}
		}
	}
	return 0, false
}

func TestTaskFailureRestartsFromLatestCheckpoint(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w1 := startCPWorker(t, c, "w1", 2, nil)
	w2 := startCPWorker(t, c, "w2", 2, nil)
	ws := []*cpWorker{w1, w2}
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 3},
			&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 100, MaxAttempts: 2})})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := uint64(1); attempt <= 3; attempt++ {
		cptest.WaitFor(t, 10*time.Second, func() error {
			j, err := cl.Job(context.Background(), j.ID)
			if err != nil {
				return err
			}
			if j.Status != "RUNNING" || j.Attempt != attempt {
				return fmt.Errorf("job %s at attempt %d, want RUNNING at %d", j.Status, j.Attempt, attempt)
			}
			return nil
		})
		before, _ := cl.Checkpoints(context.Background(), j.ID)
		waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(before.Counts.Completed+2))
		if attempt > 1 {
			// The attempt restored the latest checkpoint its predecessor
			// completed.
			cps, _ := cl.Checkpoints(context.Background(), j.ID)
			var want uint64
			for _, h := range cps.History {
				if h.Status == "COMPLETED" && h.Attempt == attempt-1 {
					want = max(want, h.ID)
				}
			}
			got, _ := restoreOf(ws, attempt)
			if got == 0 || got != want {
				t.Fatalf("attempt %d restored checkpoint %d, want %d (the latest of attempt %d)", attempt, got, want, attempt-1)
			}
			if jj, _ := cl.Job(context.Background(), j.ID); jj.RestoredCheckpoint != got || jj.Restarts != uint32(attempt-1) {
				t.Fatalf("job %+v: want restored %d and %d restarts", jj, got, attempt-1)
			}
		}
		if !w1.failTask(j.ID, attempt, "boom", false) && !w2.failTask(j.ID, attempt, "boom", false) {
			t.Fatal("no task to fail")
		}
	}
	j = waitStatus(t, cl, j.ID, "FAILED")
	if j.Restarts != 2 || j.Attempt != 3 || !strings.Contains(j.StatusReason, "failed: boom (after 2 restarts)") {
		t.Fatalf("job after the last allowed restart: %+v", j)
	}
}

func TestRestoreFailureFallsBackToThePreviousCheckpoint(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	var mu sync.Mutex
	var corrupt uint64 // the checkpoint that fails to restore
	w1 := startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.onDeploy = func(req *eddypb.DeployTasksRequest) (string, bool) {
			mu.Lock()
			defer mu.Unlock()
			if req.Restore != nil && req.Restore.CheckpointId == corrupt {
				return "checkpoint file count-0: checksum mismatch", true
			}
			return "", false
		}
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 3},
			&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 50})})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(3))
	// Fail the job: attempt 2 restores the latest checkpoint, which is
	// "corrupt"; attempt 3 must restore the one before.
	if _, err := cl.TriggerCheckpoint(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	cps := waitCheckpoints(t, cl, j.ID, 10*time.Second, func(c api.Checkpoints) error {
		if c.InProgress != nil {
			return errors.New("checkpoint in progress")
		}
		return nil
	})
	mu.Lock()
	corrupt = cps.Latest.ID
	mu.Unlock()
	prev := cps.Retained[len(cps.Retained)-2].ID
	w1.failTask(j.ID, 1, "boom", false)
	cptest.WaitFor(t, 10*time.Second, func() error {
		if _, ok := restoreOf([]*cpWorker{w1}, 3); !ok {
			return errors.New("attempt 3 not deployed")
		}
		return nil
	})
	if got, _ := restoreOf([]*cpWorker{w1}, 2); got != corrupt {
		t.Fatalf("attempt 2 restored %d, want the latest %d", got, corrupt)
	}
	if got, _ := restoreOf([]*cpWorker{w1}, 3); got != prev {
		t.Fatalf("attempt 3 restored %d, want %d (the one before the unreadable %d)", got, prev, corrupt)
	}
	cps, _ = cl.Checkpoints(context.Background(), j.ID)
	for _, h := range cps.History {
		if h.ID == corrupt && (h.Status != "DISCARDED" || !strings.Contains(h.Failure, "checksum mismatch")) {
			t.Errorf("unreadable checkpoint %+v, want DISCARDED with the cause", h)
		}
	}
	if slices.ContainsFunc(cps.Retained, func(r api.Checkpoint) bool { return r.ID == corrupt }) {
		t.Errorf("unreadable checkpoint %d still retained", corrupt)
	}
}

func TestManualCheckpointAndRefusals(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, nil)
	a := uploadFake(t, cl)
	// A job that checkpoints only on request (interval 0).
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(1, &pluginpb.CheckpointConfig{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	for want := uint64(1); want <= 2; want++ {
		id, err := cl.TriggerCheckpoint(context.Background(), j.ID)
		if err != nil || id != want {
			t.Fatalf("trigger: %d, %v; want %d", id, err, want)
		}
		waitCheckpoints(t, cl, j.ID, 10*time.Second, completedAtLeast(want))
	}
	cps, _ := cl.Checkpoints(context.Background(), j.ID)
	if len(cps.History) != 2 || !cps.History[0].Manual || cps.History[0].ID != 2 {
		t.Errorf("history %+v: want 2 then 1, manual", cps.History)
	}
	// A job that does not checkpoint, and one that is not running.
	plain, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(1, "count")})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, plain.ID, "RUNNING")
	for _, id := range []string{plain.ID, j.ID} {
		if id == j.ID {
			if _, err := cl.Cancel(context.Background(), j.ID); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, cl, j.ID, "CANCELED")
		}
		_, err := cl.TriggerCheckpoint(context.Background(), id)
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != "checkpoint_not_possible" {
			t.Errorf("trigger on %s: %v, want 409 checkpoint_not_possible", id, err)
		}
	}
	if _, err := cl.TriggerCheckpoint(context.Background(), "nope"); err == nil {
		t.Error("trigger on an unknown job succeeded")
	}
	// --checkpoint-interval on a job that does not checkpoint is refused.
	_, err = cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(1, "count"), Config: map[string]string{"checkpoint.interval": "1s"}})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("checkpoint interval on a job without checkpointing: %v, want 400", err)
	}
}

func TestCheckpointIntervalOverride(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, nil)
	a := uploadFake(t, cl)
	// The graph checkpoints every hour; the override every 50ms.
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Config: map[string]string{"checkpoint.interval": "50ms", "restart.attempts": "3"},
		Graph: cpGraph(1, &pluginpb.CheckpointConfig{IntervalMs: 3600_000}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	cps := waitCheckpoints(t, cl, j.ID, 10*time.Second, completedAtLeast(2))
	if cps.Config.IntervalMs != 50 || cps.Config.Restart.MaxAttempts != 3 {
		t.Errorf("config %+v", cps.Config)
	}
}

// TestLeaderFailoverKeepsTasksAndCheckpoints: a new leader takes over the
// coordination without restarting anything: attempt numbers stay, no task
// is redeployed or cancelled, and checkpoints go on completing.
func TestLeaderFailoverKeepsTasksAndCheckpoints(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 3, opt)
	cl := client.New(c.HTTPAddrs())
	w1 := startCPWorker(t, c, "w1", 2, nil)
	w2 := startCPWorker(t, c, "w2", 2, nil)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 2}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	before := waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(3))

	old := c.Leader().ID()
	c.Kill(string(old))
	cptest.WaitFor(t, 10*time.Second, func() error {
		if l := c.Leader(); l.ID() == old {
			return errors.New("old leader still leads")
		}
		return nil
	})
	after := waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(before.Counts.Completed+3))
	jj, err := cl.Job(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if jj.Status != "RUNNING" || jj.Attempt != 1 || jj.Restarts != 0 {
		t.Fatalf("job after failover: %s at attempt %d with %d restarts, want RUNNING at 1", jj.Status, jj.Attempt, jj.Restarts)
	}
	for _, w := range []*cpWorker{w1, w2} {
		w.mu.Lock()
		deployed, cancels := len(w.deployed), w.cancels
		w.mu.Unlock()
		if deployed != 1 || cancels != 0 {
			t.Errorf("worker %s: %d deployments, %d cancels; want 1 and 0", w.id, deployed, cancels)
		}
	}
	// Ids go on increasing; a checkpoint the old leader left in progress
	// is recorded as aborted.
	for _, h := range after.History {
		if h.Status == "FAILED" && h.Failure != "aborted: leader changed" {
			t.Errorf("checkpoint %+v failed", h)
		}
	}
	if after.Latest.ID <= before.Latest.ID {
		t.Errorf("latest %d after failover, %d before", after.Latest.ID, before.Latest.ID)
	}
}

// TestCleanupKeepsFilesCarriedOverByRetainedCheckpoints: a task that
// finished acknowledges later checkpoints with its last state file, in an
// older checkpoint's directory; cleanup of that directory must leave the
// file.
func TestCleanupKeepsFilesCarriedOverByRetainedCheckpoints(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.carry = func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) string {
			if t.Chain == 0 && req.CheckpointId > 1 {
				return "../chk-1/src-0"
			}
			return ""
		}
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "carry", Artifact: &a,
		Graph: cpGraph(1, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 1}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	cps := waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(5))
	root := filepath.Join(dir, "checkpoints")
	cptest.WaitFor(t, 10*time.Second, func() error {
		dirs := chkDirs(t, root, j.ID)
		if got := dirs[1]; len(got) != 1 || got[0] != "src-0" {
			return fmt.Errorf("checkpoint 1 holds %v, want only the carried src-0", got)
		}
		return nil
	})
	st, err := storage.Open(context.Background(), "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	latest := cps.Latest.ID
	md, err := checkpoint.ReadMetadata(context.Background(), st, j.ID+"/"+checkpoint.Dir(latest))
	if err != nil {
		t.Fatal(err)
	}
	files, err := checkpoint.Files(md, checkpoint.Dir(latest))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := st.Stat(context.Background(), j.ID+"/"+f); err != nil {
			t.Errorf("file %s of retained checkpoint %d: %v", f, latest, err)
		}
	}
}
