package procs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BinaryEnv names an environment variable that, when set, gives the path of
// an eddy binary to use instead of building one.
const BinaryEnv = "EDDY_BIN"

// RaceEnv names an environment variable that overrides whether the eddy
// binary is built with -race ("1" or "0"); by default it is when the calling
// binary is.
const RaceEnv = "EDDY_PROCS_RACE"

// buildTimeout bounds the one go build.
const buildTimeout = 5 * time.Minute

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the path of an eddy binary built from this module's
// cmd/eddy, building it on the first call of the process. Call RemoveBinary
// when the process is done with it (in TestMain, or at the end of main).
func Binary(t TB) string {
	t.Helper()
	build.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			build.path, build.err = filepath.Abs(p)
			return
		}
		build.path, build.err = buildEddy()
	})
	if build.err != nil {
		t.Fatalf("eddy binary: %v", build.err)
	}
	return build.path
}

// RemoveBinary deletes the binary Binary built, if any.
func RemoveBinary() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

func buildEddy() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "eddy-bin-")
	if err != nil {
		return "", err
	}
	build.dir = dir
	out := filepath.Join(dir, "eddy")
	if err := goBuild(ctx, root, out, "./cmd/eddy", nil); err != nil {
		return "", err
	}
	return out, nil
}

// BuildJob builds the main package pkg of this module (a path relative to
// the module's root, such as "./examples/wordcount") to the file out, and
// returns out. Like the eddy binary, it is built with -race when the
// calling binary is (see RaceEnv), so that a data race in a job's plugin
// process reaches its worker's log and fails the test in Close. flags are
// extra go build flags, such as "-ldflags=-X main.variant=2".
func BuildJob(t TB, out, pkg string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err == nil {
		out, err = filepath.Abs(out)
	}
	if err == nil {
		err = goBuild(ctx, root, out, pkg, flags)
	}
	if err != nil {
		t.Fatalf("build job %s: %v", pkg, err)
	}
	return out
}

// goBuild runs go build in root, with -race when it is wanted.
func goBuild(ctx context.Context, root, out, pkg string, flags []string) error {
	args := []string{"build", "-o", out}
	race := raceEnabled
	if v := os.Getenv(RaceEnv); v != "" {
		var err error
		if race, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%s=%q: %w", RaceEnv, v, err)
		}
	}
	if race {
		args = append(args, "-race")
	}
	args = append(args, flags...)
	args = append(args, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), root, err, b)
	}
	return nil
}

// moduleRoot returns the directory of the go.mod of the current directory's
// module.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (go env GOMOD = %q)", mod)
	}
	return filepath.Dir(mod), nil
}
