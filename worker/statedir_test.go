package worker_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/controlplane/cptest"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
	"github.com/eddy-streams/eddy/worker"
)

// The worker names the SDK's variable without linking the SDK: the two
// must agree.
func TestStateDirVariable(t *testing.T) {
	if worker.EnvStateDir != sdk.EnvStateDir {
		t.Fatalf("the worker sets %s, the SDK reads %s", worker.EnvStateDir, sdk.EnvStateDir)
	}
}

// Each plugin process keeps its local state in its own directory under the
// worker's data dir, removed when the process ends, however it ends.
func TestPluginStateDirRemovedWhenProcessEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref := e.upload(jobBinary(t), "jobs/job")

	// A job that finishes: its plugin was told the directory, which is
	// gone once the process stopped.
	out := t.TempDir()
	args := []string{"env", worker.EnvStateDir, out}
	resp := e.prepare("j1", 1, ref, args...)
	pid := pluginPID(t, e.w, "j1", 1)
	tasks := e.deployAll("j1", 1, 1, resp.GetDataAddr(), args...)
	e.cp.waitStates(t, 30*time.Second, "j1", 1, tasks, finished)
	want := filepath.Join(e.dataDir, "state", "j1-1")
	b, err := os.ReadFile(filepath.Join(out, "env.txt"))
	if err != nil || string(b) != want {
		t.Fatalf("the plugin saw %s=%q (%v), want %q", worker.EnvStateDir, b, err, want)
	}
	e.waitGone("j1", 1, pid)
	cptest.WaitFor(t, 5*time.Second, func() error { return gone(want) })

	// A plugin killed with its state on disk.
	resp = e.prepare("j2", 3, ref, "endless")
	pid = pluginPID(t, e.w, "j2", 3)
	tasks = e.deployAll("j2", 3, 1, resp.GetDataAddr(), "endless")
	e.cp.waitStates(t, 30*time.Second, "j2", 3, tasks, running)
	dir := filepath.Join(e.dataDir, "state", "j2-3")
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db", "000001.sst"), []byte("state"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.cp.waitStates(t, 30*time.Second, "j2", 3, tasks, failed)
	e.waitGone("j2", 3, pid)
	cptest.WaitFor(t, 5*time.Second, func() error { return gone(dir) })
}

// A worker starting removes what plugin processes of its previous run
// (which a crash of the worker may have left) kept in <data dir>/state.
func TestLeftoverStateRemovedAtStart(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	old := filepath.Join(dataDir, "state", "j9-2", "db")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "000007.sst"), []byte("state"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnvIn(t, dataDir)
	if err := gone(filepath.Join(dataDir, "state", "j9-2")); err != nil {
		t.Fatal(err)
	}
	if !e.logs.has("INFO removed local state left by earlier plugin processes") {
		t.Error("the worker did not log the removal")
	}
}

func gone(path string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s still exists (%v)", path, err)
	}
	return nil
}
