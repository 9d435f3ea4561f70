// Package storage is the one interface Eddy uses for checkpoints,
// savepoints and job artifacts, opened by URL: file:///path (the default,
// under a data dir) and, for real clusters, s3://bucket/prefix.
//
// Every object is written atomically (readers see all of it or nothing) and
// carries a SHA-256 checksum that is verified when it is read to the end.
//
// It must not depend on the control plane, the worker or plugin-sdk.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
)

// Sentinel errors.
var (
	// ErrNotFound means no object has the name.
	ErrNotFound = errors.New("object not found")
	// ErrChecksum means an object's content does not match its checksum.
	ErrChecksum = errors.New("checksum mismatch")
)

// Info describes a stored object.
type Info struct {
	Name   string
	Size   int64
	SHA256 string
}

// Store is a flat namespace of objects with '/'-separated names. Its methods
// are safe for concurrent use.
type Store interface {
	// Put stores the content of r under name, atomically.
	Put(ctx context.Context, name string, r io.Reader) (Info, error)
	// Open returns a reader of the object; reading it to the end verifies
	// its checksum and fails with ErrChecksum on a mismatch.
	Open(ctx context.Context, name string) (io.ReadCloser, Info, error)
	// Stat describes the object.
	Stat(ctx context.Context, name string) (Info, error)
	// Delete removes the object; deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// List describes the objects whose names start with prefix.
	List(ctx context.Context, prefix string) ([]Info, error)
	// URL returns the URL of an object, which Open (the package function)
	// and OpenObject accept.
	URL(name string) string
}

// Open returns the store at a URL: file:///abs/path or s3://bucket/prefix.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage url %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		return openFile(u)
	case "s3":
		return openS3(ctx, u, S3Options{})
	case "":
		return nil, fmt.Errorf("storage url %q: missing scheme, want file:// or s3://", rawURL)
	}
	return nil, fmt.Errorf("storage url %q: unsupported scheme %q, want file:// or s3://", rawURL, u.Scheme)
}

// OpenObject opens one object by its full URL, as Store.URL returns it.
func OpenObject(ctx context.Context, objectURL string) (io.ReadCloser, Info, error) {
	if u, err := url.Parse(objectURL); err == nil && u.Scheme == "s3" {
		return openS3Object(ctx, u)
	}
	i := strings.LastIndex(objectURL, "/")
	if i < 0 {
		return nil, Info{}, fmt.Errorf("object url %q has no name", objectURL)
	}
	st, err := Open(ctx, objectURL[:i])
	if err != nil {
		return nil, Info{}, err
	}
	return st.Open(ctx, objectURL[i+1:])
}

// validName refuses names that could escape the store.
func validName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("object name %q: want a relative path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".tmp-") {
			return fmt.Errorf("object name %q: bad path element %q", name, part)
		}
	}
	if strings.HasSuffix(name, sumSuffix) {
		// The file store keeps checksums under that suffix.
		return fmt.Errorf("object name %q: names ending in %s are reserved", name, sumSuffix)
	}
	return nil
}

// verifyingReader checks the checksum when the content ends.
type verifyingReader struct {
	r    io.ReadCloser
	h    hash.Hash
	want string
	name string
}

func newVerifyingReader(r io.ReadCloser, name, want string) *verifyingReader {
	return &verifyingReader{r: r, h: sha256.New(), want: want, name: name}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("read %s: %w: content has sha256 %s, recorded %s", v.name, ErrChecksum, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// JoinURL returns the URL of the object or directory name inside the
// storage URL base: name joins base's path, before any query (an s3://
// URL's endpoint and region stay parameters of the whole URL).
func JoinURL(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("storage url %q: %w", base, err)
	}
	if u.Scheme == "" {
		return "", fmt.Errorf("storage url %q: missing scheme, want file:// or s3://", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimPrefix(name, "/")
	u.RawPath = ""
	return u.String(), nil
}

// MustJoinURL is JoinURL for a base already known to parse (one a Store
// returned from its URL method): it appends name to the path, and falls
// back to plain concatenation only if base does not parse.
func MustJoinURL(base, name string) string {
	s, err := JoinURL(base, name)
	if err != nil {
		return strings.TrimSuffix(base, "/") + "/" + name
	}
	return s
}
