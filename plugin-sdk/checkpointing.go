package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// This file carries an attempt's checkpoints between the engine and
// storage: the snapshots tasks take are written, off the tasks'
// goroutines, one state file per operator subtask into the checkpoint's
// directory, and acknowledged on the Events stream; a restore reads the
// checkpoint's _metadata once and gives every operator subtask its key
// groups and its share of the operator state items. The layout is
// storage/checkpoint's (docs/savepoint-format.md).

// maxWriters bounds how many state files an attempt writes at once.
const maxWriters = 4

// maxCheckpointDirs bounds the directories remembered for checkpoints that
// were triggered and neither completed nor aborted (a control plane that
// failed over does not abort the checkpoints it forgot).
const maxCheckpointDirs = 64

// stateWriter writes the snapshots of one attempt's tasks to storage and
// acknowledges them. Its onSnapshot and onDecline never block.
type stateWriter struct {
	ctx     context.Context // the attempt's: writes stop when it ends
	base    string          // the job's checkpoint directory URL; "" if none
	emit    func(*pluginpb.TaskEvent)
	queue   chan *engine.TaskSnapshot
	writers sync.WaitGroup

	mu     sync.Mutex
	closed bool
	dirs   map[uint64]string        // checkpoint id -> directory URL, from triggers
	stores map[string]storage.Store // opened stores, by URL
}

func newStateWriter(ctx context.Context, base string, tasks int, emit func(*pluginpb.TaskEvent)) *stateWriter {
	w := &stateWriter{ctx: ctx, base: strings.TrimRight(base, "/"), emit: emit,
		// A task has rarely more than one snapshot in flight; more than two
		// each means storage is far behind, and holding more copies of the
		// state would only cost memory.
		queue: make(chan *engine.TaskSnapshot, 2*tasks+2),
		dirs:  map[uint64]string{}, stores: map[string]storage.Store{}}
	for range min(tasks, maxWriters) {
		w.writers.Add(1)
		go w.run()
	}
	return w
}

// triggered records where checkpoint id's state goes.
func (w *stateWriter) triggered(id uint64, url string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dirs[id] = strings.TrimRight(url, "/")
	for len(w.dirs) > maxCheckpointDirs {
		oldest := id
		for i := range w.dirs {
			oldest = min(oldest, i)
		}
		delete(w.dirs, oldest)
	}
}

// ended forgets checkpoint id's directory: it completed or was aborted.
func (w *stateWriter) ended(id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.dirs, id)
}

func (w *stateWriter) dir(id uint64) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	url, ok := w.dirs[id]
	return url, ok
}

// onSnapshot is the executor's OnSnapshot: it queues the snapshot for the
// writers, or declines the checkpoint when storage is too far behind.
func (w *stateWriter) onSnapshot(s *engine.TaskSnapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		s.Release()
		return
	}
	select {
	case w.queue <- s:
	default:
		s.Release()
		w.decline(s.Task, s.Checkpoint.ID, fmt.Errorf("%d snapshots are waiting to be written: storage is too slow for the checkpoint interval", len(w.queue)))
	}
}

// onDecline is the executor's OnDecline.
func (w *stateWriter) onDecline(k engine.TaskKey, id uint64, err error) {
	w.decline(k, id, err)
}

func (w *stateWriter) decline(k engine.TaskKey, id uint64, err error) {
	msg := "declined"
	if err != nil {
		msg = err.Error()
	}
	w.emit(&pluginpb.TaskEvent{Task: wireTask(k), AtMs: time.Now().UnixMilli(),
		Ack: &pluginpb.CheckpointAck{CheckpointId: id, Error: msg}})
}

// close stops taking snapshots; the writers finish what is queued (or drop
// it, once the attempt's context ended) and exit.
func (w *stateWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	w.writers.Wait()
}

func (w *stateWriter) run() {
	defer w.writers.Done()
	for s := range w.queue {
		if w.ctx.Err() != nil {
			s.Release()
			continue // the attempt ended: nobody waits for the ack
		}
		start := time.Now()
		ops, err := w.write(s)
		if err != nil {
			s.Release()
			if w.ctx.Err() == nil {
				w.decline(s.Task, s.Checkpoint.ID, err)
			}
			continue
		}
		w.emit(&pluginpb.TaskEvent{Task: wireTask(s.Task), AtMs: time.Now().UnixMilli(), Ack: &pluginpb.CheckpointAck{
			CheckpointId: s.Checkpoint.ID,
			Operators:    ops,
			SyncMs:       s.SyncNanos / int64(time.Millisecond),
			AsyncMs:      time.Since(start).Milliseconds(),
		}})
	}
}

// write writes one state file per operator of the snapshot that holds
// state, and describes them.
func (w *stateWriter) write(s *engine.TaskSnapshot) ([]*pluginpb.OperatorSubtaskState, error) {
	id := s.Checkpoint.ID
	url, ok := w.dir(id)
	if !ok {
		return nil, fmt.Errorf("checkpoint %d: no directory to write to (it was not triggered through this plugin, or it already ended)", id)
	}
	vs := make([]*engine.Vertex, 0, len(s.Operators))
	for v := range s.Operators {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
	// The in-memory state backend's blobs are written here, off the
	// task's goroutine, from the state it froze.
	if err := s.Materialize(); err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", id, err)
	}
	var st storage.Store
	var prefix string
	ops := make([]*pluginpb.OperatorSubtaskState, 0, len(vs))
	for _, v := range vs {
		snap := s.Operators[v]
		o := &pluginpb.OperatorSubtaskState{Uid: v.UID, Subtask: uint32(s.Task.Subtask)}
		ops = append(ops, o)
		if snap.Empty() {
			continue
		}
		if st == nil {
			var err error
			if st, prefix, err = w.store(url); err != nil {
				return nil, fmt.Errorf("checkpoint %d: %w", id, err)
			}
		}
		b := encodeStateFile(snap, o)
		if snap.Incremental != nil {
			// The files go beside the checkpoint's directory, in the job's
			// shared one, where later checkpoints reference them; the
			// manifest ends the state file.
			jst, chk, err := w.jobStore(url)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: %w", id, err)
			}
			m, files, _, err := snap.Incremental.Upload(w.ctx, jst, "shared/"+chk)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: upload the state of operator %q subtask %d: %w", id, v.UID, s.Task.Subtask, err)
			}
			b = append(b, m...)
			for _, f := range files {
				o.Shared = append(o.Shared, "../"+f)
			}
		}
		o.File = checkpoint.StateFileName(v.UID, s.Task.Subtask)
		info, err := st.Put(w.ctx, prefix+o.File, bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d: write the state of operator %q subtask %d: %w", id, v.UID, s.Task.Subtask, err)
		}
		o.Size = info.Size
	}
	return ops, nil
}

// encodeStateFile concatenates a snapshot's key-group blobs, in key-group
// order, and its items, and records where each is in o.
func encodeStateFile(snap *engine.OperatorSnapshot, o *pluginpb.OperatorSubtaskState) []byte {
	n := 0
	groups := make([]int, 0, len(snap.KeyGroups))
	for g, b := range snap.KeyGroups {
		groups = append(groups, g)
		n += len(b)
	}
	sort.Ints(groups)
	for _, it := range snap.Items {
		n += len(it)
	}
	buf := make([]byte, 0, n)
	for _, g := range groups {
		b := snap.KeyGroups[g]
		o.KeyGroups = append(o.KeyGroups, &pluginpb.KeyGroupSlice{KeyGroup: uint32(g), Offset: int64(len(buf)), Length: int64(len(b))})
		buf = append(buf, b...)
	}
	for _, it := range snap.Items {
		o.Items = append(o.Items, &pluginpb.Slice{Offset: int64(len(buf)), Length: int64(len(it))})
		buf = append(buf, it...)
	}
	return buf
}

// store returns the store of a checkpoint directory, and the prefix of its
// names there: directories under the job's checkpoint directory share its
// store, others (savepoints) get their own.
func (w *stateWriter) store(url string) (storage.Store, string, error) {
	key, prefix := url, ""
	if w.base != "" && strings.HasPrefix(url, w.base+"/") {
		key, prefix = w.base, strings.TrimPrefix(url, w.base+"/")+"/"
	}
	w.mu.Lock()
	st := w.stores[key]
	w.mu.Unlock()
	if st != nil {
		return st, prefix, nil
	}
	st, err := storage.Open(w.ctx, key)
	if err != nil {
		return nil, "", err
	}
	w.mu.Lock()
	w.stores[key] = st
	w.mu.Unlock()
	return st, prefix, nil
}

// jobStore returns the store of the directory that holds checkpoint
// directory url (the job's checkpoint directory), and url's name in it.
func (w *stateWriter) jobStore(url string) (storage.Store, string, error) {
	i := strings.LastIndex(url, "/")
	if i < 0 || strings.HasSuffix(url[:i], "/") {
		return nil, "", fmt.Errorf("checkpoint directory %s has no parent for shared state", url)
	}
	parent, name := url[:i], url[i+1:]
	if w.base != "" && parent == w.base {
		st, _, err := w.store(url)
		return st, name, err
	}
	w.mu.Lock()
	st := w.stores[parent]
	w.mu.Unlock()
	if st != nil {
		return st, name, nil
	}
	st, err := storage.Open(w.ctx, parent)
	if err != nil {
		return nil, "", err
	}
	w.mu.Lock()
	w.stores[parent] = st
	w.mu.Unlock()
	return st, name, nil
}

func wireTask(k engine.TaskKey) *pluginpb.TaskID {
	return &pluginpb.TaskID{JobId: k.JobID, Chain: uint32(k.Chain), Subtask: uint32(k.Subtask), Attempt: k.Attempt}
}

// restorer is an attempt's engine.Restorer: it reads the checkpoint's
// _metadata once, each state file it needs once, and hands every operator
// subtask its part. A state file is dropped once every subtask of this
// process that needs it has taken its part.
type restorer struct {
	ctx              context.Context
	url              string
	allowNonRestored bool
	plan             *engine.Plan
	key              engine.TaskKey // the job and attempt; chain and subtask unused
	tasks            []engine.TaskKey
	chainOf          map[int]int // vertex id -> chain id

	mu     sync.Mutex
	loadMu sync.Once
	meta   *pluginpb.CheckpointMetadata
	st     storage.Store
	err    error
	files  map[string]*stateFile
	stores map[string]storage.Store // beside the checkpoint's, by URL ("../" names)
	failed map[engine.TaskKey]bool  // tasks whose restore could not read the checkpoint
}

// stateFile is one state file, read once.
type stateFile struct {
	ready   chan struct{} // closed when b or err is set
	reading bool          // a subtask reads it (guarded by restorer.mu)
	b       []byte
	err     error
	refs    int // subtasks of this process yet to take their part (guarded by restorer.mu)
}

func newRestorer(ctx context.Context, spec *pluginpb.RestoreSpec, plan *engine.Plan, jobID string, attempt uint64, tasks []engine.TaskKey) *restorer {
	r := &restorer{ctx: ctx, url: spec.GetUrl(), allowNonRestored: spec.GetAllowNonRestoredState(), plan: plan,
		key: engine.TaskKey{JobID: jobID, Attempt: attempt}, tasks: tasks, chainOf: map[int]int{},
		files: map[string]*stateFile{}, stores: map[string]storage.Store{}, failed: map[engine.TaskKey]bool{}}
	for _, c := range plan.Chains {
		for _, v := range c.Vertices {
			r.chainOf[v.ID] = c.ID
		}
	}
	return r
}

// readFailure reports whether err means the checkpoint's files could not
// be read as written (missing, failing their checksum, corrupt): a restore
// from an earlier checkpoint may succeed.
func readFailure(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrChecksum) ||
		errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, checkpoint.ErrNotMetadata)
}

// restoreFailed reports whether task k, which failed with err, failed
// because it could not read the checkpoint it restores from: the restorer
// failed it so, or err is the engine's restore error with such a cause.
// Other errors of the same kinds (a sink's own storage, say) do not count.
func (r *restorer) restoreFailed(k engine.TaskKey, err error) bool {
	if r == nil {
		return false
	}
	if re := (*engine.RestoreError)(nil); errors.As(err, &re) && readFailure(re) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed[k]
}

// load reads the metadata, checks that the job can take it, and counts
// which state files the subtasks of this process read.
func (r *restorer) load() error {
	r.loadMu.Do(func() {
		st, err := storage.Open(r.ctx, r.url)
		if err != nil {
			r.err = fmt.Errorf("restore from %s: %w", r.url, err)
			return
		}
		m, err := checkpoint.ReadMetadata(r.ctx, st, "")
		if err != nil {
			r.err = fmt.Errorf("restore: %w", err)
			return
		}
		uids := make([]string, 0, len(r.plan.Vertices))
		for _, v := range r.plan.Vertices {
			uids = append(uids, v.UID)
		}
		if err := checkpoint.Validate(m, r.plan.MaxParallelism, uids, r.allowNonRestored); err != nil {
			r.err = fmt.Errorf("restore from %s: %w", r.url, err)
			return
		}
		refs := map[string]int{}
		for _, k := range r.tasks {
			c := r.plan.Chains[k.Chain]
			for _, v := range c.Vertices {
				a, err := checkpoint.Assign(m, v.UID, k.Subtask, c.Parallelism, r.groups(k.Subtask, c.Parallelism), r.plan.MaxParallelism)
				if err != nil {
					r.err = fmt.Errorf("restore from %s: %w", r.url, err)
					return
				}
				if a != nil {
					for f := range a.Sizes {
						refs[f]++
					}
				}
			}
		}
		r.mu.Lock()
		for f, n := range refs {
			r.files[f] = &stateFile{ready: make(chan struct{}), refs: n}
		}
		r.mu.Unlock()
		r.meta, r.st = m, st
	})
	return r.err
}

func (r *restorer) groups(subtask, parallelism int) checkpoint.KeyGroupRange {
	g := keygroup.For(subtask, r.plan.MaxParallelism, parallelism)
	return checkpoint.KeyGroupRange{Start: g.Start, End: g.End}
}

// restore is the executor's Restore.
func (r *restorer) restore(v *engine.Vertex, subtask, parallelism int, groups keygroup.Range) (snap *engine.OperatorSnapshot, err error) {
	k := r.key
	k.Chain, k.Subtask = r.chainOf[v.ID], subtask
	defer func() {
		if err != nil && readFailure(err) {
			r.mu.Lock()
			r.failed[k] = true
			r.mu.Unlock()
		}
	}()
	if err := r.load(); err != nil {
		return nil, err
	}
	a, err := checkpoint.Assign(r.meta, v.UID, subtask, parallelism,
		checkpoint.KeyGroupRange{Start: groups.Start, End: groups.End}, r.plan.MaxParallelism)
	if err != nil {
		return nil, fmt.Errorf("restore operator %q subtask %d from %s: %w", v.UID, subtask, r.url, err)
	}
	if a == nil {
		return nil, nil
	}
	data := map[string][]byte{}
	for _, f := range a.Files() {
		b, err := r.file(f, a.Sizes[f])
		if err != nil {
			return nil, fmt.Errorf("restore operator %q subtask %d: %w", v.UID, subtask, err)
		}
		data[f] = b
	}
	snap = &engine.OperatorSnapshot{}
	if len(a.KeyGroups) > 0 {
		snap.KeyGroups = make(map[int][]byte, len(a.KeyGroups))
		for _, p := range a.KeyGroups {
			snap.KeyGroups[p.KeyGroup] = data[p.File][p.Offset : p.Offset+p.Length : p.Offset+p.Length]
		}
	}
	for _, p := range a.Items {
		snap.Items = append(snap.Items, data[p.File][p.Offset:p.Offset+p.Length:p.Offset+p.Length])
	}
	if len(a.Incremental) > 0 {
		// Manifests name their files relative to the job's checkpoint
		// directory, the parent of the checkpoint's.
		st, _, err := r.storeOf("../" + checkpoint.MetadataName)
		if err != nil {
			return nil, fmt.Errorf("restore operator %q subtask %d: %w", v.UID, subtask, err)
		}
		for _, p := range a.Incremental {
			snap.Restored = append(snap.Restored, engine.RestoredIncremental{
				State: data[p.File][p.Offset : p.Offset+p.Length : p.Offset+p.Length], Store: st})
		}
	}
	return snap, nil
}

// file returns the content of a state file, reading it on first use, and
// lets it go when the last subtask of this process that needs it has it.
func (r *restorer) file(name string, size int64) ([]byte, error) {
	r.mu.Lock()
	f := r.files[name]
	if f == nil {
		// A subtask the count did not foresee: read it for itself.
		f = &stateFile{ready: make(chan struct{}), refs: 1}
		r.files[name] = f
	}
	first := !f.reading
	f.reading = true
	r.mu.Unlock()
	if first {
		f.b, f.err = r.read(name, size)
		close(f.ready)
	}
	<-f.ready
	r.mu.Lock()
	f.refs--
	if f.refs <= 0 && r.files[name] == f {
		delete(r.files, name)
	}
	r.mu.Unlock()
	return f.b, f.err
}

func (r *restorer) read(name string, size int64) ([]byte, error) {
	st, rel, err := r.storeOf(name)
	if err != nil {
		return nil, err
	}
	rc, _, err := st.Open(r.ctx, rel)
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w", st.URL(rel), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc) // reading to the end checks the checksum
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w", st.URL(rel), err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("state file %s: %w: %d bytes, the metadata records %d", st.URL(rel), checkpoint.ErrCorrupt, len(b), size)
	}
	return b, nil
}

// storeOf returns the store that holds a state file and its name there. A
// name is relative to the checkpoint's directory; one that starts with
// "../" is in a directory beside it (the state of a task that finished
// before this checkpoint, which the checkpoint carries over from an
// earlier one).
func (r *restorer) storeOf(name string) (storage.Store, string, error) {
	if !strings.HasPrefix(name, "../") {
		return r.st, name, nil
	}
	base := strings.TrimRight(r.url, "/")
	rel := name
	for strings.HasPrefix(rel, "../") {
		rel = rel[len("../"):]
		i := strings.LastIndex(base, "/")
		if i < 0 || strings.HasSuffix(base[:i], "/") {
			return nil, "", fmt.Errorf("state file %q: %w: it is outside the storage of %s", name, checkpoint.ErrCorrupt, r.url)
		}
		base = base[:i]
	}
	r.mu.Lock()
	st := r.stores[base]
	r.mu.Unlock()
	if st == nil {
		var err error
		if st, err = storage.Open(r.ctx, base); err != nil {
			return nil, "", fmt.Errorf("state file %s: %w", name, err)
		}
		r.mu.Lock()
		r.stores[base] = st
		r.mu.Unlock()
	}
	return st, rel, nil
}
