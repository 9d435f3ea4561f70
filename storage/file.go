package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// fileStore keeps objects as files under a directory. The checksum of an
// object is kept in a sidecar file, name + ".sha256", written after the
// object, so an object without a sidecar is not yet published.
type fileStore struct {
	dir string
}

const sumSuffix = ".sha256"

func openFile(u *url.URL) (Store, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file url %q: host %q not supported; use file:///absolute/path", u.String(), u.Host)
	}
	if !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("file url %q: want an absolute path (file:///...)", u.String())
	}
	if err := os.MkdirAll(u.Path, 0o755); err != nil {
		return nil, fmt.Errorf("create store %s: %w", u.Path, err)
	}
	return &fileStore{dir: filepath.Clean(u.Path)}, nil
}

// FileURL returns the file:// URL of a local directory.
func FileURL(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: abs}).String(), nil
}

func (s *fileStore) path(name string) string { return filepath.Join(s.dir, filepath.FromSlash(name)) }

func (s *fileStore) URL(name string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(s.path(name))}).String()
}

func (s *fileStore) Put(ctx context.Context, name string, r io.Reader) (Info, error) {
	if err := validName(name); err != nil {
		return Info{}, err
	}
	p := s.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", name, err)
	}
	// Overwriting unpublishes the old object first, so that no reader ever
	// sees new content against the old checksum.
	if err := os.Remove(p + sumSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("put %s: unpublish the old version: %w", name, err)
	}
	h := sha256.New()
	n, err := writeAtomic(p, io.TeeReader(&ctxReader{ctx: ctx, r: r}, h))
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := writeAtomic(p+sumSuffix, strings.NewReader(sum+"\n")); err != nil {
		return Info{}, fmt.Errorf("put %s checksum: %w", name, err)
	}
	return Info{Name: name, Size: n, SHA256: sum}, nil
}

// writeAtomic writes to a temporary file, syncs it, and renames it into place.
func writeAtomic(path string, r io.Reader) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *fileStore) Stat(_ context.Context, name string) (Info, error) {
	if err := validName(name); err != nil {
		return Info{}, err
	}
	sum, err := os.ReadFile(s.path(name) + sumSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%s: %w", s.URL(name), ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%s: %w", s.URL(name), ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Name: name, Size: fi.Size(), SHA256: strings.TrimSpace(string(sum))}, nil
}

func (s *fileStore) Open(ctx context.Context, name string) (io.ReadCloser, Info, error) {
	info, err := s.Stat(ctx, name)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %s: %w", name, err)
	}
	return newVerifyingReader(f, s.URL(name), info.SHA256), info, nil
}

func (s *fileStore) Delete(_ context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	// The sidecar goes first: without it the object is unpublished.
	for _, p := range []string{s.path(name) + sumSuffix, s.path(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return nil
}

func (s *fileStore) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, sumSuffix) {
			return nil
		}
		rel, err := filepath.Rel(s.dir, strings.TrimSuffix(p, sumSuffix))
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := s.Stat(ctx, name)
		if err != nil {
			return err
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
