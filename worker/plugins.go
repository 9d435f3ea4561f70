package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/internal/logging"
	"github.com/eddy-streams/eddy/plugin-sdk/handshake"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// jobKey names one attempt of a job: the worker runs one plugin process per
// job attempt.
type jobKey struct {
	id      string
	attempt uint64
}

// envStateDir is the variable that tells a job's plugin where to keep local
// state files (sdk.EnvStateDir; the worker does not link the SDK).
const envStateDir = "EDDY_STATE_DIR"

func (k jobKey) String() string { return fmt.Sprintf("job %s attempt %d", k.id, k.attempt) }

// jobRun is the plugin process of one job attempt on this worker.
//
// Its life: PrepareJob starts it (start), DeployTasks deploys tasks onto it,
// relayEvents follows their states, and it ends when its tasks have all
// ended, when CancelTasks or the worker's shutdown stop it, or when it
// crashes; monitor notices the exit, fails what the process left running if
// nobody asked it to exit, and forgets the run.
type jobRun struct {
	w     *Worker
	key   jobKey
	log   *slog.Logger
	ready chan struct{} // closed when start has returned
	err   error         // why start failed; written before ready closes

	// Written by start, read-only once ready is closed (or, for the
	// goroutines start launches, once they run).
	cmd          *exec.Cmd
	pid          int
	client       *plugin.Client
	exec         *handshake.Client
	stderr       *stderrTail
	dataAddr     string
	sdkVersion   string
	eventsCtx    context.Context
	cancelEvents context.CancelFunc
	eventsDone   chan struct{} // closed when relayEvents returns
	exited       chan struct{} // closed when the process exited and monitor is done
	outputEnd    chan struct{} // closed when the plugin's output-end line arrived
	outputOnce   sync.Once

	killOnce sync.Once

	// Guarded by w.jobsMu.
	tasks       map[taskKey]bool // the tasks deployed onto the process
	acked       map[ackKey]bool  // acknowledgements relayed, against the plugin's replays
	maxAcked    uint64           // the highest checkpoint id in acked
	deploying   bool
	deployed    bool
	stopping    bool          // the worker ends the process: its exit is no crash
	ended       chan struct{} // closed once every deployed task has ended
	endedClosed bool
}

// stateDir is where the plugin process of the run keeps local state: its
// own directory under the worker's <data dir>/state, removed when the
// process exits. It is empty when the worker's environment sets
// EDDY_STATE_DIR: the plugins inherit it and the worker leaves it alone.
func (jr *jobRun) stateDir() string {
	if os.Getenv(envStateDir) != "" {
		return ""
	}
	name := fmt.Sprintf("%s-%d", unsafeFileChars.ReplaceAllString(jr.key.id, "_"), jr.key.attempt)
	return filepath.Join(jr.w.cfg.DataDir, stateDirName, name)
}

// removeStateDir removes the run's local state once its process is gone:
// that state is in the attempt's checkpoints, or lost with the attempt,
// and a process that crashed leaves it behind.
func (jr *jobRun) removeStateDir() {
	if dir := jr.stateDir(); dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			jr.log.Warn("remove the plugin's local state", "dir", dir, "err", err)
		}
	}
}

// stateDirName is the directory under the worker's data dir that holds
// the plugins' local state.
const stateDirName = "state"

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// clearStateDir removes what plugin processes of an earlier run of the
// worker left in <data dir>/state: no process of this one has started yet,
// and a new attempt restores its state from a checkpoint.
func clearStateDir(dataDir string, log *slog.Logger) error {
	if os.Getenv(envStateDir) != "" {
		return nil
	}
	dir := filepath.Join(dataDir, stateDirName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear local state: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clear local state: %w", err)
		}
	}
	if len(entries) > 0 {
		log.Info("removed local state left by earlier plugin processes", "dir", dir, "entries", len(entries))
	}
	return nil
}

func (w *Worker) newJobRun(key jobKey) *jobRun {
	return &jobRun{
		w: w, key: key, log: w.log.With("job_id", key.id, "attempt", key.attempt),
		ready: make(chan struct{}), tasks: map[taskKey]bool{}, acked: map[ackKey]bool{}, ended: make(chan struct{}),
		eventsDone: make(chan struct{}), exited: make(chan struct{}), outputEnd: make(chan struct{}),
	}
}

// start fetches the artifact, launches it as a go-plugin subprocess, and
// prepares it for the job. On failure nothing is left running.
func (jr *jobRun) start(ctx context.Context, req *eddypb.PrepareJobRequest) error {
	w := jr.w
	path, err := w.artifact(ctx, req.GetArtifact())
	if err != nil {
		return err
	}
	sha := req.GetArtifact().GetSha256()
	sum, _ := hex.DecodeString(sha) // checked by artifact
	if dir := jr.stateDir(); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return status.Errorf(codes.Internal, "%s: local state directory: %v", jr.key, err)
		}
	}
	var rpc plugin.ClientProtocol
	for try := 1; ; try++ {
		jr.stderr = &stderrTail{}
		jr.cmd = exec.Command(path, req.GetArgs()...)
		jr.cmd.SysProcAttr = sysProcAttr()
		if dir := jr.stateDir(); dir != "" {
			// State larger than memory (the Pebble backend) lives under the
			// worker's data dir rather than the system's temp dir. The
			// plugin also inherits the worker's environment.
			jr.cmd.Env = []string{envStateDir + "=" + dir}
		}
		jr.client = plugin.NewClient(&plugin.ClientConfig{
			HandshakeConfig:  handshake.Config,
			Plugins:          handshake.Plugins(nil),
			Cmd:              jr.cmd,
			SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
			AutoMTLS:         true,
			AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
			Logger:           logging.HCLog(jr.log, "plugin"),
			Stderr:           jr.stderr,
			SyncStdout:       &endWatcher{next: w.jobStdout(jr.log), onEnd: jr.sawOutputEnd},
			SyncStderr:       &lineLogger{log: jr.log.With("stream", "stderr"), level: slog.LevelWarn},
			StartTimeout:     w.cfg.PluginStartTimeout,
		})
		rpc, err = jr.client.Client()
		if err == nil {
			break
		}
		// A binary written a moment ago can be "busy" while another
		// goroutine's fork still holds the descriptor it was written
		// through (golang/go#22315): try again shortly.
		if !errors.Is(err, syscall.ETXTBSY) || try == 5 {
			return jr.startFailed(sha, err)
		}
		jr.client.Kill()
		jr.log.Debug("artifact busy; starting it again", "error", err)
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-time.After(time.Duration(try) * 50 * time.Millisecond):
		}
	}
	jr.pid = jr.cmd.Process.Pid
	raw, err := rpc.Dispense(handshake.PluginName)
	if err == nil {
		var ok bool
		if jr.exec, ok = raw.(*handshake.Client); !ok {
			err = fmt.Errorf("dispensed %T, want a task executor client", raw)
		}
	}
	if err != nil {
		jr.kill(false)
		jr.removeStateDir()
		return status.Errorf(codes.Internal, "artifact %s: dispense the task executor: %v", sha, err)
	}
	jr.log.Info("plugin started", "pid", jr.pid, "sha256", sha)

	// From here on monitor owns the end of the process.
	jr.eventsCtx, jr.cancelEvents = context.WithCancel(context.Background())
	go jr.monitor()
	go jr.relayEvents()

	w.jobsMu.Lock()
	closed := w.closed
	w.jobsMu.Unlock()
	if closed {
		jr.stop(false)
		return status.Error(codes.Unavailable, "the worker is shutting down")
	}
	resp, err := jr.exec.Prepare(ctx, &pluginpb.PrepareRequest{JobId: jr.key.id, Args: req.GetArgs(), DataHost: w.cfg.DataHost,
		ValidateRestore: req.GetValidateRestore(), Restore: req.GetRestore(), Parallelism: req.GetParallelism()})
	if err != nil {
		jr.stop(false)
		st := status.Convert(err)
		if req.GetValidateRestore() && st.Code() == codes.InvalidArgument {
			// The job cannot restore the savepoint: a refusal that starting
			// again would not change, with the plugin's message as it is.
			return status.Error(codes.FailedPrecondition, st.Message())
		}
		return status.Errorf(st.Code(), "prepare %s in its plugin: %s", jr.key, st.Message())
	}
	jr.dataAddr, jr.sdkVersion = resp.GetDataAddr(), resp.GetSdkVersion()
	// The worker may have begun shutting down while Prepare ran, and its
	// shutdown may have stopped waiting for this start: stop the process
	// here, so that it never outlives the worker.
	w.jobsMu.Lock()
	closed = w.closed
	w.jobsMu.Unlock()
	if closed {
		jr.stop(false)
		return status.Error(codes.Unavailable, "the worker is shutting down")
	}
	jr.log.Info("job prepared", "data_addr", jr.dataAddr, "sdk_version", jr.sdkVersion)
	return nil
}

// startFailed cleans up after a binary that did not become a plugin, and
// says why in the user's terms rather than go-plugin's.
func (jr *jobRun) startFailed(sha string, err error) error {
	jr.client.Kill() // waits for go-plugin's goroutines: ProcessState is set, if it ran
	if jr.cmd.Process != nil {
		killGroup(jr.cmd.Process.Pid)
	}
	jr.removeStateDir()
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		return status.Errorf(codes.Aborted, "artifact %s changed on disk between its check and its start; try again", sha)
	}
	var why string
	ps := jr.cmd.ProcessState
	msg := err.Error()
	switch {
	case ps != nil && ps.Exited():
		why = fmt.Sprintf("it exited with %s before the plugin handshake", ps)
	case jr.cmd.Process == nil:
		why = fmt.Sprintf("it cannot be executed: %v", err)
	case strings.HasPrefix(msg, "Unrecognized remote plugin message: "):
		first, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		why = fmt.Sprintf("it printed %q instead of the plugin handshake", first)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		why = fmt.Sprintf("it did not answer the plugin handshake within %s", jr.w.cfg.PluginStartTimeout)
	default:
		first, _, _ := strings.Cut(msg, "\n")
		why = "the plugin handshake failed: " + first
	}
	if lines := jr.stderr.last(5); len(lines) > 0 {
		why += "; its stderr ends with: " + strings.Join(lines, " | ")
	}
	return status.Errorf(codes.FailedPrecondition, "artifact %s is not an Eddy job: %s", sha, why)
}

// kill ends the process: gracefully (go-plugin asks the plugin to shut down
// and kills it after two seconds) or at once, and then anything left in its
// process group. Only the first call does it; the others wait for it.
func (jr *jobRun) kill(graceful bool) {
	jr.killOnce.Do(func() {
		if !graceful {
			killGroup(jr.pid)
		}
		jr.client.Kill()
		killGroup(jr.pid)
	})
}

// stop ends the process on purpose and waits until the worker has cleaned
// up after it. It is safe to call more than once and concurrently.
func (jr *jobRun) stop(graceful bool) {
	jr.w.jobsMu.Lock()
	jr.stopping = true
	jr.w.jobsMu.Unlock()
	jr.cancelEvents()
	jr.kill(graceful)
	<-jr.exited
}

// monitor waits for the process to exit. An exit the worker did not ask for
// is a crash: every task the process had not ended fails, with the exit
// status and the last lines of the process's stderr as the cause.
func (jr *jobRun) monitor() {
	w := jr.w
	defer close(jr.exited)
	<-jr.exec.Exited()
	w.jobsMu.Lock()
	expected := jr.stopping
	w.jobsMu.Unlock()
	if !expected {
		// Let the events the process sent before it died arrive first:
		// a task that reported its own end keeps it.
		select {
		case <-jr.eventsDone:
		case <-time.After(2 * time.Second):
		}
		cause := jr.crashCause()
		jr.log.Error("plugin process exited unexpectedly", "pid", jr.pid, "cause", cause)
		jr.endRemaining(eddypb.TaskState_TASK_STATE_FAILED, cause)
	} else {
		jr.log.Info("plugin process stopped", "pid", jr.pid)
	}
	jr.cancelEvents()
	jr.kill(false)
	jr.removeStateDir()
	w.jobsMu.Lock()
	if w.jobs[jr.key] == jr {
		delete(w.jobs, jr.key)
	}
	w.jobsMu.Unlock()
}

// crashCause describes how the process ended. It is called once the process
// has exited, when go-plugin has collected its exit status and stderr.
func (jr *jobRun) crashCause() string {
	how := "exited"
	if ps := jr.cmd.ProcessState; ps != nil {
		how = ps.String()
	}
	cause := fmt.Sprintf("the plugin process (pid %d) of %s died: %s", jr.pid, jr.key, how)
	if lines := jr.stderr.last(12); len(lines) > 0 {
		cause += "; last lines of its stderr:\n" + strings.Join(lines, "\n")
	}
	return cause
}

// endRemaining gives every deployed task that has not ended the state st
// with the cause.
func (jr *jobRun) endRemaining(st eddypb.TaskState, cause string) {
	w := jr.w
	now := time.Now().UnixMilli()
	w.jobsMu.Lock()
	defer w.jobsMu.Unlock()
	for k := range jr.tasks {
		if e := w.tasks[k]; e == nil || !isTerminal(e.status.GetState()) {
			w.setTaskLocked(&eddypb.TaskStatus{JobId: k.job, Attempt: k.attempt, Chain: k.chain, Subtask: k.subtask,
				State: st, Error: cause, AtMs: now})
		}
	}
	jr.checkEndedLocked()
}

// relayEvents follows the plugin's task events and records them, until the
// run stops or the process exits. The plugin replays its events to every
// new subscriber, so a stream that breaks is simply opened again.
func (jr *jobRun) relayEvents() {
	defer close(jr.eventsDone)
	backoff := 20 * time.Millisecond
	for {
		stream, err := jr.exec.Events(jr.eventsCtx, &pluginpb.EventsRequest{})
		if err == nil {
			for {
				var ev *pluginpb.TaskEvent
				ev, err = stream.Recv()
				if err != nil {
					break
				}
				backoff = 20 * time.Millisecond
				jr.onEvent(ev)
			}
		}
		select {
		case <-jr.eventsCtx.Done():
			return
		case <-jr.exec.Exited():
			return
		case <-time.After(backoff):
		}
		jr.log.Debug("task events stream broke; subscribing again", "error", err)
		backoff = min(2*backoff, time.Second)
	}
}

func (jr *jobRun) onEvent(ev *pluginpb.TaskEvent) {
	t := ev.GetTask()
	if t.GetJobId() != jr.key.id || t.GetAttempt() != jr.key.attempt {
		jr.log.Warn("plugin reported a task of another job attempt", "task_job_id", t.GetJobId(), "task_attempt", t.GetAttempt())
		return
	}
	if ack := ev.GetAck(); ack != nil {
		jr.onAck(t, ack)
		return
	}
	// pluginpb.TaskState and eddypb.TaskState share their numbers.
	st := &eddypb.TaskStatus{JobId: t.GetJobId(), Attempt: t.GetAttempt(), Chain: t.GetChain(), Subtask: t.GetSubtask(),
		State: eddypb.TaskState(ev.GetState()), Error: ev.GetError(), AtMs: ev.GetAtMs(), RestoreFailed: ev.GetRestoreFailed()}
	w := jr.w
	w.jobsMu.Lock()
	changed := w.setTaskLocked(st)
	allEnded := changed && jr.checkEndedLocked()
	w.jobsMu.Unlock()
	if changed && st.GetState() == eddypb.TaskState_TASK_STATE_FAILED {
		jr.log.Warn("task failed", "chain", st.GetChain(), "subtask", st.GetSubtask(), "error", st.GetError(),
			"restore_failed", st.GetRestoreFailed())
	}
	if allEnded {
		// Nothing is left for the process to do, once its output is in.
		go func() {
			select {
			case <-jr.outputEnd:
			case <-time.After(outputDrainTimeout):
				jr.log.Warn("plugin output did not end in time; some of it may be lost", "waited", outputDrainTimeout.String())
			}
			jr.stop(true)
		}()
	}
}

// checkEndedLocked closes jr.ended when every deployed task has ended, and
// reports whether this call did. The caller holds w.jobsMu.
func (jr *jobRun) checkEndedLocked() bool {
	if jr.endedClosed || jr.deploying || !jr.deployed || len(jr.tasks) == 0 {
		return false
	}
	for k := range jr.tasks {
		if e := jr.w.tasks[k]; e == nil || !isTerminal(e.status.GetState()) {
			return false
		}
	}
	jr.endedClosed = true
	close(jr.ended)
	return true
}

// stopPlugins kills every plugin process, for the worker's shutdown. Tasks
// that had not ended fail.
func (w *Worker) stopPlugins() {
	w.jobsMu.Lock()
	w.closed = true
	runs := make([]*jobRun, 0, len(w.jobs))
	for _, jr := range w.jobs {
		runs = append(runs, jr)
	}
	w.jobsMu.Unlock()
	var wg sync.WaitGroup
	for _, jr := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-jr.ready:
			case <-time.After(2 * time.Second):
				// start sees that the worker closed and stops the
				// process itself.
				return
			}
			if jr.err != nil {
				return
			}
			jr.stop(false)
			jr.endRemaining(eddypb.TaskState_TASK_STATE_FAILED, fmt.Sprintf("worker %s shut down", w.id))
		}()
	}
	wg.Wait()
}

// outputDrainTimeout bounds the wait for a plugin's last output.
const outputDrainTimeout = 3 * time.Second

func (jr *jobRun) sawOutputEnd() {
	jr.outputOnce.Do(func() { close(jr.outputEnd) })
}
