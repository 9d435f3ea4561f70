package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/jobmanager"
)

type runFlags struct {
	parallelism int
	name        string
	jobID       string
	detach      bool
	// checkpointInterval and restartAttempts override the job's own, when
	// set (JobSpec.config).
	checkpointInterval string
	restartAttempts    string
	// fromSavepoint starts the job from a savepoint's directory.
	fromSavepoint    string
	allowNonRestored bool
}

// config returns the job configuration the flags set.
func (f runFlags) config() (map[string]string, error) {
	cfg := map[string]string{}
	if f.checkpointInterval != "" {
		if f.checkpointInterval != "0" {
			if d, err := time.ParseDuration(f.checkpointInterval); err != nil || d < 0 {
				return nil, fmt.Errorf("--checkpoint-interval %q: want a duration such as 10s, or 0", f.checkpointInterval)
			}
		}
		cfg[jobmanager.ConfigCheckpointInterval] = f.checkpointInterval
	}
	if f.restartAttempts != "" {
		if _, err := strconv.ParseUint(f.restartAttempts, 10, 32); err != nil {
			return nil, fmt.Errorf("--restart-attempts %q: want a number of restarts (0: no limit)", f.restartAttempts)
		}
		cfg[jobmanager.ConfigRestartAttempts] = f.restartAttempts
	}
	if len(cfg) == 0 {
		return nil, nil
	}
	return cfg, nil
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] ARTIFACT [-- ARGS...]",
		Short: "Submit a job binary to the cluster and follow it",
		Long: `Submit a job: ARTIFACT is a binary built from a main package that uses the
Eddy SDK. eddy asks it for its job graph, uploads it to the cluster (stored by
its SHA-256), submits the job and follows it until it ends (or returns at once
with --detach). Arguments after -- are passed to the job binary.`,
		Example: `  go build -o wordcount ./examples/wordcount
  eddy run -p 4 ./wordcount -- --lines 100000`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			j, err := submitArtifact(cmd.Context(), c, args[0], args[1:], f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if g.json && f.detach {
				return printJSON(cmd.OutOrStdout(), j)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "job %s submitted: %s, parallelism %d\n", j.ID, j.Name, j.Parallelism)
			if f.detach {
				fmt.Fprintln(cmd.OutOrStdout(), j.ID)
				return nil
			}
			return follow(cmd.Context(), c, j.ID, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.parallelism, "parallelism", "p", 1, "the job's default parallelism")
	fl.StringVar(&f.name, "name", "", "the job's name (default: the name the job gives itself)")
	fl.StringVar(&f.jobID, "job-id", "", "choose the job id (default: a new one); resubmitting the same id is refused")
	fl.BoolVarP(&f.detach, "detach", "d", false, "return once the job is submitted")
	fl.StringVar(&f.checkpointInterval, "checkpoint-interval", "", "override the job's checkpoint interval (e.g. 5s; 0 stops periodic checkpoints); the job must checkpoint")
	fl.StringVar(&f.fromSavepoint, "from-savepoint", "", "start the job from the savepoint (or retained checkpoint) in this directory URL; refused at once if it cannot be read or does not fit the job")
	fl.BoolVar(&f.allowNonRestored, "allow-non-restored-state", false, "with --from-savepoint: drop the state of operators (UIDs) the job no longer has instead of refusing")
	fl.StringVar(&f.restartAttempts, "restart-attempts", "", "override how many times a failed job restarts before it fails (0: no limit)")
	return cmd
}

// describe asks a job binary for its graph, as the SDK's Main answers when
// EDDY_DESCRIBE is set.
func describe(ctx context.Context, path string, args []string, parallelism int) (json.RawMessage, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, abs, args...)
	cmd.Env = append(os.Environ(), "EDDY_DESCRIBE=1", "EDDY_PARALLELISM="+strconv.Itoa(parallelism))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if msg := strings.TrimSpace(stderr.String()); runErr != nil && strings.HasPrefix(msg, "eddy job ") {
		// The SDK refused the graph: say why, in its words.
		return nil, fmt.Errorf("job graph of %s refused: %s", path, strings.TrimPrefix(msg, "eddy job "))
	}
	var probe struct {
		Vertices []json.RawMessage `json:"vertices"`
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if runErr != nil || json.Unmarshal(out, &probe) != nil || len(probe.Vertices) == 0 {
		why := "it did not describe a job graph"
		if runErr != nil {
			why = runErr.Error()
		}
		if tail := lastLines(stderr.String(), 5); tail != "" {
			why += ": " + tail
		}
		return nil, fmt.Errorf("%s is not an Eddy job (%s); build it from a main package that calls sdk.Main", path, why)
	}
	return json.RawMessage(out), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, " | "))
}

func submitArtifact(ctx context.Context, c *client.Client, path string, args []string, f runFlags, progress io.Writer) (api.Job, error) {
	if f.parallelism < 1 {
		return api.Job{}, fmt.Errorf("-p %d: want at least 1", f.parallelism)
	}
	cfg, err := f.config()
	if err != nil {
		return api.Job{}, err
	}
	if f.allowNonRestored && f.fromSavepoint == "" {
		return api.Job{}, fmt.Errorf("--allow-non-restored-state applies to --from-savepoint only")
	}
	graph, err := describe(ctx, path, args, f.parallelism)
	if err != nil {
		return api.Job{}, err
	}
	var restore *api.Restore
	if f.fromSavepoint != "" {
		restore = &api.Restore{URL: f.fromSavepoint, AllowNonRestoredState: f.allowNonRestored}
	}
	fmt.Fprintf(progress, "uploading %s\n", path)
	a, err := c.UploadArtifact(ctx, path)
	if err != nil {
		return api.Job{}, fmt.Errorf("upload %s: %w", path, err)
	}
	return c.Submit(ctx, api.SubmitJob{
		JobID: f.jobID, Name: f.name, Artifact: &a, Graph: graph, Args: args, Config: cfg, Restore: restore,
	})
}

// follow prints a job's status changes until it ends; a job that does not
// finish is an error.
func follow(ctx context.Context, c *client.Client, id string, w io.Writer) error {
	last := ""
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			var apiErr *client.Error
			if errors.As(err, &apiErr) && apiErr.Status < 500 {
				return err
			}
			fmt.Fprintf(w, "(control plane unavailable: %v; retrying)\n", err)
		} else {
			line := j.Status
			if j.StatusReason != "" {
				line += ": " + j.StatusReason
			}
			if line != last {
				fmt.Fprintf(w, "job %s %s\n", id, line)
				last = line
			}
			switch j.Status {
			case "FINISHED":
				return nil
			case "FAILED":
				return fmt.Errorf("job %s failed: %s", id, j.StatusReason)
			case "CANCELED":
				return fmt.Errorf("job %s was cancelled", id)
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "stopped following job %s; it keeps running (eddy cancel %s)\n", id, id)
			return nil
		case <-time.After(300 * time.Millisecond):
		}
	}
}
