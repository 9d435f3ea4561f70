package server_test

import (
	"bytes"
	"context"
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
)

// twoClusters starts two separate one-node clusters, each with its own
// storage and a worker, and a job running on the first.
type twoClusters struct {
	src, dst   *client.Client
	srcW, dstW *cpWorker
	job        api.Job
	artifact   api.Artifact
}

func startTwoClusters(t *testing.T, srcSetup, dstSetup func(*cpWorker)) *twoClusters {
	t.Helper()
	_, optA := sharedStorage(t)
	_, optB := sharedStorage(t)
	a := cptest.TestCluster(t, 1, optA)
	b := cptest.TestCluster(t, 1, optB)
	tc := &twoClusters{src: client.New(a.HTTPAddrs()), dst: client.New(b.HTTPAddrs())}
	tc.srcW = startCPWorker(t, a, "a1", 4, srcSetup)
	tc.dstW = startCPWorker(t, b, "b1", 4, dstSetup)
	tc.artifact = uploadFake(t, tc.src)
	j, err := tc.src.Submit(context.Background(), api.SubmitJob{JobID: "moving", Name: "mover", Artifact: &tc.artifact,
		Args: []string{"--rate", "5"}, Config: map[string]string{"restart.attempts": "2"},
		Graph: cpGraph(2, &pluginpb.CheckpointConfig{IntervalMs: 50}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	tc.job = waitStatus(t, tc.src, j.ID, "RUNNING")
	waitCheckpoints(t, tc.src, j.ID, 20*time.Second, completedAtLeast(2))
	return tc
}

func migrateOpts(url string) client.MigrateOptions {
	return client.MigrateOptions{SavepointURL: url, Timeout: 20 * time.Second, Poll: 20 * time.Millisecond}
}

func TestMigrateMovesTheJobWithItsState(t *testing.T) {
	tc := startTwoClusters(t, nil, nil)
	url := fileURL(t, t.TempDir()) // reachable by both
	var progress bytes.Buffer
	r, err := client.Migrate(context.Background(), tc.src, tc.dst, tc.job.ID, migrateOpts(url), &progress)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OnTarget || r.JobID != tc.job.ID || r.Savepoint.URL != url || r.Savepoint.Status != "COMPLETED" {
		t.Fatalf("result %+v", r)
	}
	for _, step := range []string{"artifact copied: ", "stopping job moving on the source", "taken at " + url, "is FINISHED on the source", "submitted to the target as job moving", "job moving is RUNNING on the target"} {
		if !strings.Contains(progress.String(), step) {
			t.Errorf("progress does not say %q", step)
		}
	}
	if j, _ := tc.src.Job(context.Background(), tc.job.ID); j.Status != "FINISHED" {
		t.Errorf("job is %s on the source, want FINISHED", j.Status)
	}
	moved, err := tc.dst.Job(context.Background(), r.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Status != "RUNNING" || moved.RestoredCheckpoint != r.Savepoint.ID || moved.RestoredURL != url || moved.Name != "mover" ||
		strings.Join(moved.Args, " ") != "--rate 5" || moved.Config["restart.attempts"] != "2" || moved.Parallelism != 2 ||
		moved.Artifact == nil || moved.Artifact.SHA256 != tc.artifact.SHA256 {
		t.Fatalf("job on the target %+v", moved)
	}
	for _, d := range tc.dstW.deploys() {
		if d.Restore.GetUrl() != url || d.Restore.CheckpointId != r.Savepoint.ID {
			t.Errorf("target deployed with restore %v", d.Restore)
		}
	}
	// Checkpoint ids go on after the savepoint's on the target.
	cps := waitCheckpoints(t, tc.dst, r.JobID, 20*time.Second, completedAtLeast(1))
	if cps.History[len(cps.History)-1].ID != r.Savepoint.ID+1 {
		t.Errorf("first checkpoint on the target %d, want %d", cps.History[len(cps.History)-1].ID, r.Savepoint.ID+1)
	}
}

func TestMigrateRestartsOnTheSourceWhenTheTargetRefuses(t *testing.T) {
	tc := startTwoClusters(t, nil, func(w *cpWorker) {
		w.onPrepare = func(req *eddypb.PrepareJobRequest) error {
			if req.ValidateRestore {
				return status.Error(codes.FailedPrecondition, "operator \"count\": state type changed")
			}
			return nil
		}
	})
	// The job's id is taken on the target.
	if _, err := tc.dst.Submit(context.Background(), api.SubmitJob{JobID: tc.job.ID, Name: "other"}); err != nil {
		t.Fatal(err)
	}
	url := fileURL(t, t.TempDir())
	var progress bytes.Buffer
	r, err := client.Migrate(context.Background(), tc.src, tc.dst, tc.job.ID, migrateOpts(url), &progress)
	t.Logf("progress:\n%s", progress.String())
	if err == nil || !strings.Contains(err.Error(), "runs on the source again as "+r.JobID) || !strings.Contains(err.Error(), "state type changed") {
		t.Fatalf("migrate: %v, want the target's refusal and the restart on the source", err)
	}
	if r.OnTarget || r.JobID == tc.job.ID || r.Savepoint.URL != url {
		t.Fatalf("result %+v", r)
	}
	// Exactly one copy runs: the restarted one, on the source, from the
	// savepoint.
	back, err := tc.src.Job(context.Background(), r.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if back.Status != "RUNNING" || back.RestoredCheckpoint != r.Savepoint.ID || back.RestoredURL != url {
		t.Fatalf("restarted job %+v", back)
	}
	if j, _ := tc.src.Job(context.Background(), tc.job.ID); j.Status != "FINISHED" {
		t.Errorf("original job is %s, want FINISHED", j.Status)
	}
	jobs, _ := tc.dst.Jobs(context.Background())
	for _, j := range jobs {
		if j.ID != tc.job.ID && (j.Status == "RUNNING" || !strings.HasPrefix(j.ID, tc.job.ID+"-")) {
			t.Errorf("target job %s is %s", j.ID, j.Status)
		}
		if j.ID != tc.job.ID && !strings.Contains(j.StatusReason, "state type changed") {
			t.Errorf("target job %s: %s, want the refusal", j.ID, j.StatusReason)
		}
	}
	if len(jobs) != 2 {
		t.Errorf("target has jobs %+v, want the one there before and the refused one", jobs)
	}
}

func TestMigrateLeavesTheJobRunningWhenTheStopFails(t *testing.T) {
	tc := startTwoClusters(t, func(w *cpWorker) {
		w.ack = func(req *pluginpb.CheckpointRequest, _ *eddypb.TaskRef) (string, bool) {
			if req.Stop {
				return "sink unavailable", false
			}
			return "", false
		}
	}, nil)
	var progress bytes.Buffer
	_, err := client.Migrate(context.Background(), tc.src, tc.dst, tc.job.ID, migrateOpts(fileURL(t, t.TempDir())), &progress)
	t.Logf("progress:\n%s", progress.String())
	if err == nil || !strings.Contains(err.Error(), "sink unavailable") || !strings.Contains(err.Error(), "job moving is RUNNING on the source") {
		t.Fatalf("migrate: %v, want the stop's failure and the job running on the source", err)
	}
	if j, _ := tc.src.Job(context.Background(), tc.job.ID); j.Status != "RUNNING" {
		t.Errorf("job is %s on the source", j.Status)
	}
	if jobs, _ := tc.dst.Jobs(context.Background()); len(jobs) != 0 {
		t.Errorf("target got jobs %+v", jobs)
	}
}
