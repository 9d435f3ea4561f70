package main

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/controlplane/server"
	"github.com/eddy-streams/eddy/worker"
)

func newLocalCmd(g *globals) *cobra.Command {
	cfg := server.DefaultConfig()
	cfg.NodeID = "local"
	dataDir := filepath.Join("data", "local")
	workers, slots := 2, uint32(4)
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a one-process cluster: a control plane node and workers",
		Long: `Run a complete cluster in one process, with no external service: one control
plane node and --workers workers, keeping its state under --data-dir. It is the
quickest way to try Eddy; the client commands reach it at its --http-addr.`,
		Args: cobra.NoArgs,
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
			var wg sync.WaitGroup
			for i := range workers {
				wc := worker.DefaultConfig()
				wc.ID = fmt.Sprintf("local-worker-%d", i+1)
				wc.DataDir = filepath.Join(dataDir, wc.ID)
				wc.Servers = []string{s.GRPCAddr()}
				wc.Slots = slots
				wc.Logger = log
				w, err := worker.New(wc)
				if err != nil {
					return err
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = w.Run(cmd.Context())
				}()
			}
			fmt.Fprintf(cmd.OutOrStdout(), `Eddy is running locally: one control plane node, %d workers with %d slots each.
  REST API: http://%s/v1/overview
  try:  bin/eddy --address %s cluster members
        bin/eddy --address %s workers
Press Ctrl-C to stop.
`, workers, slots, s.HTTPAddr(), s.HTTPAddr(), s.HTTPAddr())
			<-cmd.Context().Done()
			wg.Wait()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", dataDir, "directory for the local cluster's state")
	f.IntVar(&workers, "workers", workers, "number of workers")
	f.Uint32Var(&slots, "slots", slots, "slots per worker")
	f.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "Raft address of the control plane node")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC address of the control plane node")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "REST API address")
	return cmd
}
