package server_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/eddy-streams/eddy/api"
	"github.com/eddy-streams/eddy/client"
	"github.com/eddy-streams/eddy/controlplane/cptest"
)

// The linearizability test drives the REST API with concurrent clients while
// a nemesis kills and isolates nodes, records every call with its invocation
// and response times, and asks porcupine whether some sequential order of the
// calls, consistent with real time, explains every answer.

type linOp uint8

const (
	opSubmit linOp = iota
	opCancel
	opGet
)

func (o linOp) String() string {
	return [...]string{"submit", "cancel", "get"}[o]
}

type linInput struct {
	op  linOp
	job string
}

// Answers of the API as the model sees them. A get answers the job's status
// name ("CREATED", "CANCELED") or resNotFound.
const (
	resOK             = "ok"
	resExists         = "exists"
	resNotFound       = "not_found"
	resNotCancellable = "not_cancellable"
	// resUnknown is a write whose outcome the client could not learn: it may
	// have taken effect at any moment after its call, or never. Its return
	// time is math.MaxInt64, as porcupine's etcd example does for timeouts.
	resUnknown = "unknown"
)

// Per-job states of the model. Without workers, a submitted job stays
// CREATED (the scheduler only updates its status reason).
const (
	stAbsent   = ""
	stCreated  = "CREATED"
	stCanceled = "CANCELED"
)

// jobModel is the sequential specification of submit, cancel and get, one
// job per partition: a job's state is a string and never depends on others.
var jobModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byJob := map[string][]porcupine.Operation{}
		for _, op := range h {
			j := op.Input.(linInput).job
			byJob[j] = append(byJob[j], op)
		}
		var out [][]porcupine.Operation
		for _, j := range slices.Sorted(maps.Keys(byJob)) {
			out = append(out, byJob[j])
		}
		return out
	},
	Init: func() any { return stAbsent },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(linInput), output.(string)
		switch in.op {
		case opSubmit:
			if st == stAbsent {
				return out == resOK || out == resUnknown, stCreated
			}
			return out == resExists || out == resUnknown, st
		case opCancel:
			switch st {
			case stAbsent:
				return out == resNotFound || out == resUnknown, st
			case stCreated:
				return out == resOK || out == resUnknown, stCanceled
			default:
				return out == resNotCancellable || out == resUnknown, st
			}
		default:
			if st == stAbsent {
				return out == resNotFound, st
			}
			return out == st, st
		}
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		return fmt.Sprintf("%s(%s) -> %s", in.op, in.job, output)
	},
	DescribeState: func(state any) string {
		if state == stAbsent {
			return "absent"
		}
		return state.(string)
	},
}

// history collects operations from every client.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	notes []porcupine.Annotation
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// note records a nemesis action, shown in the visualization.
func (h *history) note(t *testing.T, start int64, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.Logf("nemesis at %s: %s", time.Duration(start).Round(time.Millisecond), msg)
	h.mu.Lock()
	h.notes = append(h.notes, porcupine.Annotation{Tag: "nemesis", Start: start, End: h.now(), Description: msg})
	h.mu.Unlock()
}

// linClient runs random operations until stop is closed. Jobs come from a
// window of six ids that slides every 400 ms, so that submissions and
// cancellations collide but the history keeps having fresh jobs.
func linClient(h *history, cl *client.Client, seed uint64, id int, nextID *atomic.Int64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	for {
		select {
		case <-stop:
			return
		default:
		}
		window := int(time.Since(h.start) / (400 * time.Millisecond))
		in := linInput{job: fmt.Sprintf("lin-%03d", window+rng.IntN(6))}
		switch n := rng.IntN(100); {
		case n < 35:
			in.op = opSubmit
		case n < 60:
			in.op = opCancel
		default:
			in.op = opGet
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		call := h.now()
		out, err := linCall(ctx, cl, in)
		ret := h.now()
		cancel()
		switch {
		case err == nil:
			h.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
		case in.op == opGet:
			// A failed read changed nothing: leave it out of the history.
		default:
			h.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: resUnknown, Return: math.MaxInt64, Metadata: err.Error()})
			// The unknown write never ends, so this client goes on as a
			// new process, as Jepsen does after a crash.
			id = int(nextID.Add(1))
		}
		if err != nil {
			// Back off as a client honouring Retry-After would: while
			// there is no leader, nodes fail fast, and a flood of unknown
			// writes would only make the check exponentially slower.
			sleepRand(rng, 100*time.Millisecond, 250*time.Millisecond)
		} else {
			sleepRand(rng, 5*time.Millisecond, 25*time.Millisecond)
		}
	}
}

// linCall runs one operation and returns the model's view of its answer, or
// an error when the answer is not one the state machine gave.
func linCall(ctx context.Context, cl *client.Client, in linInput) (string, error) {
	var apiErr *client.Error
	switch in.op {
	case opSubmit:
		_, err := cl.Submit(ctx, api.SubmitJob{JobID: in.job, Name: "lin"})
		switch {
		case err == nil:
			return resOK, nil
		case errors.As(err, &apiErr) && apiErr.Code == "job_exists":
			return resExists, nil
		}
		return "", err
	case opCancel:
		_, err := cl.Cancel(ctx, in.job)
		switch {
		case err == nil:
			return resOK, nil
		case errors.As(err, &apiErr) && apiErr.Code == "job_not_found":
			return resNotFound, nil
		case errors.As(err, &apiErr) && apiErr.Code == "job_not_cancellable":
			return resNotCancellable, nil
		}
		return "", err
	default:
		j, err := cl.Job(ctx, in.job)
		switch {
		case err == nil:
			return j.Status, nil
		case errors.As(err, &apiErr) && apiErr.Code == "job_not_found":
			return resNotFound, nil
		}
		return "", err
	}
}

// kill stops a node, failing the test rather than hanging it when the node's
// Close never returns: a Raft apply future whose entry was committed but not
// yet applied at shutdown is never answered (hashicorp/raft#498), and the
// node's leadership waits for it.
func kill(t *testing.T, c *cptest.Cluster, id string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Kill(id)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("kill %s: Close did not return within 15s", id)
	}
}

func sleepRand(rng *rand.Rand, lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(rng.Int64N(int64(hi-lo))))
}

func TestLinearizability(t *testing.T) {
	const clients = 5
	duration := 8 * time.Second
	if testing.Short() {
		duration = 4 * time.Second
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	c := cptest.TestCluster(t, 3)
	addrs := c.HTTPAddrs()
	h := &history{start: time.Now()}

	// The clients stop at the end of the test at the latest, also when the
	// nemesis fails it, before the cluster shuts down (cleanups run last in,
	// first out).
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopClients := func() { stopOnce.Do(func() { close(stop) }) }
	var wg sync.WaitGroup
	t.Cleanup(func() { stopClients(); wg.Wait() })
	var nextID atomic.Int64
	nextID.Store(clients - 1)
	for i := range clients {
		rotated := append(slices.Clone(addrs[i%len(addrs):]), addrs[:i%len(addrs)]...)
		cl := client.New(rotated)
		wg.Go(func() { linClient(h, cl, seed, i, &nextID, stop) })
	}

	// The nemesis runs on the test goroutine, because the cluster helpers
	// fail the test when the cluster does not recover.
	leaders := map[string]bool{}
	seen := func() {
		leaders[string(c.Leader().ID())] = true
	}
	deadline := h.start.Add(duration)
	for step := 0; ; step++ {
		sleepRand(rng, time.Second, 1500*time.Millisecond)
		if time.Now().After(deadline) {
			break
		}
		leader := string(c.Leader().ID())
		leaders[leader] = true
		at := h.now()
		switch step % 3 {
		case 0:
			kill(t, c, leader)
			seen() // the two others have a quorum
			sleepRand(rng, 200*time.Millisecond, 500*time.Millisecond)
			c.Restart(leader)
			h.note(t, at, "kill leader %s, restart it", leader)
		case 1:
			c.Partition(leader)
			sleepRand(rng, 300*time.Millisecond, 700*time.Millisecond)
			seen()
			c.Heal()
			h.note(t, at, "isolate leader %s, heal", leader)
		default:
			ids := c.IDs()
			victim := ids[rng.IntN(len(ids))]
			c.Partition(victim)
			sleepRand(rng, 500*time.Millisecond, 900*time.Millisecond)
			c.Heal()
			h.note(t, at, "isolate %s, heal", victim)
		}
	}
	c.Heal()
	seen()
	// A calm tail: the history must also show the cluster working again.
	time.Sleep(500 * time.Millisecond)
	stopClients()
	wg.Wait()

	h.mu.Lock()
	ops, notes := slices.Clone(h.ops), slices.Clone(h.notes)
	h.mu.Unlock()
	var reads, writes, submitted, cancelled, unknown int
	for _, op := range ops {
		in, out := op.Input.(linInput), op.Output.(string)
		switch {
		case out == resUnknown:
			unknown++
		case in.op == opGet:
			reads++
		default:
			writes++
			submitted += btoi(in.op == opSubmit && out == resOK)
			cancelled += btoi(in.op == opCancel && out == resOK)
		}
	}
	t.Logf("history: %d operations: %d reads, %d writes with a known outcome (%d submitted, %d cancelled), %d unknown; leaders %v; took %s",
		len(ops), reads, writes, submitted, cancelled, unknown, slices.Sorted(maps.Keys(leaders)), time.Since(h.start).Round(time.Millisecond))

	checkStart := time.Now()
	pruned := pruneNoops(ops)
	res, info := porcupine.CheckOperationsVerbose(jobModel, pruned, 30*time.Second)
	t.Logf("porcupine: %s for %d operations (%d unknown writes pruned as certain no-ops) in %s",
		res, len(pruned), len(ops)-len(pruned), time.Since(checkStart).Round(time.Millisecond))
	if res != porcupine.Ok {
		info.AddAnnotations(notes)
		f, err := os.CreateTemp("", "eddy-linearizability-*.html")
		if err != nil {
			t.Fatalf("history is %s; cannot write visualization: %v", res, err)
		}
		_ = f.Close()
		if err := porcupine.VisualizePath(jobModel, info, f.Name()); err != nil {
			t.Errorf("write visualization: %v", err)
		}
		logIllegalJobs(t, pruned)
		t.Fatalf("history is %s (seed %d); visualization: %s", res, seed, f.Name())
	}

	if reads < 20 || writes < 20 || submitted < 3 || cancelled < 1 {
		t.Errorf("history too thin to mean anything: %d reads, %d writes, %d submitted, %d cancelled", reads, writes, submitted, cancelled)
	}
	if len(leaders) < 2 {
		t.Errorf("leadership never moved: leaders %v", slices.Sorted(maps.Keys(leaders)))
	}
}

// pruneNoops drops unknown writes that cannot change anything wherever they
// are linearized, which keeps the search small: each unknown write stays
// pending to the end of the history, and the checker tries it at every point.
// A job's state only moves forward (absent, CREATED, CANCELED), so an unknown
// submission invoked after an answer proved the job exists, or an unknown
// cancellation invoked after an answer proved it CANCELED, is a no-op in
// every linearization; the model accepts "unknown" from both. Dropping an
// unknown write can never hide a violation (it could always have been
// linearized last), and dropping a no-op cannot invent one.
func pruneNoops(ops []porcupine.Operation) []porcupine.Operation {
	existsAt, canceledAt := map[string]int64{}, map[string]int64{}
	first := func(m map[string]int64, job string, at int64) {
		if v, ok := m[job]; !ok || at < v {
			m[job] = at
		}
	}
	for _, op := range ops {
		in, out := op.Input.(linInput), op.Output.(string)
		if out == resUnknown || out == resNotFound {
			continue
		}
		first(existsAt, in.job, op.Return)
		if out == stCanceled || out == resNotCancellable || (in.op == opCancel && out == resOK) {
			first(canceledAt, in.job, op.Return)
		}
	}
	var kept []porcupine.Operation
	for _, op := range ops {
		in := op.Input.(linInput)
		if op.Output == resUnknown {
			// Intervals are closed: an operation invoked exactly when the
			// proof returned is concurrent with it, so keep it.
			if at, ok := existsAt[in.job]; ok && in.op == opSubmit && op.Call > at {
				continue
			}
			if at, ok := canceledAt[in.job]; ok && in.op == opCancel && op.Call > at {
				continue
			}
		}
		kept = append(kept, op)
	}
	return kept
}

// logIllegalJobs checks each job on its own and logs the operations of those
// whose history no order explains.
func logIllegalJobs(t *testing.T, ops []porcupine.Operation) {
	t.Helper()
	for _, part := range jobModel.Partition(ops) {
		res := porcupine.CheckOperationsTimeout(jobModel, part, 5*time.Second)
		if res == porcupine.Ok {
			continue
		}
		sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
		var b strings.Builder
		for _, op := range part {
			ret := "never"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).Round(time.Microsecond).String()
			}
			fmt.Fprintf(&b, "\n  client %d [%s, %s] %s", op.ClientId,
				time.Duration(op.Call).Round(time.Microsecond), ret, jobModel.DescribeOperation(op.Input, op.Output))
			if op.Metadata != nil {
				fmt.Fprintf(&b, " (%v)", op.Metadata)
			}
		}
		t.Errorf("job %s: %s:%s", part[0].Input.(linInput).job, res, b.String())
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestLinearizabilityModel shows that the model tells legal histories from
// illegal ones, so that a passing TestLinearizability means something.
func TestLinearizabilityModel(t *testing.T) {
	op := func(client int, o linOp, out string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: linInput{op: o, job: "j"}, Call: call, Output: out, Return: ret}
	}
	never := int64(math.MaxInt64)
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"submit cancel get", []porcupine.Operation{
			op(0, opSubmit, resOK, 0, 10), op(0, opCancel, resOK, 20, 30), op(1, opGet, stCanceled, 40, 50),
		}, porcupine.Ok},
		{"get sees CANCELED before any cancel was invoked", []porcupine.Operation{
			op(1, opGet, stCanceled, 0, 10), op(0, opSubmit, resOK, 20, 30), op(0, opCancel, resOK, 40, 50),
		}, porcupine.Illegal},
		{"stale read after an acknowledged cancel", []porcupine.Operation{
			op(0, opSubmit, resOK, 0, 10), op(0, opCancel, resOK, 20, 30), op(1, opGet, stCreated, 40, 50),
		}, porcupine.Illegal},
		{"concurrent get may see either state", []porcupine.Operation{
			op(0, opSubmit, resOK, 0, 10), op(0, opCancel, resOK, 20, 30), op(1, opGet, stCreated, 25, 50),
		}, porcupine.Ok},
		{"exists without any submission", []porcupine.Operation{
			op(0, opSubmit, resExists, 0, 10),
		}, porcupine.Illegal},
		{"two submissions both succeed", []porcupine.Operation{
			op(0, opSubmit, resOK, 0, 10), op(1, opSubmit, resOK, 5, 15),
		}, porcupine.Illegal},
		{"unknown submission took effect", []porcupine.Operation{
			op(0, opSubmit, resUnknown, 0, never), op(1, opSubmit, resExists, 20, 30), op(1, opGet, stCreated, 40, 50),
		}, porcupine.Ok},
		{"unknown submission never took effect", []porcupine.Operation{
			op(0, opSubmit, resUnknown, 0, never), op(1, opGet, resNotFound, 20, 30),
		}, porcupine.Ok},
		{"unknown submission took effect after a read saw it", []porcupine.Operation{
			op(0, opSubmit, resUnknown, 0, never), op(1, opGet, stCreated, 20, 30), op(1, opGet, resNotFound, 40, 50),
		}, porcupine.Illegal},
		{"unknown writes after the job was cancelled", []porcupine.Operation{
			op(0, opSubmit, resOK, 0, 10), op(0, opCancel, resOK, 20, 30),
			op(0, opSubmit, resUnknown, 40, never), op(1, opCancel, resUnknown, 45, never), op(2, opGet, stCanceled, 50, 60),
		}, porcupine.Ok},
		{"stale read after an acknowledged cancel and unknown writes", []porcupine.Operation{
			op(0, opSubmit, resOK, 0, 10), op(0, opCancel, resOK, 20, 30),
			op(0, opSubmit, resUnknown, 40, never), op(1, opCancel, resUnknown, 45, never), op(2, opGet, stCreated, 50, 60),
		}, porcupine.Illegal},
		{"cancel of a job never submitted", []porcupine.Operation{
			op(0, opCancel, resNotCancellable, 0, 10),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(jobModel, tt.ops, 5*time.Second); got != tt.want {
				t.Fatalf("check = %s, want %s", got, tt.want)
			}
			if got := porcupine.CheckOperationsTimeout(jobModel, pruneNoops(tt.ops), 5*time.Second); got != tt.want {
				t.Fatalf("check after pruning = %s, want %s", got, tt.want)
			}
		})
	}
}
