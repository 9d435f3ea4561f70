package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/internal/logging"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/worker"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if jobBin.dir != "" {
		_ = os.RemoveAll(jobBin.dir)
	}
	os.Exit(code)
}

// jobBin is the test job binary (testdata/job), built once per test binary.
var jobBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func jobBinary(t *testing.T) string {
	t.Helper()
	jobBin.once.Do(func() {
		start := time.Now()
		jobBin.dir, jobBin.err = os.MkdirTemp("", "eddy-worker-test-")
		if jobBin.err != nil {
			return
		}
		jobBin.path = filepath.Join(jobBin.dir, "job")
		// go test puts its own GOROOT/bin first on the PATH of the test
		// binary, so this finds the go command that is running the tests.
		gobin, err := exec.LookPath("go")
		if err != nil {
			jobBin.err = fmt.Errorf("finding the go command: %v", err)
			return
		}
		// The environment passes on GOFLAGS (an -overlay, say).
		out, err := exec.Command(gobin, "build", "-o", jobBin.path, "./testdata/job").CombinedOutput()
		if err != nil {
			jobBin.err = fmt.Errorf("go build ./testdata/job: %v\n%s", err, out)
		}
		t.Logf("built the test job in %s", time.Since(start).Round(time.Millisecond))
	})
	if jobBin.err != nil {
		t.Fatal(jobBin.err)
	}
	return jobBin.path
}

// fakeCP is a control plane that takes registrations and records heartbeats
// and task reports.
type fakeCP struct {
	eddypb.UnimplementedControlPlaneServer
	addr string

	mu         sync.Mutex
	reports    []*eddypb.TaskStatus // in the order received
	heartbeat  []*eddypb.TaskStatus // the tasks of the last heartbeat
	failReport int                  // fail this many ReportTasks calls first
	badReports []string
	acks       []*eddypb.AcknowledgeCheckpointRequest // in the order received
	failAck    int                                    // fail this many AcknowledgeCheckpoint calls first
}

func startFakeCP(t *testing.T) *fakeCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp := &fakeCP{addr: ln.Addr().String()}
	s := grpc.NewServer()
	eddypb.RegisterControlPlaneServer(s, cp)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return cp
}

func (cp *fakeCP) RegisterWorker(context.Context, *eddypb.RegisterWorkerRequest) (*eddypb.RegisterWorkerResponse, error) {
	return &eddypb.RegisterWorkerResponse{HeartbeatIntervalMs: 50, HeartbeatTimeoutMs: 1000}, nil
}

func (cp *fakeCP) Heartbeat(_ context.Context, req *eddypb.HeartbeatRequest) (*eddypb.HeartbeatResponse, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.heartbeat = req.GetTasks()
	return &eddypb.HeartbeatResponse{}, nil
}

func (cp *fakeCP) ReportTasks(_ context.Context, req *eddypb.ReportTasksRequest) (*eddypb.ReportTasksResponse, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.failReport > 0 {
		cp.failReport--
		return nil, status.Error(codes.Unavailable, "not now")
	}
	if req.GetWorkerId() == "" || req.GetInstanceId() == "" {
		cp.badReports = append(cp.badReports, fmt.Sprintf("report without worker or instance id: %v", req))
	}
	cp.reports = append(cp.reports, req.GetTasks()...)
	return &eddypb.ReportTasksResponse{}, nil
}

func (cp *fakeCP) AcknowledgeCheckpoint(_ context.Context, req *eddypb.AcknowledgeCheckpointRequest) (*eddypb.AcknowledgeCheckpointResponse, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.failAck > 0 {
		cp.failAck--
		return nil, status.Error(codes.Unavailable, "no leader: the control plane has no quorum")
	}
	cp.acks = append(cp.acks, req)
	return &eddypb.AcknowledgeCheckpointResponse{}, nil
}

// states returns, per task of a job attempt ("chain/subtask"), the states
// reported for it in order, and the last error.
func (cp *fakeCP) states(job string, attempt uint64) (map[string][]eddypb.TaskState, map[string]string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	seq, errs := map[string][]eddypb.TaskState{}, map[string]string{}
	for _, r := range cp.reports {
		if r.GetJobId() == job && r.GetAttempt() == attempt {
			k := fmt.Sprintf("%d/%d", r.GetChain(), r.GetSubtask())
			seq[k] = append(seq[k], r.GetState())
			errs[k] = r.GetError()
		}
	}
	return seq, errs
}

// waitStates waits until every one of tasks of the job attempt was last
// reported in one of want, and returns the last errors.
func (cp *fakeCP) waitStates(t *testing.T, timeout time.Duration, job string, attempt uint64, tasks []*eddypb.TaskRef, want ...eddypb.TaskState) map[string]string {
	t.Helper()
	var errs map[string]string
	cptest.WaitFor(t, timeout, func() error {
		var seq map[string][]eddypb.TaskState
		seq, errs = cp.states(job, attempt)
		for _, task := range tasks {
			k := fmt.Sprintf("%d/%d", task.GetChain(), task.GetSubtask())
			s := seq[k]
			if len(s) == 0 {
				return fmt.Errorf("job %s task %s: nothing reported; reports %v", job, k, seq)
			}
			ok := false
			for _, w := range want {
				ok = ok || s[len(s)-1] == w
			}
			if !ok {
				return fmt.Errorf("job %s task %s: reported %v, want it to end in %v; errors %v", job, k, s, want, errs)
			}
		}
		return nil
	})
	return errs
}

// env is a worker against a fake control plane, with an artifact store.
type env struct {
	t       *testing.T
	cp      *fakeCP
	w       *worker.Worker
	ws      eddypb.WorkerServiceClient
	store   storage.Store
	dataDir string
	stop    func()
	logs    logLines
}

// logLines records "LEVEL message" of every line the worker logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) has(line string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if x == line {
			return true
		}
	}
	return false
}

// recorder is a slog.Handler that records into logs and passes on.
type recorder struct {
	slog.Handler
	logs *logLines
}

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.logs.mu.Lock()
	r.logs.lines = append(r.logs.lines, rec.Level.String()+" "+rec.Message)
	r.logs.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{Handler: r.Handler.WithAttrs(as), logs: r.logs}
}

func (r *recorder) WithGroup(g string) slog.Handler {
	return &recorder{Handler: r.Handler.WithGroup(g), logs: r.logs}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir())
}

// newEnvIn is newEnv with the worker's data dir given.
func newEnvIn(t *testing.T, dataDir string) *env {
	t.Helper()
	e := &env{t: t, cp: startFakeCP(t), dataDir: dataDir}
	url, err := storage.FileURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if e.store, err = storage.Open(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	cfg := worker.DefaultConfig()
	cfg.ID = "w1"
	cfg.DataDir = e.dataDir
	cfg.Servers = []string{e.cp.addr}
	cfg.RetryInterval = 20 * time.Millisecond
	cfg.CancelTimeout = 5 * time.Second
	cfg.Logger = slog.New(&recorder{Handler: logging.Test(t, "w1").Handler(), logs: &e.logs})
	if e.w, err = worker.New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.w.Run(ctx)
	}()
	e.stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(e.stop)
	conn, err := grpc.NewClient(e.w.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	e.ws = eddypb.NewWorkerServiceClient(conn)
	return e
}

// upload puts a file into the artifact store and returns its reference.
func (e *env) upload(path, name string) *eddypb.ArtifactRef {
	e.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	info, err := e.store.Put(context.Background(), name, f)
	if err != nil {
		e.t.Fatal(err)
	}
	return &eddypb.ArtifactRef{Sha256: info.SHA256, Url: e.store.URL(name), Size: info.Size}
}

func (e *env) prepare(job string, attempt uint64, ref *eddypb.ArtifactRef, args ...string) *eddypb.PrepareJobResponse {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := e.ws.PrepareJob(ctx, &eddypb.PrepareJobRequest{JobId: job, Attempt: attempt, Artifact: ref, Args: args})
	if err != nil {
		e.t.Fatalf("prepare job %s: %v", job, err)
	}
	return resp
}

// deployAll deploys every task of the job, as its binary describes it at
// parallelism p, onto this worker.
func (e *env) deployAll(job string, attempt uint64, p uint32, dataAddr string, args ...string) []*eddypb.TaskRef {
	e.t.Helper()
	return e.deployWith(job, attempt, p, dataAddr, nil, args...)
}

// deployWith is deployAll with the request edited by edit before it is
// sent.
func (e *env) deployWith(job string, attempt uint64, p uint32, dataAddr string, edit func(*eddypb.DeployTasksRequest), args ...string) []*eddypb.TaskRef {
	e.t.Helper()
	cmd := exec.Command(jobBinary(e.t), args...)
	cmd.Env = append(os.Environ(), "EDDY_DESCRIBE=1", "EDDY_PARALLELISM="+strconv.Itoa(int(p)))
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("describe %v: %v", args, err)
	}
	g := &pluginpb.JobGraph{}
	if err := protojson.Unmarshal(out, g); err != nil {
		e.t.Fatalf("describe %v: %v", args, err)
	}
	req := &eddypb.DeployTasksRequest{JobId: job, Attempt: attempt, Parallelism: p, Args: args}
	for _, c := range g.GetChains() {
		for s := range c.GetParallelism() {
			req.Tasks = append(req.Tasks, &eddypb.TaskRef{Chain: c.GetId(), Subtask: s})
			req.Placement = append(req.Placement, &eddypb.TaskPlacement{Chain: c.GetId(), Subtask: s, DataAddr: dataAddr})
		}
	}
	if edit != nil {
		edit(req)
	}
	if _, err := e.ws.DeployTasks(context.Background(), req); err != nil {
		e.t.Fatalf("deploy job %s: %v", job, err)
	}
	return req.Tasks
}

// waitGone waits until the worker runs no plugin for the job attempt and
// the process pid no longer exists.
func (e *env) waitGone(job string, attempt uint64, pid int) {
	e.t.Helper()
	cptest.WaitFor(e.t, 15*time.Second, func() error {
		if p := e.w.PluginPID(job, attempt); p != 0 {
			return fmt.Errorf("the worker still runs the plugin of job %s (pid %d)", job, p)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("process %d still exists (kill 0: %v)", pid, err)
		}
		return nil
	})
}

func pluginPID(t *testing.T, w *worker.Worker, job string, attempt uint64) int {
	t.Helper()
	pid := w.PluginPID(job, attempt)
	if pid == 0 {
		t.Fatalf("no plugin process for job %s attempt %d", job, attempt)
	}
	return pid
}

const (
	deploying = eddypb.TaskState_TASK_STATE_DEPLOYING
	running   = eddypb.TaskState_TASK_STATE_RUNNING
	finished  = eddypb.TaskState_TASK_STATE_FINISHED
	canceled  = eddypb.TaskState_TASK_STATE_CANCELED
	failed    = eddypb.TaskState_TASK_STATE_FAILED
)

// checkSums checks the files the sum job wrote: the sums of 1..n by x%7.
func checkSums(t *testing.T, dir string, n int) {
	t.Helper()
	want := map[int]int{}
	for x := 1; x <= n; x++ {
		want[x%7] += x
	}
	got := map[int]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "sum-*.txt"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var k, v int
			if _, err := fmt.Sscanf(l, "%d %d", &k, &v); err != nil {
				t.Fatalf("%s: line %q: %v", f, l, err)
			}
			got[k] = v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sums %v, want %v", got, want)
	}
}

func TestPluginRunsJobToFinished(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cp.mu.Lock()
	e.cp.failReport = 3 // the first reports are retried, not lost
	e.cp.mu.Unlock()
	ref := e.upload(jobBinary(t), "jobs/sum")
	out := t.TempDir()
	args := []string{"sum", "20000", out}

	resp := e.prepare("j1", 1, ref, args...)
	if host, _, err := net.SplitHostPort(resp.GetDataAddr()); err != nil || host != "127.0.0.1" {
		t.Fatalf("data address %q: %v", resp.GetDataAddr(), err)
	}
	if resp.GetSdkVersion() == "" {
		t.Fatal("no sdk version")
	}
	again := e.prepare("j1", 1, ref, args...)
	if again.GetDataAddr() != resp.GetDataAddr() || e.w.PluginCount() != 1 {
		t.Fatalf("prepare again: %s (%d plugins), want the same plugin at %s", again.GetDataAddr(), e.w.PluginCount(), resp.GetDataAddr())
	}
	pid := pluginPID(t, e.w, "j1", 1)
	cached, err := os.Stat(filepath.Join(e.dataDir, "artifacts", ref.GetSha256()))
	if err != nil || cached.Mode().Perm() != 0o755 {
		t.Fatalf("cached artifact: %v %v, want mode 0755", cached, err)
	}

	tasks := e.deployAll("j1", 1, 2, resp.GetDataAddr(), args...)
	if len(tasks) != 4 {
		t.Fatalf("%d tasks, want 4", len(tasks))
	}
	e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, finished)
	seq, _ := e.cp.states("j1", 1)
	for k, s := range seq {
		if fmt.Sprint(s) != fmt.Sprint([]eddypb.TaskState{deploying, running, finished}) {
			t.Errorf("task %s reported %v, want DEPLOYING, RUNNING, FINISHED once each", k, s)
		}
	}
	checkSums(t, out, 20000)
	// The process has nothing left to do: it ends.
	e.waitGone("j1", 1, pid)

	_, err = e.ws.DeployTasks(context.Background(), &eddypb.DeployTasksRequest{JobId: "j1", Attempt: 1, Tasks: tasks})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not prepared") {
		t.Fatalf("deploy after the job ended: %v, want FailedPrecondition", err)
	}
	e.cp.mu.Lock()
	defer e.cp.mu.Unlock()
	if len(e.cp.badReports) > 0 {
		t.Fatal(e.cp.badReports)
	}
}

func TestPrepareRefusesArtifactHashMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/sum")
	real := ref.GetSha256()
	wrong := sha256.Sum256([]byte("some other job"))
	ref.Sha256 = hex.EncodeToString(wrong[:])
	_, err := e.ws.PrepareJob(context.Background(), &eddypb.PrepareJobRequest{JobId: "j1", Attempt: 1, Artifact: ref, Args: []string{"endless"}})
	if err == nil {
		t.Fatal("prepare with a wrong hash succeeded")
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "artifact hash mismatch") || !strings.Contains(msg, real) || !strings.Contains(msg, ref.GetSha256()) {
		t.Fatalf("prepare with a wrong hash: %v, want a mismatch naming %s and %s", err, real, ref.GetSha256())
	}
	if e.w.PluginCount() != 0 {
		t.Fatal("a plugin runs")
	}
	left, _ := os.ReadDir(filepath.Join(e.dataDir, "artifacts"))
	if len(left) != 0 {
		t.Fatalf("artifact cache holds %v after a refused artifact", left)
	}
	ref.Sha256 = "not-a-hash"
	_, err = e.ws.PrepareJob(context.Background(), &eddypb.PrepareJobRequest{JobId: "j1", Attempt: 1, Artifact: ref})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("prepare with a malformed hash: %v, want InvalidArgument", err)
	}
}

func TestPrepareRefusesNonEddyBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true binary")
	}
	ref := e.upload(truePath, "jobs/true")
	start := time.Now()
	_, err = e.ws.PrepareJob(context.Background(), &eddypb.PrepareJobRequest{JobId: "j1", Attempt: 1, Artifact: ref})
	if err == nil {
		t.Fatal("prepare of /bin/true succeeded")
	}
	want := "artifact " + ref.GetSha256() + " is not an Eddy job"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("prepare of /bin/true: %v, want %q", err, want)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("refused after %s", took)
	}
	if e.w.PluginCount() != 0 {
		t.Fatal("the worker still tracks a plugin")
	}
	t.Logf("refused: %v", err)
}

func TestTaskPanicFailsOnlyItsJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	out := t.TempDir()
	slowArgs := []string{"slow", "1500", out}
	slow := e.prepare("slow", 1, ref, slowArgs...)
	slowTasks := e.deployAll("slow", 1, 2, slow.GetDataAddr(), slowArgs...)

	panicArgs := []string{"panic", "20000", "10000"}
	bad := e.prepare("bad", 1, ref, panicArgs...)
	badPID := pluginPID(t, e.w, "bad", 1)
	badTasks := e.deployAll("bad", 1, 2, bad.GetDataAddr(), panicArgs...)
	errs := e.cp.waitStates(t, 30*time.Second, "bad", 1, badTasks, failed, canceled, finished)
	seq, _ := e.cp.states("bad", 1)
	var failedTasks []string
	for k, s := range seq {
		if s[len(s)-1] == failed {
			failedTasks = append(failedTasks, k)
			if !strings.Contains(errs[k], "panic: boom at record 10000") {
				t.Errorf("task %s failed with %q, want the panic's message", k, errs[k])
			}
		}
	}
	if len(failedTasks) != 1 {
		t.Fatalf("failed tasks %v, want the one that panicked; reports %v %v", failedTasks, seq, errs)
	}
	e.waitGone("bad", 1, badPID)

	// The other job kept running, and finishes.
	if seq, _ := e.cp.states("slow", 1); len(seq["0/0"]) == 0 || seq["0/0"][len(seq["0/0"])-1] != running {
		t.Fatalf("the slow job's source is not running after the other job failed: %v", seq)
	}
	e.cp.waitStates(t, 30*time.Second, "slow", 1, slowTasks, finished)
	checkSums(t, out, 1500)
}

func TestKilledPluginFailsItsTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	resp := e.prepare("j1", 1, ref, "endless")
	pid := pluginPID(t, e.w, "j1", 1)
	tasks := e.deployAll("j1", 1, 2, resp.GetDataAddr(), "endless")
	e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, running)

	// Heartbeats carry the running tasks.
	cptest.WaitFor(t, 5*time.Second, func() error {
		e.cp.mu.Lock()
		defer e.cp.mu.Unlock()
		n := 0
		for _, s := range e.cp.heartbeat {
			if s.GetJobId() == "j1" && s.GetState() == running {
				n++
			}
		}
		if n != len(tasks) {
			return fmt.Errorf("heartbeat carries %v, want %d running tasks of j1", e.cp.heartbeat, len(tasks))
		}
		return nil
	})

	// What the job logs, and prints, reaches the worker's log.
	cptest.WaitFor(t, 5*time.Second, func() error {
		for _, line := range []string{"WARN first record", "INFO hello from stdout"} {
			if !e.logs.has(line) {
				return fmt.Errorf("the worker did not log %q", line)
			}
		}
		return nil
	})

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	errs := e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, failed)
	for k, msg := range errs {
		if !strings.Contains(msg, "signal: killed") || !strings.Contains(msg, strconv.Itoa(pid)) {
			t.Errorf("task %s failed with %q, want the exit cause", k, msg)
		}
	}
	e.waitGone("j1", 1, pid)
	cptest.WaitFor(t, 5*time.Second, func() error {
		e.cp.mu.Lock()
		defer e.cp.mu.Unlock()
		for _, s := range e.cp.heartbeat {
			if s.GetJobId() == "j1" {
				return fmt.Errorf("heartbeat still carries %v", s)
			}
		}
		return nil
	})

	// The worker carries on.
	out := t.TempDir()
	args := []string{"sum", "100", out}
	resp = e.prepare("j2", 1, ref, args...)
	tasks = e.deployAll("j2", 1, 1, resp.GetDataAddr(), args...)
	e.cp.waitStates(t, 30*time.Second, "j2", 1, tasks, finished)
	checkSums(t, out, 100)
}

func TestPluginCrashFailsItsTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	resp := e.prepare("j1", 1, ref, "crash", "20")
	pid := pluginPID(t, e.w, "j1", 1)
	tasks := e.deployAll("j1", 1, 1, resp.GetDataAddr(), "crash", "20")
	errs := e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, failed)
	for k, msg := range errs {
		if !strings.Contains(msg, "exit status 2") || !strings.Contains(msg, "panic: crash outside the sdk at record 20") {
			t.Errorf("task %s failed with %q, want the exit status and the panic", k, msg)
		}
	}
	e.waitGone("j1", 1, pid)
}

func TestCancelTasksStopsEndlessJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	resp := e.prepare("j1", 1, ref, "endless")
	pid := pluginPID(t, e.w, "j1", 1)
	tasks := e.deployAll("j1", 1, 2, resp.GetDataAddr(), "endless")
	e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, running)

	start := time.Now()
	if _, err := e.ws.CancelTasks(context.Background(), &eddypb.CancelTasksRequest{JobId: "j1", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	t.Logf("cancelled in %s", time.Since(start))
	errs := e.cp.waitStates(t, 10*time.Second, "j1", 1, tasks, canceled)
	for k, msg := range errs {
		if msg != "" {
			t.Errorf("task %s cancelled with %q", k, msg)
		}
	}
	e.waitGone("j1", 1, pid)
	// Again, and for a job the worker never ran: nothing to do.
	for _, job := range []string{"j1", "nope"} {
		if _, err := e.ws.CancelTasks(context.Background(), &eddypb.CancelTasksRequest{JobId: job, Attempt: 1}); err != nil {
			t.Fatalf("cancel %s: %v", job, err)
		}
	}
}

func TestDeployTasksNeedsPrepareAndOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	tasks := []*eddypb.TaskRef{{Chain: 0, Subtask: 0}}
	_, err := e.ws.DeployTasks(context.Background(), &eddypb.DeployTasksRequest{JobId: "j1", Attempt: 1, Parallelism: 1, Tasks: tasks})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("deploy before prepare: %v, want FailedPrecondition", err)
	}
	resp := e.prepare("j1", 1, ref, "endless")
	// A deployment the plugin refuses leaves the attempt deployable.
	_, err = e.ws.DeployTasks(context.Background(), &eddypb.DeployTasksRequest{JobId: "j1", Attempt: 1, Parallelism: 1,
		Tasks: []*eddypb.TaskRef{{Chain: 7}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no chain 7") {
		t.Fatalf("deploy of an unknown chain: %v, want InvalidArgument", err)
	}
	all := e.deployAll("j1", 1, 1, resp.GetDataAddr(), "endless")
	_, err = e.ws.DeployTasks(context.Background(), &eddypb.DeployTasksRequest{JobId: "j1", Attempt: 1, Parallelism: 1, Tasks: all})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("deploy twice: %v, want AlreadyExists", err)
	}
	e.cp.waitStates(t, 30*time.Second, "j1", 1, all, running)
}

func TestArtifactCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	cached := filepath.Join(e.dataDir, "artifacts", ref.GetSha256())
	run := func(job string) {
		t.Helper()
		out := t.TempDir()
		args := []string{"sum", "50", out}
		resp := e.prepare(job, 1, ref, args...)
		pid := pluginPID(t, e.w, job, 1)
		tasks := e.deployAll(job, 1, 1, resp.GetDataAddr(), args...)
		e.cp.waitStates(t, 30*time.Second, job, 1, tasks, finished)
		checkSums(t, out, 50)
		e.waitGone(job, 1, pid)
	}
	run("j1")
	// A corrupted cache entry is fetched again.
	if err := os.WriteFile(cached, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("j2")
	// A good one is used without the store.
	if err := e.store.Delete(context.Background(), "jobs/job"); err != nil {
		t.Fatal(err)
	}
	run("j3")
}

func TestShutdownKillsPlugins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")
	var pids []int
	for _, job := range []string{"j1", "j2"} {
		resp := e.prepare(job, 1, ref, "endless")
		pids = append(pids, pluginPID(t, e.w, job, 1))
		tasks := e.deployAll(job, 1, 1, resp.GetDataAddr(), "endless")
		e.cp.waitStates(t, 30*time.Second, job, 1, tasks, running)
	}
	e.stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("plugin %d survived the worker: %v", pid, err)
		}
	}
	seq, errs := e.cp.states("j1", 1)
	for k, s := range seq {
		if s[len(s)-1] != failed || !strings.Contains(errs[k], "shut down") {
			t.Errorf("task %s of j1: %v %q, want FAILED as the worker shut down", k, s, errs[k])
		}
	}
}

// A job whose tasks are split over two workers exchanges its records
// between their plugin processes.
func TestJobAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	e1, e2 := newEnv(t), newEnv(t)
	ref := e1.upload(jobBinary(t), "jobs/job")
	out := t.TempDir()
	args := []string{"sum", "30000", out}
	envs := []*env{e1, e2}
	var addrs []string
	for _, e := range envs {
		addrs = append(addrs, e.prepare("j1", 1, ref, args...).GetDataAddr())
	}
	// Subtask s of every chain runs on worker s; the keyed edge crosses.
	var reqs [2]*eddypb.DeployTasksRequest
	for i := range reqs {
		reqs[i] = &eddypb.DeployTasksRequest{JobId: "j1", Attempt: 1, Parallelism: 2, Args: args}
	}
	for chain := range uint32(2) {
		for s := range uint32(2) {
			for _, r := range reqs {
				r.Placement = append(r.Placement, &eddypb.TaskPlacement{Chain: chain, Subtask: s, DataAddr: addrs[s]})
			}
			reqs[s].Tasks = append(reqs[s].Tasks, &eddypb.TaskRef{Chain: chain, Subtask: s})
		}
	}
	for i, e := range envs {
		if _, err := e.ws.DeployTasks(context.Background(), reqs[i]); err != nil {
			t.Fatalf("deploy on worker %d: %v", i, err)
		}
	}
	for i, e := range envs {
		e.cp.waitStates(t, 30*time.Second, "j1", 1, reqs[i].Tasks, finished)
	}
	checkSums(t, out, 30000)
}

func TestConfigDataHost(t *testing.T) {
	for _, c := range []struct {
		host string
		ok   bool
	}{
		{"", true}, {"127.0.0.1", true}, {"worker-3.example", true}, {"::1", true},
		{"127.0.0.1:7000", false}, {"0.0.0.0", false}, {"::", false}, {"[::1]", false},
	} {
		cfg := worker.DefaultConfig()
		cfg.DataHost = c.host
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("data host %q: Validate() = %v, want ok=%v", c.host, err, c.ok)
		}
	}
}
