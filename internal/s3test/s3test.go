// Package s3test runs a real S3 server for tests: versitygw (posix
// backend) on loopback with one bucket, started by the test and stopped at
// its cleanup. `make test` installs versitygw and sets EDDY_VERSITYGW; a
// test skips when the binary is nowhere to be found.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is an S3 server (versitygw's posix backend) on loopback, with
// one bucket, for the life of a test.
type Server struct {
	Endpoint  string // 127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string // the posix backend's root
	Pid       int
}

// Binary finds versitygw: $EDDY_VERSITYGW (set by `make test`), else
// .tools/bin/versitygw under the module root, else versitygw on PATH.
func Binary(t testing.TB) string {
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

func randomHex(t testing.TB, n int) string {
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

// Start starts versitygw on a free loopback port with a fresh
// directory and random credentials, creates a bucket, and at cleanup stops
// the server, removes the directory and checks that both are gone.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir, err := os.MkdirTemp("", "eddy-versitygw-*")
	if err != nil {
		t.Fatal(err)
	}
	g := &Server{
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
	if err := g.Client(t).MakeBucket(ctx, g.Bucket, minio.MakeBucketOptions{Region: g.Region}); err != nil {
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

// Client is a raw minio-go client, for changing objects behind a store.
func (g *Server) Client(t testing.TB) *minio.Client {
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

// URL is the store URL of a prefix in the gateway's bucket.
func (g *Server) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&insecure=true", g.Bucket, prefix, g.Endpoint, g.Region)
}

// UseEnv puts the gateway's credentials in the standard AWS
// variables, as an operator would, and clears the others.
func (g *Server) UseEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", g.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", g.SecretKey)
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
}

// Env returns the standard AWS variables that point a process at the
// gateway: its credentials, region and endpoint.
func (g *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + g.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + g.SecretKey,
		"AWS_REGION=" + g.Region,
		"AWS_ENDPOINT_URL_S3=http://" + g.Endpoint,
	}
}
