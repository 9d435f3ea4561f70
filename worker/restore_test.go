package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// PrepareJob passes validate_restore, the savepoint and the parallelism to
// the job's plugin, which checks the savepoint before any task starts; its
// refusal is FailedPrecondition (the job cannot restore it, whatever the
// worker), with the plugin's message, and no plugin is left running.
func TestPrepareJobValidatesRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/sum")
	dir := t.TempDir()
	url, err := storage.FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	prepare := func(attempt uint64, restore *pluginpb.RestoreSpec) (*eddypb.PrepareJobResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return e.ws.PrepareJob(ctx, &eddypb.PrepareJobRequest{JobId: "j1", Attempt: attempt, Artifact: ref,
			Args: []string{"sum", "10", t.TempDir()}, Restore: restore, Parallelism: 3, ValidateRestore: true})
	}

	// No savepoint in the directory.
	_, err = prepare(1, &pluginpb.RestoreSpec{Url: url})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), checkpoint.MetadataName) ||
		!strings.Contains(err.Error(), "not found") {
		t.Fatalf("prepare from a directory without a savepoint: %v, want FailedPrecondition naming the missing %s", err, checkpoint.MetadataName)
	}
	if e.w.PluginCount() != 0 {
		t.Fatal("a plugin runs after the refusal")
	}

	// State of an operator the job does not have: refused, unless the
	// restore allows dropping it.
	m := &pluginpb.CheckpointMetadata{CheckpointId: 4, MaxParallelism: 128, Operators: []*pluginpb.OperatorState{{
		Uid: "removed", MaxParallelism: 128, Parallelism: 1,
		Subtasks: []*pluginpb.OperatorSubtaskState{{File: "x", Size: 1, Items: []*pluginpb.Slice{{Length: 1}}}}}}}
	if err := checkpoint.WriteMetadata(context.Background(), st, "", m); err != nil {
		t.Fatal(err)
	}
	_, err = prepare(2, &pluginpb.RestoreSpec{Url: url})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `"removed"`) {
		t.Fatalf("prepare with state of a removed operator: %v, want FailedPrecondition naming it", err)
	}
	resp, err := prepare(3, &pluginpb.RestoreSpec{Url: url, AllowNonRestoredState: true})
	if err != nil || resp.GetDataAddr() == "" {
		t.Fatalf("prepare allowing non-restored state: %v, %v", resp, err)
	}
	if e.w.PluginCount() != 1 {
		t.Fatalf("%d plugins run, want the validated one", e.w.PluginCount())
	}
}
