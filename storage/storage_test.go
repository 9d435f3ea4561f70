package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openTemp(t *testing.T) (Store, string) {
	t.Helper()
	dir := t.TempDir()
	u, err := FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestFilePutOpenListDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	data := bytes.Repeat([]byte("eddy"), 10000)
	info, err := s.Put(ctx, "jobs/a/blob", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if info.Size != int64(len(data)) || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("info %+v", info)
	}
	r, got, err := s.Open(ctx, "jobs/a/blob")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(b, data) || got != info {
		t.Fatalf("read back: err %v, equal %v, info %+v", err, bytes.Equal(b, data), got)
	}
	// OpenObject by URL reaches the same object.
	r, _, err = OpenObject(ctx, s.URL("jobs/a/blob"))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := s.Put(ctx, "jobs/b", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "jobs/a")
	if err != nil || len(list) != 1 || list[0].Name != "jobs/a/blob" {
		t.Fatalf("list: %v %+v", err, list)
	}
	if err := s.Delete(ctx, "jobs/a/blob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "jobs/a/blob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := s.Delete(ctx, "jobs/a/blob"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestFileCorruptionDetected(t *testing.T) {
	ctx := context.Background()
	s, dir := openTemp(t)
	if _, err := s.Put(ctx, "x", strings.NewReader("hello world")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("hello wurld"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, ErrChecksum) {
		t.Fatalf("read of a corrupted object: %v, want ErrChecksum", err)
	}
}

func TestBadNamesAndURLs(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for _, name := range []string{"", "/abs", "../up", "a/../b", "a//b", ".tmp-x"} {
		if _, err := s.Put(ctx, name, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) succeeded", name)
		}
	}
	for _, u := range []string{"relative/path", "file://host/x", "file:relative", "ftp://x/y"} {
		if _, err := Open(ctx, u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

func TestUnpublishedObjectIsNotFound(t *testing.T) {
	ctx := context.Background()
	s, dir := openTemp(t)
	// A file without its checksum sidecar is a write that did not finish.
	if err := os.WriteFile(filepath.Join(dir, "half"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "half"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat of an unpublished object: %v", err)
	}
}

func TestJoinURL(t *testing.T) {
	for _, c := range []struct{ base, name, want string }{
		{"file:///data/checkpoints/job1", "chk-3", "file:///data/checkpoints/job1/chk-3"},
		{"file:///data/checkpoints/job1/", "chk-3", "file:///data/checkpoints/job1/chk-3"},
		{"s3://bucket/prefix/job1?endpoint=127.0.0.1%3A9000&region=us-east-1", "chk-3",
			"s3://bucket/prefix/job1/chk-3?endpoint=127.0.0.1%3A9000&region=us-east-1"},
		{"s3://bucket?region=eu-west-1", "savepoints/sp-1", "s3://bucket/savepoints/sp-1?region=eu-west-1"},
	} {
		got, err := JoinURL(c.base, c.name)
		if err != nil || got != c.want {
			t.Errorf("JoinURL(%q, %q) = %q, %v; want %q", c.base, c.name, got, err, c.want)
		}
	}
	if _, err := JoinURL("/plain/path", "x"); err == nil {
		t.Error("JoinURL accepted a URL without a scheme")
	}
}
