package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/jobmanager"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// Backend is the node API the dispatcher serves. Its methods may be called
// concurrently; errors wrap controlplane's sentinels.
type Backend interface {
	SubmitJob(context.Context, *eddypb.SubmitJobRequest) (*eddypb.SubmitJobResponse, error)
	CancelJob(context.Context, *eddypb.CancelJobRequest) (*eddypb.CancelJobResponse, error)
	GetJob(context.Context, *eddypb.GetJobRequest) (*eddypb.GetJobResponse, error)
	TriggerCheckpoint(context.Context, *eddypb.TriggerCheckpointRequest) (*eddypb.TriggerCheckpointResponse, error)
	TriggerSavepoint(context.Context, *eddypb.TriggerSavepointRequest) (*eddypb.TriggerSavepointResponse, error)
	ListJobs(context.Context, *eddypb.ListJobsRequest) (*eddypb.ListJobsResponse, error)
	ListWorkers(context.Context, *eddypb.ListWorkersRequest) (*eddypb.ListWorkersResponse, error)
	Overview(context.Context, *eddypb.OverviewRequest) (*eddypb.OverviewResponse, error)
	Cluster(context.Context, *eddypb.ClusterRequest) (*eddypb.ClusterResponse, error)
	Join(context.Context, *eddypb.JoinRequest) (*eddypb.JoinResponse, error)
	Leave(context.Context, *eddypb.LeaveRequest) (*eddypb.LeaveResponse, error)
	UploadArtifact(ctx context.Context, r io.Reader) (api.Artifact, error)
	OpenArtifact(ctx context.Context, sha256 string) (io.ReadCloser, int64, error)
	Node() api.Node
}

// RequestTimeout bounds every request, so that a call made while the
// cluster has no quorum fails instead of hanging.
const RequestTimeout = 15 * time.Second

// maxBody bounds request bodies; job graphs are small, binaries go elsewhere.
const maxBody = 16 << 20

// New returns the REST handler of a node.
func New(b Backend, log *slog.Logger) http.Handler {
	d := &dispatcher{b: b, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/overview", d.overview)
	mux.HandleFunc("GET /v1/jobs", d.listJobs)
	mux.HandleFunc("POST /v1/jobs", d.submitJob)
	mux.HandleFunc("GET /v1/jobs/{id}", d.getJob)
	mux.HandleFunc("PATCH /v1/jobs/{id}", d.patchJob)
	mux.HandleFunc("GET /v1/jobs/{id}/checkpoints", d.getCheckpoints)
	mux.HandleFunc("POST /v1/jobs/{id}/checkpoints", d.triggerCheckpoint)
	mux.HandleFunc("GET /v1/jobs/{id}/savepoints", d.listSavepoints)
	mux.HandleFunc("POST /v1/jobs/{id}/savepoints", d.triggerSavepoint)
	mux.HandleFunc("GET /v1/jobs/{id}/savepoints/{request}", d.getSavepoint)
	mux.HandleFunc("POST /v1/jobs/{id}/stop", d.stopJob)
	mux.HandleFunc("GET /v1/workers", d.listWorkers)
	mux.HandleFunc("GET /v1/cluster", d.cluster)
	mux.HandleFunc("POST /v1/cluster/members", d.join)
	mux.HandleFunc("DELETE /v1/cluster/members/{id}", d.leave)
	mux.HandleFunc("GET /v1/node", d.node)
	mux.HandleFunc("POST /v1/artifacts", d.uploadArtifact)
	mux.HandleFunc("GET /v1/artifacts/{sha256}", d.downloadArtifact)
	return d.wrap(mux)
}

type dispatcher struct {
	b   Backend
	log *slog.Logger
}

// wrap bounds each request in time, marks stale reads and turns the mux's
// plain-text 405 into the JSON error shape.
func (d *dispatcher) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := r.Context(), context.CancelFunc(func() {})
		if !strings.HasPrefix(r.URL.Path, "/v1/artifacts") {
			// Uploads and downloads take as long as the bytes take;
			// everything else is bounded.
			ctx, cancel = context.WithTimeout(ctx, RequestTimeout)
		}
		defer cancel()
		if v := r.URL.Query().Get("stale"); v != "" {
			if ok, err := strconv.ParseBool(v); err != nil {
				writeError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("stale=%q: want true or false", v))
				return
			} else if ok {
				ctx = controlplane.WithStale(ctx)
			}
		}
		next.ServeHTTP(&methodCheck{ResponseWriter: w, r: r}, r.WithContext(ctx))
	})
}

// methodCheck rewrites the mux's own plain-text 404 and 405 responses as
// JSON errors. Handlers of this package always set a JSON content type first,
// so a non-JSON error status can only come from the mux.
type methodCheck struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (m *methodCheck) WriteHeader(code int) {
	h := m.Header()
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && h.Get("Content-Type") != "application/json" {
		m.replaced = true
		h.Del("X-Content-Type-Options")
		errCode, msg := "not_found", fmt.Sprintf("no such endpoint: %s %s", m.r.Method, m.r.URL.Path)
		if code == http.StatusMethodNotAllowed {
			errCode, msg = "method_not_allowed", fmt.Sprintf("%s is not allowed on %s (allowed: %s)", m.r.Method, m.r.URL.Path, h.Get("Allow"))
		}
		writeError(m.ResponseWriter, code, errCode, msg)
		return
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *methodCheck) Write(b []byte) (int, error) {
	if m.replaced {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, api.Error{Error: api.ErrorBody{Code: errCode, Message: msg}})
}

// fail writes err through controlplane's table.
func (d *dispatcher) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, status := controlplane.Lookup(err)
	if status >= 500 {
		d.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, status, string(code), err.Error())
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors, so a typo never silently changes nothing.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body", controlplane.ErrMalformedJSON)
		}
		return fmt.Errorf("%w: %v", controlplane.ErrMalformedJSON, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON value", controlplane.ErrMalformedJSON)
	}
	return nil
}

func (d *dispatcher) overview(w http.ResponseWriter, r *http.Request) {
	o, err := d.b.Overview(r.Context(), &eddypb.OverviewRequest{})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Overview{
		NodeID: o.NodeId, LeaderID: o.LeaderId, Workers: o.Workers, SlotsTotal: o.SlotsTotal,
		SlotsAvailable: o.SlotsAvailable, JobsRunning: o.JobsRunning, JobsPending: o.JobsPending,
		JobsFinished: o.JobsFinished, JobsCancelled: o.JobsCancelled, JobsFailed: o.JobsFailed,
	})
}

func (d *dispatcher) listJobs(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.ListJobs(r.Context(), &eddypb.ListJobsRequest{})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	out := api.Jobs{Jobs: []api.Job{}}
	for _, j := range resp.Jobs {
		out.Jobs = append(out.Jobs, Job(j))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *dispatcher) submitJob(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitJob
	if err := decode(r, &req); err != nil {
		d.fail(w, r, err)
		return
	}
	spec := &eddypb.JobSpec{
		JobId: req.JobID, Name: req.Name, Parallelism: req.Parallelism, MaxParallelism: req.MaxParallelism,
		Args: req.Args, Config: req.Config,
	}
	if len(req.Graph) > 0 {
		var g pluginpb.JobGraph
		if err := protojson.Unmarshal(req.Graph, &g); err != nil {
			d.fail(w, r, fmt.Errorf("%w: graph: %v", controlplane.ErrMalformedJSON, err))
			return
		}
		b, err := proto.Marshal(&g)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		spec.Graph = b
	}
	if a := req.Artifact; a != nil {
		spec.Artifact = &eddypb.ArtifactRef{Sha256: a.SHA256, Url: a.URL, Size: a.Size}
	}
	if rs := req.Restore; rs != nil {
		if rs.URL == "" {
			d.fail(w, r, fmt.Errorf("%w: restore needs the savepoint's url", controlplane.ErrInvalidArgument))
			return
		}
		spec.Restore = &pluginpb.RestoreSpec{Url: rs.URL, AllowNonRestoredState: rs.AllowNonRestoredState}
	}
	resp, err := d.b.SubmitJob(r.Context(), &eddypb.SubmitJobRequest{Spec: spec})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+resp.Job.Spec.JobId)
	writeJSON(w, http.StatusCreated, Job(resp.Job))
}

func (d *dispatcher) getJob(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.GetJob(r.Context(), &eddypb.GetJobRequest{JobId: r.PathValue("id")})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	j := Job(resp.Job)
	for _, a := range resp.Assignments {
		j.Tasks = append(j.Tasks, task(a))
	}
	var chains []*pluginpb.Chain
	if len(resp.Job.Spec.Graph) > 0 {
		var g pluginpb.JobGraph
		if proto.Unmarshal(resp.Job.Spec.Graph, &g) == nil {
			chains = g.Chains
		}
	}
	for _, t := range resp.Tasks {
		ts := api.TaskState{Chain: t.Chain, Subtask: t.Subtask, State: strings.TrimPrefix(t.State.String(), "TASK_STATE_"), Error: t.Error, WorkerID: t.WorkerId}
		if int(t.Chain) < len(chains) {
			ts.Name = chains[t.Chain].Name
		}
		j.Execution = append(j.Execution, ts)
	}
	for _, c := range resp.Checkpoints {
		j.Checkpoints = append(j.Checkpoints, Checkpoint(c))
	}
	for _, c := range resp.CheckpointStats.GetSavepoints() {
		j.Savepoints = append(j.Savepoints, Checkpoint(c))
	}
	if len(resp.Job.Spec.Graph) > 0 {
		var g pluginpb.JobGraph
		if proto.Unmarshal(resp.Job.Spec.Graph, &g) == nil {
			if b, err := protojson.Marshal(&g); err == nil {
				j.Graph = b
			}
		}
	}
	writeJSON(w, http.StatusOK, j)
}

func (d *dispatcher) listSavepoints(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.GetJob(r.Context(), &eddypb.GetJobRequest{JobId: r.PathValue("id")})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	out := api.Savepoints{Savepoints: []api.Checkpoint{}}
	for _, c := range resp.CheckpointStats.GetSavepoints() {
		out.Savepoints = append(out.Savepoints, Checkpoint(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *dispatcher) triggerSavepoint(w http.ResponseWriter, r *http.Request) {
	d.savepoint(w, r, false)
}

func (d *dispatcher) stopJob(w http.ResponseWriter, r *http.Request) {
	d.savepoint(w, r, true)
}

// savepoint triggers a savepoint, or a stop with savepoint; the body is
// optional.
func (d *dispatcher) savepoint(w http.ResponseWriter, r *http.Request, stop bool) {
	var req api.SavepointRequest
	if r.ContentLength != 0 {
		// A chunked request may still be empty: that is no body either.
		err := decode(r, &req)
		if err != nil && r.ContentLength < 0 && strings.Contains(err.Error(), "empty body") {
			err = nil
		}
		if err != nil {
			d.fail(w, r, err)
			return
		}
	}
	id := r.PathValue("id")
	resp, err := d.b.TriggerSavepoint(r.Context(), &eddypb.TriggerSavepointRequest{JobId: id, Url: req.URL, Stop: stop, Drain: req.Drain})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+id+"/savepoints/"+resp.RequestId)
	writeJSON(w, http.StatusAccepted, api.SavepointTriggered{RequestID: resp.RequestId, ID: resp.CheckpointId, URL: resp.Url})
}

func (d *dispatcher) getSavepoint(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.GetJob(r.Context(), &eddypb.GetJobRequest{JobId: r.PathValue("id")})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	sp := jobmanager.FindSavepoint(resp.CheckpointStats, r.PathValue("request"))
	if sp == nil {
		d.fail(w, r, fmt.Errorf("%w: job %s has no savepoint request %q", controlplane.ErrSavepointNotFound, r.PathValue("id"), r.PathValue("request")))
		return
	}
	writeJSON(w, http.StatusOK, Checkpoint(sp))
}

func (d *dispatcher) downloadArtifact(w http.ResponseWriter, r *http.Request) {
	rc, size, err := d.b.OpenArtifact(r.Context(), r.PathValue("sha256"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		d.log.Warn("send artifact", "sha256", r.PathValue("sha256"), "error", err)
	}
}

func (d *dispatcher) getCheckpoints(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.GetJob(r.Context(), &eddypb.GetJobRequest{JobId: r.PathValue("id")})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Checkpoints(resp))
}

func (d *dispatcher) triggerCheckpoint(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.TriggerCheckpoint(r.Context(), &eddypb.TriggerCheckpointRequest{JobId: r.PathValue("id")})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+r.PathValue("id")+"/checkpoints")
	writeJSON(w, http.StatusAccepted, api.TriggeredCheckpoint{ID: resp.CheckpointId})
}

// Checkpoint converts a checkpoint record to its REST shape.
func Checkpoint(c *eddypb.CheckpointRecord) api.Checkpoint {
	out := api.Checkpoint{
		ID: c.CheckpointId, URL: c.Url, SizeBytes: c.SizeBytes, Savepoint: c.Savepoint,
		TriggeredAt: time.UnixMilli(c.TriggeredAtMs).UTC(),
		Status:      strings.TrimPrefix(c.Status.String(), "CHECKPOINT_STATUS_"), DurationMs: c.DurationMs,
		Failure: c.Failure, Attempt: c.Attempt, Manual: c.Manual, RequestID: c.RequestId, Stop: c.Stop, Drain: c.Drain,
	}
	if c.CompletedAtMs != 0 {
		out.CompletedAt = time.UnixMilli(c.CompletedAtMs).UTC()
	}
	if c.Status == eddypb.CheckpointStatus_CHECKPOINT_STATUS_UNSPECIFIED {
		out.Status = ""
	}
	return out
}

// Checkpoints converts a job's checkpoint bookkeeping to the REST shape of
// GET /v1/jobs/{id}/checkpoints.
func Checkpoints(resp *eddypb.GetJobResponse) api.Checkpoints {
	st := resp.CheckpointStats
	out := api.Checkpoints{Retained: []api.Checkpoint{}, History: []api.Checkpoint{}, Savepoints: []api.Checkpoint{}}
	if st != nil {
		out.Counts = api.CheckpointCounts{Completed: st.Completed, Failed: st.Failed, ConsecutiveFailures: st.ConsecutiveFailures}
		if st.InProgress != nil {
			out.Counts.InProgress = 1
			p := Checkpoint(st.InProgress)
			out.InProgress = &p
			out.History = append(out.History, p)
		}
		for i := len(st.History) - 1; i >= 0; i-- {
			out.History = append(out.History, Checkpoint(st.History[i]))
		}
		for _, r := range st.Retained {
			out.Retained = append(out.Retained, Checkpoint(r))
		}
		for _, r := range st.Savepoints {
			out.Savepoints = append(out.Savepoints, Checkpoint(r))
		}
		if n := len(st.Retained); n > 0 {
			l := Checkpoint(st.Retained[n-1])
			out.Latest = &l
		}
	}
	if g, err := jobmanager.ParseGraph(resp.Job.GetSpec().GetGraph()); err == nil {
		if c, err := jobmanager.CheckpointConfig(resp.Job.Spec, g); err == nil && c != nil {
			out.Config = &api.CheckpointConfig{
				IntervalMs: c.IntervalMs, TimeoutMs: c.TimeoutMs, MinPauseMs: c.MinPauseMs,
				TolerableFailures: c.TolerableFailures, Retain: c.Retain,
			}
			if st != nil && st.InProgress != nil && !st.InProgress.Savepoint {
				out.Config.Dir = parentURL(st.InProgress.Url)
			} else if out.Latest != nil {
				out.Config.Dir = parentURL(out.Latest.URL)
			}
			if r, err := jobmanager.RestartStrategy(resp.Job.Spec, g); err == nil {
				out.Config.Restart = RestartConfig(r)
			}
		}
	}
	return out
}

// parentURL returns the URL of the directory holding the one at u; a
// query (s3 options) stays.
func parentURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u[:max(strings.LastIndexByte(u, '/'), 0)]
	}
	p.Path = path.Dir(p.Path)
	p.RawPath = ""
	return p.String()
}

// RestartConfig converts a restart strategy to its REST shape.
func RestartConfig(r *pluginpb.RestartStrategy) api.RestartConfig {
	out := api.RestartConfig{Strategy: "none"}
	switch r.Kind {
	case pluginpb.RestartStrategy_KIND_FIXED_DELAY:
		out = api.RestartConfig{Strategy: "fixed-delay", MaxAttempts: r.MaxAttempts, DelayMs: r.DelayMs}
	case pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF:
		out = api.RestartConfig{Strategy: "exponential-backoff", MaxAttempts: r.MaxAttempts, DelayMs: r.DelayMs, MaxDelayMs: r.MaxDelayMs, Multiplier: r.Multiplier}
	}
	return out
}

func (d *dispatcher) patchJob(w http.ResponseWriter, r *http.Request) {
	mode := r.URL.Query().Get("mode")
	if mode != "cancel" {
		writeError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("mode=%q: the supported mode is cancel", mode))
		return
	}
	resp, err := d.b.CancelJob(r.Context(), &eddypb.CancelJobRequest{JobId: r.PathValue("id")})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Job(resp.Job))
}

func (d *dispatcher) listWorkers(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.ListWorkers(r.Context(), &eddypb.ListWorkersRequest{})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	tasks := map[string][]api.Task{}
	for _, a := range resp.Assignments {
		tasks[a.WorkerId] = append(tasks[a.WorkerId], task(a))
	}
	unreachable := map[string]*api.Unreachable{}
	for _, u := range resp.Unreachable {
		unreachable[u.WorkerId+"/"+u.InstanceId] = &api.Unreachable{Since: time.UnixMilli(u.SinceMs).UTC(), Cause: u.Cause}
	}
	out := api.Workers{Workers: []api.Worker{}}
	for _, wk := range resp.Workers {
		t := tasks[wk.Id]
		out.Workers = append(out.Workers, api.Worker{
			Unreachable: unreachable[wk.Id+"/"+wk.InstanceId],
			ID:          wk.Id, Address: wk.Address, Status: strings.TrimPrefix(wk.Status.String(), "WORKER_STATUS_"),
			InstanceID: wk.InstanceId, Slots: wk.Slots, SlotsFree: wk.Slots - min(wk.Slots, uint32(len(t))),
			RegisteredAt:   time.UnixMilli(wk.RegisteredAtMs).UTC(),
			StatusChangeAt: time.UnixMilli(wk.StatusAtMs).UTC(),
			Tasks:          t,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *dispatcher) cluster(w http.ResponseWriter, r *http.Request) {
	resp, err := d.b.Cluster(r.Context(), &eddypb.ClusterRequest{})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	out := api.Cluster{ClusterID: resp.ClusterId, LeaderID: resp.LeaderId, Term: resp.Term, Members: []api.Member{}}
	for _, m := range resp.Members {
		out.Members = append(out.Members, api.Member{
			ID: m.Member.Id, RaftAddr: m.Member.RaftAddr, GRPCAddr: m.Member.GrpcAddr, HTTPAddr: m.Member.HttpAddr,
			Suffrage: m.Suffrage, Leader: m.Leader,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *dispatcher) join(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := decode(r, &req); err != nil {
		d.fail(w, r, err)
		return
	}
	if _, err := d.b.Join(r.Context(), &eddypb.JoinRequest{
		NodeId: req.NodeID, RaftAddr: req.RaftAddr, GrpcAddr: req.GRPCAddr, HttpAddr: req.HTTPAddr, ClusterId: req.ClusterID,
	}); err != nil {
		d.fail(w, r, err)
		return
	}
	d.cluster(w, r)
}

func (d *dispatcher) leave(w http.ResponseWriter, r *http.Request) {
	if _, err := d.b.Leave(r.Context(), &eddypb.LeaveRequest{NodeId: r.PathValue("id")}); err != nil {
		d.fail(w, r, err)
		return
	}
	d.cluster(w, r)
}

func (d *dispatcher) uploadArtifact(w http.ResponseWriter, r *http.Request) {
	a, err := d.b.UploadArtifact(r.Context(), r.Body)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func (d *dispatcher) node(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, d.b.Node())
}

// Job converts a job to its REST shape.
func Job(j *eddypb.Job) api.Job {
	s := j.Spec
	out := api.Job{
		ID: s.JobId, Name: s.Name, Status: strings.TrimPrefix(j.Status.String(), "JOB_STATUS_"),
		StatusReason: j.StatusReason, Parallelism: s.Parallelism, MaxParallelism: s.MaxParallelism,
		Args: s.Args, Config: s.Config,
		SubmittedAt: time.UnixMilli(j.SubmittedAtMs).UTC(), UpdatedAt: time.UnixMilli(j.UpdatedAtMs).UTC(),
		CreateIndex: j.CreateIndex, ModifyIndex: j.ModifyIndex, Attempt: j.Attempt,
		Restarts: j.Restarts, Failure: j.Failure, RestoredCheckpoint: j.RestoredCheckpointId, RestoredURL: j.RestoredUrl,
	}
	if r := s.Restore; r != nil {
		out.Restore = &api.Restore{URL: r.Url, AllowNonRestoredState: r.AllowNonRestoredState, CheckpointID: r.CheckpointId}
	}
	if j.FailureAtMs != 0 {
		t := time.UnixMilli(j.FailureAtMs).UTC()
		out.FailureAt = &t
	}
	if a := s.Artifact; a != nil {
		out.Artifact = &api.Artifact{SHA256: a.Sha256, URL: a.Url, Size: a.Size}
	}
	return out
}

func task(a *eddypb.SlotAssignment) api.Task {
	return api.Task{Task: a.Task, WorkerID: a.WorkerId, Slot: a.Slot, Attempt: a.Attempt}
}
