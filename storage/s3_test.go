package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eddy-streams/eddy/internal/s3test"
)

// versityGW is the S3 server of a test (internal/s3test).
type versityGW = s3test.Server

func startVersityGW(t *testing.T) *versityGW { return s3test.Start(t) }

// fixture is one kind of store for the contract tests, with ways to change
// objects behind its back.
type fixture struct {
	// open returns an empty store; partSize is 0 for the default.
	open func(t *testing.T, partSize uint64) Store
	// corrupt replaces an object's content, keeping its recorded checksum.
	corrupt func(t *testing.T, s Store, name string, data []byte)
	// putUnpublished writes content without a checksum, as a write that
	// stopped before publishing would leave it.
	putUnpublished func(t *testing.T, s Store, name string, data []byte)
	// parts is the number of parts an object was uploaded in, 0 if the
	// store has no such notion.
	parts func(t *testing.T, s Store, name string) int
}

func fileFixture() fixture {
	path := func(t *testing.T, s Store, name string) string {
		t.Helper()
		u, err := url.Parse(s.URL(name))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.FromSlash(u.Path)
	}
	write := func(t *testing.T, s Store, name string, data []byte) {
		t.Helper()
		p := path(t, s, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{
		open: func(t *testing.T, _ uint64) Store {
			s, _ := openTemp(t)
			return s
		},
		corrupt:        write,
		putUnpublished: write,
		parts:          func(*testing.T, Store, string) int { return 0 },
	}
}

func s3Fixture(g *versityGW) fixture {
	var (
		mu sync.Mutex
		n  int
	)
	key := func(t *testing.T, s Store, name string) string {
		t.Helper()
		u, err := url.Parse(s.URL(name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u.Path, "/")
	}
	put := func(t *testing.T, s Store, name string, data []byte, meta map[string]string) {
		t.Helper()
		_, err := g.Client(t).PutObject(context.Background(), g.Bucket, key(t, s, name), bytes.NewReader(data), int64(len(data)),
			minio.PutObjectOptions{UserMetadata: meta})
		if err != nil {
			t.Fatal(err)
		}
	}
	return fixture{
		open: func(t *testing.T, partSize uint64) Store {
			t.Helper()
			mu.Lock()
			n++
			prefix := fmt.Sprintf("t%d/ckpt", n)
			mu.Unlock()
			// Settings from the URL, credentials from the environment.
			g.UseEnv(t)
			s, err := OpenWith(context.Background(), g.URL(prefix), S3Options{PartSize: partSize})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		corrupt: func(t *testing.T, s Store, name string, data []byte) {
			t.Helper()
			info, err := s.Stat(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, name, data, map[string]string{sumMetaKey: info.SHA256})
		},
		putUnpublished: func(t *testing.T, s Store, name string, data []byte) {
			t.Helper()
			put(t, s, name, data, nil)
		},
		parts: func(t *testing.T, s Store, name string) int {
			t.Helper()
			oi, err := g.Client(t).StatObject(context.Background(), g.Bucket, key(t, s, name), minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A multipart object's ETag is "md5-of-part-md5s-N".
			_, n, ok := strings.Cut(strings.Trim(oi.ETag, `"`), "-")
			if !ok {
				return 1
			}
			var parts int
			if _, err := fmt.Sscan(n, &parts); err != nil {
				t.Fatalf("etag %q: %v", oi.ETag, err)
			}
			return parts
		},
	}
}

func sumOf(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func readAll(t *testing.T, s Store, name string) ([]byte, Info, error) {
	t.Helper()
	r, info, err := s.Open(context.Background(), name)
	if err != nil {
		return nil, Info{}, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, info, err
}

// TestStoreContract runs the same tests against file:// and s3://.
func TestStoreContract(t *testing.T) {
	kinds := []struct {
		name  string
		setup func(t *testing.T) fixture
	}{
		{"file", func(*testing.T) fixture { return fileFixture() }},
		{"s3", func(t *testing.T) fixture { return s3Fixture(startVersityGW(t)) }},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			fx := kind.setup(t)
			t.Run("PutOpenStatListDelete", func(t *testing.T) { testPutOpenStatListDelete(t, fx) })
			t.Run("ChecksumMismatch", func(t *testing.T) { testChecksumMismatch(t, fx) })
			t.Run("UnpublishedNotFound", func(t *testing.T) { testUnpublishedNotFound(t, fx) })
			t.Run("Multipart", func(t *testing.T) { testMultipart(t, fx) })
		})
	}
}

func testPutOpenStatListDelete(t *testing.T, fx fixture) {
	ctx := context.Background()
	s := fx.open(t, 0)
	data := bytes.Repeat([]byte("eddy"), 10000)
	info, err := s.Put(ctx, "jobs/a/blob", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "jobs/a/blob", Size: int64(len(data)), SHA256: sumOf(data)}
	if info != want {
		t.Fatalf("put: info %+v, want %+v", info, want)
	}
	if got, err := s.Stat(ctx, "jobs/a/blob"); err != nil || got != want {
		t.Fatalf("stat: %+v, %v", got, err)
	}
	b, got, err := readAll(t, s, "jobs/a/blob")
	if err != nil || !bytes.Equal(b, data) || got != want {
		t.Fatalf("read back: err %v, equal %v, info %+v", err, bytes.Equal(b, data), got)
	}
	// OpenObject reaches the object by its URL alone.
	r, got, err := OpenObject(ctx, s.URL("jobs/a/blob"))
	if err != nil {
		t.Fatalf("OpenObject(%s): %v", s.URL("jobs/a/blob"), err)
	}
	b, err = io.ReadAll(r)
	r.Close()
	// Name is relative to the store OpenObject opened, so compare the rest.
	if err != nil || !bytes.Equal(b, data) || got.Size != want.Size || got.SHA256 != want.SHA256 {
		t.Fatalf("OpenObject read back: err %v, equal %v, info %+v", err, bytes.Equal(b, data), got)
	}
	// Overwrite, and an empty object.
	if _, err := s.Put(ctx, "jobs/b", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Put(ctx, "jobs/b", strings.NewReader("")); err != nil || info.Size != 0 || info.SHA256 != sumOf(nil) {
		t.Fatalf("put empty: %+v, %v", info, err)
	}
	if b, _, err := readAll(t, s, "jobs/b"); err != nil || len(b) != 0 {
		t.Fatalf("read empty: %q, %v", b, err)
	}
	list, err := s.List(ctx, "jobs/a")
	if err != nil || len(list) != 1 || list[0] != want {
		t.Fatalf("list jobs/a: %v %+v", err, list)
	}
	if list, err := s.List(ctx, ""); err != nil || len(list) != 2 || list[0].Name != "jobs/a/blob" || list[1].Name != "jobs/b" {
		t.Fatalf("list all: %v %+v", err, list)
	}
	if err := s.Delete(ctx, "jobs/a/blob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "jobs/a/blob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	if _, _, err := s.Open(ctx, "jobs/a/blob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
	if err := s.Delete(ctx, "jobs/a/blob"); err != nil {
		t.Fatalf("delete of a missing object: %v", err)
	}
	if _, err := s.Put(ctx, "../up", strings.NewReader("x")); err == nil {
		t.Fatal("put of a bad name succeeded")
	}
}

func testChecksumMismatch(t *testing.T, fx fixture) {
	ctx := context.Background()
	s := fx.open(t, 0)
	if _, err := s.Put(ctx, "x", strings.NewReader("hello world")); err != nil {
		t.Fatal(err)
	}
	fx.corrupt(t, s, "x", []byte("hello wurld"))
	if _, _, err := readAll(t, s, "x"); !errors.Is(err, ErrChecksum) {
		t.Fatalf("read of a corrupted object: %v, want ErrChecksum", err)
	}
}

func testUnpublishedNotFound(t *testing.T, fx fixture) {
	ctx := context.Background()
	s := fx.open(t, 0)
	fx.putUnpublished(t, s, "half", []byte("x"))
	if _, err := s.Stat(ctx, "half"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat of an unpublished object: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(ctx, "half"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of an unpublished object: %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("list with only an unpublished object: %+v, %v", list, err)
	}
}

func testMultipart(t *testing.T, fx fixture) {
	ctx := context.Background()
	const partSize = 5 << 20
	s := fx.open(t, partSize)
	data := make([]byte, 40<<20)
	rng := mrand.NewChaCha8([32]byte{'e', 'd', 'd', 'y'})
	_, _ = rng.Read(data)
	// A reader without ReadAt or Len, as a checkpoint writer would give.
	info, err := s.Put(ctx, "big", io.MultiReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || info.SHA256 != sumOf(data) {
		t.Fatalf("put: %+v", info)
	}
	if n := fx.parts(t, s, "big"); n != 0 && n != len(data)/partSize {
		t.Fatalf("uploaded in %d parts, want %d", n, len(data)/partSize)
	}
	b, got, err := readAll(t, s, "big")
	if err != nil || !bytes.Equal(b, data) || got != info {
		t.Fatalf("read back: err %v, equal %v, info %+v", err, bytes.Equal(b, data), got)
	}
}

func TestS3Errors(t *testing.T) {
	g := startVersityGW(t)
	g.UseEnv(t)
	ctx := context.Background()

	t.Run("WrongCredentials", func(t *testing.T) {
		_, err := OpenWith(ctx, g.URL("p"), S3Options{AccessKeyID: g.AccessKey, SecretAccessKey: "wrong" + g.SecretKey})
		if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), g.Endpoint) ||
			!strings.Contains(err.Error(), g.Bucket) {
			t.Fatalf("open with a wrong secret: %v, want access denied naming the endpoint and bucket", err)
		}
		t.Log(err)
	})
	t.Run("MissingBucket", func(t *testing.T) {
		u := strings.Replace(g.URL("p"), g.Bucket, "no-such-bucket", 1)
		_, err := Open(ctx, u)
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "no-such-bucket") {
			t.Fatalf("open of a missing bucket: %v", err)
		}
		t.Log(err)
	})
	t.Run("UnreachableEndpoint", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		u := strings.Replace(g.URL("p"), g.Endpoint, closed, 1)
		start := time.Now()
		_, err = OpenWith(ctx, u, S3Options{Timeout: 2 * time.Second})
		if err == nil || !strings.Contains(err.Error(), closed) || !strings.Contains(err.Error(), g.Bucket) {
			t.Fatalf("open of a closed port: %v, want an error naming %s and the bucket", err, closed)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %s to fail", d)
		}
		t.Log(err)
	})
	t.Run("SilentEndpoint", func(t *testing.T) {
		// Accepts connections and never answers: only timeouts end this.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			conns []net.Conn
			done  = make(chan struct{})
		)
		t.Cleanup(func() {
			ln.Close()
			<-done
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		u := strings.Replace(g.URL("p"), g.Endpoint, ln.Addr().String(), 1)
		start := time.Now()
		_, err = OpenWith(ctx, u, S3Options{Timeout: time.Second})
		if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "no answer") {
			t.Fatalf("open of a silent endpoint: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s to fail", d)
		}
		t.Log(err)
	})
	t.Run("BadURLs", func(t *testing.T) {
		for _, u := range []string{
			"s3://key:secret@" + g.Bucket + "/p?endpoint=" + g.Endpoint,
			g.URL("p") + "&secret_key=x",
			"s3:///p",
			g.URL("a/../b"),
			strings.Replace(g.URL("p"), "insecure=true", "insecure=maybe", 1),
			g.URL("p") + "&region=eu-west-1",
		} {
			_, err := Open(ctx, u)
			if err == nil {
				t.Errorf("Open(%q) succeeded", u)
			} else if strings.Contains(err.Error(), "secret@") {
				t.Errorf("error shows the credentials: %v", err)
			}
		}
	})
}

func TestS3SettingsFromEnvironment(t *testing.T) {
	g := startVersityGW(t)
	g.UseEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", "http://"+g.Endpoint)
	t.Setenv("AWS_REGION", g.Region)
	ctx := context.Background()
	s, err := Open(ctx, "s3://"+g.Bucket+"/env")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a", strings.NewReader("from env")); err != nil {
		t.Fatal(err)
	}
	u := s.URL("a")
	if strings.Contains(u, g.SecretKey) || strings.Contains(u, g.AccessKey) {
		t.Fatalf("URL %s carries credentials", u)
	}
	// The URL names the endpoint itself, so it works without AWS_ENDPOINT_URL.
	t.Setenv("AWS_ENDPOINT_URL", "")
	r, _, err := OpenObject(ctx, u)
	if err != nil {
		t.Fatalf("OpenObject(%s): %v", u, err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || string(b) != "from env" {
		t.Fatalf("read %q, %v", b, err)
	}
}

// TestVersityGWCleanup checks that the helper leaves no server or directory
// behind.
func TestVersityGWCleanup(t *testing.T) {
	var g *versityGW
	t.Run("server", func(t *testing.T) { g = startVersityGW(t) })
	if g == nil {
		t.Skip("no server started")
	}
	p, err := os.FindProcess(g.Pid)
	if err == nil {
		if err := p.Signal(syscall.Signal(0)); err == nil {
			t.Errorf("versitygw pid %d still running", g.Pid)
		}
	}
	if _, err := os.Stat(g.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("versitygw dir %s still there: %v", g.Dir, err)
	}
	if c, err := net.DialTimeout("tcp", g.Endpoint, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s", g.Endpoint)
	}
}
