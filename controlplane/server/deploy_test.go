package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// fakeWorker serves the worker API the JobManager deploys to, and reports
// task states back as a real worker's plugin would.
type fakeWorker struct {
	eddypb.UnimplementedWorkerServiceServer
	id     string
	addr   string
	cp     eddypb.ControlPlaneClient
	behave func(t *eddypb.TaskRef) (eddypb.TaskState, string) // end state of a task; RUNNING: until cancelled

	mu        sync.Mutex
	prepared  []*eddypb.PrepareJobRequest
	deployed  []*eddypb.DeployTasksRequest
	cancelled []*eddypb.CancelTasksRequest
}

func startFakeWorker(t *testing.T, c *cptest.Cluster, id string, slots uint32, behave func(*eddypb.TaskRef) (eddypb.TaskState, string)) *fakeWorker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	conn, err := grpc.NewClient("passthrough:///"+c.Leader().GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWorker{id: id, addr: ln.Addr().String(), cp: eddypb.NewControlPlaneClient(conn), behave: behave}
	eddypb.RegisterWorkerServiceServer(gs, w)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); conn.Close() })
	if _, err := w.cp.RegisterWorker(context.Background(), &eddypb.RegisterWorkerRequest{
		WorkerId: id, Address: w.addr, Slots: slots, InstanceId: id + "-i",
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *fakeWorker) report(job string, attempt uint64, tasks []*eddypb.TaskRef, state func(*eddypb.TaskRef) (eddypb.TaskState, string)) {
	var ts []*eddypb.TaskStatus
	for _, t := range tasks {
		st, msg := state(t)
		ts = append(ts, &eddypb.TaskStatus{JobId: job, Attempt: attempt, Chain: t.Chain, Subtask: t.Subtask, State: st, Error: msg})
	}
	_, _ = w.cp.ReportTasks(context.Background(), &eddypb.ReportTasksRequest{WorkerId: w.id, InstanceId: w.id + "-i", Tasks: ts})
}

func (w *fakeWorker) PrepareJob(_ context.Context, req *eddypb.PrepareJobRequest) (*eddypb.PrepareJobResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prepared = append(w.prepared, req)
	return &eddypb.PrepareJobResponse{DataAddr: "data-" + w.id}, nil
}

func (w *fakeWorker) DeployTasks(_ context.Context, req *eddypb.DeployTasksRequest) (*eddypb.DeployTasksResponse, error) {
	w.mu.Lock()
	w.deployed = append(w.deployed, req)
	w.mu.Unlock()
	go func() {
		w.report(req.JobId, req.Attempt, req.Tasks, func(*eddypb.TaskRef) (eddypb.TaskState, string) {
			return eddypb.TaskState_TASK_STATE_RUNNING, ""
		})
		var ending []*eddypb.TaskRef
		for _, t := range req.Tasks {
			if st, _ := w.behave(t); st != eddypb.TaskState_TASK_STATE_RUNNING {
				ending = append(ending, t)
			}
		}
		w.report(req.JobId, req.Attempt, ending, w.behave)
	}()
	return &eddypb.DeployTasksResponse{}, nil
}

func (w *fakeWorker) CancelTasks(_ context.Context, req *eddypb.CancelTasksRequest) (*eddypb.CancelTasksResponse, error) {
	w.mu.Lock()
	w.cancelled = append(w.cancelled, req)
	var tasks []*eddypb.TaskRef
	for _, d := range w.deployed {
		if d.JobId == req.JobId && d.Attempt == req.Attempt {
			tasks = append(tasks, d.Tasks...)
		}
	}
	w.mu.Unlock()
	go w.report(req.JobId, req.Attempt, tasks, func(*eddypb.TaskRef) (eddypb.TaskState, string) {
		return eddypb.TaskState_TASK_STATE_CANCELED, ""
	})
	return &eddypb.CancelTasksResponse{}, nil
}

func (w *fakeWorker) counts() (prepared, deployed, cancelled int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.prepared), len(w.deployed), len(w.cancelled)
}

// testGraph is a two-chain job: a source chain and a keyed chain.
func testGraph(p uint32, statefulUID string) json.RawMessage {
	g := &pluginpb.JobGraph{
		Name: "graph-job", MaxParallelism: 128,
		Vertices: []*pluginpb.Vertex{
			{Id: 0, Uid: "src", Name: "src", Kind: "source", Parallelism: p, Chain: 0},
			{Id: 1, Uid: statefulUID, Name: "count", Kind: "keyed_process", Parallelism: p, Stateful: true, Chain: 1,
				Inputs: []*pluginpb.Edge{{From: 0, Partitioning: pluginpb.Partitioning_PARTITIONING_HASH}}},
		},
		Chains: []*pluginpb.Chain{
			{Id: 0, Vertices: []uint32{0}, Parallelism: p, Name: "src"},
			{Id: 1, Vertices: []uint32{1}, Parallelism: p, Name: "count",
				Inputs: []*pluginpb.ChainEdge{{FromChain: 0, FromVertex: 0, ToVertex: 1, Partitioning: pluginpb.Partitioning_PARTITIONING_HASH}}},
		},
	}
	b, err := protojson.Marshal(g)
	if err != nil {
		panic(err)
	}
	return b
}

func uploadFake(t *testing.T, cl *client.Client) api.Artifact {
	t.Helper()
	path := t.TempDir() + "/job"
	if err := writeFile(path, "#!/bin/sh\necho not really a job\n"); err != nil {
		t.Fatal(err)
	}
	a, err := cl.UploadArtifact(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitStatus(t *testing.T, cl *client.Client, id, status string) api.Job {
	t.Helper()
	var j api.Job
	cptest.WaitFor(t, 10*time.Second, func() error {
		var err error
		j, err = cl.Job(context.Background(), id)
		if err != nil {
			return err
		}
		if j.Status != status {
			return fmt.Errorf("job is %s (%s), want %s", j.Status, j.StatusReason, status)
		}
		return nil
	})
	return j
}

func finishAll(*eddypb.TaskRef) (eddypb.TaskState, string) {
	return eddypb.TaskState_TASK_STATE_FINISHED, ""
}

func TestJobDeployedToWorkersAndFinishes(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	cl := client.New(c.HTTPAddrs())
	w1 := startFakeWorker(t, c, "w1", 2, finishAll)
	w2 := startFakeWorker(t, c, "w2", 2, finishAll)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(2, "count"), Args: []string{"--x", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != "graph-job" || j.Parallelism != 2 {
		t.Fatalf("job %+v: name and parallelism come from the graph", j)
	}
	j = waitStatus(t, cl, j.ID, "FINISHED")
	if j.Attempt != 1 || len(j.Execution) != 4 {
		t.Fatalf("finished job: attempt %d, %d tasks", j.Attempt, len(j.Execution))
	}
	for _, ts := range j.Execution {
		if ts.State != "FINISHED" {
			t.Fatalf("task %+v", ts)
		}
	}
	for _, w := range []*fakeWorker{w1, w2} {
		p, d, _ := w.counts()
		if p != 1 || d != 1 {
			t.Fatalf("worker %s: %d prepares, %d deploys", w.id, p, d)
		}
		w.mu.Lock()
		req := w.deployed[0]
		w.mu.Unlock()
		// One slot per worker: subtask i of both chains on slot i's worker.
		if len(req.Tasks) != 2 || req.Tasks[0].Subtask != req.Tasks[1].Subtask || len(req.Placement) != 4 {
			t.Fatalf("worker %s deployed %v with placement %v", w.id, req.Tasks, req.Placement)
		}
		if strings.Join(req.Args, " ") != "--x 1" || req.Parallelism != 2 {
			t.Fatalf("deploy request %v", req)
		}
		for _, pl := range req.Placement {
			if pl.DataAddr != "data-w1" && pl.DataAddr != "data-w2" {
				t.Fatalf("placement %v", pl)
			}
		}
	}
	// The finished job released its slots.
	ws, err := cl.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.SlotsFree != w.Slots {
			t.Fatalf("worker %s still has tasks: %+v", w.ID, w)
		}
	}
}

func TestFailedTaskFailsJobWithCause(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	bad := startFakeWorker(t, c, "w1", 1, func(tr *eddypb.TaskRef) (eddypb.TaskState, string) {
		if tr.Chain == 1 {
			return eddypb.TaskState_TASK_STATE_FAILED, "panic: boom in count"
		}
		return eddypb.TaskState_TASK_STATE_RUNNING, ""
	})
	good := startFakeWorker(t, c, "w2", 1, func(*eddypb.TaskRef) (eddypb.TaskState, string) {
		return eddypb.TaskState_TASK_STATE_RUNNING, ""
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(2, "count")})
	if err != nil {
		t.Fatal(err)
	}
	j = waitStatus(t, cl, j.ID, "FAILED")
	if !strings.Contains(j.StatusReason, "panic: boom in count") || !strings.Contains(j.StatusReason, "count") {
		t.Fatalf("failure reason %q", j.StatusReason)
	}
	// The rest of the job is stopped on every worker.
	cptest.WaitFor(t, 5*time.Second, func() error {
		for _, w := range []*fakeWorker{bad, good} {
			if _, _, n := w.counts(); n == 0 {
				return fmt.Errorf("worker %s was not told to cancel", w.id)
			}
		}
		return nil
	})
}

func TestCancelStopsTasksOnWorkers(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	w := startFakeWorker(t, c, "w1", 2, func(*eddypb.TaskRef) (eddypb.TaskState, string) {
		return eddypb.TaskState_TASK_STATE_RUNNING, ""
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(2, "count")})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	if _, err := cl.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	j = waitStatus(t, cl, j.ID, "CANCELED")
	if _, _, n := w.counts(); n == 0 {
		t.Fatal("worker was not told to cancel")
	}
	for _, ts := range j.Execution {
		if ts.State != "CANCELED" {
			t.Fatalf("task after cancel: %+v", ts)
		}
	}
}

func TestBadJobsRefusedAtSubmit(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	a := uploadFake(t, cl)
	for _, tc := range []struct {
		name string
		job  api.SubmitJob
		want string
	}{
		{"stateful operator without uid", api.SubmitJob{Artifact: &a, Graph: testGraph(1, "")}, "keeps state but has no uid"},
		{"graph without artifact", api.SubmitJob{Graph: testGraph(1, "count")}, "needs an artifact"},
		{"unknown artifact", api.SubmitJob{Artifact: &api.Artifact{SHA256: strings.Repeat("ab", 32)}, Graph: testGraph(1, "count")}, "not in the cluster's storage"},
		{"bad hash", api.SubmitJob{Artifact: &api.Artifact{SHA256: "xyz"}, Graph: testGraph(1, "count")}, "not 64 hex digits"},
		{"graph not json", api.SubmitJob{Artifact: &a, Graph: json.RawMessage(`{"vertices": 3}`)}, "graph"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.Submit(context.Background(), tc.job)
			var apiErr *client.Error
			if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, tc.want) {
				t.Fatalf("got %v, want a 400 saying %q", err, tc.want)
			}
		})
	}
	jobs, err := cl.Jobs(context.Background())
	if err != nil || len(jobs) != 0 {
		t.Fatalf("refused jobs were recorded: %v %v", jobs, err)
	}
}

func TestArtifactUploadIsContentAddressed(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	a1 := uploadFake(t, cl)
	a2 := uploadFake(t, cl)
	if a1.SHA256 != a2.SHA256 || a1.URL != a2.URL || a1.Size == 0 {
		t.Fatalf("uploads of the same content: %+v %+v", a1, a2)
	}
	if !bytes.Contains([]byte(a1.URL), []byte(a1.SHA256)) {
		t.Fatalf("artifact url %s does not name its hash", a1.URL)
	}
}

// TestHeartbeatCancelsTasksOfEndedJobs: a worker that still reports tasks
// of a job that ended (its cancel was lost) is told to stop them.
func TestHeartbeatCancelsTasksOfEndedJobs(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	w := startFakeWorker(t, c, "w1", 2, func(*eddypb.TaskRef) (eddypb.TaskState, string) {
		return eddypb.TaskState_TASK_STATE_RUNNING, ""
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(2, "count")})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	running := &eddypb.TaskStatus{JobId: j.ID, Attempt: 1, Chain: 0, Subtask: 0, State: eddypb.TaskState_TASK_STATE_RUNNING}
	hb := &eddypb.HeartbeatRequest{WorkerId: "w1", InstanceId: "w1-i", Tasks: []*eddypb.TaskStatus{running}}
	resp, err := w.cp.Heartbeat(context.Background(), hb)
	if err != nil || len(resp.Cancel) != 0 {
		t.Fatalf("heartbeat of a running job: %v, cancel %v", err, resp.GetCancel())
	}
	if _, err := cl.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "CANCELED")
	resp, err = w.cp.Heartbeat(context.Background(), hb)
	if err != nil || len(resp.Cancel) != 1 || resp.Cancel[0].JobId != j.ID || resp.Cancel[0].Attempt != 1 {
		t.Fatalf("heartbeat of an ended job's task: %v, cancel %v", err, resp.GetCancel())
	}
}

// TestRestartedWorkerFailsItsJob: a worker that comes back as a new
// instance runs nothing of what its old instance ran: the job fails rather
// than stay RUNNING forever.
func TestRestartedWorkerFailsItsJob(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	cl := client.New(c.HTTPAddrs())
	w := startFakeWorker(t, c, "w1", 2, func(*eddypb.TaskRef) (eddypb.TaskState, string) {
		return eddypb.TaskState_TASK_STATE_RUNNING, ""
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: testGraph(2, "count")})
	if err != nil {
		t.Fatal(err)
	}
	cptest.WaitFor(t, 10*time.Second, func() error {
		got, err := cl.Job(context.Background(), j.ID)
		if err != nil {
			return err
		}
		running := 0
		for _, ts := range got.Execution {
			if ts.State == "RUNNING" && ts.WorkerID == "w1" {
				running++
			}
		}
		if got.Status != "RUNNING" || running != 4 {
			return fmt.Errorf("job %s with %d tasks running on w1", got.Status, running)
		}
		return nil
	})
	if _, err := w.cp.RegisterWorker(context.Background(), &eddypb.RegisterWorkerRequest{
		WorkerId: "w1", Address: w.addr, Slots: 2, InstanceId: "w1-restarted",
	}); err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, cl, j.ID, "FAILED")
	if !strings.Contains(got.StatusReason, "worker w1 restarted") {
		t.Fatalf("failure reason %q", got.StatusReason)
	}
}
