package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/internal/s3test"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/test/procs"
)

const countsJob = "./test/e2e/testdata/counts"

// countsCluster starts one server with shared file storage and two workers
// of slots each.
func countsCluster(t *testing.T, slots int) *procs.Cluster {
	t.Helper()
	c := procs.New(t, procs.Config{SharedStorage: true})
	c.StartServers(1)
	c.StartWorker("w1", slots)
	c.StartWorker("w2", slots)
	return c
}

// fileURL is the file:// URL of a local path.
func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// eddyCmd runs an eddy client command through every server of c.
func eddyCmd(c *procs.Cluster, args ...string) procs.Result {
	return c.Eddy(runTimeout, append([]string{"--address", c.Addresses()}, args...)...)
}

// mustEddy runs an eddy client command and fails the test unless it exits 0.
func mustEddy(t *testing.T, c *procs.Cluster, args ...string) procs.Result {
	t.Helper()
	r := eddyCmd(c, args...)
	if r.Code != 0 {
		t.Fatalf("eddy %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// waitCommitted waits until the exactly-once sink has committed at least
// one part file into dir (a local directory).
func waitCommitted(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(jobWait)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(dir, "part-*")); len(m) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing committed into %s within %s", dir, jobWait)
}

// localLines reads the committed part files of a local directory.
func localLines(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

var (
	v1Line = regexp.MustCompile(`^k=(\d+) count=(\d+)$`)
	v2Line = regexp.MustCompile(`^v2 (\d+) (\d+)$`)
)

// checkCounts checks the counts job's committed output against the test's
// own computation: records 0..n-1, keyed by i % keys, each key's count
// after each of its records, "k=<key> count=<c>" lines from version 1 and
// "v2 <key> <c>" lines from version 2. Every key must have each count from
// 1 to its number of records exactly once: nothing lost, nothing repeated,
// across every stop and restore. It returns the number of lines of each
// version.
func checkCounts(t *testing.T, lines []string, n, keys int64) (v1, v2 int) {
	t.Helper()
	seen := map[int64][]int64{}
	lastV1 := map[int64]int64{}
	firstV2 := map[int64]int64{}
	for _, l := range lines {
		var m []string
		isV2 := false
		if m = v1Line.FindStringSubmatch(l); m == nil {
			if m = v2Line.FindStringSubmatch(l); m == nil {
				t.Fatalf("output line %q is not a count", l)
			}
			isV2 = true
		}
		k, _ := strconv.ParseInt(m[1], 10, 64)
		c, _ := strconv.ParseInt(m[2], 10, 64)
		seen[k] = append(seen[k], c)
		if isV2 {
			v2++
			if f, ok := firstV2[k]; !ok || c < f {
				firstV2[k] = c
			}
		} else {
			v1++
			lastV1[k] = max(lastV1[k], c)
		}
	}
	var wrong []string
	for k := range keys {
		want := (n - k + keys - 1) / keys
		got := seen[k]
		slices.Sort(got)
		ok := int64(len(got)) == want
		for i := 0; ok && i < len(got); i++ {
			ok = got[i] == int64(i+1)
		}
		if !ok {
			wrong = append(wrong, fmt.Sprintf("key %d: %d counts (want 1..%d), first %v", k, len(got), want, got[:min(len(got), 8)]))
		}
		if f, ok := firstV2[k]; ok && f <= lastV1[k] {
			wrong = append(wrong, fmt.Sprintf("key %d: version 2 counted %d after version 1 reached %d", k, f, lastV1[k]))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d keys counted wrong:\n%s", len(wrong), keys, strings.Join(wrong[:min(len(wrong), 10)], "\n"))
	}
	return v1, v2
}

// savepointURL returns the URL `eddy stop` or `eddy savepoint` printed.
func savepointURL(t *testing.T, r procs.Result) string {
	t.Helper()
	m := regexp.MustCompile(`(file|s3)://\S+`).FindString(r.Stdout + "\n" + r.Stderr)
	if m == "" {
		t.Fatalf("no savepoint URL in the output: %s", r)
	}
	return m
}

// TestUpgradeFromSavepoint: version 1 of a job counts per key; it is
// stopped with a savepoint; version 2, with an extra operator and another
// output format but the same UIDs, restores it and continues every count.
func TestUpgradeFromSavepoint(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := countsCluster(t, 2)
	bin := buildJob(t, countsJob)
	out := filepath.Join(t.TempDir(), "out")
	sp := fileURL(filepath.Join(t.TempDir(), "sp-v1"))
	const n, keys = 6000, 32

	mustEddy(t, c, "run", "-d", "-p", "2", "--job-id", "v1", bin, "--", "v1", "-n", fmt.Sprint(n), "-rate", "600",
		"-keys", fmt.Sprint(keys), "-out", out)
	waitJob(t, c, "v1", "RUNNING", nil)
	waitCommitted(t, out)
	r := mustEddy(t, c, "stop", "--savepoint", sp, "v1")
	t.Logf("eddy stop: %s", strings.TrimSpace(r.Stdout))
	if got := savepointURL(t, r); got != sp {
		t.Errorf("eddy stop printed savepoint %s, want %s", got, sp)
	}
	waitJob(t, c, "v1", "FINISHED", nil)

	r = mustEddy(t, c, "run", "-p", "2", "--job-id", "v2", "--from-savepoint", sp, bin, "--", "v2", "-n", fmt.Sprint(n),
		"-rate", "0", "-keys", fmt.Sprint(keys), "-out", out)
	if !strings.Contains(r.Stderr, "job v2 FINISHED") {
		t.Fatalf("version 2 did not finish: %s", r)
	}
	v1, v2 := checkCounts(t, localLines(t, out), n, keys)
	if v1 == 0 || v2 == 0 {
		t.Fatalf("version 1 wrote %d counts and version 2 %d: both must have run", v1, v2)
	}
	t.Logf("%d counts from version 1, %d from version 2, each exactly once", v1, v2)
}

// TestRescaleThroughSavepoints: a keyed job at parallelism 4 is stopped
// with a savepoint, restored at 2, stopped again and restored at 8; every
// key's count continues exactly.
func TestRescaleThroughSavepoints(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := countsCluster(t, 4)
	bin := buildJob(t, countsJob)
	out := filepath.Join(t.TempDir(), "out")
	const n, keys = 9000, 64
	args := func(rate string) []string {
		return []string{"--", "v1", "-n", fmt.Sprint(n), "-rate", rate, "-keys", fmt.Sprint(keys), "-out", out}
	}

	mustEddy(t, c, append([]string{"run", "-d", "-p", "4", "--job-id", "p4", bin}, args("900")...)...)
	waitJob(t, c, "p4", "RUNNING", nil)
	waitCommitted(t, out)
	sp1 := savepointURL(t, mustEddy(t, c, "stop", "p4"))
	waitJob(t, c, "p4", "FINISHED", nil)
	before := len(localLines(t, out))

	mustEddy(t, c, append([]string{"run", "-d", "-p", "2", "--job-id", "p2", "--from-savepoint", sp1, bin}, args("900")...)...)
	waitJob(t, c, "p2", "RUNNING", nil)
	deadline := time.Now().Add(jobWait)
	for len(localLines(t, out)) == before && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	sp2 := savepointURL(t, mustEddy(t, c, "stop", "p2"))
	waitJob(t, c, "p2", "FINISHED", nil)
	afterP2 := len(localLines(t, out))
	if afterP2 == before {
		t.Fatalf("nothing committed at parallelism 2")
	}

	r := mustEddy(t, c, append([]string{"run", "-p", "8", "--job-id", "p8", "--from-savepoint", sp2, bin}, args("0")...)...)
	if !strings.Contains(r.Stderr, "job p8 FINISHED") {
		t.Fatalf("the job at parallelism 8 did not finish: %s", r)
	}
	lines := localLines(t, out)
	checkCounts(t, lines, n, keys)
	t.Logf("counts continued exactly: %d at p=4, %d at p=2, %d at p=8", before, afterP2-before, len(lines)-afterP2)
}

// TestRestoreRefusals: a savepoint that does not fit the job is refused
// before any task starts, with a message that says what and where.
func TestRestoreRefusals(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := countsCluster(t, 2)
	bin := buildJob(t, countsJob)
	out := filepath.Join(t.TempDir(), "out")
	spDir := filepath.Join(t.TempDir(), "sp")
	sp := fileURL(spDir)

	mustEddy(t, c, "run", "-d", "-p", "2", "--job-id", "base", bin, "--", "v1", "-rate", "200", "-out", out)
	waitJob(t, c, "base", "RUNNING", nil)
	waitCommitted(t, out)
	r := mustEddy(t, c, "savepoint", "base", sp)
	t.Logf("eddy savepoint: %s", strings.TrimSpace(r.Stdout))
	mustEddy(t, c, "cancel", "base")

	// copy makes a copy of the savepoint directory and returns its URL; edit
	// may change the copy's _metadata.
	copySP := func(name string, edit func(b []byte) []byte) string {
		dst := filepath.Join(t.TempDir(), name)
		if err := os.CopyFS(dst, os.DirFS(spDir)); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b, err := os.ReadFile(filepath.Join(dst, "_metadata"))
			if err != nil {
				t.Fatal(err)
			}
			// Written through the store, which records the new content's
			// checksum: the format's own checks are what must refuse it.
			st, err := storage.Open(context.Background(), fileURL(dst))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(context.Background(), "_metadata", strings.NewReader(string(edit(b)))); err != nil {
				t.Fatal(err)
			}
		}
		return fileURL(dst)
	}
	run := func(id, from string, extra []string, version string, jobArgs ...string) procs.Result {
		args := append([]string{"run", "-d", "-p", "2", "--job-id", id, "--from-savepoint", from}, extra...)
		args = append(args, bin, "--", version, "-rate", "200", "-out", out)
		return eddyCmd(c, append(args, jobArgs...)...)
	}
	refused := func(what string, r procs.Result, want ...string) {
		t.Helper()
		if r.Code == 0 {
			t.Errorf("%s: accepted, want a refusal: %s", what, r)
			return
		}
		for _, w := range want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: the message does not say %q: %s", what, w, r.Stderr)
			}
		}
	}

	refused("a directory without a savepoint", run("r1", fileURL(filepath.Join(t.TempDir(), "none")), nil, "v1"), "_metadata")
	corrupt := copySP("corrupt", func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b })
	refused("a corrupt _metadata", run("r2", corrupt, nil, "v1"), "corrupt", corrupt)
	future := copySP("future", func(b []byte) []byte { b[11] = 9; return b }) // the version's last byte
	refused("an unknown format version", run("r3", future, nil, "v1"), "version 9", future)
	refused("another max parallelism", run("r4", sp, nil, "v1", "-max-parallelism", "64"), "max parallelism", "64")
	refused("a savepoint with state of an operator the job lacks", run("r5", sp, nil, "nocount"), `"count"`, "--allow-non-restored-state")

	// The refusal of a state its operator cannot read comes from a worker,
	// before any task starts: the job fails with the message.
	r = run("r6", sp, nil, "badtype")
	if r.Code == 0 {
		j := waitJob(t, c, "r6", "FAILED", nil)
		if !strings.Contains(j.StatusReason, `"count"`) {
			t.Errorf("a state of another type: the job failed with %q, which does not name the state", j.StatusReason)
		}
		if n := strings.Count(j.StatusReason, sp); n != 1 {
			t.Errorf("a state of another type: the job failed with %q, which names the savepoint %d times, want once", j.StatusReason, n)
		}
		for _, ts := range j.Execution {
			if ts.State == "RUNNING" || ts.State == "FINISHED" {
				t.Errorf("a state of another type: task %s/%d ran (%s)", ts.Name, ts.Subtask, ts.State)
			}
		}
	} else {
		refused("a state of another type", r, `"count"`)
	}

	// With --allow-non-restored-state the job without the counts starts.
	r = run("r7", sp, []string{"--allow-non-restored-state"}, "nocount")
	if r.Code != 0 {
		t.Fatalf("--allow-non-restored-state: refused: %s", r)
	}
	waitJob(t, c, "r7", "RUNNING", nil)
	mustEddy(t, c, "cancel", "r7")
}

// TestMigrateBetweenClusters: a job with keyed state and an exactly-once
// sink runs on one cluster; `eddy migrate` moves it to another cluster that
// shares the S3 server; together, the committed output of both equals the
// expected result exactly.
func TestMigrateBetweenClusters(t *testing.T) {
	skipShort(t)
	t.Parallel()
	gw := s3test.Start(t)
	start := func(name string) *procs.Cluster {
		c := procs.New(t, procs.Config{Storage: gw.URL(name), Env: gw.Env()})
		c.StartServers(3)
		c.StartWorker(name+"-w1", 2)
		return c
	}
	a, b := start("a"), start("b")
	bin := buildJob(t, countsJob)
	out := gw.URL("output")
	const n, keys = 8000, 32

	mustEddy(t, a, "run", "-d", "-p", "2", "--job-id", "moving", bin, "--", "v1", "-n", fmt.Sprint(n), "-rate", "800",
		"-keys", fmt.Sprint(keys), "-out", out)
	waitJob(t, a, "moving", "RUNNING", nil)
	cp := waitCheckpoint(t, a, "moving", 1, 0)
	t.Logf("checkpoint %d completed on the first cluster", cp.Latest.ID)

	var httpB []string
	for _, s := range b.Servers() {
		httpB = append(httpB, s.HTTPAddr)
	}
	r := mustEddy(t, a, "migrate", "moving", "--to", strings.Join(httpB, ","), "--savepoint", gw.URL("savepoints/moving"))
	t.Logf("eddy migrate:\n%s%s", r.Stdout, r.Stderr)
	if j := info(t, a, "moving"); j.Status != "FINISHED" {
		t.Errorf("on the first cluster the job is %s (%s), want FINISHED", j.Status, j.StatusReason)
	}
	waitJob(t, b, "moving", "FINISHED", nil)

	lines := committedLines(t, gw, out)
	checkCounts(t, lines, n, keys)
	t.Logf("%d counts committed exactly once across both clusters", len(lines))
}
