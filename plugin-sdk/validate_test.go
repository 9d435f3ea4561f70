package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// savepointOfSumJob runs checkpointedSumJob at parallelism 2 to half its
// input, takes checkpoint 1, cancels the attempt, and returns the
// checkpoint's directory (a path) and metadata.
func savepointOfSumJob(t *testing.T) (string, *pluginpb.CheckpointMetadata) {
	t.Helper()
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
	m, _ := newCoordinator(t, h, "j1", 1, 2, tasks, dir).checkpoint(1)
	if _, err := h.client.Cancel(context.Background(), &pluginpb.CancelRequest{JobId: "j1"}); err != nil {
		t.Fatal(err)
	}
	h.waitFor(20*time.Second, "attempt 1 ended", allTasksIn(tasks, pluginpb.TaskState_TASK_STATE_CANCELED,
		pluginpb.TaskState_TASK_STATE_FAILED, pluginpb.TaskState_TASK_STATE_FINISHED))
	return filepath.Join(root, checkpoint.Dir(1)), m
}

// copySavepoint copies a savepoint directory (with the file store's
// checksum sidecars) to a new one, as a user moving a savepoint would.
func copySavepoint(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// rewrite replaces a file of a savepoint through storage (so that its
// checksum matches the new content) with what change makes of it.
func rewrite(t *testing.T, dir, name string, change func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, fileURL(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, name, bytes.NewReader(change(b))); err != nil {
		t.Fatal(err)
	}
}

// flipOnDisk flips a byte of a file behind storage's back.
func flipOnDisk(t *testing.T, path string, at func(n int) int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at(len(b))] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stateFileOf returns a non-empty state file of operator uid, and one of
// its key-group slices.
func stateFileOf(t *testing.T, m *pluginpb.CheckpointMetadata, uid string) (string, *pluginpb.KeyGroupSlice) {
	t.Helper()
	for _, s := range checkpoint.Operator(m, uid).GetSubtasks() {
		if s.GetFile() != "" && len(s.GetKeyGroups()) > 0 {
			return s.GetFile(), s.GetKeyGroups()[0]
		}
	}
	t.Fatalf("operator %s wrote no keyed state file", uid)
	return "", nil
}

// wideKV is pluginKV with more fields: a job that reduces wideKVs under
// the UID of a reduce of pluginKVs cannot read its state.
type wideKV struct {
	K, V int
	W    [8]float64
}

// sumJobVariant is checkpointedSumJob's graph with the reduce's UID, its
// value type (wide) or the max parallelism changed.
func sumJobVariant(sumUID string, wide bool, maxParallelism int) *Job {
	job := NewJob("sum")
	if maxParallelism > 0 {
		job.SetMaxParallelism(maxParallelism)
	}
	src := FromSource[int](job, newGatedSource([]int{1, 2, 3}, 0), WithUID("src"))
	if wide {
		pairs := Map(src, func(x int) wideKV { return wideKV{K: x % 7, V: 2 * x} }, WithUID("pair"))
		sums := Reduce(KeyBy(pairs, func(r wideKV) int { return r.K }), func(a, b wideKV) wideKV { return wideKV{K: a.K, V: a.V + b.V} }, WithUID(sumUID))
		SinkTo(sums, Collect[wideKV](), WithUID("out"))
		return job
	}
	pairs := Map(src, func(x int) pluginKV { return pluginKV{K: x % 7, V: 2 * x} }, WithUID("pair"))
	sums := Reduce(KeyBy(pairs, func(r pluginKV) int { return r.K }), func(a, b pluginKV) pluginKV { return pluginKV{K: a.K, V: a.V + b.V} }, WithUID(sumUID))
	SinkTo(sums, &lastValues{}, WithUID("out"))
	return job
}

// validate prepares a plugin of job with validate_restore for the
// savepoint in dir at parallelism p.
func validate(t *testing.T, job *Job, dir string, p uint32, allow bool) error {
	t.Helper()
	h := newPluginHarness(t, job)
	resp, err := h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{JobId: "j2", DataHost: "127.0.0.1",
		ValidateRestore: true, Parallelism: p,
		Restore: &pluginpb.RestoreSpec{Url: fileURL(t, dir), CheckpointId: 1, AllowNonRestoredState: allow}})
	if err == nil && resp.GetDataAddr() == "" {
		t.Fatal("prepare validated the restore but gave no data address")
	}
	if err != nil && status.Code(err) != codes.InvalidArgument {
		t.Fatalf("prepare refused with %v, want InvalidArgument", err)
	}
	if err != nil {
		// A refused Prepare leaves the plugin unprepared: it may be
		// prepared again.
		if _, perr := h.client.Prepare(context.Background(), &pluginpb.PrepareRequest{JobId: "j2", DataHost: "127.0.0.1"}); perr != nil {
			t.Fatalf("prepare after a refusal: %v", perr)
		}
	}
	return err
}

// Prepare with validate_restore checks, before any task starts, that the
// job can restore the savepoint, and refuses what does not fit saying what
// and where.
func TestPrepareValidatesRestore(t *testing.T) {
	sp, m := savepointOfSumJob(t)
	sumFile, kg := stateFileOf(t, m, "sum")

	wantRefused := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("the restore was validated, want a refusal naming %q", want)
		}
		msg := status.Convert(err).Message()
		t.Logf("refused: %s", msg)
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("refusal %q does not name %q", msg, w)
			}
		}
	}

	t.Run("same job at other parallelisms", func(t *testing.T) {
		for _, p := range []uint32{1, 2, 3, 8} {
			if err := validate(t, sumJobVariant("sum", false, 0), sp, p, false); err != nil {
				t.Fatalf("parallelism %d: %v", p, err)
			}
		}
	})
	t.Run("a state type the codec cannot read", func(t *testing.T) {
		err := validate(t, sumJobVariant("sum", true, 0), sp, 2, false)
		wantRefused(t, err, `operator "sum"`, `state "reduce"`, ".state", "decode", "wideKV", "pluginKV")
	})
	t.Run("a state type the codec cannot read, rescaled", func(t *testing.T) {
		err := validate(t, sumJobVariant("sum", true, 0), sp, 3, false)
		wantRefused(t, err, `operator "sum"`, `state "reduce"`, ".state", "decode")
	})
	t.Run("a state file that fails its checksum", func(t *testing.T) {
		dir := copySavepoint(t, sp)
		flipOnDisk(t, filepath.Join(dir, sumFile), func(n int) int { return n / 2 })
		err := validate(t, sumJobVariant("sum", false, 0), dir, 2, false)
		wantRefused(t, err, `operator "sum"`, sumFile, "checksum")
	})
	t.Run("a corrupt key group in a state file", func(t *testing.T) {
		// The file's checksum is good; the key group's own is not.
		dir := copySavepoint(t, sp)
		rewrite(t, dir, sumFile, func(b []byte) []byte {
			b[kg.GetOffset()+kg.GetLength()/2] ^= 0x40
			return b
		})
		err := validate(t, sumJobVariant("sum", false, 0), dir, 2, false)
		wantRefused(t, err, `operator "sum"`, "in "+sumFile, "key group", "corrupt")
	})
	t.Run("a missing state file", func(t *testing.T) {
		dir := copySavepoint(t, sp)
		if err := os.Remove(filepath.Join(dir, sumFile)); err != nil {
			t.Fatal(err)
		}
		err := validate(t, sumJobVariant("sum", false, 0), dir, 2, false)
		wantRefused(t, err, `operator "sum"`, sumFile, "not found")
	})
	t.Run("a _metadata that fails its checksum", func(t *testing.T) {
		dir := copySavepoint(t, sp)
		flipOnDisk(t, filepath.Join(dir, checkpoint.MetadataName), func(n int) int { return n - 6 })
		err := validate(t, sumJobVariant("sum", false, 0), dir, 2, false)
		wantRefused(t, err, checkpoint.MetadataName, "checksum")
	})
	t.Run("a corrupt _metadata", func(t *testing.T) {
		dir := copySavepoint(t, sp)
		rewrite(t, dir, checkpoint.MetadataName, func(b []byte) []byte {
			b[len(b)-6] ^= 0x40
			return b
		})
		err := validate(t, sumJobVariant("sum", false, 0), dir, 2, false)
		wantRefused(t, err, checkpoint.MetadataName, "corrupt checkpoint metadata")
	})
	t.Run("an unknown format version", func(t *testing.T) {
		dir := copySavepoint(t, sp)
		rewrite(t, dir, checkpoint.MetadataName, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[len(checkpoint.Magic):], checkpoint.FormatVersion+1)
			return b
		})
		err := validate(t, sumJobVariant("sum", false, 0), dir, 2, false)
		wantRefused(t, err, checkpoint.MetadataName, "unknown checkpoint format version 2")
	})
	t.Run("no savepoint", func(t *testing.T) {
		err := validate(t, sumJobVariant("sum", false, 0), t.TempDir(), 2, false)
		wantRefused(t, err, checkpoint.MetadataName, "not found")
	})
	t.Run("a missing uid", func(t *testing.T) {
		err := validate(t, sumJobVariant("total", false, 0), sp, 2, false)
		wantRefused(t, err, `"sum"`, "allow-non-restored-state")
		if err := validate(t, sumJobVariant("total", false, 0), sp, 2, true); err != nil {
			t.Fatalf("with allow-non-restored-state: %v", err)
		}
	})
	t.Run("a changed max parallelism", func(t *testing.T) {
		err := validate(t, sumJobVariant("sum", false, 64), sp, 2, false)
		wantRefused(t, err, "max parallelism 128", "max parallelism 64")
	})
}
