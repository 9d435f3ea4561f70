package main

import (
	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/server"
)

func newServerCmd(g *globals) *cobra.Command {
	cfg := server.DefaultConfig()
	var join string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a control plane node",
		Long: `Run a control plane node. Start the first node of a new cluster with
--bootstrap and the others with --join pointing at any existing node (its gRPC
or HTTP address). A node restarted with its data dir rejoins with its state.`,
		Example: `  eddy server --node-id n1 --data-dir data/n1 --bootstrap
  eddy server --node-id n2 --data-dir data/n2 --raft-addr 127.0.0.1:7201 \
      --grpc-addr 127.0.0.1:7202 --http-addr 127.0.0.1:8082 --join 127.0.0.1:7102`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Join = client.ParseAddresses(join)
			s, err := server.New(cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			<-cmd.Context().Done()
			log.Info("shutting down")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeID, "node-id", "", "this node's stable id (required)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the Raft log and snapshots (required)")
	f.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "Raft listen and advertise address")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "gRPC listen address (workers, other nodes)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "REST API listen address")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", false, "found a new cluster with this node (first node only)")
	f.StringVar(&join, "join", "", "join the cluster through these nodes' gRPC or HTTP addresses, comma-separated")
	f.StringVar(&cfg.Storage, "storage", "", "URL of the storage every node and worker shares, for artifacts, checkpoints and savepoints (file:///shared/dir or s3://bucket/prefix; default: file:// under --data-dir, which suits one node only)")
	f.StringVar(&cfg.Checkpoints, "checkpoints", "", "URL under which jobs' checkpoints go, as <URL>/<job id>/chk-<id> (default: <storage>/checkpoints)")
	f.StringVar(&cfg.Savepoints, "savepoints", "", "URL of the default savepoint directory, for savepoints requested without one (default: <storage>/savepoints)")
	addRaftTimingFlags(cmd, &cfg)
	_ = cmd.MarkFlagRequired("node-id")
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

func addRaftTimingFlags(cmd *cobra.Command, cfg *server.Config) {
	f := cmd.Flags()
	f.DurationVar(&cfg.HeartbeatTimeout, "raft-heartbeat-timeout", cfg.HeartbeatTimeout, "time without leader contact before a follower starts an election")
	f.DurationVar(&cfg.ElectionTimeout, "raft-election-timeout", cfg.ElectionTimeout, "time a candidate waits for votes")
	f.DurationVar(&cfg.LeaderLeaseTimeout, "raft-leader-lease-timeout", cfg.LeaderLeaseTimeout, "time a leader keeps leading without quorum contact")
	f.DurationVar(&cfg.CommitTimeout, "raft-commit-timeout", cfg.CommitTimeout, "longest pause before an idle leader heartbeats")
	f.DurationVar(&cfg.SnapshotInterval, "raft-snapshot-interval", cfg.SnapshotInterval, "how often to check whether to snapshot and compact the log")
	f.Uint64Var(&cfg.SnapshotThreshold, "raft-snapshot-threshold", cfg.SnapshotThreshold, "log entries since the last snapshot that trigger a new one")
	f.DurationVar(&cfg.ApplyTimeout, "apply-timeout", cfg.ApplyTimeout, "bound on a write; without quorum it fails after this")
	f.DurationVar(&cfg.LeaderWait, "leader-wait", cfg.LeaderWait, "how long a call waits for a leader before failing with no_leader")
	f.DurationVar(&cfg.WorkerHeartbeatInterval, "worker-heartbeat-interval", cfg.WorkerHeartbeatInterval, "how often workers heartbeat")
	f.DurationVar(&cfg.WorkerHeartbeatTimeout, "worker-heartbeat-timeout", cfg.WorkerHeartbeatTimeout, "silence after which a worker is marked lost")
}
