package sdk

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/storage"
)

// memCheckpoints runs attempts of a job in this process with checkpoints
// kept in memory: the coordinator of a cluster in miniature. An attempt's
// executor reports every task's snapshot; a checkpoint completes when
// every task of the attempt reported it, and the executor is told so. A
// later attempt, at any parallelism, restores from the last completed
// checkpoint as a cluster would: key groups to the subtasks that own them,
// items round robin.
type memCheckpoints struct {
	t      *testing.T
	mu     sync.Mutex
	nextID uint64
	parts  map[uint64][]*engine.TaskSnapshot // of the checkpoints in flight
	// expected are the tasks that were not finished when a checkpoint was
	// triggered; a task that finishes meanwhile is not waited for.
	expected map[uint64][]engine.TaskKey
	finished map[engine.TaskKey]bool
	// last is the latest completed checkpoint: the subtask snapshots of
	// every operator, by UID.
	last   map[string][]*engine.OperatorSnapshot
	lastID uint64
	// completed counts the checkpoints completed by the running attempt.
	completed int
	// shared holds the files of incremental snapshots (the Pebble state
	// backend), uploaded when the snapshot is reported; uploaded counts
	// the bytes each checkpoint uploaded.
	shared   storage.Store
	uploaded map[uint64]int64
}

func newMemCheckpoints(t *testing.T) *memCheckpoints {
	return &memCheckpoints{t: t, parts: map[uint64][]*engine.TaskSnapshot{}, uploaded: map[uint64]int64{}}
}

// upload uploads the incremental snapshots of s, as the plugin's state
// writer does, and keeps their manifests for restores.
func (m *memCheckpoints) upload(s *engine.TaskSnapshot) error {
	for v, os := range s.Operators {
		if os == nil || os.Incremental == nil {
			continue
		}
		m.mu.Lock()
		if m.shared == nil {
			st, err := storage.Open(context.Background(), "file://"+m.t.TempDir())
			if err != nil {
				m.mu.Unlock()
				return err
			}
			m.shared = st
		}
		st := m.shared
		m.mu.Unlock()
		b, _, n, err := os.Incremental.Upload(context.Background(), st, fmt.Sprintf("shared/chk-%d", s.Checkpoint.ID))
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.uploaded[s.Checkpoint.ID] += n
		m.mu.Unlock()
		c := *os
		c.Restored = []engine.RestoredIncremental{{State: b, Store: st}}
		s.Operators[v] = &c
	}
	return nil
}

// memAttempt is one running attempt.
type memAttempt struct {
	x      *engine.Executor
	cancel context.CancelFunc
	done   chan error
	stop   chan struct{} // stops the periodic checkpoints
	tasks  []engine.TaskKey
}

// start runs an attempt of job at parallelism p, restoring from the last
// completed checkpoint if restore, and triggering a checkpoint every
// interval until it ends.
func (m *memCheckpoints) start(job *Job, p int, attempt uint64, restore bool, interval time.Duration) *memAttempt {
	m.t.Helper()
	plan, err := job.plan(p)
	if err != nil {
		m.t.Fatal(err)
	}
	var tasks []engine.TaskKey
	for _, c := range plan.Chains {
		for s := range c.Parallelism {
			tasks = append(tasks, engine.TaskKey{JobID: "mem", Attempt: attempt, Chain: c.ID, Subtask: s})
		}
	}
	x := &engine.Executor{Plan: plan, JobID: "mem", Attempt: attempt, Exchange: engine.NewLocalExchange(), Checkpointing: true}
	m.mu.Lock()
	m.parts, m.completed = map[uint64][]*engine.TaskSnapshot{}, 0
	m.expected, m.finished = map[uint64][]engine.TaskKey{}, map[engine.TaskKey]bool{}
	if restore {
		x.Restore = m.restorer(m.last, plan.MaxParallelism)
	}
	m.mu.Unlock()
	report := func(s *engine.TaskSnapshot) {
		m.mu.Lock()
		m.parts[s.Checkpoint.ID] = append(m.parts[s.Checkpoint.ID], s)
		m.mu.Unlock()
		m.tryComplete(x, s.Checkpoint.ID)
	}
	x.OnSnapshot = func(s *engine.TaskSnapshot) {
		for _, os := range s.Operators {
			if os != nil && os.Deferred != nil {
				// Written off the task's goroutine while it runs on, as
				// the plugin does.
				go func() {
					if err := s.Materialize(); err != nil {
						m.t.Errorf("task %s: write checkpoint %d: %v", s.Task, s.Checkpoint.ID, err)
						return
					}
					report(s)
				}()
				return
			}
			if os != nil && os.Incremental != nil {
				// Uploaded off the task's goroutine, as the plugin does.
				go func() {
					if err := m.upload(s); err != nil {
						m.t.Logf("task %s: upload checkpoint %d: %v", s.Task, s.Checkpoint.ID, err)
						return
					}
					report(s)
				}()
				return
			}
		}
		report(s)
	}
	x.OnState = func(k engine.TaskKey, st engine.TaskState, _ error) {
		if st != engine.TaskFinished {
			return
		}
		m.mu.Lock()
		m.finished[k] = true
		var ids []uint64
		for id := range m.expected {
			ids = append(ids, id)
		}
		m.mu.Unlock()
		slices.Sort(ids)
		for _, id := range ids {
			m.tryComplete(x, id)
		}
	}
	x.OnDecline = func(k engine.TaskKey, id uint64, err error) {
		m.t.Logf("task %s declined checkpoint %d: %v", k, id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &memAttempt{x: x, cancel: cancel, done: make(chan error, 1), stop: make(chan struct{}), tasks: tasks}
	go func() { a.done <- x.Run(ctx, tasks) }()
	stop := a.stop
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				m.mu.Lock()
				if m.shared != nil && len(m.expected) > 0 {
					// Uploads of incremental state take longer than the
					// interval here: one checkpoint at a time, as the
					// coordinator does.
					m.mu.Unlock()
					continue
				}
				m.nextID++
				id := m.nextID
				for _, k := range tasks {
					if !m.finished[k] {
						m.expected[id] = append(m.expected[id], k)
					}
				}
				m.mu.Unlock()
				x.TriggerCheckpoint(engine.CheckpointOptions{ID: id, TimestampMs: time.Now().UnixMilli()})
			}
		}
	}()
	return a
}

// savepoint stops the periodic checkpoints of a and triggers one with
// options cp (its ID is set here), such as a stop with a savepoint.
func (m *memCheckpoints) savepoint(a *memAttempt, cp engine.CheckpointOptions) {
	a.stopCheckpoints()
	m.mu.Lock()
	m.nextID++
	cp.ID = m.nextID
	for _, k := range a.tasks {
		if !m.finished[k] {
			m.expected[cp.ID] = append(m.expected[cp.ID], k)
		}
	}
	m.mu.Unlock()
	a.x.TriggerCheckpoint(cp)
}

// tryComplete completes checkpoint id when every task it waits for
// reported its part or finished.
func (m *memCheckpoints) tryComplete(x *engine.Executor, id uint64) {
	m.mu.Lock()
	exp, ok := m.expected[id]
	if !ok || id <= m.lastID {
		m.mu.Unlock()
		return
	}
	reported := map[engine.TaskKey]bool{}
	for _, ts := range m.parts[id] {
		reported[ts.Task] = true
	}
	for _, k := range exp {
		if !reported[k] && !m.finished[k] {
			m.mu.Unlock()
			return
		}
	}
	last := map[string][]*engine.OperatorSnapshot{}
	for _, ts := range m.parts[id] {
		for v, os := range ts.Operators {
			subs := last[v.UID]
			if subs == nil {
				subs = make([]*engine.OperatorSnapshot, v.Parallelism)
				last[v.UID] = subs
			}
			subs[ts.Task.Subtask] = os
		}
	}
	// A task that finished before it reported holds nothing a restore
	// needs: it read or received everything, and committed it.
	for _, k := range exp {
		if reported[k] {
			continue
		}
		for _, v := range x.Plan.Chains[k.Chain].Vertices {
			if v.UID == "" {
				continue
			}
			if last[v.UID] == nil {
				last[v.UID] = make([]*engine.OperatorSnapshot, v.Parallelism)
			}
			if last[v.UID][k.Subtask] == nil {
				last[v.UID][k.Subtask] = &engine.OperatorSnapshot{}
			}
		}
	}
	for other := range m.parts {
		if other <= id {
			delete(m.parts, other)
		}
	}
	for other := range m.expected {
		if other <= id {
			delete(m.expected, other)
		}
	}
	m.last, m.lastID = last, id
	m.completed++
	m.mu.Unlock()
	x.NotifyCheckpointComplete(id)
}

// waitCompleted waits until the running attempt completed n checkpoints.
func (m *memCheckpoints) waitCompleted(a *memAttempt, n int) {
	m.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		c := m.completed
		m.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case err := <-a.done:
			m.t.Fatalf("the attempt ended (%v) after %d completed checkpoints, want %d", err, c, n)
		case <-time.After(time.Millisecond):
		}
	}
	m.t.Fatalf("%d checkpoints did not complete in time", n)
}

// kill cancels the attempt, as a failure would, and waits for its end.
// It returns the attempt's error, context.Canceled unless a task failed
// first.
func (a *memAttempt) kill() error {
	a.stopCheckpoints()
	a.cancel()
	return <-a.done
}

func (a *memAttempt) stopCheckpoints() {
	if a.stop != nil {
		close(a.stop)
		a.stop = nil
	}
}

// wait waits for the attempt to finish and returns its error.
func (a *memAttempt) wait(t *testing.T) error {
	t.Helper()
	defer a.stopCheckpoints()
	select {
	case err := <-a.done:
		return err
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Logf("%s", buf[:runtime.Stack(buf, true)])
		a.cancel()
		t.Fatalf("the attempt did not finish in time (then: %v)", <-a.done)
		return nil
	}
}

// restorer hands out a completed checkpoint as the convention says: an
// operator in it gets its key groups in groups and its share of the items
// (item i of the concatenation over old subtasks goes to subtask i mod
// parallelism); an operator not in it starts empty.
func (m *memCheckpoints) restorer(cp map[string][]*engine.OperatorSnapshot, maxP int) engine.Restorer {
	return func(v *engine.Vertex, subtask, parallelism int, groups keygroup.Range) (*engine.OperatorSnapshot, error) {
		subs, ok := cp[v.UID]
		if !ok || v.UID == "" {
			return nil, nil
		}
		out := &engine.OperatorSnapshot{KeyGroups: map[int][]byte{}}
		i := 0
		for _, s := range subs {
			if s == nil {
				return nil, fmt.Errorf("operator %s: a subtask is missing from the checkpoint", v.UID)
			}
			for kg, b := range s.KeyGroups {
				if groups.Contains(kg) {
					out.KeyGroups[kg] = b
				}
			}
			if s.Incremental != nil {
				if old := s.Incremental.Groups(); old.Start < groups.End && groups.Start < old.End {
					out.Restored = append(out.Restored, s.Restored...)
				}
			}
			for _, it := range s.Items {
				if i%parallelism == subtask {
					out.Items = append(out.Items, it)
				}
				i++
			}
		}
		return out, nil
	}
}

// testTaskContext is the context of subtask 0 of v alone, outside any
// task.
func testTaskContext(v *engine.Vertex) *engine.TaskContext {
	return &engine.TaskContext{JobName: "test", Vertex: v, Parallelism: 1, MaxParallelism: DefaultMaxParallelism,
		KeyGroups: keygroup.Range{Start: 0, End: DefaultMaxParallelism}, Ctx: context.Background(), Sides: map[string]any{}}
}

func restoredItems(items [][]byte) *engine.OperatorSnapshot {
	return &engine.OperatorSnapshot{Items: items}
}

func ckpt(id uint64) engine.CheckpointOptions { return engine.CheckpointOptions{ID: id} }
