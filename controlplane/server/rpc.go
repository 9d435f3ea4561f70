package server

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/controlplane/jobmanager"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// Metadata keys of forwarded and stale calls.
const (
	mdForwarded = "eddy-forwarded-by"
	mdStale     = "eddy-stale"
)

// errorInterceptor gives every gRPC error its stable code, and turns the
// stale-read metadata into the context flag.
func errorInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(mdStale)) > 0 {
		ctx = controlplane.WithStale(ctx)
	}
	resp, err := h(ctx, req)
	return resp, controlplane.ToStatus(err)
}

func forwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(mdForwarded)) > 0
}

// leaderFor returns the local leadership when this node is the established
// leader, or else a connection to the leader that is ready to carry a call.
// It waits until deadline for an election to end or for the leader to become
// reachable. A call that was forwarded to this node is never forwarded again.
func (s *Server) leaderFor(ctx context.Context, deadline time.Time) (*leadership, *grpc.ClientConn, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if l := s.leader.Load(); l != nil {
			return l, nil, nil
		}
		if forwarded(ctx) {
			return nil, nil, fmt.Errorf("%w: node %s received a forwarded call", controlplane.ErrNotLeader, s.cfg.NodeID)
		}
		if _, id := s.raft.LeaderWithID(); id != "" && string(id) != s.cfg.NodeID {
			if m, ok := s.fsm.State().Member(controlplane.NodeID(id)); ok && m.GrpcAddr != "" {
				c, err := s.conn(m.GrpcAddr)
				if err != nil {
					return nil, nil, err
				}
				// Only a connected leader gets the call: a call sent into a
				// broken connection may or may not have been applied.
				if st := c.GetState(); st == connectivity.Ready {
					return nil, c, nil
				} else if st == connectivity.Idle || st == connectivity.TransientFailure {
					c.Connect()
					c.ResetConnectBackoff()
				}
				last = fmt.Errorf("leader %s at %s is not reachable", id, m.GrpcAddr)
			}
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			if last != nil {
				return nil, nil, fmt.Errorf("%w: %v", controlplane.ErrNoLeader, last)
			}
			return nil, nil, fmt.Errorf("%w: none elected within %s", controlplane.ErrNoLeader, s.cfg.LeaderWait)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %v", controlplane.ErrNoLeader, ctx.Err())
		case <-s.ctx.Done():
			return nil, nil, fmt.Errorf("%w: node is shutting down", controlplane.ErrNoLeader)
		case <-tick.C:
		}
	}
}

// conn returns the cached connection to another node. Connections retry
// quickly (at most a second apart), so that a node that comes back is
// reachable again at once.
func (s *Server) conn(addr string) (*grpc.ClientConn, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conns == nil {
		return nil, fmt.Errorf("%w: node is shutting down", controlplane.ErrNoLeader)
	}
	c, ok := s.conns[addr]
	if !ok {
		var err error
		c, err = grpc.NewClient("passthrough:///"+addr, s.dialOptions()...)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, err)
		}
		s.conns[addr] = c
	}
	return c, nil
}

// reconnect makes the cached connection to addr, if there is one and it
// failed, dial again now rather than after its backoff: the worker or node
// there just showed that it is up.
func (s *Server) reconnect(addr string) {
	s.connMu.Lock()
	c := s.conns[addr]
	s.connMu.Unlock()
	if c == nil {
		return
	}
	if st := c.GetState(); st == connectivity.Idle || st == connectivity.TransientFailure {
		c.Connect()
		c.ResetConnectBackoff()
	}
}

func (s *Server) dialOptions() []grpc.DialOption {
	dial := s.cfg.Dial
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return dial(ctx, "tcp", a) }),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	}
}

// call runs local on the leader, or forwards the call to the leader. A read
// (idempotent) whose forward failed in transit is tried again while the
// leader wait lasts; a write is not, since it may have been applied.
func call[Req, Resp any](ctx context.Context, s *Server, req Req, idempotent bool,
	remote func(eddypb.ControlPlaneClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	local func(context.Context, *leadership) (Resp, error),
) (Resp, error) {
	var zero Resp
	deadline := time.Now().Add(s.cfg.LeaderWait)
	for {
		l, c, err := s.leaderFor(ctx, deadline)
		if err != nil {
			return zero, err
		}
		if l != nil {
			return local(ctx, l)
		}
		fctx := metadata.AppendToOutgoingContext(ctx, mdForwarded, s.cfg.NodeID)
		var cancel context.CancelFunc = func() {}
		if d, ok := fctx.Deadline(); !ok || time.Until(d) > s.cfg.ApplyTimeout+s.cfg.LeaderWait {
			fctx, cancel = context.WithTimeout(fctx, s.cfg.ApplyTimeout+s.cfg.LeaderWait)
		}
		resp, err := remote(eddypb.NewControlPlaneClient(c), fctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		if st, ok := status.FromError(err); ok && len(st.Details()) == 0 && st.Code() == codes.Unavailable {
			// The connection broke: the leader did not answer.
			if idempotent && time.Now().Before(deadline) {
				continue
			}
			return zero, fmt.Errorf("%w: forwarding to the leader failed: %s", controlplane.ErrTimeout, st.Message())
		}
		return zero, controlplane.FromStatus(err)
	}
}

// read runs f on a state that reflects every write acknowledged before the
// call: the leader's after it confirmed its leadership, or the local one for
// a stale read.
func read[Req, Resp any](ctx context.Context, s *Server, req Req,
	remote func(eddypb.ControlPlaneClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	f func(*fsm.State) (Resp, error),
) (Resp, error) {
	if controlplane.Stale(ctx) {
		return f(s.fsm.State())
	}
	return call(ctx, s, req, true, remote, func(context.Context, *leadership) (Resp, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			var zero Resp
			return zero, raftError(err)
		}
		return f(s.fsm.State())
	})
}

// SubmitJob records a new job.
func (s *Server) SubmitJob(ctx context.Context, req *eddypb.SubmitJobRequest) (*eddypb.SubmitJobResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.SubmitJob, func(ctx context.Context, l *leadership) (*eddypb.SubmitJobResponse, error) {
		j, err := l.jobs.Submit(ctx, req.Spec)
		if err != nil {
			return nil, err
		}
		return &eddypb.SubmitJobResponse{Job: j}, nil
	})
}

// CancelJob cancels a job.
func (s *Server) CancelJob(ctx context.Context, req *eddypb.CancelJobRequest) (*eddypb.CancelJobResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.CancelJob, func(ctx context.Context, l *leadership) (*eddypb.CancelJobResponse, error) {
		// Cancel answers "not found" and "ended" from the local state: only a
		// confirmed leader's state is current enough for that.
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, raftError(err)
		}
		j, err := l.jobs.Cancel(ctx, controlplane.JobID(req.JobId))
		if err != nil {
			return nil, err
		}
		return &eddypb.CancelJobResponse{Job: j}, nil
	})
}

// GetJob returns a job with its slot assignments and checkpoints.
func (s *Server) GetJob(ctx context.Context, req *eddypb.GetJobRequest) (*eddypb.GetJobResponse, error) {
	return read(ctx, s, req, eddypb.ControlPlaneClient.GetJob, func(st *fsm.State) (*eddypb.GetJobResponse, error) {
		id := controlplane.JobID(req.JobId)
		j, ok := st.Job(id)
		if !ok {
			return nil, fmt.Errorf("%w: %s", controlplane.ErrJobNotFound, req.JobId)
		}
		return &eddypb.GetJobResponse{
			Job: j, Assignments: st.Assignments(id), Checkpoints: st.Checkpoints(id), Tasks: st.Tasks(id),
			CheckpointStats: st.CheckpointStats(id),
		}, nil
	})
}

// TriggerCheckpoint starts a checkpoint of a running job now.
func (s *Server) TriggerCheckpoint(ctx context.Context, req *eddypb.TriggerCheckpointRequest) (*eddypb.TriggerCheckpointResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.TriggerCheckpoint, func(ctx context.Context, l *leadership) (*eddypb.TriggerCheckpointResponse, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, raftError(err)
		}
		id, err := l.jobs.TriggerCheckpoint(ctx, controlplane.JobID(req.JobId))
		if err != nil {
			return nil, err
		}
		return &eddypb.TriggerCheckpointResponse{CheckpointId: id}, nil
	})
}

// TriggerSavepoint starts a savepoint, or a stop with savepoint, of a
// running job.
func (s *Server) TriggerSavepoint(ctx context.Context, req *eddypb.TriggerSavepointRequest) (*eddypb.TriggerSavepointResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.TriggerSavepoint, func(ctx context.Context, l *leadership) (*eddypb.TriggerSavepointResponse, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, raftError(err)
		}
		sp, err := l.jobs.TriggerSavepoint(ctx, controlplane.JobID(req.JobId), jobmanager.SavepointOptions{URL: req.Url, Stop: req.Stop, Drain: req.Drain})
		if err != nil {
			return nil, err
		}
		return &eddypb.TriggerSavepointResponse{RequestId: sp.RequestID, CheckpointId: sp.CheckpointID, Url: sp.URL}, nil
	})
}

// AcknowledgeCheckpoint hands a task's acknowledgement of a checkpoint to
// the leader's checkpoint coordinator.
func (s *Server) AcknowledgeCheckpoint(ctx context.Context, req *eddypb.AcknowledgeCheckpointRequest) (*eddypb.AcknowledgeCheckpointResponse, error) {
	return call(ctx, s, req, true, eddypb.ControlPlaneClient.AcknowledgeCheckpoint, func(ctx context.Context, l *leadership) (*eddypb.AcknowledgeCheckpointResponse, error) {
		if err := l.jobs.AcknowledgeCheckpoint(ctx, req); err != nil {
			return nil, err
		}
		return &eddypb.AcknowledgeCheckpointResponse{}, nil
	})
}

// ListJobs returns every job, oldest first.
func (s *Server) ListJobs(ctx context.Context, req *eddypb.ListJobsRequest) (*eddypb.ListJobsResponse, error) {
	return read(ctx, s, req, eddypb.ControlPlaneClient.ListJobs, func(st *fsm.State) (*eddypb.ListJobsResponse, error) {
		return &eddypb.ListJobsResponse{Jobs: st.Jobs()}, nil
	})
}

// ListWorkers returns every worker and the slot assignments.
// The leader adds the workers it could not reach; a stale read, served
// from any node's state, has none.
func (s *Server) ListWorkers(ctx context.Context, req *eddypb.ListWorkersRequest) (*eddypb.ListWorkersResponse, error) {
	list := func(st *fsm.State) *eddypb.ListWorkersResponse {
		return &eddypb.ListWorkersResponse{Workers: st.Workers(), Assignments: st.AllAssignments()}
	}
	if controlplane.Stale(ctx) {
		return list(s.fsm.State()), nil
	}
	return call(ctx, s, req, true, eddypb.ControlPlaneClient.ListWorkers, func(_ context.Context, l *leadership) (*eddypb.ListWorkersResponse, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, raftError(err)
		}
		resp := list(s.fsm.State())
		resp.Unreachable = l.resources.Unreachable()
		return resp, nil
	})
}

// Overview summarises the cluster.
func (s *Server) Overview(ctx context.Context, req *eddypb.OverviewRequest) (*eddypb.OverviewResponse, error) {
	return read(ctx, s, req, eddypb.ControlPlaneClient.Overview, func(st *fsm.State) (*eddypb.OverviewResponse, error) {
		o := &eddypb.OverviewResponse{NodeId: s.cfg.NodeID, LeaderId: string(s.LeaderID()), SlotsAvailable: uint32(st.FreeSlots())}
		for _, w := range st.Workers() {
			if w.Status == eddypb.WorkerStatus_WORKER_STATUS_ALIVE {
				o.Workers++
				o.SlotsTotal += w.Slots
			}
		}
		for _, j := range st.Jobs() {
			switch j.Status {
			case eddypb.JobStatus_JOB_STATUS_RUNNING:
				o.JobsRunning++
			case eddypb.JobStatus_JOB_STATUS_FINISHED:
				o.JobsFinished++
			case eddypb.JobStatus_JOB_STATUS_CANCELED:
				o.JobsCancelled++
			case eddypb.JobStatus_JOB_STATUS_FAILED:
				o.JobsFailed++
			default:
				o.JobsPending++
			}
		}
		return o, nil
	})
}

// RegisterWorker registers a worker instance and its slots.
func (s *Server) RegisterWorker(ctx context.Context, req *eddypb.RegisterWorkerRequest) (*eddypb.RegisterWorkerResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.RegisterWorker, func(ctx context.Context, l *leadership) (*eddypb.RegisterWorkerResponse, error) {
		return l.resources.Register(ctx, req)
	})
}

// Heartbeat records a worker's heartbeat.
func (s *Server) Heartbeat(ctx context.Context, req *eddypb.HeartbeatRequest) (*eddypb.HeartbeatResponse, error) {
	return call(ctx, s, req, true, eddypb.ControlPlaneClient.Heartbeat, func(ctx context.Context, l *leadership) (*eddypb.HeartbeatResponse, error) {
		return l.resources.Heartbeat(ctx, req)
	})
}

// Join adds a node to the cluster as a voter.
func (s *Server) Join(ctx context.Context, req *eddypb.JoinRequest) (*eddypb.JoinResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.Join, func(ctx context.Context, _ *leadership) (*eddypb.JoinResponse, error) {
		return s.addMember(ctx, req)
	})
}

func (s *Server) addMember(ctx context.Context, req *eddypb.JoinRequest) (*eddypb.JoinResponse, error) {
	if !nodeIDPattern.MatchString(req.NodeId) {
		return nil, fmt.Errorf("%w: node id %q", controlplane.ErrInvalidArgument, req.NodeId)
	}
	for name, a := range map[string]string{"raft": req.RaftAddr, "grpc": req.GrpcAddr, "http": req.HttpAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%w: %s address %q of node %s: %v", controlplane.ErrInvalidArgument, name, a, req.NodeId, err)
		}
	}
	cid := s.fsm.State().ClusterID()
	if req.ClusterId != "" && req.ClusterId != cid {
		return nil, fmt.Errorf("%w: node %s belongs to cluster %s, this is cluster %s", controlplane.ErrOtherCluster, req.NodeId, req.ClusterId, cid)
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.Address) == req.RaftAddr && string(srv.ID) != req.NodeId {
			return nil, fmt.Errorf("%w: raft address %s is used by node %s; remove it first", controlplane.ErrInvalidArgument, req.RaftAddr, srv.ID)
		}
	}
	if err := s.raft.AddVoter(raft.ServerID(req.NodeId), raft.ServerAddress(req.RaftAddr), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return nil, fmt.Errorf("add voter %s: %w", req.NodeId, raftError(err))
	}
	m := &eddypb.Member{Id: req.NodeId, RaftAddr: req.RaftAddr, GrpcAddr: req.GrpcAddr, HttpAddr: req.HttpAddr}
	if _, err := s.raftApply(ctx, fsm.CmdUpsertMember, &eddypb.UpsertMemberCommand{Member: m}); err != nil {
		return nil, err
	}
	s.log.Info("node joined", "member", req.NodeId, "raft_addr", req.RaftAddr)
	return &eddypb.JoinResponse{ClusterId: cid, LeaderId: s.cfg.NodeID}, nil
}

// Leave removes a node from the cluster.
func (s *Server) Leave(ctx context.Context, req *eddypb.LeaveRequest) (*eddypb.LeaveResponse, error) {
	return call(ctx, s, req, false, eddypb.ControlPlaneClient.Leave, func(ctx context.Context, _ *leadership) (*eddypb.LeaveResponse, error) {
		f := s.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return nil, raftError(err)
		}
		found := false
		for _, srv := range f.Configuration().Servers {
			found = found || string(srv.ID) == req.NodeId
		}
		if !found {
			return nil, fmt.Errorf("%w: %s", controlplane.ErrNodeNotFound, req.NodeId)
		}
		if _, ok := s.fsm.State().Member(controlplane.NodeID(req.NodeId)); ok {
			if _, err := s.raftApply(ctx, fsm.CmdRemoveMember, &eddypb.RemoveMemberCommand{NodeId: req.NodeId}); err != nil {
				return nil, err
			}
		}
		if err := s.raft.RemoveServer(raft.ServerID(req.NodeId), 0, s.cfg.ApplyTimeout).Error(); err != nil {
			return nil, fmt.Errorf("remove server %s: %w", req.NodeId, raftError(err))
		}
		s.log.Info("node removed", "member", req.NodeId)
		return &eddypb.LeaveResponse{}, nil
	})
}

// Cluster describes the Raft group as this node sees it; it needs no quorum.
func (s *Server) Cluster(context.Context, *eddypb.ClusterRequest) (*eddypb.ClusterResponse, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	_, leader := s.raft.LeaderWithID()
	st := s.fsm.State()
	resp := &eddypb.ClusterResponse{ClusterId: s.ClusterID(), LeaderId: string(leader), Term: s.raft.CurrentTerm()}
	for _, srv := range f.Configuration().Servers {
		m, ok := st.Member(controlplane.NodeID(srv.ID))
		if !ok {
			m = &eddypb.Member{Id: string(srv.ID)}
		}
		m = &eddypb.Member{Id: string(srv.ID), RaftAddr: string(srv.Address), GrpcAddr: m.GrpcAddr, HttpAddr: m.HttpAddr}
		resp.Members = append(resp.Members, &eddypb.ClusterMember{
			Member:   m,
			Suffrage: suffrage(srv.Suffrage),
			Leader:   srv.ID == leader,
		})
	}
	return resp, nil
}

func suffrage(v raft.ServerSuffrage) string {
	switch v {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	}
	return "staging"
}

// Node describes this node itself.
func (s *Server) Node() api.Node {
	_, leader := s.raft.LeaderWithID()
	return api.Node{
		ID:           s.cfg.NodeID,
		ClusterID:    s.ClusterID(),
		RaftAddr:     s.raftAddr,
		GRPCAddr:     s.grpcAddr,
		HTTPAddr:     s.httpAddr,
		State:        s.raft.State().String(),
		LeaderID:     string(leader),
		Term:         s.raft.CurrentTerm(),
		AppliedIndex: s.raft.AppliedIndex(),
	}
}
