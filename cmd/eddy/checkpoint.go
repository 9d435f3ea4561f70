package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
)

func newCheckpointCmd(g *globals) *cobra.Command {
	var noWait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "checkpoint JOB",
		Short: "Trigger a checkpoint of a running job and wait for it",
		Long: `Trigger a checkpoint of a running job now, after the one in progress if any,
and wait until it completes (or fails). The job must checkpoint (enable
checkpointing in the job).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			id, err := c.TriggerCheckpoint(ctx, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if noWait {
				if g.json {
					return printJSON(w, api.TriggeredCheckpoint{ID: id})
				}
				fmt.Fprintf(w, "checkpoint %d triggered\n", id)
				return nil
			}
			deadline := time.Now().Add(timeout)
			for {
				cps, err := c.Checkpoints(ctx, args[0])
				if err != nil {
					var apiErr *client.Error
					if errors.As(err, &apiErr) && apiErr.Status < 500 {
						return err
					}
				}
				for _, cp := range cps.History {
					if cp.ID != id || cp.Status == "IN_PROGRESS" {
						continue
					}
					if g.json {
						return printJSON(w, cp)
					}
					if cp.Status != "COMPLETED" {
						return fmt.Errorf("checkpoint %d %s: %s", id, cp.Status, cp.Failure)
					}
					printCheckpoint(w, cp)
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("checkpoint %d not complete after %s; see eddy info %s", id, timeout, args[0])
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the checkpoint is triggered")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long to wait for the checkpoint")
	return cmd
}

func printCheckpoint(w io.Writer, cp api.Checkpoint) {
	fmt.Fprintf(w, "checkpoint %d completed: %s in %s\n  %s\n", cp.ID, humanBytes(cp.SizeBytes),
		(time.Duration(cp.DurationMs) * time.Millisecond).String(), cp.URL)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
