// Command eddy is Eddy's single binary: the control plane server, the worker,
// a one-process local cluster, and the client commands that talk to a cluster
// over its REST API.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eddy-streams/eddy/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "eddy:", err)
		os.Exit(1)
	}
}

type globals struct {
	address   string
	logLevel  string
	logFormat string
	json      bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "eddy",
		Short:         "Eddy is a distributed stream processor with exactly-once state",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defAddr := os.Getenv("EDDY_ADDRESS")
	if defAddr == "" {
		defAddr = "127.0.0.1:8081"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.address, "address", defAddr, "control plane HTTP addresses, comma-separated; any node will do (env EDDY_ADDRESS)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVar(&g.json, "json", false, "print results as JSON")
	root.AddCommand(
		newServerCmd(g), newWorkerCmd(g), newLocalCmd(g),
		newRunCmd(g), newListCmd(g), newInfoCmd(g), newCancelCmd(g), newCheckpointCmd(g), newSavepointCmd(g), newStopCmd(g), newMigrateCmd(g), newWorkersCmd(g), newClusterCmd(g), newNexmarkCmd(g),
	)
	return root
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", g.logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
}

func (g *globals) client() (*client.Client, error) {
	addrs := client.ParseAddresses(g.address)
	if len(addrs) == 0 {
		return nil, errors.New("no control plane address: use --address or EDDY_ADDRESS")
	}
	return client.New(addrs), nil
}
