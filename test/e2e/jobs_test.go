package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/test/procs"
)

// Bounds of the waits of the job tests. Jobs here take well under a second
// to deploy, finish or stop; the margins are for a loaded machine running
// every process with the race detector.
const (
	// runTimeout bounds an `eddy run` that follows its job to the end.
	runTimeout = 60 * time.Second
	// jobWait bounds a wait for a job or its tasks to reach a state.
	jobWait = 30 * time.Second
)

// testJob is the package of the tests' own job binary.
const testJob = "./test/e2e/testdata/job"

// startJobCluster starts n `eddy server`s that share one storage, and two
// workers, w1 and w2, with two slots each: a job of parallelism 4 fills
// both.
func startJobCluster(t *testing.T, n int) *procs.Cluster {
	t.Helper()
	c := procs.New(t, procs.Config{SharedStorage: true})
	c.StartServers(n)
	c.StartWorker("w1", 2)
	c.StartWorker("w2", 2)
	return c
}

// buildJob builds a job binary into the test's temp dir.
func buildJob(t *testing.T, pkg string, flags ...string) string {
	t.Helper()
	return procs.BuildJob(t, filepath.Join(t.TempDir(), filepath.Base(pkg)), pkg, flags...)
}

// eddyRun runs `eddy run` through every server's address.
func eddyRun(c *procs.Cluster, args ...string) procs.Result {
	return c.Eddy(runTimeout, append([]string{"--address", c.Addresses(), "run"}, args...)...)
}

// info returns `eddy info --json id`.
func info(t *testing.T, c *procs.Cluster, id string) api.Job {
	t.Helper()
	var j api.Job
	if err := eddyJSON(c, &j, "--address", c.Addresses(), "info", id); err != nil {
		t.Fatal(err)
	}
	return j
}

func terminal(status string) bool {
	return status == "FINISHED" || status == "FAILED" || status == "CANCELED"
}

// waitJob polls a job through the REST API until it has the status want
// and more (if not nil) accepts it. It fails the test at once if the job
// ends with another status, or has ended with every task and more refuses
// it, and with the last reason after jobWait.
func waitJob(t *testing.T, c *procs.Cluster, id, want string, more func(api.Job) error) api.Job {
	t.Helper()
	deadline := time.Now().Add(jobWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		j, err := c.Client().Job(ctx, id)
		cancel()
		switch {
		case err != nil:
		case j.Status != want && terminal(j.Status):
			t.Fatalf("job %s ended %s (%s), want %s; tasks %+v", id, j.Status, j.StatusReason, want, j.Execution)
		case j.Status != want:
			err = fmt.Errorf("job %s is %s (%s)", id, j.Status, j.StatusReason)
		case more != nil:
			if err = more(j); err != nil && terminal(j.Status) && tasksEnded(j) {
				t.Fatalf("job %s ended %s (%s), and will not change: %v", id, j.Status, j.StatusReason, err)
			}
		}
		if err == nil {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for job %s to be %s: not within %s: %v", id, want, jobWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tasksEnded reports whether every task of a job has ended; an ended task
// keeps the state it ended in.
func tasksEnded(j api.Job) bool {
	for _, ts := range j.Execution {
		if !terminal(ts.State) {
			return false
		}
	}
	return true
}

// allTasks accepts a job whose n tasks are all in state.
func allTasks(n int, state string) func(api.Job) error {
	return func(j api.Job) error {
		if len(j.Execution) != n {
			return fmt.Errorf("%d tasks reported, want %d: %+v", len(j.Execution), n, j.Execution)
		}
		for _, ts := range j.Execution {
			if ts.State != state {
				return fmt.Errorf("task %s/%d is %s, want %s", ts.Name, ts.Subtask, ts.State, state)
			}
		}
		return nil
	}
}

// tasksPerWorker counts a running job's tasks (slots) by worker, as
// `eddy info` lists them.
func tasksPerWorker(j api.Job) map[string]int {
	out := map[string]int{}
	for _, tk := range j.Tasks {
		out[tk.WorkerID]++
	}
	return out
}

// plugins returns the job plugin processes of the given workers, by pid,
// with their executable: a worker runs a job binary from its artifact
// cache, <data dir>/artifacts/<sha256>, so /proc/<pid>/exe names both the
// worker and the artifact.
func plugins(t *testing.T, c *procs.Cluster, workers ...string) map[int]string {
	t.Helper()
	var dirs []string
	for _, id := range workers {
		dirs = append(dirs, filepath.Join(c.Proc(id).DataDir, "artifacts")+string(filepath.Separator))
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	out := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue // gone, a zombie, or not ours
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		for _, d := range dirs {
			if strings.HasPrefix(exe, d) {
				out[pid] = exe
			}
		}
	}
	return out
}

// waitPlugins waits until the workers' plugin processes are exactly want.
func waitPlugins(t *testing.T, c *procs.Cluster, want map[int]string, workers ...string) {
	t.Helper()
	var got map[int]string
	err := procs.Poll(jobWait, 50*time.Millisecond, func() error {
		got = plugins(t, c, workers...)
		for pid, exe := range got {
			if _, ok := want[pid]; !ok {
				return fmt.Errorf("plugin process %d (%s) is still running", pid, exe)
			}
		}
		for pid := range want {
			if _, ok := got[pid]; !ok {
				return fmt.Errorf("plugin process %d is gone: have %v, want %v", pid, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("plugin processes of %v: %v", workers, err)
	}
}

func skipNoProc(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("finds plugin processes through /proc")
	}
}

var deployedRE = regexp.MustCompile(`msg="tasks deployed" .*\btasks=(\d+)`)

// deployedTasks returns how many tasks of a job a worker's log says it
// deployed.
func deployedTasks(t *testing.T, p *procs.Proc, job string) int {
	t.Helper()
	f, err := os.Open(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := deployedRE.FindStringSubmatch(line); m != nil && strings.Contains(line, " job_id="+job+" ") {
			k, _ := strconv.Atoi(m[1])
			n += k
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", p.LogPath, err)
	}
	return n
}

// TestWordCountAcrossWorkers runs examples/wordcount at parallelism 4 over
// two workers through `eddy run` and checks its counts against the same
// text counted here.
func TestWordCountAcrossWorkers(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := startJobCluster(t, 3)
	bin := buildJob(t, "./examples/wordcount")
	out := filepath.Join(t.TempDir(), "counts")
	const lines = 5000

	r := eddyRun(c, "-p", "4", "--job-id", "wordcount", bin, "--", "-lines", strconv.Itoa(lines), "-out", out)
	if r.Code != 0 || !strings.Contains(r.Stderr, "job wordcount FINISHED") {
		t.Fatalf("want exit 0 and the job FINISHED, got %s", r)
	}
	t.Logf("eddy run: job FINISHED after %s", r.Took.Round(time.Millisecond))

	j := info(t, c, "wordcount")
	if j.Status != "FINISHED" || j.Attempt != 1 {
		t.Fatalf("eddy info: want FINISHED in attempt 1, got %s in attempt %d (%s)", j.Status, j.Attempt, j.StatusReason)
	}
	if err := allTasks(8, "FINISHED")(j); err != nil { // two chains of 4 subtasks
		t.Fatalf("eddy info: %v", err)
	}
	// `eddy info` forgets where the tasks of an ended job ran (its slots
	// are released and the task states carry no worker), so the workers'
	// logs tell: each deployed its two slots' tasks of both chains.
	for _, w := range []string{"w1", "w2"} {
		if n := deployedTasks(t, c.Proc(w), "wordcount"); n != 4 {
			t.Errorf("worker %s deployed %d tasks of the job, want 4 (two slots, two chains)", w, n)
		}
	}

	want := map[string]int64{}
	var words int64
	gen := wordcountLine(1)
	for i := range int64(lines) {
		for _, w := range strings.Fields(gen(i)) {
			want[w]++
			words++
		}
	}
	got, records := readCounts(t, out)
	if records != words {
		t.Errorf("the part files hold %d running counts, want one per word of the text, %d", records, words)
	}
	var wrong []string
	for _, w := range slices.Sorted(maps.Keys(want)) {
		if got[w] != want[w] {
			wrong = append(wrong, fmt.Sprintf("%s: counted %d, want %d", w, got[w], want[w]))
		}
	}
	for _, w := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[w]; !ok {
			wrong = append(wrong, fmt.Sprintf("%s: counted %d, not in the text", w, got[w]))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d words counted wrong, first ones:\n%s", len(wrong), len(want), strings.Join(wrong[:min(len(wrong), 20)], "\n"))
	}
	t.Logf("%d distinct words, %d words in %d lines: counts match", len(want), words, lines)
}

// readCounts reads the "word count" lines of the part files in dir and
// returns the largest count of each word and the number of lines. Each
// word's running counts must be 1, 2, 3, ... in one part file: its key
// reaches one subtask, in order.
func readCounts(t *testing.T, dir string) (map[string]int64, int64) {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("want 4 part files (one per sink subtask) in %s, got %v", dir, parts)
	}
	counts := map[string]int64{}
	partOf := map[string]string{}
	var records int64
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Fatalf("%s:%d: want \"word count\", got %q", p, i+1, line)
			}
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("%s:%d: want \"word count\", got %q", p, i+1, line)
			}
			w := f[0]
			if other, ok := partOf[w]; ok && other != p {
				t.Fatalf("word %q is counted in %s and %s", w, other, p)
			}
			if n != counts[w]+1 {
				t.Fatalf("%s:%d: word %q counted %d after %d", p, i+1, w, n, counts[w])
			}
			partOf[w], counts[w] = p, n
			records++
		}
	}
	return counts, records
}

// wordcountVocabulary and wordcountLine are examples/wordcount's text
// generator, copied: the test counts the words of the text itself, without
// the SDK. If the example's text changes, change them with it.
var wordcountVocabulary = func() []string {
	onsets := []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr", "st", "gr", "pl", "ch"}
	nuclei := []string{"a", "e", "i", "o", "u", "ai", "ou", "ee", "oa", "y"}
	var syllables []string
	for _, o := range onsets {
		for _, n := range nuclei {
			syllables = append(syllables, o+n)
		}
	}
	words := make([]string, 0, 1000)
	for i := 0; len(words) < 1000; i++ {
		k := (i * 7919) % (len(syllables) * len(syllables))
		words = append(words, syllables[k/len(syllables)]+syllables[k%len(syllables)])
	}
	return words
}()

func wordcountLine(seed uint64) func(i int64) string {
	return func(i int64) string {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		zipf := rand.NewZipf(r, 1.2, 2, uint64(len(wordcountVocabulary)-1))
		n := 4 + r.IntN(9)
		var b strings.Builder
		for k := range n {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(wordcountVocabulary[zipf.Uint64()])
		}
		return b.String()
	}
}

// TestCancelStopsEverything cancels an unbounded job running on two
// workers: the job and every task end CANCELED, its plugin processes exit
// and its slots are free again.
func TestCancelStopsEverything(t *testing.T) {
	skipShort(t)
	skipNoProc(t)
	t.Parallel()
	c := startJobCluster(t, 3)
	bin := buildJob(t, testJob)

	r := eddyRun(c, "-p", "4", "--detach", "--job-id", "endless", bin, "--", "stream", "-rate", "400")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "endless" {
		t.Fatalf("want exit 0 and the job id, got %s", r)
	}
	waitJob(t, c, "endless", "RUNNING", allTasks(8, "RUNNING"))
	j := info(t, c, "endless")
	if got := tasksPerWorker(j); got["w1"] != 2 || got["w2"] != 2 {
		t.Fatalf("eddy info: want two slots on each of w1 and w2, got %v: %+v", got, j.Tasks)
	}
	running := plugins(t, c, "w1", "w2")
	want := []string{
		filepath.Join(c.Proc("w1").DataDir, "artifacts", j.Artifact.SHA256),
		filepath.Join(c.Proc("w2").DataDir, "artifacts", j.Artifact.SHA256),
	}
	if exes := slices.Sorted(maps.Values(running)); !slices.Equal(exes, want) {
		t.Fatalf("want one plugin process per worker running %v, got %v", want, running)
	}

	r = c.Eddy(cliTimeout, "--address", c.Addresses(), "cancel", "endless")
	if r.Code != 0 || !strings.Contains(r.Stdout, "job endless is CANCEL") {
		t.Fatalf("want exit 0 and the job cancelling, got %s", r)
	}
	cancelled := time.Now()
	waitJob(t, c, "endless", "CANCELED", allTasks(8, "CANCELED"))
	t.Logf("job and tasks CANCELED %s after eddy cancel", time.Since(cancelled).Round(time.Millisecond))
	waitPlugins(t, c, nil, "w1", "w2")
	t.Logf("plugin processes %v gone %s after eddy cancel", slices.Sorted(maps.Keys(running)), time.Since(cancelled).Round(time.Millisecond))

	j = info(t, c, "endless")
	if j.Status != "CANCELED" || len(j.Tasks) != 0 {
		t.Fatalf("eddy info: want CANCELED with no slot held, got %s holding %+v", j.Status, j.Tasks)
	}
	var ws []api.Worker
	if err := eddyJSON(c, &ws, "--address", c.Addresses(), "workers"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		if w, ok := findWorker(ws, id); !ok || w.Status != "ALIVE" || w.SlotsFree != w.Slots {
			t.Errorf("eddy workers: want %s ALIVE with every slot free, got %+v", id, ws)
		}
	}
}

// TestPanicFailsOnlyItsJob runs two jobs on the same two workers: one
// panics after some records and fails with the panic's message; the other
// keeps running, on the same plugin processes, and keeps writing.
func TestPanicFailsOnlyItsJob(t *testing.T) {
	skipShort(t)
	skipNoProc(t)
	t.Parallel()
	c := startJobCluster(t, 3)
	bin := buildJob(t, testJob)
	steadyOut := filepath.Join(t.TempDir(), "steady")

	// Each job takes one slot on each worker (free slots are dealt
	// round robin over the workers).
	r := eddyRun(c, "-p", "2", "--detach", "--job-id", "steady", bin, "--", "stream", "-rate", "400", "-out", steadyOut)
	if r.Code != 0 {
		t.Fatal(r)
	}
	waitJob(t, c, "steady", "RUNNING", allTasks(4, "RUNNING"))
	steady := info(t, c, "steady")
	if got := tasksPerWorker(steady); got["w1"] != 1 || got["w2"] != 1 {
		t.Fatalf("eddy info steady: want a slot on each of w1 and w2, got %v", got)
	}
	steadyPlugins := plugins(t, c, "w1", "w2")
	if len(steadyPlugins) != 2 {
		t.Fatalf("want one plugin process of job steady per worker, got %v", steadyPlugins)
	}
	var before []api.Worker
	if err := eddyJSON(c, &before, "--address", c.Addresses(), "workers"); err != nil {
		t.Fatal(err)
	}

	// At 1000 records a second, record 700 comes well after the job runs.
	r = eddyRun(c, "-p", "2", "--job-id", "boom", bin, "--", "stream", "-rate", "1000", "-panic-at", "700")
	const panicMsg = "panic: boom at record 700"
	if r.Code != 1 || !strings.Contains(r.Stderr, panicMsg) {
		t.Fatalf("want exit 1 and %q, got %s", panicMsg, r)
	}
	for _, w := range []string{"w1", "w2"} {
		if n := deployedTasks(t, c.Proc(w), "boom"); n != 2 {
			t.Errorf("worker %s deployed %d tasks of job boom, want 2 (one slot, two chains)", w, n)
		}
	}
	r = c.Eddy(cliTimeout, "--address", c.Addresses(), "info", "boom")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^Status: +FAILED$`).MatchString(r.Stdout) ||
		!regexp.MustCompile(`(?m)^Reason: .*`+panicMsg).MatchString(r.Stdout) {
		t.Fatalf("eddy info boom: want FAILED with the reason %q, got %s", panicMsg, r)
	}
	// The task that met record 700 failed with the panic; the others were
	// cancelled, or failed on a channel to a task that had stopped.
	boom := waitJob(t, c, "boom", "FAILED", func(j api.Job) error {
		for _, ts := range j.Execution {
			if ts.State != "FAILED" && ts.State != "CANCELED" {
				return fmt.Errorf("task %s/%d is %s", ts.Name, ts.Subtask, ts.State)
			}
		}
		return nil
	})
	panicked := 0
	for _, ts := range boom.Execution {
		if ts.State == "FAILED" && strings.Contains(ts.Error, panicMsg) {
			panicked++
		}
	}
	if panicked != 1 || len(boom.Execution) != 4 {
		t.Errorf("job boom: want 4 tasks, the one that met record 700 FAILED with the panic: %+v", boom.Execution)
	}

	// Job boom's plugins exit; job steady's stay, and it goes on.
	waitPlugins(t, c, steadyPlugins, "w1", "w2")
	steady = info(t, c, "steady")
	if steady.Status != "RUNNING" || steady.Attempt != 1 {
		t.Fatalf("job steady: want RUNNING in attempt 1, got %s in attempt %d (%s)", steady.Status, steady.Attempt, steady.StatusReason)
	}
	if err := allTasks(4, "RUNNING")(steady); err != nil {
		t.Fatalf("job steady: %v", err)
	}
	size := dirSize(t, steadyOut)
	procs.WaitFor(t, jobWait, func() error {
		if now := dirSize(t, steadyOut); now <= size {
			return fmt.Errorf("job steady wrote nothing since job boom failed (%d bytes)", now)
		}
		return nil
	})
	var after []api.Worker
	if err := eddyJSON(c, &after, "--address", c.Addresses(), "workers"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		b, _ := findWorker(before, id)
		a, ok := findWorker(after, id)
		if !ok || a.Status != "ALIVE" || a.InstanceID != b.InstanceID || a.SlotsFree != 1 {
			t.Errorf("eddy workers: want %s ALIVE, not restarted, with job steady's slot held only: before %+v, after %+v", id, b, a)
		}
	}

	r = c.Eddy(cliTimeout, "--address", c.Addresses(), "cancel", "steady")
	if r.Code != 0 {
		t.Fatal(r)
	}
	waitJob(t, c, "steady", "CANCELED", allTasks(4, "CANCELED"))
	waitPlugins(t, c, nil, "w1", "w2")
}

// dirSize returns the total size of the files in dir (0 if it is missing).
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestBadJobsRefused submits what cannot run: each is refused, or its job
// fails, with a message that says why, before any task starts.
func TestBadJobsRefused(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := startJobCluster(t, 3)
	bin := buildJob(t, testJob)
	addrs := c.Addresses()
	cl := client.New(strings.Split(addrs, ","))

	// noTaskRan checks that a failed job never had a task, and that no
	// worker cached its artifact (a worker caches it before running it).
	noTaskRan := func(t *testing.T, j api.Job) {
		t.Helper()
		if len(j.Execution) != 0 || len(j.Tasks) != 0 {
			t.Errorf("job %s: want no task and no slot, got tasks %+v, slots %+v", j.ID, j.Execution, j.Tasks)
		}
	}
	notCached := func(t *testing.T, sha string) {
		t.Helper()
		for _, w := range []string{"w1", "w2"} {
			if _, err := os.Stat(filepath.Join(c.Proc(w).DataDir, "artifacts", sha)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("worker %s cached artifact %s (%v)", w, sha, err)
			}
		}
	}
	noJobs := func(t *testing.T) {
		t.Helper()
		var jobs []api.Job
		if err := eddyJSON(c, &jobs, "--address", addrs, "list"); err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 0 {
			t.Fatalf("eddy list: want no job, got %+v", jobs)
		}
	}

	t.Run("not an Eddy job", func(t *testing.T) {
		dir := t.TempDir()
		script := filepath.Join(dir, "hello.sh")
		text := filepath.Join(dir, "notes.txt")
		copied := filepath.Join(dir, "true")
		writeFile(t, script, "#!/bin/sh\necho hello\n", 0o755)
		writeFile(t, text, "not a program\n", 0o644)
		if trueBin, err := exec.LookPath("true"); err == nil {
			b, err := os.ReadFile(trueBin)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, copied, string(b), 0o755)
		} else {
			copied = script
		}
		for _, f := range []string{copied, script, text} {
			r := eddyRun(c, f)
			if r.Code != 1 || !strings.Contains(r.Stderr, f+" is not an Eddy job") || !strings.Contains(r.Stderr, "sdk.Main") {
				t.Errorf("eddy run %s: want exit 1 and %q, got %s", filepath.Base(f), "is not an Eddy job", r)
			}
		}
		noJobs(t)
	})

	t.Run("stateful operator without UID", func(t *testing.T) {
		r := eddyRun(c, bin, "--", "nouid")
		for _, want := range []string{"refused", "keeps state", "sdk.WithUID"} {
			if r.Code != 1 || !strings.Contains(r.Stderr, want) {
				t.Errorf("want exit 1 and %q, got %s", want, r)
			}
		}
		noJobs(t)
	})

	t.Run("unknown artifact hash", func(t *testing.T) {
		// The REST API, given a hash that names no uploaded artifact,
		// with the URL of one that was.
		a, err := cl.UploadArtifact(context.Background(), bin)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("no such binary"))
		wrong := hex.EncodeToString(sum[:])
		_, err = cl.Submit(context.Background(), api.SubmitJob{JobID: "unknown-hash", Name: "unknown-hash",
			Artifact: &api.Artifact{SHA256: wrong, URL: a.URL, Size: a.Size}, Graph: describe(t, bin, "stream")})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != "invalid_argument" || !strings.Contains(ce.Message, wrong) ||
			!strings.Contains(ce.Message, "not in the cluster's storage") {
			t.Fatalf("submit with sha256 %s: want invalid_argument saying it is not in storage, got %v", wrong, err)
		}
		noJobs(t)
	})

	// From here on jobs are created, and fail.
	t.Run("describes a graph but is no plugin", func(t *testing.T) {
		fake := filepath.Join(t.TempDir(), "fake.sh")
		writeFile(t, fake, fmt.Sprintf("#!/bin/sh\nif [ \"$EDDY_DESCRIBE\" = 1 ]; then\ncat <<'EOF'\n%s\nEOF\nexit 0\nfi\necho 'no plugin here'\n",
			describe(t, bin, "stream")), 0o755)
		r := eddyRun(c, "--job-id", "fake", fake)
		// It printed its line instead of the handshake, or exited before
		// the worker read it: either is said.
		wantRE := regexp.MustCompile(`artifact [0-9a-f]{64} is not an Eddy job: it (printed "no plugin here" instead of|exited with exit status 0 before) the plugin handshake`)
		if r.Code != 1 || !wantRE.MatchString(r.Stderr) {
			t.Fatalf("want exit 1 and a message matching %q, got %s", wantRE, r)
		}
		j := info(t, c, "fake")
		if j.Status != "FAILED" || !wantRE.MatchString(j.StatusReason) {
			t.Errorf("eddy info: want FAILED with a reason matching %q, got %s: %s", wantRE, j.Status, j.StatusReason)
		}
		noTaskRan(t, j)
	})

	t.Run("artifact corrupted in storage", func(t *testing.T) {
		// A binary no worker has cached, uploaded, then damaged in the
		// shared storage before any worker fetches it.
		variant := buildJob(t, testJob, "-ldflags=-X main.variant=corrupted")
		a, err := cl.UploadArtifact(context.Background(), variant)
		if err != nil {
			t.Fatal(err)
		}
		stored := filepath.Join(c.StorageDir(), "artifacts", a.SHA256)
		flipByte(t, stored, a.Size/2)
		_, err = cl.Submit(context.Background(), api.SubmitJob{JobID: "corrupted", Name: "corrupted",
			Artifact: &a, Graph: describe(t, variant, "stream"), Args: []string{"stream"}})
		if err != nil {
			t.Fatal(err)
		}
		j := waitJob(t, c, "corrupted", "FAILED", nil)
		for _, want := range []string{a.SHA256, "checksum mismatch"} {
			if !strings.Contains(j.StatusReason, want) {
				t.Errorf("job corrupted: want a reason with %q, got %q", want, j.StatusReason)
			}
		}
		noTaskRan(t, j)
		notCached(t, a.SHA256)
	})

	t.Run("artifact replaced after submit", func(t *testing.T) {
		// The job waits for slots while its artifact, content and
		// checksum alike, is replaced in storage by another binary: the
		// worker that fetches it finds the hash the job names wrong.
		r := eddyRun(c, "-p", "4", "--detach", "--job-id", "hog", bin, "--", "stream", "-rate", "200")
		if r.Code != 0 {
			t.Fatal(r)
		}
		waitJob(t, c, "hog", "RUNNING", nil)
		variant := buildJob(t, testJob, "-ldflags=-X main.variant=replaced")
		r = eddyRun(c, "--detach", "--job-id", "replaced", variant, "--", "stream")
		if r.Code != 0 {
			t.Fatal(r)
		}
		j := waitJob(t, c, "replaced", "CREATED", func(j api.Job) error {
			if !strings.Contains(j.StatusReason, "waiting for 1 free slots") {
				return fmt.Errorf("reason %q", j.StatusReason)
			}
			return nil
		})
		stored := filepath.Join(c.StorageDir(), "artifacts", j.Artifact.SHA256)
		other, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		otherSum := sha256.Sum256(other)
		writeFile(t, stored, string(other), 0o644)
		writeFile(t, stored+".sha256", hex.EncodeToString(otherSum[:])+"\n", 0o644)
		if r := c.Eddy(cliTimeout, "--address", addrs, "cancel", "hog"); r.Code != 0 {
			t.Fatal(r)
		}
		j = waitJob(t, c, "replaced", "FAILED", nil)
		for _, want := range []string{"artifact hash mismatch", j.Artifact.SHA256, hex.EncodeToString(otherSum[:])} {
			if !strings.Contains(j.StatusReason, want) {
				t.Errorf("job replaced: want a reason with %q, got %q", want, j.StatusReason)
			}
		}
		noTaskRan(t, j)
		notCached(t, j.Artifact.SHA256)
		waitJob(t, c, "hog", "CANCELED", nil)
	})
}

// describe returns the graph a job binary describes, as `eddy run` asks
// for it.
func describe(t *testing.T, bin string, args ...string) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "EDDY_DESCRIBE=1", "EDDY_PARALLELISM=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("describe %s: %v", bin, err)
	}
	return json.RawMessage(out)
}

func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// flipByte inverts the byte at offset off of a file, in place.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
