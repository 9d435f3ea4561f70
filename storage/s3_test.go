package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// versityGW is an S3 server (versitygw's posix backend) on loopback, with
// one bucket, for the life of a test.
type versityGW struct {
	Endpoint  string // 127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string // the posix backend's root
	Pid       int
}

// versityBinary finds versitygw: $EDDY_VERSITYGW (set by `make test`), else
// .tools/bin/versitygw under the module root, else versitygw on PATH.
func versityBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDDY_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("EDDY_VERSITYGW=%s: %v", p, err)
		}
		return p
	}
	if dir, err := os.Getwd(); err == nil {
		for ; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".tools", "bin", "versitygw")
				if _, err := os.Stat(p); err == nil {
					return p
				}
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	t.Skip("versitygw not found (EDDY_VERSITYGW, .tools/bin, PATH): `make tools` installs it, and `make test` does so itself")
	return ""
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// lockedBuffer collects the gateway's output for the test log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startVersityGW starts versitygw on a free loopback port with a fresh
// directory and random credentials, creates a bucket, and at cleanup stops
// the server, removes the directory and checks that both are gone.
func startVersityGW(t *testing.T) *versityGW {
	t.Helper()
	bin := versityBinary(t)
	dir, err := os.MkdirTemp("", "eddy-versitygw-*")
	if err != nil {
		t.Fatal(err)
	}
	g := &versityGW{
		Region:    "us-east-1",
		AccessKey: "eddy" + randomHex(t, 8),
		SecretKey: randomHex(t, 20),
		Bucket:    "eddy-test",
		Dir:       dir,
	}
	var (
		cmd    *exec.Cmd
		out    *lockedBuffer
		exited chan struct{}
	)
	stop := func() {
		if cmd == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() && out != nil {
			t.Logf("versitygw output:\n%s", out.String())
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove versitygw dir: %v", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("versitygw dir %s still there: %v", dir, err)
		}
		if cmd != nil && cmd.ProcessState == nil {
			t.Errorf("versitygw (pid %d) did not exit", cmd.Process.Pid)
		}
	})

	// The port is picked by the kernel, freed, and handed to versitygw; a
	// rare collision in between is retried with a new port.
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g.Endpoint = ln.Addr().String()
		ln.Close()
		out = &lockedBuffer{}
		cmd = exec.Command(bin, "--access", g.AccessKey, "--secret", g.SecretKey, "--region", g.Region,
			"--port", g.Endpoint, "posix", dir)
		cmd.Stdout, cmd.Stderr = out, out
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) {
			_ = cmd.Wait()
			close(exited)
		}(cmd, exited)
		err = waitReady(g.Endpoint, exited, 10*time.Second)
		if err == nil {
			break
		}
		stop()
		if attempt == 3 {
			t.Fatalf("versitygw on %s: %v\n%s", g.Endpoint, err, out.String())
		}
	}
	g.Pid = cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.client(t).MakeBucket(ctx, g.Bucket, minio.MakeBucketOptions{Region: g.Region}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	return g
}

// waitReady waits until the server answers HTTP (any status) or exits.
func waitReady(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		default:
		}
		resp, err := hc.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

// client is a raw minio-go client, for changing objects behind a store.
func (g *versityGW) client(t *testing.T) *minio.Client {
	t.Helper()
	c, err := minio.New(g.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(g.AccessKey, g.SecretKey, ""),
		Region: g.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// url is the store URL of a prefix in the gateway's bucket.
func (g *versityGW) url(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&insecure=true", g.Bucket, prefix, g.Endpoint, g.Region)
}

// useEnvCredentials puts the gateway's credentials in the standard AWS
// variables, as an operator would, and clears the others.
func (g *versityGW) useEnvCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", g.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", g.SecretKey)
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
}

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
		_, err := g.client(t).PutObject(context.Background(), g.Bucket, key(t, s, name), bytes.NewReader(data), int64(len(data)),
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
			g.useEnvCredentials(t)
			s, err := OpenWith(context.Background(), g.url(prefix), S3Options{PartSize: partSize})
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
			oi, err := g.client(t).StatObject(context.Background(), g.Bucket, key(t, s, name), minio.StatObjectOptions{})
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
	g.useEnvCredentials(t)
	ctx := context.Background()

	t.Run("WrongCredentials", func(t *testing.T) {
		_, err := OpenWith(ctx, g.url("p"), S3Options{AccessKeyID: g.AccessKey, SecretAccessKey: "wrong" + g.SecretKey})
		if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), g.Endpoint) ||
			!strings.Contains(err.Error(), g.Bucket) {
			t.Fatalf("open with a wrong secret: %v, want access denied naming the endpoint and bucket", err)
		}
		t.Log(err)
	})
	t.Run("MissingBucket", func(t *testing.T) {
		u := strings.Replace(g.url("p"), g.Bucket, "no-such-bucket", 1)
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
		u := strings.Replace(g.url("p"), g.Endpoint, closed, 1)
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
		u := strings.Replace(g.url("p"), g.Endpoint, ln.Addr().String(), 1)
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
			g.url("p") + "&secret_key=x",
			"s3:///p",
			g.url("a/../b"),
			strings.Replace(g.url("p"), "insecure=true", "insecure=maybe", 1),
			g.url("p") + "&region=eu-west-1",
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
	g.useEnvCredentials(t)
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
