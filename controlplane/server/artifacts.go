package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/storage"
)

// MaxArtifactSize bounds an uploaded job binary.
const MaxArtifactSize = 1 << 30

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func artifactName(sha string) string { return "artifacts/" + sha }

// UploadArtifact stores a job binary in the cluster's storage under its
// SHA-256, so that every worker can fetch and verify it.
func (s *Server) UploadArtifact(ctx context.Context, r io.Reader) (api.Artifact, error) {
	// The name is the content's hash, known only at the end: spool first.
	f, err := os.CreateTemp(s.cfg.DataDir, ".upload-*")
	if err != nil {
		return api.Artifact{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, MaxArtifactSize+1))
	if err != nil {
		return api.Artifact{}, fmt.Errorf("receive artifact: %w", err)
	}
	if n == 0 {
		return api.Artifact{}, fmt.Errorf("%w: empty artifact", controlplane.ErrInvalidArgument)
	}
	if n > MaxArtifactSize {
		return api.Artifact{}, fmt.Errorf("%w: artifact larger than %d bytes", controlplane.ErrInvalidArgument, MaxArtifactSize)
	}
	sha := hex.EncodeToString(h.Sum(nil))
	name := artifactName(sha)
	// An object with the same name is the same binary, unless its bytes
	// were damaged: then the upload repairs it.
	if rc, info, err := s.blobs.Open(ctx, name); err == nil {
		_, cerr := io.Copy(io.Discard, rc)
		rc.Close()
		if cerr == nil && info.SHA256 == sha {
			return api.Artifact{SHA256: sha, URL: s.blobs.URL(name), Size: info.Size}, nil
		}
		s.log.Warn("stored artifact is damaged; replacing it", "sha256", sha, "error", cerr)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return api.Artifact{}, err
	}
	info, err := s.blobs.Put(ctx, name, f)
	if err != nil {
		return api.Artifact{}, fmt.Errorf("store artifact: %w", err)
	}
	if info.SHA256 != sha {
		return api.Artifact{}, fmt.Errorf("store artifact: stored hash %s differs from received %s", info.SHA256, sha)
	}
	s.log.Info("artifact stored", "sha256", sha, "size", n)
	return api.Artifact{SHA256: sha, URL: s.blobs.URL(name), Size: n}, nil
}

// OpenArtifact opens a stored job binary by its SHA-256, for another
// cluster (eddy migrate) to fetch it.
func (s *Server) OpenArtifact(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	if !sha256Pattern.MatchString(sha) {
		return nil, 0, fmt.Errorf("%w: artifact sha256 %q is not 64 hex digits", controlplane.ErrInvalidArgument, sha)
	}
	rc, info, err := s.blobs.Open(ctx, artifactName(sha))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: artifact %s", controlplane.ErrArtifactNotFound, sha)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open artifact %s: %w", sha, err)
	}
	return rc, info.Size, nil
}

// checkArtifact refuses a job whose artifact is not in storage with the
// hash it claims.
func (s *Server) checkArtifact(ctx context.Context, a *eddypb.ArtifactRef) error {
	if !sha256Pattern.MatchString(a.Sha256) {
		return fmt.Errorf("%w: artifact sha256 %q is not 64 hex digits", controlplane.ErrInvalidArgument, a.Sha256)
	}
	info, err := s.blobs.Stat(ctx, artifactName(a.Sha256))
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: artifact %s is not in the cluster's storage (%s); upload it with POST /v1/artifacts, and give every node the same --storage", controlplane.ErrInvalidArgument, a.Sha256, s.blobs.URL(""))
	}
	if err != nil {
		return fmt.Errorf("check artifact %s: %w", a.Sha256, err)
	}
	if info.SHA256 != a.Sha256 {
		return fmt.Errorf("%w: artifact hash mismatch: stored content has sha256 %s, the job names %s", controlplane.ErrInvalidArgument, info.SHA256, a.Sha256)
	}
	// Workers fetch from the cluster's store only, never from a URL the
	// client chose.
	a.Url = s.blobs.URL(artifactName(a.Sha256))
	if a.Size == 0 {
		a.Size = info.Size
	}
	return nil
}

// workerClient returns a client of a worker's gRPC service.
func (s *Server) workerClient(addr string) (eddypb.WorkerServiceClient, error) {
	c, err := s.conn(addr)
	if err != nil {
		return nil, err
	}
	return eddypb.NewWorkerServiceClient(c), nil
}

// ReportTasks records task state changes reported by a worker.
func (s *Server) ReportTasks(ctx context.Context, req *eddypb.ReportTasksRequest) (*eddypb.ReportTasksResponse, error) {
	return call(ctx, s, req, true, eddypb.ControlPlaneClient.ReportTasks, func(ctx context.Context, l *leadership) (*eddypb.ReportTasksResponse, error) {
		if err := l.jobs.ReportTasks(ctx, req); err != nil {
			return nil, err
		}
		return &eddypb.ReportTasksResponse{}, nil
	})
}
