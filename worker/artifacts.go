package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/storage"
)

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// artifact returns the path of the job binary ref names, cached under the
// data dir as artifacts/<sha256>: fetched from storage on first use, kept
// only if its content hashes to ref.Sha256, and reused while it still does.
func (w *Worker) artifact(ctx context.Context, ref *eddypb.ArtifactRef) (string, error) {
	sha := ref.GetSha256()
	if !sha256Pattern.MatchString(sha) {
		return "", status.Errorf(codes.InvalidArgument, "artifact sha256 %q: want 64 lowercase hex digits", sha)
	}
	if ref.GetUrl() == "" {
		return "", status.Errorf(codes.InvalidArgument, "artifact %s: url is required", sha)
	}
	unlock, err := w.lockArtifact(ctx, sha)
	if err != nil {
		return "", err
	}
	defer unlock()

	dir := filepath.Join(w.cfg.DataDir, "artifacts")
	path := filepath.Join(dir, sha)
	switch got, err := fileSHA256(path); {
	case err == nil && got == sha:
		return path, nil
	case err == nil:
		w.log.Warn("cached artifact changed on disk; fetching it again", "path", path, "sha256", got, "want_sha256", sha)
	case !errors.Is(err, os.ErrNotExist):
		w.log.Warn("cached artifact unreadable; fetching it again", "path", path, "error", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", status.Errorf(codes.Internal, "artifact cache: %v", err)
	}
	rc, _, err := storage.OpenObject(ctx, ref.GetUrl())
	if err != nil {
		code := codes.Unavailable
		if errors.Is(err, storage.ErrNotFound) {
			code = codes.NotFound
		}
		return "", status.Errorf(code, "fetch artifact %s from %s: %v", sha, ref.GetUrl(), err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".tmp-"+sha+"-*")
	if err != nil {
		return "", status.Errorf(codes.Internal, "artifact cache: %v", err)
	}
	published := false
	defer func() {
		if !published {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if err != nil {
		code := codes.Unavailable
		if errors.Is(err, storage.ErrChecksum) {
			code = codes.DataLoss
		}
		return "", status.Errorf(code, "fetch artifact %s from %s: %v", sha, ref.GetUrl(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return "", status.Errorf(codes.InvalidArgument, "artifact hash mismatch: %s (%d bytes) has sha256 %s, the job names sha256 %s", ref.GetUrl(), n, got, sha)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return "", status.Errorf(codes.Internal, "artifact cache: %v", err)
	}
	if err := tmp.Sync(); err != nil {
		return "", status.Errorf(codes.Internal, "artifact cache: %v", err)
	}
	if err := tmp.Close(); err != nil {
		return "", status.Errorf(codes.Internal, "artifact cache: %v", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", status.Errorf(codes.Internal, "artifact cache: %v", err)
	}
	published = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	w.log.Info("fetched artifact", "sha256", sha, "url", ref.GetUrl(), "size", n)
	return path, nil
}

// lockArtifact serialises the fetches of one artifact, so that jobs that
// share a binary fetch it once.
func (w *Worker) lockArtifact(ctx context.Context, sha string) (func(), error) {
	for {
		w.artMu.Lock()
		busy, ok := w.artBusy[sha]
		if !ok {
			done := make(chan struct{})
			w.artBusy[sha] = done
			w.artMu.Unlock()
			return func() {
				w.artMu.Lock()
				delete(w.artBusy, sha)
				w.artMu.Unlock()
				close(done)
			}, nil
		}
		w.artMu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
