package handshake

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// ProtocolVersion is the version of the plugin protocol. It changes only
// when the wire between worker and plugin breaks; a worker refuses a job
// binary built with another version.
const ProtocolVersion = 1

// PluginName is the name the task executor is dispensed under.
const PluginName = "task_executor"

// Config is the handshake both sides must agree on. The magic cookie is not
// a security measure: it tells a job binary that a worker launched it (so
// that it serves the plugin protocol instead of running the job locally),
// and it makes a worker refuse a binary that is not an Eddy job quickly.
var Config = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "EDDY_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "5f8c0e7b6a1d4c39b2e7a90d3f6e1c48eddy",
}

// Plugins returns the plugin set to serve, with impl as the task executor.
// A worker passes nil: it only dispenses clients.
func Plugins(impl pluginpb.TaskExecutorServer) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &Plugin{Impl: impl}}
}

// Plugin is the go-plugin GRPCPlugin of the task executor. Impl is set on
// the serving side (the job binary) only.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pluginpb.TaskExecutorServer
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers Impl with the plugin's gRPC server.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("handshake: no task executor to serve")
	}
	pluginpb.RegisterTaskExecutorServer(s, p.Impl)
	return nil
}

// GRPCClient returns a *Client over conn. ctx ends when the plugin process
// has exited.
func (p *Plugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{TaskExecutorClient: pluginpb.NewTaskExecutorClient(conn), done: ctx.Done()}, nil
}

// Client is the worker's side of a job plugin: the task executor's client,
// and a way to learn that the plugin process has exited.
type Client struct {
	pluginpb.TaskExecutorClient
	done <-chan struct{}
}

// Exited returns a channel that is closed once the plugin process has exited
// and go-plugin has collected its exit status and the rest of its output.
// It is nil (never closed) for a client that go-plugin did not start, as in
// go-plugin's in-process test helpers.
func (c *Client) Exited() <-chan struct{} { return c.done }

// OutputEnd is the line a plugin writes to its standard output after the
// last output of a job attempt: the worker, which receives a plugin's
// output on a stream of its own, waits for it before it stops the plugin,
// so that nothing the job printed is lost. The worker removes the line.
const OutputEnd = "\x1eeddy:output-end"
