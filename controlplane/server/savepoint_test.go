package server_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

func waitSavepoint(t *testing.T, cl *client.Client, job, request string) api.Checkpoint {
	t.Helper()
	sp, err := client.WaitSavepoint(context.Background(), cl, job, request, 20*time.Second, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("savepoint %s of job %s: %v (%+v)", request, job, err, sp)
	}
	return sp
}

// openURL opens the storage at a URL.
func openURL(t *testing.T, u string) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func fileURL(t *testing.T, dir string) string {
	t.Helper()
	u, err := storage.FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (w *cpWorker) triggers() []*pluginpb.CheckpointRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*pluginpb.CheckpointRequest
	for _, r := range w.requests {
		if r.Action == pluginpb.CheckpointAction_CHECKPOINT_ACTION_TRIGGER {
			out = append(out, r)
		}
	}
	return out
}

func (w *cpWorker) prepares() []*eddypb.PrepareJobRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*eddypb.PrepareJobRequest(nil), w.prepared...)
}

func apiCode(err error) (int, string) {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, ""
}

func TestSavepointCompletesIsListedAndOutlivesCleanup(t *testing.T) {
	dir, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w1 := startCPWorker(t, c, "w1", 2, nil)
	w2 := startCPWorker(t, c, "w2", 2, nil)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "sp-job", Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50, Retain: 1}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(2))

	// Into the cluster's default directory: <storage>/savepoints.
	tr, err := cl.TriggerSavepoint(context.Background(), j.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	prefix := fileURL(t, filepath.Join(dir, "savepoints")) + fmt.Sprintf("/savepoint-%s-%d-", j.ID, tr.ID)
	if tr.RequestID == "" || !strings.HasPrefix(tr.URL, prefix) {
		t.Fatalf("triggered %+v, want a request id and a url under %s", tr, prefix)
	}
	sp := waitSavepoint(t, cl, j.ID, tr.RequestID)
	if sp.URL != tr.URL || sp.ID != tr.ID || !sp.Savepoint || sp.SizeBytes != 4*100+2 || sp.RequestID != tr.RequestID {
		t.Fatalf("savepoint %+v", sp)
	}
	// The tasks were told it is a savepoint and where it goes; they were
	// told it completed (exactly-once sinks commit).
	for _, w := range []*cpWorker{w1, w2} {
		found := false
		for _, r := range w.triggers() {
			if r.CheckpointId == sp.ID {
				found = r.Savepoint && r.Url == sp.URL && !r.Stop
			}
		}
		if !found {
			t.Errorf("worker %s: no savepoint trigger for %d to %s", w.id, sp.ID, sp.URL)
		}
		cptest.WaitFor(t, 5*time.Second, func() error {
			for _, id := range w.actions(pluginpb.CheckpointAction_CHECKPOINT_ACTION_COMPLETE) {
				if id == sp.ID {
					return nil
				}
			}
			return fmt.Errorf("worker %s got no completion of savepoint %d", w.id, sp.ID)
		})
	}
	// A given directory; one that holds a savepoint already is refused.
	mine := fileURL(t, t.TempDir())
	tr2, err := cl.TriggerSavepoint(context.Background(), j.ID, mine)
	if err != nil {
		t.Fatal(err)
	}
	sp2 := waitSavepoint(t, cl, j.ID, tr2.RequestID)
	if sp2.URL != mine || sp2.ID <= sp.ID {
		t.Fatalf("second savepoint %+v, want at %s after %d", sp2, mine, sp.ID)
	}
	_, err = cl.TriggerSavepoint(context.Background(), j.ID, mine)
	if st, code := apiCode(err); st != 400 || !strings.Contains(err.Error(), "holds a savepoint already") {
		t.Errorf("savepoint into a savepoint: %v (%d %s), want 400", err, st, code)
	}
	// Checkpoints go on, retention keeps one, cleanup runs: the savepoints
	// stay whole and listed.
	before, _ := cl.Checkpoints(context.Background(), j.ID)
	waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(before.Counts.Completed+3))
	for _, s := range []api.Checkpoint{sp, sp2} {
		md, err := checkpoint.ReadMetadata(context.Background(), openURL(t, s.URL), "")
		if err != nil {
			t.Fatalf("savepoint %d after cleanup: %v", s.ID, err)
		}
		if !md.Savepoint || md.CheckpointId != s.ID || len(md.Operators) != 2 || md.MaxParallelism != 128 {
			t.Errorf("metadata of savepoint %d: %v", s.ID, md)
		}
		for _, op := range md.Operators {
			for _, st := range op.Subtasks {
				if _, err := openURL(t, s.URL).Stat(context.Background(), st.File); err != nil {
					t.Errorf("savepoint %d state file %s: %v", s.ID, st.File, err)
				}
			}
		}
	}
	jj, err := cl.Job(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(jj.Savepoints) != 2 || jj.Savepoints[0].ID != sp.ID || jj.Savepoints[1].URL != mine || jj.Savepoints[0].Status != "COMPLETED" {
		t.Errorf("job details list savepoints %+v", jj.Savepoints)
	}
	if list, err := cl.Savepoints(context.Background(), j.ID); err != nil || len(list) != 2 {
		t.Errorf("GET savepoints: %v, %v", list, err)
	}
	if cps, _ := cl.Checkpoints(context.Background(), j.ID); len(cps.Retained) != 1 || len(cps.Savepoints) != 2 {
		t.Errorf("retained %d checkpoints and %d savepoints, want 1 and 2", len(cps.Retained), len(cps.Savepoints))
	}
	// The body is optional; the answer says where to poll.
	resp, err := cptest.HTTPClient.Post("http://"+c.HTTPAddrs()[0]+"/v1/jobs/"+j.ID+"/savepoints", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var raw api.SavepointTriggered
	err = json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 202 || raw.RequestID == "" || resp.Header.Get("Location") != "/v1/jobs/"+j.ID+"/savepoints/"+raw.RequestID {
		t.Fatalf("POST without a body: %d %+v %v (Location %q)", resp.StatusCode, raw, err, resp.Header.Get("Location"))
	}
	waitSavepoint(t, cl, j.ID, raw.RequestID)
	// Artifacts can be fetched back; an unknown one is 404.
	var buf strings.Builder
	if n, err := cl.DownloadArtifact(context.Background(), a.SHA256, &buf); err != nil || n != a.Size || !strings.Contains(buf.String(), "not really a job") {
		t.Errorf("download artifact: %d bytes, %v", n, err)
	}
	if _, err := cl.DownloadArtifact(context.Background(), strings.Repeat("0", 64), io.Discard); err == nil {
		t.Error("an unknown artifact was downloaded")
	} else if st, code := apiCode(err); st != 404 || code != "artifact_not_found" {
		t.Errorf("unknown artifact: %v", err)
	}
	if _, err := cl.Savepoint(context.Background(), j.ID, "nope"); err == nil {
		t.Error("an unknown savepoint request was found")
	} else if st, code := apiCode(err); st != 404 || code != "savepoint_not_found" {
		t.Errorf("unknown savepoint request: %v", err)
	}
}

func TestStopWithSavepointFinishesTheJob(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w := startCPWorker(t, c, "w1", 4, nil)
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(1))
	url := fileURL(t, t.TempDir())
	tr, err := cl.StopWithSavepoint(context.Background(), j.ID, url, true)
	if err != nil {
		t.Fatal(err)
	}
	sp := waitSavepoint(t, cl, j.ID, tr.RequestID)
	waitStatus(t, cl, j.ID, "FINISHED")
	if sp.URL != url || !sp.Stop || !sp.Drain {
		t.Errorf("stop savepoint %+v", sp)
	}
	var trig *pluginpb.CheckpointRequest
	for _, r := range w.triggers() {
		if r.CheckpointId == sp.ID {
			trig = r
		}
		if r.CheckpointId > sp.ID {
			t.Errorf("checkpoint %d triggered after the stop's savepoint %d", r.CheckpointId, sp.ID)
		}
	}
	if trig == nil || !trig.Stop || !trig.Drain || !trig.Savepoint || trig.Url != url {
		t.Fatalf("stop trigger %v", trig)
	}
	if _, err := checkpoint.ReadMetadata(context.Background(), openURL(t, url), ""); err != nil {
		t.Errorf("metadata of the stop's savepoint: %v", err)
	}
	// Drain without stop is refused; so is a savepoint of an ended job.
	if _, err := cl.StopWithSavepoint(context.Background(), j.ID, "", false); err == nil {
		t.Error("stop of a finished job accepted")
	} else if st, code := apiCode(err); st != 409 || code != "checkpoint_not_possible" {
		t.Errorf("stop of a finished job: %v", err)
	}
}

func TestFailedSavepointLeavesTheJobRunning(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w := startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.ack = func(req *pluginpb.CheckpointRequest, t *eddypb.TaskRef) (string, bool) {
			if req.Savepoint && t.Chain == 1 {
				return "no space left on device", false
			}
			return "", false
		}
	})
	a := uploadFake(t, cl)
	// Not one failure tolerated: a savepoint failing must still not
	// restart the job.
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph: cpGraph(1, &pluginpb.CheckpointConfig{IntervalMs: 50},
			&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 10})})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cl, j.ID, "RUNNING")
	tr, err := cl.StopWithSavepoint(context.Background(), j.ID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := client.WaitSavepoint(context.Background(), cl, j.ID, tr.RequestID, 20*time.Second, 20*time.Millisecond, nil)
	if err == nil || sp.Status != "FAILED" || !strings.Contains(sp.Failure, "declined by task count (1/1): no space left on device") {
		t.Fatalf("stop savepoint %+v, %v; want FAILED with the cause", sp, err)
	}
	cptest.WaitFor(t, 5*time.Second, func() error {
		for _, id := range w.actions(pluginpb.CheckpointAction_CHECKPOINT_ACTION_ABORT) {
			if id == sp.ID {
				return nil
			}
		}
		return errors.New("the failed savepoint was not aborted on the worker")
	})
	before, _ := cl.Checkpoints(context.Background(), j.ID)
	cps := waitCheckpoints(t, cl, j.ID, 20*time.Second, completedAtLeast(before.Counts.Completed+2))
	jj, _ := cl.Job(context.Background(), j.ID)
	if jj.Status != "RUNNING" || jj.Attempt != 1 || jj.Restarts != 0 || cps.Counts.ConsecutiveFailures != 0 {
		t.Fatalf("job %s at attempt %d with %d restarts (%d consecutive failures) after a failed stop", jj.Status, jj.Attempt, jj.Restarts, cps.Counts.ConsecutiveFailures)
	}
	if len(jj.Savepoints) != 1 || jj.Savepoints[0].Status != "FAILED" {
		t.Errorf("savepoints listed %+v", jj.Savepoints)
	}
}

// savepointMetadata is a savepoint of testGraph's job (UIDs src and count)
// at max parallelism 128, taken at parallelism 2 as checkpoint 7.
func savepointMetadata() *pluginpb.CheckpointMetadata {
	md := &pluginpb.CheckpointMetadata{JobId: "old", CheckpointId: 7, Savepoint: true, MaxParallelism: 128}
	for _, uid := range []string{"count", "src"} {
		op := &pluginpb.OperatorState{Uid: uid, Parallelism: 2, MaxParallelism: 128}
		for s := range uint32(2) {
			op.Subtasks = append(op.Subtasks, &pluginpb.OperatorSubtaskState{Uid: uid, Subtask: s, File: fmt.Sprintf("%s-%d", uid, s), Size: 10})
		}
		md.Operators = append(md.Operators, op)
	}
	return md
}

// writeSavepoint writes a savepoint directory with md as its _metadata (or
// raw bytes instead) and returns its URL.
func writeSavepoint(t *testing.T, md *pluginpb.CheckpointMetadata, raw []byte) string {
	t.Helper()
	u := fileURL(t, t.TempDir())
	st := openURL(t, u)
	if raw != nil {
		if _, err := st.Put(context.Background(), checkpoint.MetadataName, strings.NewReader(string(raw))); err != nil {
			t.Fatal(err)
		}
		return u
	}
	if md != nil {
		if err := checkpoint.WriteMetadata(context.Background(), st, "", md); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

func TestRunFromSavepointRefusalsAtSubmit(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w1 := startCPWorker(t, c, "w1", 2, nil)
	w2 := startCPWorker(t, c, "w2", 2, nil)
	a := uploadFake(t, cl)

	good, err := checkpoint.EncodeMetadata(savepointMetadata())
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0xff
	future := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(future[len(checkpoint.Magic):], 9)
	wide := savepointMetadata()
	wide.MaxParallelism = 256
	for _, op := range wide.Operators {
		op.MaxParallelism = 256
	}
	extra := savepointMetadata()
	extra.Operators = append(extra.Operators, &pluginpb.OperatorState{Uid: "gone", Parallelism: 1,
		Subtasks: []*pluginpb.OperatorSubtaskState{{Uid: "gone", File: "gone-0", Size: 3}}})
	extraURL := writeSavepoint(t, extra, nil)

	for _, tt := range []struct {
		name string
		url  string
		want []string
	}{
		{"no metadata", writeSavepoint(t, nil, nil), []string{"no _metadata in it"}},
		{"not metadata", writeSavepoint(t, nil, []byte("hello, world")), []string{"not an Eddy checkpoint metadata file"}},
		{"corrupt", writeSavepoint(t, nil, corrupt), []string{"corrupt checkpoint metadata"}},
		{"unknown version", writeSavepoint(t, nil, future), []string{"unknown checkpoint format version 9", "reads version 1"}},
		{"max parallelism", writeSavepoint(t, wide, nil), []string{"max parallelism 256", "max parallelism 128"}},
		{"missing uid", extraURL, []string{`operators the job does not have: "gone"`, "allow-non-restored-state"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a, Graph: cpGraph(2, &pluginpb.CheckpointConfig{}, nil),
				Restore: &api.Restore{URL: tt.url}})
			st, code := apiCode(err)
			if st != 400 || code != "invalid_argument" {
				t.Fatalf("submit from %s: %v, want 400 invalid_argument", tt.name, err)
			}
			for _, w := range append(tt.want, "savepoint "+tt.url) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err, w)
				}
			}
		})
	}
	if jobs, _ := cl.Jobs(context.Background()); len(jobs) != 0 {
		t.Fatalf("refused submissions created jobs: %+v", jobs)
	}

	// Allowed with the flag: the first attempt restores it, one plugin
	// validates it first, and checkpoint ids continue after 7.
	j, err := cl.Submit(context.Background(), api.SubmitJob{JobID: "restored", Artifact: &a, Graph: cpGraph(2, &pluginpb.CheckpointConfig{}, nil),
		Restore: &api.Restore{URL: extraURL, AllowNonRestoredState: true}})
	if err != nil {
		t.Fatal(err)
	}
	if j.Restore == nil || j.Restore.CheckpointID != 7 || !j.Restore.AllowNonRestoredState {
		t.Fatalf("job restore %+v", j.Restore)
	}
	j = waitStatus(t, cl, j.ID, "RUNNING")
	if j.RestoredCheckpoint != 7 || j.RestoredURL != extraURL {
		t.Errorf("job restored %d from %q", j.RestoredCheckpoint, j.RestoredURL)
	}
	validated := 0
	for _, w := range []*cpWorker{w1, w2} {
		for _, p := range w.prepares() {
			if p.ValidateRestore {
				validated++
				if p.Restore.GetUrl() != extraURL || p.Restore.CheckpointId != 7 || !p.Restore.AllowNonRestoredState || p.Parallelism != 2 {
					t.Errorf("validating prepare %v", p)
				}
			} else if p.Restore != nil {
				t.Errorf("prepare without validation carries a restore: %v", p)
			}
		}
		for _, d := range w.deploys() {
			if d.Restore.GetUrl() != extraURL || d.Restore.CheckpointId != 7 || !d.Restore.AllowNonRestoredState {
				t.Errorf("deployed with restore %v", d.Restore)
			}
		}
	}
	if validated != 1 {
		t.Errorf("%d plugins validated the restore, want 1", validated)
	}
	id, err := cl.TriggerCheckpoint(context.Background(), j.ID)
	if err != nil || id != 8 {
		t.Errorf("first checkpoint after restoring 7: %d, %v; want 8", id, err)
	}
}

func TestRestoreValidationFailureFailsTheJobWithoutDeploying(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	const why = `operator "count" state "sum": the savepoint holds a string, the job's codec reads int64`
	url := writeSavepoint(t, savepointMetadata(), nil)
	w := startCPWorker(t, c, "w1", 4, func(w *cpWorker) {
		w.onPrepare = func(req *eddypb.PrepareJobRequest) error {
			if req.ValidateRestore {
				// As the SDK's plugin words it, through the worker.
				return status.Error(codes.FailedPrecondition, "job "+req.GetJobId()+": restore from "+req.Restore.GetUrl()+": "+why)
			}
			return nil
		}
	})
	a := uploadFake(t, cl)
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph:   cpGraph(2, &pluginpb.CheckpointConfig{}, &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 10}),
		Restore: &api.Restore{URL: url}})
	if err != nil {
		t.Fatal(err)
	}
	j = waitStatus(t, cl, j.ID, "FAILED")
	if !strings.Contains(j.StatusReason, why) || !strings.Contains(j.StatusReason, "savepoint "+url) || j.Restarts != 0 {
		t.Fatalf("job %+v: want FAILED with the plugin's refusal and no restart", j)
	}
	if n := strings.Count(j.StatusReason, url); n != 1 {
		t.Errorf("the refusal %q names the savepoint %d times, want once", j.StatusReason, n)
	}
	if d := w.deploys(); len(d) != 0 {
		t.Fatalf("tasks deployed after the restore was refused: %v", d)
	}
	cptest.WaitFor(t, 5*time.Second, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.cancels == 0 {
			return errors.New("the prepared plugin was not stopped")
		}
		return nil
	})
}

func TestRestartsRestoreTheSavepointUntilACheckpointCompletes(t *testing.T) {
	_, opt := sharedStorage(t)
	c := cptest.TestCluster(t, 1, opt)
	cl := client.New(c.HTTPAddrs())
	w := startCPWorker(t, c, "w1", 4, nil)
	a := uploadFake(t, cl)
	url := writeSavepoint(t, savepointMetadata(), nil)
	// Checkpoints on request only.
	j, err := cl.Submit(context.Background(), api.SubmitJob{Artifact: &a,
		Graph:   cpGraph(2, &pluginpb.CheckpointConfig{}, &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 10}),
		Restore: &api.Restore{URL: url}})
	if err != nil {
		t.Fatal(err)
	}
	running := func(attempt uint64) api.Job {
		var jj api.Job
		cptest.WaitFor(t, 10*time.Second, func() error {
			var err error
			if jj, err = cl.Job(context.Background(), j.ID); err != nil {
				return err
			}
			if jj.Status != "RUNNING" || jj.Attempt != attempt {
				return fmt.Errorf("job %s at attempt %d, want RUNNING at %d", jj.Status, jj.Attempt, attempt)
			}
			return nil
		})
		return jj
	}
	running(1)
	w.failTask(j.ID, 1, "boom", false)
	if jj := running(2); jj.RestoredCheckpoint != 7 || jj.RestoredURL != url {
		t.Fatalf("attempt 2 restored %d from %s, want the savepoint", jj.RestoredCheckpoint, jj.RestoredURL)
	}
	// Only the first attempt validates.
	n := 0
	for _, p := range w.prepares() {
		if p.ValidateRestore {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d validating prepares, want 1", n)
	}
	// A checkpoint (id 8, after the savepoint's 7), then a savepoint of
	// the job (9): the next restart takes the newest.
	if id, err := cl.TriggerCheckpoint(context.Background(), j.ID); err != nil || id != 8 {
		t.Fatalf("checkpoint %d, %v; want 8", id, err)
	}
	waitCheckpoints(t, cl, j.ID, 10*time.Second, completedAtLeast(1))
	w.failTask(j.ID, 2, "boom", false)
	if jj := running(3); jj.RestoredCheckpoint != 8 {
		t.Fatalf("attempt 3 restored %d, want checkpoint 8", jj.RestoredCheckpoint)
	}
	tr, err := cl.TriggerSavepoint(context.Background(), j.ID, "")
	if err != nil || tr.ID != 9 {
		t.Fatalf("savepoint %+v, %v; want id 9", tr, err)
	}
	sp := waitSavepoint(t, cl, j.ID, tr.RequestID)
	w.failTask(j.ID, 3, "boom", false)
	if jj := running(4); jj.RestoredCheckpoint != 9 || jj.RestoredURL != sp.URL {
		t.Fatalf("attempt 4 restored %d from %s, want savepoint 9 at %s", jj.RestoredCheckpoint, jj.RestoredURL, sp.URL)
	}
	// The submitted savepoint's directory was never written to.
	entries, _ := os.ReadDir(strings.TrimPrefix(url, "file://"))
	for _, e := range entries {
		if e.Name() != checkpoint.MetadataName && !strings.HasPrefix(e.Name(), checkpoint.MetadataName) && !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("the restored savepoint's directory got %s", e.Name())
		}
	}
}
