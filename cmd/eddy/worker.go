package main

import (
	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/worker"
)

func newWorkerCmd(g *globals) *cobra.Command {
	cfg := worker.DefaultConfig()
	servers := "127.0.0.1:7102"
	cmd := &cobra.Command{
		Use:     "worker",
		Short:   "Run a worker that offers task slots to the control plane",
		Example: `  eddy worker --servers 127.0.0.1:7102,127.0.0.1:7202,127.0.0.1:7302 --slots 4 --data-dir data/w1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Servers = client.ParseAddresses(servers)
			w, err := worker.New(cfg)
			if err != nil {
				return err
			}
			return w.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&servers, "servers", servers, "gRPC addresses of control plane nodes, comma-separated; any one will do")
	f.StringVar(&cfg.ID, "id", "", "the worker's stable id (default: the one in --data-dir, or a new one)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the worker's id and local state")
	f.Uint32Var(&cfg.Slots, "slots", cfg.Slots, "how many tasks the worker runs at once")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "listen address for deployments")
	f.StringVar(&cfg.DataHost, "data-host", "127.0.0.1", "host on which this worker's job plugins accept data from other workers (must be reachable by them)")
	return cmd
}
