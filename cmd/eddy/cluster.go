package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show and change the control plane's Raft group",
	}
	printCluster := func(cmd *cobra.Command, cl api.Cluster) error {
		if g.json {
			return printJSON(cmd.OutOrStdout(), cl)
		}
		var rows [][]string
		for _, m := range cl.Members {
			role := "follower"
			if m.Leader {
				role = "leader"
			}
			rows = append(rows, []string{m.ID, role, m.Suffrage, m.RaftAddr, m.GRPCAddr, m.HTTPAddr})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "cluster %s, term %d, leader %s\n", cl.ClusterID, cl.Term, orDash(cl.LeaderID))
		return table(cmd.OutOrStdout(), "ID\tROLE\tSUFFRAGE\tRAFT\tGRPC\tHTTP", rows)
	}
	members := &cobra.Command{
		Use:   "members",
		Short: "List the control plane nodes, the leader and the term",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cl, err := c.Cluster(cmd.Context())
			if err != nil {
				return err
			}
			return printCluster(cmd, cl)
		},
	}
	join := &cobra.Command{
		Use:   "join NODE_HTTP_ADDRESS",
		Short: "Add a new node (started without --bootstrap or --join) to the cluster",
		Long: `Add a node to the cluster at --address. The node must be running and have no
state of another cluster; it is asked for its id and addresses, then added as a
voter.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := client.New([]string{args[0]}).Node(cmd.Context())
			if err != nil {
				return fmt.Errorf("ask node %s who it is: %w", args[0], err)
			}
			cl, err := c.Join(cmd.Context(), api.JoinRequest{
				NodeID: n.ID, RaftAddr: n.RaftAddr, GRPCAddr: n.GRPCAddr, HTTPAddr: n.HTTPAddr, ClusterID: n.ClusterID,
			})
			if err != nil {
				return err
			}
			return printCluster(cmd, cl)
		},
	}
	leave := &cobra.Command{
		Use:   "leave NODE_ID",
		Short: "Remove a node from the cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cl, err := c.Leave(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printCluster(cmd, cl)
		},
	}
	cmd.AddCommand(members, join, leave)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
