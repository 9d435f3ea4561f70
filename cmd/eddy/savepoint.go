package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
)

func newSavepointCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "savepoint JOB [URL]",
		Short: "Take a savepoint of a running job and wait for it",
		Long: `Take a savepoint of a running job: a self-contained copy of its state in the
directory URL (file:///dir or s3://bucket/prefix), or, without URL, in a new
directory under the cluster's default (eddy server --savepoints). The job keeps
running. Restore it with eddy run --from-savepoint URL. The job must checkpoint
(enable checkpointing in the job).`,
		Example: `  eddy savepoint 3f2a s3://backups/wordcount/v1
  eddy savepoint 3f2a`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			url := ""
			if len(args) == 2 {
				url = args[1]
			}
			tr, err := c.TriggerSavepoint(cmd.Context(), args[0], url)
			if err != nil {
				return err
			}
			sp, err := waitSavepoint(cmd.Context(), c, args[0], tr, timeout, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), sp)
			}
			fmt.Fprintln(cmd.OutOrStdout(), sp.URL)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long to wait for the savepoint")
	return cmd
}

func newStopCmd(g *globals) *cobra.Command {
	var url string
	var drain bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop [--savepoint URL] [--drain] JOB",
		Short: "Stop a job with a savepoint and wait until it finished",
		Long: `Stop a running job with a savepoint: its sources stop after the savepoint's
barrier, the savepoint is taken into URL (default: a new directory under the
cluster's default), exactly-once sinks commit, and the job ends FINISHED. With
--drain every window and timer fires first (the end of event time), as at the
end of the input. If the savepoint fails, the job keeps running and the stop
fails with the cause. Prints the savepoint's URL.`,
		Example: `  eddy stop --savepoint s3://backups/wordcount/v1 3f2a`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			progress := cmd.ErrOrStderr()
			tr, err := c.StopWithSavepoint(ctx, args[0], url, drain)
			if err != nil {
				return err
			}
			sp, err := waitSavepoint(ctx, c, args[0], tr, timeout, progress)
			if err != nil {
				j, jerr := c.Job(ctx, args[0])
				if jerr == nil {
					return fmt.Errorf("stop failed: %w; job %s is %s", err, args[0], j.Status)
				}
				return fmt.Errorf("stop failed: %w", err)
			}
			fmt.Fprintf(progress, "waiting for job %s to finish\n", args[0])
			j, err := client.WaitJob(ctx, c, args[0], timeout, 200*time.Millisecond, func(j api.Job) bool {
				return j.Status == "FINISHED" || j.Status == "FAILED" || j.Status == "CANCELED" || j.Status == "RESTARTING"
			})
			if err != nil {
				return fmt.Errorf("savepoint taken at %s, but: %w", sp.URL, err)
			}
			if j.Status != "FINISHED" {
				return fmt.Errorf("savepoint taken at %s, but job %s is %s, not FINISHED: %s", sp.URL, j.ID, j.Status, j.StatusReason)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), sp)
			}
			fmt.Fprintf(progress, "job %s FINISHED\n", j.ID)
			fmt.Fprintln(cmd.OutOrStdout(), sp.URL)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "savepoint", "", "the savepoint's directory URL (default: a new directory under the cluster's default)")
	cmd.Flags().BoolVar(&drain, "drain", false, "fire every window and timer before the savepoint")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long to wait for the savepoint, then for the job to finish")
	return cmd
}

// waitSavepoint waits for a savepoint, showing its progress on w.
func waitSavepoint(ctx context.Context, c *client.Client, job string, tr api.SavepointTriggered, timeout time.Duration, w io.Writer) (api.Checkpoint, error) {
	start := time.Now()
	fmt.Fprintf(w, "savepoint %d of job %s triggered: %s\n", tr.ID, job, tr.URL)
	sp, err := client.WaitSavepoint(ctx, c, job, tr.RequestID, timeout, 200*time.Millisecond, func(api.Checkpoint) {
		fmt.Fprintf(w, "savepoint %d in progress (%s)\n", tr.ID, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return sp, err
	}
	fmt.Fprintf(w, "savepoint %d completed: %s in %s\n", sp.ID, humanBytes(sp.SizeBytes), time.Since(start).Round(time.Millisecond))
	return sp, nil
}

func newMigrateCmd(g *globals) *cobra.Command {
	var to, url string
	var drain bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "migrate JOB --to ADDRESS [--savepoint URL]",
		Short: "Move a running job to another cluster with its state",
		Long: `Move a running job to another cluster: copy its artifact there, stop it here
with a savepoint, and start the same job (graph, arguments, configuration, and
job id unless taken) from the savepoint there. The savepoint's directory must
be reachable by both clusters: a shared bucket as the default savepoint
directory, or given with --savepoint. Whatever step fails, the job runs on one
cluster: a stop that fails leaves it running here; if the other cluster
refuses it or does not start it, it is cancelled there and started again here
from the savepoint. The exit status is 0 only if the job runs on the target.`,
		Example: `  eddy migrate 3f2a --to 10.0.2.1:8081 --savepoint s3://shared/migrations/3f2a`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to: give the address of a node of the target cluster")
			}
			src, err := g.client()
			if err != nil {
				return err
			}
			dst := client.New(client.ParseAddresses(to))
			r, err := client.Migrate(cmd.Context(), src, dst, args[0], client.MigrateOptions{SavepointURL: url, Drain: drain, Timeout: timeout}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintln(cmd.OutOrStdout(), r.JobID)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "HTTP addresses of the target cluster's nodes, comma-separated")
	cmd.Flags().StringVar(&url, "savepoint", "", "the savepoint's directory URL, reachable by both clusters (default: the source's default directory)")
	cmd.Flags().BoolVar(&drain, "drain", false, "fire every window and timer before the savepoint")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "bound on each waiting step")
	return cmd
}
