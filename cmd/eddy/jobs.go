package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/api"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func newListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List jobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			jobs, err := c.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), jobs)
			}
			var rows [][]string
			for _, j := range jobs {
				rows = append(rows, []string{j.ID, j.Name, j.Status, fmt.Sprint(j.Parallelism), ago(j.SubmittedAt), j.StatusReason})
			}
			return table(cmd.OutOrStdout(), "ID\tNAME\tSTATUS\tPARALLELISM\tSUBMITTED\tREASON", rows)
		},
	}
}

func newInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "info JOB",
		Short: "Show a job: status, tasks and checkpoints",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			// The checkpoint view is best effort: info works without it.
			cps, cpErr := c.Checkpoints(cmd.Context(), args[0])
			if g.json {
				if cpErr != nil {
					return printJSON(w, j)
				}
				return printJSON(w, struct {
					api.Job
					CheckpointStats api.Checkpoints `json:"checkpoint_stats"`
				}{j, cps})
			}
			fmt.Fprintf(w, "Job:          %s\nName:         %s\nStatus:       %s\n", j.ID, j.Name, j.Status)
			if j.StatusReason != "" {
				fmt.Fprintf(w, "Reason:       %s\n", j.StatusReason)
			}
			if j.Restarts > 0 {
				fmt.Fprintf(w, "Restarts:     %d (attempt %d), last cause: %s\n", j.Restarts, j.Attempt, j.Failure)
			}
			if j.RestoredCheckpoint != 0 {
				fmt.Fprintf(w, "Restored:     checkpoint %d from %s\n", j.RestoredCheckpoint, j.RestoredURL)
			}
			if j.Restore != nil {
				allow := ""
				if j.Restore.AllowNonRestoredState {
					allow = " (non-restored state allowed)"
				}
				fmt.Fprintf(w, "Submitted from: savepoint %d at %s%s\n", j.Restore.CheckpointID, j.Restore.URL, allow)
			}
			fmt.Fprintf(w, "Parallelism:  %d (max %d)\nSubmitted:    %s\nUpdated:      %s\n",
				j.Parallelism, j.MaxParallelism, j.SubmittedAt.Format(time.RFC3339), j.UpdatedAt.Format(time.RFC3339))
			if j.Artifact != nil {
				fmt.Fprintf(w, "Artifact:     sha256:%s\n", j.Artifact.SHA256)
			}
			if len(j.Tasks) > 0 {
				fmt.Fprintln(w, "\nTasks:")
				var rows [][]string
				for _, t := range j.Tasks {
					rows = append(rows, []string{t.Task, t.WorkerID, fmt.Sprint(t.Slot), fmt.Sprint(t.Attempt)})
				}
				if err := table(w, "TASK\tWORKER\tSLOT\tATTEMPT", rows); err != nil {
					return err
				}
			}
			if len(j.Execution) > 0 {
				fmt.Fprintf(w, "\nExecution (attempt %d):\n", j.Attempt)
				var rows [][]string
				for _, t := range j.Execution {
					rows = append(rows, []string{t.Name, fmt.Sprint(t.Subtask), t.WorkerID, t.State, t.Error})
				}
				if err := table(w, "OPERATORS\tSUBTASK\tWORKER\tSTATE\tERROR", rows); err != nil {
					return err
				}
			}
			if len(j.Savepoints) > 0 {
				fmt.Fprintln(w, "\nSavepoints:")
				var rows [][]string
				for _, sp := range j.Savepoints {
					kind := "savepoint"
					if sp.Stop {
						kind = "stop"
					}
					when := "-"
					if !sp.CompletedAt.IsZero() {
						when = sp.CompletedAt.Format(time.RFC3339)
					}
					rows = append(rows, []string{fmt.Sprint(sp.ID), kind, sp.Status, when, humanBytes(sp.SizeBytes), sp.URL, sp.Failure})
				}
				if err := table(w, "ID\tKIND\tSTATUS\tCOMPLETED\tSIZE\tURL\tFAILURE", rows); err != nil {
					return err
				}
			}
			if cpErr == nil && cps.Config != nil {
				fmt.Fprintf(w, "\nCheckpointing: every %s, timeout %s, retain %d, %d failures tolerated; restart: %s",
					time.Duration(cps.Config.IntervalMs)*time.Millisecond, time.Duration(cps.Config.TimeoutMs)*time.Millisecond,
					cps.Config.Retain, cps.Config.TolerableFailures, cps.Config.Restart.Strategy)
				if cps.Config.Restart.Strategy != "none" {
					if cps.Config.Restart.MaxAttempts == 0 {
						fmt.Fprint(w, " (no limit)")
					} else {
						fmt.Fprintf(w, " (at most %d)", cps.Config.Restart.MaxAttempts)
					}
				}
				fmt.Fprintf(w, "\nCheckpoints:   %d completed, %d failed, %d in progress\n", cps.Counts.Completed, cps.Counts.Failed, cps.Counts.InProgress)
				if cps.Latest != nil {
					fmt.Fprintf(w, "Latest:        %d, %s in %s at %s\n               %s\n", cps.Latest.ID, humanBytes(cps.Latest.SizeBytes),
						time.Duration(cps.Latest.DurationMs)*time.Millisecond, cps.Latest.CompletedAt.Format(time.RFC3339), cps.Latest.URL)
				}
				if len(cps.History) > 0 {
					fmt.Fprintln(w, "\nRecent checkpoints:")
					var rows [][]string
					for i, cp := range cps.History {
						if i == 10 {
							break
						}
						rows = append(rows, []string{fmt.Sprint(cp.ID), cp.Status, cp.TriggeredAt.Format(time.RFC3339),
							(time.Duration(cp.DurationMs) * time.Millisecond).String(), fmt.Sprint(cp.SizeBytes), cp.Failure})
					}
					return table(w, "ID\tSTATUS\tTRIGGERED\tDURATION\tBYTES\tFAILURE", rows)
				}
				return nil
			}
			if len(j.Checkpoints) > 0 {
				fmt.Fprintln(w, "\nCheckpoints:")
				var rows [][]string
				for _, cp := range j.Checkpoints {
					kind := "checkpoint"
					if cp.Savepoint {
						kind = "savepoint"
					}
					rows = append(rows, []string{fmt.Sprint(cp.ID), kind, cp.CompletedAt.Format(time.RFC3339), fmt.Sprint(cp.SizeBytes), cp.URL})
				}
				return table(w, "ID\tKIND\tCOMPLETED\tBYTES\tURL", rows)
			}
			return nil
		},
	}
}

func newCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a job",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			j, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), j)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s is %s\n", j.ID, j.Status)
			return nil
		},
	}
}

func newWorkersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List workers and their slots",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws, err := c.Workers(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), ws)
			}
			var rows [][]string
			var notes []string
			for _, w := range ws {
				status, since := w.Status, w.StatusChangeAt
				if u := w.Unreachable; u != nil {
					// Alive by its heartbeats, but the leader's calls fail.
					status, since = "UNREACHABLE", u.Since
					notes = append(notes, fmt.Sprintf("%s: the leader cannot reach it (%s); its slots are skipped until its next heartbeat", w.ID, u.Cause))
				}
				rows = append(rows, []string{w.ID, status, fmt.Sprintf("%d/%d", w.SlotsFree, w.Slots), w.Address, ago(since)})
			}
			if err := table(cmd.OutOrStdout(), "ID\tSTATUS\tFREE SLOTS\tADDRESS\tSINCE", rows); err != nil {
				return err
			}
			for _, n := range notes {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
}
