package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// JobID identifies a job.
type JobID string

// WorkerID identifies a worker process across restarts.
type WorkerID string

// NodeID identifies a control plane node; it is also its Raft server ID.
type NodeID string

// Sentinel errors of the control plane. Callers branch on them with
// errors.Is; they keep their identity across a forwarded call because
// ToStatus and FromStatus carry the stable code.
var (
	// ErrNotLeader means the node is not the leader and could not forward.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader means the group has no leader (no quorum, or an election
	// is running); the write was not applied.
	ErrNoLeader = errors.New("no leader: the control plane has no quorum")
	// ErrTimeout means a write was not confirmed in time; it may or may not
	// have been applied.
	ErrTimeout = errors.New("timed out waiting for the control plane")
	// ErrJobNotFound means no job has the given id.
	ErrJobNotFound = errors.New("job not found")
	// ErrJobExists means a job with the requested id exists already.
	ErrJobExists = errors.New("job exists")
	// ErrJobNotCancellable means the job is in a terminal status.
	ErrJobNotCancellable = errors.New("job is not cancellable")
	// ErrWorkerNotFound means no worker has the given id.
	ErrWorkerNotFound = errors.New("worker not found")
	// ErrMalformedJSON means a request body is not the JSON it should be.
	ErrMalformedJSON = errors.New("malformed json")
	// ErrInvalidArgument means the request is malformed or incomplete.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrOtherCluster means a node of another cluster asked to join, or a
	// node was asked to join a cluster it does not belong to.
	ErrOtherCluster = errors.New("node belongs to another cluster")
	// ErrNodeNotFound means no control plane member has the given id.
	ErrNodeNotFound = errors.New("node not found")
	// ErrArtifactNotFound means no stored artifact has the given hash.
	ErrArtifactNotFound = errors.New("artifact not found")
	// ErrSavepointNotFound means a job has no savepoint request with the
	// given id.
	ErrSavepointNotFound = errors.New("savepoint not found")
	// ErrCheckpointNotPossible means a checkpoint was asked of a job that
	// does not checkpoint or is not running.
	ErrCheckpointNotPossible = errors.New("checkpoint not possible")
)

// Code is the stable, documented error code of the REST API.
type Code string

type entry struct {
	err  error
	code Code
	grpc codes.Code
	http int
}

// table is the one place that maps errors to codes. Order matters only for
// errors wrapping several sentinels: the first match wins.
var table = []entry{
	{ErrMalformedJSON, "malformed_json", codes.InvalidArgument, http.StatusBadRequest},
	{ErrInvalidArgument, "invalid_argument", codes.InvalidArgument, http.StatusBadRequest},
	{ErrJobNotFound, "job_not_found", codes.NotFound, http.StatusNotFound},
	{ErrWorkerNotFound, "worker_not_found", codes.NotFound, http.StatusNotFound},
	{ErrNodeNotFound, "node_not_found", codes.NotFound, http.StatusNotFound},
	{ErrArtifactNotFound, "artifact_not_found", codes.NotFound, http.StatusNotFound},
	{ErrSavepointNotFound, "savepoint_not_found", codes.NotFound, http.StatusNotFound},
	{ErrJobExists, "job_exists", codes.AlreadyExists, http.StatusConflict},
	{ErrJobNotCancellable, "job_not_cancellable", codes.FailedPrecondition, http.StatusConflict},
	{ErrOtherCluster, "other_cluster", codes.FailedPrecondition, http.StatusConflict},
	{ErrCheckpointNotPossible, "checkpoint_not_possible", codes.FailedPrecondition, http.StatusConflict},
	{ErrNoLeader, "no_leader", codes.Unavailable, http.StatusServiceUnavailable},
	{ErrNotLeader, "not_leader", codes.Unavailable, http.StatusServiceUnavailable},
	{ErrTimeout, "timeout", codes.DeadlineExceeded, http.StatusServiceUnavailable},
}

const errorDomain = "eddy.controlplane"

// Lookup returns the stable code and HTTP status of err. Errors outside the
// table are internal errors.
func Lookup(err error) (Code, int) {
	if e, ok := find(err); ok {
		return e.code, e.http
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout", http.StatusServiceUnavailable
	}
	return "internal", http.StatusInternalServerError
}

func find(err error) (entry, bool) {
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e, true
		}
	}
	return entry{}, false
}

// ToStatus turns err into a gRPC status error that carries its stable code,
// so that FromStatus on the other side of a call restores the sentinel.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	e, ok := find(err)
	if !ok {
		c := codes.Internal
		if errors.Is(err, context.DeadlineExceeded) {
			c = codes.DeadlineExceeded
		} else if errors.Is(err, context.Canceled) {
			c = codes.Canceled
		}
		return status.Error(c, err.Error())
	}
	st := status.New(e.grpc, err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: string(e.code), Domain: errorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// FromStatus turns a gRPC error back into an error that wraps the matching
// sentinel, keeping the remote message.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != errorDomain {
			continue
		}
		for _, e := range table {
			if string(e.code) == info.Reason {
				return &remoteError{sentinel: e.err, msg: st.Message()}
			}
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ErrNoLeader, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", ErrTimeout, st.Message())
	}
	return err
}

type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
