package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/server"
	"github.com/eddy-streams/eddy/worker"
)

func newLocalCmd(g *globals) *cobra.Command {
	cfg := server.DefaultConfig()
	cfg.NodeID = "local"
	dataDir := filepath.Join("data", "local")
	workers, slots := 2, uint32(4)
	var runArtifact string
	runFlags := runFlags{parallelism: 2}
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a one-process cluster: a control plane node and workers",
		Long: `Run a complete cluster in one process, with no external service: one control
plane node and --workers workers, keeping its state under --data-dir. It is the
quickest way to try Eddy; the client commands reach it at its --http-addr.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.DataDir = filepath.Join(dataDir, "server")
			cfg.Bootstrap = true
			s, err := server.New(cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			// Workers stop (and kill their job plugins) before the node does.
			ctx, stop := context.WithCancel(cmd.Context())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer stop()
			for i := range workers {
				wc := worker.DefaultConfig()
				wc.ID = fmt.Sprintf("local-worker-%d", i+1)
				wc.DataDir = filepath.Join(dataDir, wc.ID)
				wc.Servers = []string{s.GRPCAddr()}
				wc.Slots = slots
				wc.Logger = log
				if runArtifact != "" {
					// What the job prints is the point of --run: show it as it is.
					wc.JobStdout = &syncWriter{w: cmd.OutOrStdout()}
				}
				w, err := worker.New(wc)
				if err != nil {
					return err
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = w.Run(ctx)
				}()
			}
			if runArtifact != "" {
				return runOnLocal(cmd, s.HTTPAddr(), workers, runArtifact, runFlags)
			}
			fmt.Fprintf(cmd.OutOrStdout(), `Eddy is running locally: one control plane node, %d workers with %d slots each.
  REST API: http://%s/v1/overview
  try:  bin/eddy --address %s cluster members
        bin/eddy --address %s workers
Press Ctrl-C to stop.
`, workers, slots, s.HTTPAddr(), s.HTTPAddr(), s.HTTPAddr())
			<-ctx.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", dataDir, "directory for the local cluster's state")
	f.StringVar(&runArtifact, "run", "", "run this job binary on the local cluster, follow it, and stop when it ends")
	f.IntVarP(&runFlags.parallelism, "parallelism", "p", runFlags.parallelism, "with --run: the job's parallelism")
	f.IntVar(&workers, "workers", workers, "number of workers")
	f.Uint32Var(&slots, "slots", slots, "slots per worker")
	f.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "Raft address of the control plane node")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC address of the control plane node")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "REST API address")
	f.StringVar(&cfg.Storage, "storage", "", "storage URL (default: file:// under --data-dir)")
	return cmd
}

// runOnLocal submits a job to the local cluster once its workers are there,
// follows it, and returns when it ends.
func runOnLocal(cmd *cobra.Command, httpAddr string, workers int, artifact string, f runFlags) error {
	ctx := cmd.Context()
	c := client.New([]string{httpAddr})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, err := c.Workers(ctx)
		alive := 0
		for _, w := range ws {
			if w.Status == "ALIVE" {
				alive++
			}
		}
		if err == nil && alive == workers {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("local workers did not register within 30s (%d of %d; last error %v)", alive, workers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	args := cmd.Flags().Args()
	j, err := submitArtifact(ctx, c, artifact, args, f, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "job %s submitted: %s, parallelism %d\n", j.ID, j.Name, j.Parallelism)
	return follow(ctx, c, j.ID, cmd.ErrOrStderr())
}

// syncWriter serialises writes from several workers' plugins.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
