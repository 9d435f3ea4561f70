// Command savepoint measures savepoints and migrations on clusters of real
// processes:
//
//  1. Savepoint time and size against state size. On a cluster of one
//     `eddy server` and two `eddy worker`s (-slots slots each, file://
//     storage in a temp dir), for each state size of -sizes (MiB), it runs
//     test/bench/savepoint/job at parallelism -p with keyed state of that
//     size: K = size / -value keys, each with a -value-byte value of
//     incompressible bytes in value state, written once by a source that
//     emits K records as fast as the job takes them and then idles without
//     ending, so the job stays RUNNING. The job checkpoints with a one-hour
//     interval, so no periodic checkpoint runs while it is measured. Once
//     every source subtask has emitted its share (a marker file each), it
//     takes -runs savepoints with `eddy savepoint JOB URL`, each into a new
//     directory, and reports for each: the duration in the savepoint's REST
//     record (triggered_at to completed_at), the wall time of the CLI
//     command (which polls every 200 ms, so it includes up to that much
//     wait), the size in the record (size_bytes) and the bytes of the
//     directory's files on disk. Each savepoint directory is removed once
//     measured.
//
//  2. The pause of a migration. Two clusters, A and B, of one server and
//     one worker each (-slots slots, enough for the whole job: a migration
//     moves the job between clusters, and one worker per cluster is all the
//     move needs), with storages of their own and one directory both reach
//     for the savepoints. Each run submits the job to A with an unbounded
//     source at -migrate-rate records a second over -migrate-keys keys of
//     -value bytes each, and a sink that writes every record as a line
//     stamped with the wall clock into a file named after the cluster whose
//     worker started the plugin (each cluster's processes get
//     EDDY_BENCH_CLUSTER=a or b). After -warmup (at least long enough for
//     every key to be written), it runs `eddy --address A migrate JOB --to B
//     --savepoint URL` and measures the pause: the first line written on B
//     minus the last line written on A. It also prints the migrate command's
//     wall time and the time of each of its steps, from when each progress
//     line was read. The job is then cancelled on B.
//
// For example, the figures in docs/benchmarks.md:
//
//	go run ./test/bench/savepoint -sizes 100,1024 -runs 3 -migrate-runs 3
//
// Results are from one machine at one moment; the load average is printed
// at the start and the end. The program checks available memory and disk
// for the largest size first. Every wait is bounded, and every process and
// temp dir is removed at the end, on error, and on Ctrl-C.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/test/procs"
)

type options struct {
	sizes       []int // MiB
	runs        int
	value       int
	p           int
	slots       int
	migrateRuns int
	migrateKeys int64
	migrateRate float64
	warmup      time.Duration
	timeout     time.Duration
	keep        bool
}

const mib = 1 << 20

func main() {
	var o options
	var sizes string
	flag.StringVar(&sizes, "sizes", "100,1024", "comma-separated state sizes to measure savepoints of, in MiB (empty: none)")
	flag.IntVar(&o.runs, "runs", 3, "savepoints per state size")
	flag.IntVar(&o.value, "value", 1024, "bytes of each key's value")
	flag.IntVar(&o.p, "p", 2, "the job's parallelism")
	flag.IntVar(&o.slots, "slots", 1, "slots per worker in the savepoint cluster (2 workers); the migration clusters' single worker gets -p")
	flag.IntVar(&o.migrateRuns, "migrate-runs", 3, "migrations to measure (0: none)")
	flag.Int64Var(&o.migrateKeys, "migrate-keys", 10240, "keys of the migrated job (its state is keys x -value bytes)")
	flag.Float64Var(&o.migrateRate, "migrate-rate", 2000, "records per second of the migrated job's source")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "how long the migrated job runs on A before the migration, at least until every key is written")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on each wait and command")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dirs, output and logs, and print where they are")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "savepoint: -sizes: %q is not a positive number of MiB\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.runs < 1 || o.value < 8 || o.p < 1 || o.slots < 1 || 2*o.slots < o.p || o.migrateRuns < 0 ||
		o.migrateKeys < 1 || o.migrateRate <= 0 || o.timeout <= 0 {
		fmt.Fprintln(os.Stderr, "savepoint: -runs, -p, -slots, -migrate-keys, -migrate-rate and -timeout must be positive, -value at least 8, 2 x -slots at least -p")
		os.Exit(2)
	}

	m := procs.NewMain()
	m.Cleanup(procs.RemoveBinary)
	fmt.Printf("savepoint: %d CPUs, %s; load average at start: %s\n", runtime.NumCPU(), runtime.Version(), procs.LoadAvg())
	dir := m.WorkDir("eddy-savepoint-", o.keep)
	if len(o.sizes) > 0 {
		checkResources(m, o, dir)
	}
	m.Logf("building eddy and the job")
	procs.Binary(m)
	bin := procs.BuildJob(m, filepath.Join(dir, "job"), "./test/bench/savepoint/job")

	var spResults [][]spSample
	if len(o.sizes) > 0 {
		spResults = savepoints(m, o, filepath.Join(dir, "savepoints"), bin)
	}
	var migResults []migSample
	if o.migrateRuns > 0 {
		migResults = migrations(m, o, filepath.Join(dir, "migration"), bin)
	}
	m.Close()
	if m.Failed() {
		os.Exit(1)
	}
	fmt.Printf("\nload average at the end: %s\n", procs.LoadAvg())
	for i, size := range o.sizes {
		reportSavepoints(o, size, spResults[i])
	}
	if o.migrateRuns > 0 {
		reportMigrations(o, migResults)
	}
}

// checkResources fails unless the machine has the memory and disk the
// largest state size needs: the state lives in the plugins' memory (with
// the map's and the allocator's overhead) and one savepoint at a time on
// disk.
func checkResources(m *procs.Main, o options, dir string) {
	largest := int64(slices.Max(o.sizes)) * mib
	avail := memAvailable()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		m.Fatalf("statfs %s: %v", dir, err)
	}
	disk := int64(st.Bavail) * int64(st.Bsize)
	fmt.Printf("largest state %s; memory available %s, disk free under %s %s\n", human(largest), human(avail), dir, human(disk))
	if avail >= 0 && avail < 4*largest+2<<30 {
		m.Fatalf("%s of memory available: the largest state size needs about %s (4x the state, 2 GiB for the rest)", human(avail), human(4*largest+2<<30))
	}
	if disk < 3*largest+1<<30 {
		m.Fatalf("%s of disk free: the largest state size needs about %s", human(disk), human(3*largest+1<<30))
	}
}

// memAvailable returns MemAvailable from /proc/meminfo, or -1.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return -1
}

// spSample is one savepoint of one state size.
type spSample struct {
	run      int
	id       uint64
	record   time.Duration // triggered_at to completed_at
	reported time.Duration // duration_ms
	wall     time.Duration // the CLI command
	size     int64         // size_bytes
	onDisk   int64         // the files' bytes
	files    int
}

func savepoints(m *procs.Main, o options, dir, bin string) [][]spSample {
	m.Logf("savepoints: starting a server and 2 workers x %d slots in %s", o.slots, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.Fatalf("%v", err)
	}
	c := procs.New(m, procs.Config{Dir: dir, SharedStorage: true, StartTimeout: o.timeout})
	c.StartServers(1)
	c.StartWorker("w1", o.slots)
	c.StartWorker("w2", o.slots)
	cl := c.Client()
	var out [][]spSample
	for _, size := range o.sizes {
		keys := int64(size) * mib / int64(o.value)
		id := fmt.Sprintf("state-%dmib", size)
		markers := filepath.Join(dir, "markers-"+id)
		submitted := time.Now()
		r := c.Eddy(o.timeout, "--address", c.Addresses(), "run", "--detach", "--job-id", id, "-p", strconv.Itoa(o.p), bin,
			"--", "-keys", strconv.FormatInt(keys, 10), "-n", strconv.FormatInt(keys, 10), "-value", strconv.Itoa(o.value),
			"-markers", markers, "-checkpoint", "1h")
		if r.Code != 0 || r.Err != nil {
			m.Fatalf("submit: %s", r)
		}
		waitJob(m, c, id, o.timeout, "RUNNING")
		procs.WaitFor(m, o.timeout, func() error {
			entries, err := os.ReadDir(markers)
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			if len(entries) < o.p {
				return fmt.Errorf("job %s: %d of %d source subtasks emitted their share", id, len(entries), o.p)
			}
			return nil
		})
		built := time.Since(submitted)
		fmt.Printf("state %d MiB: %d keys x %d bytes = %s of values, written %s after the submit\n",
			size, keys, o.value, human(keys*int64(o.value)), built.Round(time.Millisecond))
		var samples []spSample
		for run := 1; run <= o.runs; run++ {
			spDir := filepath.Join(dir, fmt.Sprintf("sp-%s-%d", id, run))
			spURL := fileURL(spDir)
			r := c.Eddy(o.timeout+time.Minute, "--address", c.Addresses(), "savepoint", "--timeout", o.timeout.String(), id, spURL)
			if r.Code != 0 || r.Err != nil {
				m.Fatalf("savepoint: %s", r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			sps, err := cl.Savepoints(ctx, id)
			cancel()
			if err != nil {
				m.Fatalf("list savepoints of %s: %v", id, err)
			}
			i := slices.IndexFunc(sps, func(cp api.Checkpoint) bool { return cp.URL == spURL })
			if i < 0 {
				m.Fatalf("savepoint %s is not listed with job %s: %+v", spURL, id, sps)
			}
			cp := sps[i]
			if cp.Status != "COMPLETED" {
				m.Fatalf("savepoint %s is %s: %s", spURL, cp.Status, cp.Failure)
			}
			onDisk, files := dirBytes(m, spDir)
			s := spSample{run: run, id: cp.ID, record: cp.CompletedAt.Sub(cp.TriggeredAt), reported: time.Duration(cp.DurationMs) * time.Millisecond,
				wall: r.Took, size: cp.SizeBytes, onDisk: onDisk, files: files}
			if s.size < keys*int64(o.value) {
				m.Fatalf("savepoint %d of %s is %d bytes, less than the %d bytes of values: not every key is in it", cp.ID, id, s.size, keys*int64(o.value))
			}
			samples = append(samples, s)
			fmt.Printf("state %d MiB run %d: savepoint %d took %s (REST record; duration_ms %s), `eddy savepoint` %s; size %s (%d bytes; %d bytes in %d files on disk)\n",
				size, run, s.id, ms(s.record), ms(s.reported), ms(s.wall), human(s.size), s.size, s.onDisk, s.files)
			if !o.keep {
				_ = os.RemoveAll(spDir)
			}
		}
		out = append(out, samples)
		cancelJob(m, c, id, o.timeout)
	}
	c.Close()
	return out
}

// migSample is one migration.
type migSample struct {
	run       int
	pause     time.Duration // first line on B minus last line on A
	lastA     time.Duration // from the migrate command's start
	firstB    time.Duration
	wall      time.Duration // the migrate command
	steps     []step
	spBytes   int64
	spTook    string // as the command printed it
	linesA    int
	linesB    int
	targetJob string
}

type step struct {
	name string
	took time.Duration
}

// The progress lines of `eddy migrate` that end each step, in order.
var migrateSteps = []struct {
	name string
	line *regexp.Regexp
}{
	{"check job and target", regexp.MustCompile(`^copying artifact `)},
	{"copy artifact", regexp.MustCompile(`^artifact copied: `)},
	{"trigger stop with savepoint", regexp.MustCompile(`^stopping job `)},
	{"savepoint", regexp.MustCompile(`^savepoint \d+ taken at `)},
	{"job ends on the source", regexp.MustCompile(`^job \S+ is \S+ on the source$`)},
	{"submit to the target", regexp.MustCompile(`^submitted to the target as job `)},
	{"job RUNNING on the target", regexp.MustCompile(`^job \S+ is RUNNING on the target$`)},
}

var spTaken = regexp.MustCompile(`^savepoint \d+ taken at \S+ \((\d+) bytes, ([^)]+)\)`)

func migrations(m *procs.Main, o options, dir, bin string) []migSample {
	spBase := filepath.Join(dir, "shared-savepoints")
	outBase := filepath.Join(dir, "out")
	for _, d := range []string{spBase, outBase} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			m.Fatalf("%v", err)
		}
	}
	cluster := func(name string) *procs.Cluster {
		cdir := filepath.Join(dir, "cluster-"+name)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			m.Fatalf("%v", err)
		}
		m.Logf("migration: cluster %s, a server and a worker x %d slots, in %s", name, o.p, cdir)
		c := procs.New(m, procs.Config{Dir: cdir, SharedStorage: true, StartTimeout: o.timeout, Env: []string{"EDDY_BENCH_CLUSTER=" + name}})
		c.StartServers(1)
		c.StartWorker("w1", o.p)
		return c
	}
	a, b := cluster("a"), cluster("b")
	warmup := max(o.warmup, time.Duration(float64(o.migrateKeys)/o.migrateRate*float64(time.Second))+2*time.Second)
	fmt.Printf("migration: clusters A and B of 1 server + 1 worker x %d slots each; job at p=%d, %.0f records/s over %d keys of %d bytes (%s of values); %s on A before each migration\n",
		o.p, o.p, o.migrateRate, o.migrateKeys, o.value, human(o.migrateKeys*int64(o.value)), warmup)
	var out []migSample
	for run := 1; run <= o.migrateRuns; run++ {
		id := fmt.Sprintf("mig-%d", run)
		outDir := filepath.Join(outBase, id)
		r := a.Eddy(o.timeout, "--address", a.Addresses(), "run", "--detach", "--job-id", id, "-p", strconv.Itoa(o.p), bin,
			"--", "-keys", strconv.FormatInt(o.migrateKeys, 10), "-n", "-1", "-value", strconv.Itoa(o.value),
			"-rate", strconv.FormatFloat(o.migrateRate, 'f', -1, 64), "-out", outDir, "-checkpoint", "1h")
		if r.Code != 0 || r.Err != nil {
			m.Fatalf("submit: %s", r)
		}
		waitJob(m, a, id, o.timeout, "RUNNING")
		procs.WaitFor(m, o.timeout, func() error {
			if st := readOutput(m, outDir, o.p)["a"]; st.lines == 0 {
				return fmt.Errorf("job %s has written nothing on A", id)
			}
			return nil
		})
		time.Sleep(warmup)

		spURL := fileURL(filepath.Join(spBase, id))
		start := time.Now()
		r = a.Eddy(o.timeout*4, "--address", a.Addresses(), "migrate", id, "--to", b.Addresses(), "--savepoint", spURL, "--timeout", o.timeout.String())
		if r.Code != 0 || r.Err != nil {
			m.Fatalf("migrate: %s", r)
		}
		s := migSample{run: run, wall: r.Took, targetJob: strings.TrimSpace(r.Stdout)}
		prev := time.Duration(0)
		next := 0
		for _, l := range r.Lines {
			if next < len(migrateSteps) && migrateSteps[next].line.MatchString(l.Text) {
				s.steps = append(s.steps, step{migrateSteps[next].name, l.At - prev})
				prev = l.At
				next++
			}
			if mm := spTaken.FindStringSubmatch(l.Text); mm != nil {
				s.spBytes, _ = strconv.ParseInt(mm[1], 10, 64)
				s.spTook = mm[2]
			}
		}
		if next < len(migrateSteps) {
			m.Fatalf("migrate %s: no progress line for the step %q in its output: %s", id, migrateSteps[next].name, r)
		}
		// B writes; let it write a while, so that its first line is
		// surely there and the keys it wrote can be counted.
		procs.WaitFor(m, o.timeout, func() error {
			if st := readOutput(m, outDir, o.p)["b"]; st.lines == 0 {
				return fmt.Errorf("job %s has written nothing on B", id)
			}
			return nil
		})
		time.Sleep(time.Second)
		got := readOutput(m, outDir, o.p)
		oa, ob := got["a"], got["b"]
		if oa.lines == 0 || ob.lines == 0 {
			m.Fatalf("migrate %s: %d lines from A, %d from B", id, oa.lines, ob.lines)
		}
		// Stopped with a savepoint, A wrote every record before the
		// savepoint's barrier and B resumes each source subtask's numbers
		// from the next one.
		for k := range int64(o.p) {
			if ob.minI[k] != oa.maxI[k]+int64(o.p) {
				m.Fatalf("migrate %s: source subtask %d's last record on A is %d and its first on B %d, want %d: the job did not resume from the savepoint",
					id, k, oa.maxI[k], ob.minI[k], oa.maxI[k]+int64(o.p))
			}
		}
		s.pause = time.Duration(ob.first - oa.last)
		s.lastA = time.Duration(oa.last - start.UnixNano())
		s.firstB = time.Duration(ob.first - start.UnixNano())
		s.linesA, s.linesB = oa.lines, ob.lines
		var parts []string
		for _, st := range s.steps {
			parts = append(parts, fmt.Sprintf("%s %s", st.name, ms(st.took)))
		}
		fmt.Printf("migration run %d: pause %s (last output on A %s, first on B %s after the command started); `eddy migrate` %s: %s; savepoint %d bytes in %s; %d lines written on A, %d on B so far (job %s on B), every source subtask resumed on B after its last record on A\n",
			run, ms(s.pause), ms(s.lastA), ms(s.firstB), ms(s.wall), strings.Join(parts, ", "), s.spBytes, s.spTook, s.linesA, s.linesB, s.targetJob)
		out = append(out, s)
		cancelJob(m, b, s.targetJob, o.timeout)
		if !o.keep {
			_ = os.RemoveAll(outDir)
			_ = os.RemoveAll(filepath.Join(spBase, id))
		}
	}
	a.Close()
	b.Close()
	return out
}

// output is what one cluster's sink subtasks wrote.
type output struct {
	lines       int
	first, last int64 // Unix ns
	// minI and maxI are the smallest and largest record numbers written,
	// by source subtask (i mod p).
	minI, maxI map[int64]int64
}

// readOutput reads the stamped lines of the job's output files, by the
// cluster named in their names.
func readOutput(m *procs.Main, dir string, p int) map[string]output {
	res := map[string]output{}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return res
	}
	if err != nil {
		m.Fatalf("%v", err)
	}
	for _, e := range entries {
		f := strings.Split(e.Name(), "-")
		if len(f) != 4 || f[0] != "out" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			m.Fatalf("%v", err)
		}
		o := res[f[1]]
		if o.minI == nil {
			o.minI, o.maxI = map[int64]int64{}, map[int64]int64{}
		}
		for _, l := range strings.Split(string(b), "\n") {
			fields := strings.Fields(l)
			if len(fields) != 3 {
				continue // the end, or a line being written
			}
			t, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				continue
			}
			i, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				continue
			}
			k := i % int64(p)
			if v, ok := o.minI[k]; !ok || i < v {
				o.minI[k] = i
			}
			if v, ok := o.maxI[k]; !ok || i > v {
				o.maxI[k] = i
			}
			if o.lines == 0 || t < o.first {
				o.first = t
			}
			o.last = max(o.last, t)
			o.lines++
		}
		res[f[1]] = o
	}
	return res
}

func waitJob(m *procs.Main, c *procs.Cluster, id string, timeout time.Duration, status string) {
	cl := c.Client()
	procs.WaitFor(m, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		j, err := cl.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.Status != status {
			return fmt.Errorf("job %s is %s, not %s (%s)", id, j.Status, status, j.StatusReason)
		}
		return nil
	})
}

// cancelJob cancels a job and waits until every worker's slots are free.
func cancelJob(m *procs.Main, c *procs.Cluster, id string, timeout time.Duration) {
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := cl.Cancel(ctx, id)
	cancel()
	if err != nil {
		m.Fatalf("cancel %s: %v", id, err)
	}
	waitJob(m, c, id, timeout, "CANCELED")
	procs.WaitFor(m, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ws, err := cl.Workers(ctx)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.Status != "ALIVE" || w.SlotsFree != w.Slots {
				return fmt.Errorf("worker %s is %s with %d of %d slots free", w.ID, w.Status, w.SlotsFree, w.Slots)
			}
		}
		return nil
	})
}

// dirBytes returns the bytes and number of the files under dir.
func dirBytes(m *procs.Main, dir string) (int64, int) {
	var n int64
	files := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		files++
		return nil
	})
	if err != nil {
		m.Fatalf("size of %s: %v", dir, err)
	}
	return n, files
}

func reportSavepoints(o options, size int, s []spSample) {
	pick := func(f func(spSample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, x := range s {
			out = append(out, f(x))
		}
		return out
	}
	var sizes, disk []int64
	for _, x := range s {
		sizes = append(sizes, x.size)
		disk = append(disk, x.onDisk)
	}
	fmt.Printf("state %d MiB (%d keys x %d bytes), %d savepoints:\n", size, int64(size)*mib/int64(o.value), o.value, len(s))
	fmt.Printf("  savepoint duration (REST record): %s\n", stats(pick(func(x spSample) time.Duration { return x.record })))
	fmt.Printf("  `eddy savepoint` wall time:       %s\n", stats(pick(func(x spSample) time.Duration { return x.wall })))
	fmt.Printf("  size (REST size_bytes):           %s\n", byteStats(sizes))
	fmt.Printf("  size on disk:                     %s\n", byteStats(disk))
}

func reportMigrations(o options, s []migSample) {
	pick := func(f func(migSample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, x := range s {
			out = append(out, f(x))
		}
		return out
	}
	var sizes []int64
	for _, x := range s {
		sizes = append(sizes, x.spBytes)
	}
	fmt.Printf("migration, %d runs (%d keys x %d bytes of state, %.0f records/s):\n", len(s), o.migrateKeys, o.value, o.migrateRate)
	fmt.Printf("  pause, last output on A to first on B: %s\n", stats(pick(func(x migSample) time.Duration { return x.pause })))
	fmt.Printf("  `eddy migrate` wall time:              %s\n", stats(pick(func(x migSample) time.Duration { return x.wall })))
	for i, st := range migrateSteps {
		fmt.Printf("  step %-28s %s\n", st.name+":", stats(pick(func(x migSample) time.Duration { return x.steps[i].took })))
	}
	fmt.Printf("  savepoint size:                        %s\n", byteStats(sizes))
}

func stats(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	n := len(d)
	med := d[n/2]
	if n%2 == 0 {
		med = (d[n/2-1] + d[n/2]) / 2
	}
	return fmt.Sprintf("median %s, min %s, max %s (%d samples)", ms(med), ms(d[0]), ms(d[n-1]), n)
}

func byteStats(b []int64) string {
	if len(b) == 0 {
		return "no samples"
	}
	slices.Sort(b)
	n := len(b)
	med := b[n/2]
	if n%2 == 0 {
		med = (b[n/2-1] + b[n/2]) / 2
	}
	return fmt.Sprintf("median %s (%d bytes), min %s, max %s", human(med), med, human(b[0]), human(b[n-1]))
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fileURL is the file:// URL of a local path.
func fileURL(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}
