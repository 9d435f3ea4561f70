package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// joinTimeout bounds how long a fresh node keeps trying to join.
const joinTimeout = 60 * time.Second

// joinCluster asks the nodes in Join to add this node, trying them in turn
// until one accepts. A refusal (another cluster, a bad request) ends it at
// once; an unreachable cluster is retried until joinTimeout.
func (s *Server) joinCluster() error {
	ctx, cancel := context.WithTimeout(s.ctx, joinTimeout)
	defer cancel()
	req := &eddypb.JoinRequest{
		NodeId: s.cfg.NodeID, RaftAddr: s.raftAddr, GrpcAddr: s.grpcAddr, HttpAddr: s.httpAddr,
		ClusterId: s.ClusterID(),
	}
	var last error
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 2*time.Second) {
		for _, addr := range s.cfg.Join {
			err := s.joinVia(ctx, addr, req)
			if err == nil {
				s.log.Info("joined cluster", "via", addr)
				return nil
			}
			if errors.Is(err, controlplane.ErrOtherCluster) || errors.Is(err, controlplane.ErrInvalidArgument) {
				return fmt.Errorf("join via %s: %w", addr, err)
			}
			s.log.Warn("join attempt failed", "via", addr, "error", err)
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %v: gave up after %s: %w", s.cfg.Join, joinTimeout, last)
		case <-time.After(backoff):
		}
	}
}

// joinVia tries addr as a gRPC address, then as an HTTP one.
func (s *Server) joinVia(ctx context.Context, addr string, req *eddypb.JoinRequest) error {
	gerr := s.joinGRPC(ctx, addr, req)
	if gerr == nil {
		return nil
	}
	if st, ok := status.FromError(gerr); ok && st.Code() != codes.Unavailable && st.Code() != codes.Unimplemented && st.Code() != codes.Internal {
		return controlplane.FromStatus(gerr)
	}
	herr := s.joinHTTP(ctx, addr, req)
	if herr == nil {
		return nil
	}
	var apiErr *httpError
	if errors.As(herr, &apiErr) {
		return herr
	}
	return fmt.Errorf("as grpc: %v; as http: %w", gerr, herr)
}

func (s *Server) joinGRPC(ctx context.Context, addr string, req *eddypb.JoinRequest) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout+s.cfg.LeaderWait)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+addr, s.dialOptions()...)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = eddypb.NewControlPlaneClient(conn).Join(ctx, req)
	return err
}

type httpError struct {
	status int
	body   api.Error
}

func (e *httpError) Error() string { return e.body.Error.Message }

func (e *httpError) Unwrap() error {
	switch e.body.Error.Code {
	case "other_cluster":
		return controlplane.ErrOtherCluster
	case "invalid_argument":
		return controlplane.ErrInvalidArgument
	}
	return nil
}

func (s *Server) joinHTTP(ctx context.Context, addr string, req *eddypb.JoinRequest) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout+s.cfg.LeaderWait)
	defer cancel()
	body, _ := json.Marshal(api.JoinRequest{
		NodeID: req.NodeId, RaftAddr: req.RaftAddr, GRPCAddr: req.GrpcAddr, HTTPAddr: req.HttpAddr, ClusterID: req.ClusterId,
	})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/cluster/members", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{DialContext: s.cfg.Dial}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &httpError{status: resp.StatusCode}
	if json.Unmarshal(b, &e.body) != nil || e.body.Error.Code == "" {
		return fmt.Errorf("http %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return e
}
