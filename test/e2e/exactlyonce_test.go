package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/internal/s3test"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/test/procs"
)

// checkpointCounts is the part of GET /v1/jobs/{id}/checkpoints the tests
// read.
type checkpointCounts struct {
	Counts struct {
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"counts"`
	Latest *struct {
		ID      uint64 `json:"id"`
		Attempt uint64 `json:"attempt"`
	} `json:"latest"`
}

// checkpoints reads a job's checkpoint statistics from a live server.
func checkpoints(c *procs.Cluster, id string) (checkpointCounts, error) {
	var out checkpointCounts
	var lastErr error
	for _, p := range c.Alive() {
		if p.Kind != procs.Server {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+"/v1/jobs/"+id+"/checkpoints", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			lastErr = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil || resp.StatusCode != http.StatusOK {
			lastErr = fmt.Errorf("GET checkpoints from %s: %d %s %v", p.ID, resp.StatusCode, b, err)
			continue
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return out, fmt.Errorf("decode checkpoints %s: %w", b, err)
		}
		return out, nil
	}
	return out, lastErr
}

// waitCheckpoint waits until the job has completed a checkpoint in an
// attempt of at least attempt, after the given number of completed ones.
func waitCheckpoint(t *testing.T, c *procs.Cluster, id string, attempt uint64, after int) checkpointCounts {
	t.Helper()
	deadline := time.Now().Add(jobWait)
	var last error
	for time.Now().Before(deadline) {
		cp, err := checkpoints(c, id)
		switch {
		case err != nil:
			last = err
		case cp.Latest == nil || cp.Counts.Completed <= after || cp.Latest.Attempt < attempt:
			last = fmt.Errorf("checkpoints %+v, latest %+v", cp.Counts, cp.Latest)
		default:
			return cp
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s: no checkpoint completed in attempt >= %d after %d: %v", id, attempt, after, last)
	return checkpointCounts{}
}

// TestExactlyOnceThroughFailures runs a job with keyed running sums and an
// exactly-once file sink on three servers and two workers, its checkpoints
// and output in S3, and kills a worker, the control plane's leader and the
// other worker while it runs. The committed output must hold every running
// sum exactly once.
func TestExactlyOnceThroughFailures(t *testing.T) {
	skipShort(t)
	t.Parallel()
	gw := s3test.Start(t)
	c := procs.New(t, procs.Config{
		Storage:    gw.URL("cluster"),
		Env:        gw.Env(),
		ServerArgs: []string{"--worker-heartbeat-timeout", "3s"},
	})
	c.StartServers(3)
	c.StartWorker("w1", 2)
	c.StartWorker("w2", 2)
	bin := buildJob(t, testJob)
	out := gw.URL("output")
	const n, rate = 30000, 1500 // at least 20 s of input

	run := make(chan procs.Result, 1)
	go func() {
		run <- eddyRun(c, "-p", "2", "--job-id", "eo", bin, "--", "stream", "-n", strconv.Itoa(n),
			"-rate", strconv.Itoa(rate), "-out", out, "-exactly-once", "-checkpoint", "300ms")
	}()

	waitJob(t, c, "eo", "RUNNING", nil)
	cp := waitCheckpoint(t, c, "eo", 1, 0)
	t.Logf("checkpoint %d completed in attempt 1", cp.Latest.ID)

	c.Kill("w1")
	t.Log("killed worker w1")
	cp = waitCheckpoint(t, c, "eo", 2, cp.Counts.Completed)
	t.Logf("checkpoint %d completed in attempt %d", cp.Latest.ID, cp.Latest.Attempt)
	c.Restart("w1")
	c.WaitWorker("w1", "ALIVE")

	attempt := cp.Latest.Attempt
	leader := c.Leader()
	c.Kill(leader.ID)
	t.Logf("killed the leader %s", leader.ID)
	cp = waitCheckpoint(t, c, "eo", attempt, cp.Counts.Completed)
	t.Logf("checkpoint %d completed after the leader failover", cp.Latest.ID)
	if cp.Latest.Attempt != attempt {
		t.Errorf("the leader failover restarted the job: attempt %d, was %d", cp.Latest.Attempt, attempt)
	}
	c.Restart(leader.ID)

	c.Kill("w2")
	t.Log("killed worker w2")
	cp = waitCheckpoint(t, c, "eo", attempt+1, cp.Counts.Completed)
	t.Logf("checkpoint %d completed in attempt %d", cp.Latest.ID, cp.Latest.Attempt)

	var r procs.Result
	select {
	case r = <-run:
	case <-time.After(jobWait):
		t.Fatalf("eddy run did not return within %s", jobWait)
	}
	if r.Code != 0 || !strings.Contains(r.Stderr, "job eo FINISHED") {
		t.Fatalf("want exit 0 and the job FINISHED, got %s", r)
	}
	j := info(t, c, "eo")
	if j.Attempt < 3 {
		t.Errorf("job finished in attempt %d, want at least 3 (two worker kills)", j.Attempt)
	}

	got := committedLines(t, gw, out)
	if err := checkRunningSums(got, n); err != nil {
		t.Fatalf("committed output: %v", err)
	}
	t.Logf("%d running sums committed exactly once across %d attempts", len(got), j.Attempt)
}

// checkRunningSums checks the stream job's committed output, "key sum"
// lines, against the test's own computation: records 0..n-1, keyed by i%16,
// a running sum per key. The two source subtasks interleave a key's records
// in any order, so the sums themselves vary from run to run; but exactly
// once, the sums of each key, sorted, step up by exactly that key's
// records: a lost line merges two steps, a duplicated one adds a step of
// zero (the only record 0 is key 0's first, a step from nothing).
func checkRunningSums(lines []string, n int) error {
	sums := map[int64][]int64{}
	for _, l := range lines {
		var k, s int64
		if _, err := fmt.Sscanf(l, "%d %d", &k, &s); err != nil {
			return fmt.Errorf("line %q: %v", l, err)
		}
		sums[k] = append(sums[k], s)
	}
	if len(lines) != n {
		return fmt.Errorf("%d lines, want one per record, %d", len(lines), n)
	}
	for k := range int64(16) {
		var want []int64
		for i := k; i < int64(n); i += 16 {
			want = append(want, i)
		}
		got := sums[k]
		slices.Sort(got)
		steps := make([]int64, len(got))
		prev := int64(0)
		for i, s := range got {
			steps[i], prev = s-prev, s
		}
		slices.Sort(steps)
		if !slices.Equal(steps, want) {
			return fmt.Errorf("key %d: %d sums whose steps are not its %d records (first steps %v, want %v)",
				k, len(got), len(want), steps[:min(len(steps), 5)], want[:min(len(want), 5)])
		}
	}
	return nil
}

// committedLines reads every committed part file under an output URL (the
// published part-* objects; in-progress files are not part of the output).
func committedLines(t *testing.T, gw *s3test.Server, u string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := storage.OpenWith(ctx, u, storage.S3Options{AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, in := range infos {
		base := in.Name[strings.LastIndex(in.Name, "/")+1:]
		if !strings.HasPrefix(base, "part-") {
			continue
		}
		rc, _, err := st.Open(ctx, in.Name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		err = sc.Err()
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", in.Name, err)
		}
	}
	return lines
}
