package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/eddy-streams/eddy/proto/eddypb"
)

// Config configures a worker.
type Config struct {
	// ID is the worker's stable identity; empty means the one stored in
	// DataDir, or a new one stored there.
	ID string
	// DataDir holds the worker's id and, later, its local state.
	DataDir string
	// Servers are gRPC addresses of control plane nodes; any one will do.
	Servers []string
	// Slots is how many tasks the worker runs at once.
	Slots uint32
	// GRPCAddr is where the worker listens for deployments; port 0 picks one.
	GRPCAddr string
	// RetryInterval is the pause between attempts to reach the control plane.
	RetryInterval time.Duration
	// Logger receives the worker's logs.
	Logger *slog.Logger
	// JobStdout, when set, receives what job plugins print to their standard
	// output, as it is (eddy local does this); otherwise it is logged, a line
	// at a time.
	JobStdout io.Writer
	// Dial, when set, is used for every connection (tests inject faults).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DataHost is the host (name or IP, no port) at which the job plugins
	// of this worker accept data from their peers on other workers; empty
	// means 127.0.0.1.
	DataHost string
	// CancelTimeout bounds how long CancelTasks waits for cancelled tasks
	// to end before it kills their plugin process; zero means 10s.
	CancelTimeout time.Duration
	// PluginStartTimeout bounds how long a job binary may take to answer
	// the plugin handshake; zero means one minute.
	PluginStartTimeout time.Duration
}

// Defaults of the Config fields whose zero value means "the default".
const (
	DefaultDataHost           = "127.0.0.1"
	DefaultCancelTimeout      = 10 * time.Second
	DefaultPluginStartTimeout = time.Minute
)

// DefaultConfig returns a worker with four slots.
func DefaultConfig() Config {
	return Config{
		DataDir:       "data/worker",
		Servers:       []string{"127.0.0.1:7102"},
		Slots:         4,
		GRPCAddr:      "127.0.0.1:0",
		RetryInterval: 200 * time.Millisecond,
		Logger:        slog.Default(),

		DataHost:           DefaultDataHost,
		CancelTimeout:      DefaultCancelTimeout,
		PluginStartTimeout: DefaultPluginStartTimeout,
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate reports the problems with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.ID != "" && !idPattern.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("worker id %q: want 1-64 letters, digits, '.', '_' or '-'", c.ID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("at least one control plane address is required"))
	}
	if c.Slots == 0 || c.Slots > 1024 {
		errs = append(errs, fmt.Errorf("slots %d: want 1 to 1024", c.Slots))
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, errors.New("retry interval must be positive"))
	}
	if _, _, err := net.SplitHostPort(c.DataHost); err == nil || strings.ContainsAny(c.DataHost, "/ []") {
		errs = append(errs, fmt.Errorf("data host %q: want a host name or IP address without a port", c.DataHost))
	} else if ip := net.ParseIP(c.DataHost); ip != nil && ip.IsUnspecified() {
		errs = append(errs, fmt.Errorf("data host %q: want an address other workers can reach, not a wildcard", c.DataHost))
	}
	if c.CancelTimeout < 0 {
		errs = append(errs, fmt.Errorf("cancel timeout %s: want a positive duration", c.CancelTimeout))
	}
	if c.PluginStartTimeout < 0 {
		errs = append(errs, fmt.Errorf("plugin start timeout %s: want a positive duration", c.PluginStartTimeout))
	}
	return errors.Join(errs...)
}

// Worker is a running worker process.
type Worker struct {
	cfg      Config
	id       string
	instance string
	log      *slog.Logger
	ln       net.Listener
	grpc     *grpc.Server

	mu    sync.Mutex
	conns []*grpc.ClientConn
	cur   int
	reg   bool // registered with the current instance

	// ctx lives until the worker stops; the report loop runs under it.
	ctx        context.Context
	cancel     context.CancelFunc
	reports    *reportQueue
	reportDone chan struct{}

	jobsMu sync.Mutex
	jobs   map[jobKey]*jobRun     // plugin processes, by job attempt
	tasks  map[taskKey]*taskEntry // latest state of every task
	closed bool                   // shutting down: no new plugins

	artMu   sync.Mutex
	artBusy map[string]chan struct{} // artifacts being fetched, by sha256
}

// New prepares a worker and starts listening; Run registers it.
func New(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.DataHost == "" {
		cfg.DataHost = DefaultDataHost
	}
	if cfg.CancelTimeout == 0 {
		cfg.CancelTimeout = DefaultCancelTimeout
	}
	if cfg.PluginStartTimeout == 0 {
		cfg.PluginStartTimeout = DefaultPluginStartTimeout
	}
	id, err := loadID(cfg.DataDir, cfg.ID)
	if err != nil {
		return nil, err
	}
	if err := clearStateDir(cfg.DataDir, cfg.Logger); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, id: id, instance: newHex(8), log: cfg.Logger.With("worker_id", id),
		reports: newReportQueue(), reportDone: make(chan struct{}),
		jobs: map[jobKey]*jobRun{}, tasks: map[taskKey]*taskEntry{}, artBusy: map[string]chan struct{}{}}
	for _, a := range cfg.Servers {
		c, err := grpc.NewClient("passthrough:///"+a,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, s string) (net.Conn, error) { return cfg.Dial(ctx, "tcp", s) }))
		if err != nil {
			w.closeConns()
			return nil, fmt.Errorf("control plane address %s: %w", a, err)
		}
		w.conns = append(w.conns, c)
	}
	w.ln, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		w.closeConns()
		return nil, fmt.Errorf("listen %s: %w", cfg.GRPCAddr, err)
	}
	w.grpc = grpc.NewServer()
	healthpb.RegisterHealthServer(w.grpc, health.NewServer())
	eddypb.RegisterWorkerServiceServer(w.grpc, &service{w: w})
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(w.reportDone)
		w.reportLoop(w.ctx)
	}()
	go func() { _ = w.grpc.Serve(w.ln) }()
	return w, nil
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.id }

// InstanceID returns the id of this run of the worker.
func (w *Worker) InstanceID() string { return w.instance }

// Addr returns the worker's gRPC address.
func (w *Worker) Addr() string { return w.ln.Addr().String() }

// Registered reports whether the current instance is registered.
func (w *Worker) Registered() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reg
}

// Run registers and heartbeats until ctx ends, then stops the worker.
func (w *Worker) Run(ctx context.Context) error {
	defer w.stop()
	w.log.Info("worker starting", "instance_id", w.instance, "slots", w.cfg.Slots, "address", w.Addr(), "servers", strings.Join(w.cfg.Servers, ","))
	for ctx.Err() == nil {
		interval, err := w.register(ctx)
		if err != nil {
			w.log.Warn("register failed; retrying", "error", err)
			sleep(ctx, w.cfg.RetryInterval)
			continue
		}
		w.heartbeat(ctx, interval)
	}
	return nil
}

func (w *Worker) client() (eddypb.ControlPlaneClient, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return eddypb.NewControlPlaneClient(w.conns[w.cur]), w.cur
}

// rotate moves to the next control plane address after a failure at i.
func (w *Worker) rotate(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == i {
		w.cur = (w.cur + 1) % len(w.conns)
	}
}

func (w *Worker) register(ctx context.Context) (time.Duration, error) {
	var errs []error
	for range w.conns {
		c, i := w.client()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.RegisterWorker(cctx, &eddypb.RegisterWorkerRequest{
			WorkerId: w.id, Address: w.Addr(), Slots: w.cfg.Slots, InstanceId: w.instance,
		})
		cancel()
		if err == nil {
			w.mu.Lock()
			w.reg = true
			w.mu.Unlock()
			w.log.Info("registered", "via", w.cfg.Servers[i], "heartbeat_interval_ms", resp.HeartbeatIntervalMs)
			return max(time.Duration(resp.HeartbeatIntervalMs)*time.Millisecond, 10*time.Millisecond), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", w.cfg.Servers[i], err))
		w.rotate(i)
	}
	return 0, errors.Join(errs...)
}

// heartbeat returns when the worker must register again or ctx ends.
func (w *Worker) heartbeat(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, i := w.client()
		cctx, cancel := context.WithTimeout(ctx, max(2*interval, time.Second))
		resp, err := c.Heartbeat(cctx, &eddypb.HeartbeatRequest{WorkerId: w.id, InstanceId: w.instance, Tasks: w.activeTasks()})
		cancel()
		if err != nil {
			w.log.Debug("heartbeat failed; trying the next node", "via", w.cfg.Servers[i], "error", err)
			w.rotate(i)
			continue
		}
		for _, c := range resp.Cancel {
			w.log.Warn("control plane says the job attempt has ended; stopping its tasks", "job_id", c.JobId, "attempt", c.Attempt)
			go func() {
				if _, err := (&service{w: w}).CancelTasks(ctx, c); err != nil {
					w.log.Warn("stop tasks of an ended job", "job_id", c.JobId, "error", err)
				}
			}()
		}
		if resp.Reregister {
			w.mu.Lock()
			w.reg = false
			w.mu.Unlock()
			w.log.Warn("control plane does not know this worker as alive; registering again")
			return
		}
	}
}

// stop ends the worker: no more deployments, every plugin process killed,
// a last attempt to report the tasks that ended with them, and the
// connections closed.
func (w *Worker) stop() {
	w.grpc.Stop()
	w.stopPlugins()
	w.cancel()
	<-w.reportDone
	if n := w.reports.len(); n > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownReportTimeout)
		for batch := w.reports.peek(maxReportBatch); len(batch) > 0; batch = w.reports.peek(maxReportBatch) {
			if err := w.sendReport(ctx, batch); err != nil {
				w.log.Warn("could not report the last task states before shutting down", "tasks", w.reports.len(), "error", err)
				break
			}
			w.reports.drop(len(batch))
		}
		cancel()
	}
	w.closeConns()
}

// shutdownReportTimeout bounds the last report of a stopping worker.
const shutdownReportTimeout = 2 * time.Second

func (w *Worker) closeConns() {
	for _, c := range w.conns {
		_ = c.Close()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func newHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loadID returns the configured id, or the one stored in dir, or a new one
// that it stores, so that a restarted worker keeps its identity.
func loadID(dir, configured string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create worker data dir: %w", err)
	}
	path := filepath.Join(dir, "worker-id")
	if configured != "" {
		return configured, os.WriteFile(path, []byte(configured+"\n"), 0o644)
	}
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); idPattern.MatchString(id) {
			return id, nil
		}
	}
	host, _ := os.Hostname()
	host = regexp.MustCompile(`[^A-Za-z0-9.-]`).ReplaceAllString(host, "")
	if host == "" {
		host = "worker"
	}
	id := fmt.Sprintf("%s-%s", host, newHex(3))
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return id, os.WriteFile(path, []byte(id+"\n"), 0o644)
}
