// Package client is the Go client of Eddy's REST API, used by the eddy CLI
// and by tests. It takes the addresses of any control plane nodes and moves
// on to the next one when a node is down or has no leader, but never resends
// a write whose outcome is unknown.
//
// It depends on api only.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/eddy-streams/eddy/api"
)

// Error is an error answered by the server, with its stable code.
type Error struct {
	Status  int
	Code    string
	Message string
	Node    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s, from %s)", e.Message, e.Code, e.Node)
}

// ErrNoAddress means the client was given no address.
var ErrNoAddress = errors.New("no control plane address: use --address or EDDY_ADDRESS")

// Client talks to a control plane. It is safe for concurrent use.
type Client struct {
	addrs  []string
	hc     *http.Client
	upload *http.Client // no whole-request timeout: a large binary takes its time

	mu   sync.Mutex
	next int // the address that answered last
}

// New returns a client of the nodes at addrs ("host:port" or URLs).
func New(addrs []string) *Client {
	var clean []string
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		clean = append(clean, strings.TrimRight(a, "/"))
	}
	// A node that silently drops packets must not hold the client for the
	// whole request timeout: dialling gives up after a few seconds, and a
	// dial error moves on to the next node.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &Client{addrs: clean, hc: &http.Client{Timeout: 30 * time.Second, Transport: tr},
		upload: &http.Client{Transport: tr}}
}

// ParseAddresses splits a comma-separated address list (EDDY_ADDRESS).
func ParseAddresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// retryable reports whether a failed call certainly changed nothing, so that
// another node may be asked.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Code == "no_leader" || e.Code == "not_leader"
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Op == "dial" {
		return true
	}
	return false
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	var open func() (io.Reader, error)
	if body != nil {
		open = func() (io.Reader, error) { return bytes.NewReader(body), nil }
	}
	return c.send(ctx, method, path, "application/json", open, out)
}

// send makes the call on each node in turn until one answers or the error
// says nothing was done. open returns a fresh body for each attempt.
func (c *Client) send(ctx context.Context, method, path, contentType string, open func() (io.Reader, error), out any) error {
	if len(c.addrs) == 0 {
		return ErrNoAddress
	}
	c.mu.Lock()
	start := c.next
	c.mu.Unlock()
	var errs []error
	for i := range c.addrs {
		k := (start + i) % len(c.addrs)
		err := c.once(ctx, c.addrs[k], method, path, contentType, open, out)
		if err == nil {
			c.mu.Lock()
			c.next = k
			c.mu.Unlock()
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("no control plane node could answer: %w", errors.Join(errs...))
}

func (c *Client) once(ctx context.Context, base, method, path, contentType string, open func() (io.Reader, error), out any) error {
	var rd io.Reader
	if open != nil {
		var err error
		if rd, err = open(); err != nil {
			return err
		}
		if cl, ok := rd.(io.Closer); ok {
			defer cl.Close()
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.hc
	if contentType == "application/octet-stream" {
		hc = c.upload
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response of %s: %w", base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: strings.TrimSpace(string(b)), Node: base}
		}
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Node: base}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// ReadOption changes how a read is served.
type ReadOption func(url.Values)

// Stale lets any node answer from its own state, without a quorum.
func Stale() ReadOption { return func(v url.Values) { v.Set("stale", "true") } }

func query(path string, opts []ReadOption) string {
	v := url.Values{}
	for _, o := range opts {
		o(v)
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// Overview returns the cluster summary.
func (c *Client) Overview(ctx context.Context, opts ...ReadOption) (api.Overview, error) {
	var out api.Overview
	return out, c.do(ctx, http.MethodGet, query("/v1/overview", opts), nil, &out)
}

// Jobs lists every job.
func (c *Client) Jobs(ctx context.Context, opts ...ReadOption) ([]api.Job, error) {
	var out api.Jobs
	err := c.do(ctx, http.MethodGet, query("/v1/jobs", opts), nil, &out)
	return out.Jobs, err
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string, opts ...ReadOption) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, http.MethodGet, query("/v1/jobs/"+url.PathEscape(id), opts), nil, &out)
}

// Submit submits a job.
func (c *Client) Submit(ctx context.Context, job api.SubmitJob) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, http.MethodPost, "/v1/jobs", job, &out)
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) (api.Job, error) {
	var out api.Job
	return out, c.do(ctx, http.MethodPatch, "/v1/jobs/"+url.PathEscape(id)+"?mode=cancel", nil, &out)
}

// Checkpoints returns a job's checkpoint counts, latest, history and
// configuration.
func (c *Client) Checkpoints(ctx context.Context, id string, opts ...ReadOption) (api.Checkpoints, error) {
	var out api.Checkpoints
	return out, c.do(ctx, http.MethodGet, query("/v1/jobs/"+url.PathEscape(id)+"/checkpoints", opts), nil, &out)
}

// TriggerCheckpoint starts a checkpoint of a running job and returns its id.
func (c *Client) TriggerCheckpoint(ctx context.Context, id string) (uint64, error) {
	var out api.TriggeredCheckpoint
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/checkpoints", nil, &out)
	return out.ID, err
}

// Workers lists the workers.
func (c *Client) Workers(ctx context.Context, opts ...ReadOption) ([]api.Worker, error) {
	var out api.Workers
	err := c.do(ctx, http.MethodGet, query("/v1/workers", opts), nil, &out)
	return out.Workers, err
}

// Cluster describes the Raft group.
func (c *Client) Cluster(ctx context.Context) (api.Cluster, error) {
	var out api.Cluster
	return out, c.do(ctx, http.MethodGet, "/v1/cluster", nil, &out)
}

// Join adds a node to the cluster.
func (c *Client) Join(ctx context.Context, req api.JoinRequest) (api.Cluster, error) {
	var out api.Cluster
	return out, c.do(ctx, http.MethodPost, "/v1/cluster/members", req, &out)
}

// Leave removes a node from the cluster.
func (c *Client) Leave(ctx context.Context, id string) (api.Cluster, error) {
	var out api.Cluster
	return out, c.do(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil, &out)
}

// Node describes the first node that answers.
func (c *Client) Node(ctx context.Context) (api.Node, error) {
	var out api.Node
	return out, c.do(ctx, http.MethodGet, "/v1/node", nil, &out)
}

// UploadArtifact uploads a job binary; the cluster stores it under its
// SHA-256. Uploading is idempotent, so a failed upload is tried on the next
// node.
func (c *Client) UploadArtifact(ctx context.Context, path string) (api.Artifact, error) {
	var out api.Artifact
	err := c.send(ctx, http.MethodPost, "/v1/artifacts", "application/octet-stream", func() (io.Reader, error) {
		return os.Open(path)
	}, &out)
	return out, err
}

// TriggerSavepoint starts a savepoint of a running job into url (empty:
// the cluster's default directory) and returns once it is triggered; poll
// Savepoint with the request id.
func (c *Client) TriggerSavepoint(ctx context.Context, id, url string) (api.SavepointTriggered, error) {
	var out api.SavepointTriggered
	return out, c.do(ctx, http.MethodPost, "/v1/jobs/"+pathEscape(id)+"/savepoints", api.SavepointRequest{URL: url}, &out)
}

// StopWithSavepoint stops a running job with a savepoint into url (empty:
// the cluster's default directory): its sources end after the savepoint's
// barrier and it finishes once the savepoint completes. If the savepoint
// fails, the job keeps running.
func (c *Client) StopWithSavepoint(ctx context.Context, id, url string, drain bool) (api.SavepointTriggered, error) {
	var out api.SavepointTriggered
	return out, c.do(ctx, http.MethodPost, "/v1/jobs/"+pathEscape(id)+"/stop", api.SavepointRequest{URL: url, Drain: drain}, &out)
}

// Savepoint returns the state of a savepoint request.
func (c *Client) Savepoint(ctx context.Context, id, request string, opts ...ReadOption) (api.Checkpoint, error) {
	var out api.Checkpoint
	return out, c.do(ctx, http.MethodGet, query("/v1/jobs/"+pathEscape(id)+"/savepoints/"+pathEscape(request), opts), nil, &out)
}

// Savepoints lists a job's savepoints, oldest first.
func (c *Client) Savepoints(ctx context.Context, id string, opts ...ReadOption) ([]api.Checkpoint, error) {
	var out api.Savepoints
	err := c.do(ctx, http.MethodGet, query("/v1/jobs/"+pathEscape(id)+"/savepoints", opts), nil, &out)
	return out.Savepoints, err
}

// DownloadArtifact writes the job binary stored under sha256 to w and
// returns its size. Reading is idempotent: a node that cannot answer is
// passed over for the next.
func (c *Client) DownloadArtifact(ctx context.Context, sha256 string, w io.Writer) (int64, error) {
	if len(c.addrs) == 0 {
		return 0, ErrNoAddress
	}
	var errs []error
	for _, base := range c.addrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/artifacts/"+pathEscape(sha256), nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.upload.Do(req)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			var e api.Error
			err := &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: strings.TrimSpace(string(b)), Node: base}
			if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
				err.Code, err.Message = e.Error.Code, e.Error.Message
			}
			if !retryable(err) {
				return 0, err
			}
			errs = append(errs, err)
			continue
		}
		n, err := io.Copy(w, resp.Body)
		resp.Body.Close()
		if err != nil {
			return n, fmt.Errorf("download artifact %s from %s: %w", sha256, base, err)
		}
		if resp.ContentLength >= 0 && n != resp.ContentLength {
			return n, fmt.Errorf("download artifact %s from %s: %d of %d bytes", sha256, base, n, resp.ContentLength)
		}
		return n, nil
	}
	return 0, fmt.Errorf("download artifact %s: %w", sha256, errors.Join(errs...))
}

func pathEscape(s string) string { return url.PathEscape(s) }
