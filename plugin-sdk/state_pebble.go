package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/pebblestate"
	"github.com/eddy-streams/eddy/storage"
)

// State backends. Keyed state lives in memory by default: per key group, a
// hash table of decoded values, the fastest there is, bounded by the
// plugin process's memory. The Pebble backend keeps it in a Pebble
// database on the worker's local disk instead, for state larger than
// memory, and checkpoints it incrementally: a checkpoint uploads only the
// database files that no completed earlier checkpoint uploaded.
//
// On Pebble, every state kind keeps one entry per key (and window, for the
// window operator's state): the stored key is the key group, a state id (a
// hash of the state's name) and the encoded key (pebblestate's layout), the
// stored value the entry's expiry (zigzag varint, 0: none) followed by the
// value in internal/codec, the layout of an entry in a key-group snapshot
// blob (snapshot.go). The entries a record reads or writes are decoded into
// a small write-back cache (the same tables as the in-memory backend), so
// that the state kinds work on either store unchanged; the cache is written
// to Pebble in one batch between records once it holds pebbleFlushEntries
// entries, and before every snapshot. Timers stay in memory on both
// backends and are snapshotted by key group with the state.

// EnvStateDir names the environment variable of the directory under which
// the Pebble backend keeps its databases (the worker's data directory); the
// system's temporary directory when unset.
const EnvStateDir = "EDDY_STATE_DIR"

// pebbleFlushEntries is how many entries the write-back cache of a Pebble
// backend holds before it is written out.
const pebbleFlushEntries = 512

// StateBackend says where a job's keyed state lives: InMemoryStateBackend
// (the default) or PebbleStateBackend. Set it with Job.SetStateBackend.
type StateBackend struct {
	pebble *pebbleConfig // nil: in memory
}

// InMemoryStateBackend keeps keyed state in the plugin process's memory.
func InMemoryStateBackend() StateBackend { return StateBackend{} }

// PebbleStateBackend keeps keyed state in a Pebble database per operator
// subtask on local disk, for state larger than memory, with incremental
// checkpoints. Savepoints are the same on both backends: a job can move
// from one to the other through a savepoint.
func PebbleStateBackend(opts ...PebbleOption) StateBackend {
	c := &pebbleConfig{}
	for _, o := range opts {
		o(c)
	}
	return StateBackend{pebble: c}
}

// String names the backend.
func (b StateBackend) String() string {
	if b.pebble != nil {
		return "pebble"
	}
	return "in-memory"
}

// PebbleOption configures the Pebble state backend.
type PebbleOption func(*pebbleConfig)

type pebbleConfig struct {
	dir  string
	opts pebblestate.Options
}

// PebbleDir sets the directory under which the databases are made, one
// directory per operator subtask, removed when the subtask ends. The
// default is $EDDY_STATE_DIR, or the system's temporary directory.
func PebbleDir(dir string) PebbleOption { return func(c *pebbleConfig) { c.dir = dir } }

// PebbleCacheSize sets the block cache of each operator subtask's database
// in bytes (default 8 MiB); its memtables come on top.
func PebbleCacheSize(bytes int64) PebbleOption {
	return func(c *pebbleConfig) { c.opts.CacheSize = bytes }
}

// PebbleMemTableSize sets the size of a memtable in bytes (default 32 MiB).
func PebbleMemTableSize(bytes uint64) PebbleOption {
	return func(c *pebbleConfig) { c.opts.MemTableSize = bytes }
}

// stateBackendKey carries a job's state backend to its keyed operators,
// in their TaskContext's context.
type stateBackendKey struct{}

func withStateBackend(ctx context.Context, b StateBackend) context.Context {
	return context.WithValue(ctx, stateBackendKey{}, b)
}

// defaultStateBackend is the backend of keyed operators whose job set
// none (tests run the SDK's tests on Pebble with it).
var defaultStateBackend StateBackend

func stateBackendOf(ctx context.Context) StateBackend {
	if ctx == nil {
		return defaultStateBackend
	}
	b, ok := ctx.Value(stateBackendKey{}).(StateBackend)
	if !ok {
		return defaultStateBackend
	}
	return b
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// pebbleBackend is the Pebble store of one operator subtask's keyed state.
type pebbleBackend struct {
	db     *pebblestate.DB
	dir    string // the subtask's directory, removed at close
	opts   pebblestate.Options
	groups keygroup.Range
	tables []pebbleFlusher
	ids    map[pebblestate.StateID]string
	batch  *pebblestate.Batch
	dirty  int   // entries in the caches
	err    error // the first failure of a write-back; the task fails with it

	mu sync.Mutex
	// pending are the manifests of uploaded checkpoints, until they
	// complete (and are confirmed) or a later one does.
	pending map[uint64]pebblestate.Manifest
	// restoredFrom is the URL of the store the restored database's files
	// are in, until the first checkpoint: one to another store uploads
	// everything.
	restoredFrom string
}

// pebbleFlusher is a state's write-back cache.
type pebbleFlusher interface {
	flush(b *pebblestate.Batch) error
}

// openPebbleBackend makes an empty database for the key groups of tc.
func openPebbleBackend(tc *engine.TaskContext, c *pebbleConfig) (*pebbleBackend, error) {
	base := c.dir
	if base == "" {
		base = os.Getenv(EnvStateDir)
	}
	if base == "" {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("state backend: %w", err)
	}
	name := "state"
	if tc.Vertex != nil {
		name = tc.Vertex.UID
	}
	pattern := fmt.Sprintf("eddy-state-%s-%s-%d-*", unsafeName.ReplaceAllString(tc.JobName, "_"), unsafeName.ReplaceAllString(name, "_"), tc.Subtask)
	dir, err := os.MkdirTemp(base, pattern)
	if err != nil {
		return nil, fmt.Errorf("state backend: %w", err)
	}
	db, err := pebblestate.Open(filepath.Join(dir, "db"), tc.KeyGroups, c.opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("state backend: %w", err)
	}
	p := &pebbleBackend{db: db, dir: dir, opts: c.opts, groups: tc.KeyGroups,
		ids: map[pebblestate.StateID]string{}, pending: map[uint64]pebblestate.Manifest{}}
	p.batch = db.NewBatch()
	return p, nil
}

// stateID returns the id of the state called name: a hash of the name, so
// that it is the same in every subtask and every attempt.
func (p *pebbleBackend) stateID(name string) pebblestate.StateID {
	h := fnv.New32a()
	h.Write([]byte(name))
	id := pebblestate.StateID(h.Sum32() & (1<<28 - 1))
	if other, ok := p.ids[id]; ok && other != name {
		panic(fmt.Sprintf("sdk: states %q and %q have the same id in the Pebble state backend; rename one", other, name))
	}
	p.ids[id] = name
	return id
}

// flush writes the caches of every state to the database.
func (p *pebbleBackend) flush() error {
	if p.err != nil {
		return p.err
	}
	if p.dirty == 0 {
		return nil
	}
	for _, t := range p.tables {
		if err := t.flush(p.batch); err != nil {
			p.fail(err)
			return p.err
		}
	}
	p.dirty = 0
	if err := p.batch.Commit(); err != nil {
		p.fail(err)
	}
	return p.err
}

func (p *pebbleBackend) fail(err error) {
	if p.err == nil {
		p.err = fmt.Errorf("pebble state: %w", err)
	}
}

// close closes the database and removes its directory.
func (p *pebbleBackend) close() error {
	_ = p.batch.Close()
	err := p.db.Close()
	if rerr := os.RemoveAll(p.dir); err == nil && rerr != nil {
		err = fmt.Errorf("remove state directory: %w", rerr)
	}
	return err
}

// snapshot takes the synchronous part of a checkpoint: the caches are
// written out and the database's files linked (pebblestate.DB.Snapshot).
func (p *pebbleBackend) snapshot(id uint64) (*pebbleSnapshot, error) {
	if err := p.flush(); err != nil {
		return nil, err
	}
	s, err := p.db.Snapshot()
	if err != nil {
		return nil, err
	}
	return &pebbleSnapshot{p: p, s: s, id: id}, nil
}

// complete confirms checkpoint id's upload: later checkpoints reference
// its files instead of uploading them again.
func (p *pebbleBackend) complete(id uint64) {
	p.mu.Lock()
	m, ok := p.pending[id]
	for other := range p.pending {
		if other <= id {
			delete(p.pending, other)
		}
	}
	p.mu.Unlock()
	if ok {
		p.db.Confirm(m)
	}
}

func (p *pebbleBackend) aborted(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// restore replaces the (empty) database with one rebuilt from the
// incremental snapshots of old subtasks.
func (p *pebbleBackend) restore(ctx context.Context, rs []engine.RestoredIncremental) error {
	if len(rs) == 0 {
		return nil
	}
	st := rs[0].Store
	ms := make([]pebblestate.Manifest, len(rs))
	for i, r := range rs {
		if r.Store == nil || r.Store.URL("") != st.URL("") {
			return fmt.Errorf("restore pebble state: the snapshots are in different stores")
		}
		m, err := pebblestate.DecodeManifest(r.State)
		if err != nil {
			return fmt.Errorf("restore pebble state: %w", err)
		}
		ms[i] = m
	}
	if err := p.db.Close(); err != nil {
		return err
	}
	db, err := pebblestate.Restore(ctx, filepath.Join(p.dir, "db"), st, ms, p.groups, p.opts)
	if err != nil {
		// Leave an open database for close.
		if odb, oerr := pebblestate.Open(filepath.Join(p.dir, "db"), p.groups, p.opts); oerr == nil {
			p.db = odb
			p.batch = odb.NewBatch()
		}
		return fmt.Errorf("restore pebble state: %w", err)
	}
	p.db, p.batch = db, db.NewBatch()
	p.restoredFrom = st.URL("")
	return nil
}

// pebbleSnapshot is the engine.IncrementalSnapshot of a Pebble backend.
type pebbleSnapshot struct {
	p  *pebbleBackend
	s  *pebblestate.Snapshot
	id uint64
}

func (s *pebbleSnapshot) Groups() keygroup.Range { return s.p.groups }
func (s *pebbleSnapshot) Release()               { s.s.Release() }

func (s *pebbleSnapshot) Upload(ctx context.Context, store storage.Store, prefix string) ([]byte, []string, int64, error) {
	p := s.p
	p.mu.Lock()
	if p.restoredFrom != "" && p.restoredFrom != store.URL("") {
		// The restored files are in another job's directory, which this
		// job's retention does not keep: upload a copy.
		p.db.Unconfirm()
	}
	p.restoredFrom = ""
	p.mu.Unlock()
	m, st, err := s.s.Upload(ctx, store, prefix)
	if err != nil {
		return nil, nil, 0, err
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, nil, 0, err
	}
	p.mu.Lock()
	p.pending[s.id] = m
	p.mu.Unlock()
	return b, m.Files(), st.UploadedBytes, nil
}

// gone marks a cached entry as absent.
const gone = -1

// pebbleTable is one state on the Pebble backend: its id and its
// write-back cache.
type pebbleTable[V any] struct {
	p     *pebbleBackend
	id    pebblestate.StateID
	ttl   int64
	codec *stateCodec[V]
	cache *table[V]
	// touched are the cache's entries, in the order they were loaded.
	touched []pebbleTouched[V]
	buf     []byte
	arena   []byte // the stored values of the touched entries
}

type pebbleTouched[V any] struct {
	kg      int // relative to the backend's range
	e       *entry[V]
	existed bool   // the database holds the key
	orig    []byte // its stored value
	// blind is set for an entry written without reading the database:
	// whether it held the key is unknown, so the flush writes the value.
	blind bool
}

func newPebbleTable[V any](p *pebbleBackend, name string, ttl int64, c *stateCodec[V]) *pebbleTable[V] {
	if c.err != nil {
		panic(fmt.Sprintf("sdk: state %q: values of type %s cannot be kept in the Pebble state backend: %v", name, c.typ, c.err))
	}
	t := &pebbleTable[V]{p: p, id: p.stateID(name), ttl: ttl, codec: c, cache: newTable[V](newCowClock(), nil)}
	p.tables = append(p.tables, t)
	return t
}

// load reads key into the cache.
func (t *pebbleTable[V]) load(kg int, hash uint64, key []byte) *entry[V] {
	e, _ := t.cache.put(hash, key)
	e.expires = gone
	tc := pebbleTouched[V]{kg: kg, e: e}
	v, ok, err := t.p.db.Get(kg+t.p.groups.Start, t.id, key, t.buf[:0])
	t.buf = v
	switch {
	case err != nil:
		t.p.fail(err)
	case ok:
		exp, n := binary.Varint(v)
		val, _, derr := t.codec.c.Decode(v[max(n, 0):])
		if n <= 0 || derr != nil {
			t.p.fail(fmt.Errorf("state %q: decode %s value: %v", t.p.ids[t.id], t.codec.typ, derr))
			break
		}
		start := len(t.arena)
		t.arena = append(t.arena, v...)
		tc.existed, tc.orig = true, t.arena[start:len(t.arena):len(t.arena)]
		e.val, e.expires = val, exp
	}
	t.touched = append(t.touched, tc)
	t.p.dirty++
	return e
}

func (t *pebbleTable[V]) get(kg int, hash uint64, key []byte) *entry[V] {
	e := t.cache.get(hash, key)
	if e == nil {
		e = t.load(kg, hash, key)
	}
	if e.expires == gone {
		return nil
	}
	if t.ttl > 0 && e.expires > 0 && e.expires <= time.Now().UnixMilli() {
		var zero V
		e.val, e.expires = zero, gone
		return nil
	}
	return e
}

func (t *pebbleTable[V]) put(kg int, hash uint64, key []byte) (*entry[V], bool) {
	e := t.get(kg, hash, key)
	created := e == nil
	if created {
		e = t.cache.get(hash, key)
		var zero V
		e.val, e.expires = zero, 0
	}
	if t.ttl > 0 {
		e.expires = time.Now().UnixMilli() + t.ttl
	}
	return e, created
}

// set returns the entry of key for a value the caller replaces whole. A key
// not in the cache is not read from the database (a point read costs more
// than the write): its entry is written by the flush as it is then.
func (t *pebbleTable[V]) set(kg int, hash uint64, key []byte) *entry[V] {
	e := t.cache.get(hash, key)
	if e == nil {
		e, _ = t.cache.put(hash, key)
		t.touched = append(t.touched, pebbleTouched[V]{kg: kg, e: e, blind: true})
		t.p.dirty++
	}
	var zero V
	e.val, e.expires = zero, 0
	if t.ttl > 0 {
		e.expires = time.Now().UnixMilli() + t.ttl
	}
	return e
}

func (t *pebbleTable[V]) del(kg int, hash uint64, key []byte) {
	e := t.cache.get(hash, key)
	if e == nil {
		e = t.load(kg, hash, key)
	}
	var zero V
	e.val, e.expires = zero, gone
}

// flush adds the changes of the cached entries to b and empties the cache.
func (t *pebbleTable[V]) flush(b *pebblestate.Batch) error {
	var err error
	for i := range t.touched {
		tc := &t.touched[i]
		e, kg := tc.e, tc.kg+t.p.groups.Start
		switch {
		case err != nil:
		case e.expires == gone:
			if tc.existed || tc.blind {
				err = b.Delete(kg, t.id, e.Key())
			}
		default:
			t.buf = binary.AppendVarint(t.buf[:0], e.expires)
			t.buf = t.codec.c.Append(t.buf, e.val)
			if tc.blind || !tc.existed || !bytes.Equal(t.buf, tc.orig) {
				err = b.Put(kg, t.id, e.Key(), t.buf)
			}
		}
		*tc = pebbleTouched[V]{}
	}
	t.touched = t.touched[:0]
	clear(t.cache.m)
	t.cache.n = 0
	t.arena = t.arena[:0]
	return err
}

// len counts the entries (for tests).
func (t *pebbleTable[V]) len() int {
	if t.p.flush() != nil {
		return -1
	}
	n := 0
	for kg := t.p.groups.Start; kg < t.p.groups.End; kg++ {
		_ = t.p.db.Scan(kg, t.id, func(_, _ []byte) error { n++; return nil })
	}
	return n
}

// expireGroup deletes the expired entries of key group g (relative); the
// caches are empty (sweep flushed them).
func (t *pebbleTable[V]) expireGroup(g int, now int64) {
	kg := g + t.p.groups.Start
	err := t.p.db.Scan(kg, t.id, func(k, v []byte) error {
		if exp, n := binary.Varint(v); n > 0 && exp > 0 && exp <= now {
			return t.p.batch.Delete(kg, t.id, k)
		}
		return nil
	})
	if err == nil {
		err = t.p.batch.Commit()
	}
	if err != nil {
		t.p.fail(err)
	}
}

// freeze returns the state as the view of the store holds it; the caches
// are empty (freezeKeyed flushed them).
func (t *pebbleTable[V]) freeze(fz *freezer) (groupWriter, error) {
	return &frozenPebble{view: fz.view, id: t.id, start: t.p.groups.Start, typ: t.codec.typ, now: fz.now}, nil
}

// frozenPebble is a state on Pebble as a snapshot's view holds it.
type frozenPebble struct {
	view  *pebblestate.View
	id    pebblestate.StateID
	start int // the first key group of the store
	typ   string
	now   int64
	body  []byte // scratch
}

// appendGroup appends the state blob of key group g (relative) to dst, as
// appendEntries does from a table. The stored values are the blob's entry
// layout, so they are copied as they are.
func (f *frozenPebble) appendGroup(dst []byte, g int) ([]byte, error) {
	n := 0
	body := f.body[:0]
	err := f.view.Scan(g+f.start, f.id, func(k, v []byte) error {
		if exp, m := binary.Varint(v); m <= 0 {
			return fmt.Errorf("%w: stored value without expiry", errSnapshotCorrupt)
		} else if exp != 0 && exp <= f.now {
			return nil
		}
		body = appendSnapBytes(body, k)
		body = append(body, v...)
		n++
		return nil
	})
	f.body = body[:0]
	if err != nil {
		return dst, err
	}
	dst = append(dst, stateVersion)
	dst = appendSnapBytes(dst, []byte(f.typ))
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, body...), nil
}

// readGroup writes the entries of a state blob into the database, as
// readEntries does into a table: values are checked by decoding them and
// stored as they are.
func (t *pebbleTable[V]) readGroup(g int, b []byte) error {
	sc := t.codec
	r := snapReader{b: b}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return fmt.Errorf("%w: state format %d (this SDK reads %d)", errSnapshotVersion, v, stateVersion)
	}
	written := string(r.bytes())
	n := r.count()
	if r.err != nil {
		return r.err
	}
	hint := ""
	if written != sc.typ {
		hint = fmt.Sprintf(" (values written as %s, read as %s)", written, sc.typ)
	}
	kg := g + t.p.groups.Start
	now := time.Now().UnixMilli()
	batch := t.p.batch
	for i := range n {
		key := r.bytes()
		expires := r.varint()
		if r.err != nil {
			return fmt.Errorf("entry %d: %w", i, r.err)
		}
		_, m, err := sc.c.Decode(r.b)
		if err != nil {
			return fmt.Errorf("entry %d: decode %s value%s: %w", i, sc.typ, hint, err)
		}
		raw := r.b[:m]
		r.b = r.b[m:]
		switch {
		case t.ttl == 0:
			expires = 0
		case expires == 0:
			expires = now + t.ttl
		case expires <= now:
			continue
		}
		t.buf = binary.AppendVarint(t.buf[:0], expires)
		t.buf = append(t.buf, raw...)
		if err := batch.Put(kg, t.id, key, t.buf); err != nil {
			return err
		}
		if batch.Size() >= 4<<20 {
			if err := batch.Commit(); err != nil {
				return err
			}
		}
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last entry%s", errSnapshotCorrupt, len(r.b), hint)
	}
	return batch.Commit()
}

// restoreIncrementalInMemory restores the Pebble backend's incremental
// snapshots into an in-memory backend: the database is rebuilt in a
// temporary directory and every registered state read out of it, key group
// by key group. (State the operator no longer registers is not detected
// here: its entries are left behind with the database.)
func restoreIncrementalInMemory(ctx context.Context, be *keyedBackend, rs []engine.RestoredIncremental, _ bool) error {
	tmp, err := os.MkdirTemp(os.Getenv(EnvStateDir), "eddy-state-restore-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tc := &engine.TaskContext{KeyGroups: be.groups}
	p, err := openPebbleBackend(tc, &pebbleConfig{dir: tmp})
	if err != nil {
		return err
	}
	defer p.close()
	if err := p.restore(ctx, rs); err != nil {
		return err
	}
	var body []byte
	for name, s := range be.states {
		sn, ok := s.(snapshotter)
		if !ok {
			continue
		}
		id := p.stateID(name)
		for kg := be.groups.Start; kg < be.groups.End; kg++ {
			n := 0
			body = body[:0]
			err := p.db.Scan(kg, id, func(k, v []byte) error {
				body = appendSnapBytes(body, k)
				body = append(body, v...)
				n++
				return nil
			})
			if err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			b := []byte{stateVersion}
			b = appendSnapBytes(b, nil)
			b = binary.AppendUvarint(b, uint64(n))
			if err := sn.readGroup(kg-be.groups.Start, append(b, body...)); err != nil {
				return fmt.Errorf("state %q key group %d: %w", name, kg, err)
			}
		}
	}
	return nil
}
