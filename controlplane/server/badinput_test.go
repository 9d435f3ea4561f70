package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
	"github.com/eddy-streams/eddy/controlplane/server"
)

// rawCall makes one HTTP request and decodes the JSON error body, if any.
func rawCall(t *testing.T, method, url, body string) (int, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cptest.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, body %s", method, url, ct, b)
	}
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

func TestBadRequestsGetStableCodesAndChangeNothing(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	leader := c.Leader()
	base := "http://" + followers(c, leader)[0].HTTPAddr()
	ctx := context.Background()
	j, err := client.New([]string{base}).Submit(ctx, api.SubmitJob{Name: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed json", "POST", "/v1/jobs", `{"name": "x"`, 400, "malformed_json"},
		{"not an object", "POST", "/v1/jobs", `[1,2]`, 400, "malformed_json"},
		{"empty body", "POST", "/v1/jobs", ``, 400, "malformed_json"},
		{"unknown field", "POST", "/v1/jobs", `{"name": "x", "paralelism": 2}`, 400, "malformed_json"},
		{"trailing data", "POST", "/v1/jobs", `{"name": "x"} {}`, 400, "malformed_json"},
		{"no name", "POST", "/v1/jobs", `{"parallelism": 2}`, 400, "invalid_argument"},
		{"bad job id", "POST", "/v1/jobs", `{"name": "x", "job_id": "a/b"}`, 400, "invalid_argument"},
		{"parallelism above max", "POST", "/v1/jobs", `{"name": "x", "parallelism": 8, "max_parallelism": 4}`, 400, "invalid_argument"},
		{"duplicate job id", "POST", "/v1/jobs", `{"name": "x", "job_id": "` + j.ID + `"}`, 409, "job_exists"},
		{"unknown job", "GET", "/v1/jobs/nope", ``, 404, "job_not_found"},
		{"cancel unknown job", "PATCH", "/v1/jobs/nope?mode=cancel", ``, 404, "job_not_found"},
		{"unknown patch mode", "PATCH", "/v1/jobs/" + j.ID + "?mode=explode", ``, 400, "invalid_argument"},
		{"unknown endpoint", "GET", "/v1/nothing", ``, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/jobs", ``, 405, "method_not_allowed"},
		{"bad stale flag", "GET", "/v1/jobs?stale=maybe", ``, 400, "invalid_argument"},
		{"join malformed", "POST", "/v1/cluster/members", `{"node_id": 3}`, 400, "malformed_json"},
		{"join bad address", "POST", "/v1/cluster/members", `{"node_id": "n9", "raft_addr": "nowhere"}`, 400, "invalid_argument"},
		{"leave unknown node", "DELETE", "/v1/cluster/members/n9", ``, 404, "node_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := rawCall(t, tc.method, base+tc.path, tc.body)
			if status != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", status, e, tc.status, tc.code)
			}
		})
	}
	jobs, err := client.New([]string{base}).Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].ID != j.ID {
		t.Fatalf("bad requests changed the jobs: %+v", jobs)
	}
	// Cancelling twice: the second is refused.
	if _, err := client.New([]string{base}).Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	status, e := rawCall(t, "PATCH", base+"/v1/jobs/"+j.ID+"?mode=cancel", "")
	if status != 409 || e.Error.Code != "job_not_cancellable" {
		t.Fatalf("second cancel: %d %+v", status, e)
	}
}

func TestWriteWithoutQuorumFailsFast(t *testing.T) {
	c := cptest.TestCluster(t, 3)
	leader := c.Leader()
	fs := followers(c, leader)
	survivor := fs[0]
	c.Kill(string(leader.ID()))
	c.Kill(string(fs[1].ID()))

	for _, tc := range []struct {
		name string
		call func(*client.Client) error
	}{
		{"submit", func(cl *client.Client) error {
			_, err := cl.Submit(context.Background(), api.SubmitJob{Name: "x"})
			return err
		}},
		{"linearizable read", func(cl *client.Client) error {
			_, err := cl.Jobs(context.Background())
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call(client.New([]string{survivor.HTTPAddr()}))
			took := time.Since(start)
			var apiErr *client.Error
			if !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Code != "no_leader" {
				t.Fatalf("got %v, want 503 no_leader", err)
			}
			// LeaderWait is 2 s in tests; allow for a slow machine, but it
			// must never hang until the client's own timeout.
			if took > 8*time.Second {
				t.Fatalf("refusal took %s", took)
			}
		})
	}
	// A stale read still answers from the survivor's own state.
	if _, err := client.New([]string{survivor.HTTPAddr()}).Jobs(context.Background(), client.Stale()); err != nil {
		t.Fatalf("stale read without quorum: %v", err)
	}
}

func TestJoinFromAnotherClusterRefused(t *testing.T) {
	a := cptest.TestCluster(t, 3)
	b := cptest.TestCluster(t, 1)
	other := b.Leader()
	ctx := context.Background()
	info := other.Node()
	if info.ClusterID == "" || info.ClusterID == a.Leader().ClusterID() {
		t.Fatalf("cluster ids: %q vs %q", info.ClusterID, a.Leader().ClusterID())
	}
	_, err := client.New(a.HTTPAddrs()).Join(ctx, api.JoinRequest{
		NodeID: "intruder", RaftAddr: info.RaftAddr, GRPCAddr: info.GRPCAddr, HTTPAddr: info.HTTPAddr, ClusterID: info.ClusterID,
	})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "other_cluster" || !strings.Contains(apiErr.Message, info.ClusterID) {
		t.Fatalf("join of another cluster's node: %v, want other_cluster naming its cluster", err)
	}
	cl, err := client.New(a.HTTPAddrs()).Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Members) != 3 {
		t.Fatalf("refused join changed the members: %+v", cl.Members)
	}

	// A node with another cluster's state, restarted with --join, is refused
	// at start.
	b.Kill(string(other.ID()))
	cfg := server.DefaultConfig()
	cptest.FastConfig(&cfg)
	cfg.NodeID = "node1b"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr, cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	// Fake a node that knows it belongs to b but lost its Raft state.
	if err := writeFile(cfg.DataDir+"/cluster-id", info.ClusterID+"\n"); err != nil {
		t.Fatal(err)
	}
	cfg.Join = []string{a.Leader().GRPCAddr()}
	if s, err := server.New(cfg); err == nil {
		s.Close()
		t.Fatal("a node of another cluster joined")
	} else if !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("refusal does not say why: %v", err)
	}
}

func TestSecondProcessOnDataDirRefused(t *testing.T) {
	c := cptest.TestCluster(t, 1)
	s := c.Leader()
	cfg := server.DefaultConfig()
	cptest.FastConfig(&cfg)
	cfg.NodeID = "node1"
	cfg.DataDir = s.DataDir()
	cfg.RaftAddr, cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	_, err := server.New(cfg)
	if !errors.Is(err, server.ErrDataDirInUse) || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Fatalf("second server on %s: %v, want ErrDataDirInUse naming the dir", cfg.DataDir, err)
	}
	// The first node is unharmed.
	if _, err := client.New([]string{s.HTTPAddr()}).Submit(context.Background(), api.SubmitJob{Name: "still-works"}); err != nil {
		t.Fatal(err)
	}
}
