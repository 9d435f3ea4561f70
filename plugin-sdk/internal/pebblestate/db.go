package pebblestate

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// MaxKeyGroups bounds the key groups a DB can hold: a key group is the
// first two bytes of a key, and keeping it below 1<<15 leaves 0x80 0x00
// as a bound above every key.
const MaxKeyGroups = 1 << 15

// StateID names one state of an operator within its DB.
type StateID uint32

// Options tunes a DB. The zero value is usable.
type Options struct {
	// CacheSize is the block cache in bytes; 0 means 8 MiB. It is the
	// memory for blocks alone: the memtables come on top of it (see
	// memTableBudget), and blocks may also use what of their budget the
	// memtables do not hold: together they stay within about
	// CacheSize + 3 × MemTableSize.
	CacheSize int64
	// MemTableSize is the size of a memtable in bytes; 0 means 32 MiB.
	// A larger memtable makes fewer, larger L0 files.
	MemTableSize uint64
	// UploadConcurrency is how many files an upload or a restore
	// transfers at once; 0 means 4.
	UploadConcurrency int
	// EventListener, when set, is told of Pebble's flushes, compactions
	// and other events (benchmarks use it to see which files a
	// checkpoint uploads and why).
	EventListener *pebble.EventListener
}

func (o Options) withDefaults() Options {
	if o.CacheSize <= 0 {
		o.CacheSize = 8 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	if o.UploadConcurrency <= 0 {
		o.UploadConcurrency = 4
	}
	return o
}

// DB is the keyed state of one operator subtask. Its reads and writes,
// Snapshot and Close are called from one goroutine (the task's); a
// Snapshot's Upload and Confirm may run on others.
type DB struct {
	pdb    *pebble.DB
	dir    string
	groups keygroup.Range
	opts   Options
	key    []byte // scratch for the composed key of Get, Put and Delete

	// instance names this DB's uploads, so that no two DBs, nor two
	// attempts of one task, write the same object.
	instance string
	seq      uint64 // snapshots taken

	mu sync.Mutex
	// confirmed maps the local name of a live shared file to its object
	// in a checkpoint that completed: later checkpoints reference it.
	confirmed    map[string]Object
	confirmedSeq uint64

	// views counts the open Views: Close waits for them.
	views sync.WaitGroup
}

// dbDir is where Pebble keeps its files inside a DB's directory; snapshots
// are made beside it.
func dbDir(dir string) string { return filepath.Join(dir, "db") }

// Open creates an empty DB in dir for the key groups groups. The directory
// belongs to the DB: whatever it holds is removed first, since state is
// only ever recovered from checkpoints (Restore).
func Open(dir string, groups keygroup.Range, opts Options) (*DB, error) {
	if err := checkGroups(groups); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("open state db %s: %w", dir, err)
	}
	if err := os.MkdirAll(dbDir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("open state db %s: %w", dir, err)
	}
	return openPebble(dir, groups, opts)
}

func checkGroups(groups keygroup.Range) error {
	if groups.Start < 0 || groups.End > MaxKeyGroups || groups.Start > groups.End {
		return fmt.Errorf("state db key groups [%d, %d): want 0 <= start <= end <= %d", groups.Start, groups.End, MaxKeyGroups)
	}
	return nil
}

// memTableStopWrites is how many memtables may be queued (the mutable one
// and those flushing) before writes wait for a flush.
const memTableStopWrites = 2

// memTableBudget returns the memory Pebble charges to the block cache for
// memtables: every memtable reserves its whole arena in the cache while it
// lives, and up to memTableStopWrites of them are queued, plus one kept for
// reuse after a flush. A cache of only CacheSize would be all reservation
// once the memtables reach their full size, and every read would go to
// disk; so the cache is made that much larger, and CacheSize stays for
// blocks.
func memTableBudget(o Options) int64 {
	return int64(memTableStopWrites+1) * int64(o.MemTableSize)
}

func openPebble(dir string, groups keygroup.Range, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	cache := pebble.NewCache(opts.CacheSize + memTableBudget(opts))
	// The DB holds its own reference to the cache; it is freed when the
	// DB closes.
	defer cache.Unref()
	po := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                opts.MemTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		// Durability comes from checkpoints.
		DisableWAL: true,
		// A checkpoint uploads the MANIFEST whole: rotating it keeps it
		// about the size of one version of the LSM.
		MaxManifestFileSize: 1 << 20,
		Logger:              quietLogger{},
		FS:                  noSyncFS{vfs.Default},
		EventListener:       opts.EventListener,
	}
	// State is read by point lookups: a Bloom filter per table (inherited
	// by every level) spares the reads of tables without the key.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	pdb, err := pebble.Open(dbDir(dir), po)
	if err != nil {
		return nil, fmt.Errorf("open state db %s: %w", dir, err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return &DB{
		pdb:       pdb,
		dir:       dir,
		groups:    groups,
		opts:      opts,
		instance:  hex.EncodeToString(id),
		confirmed: map[string]Object{},
	}, nil
}

// Groups returns the key groups the DB holds.
func (db *DB) Groups() keygroup.Range { return db.groups }

// Close closes the DB; its files stay in its directory. It waits for
// the open Views to be closed.
func (db *DB) Close() error {
	db.views.Wait()
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("close state db %s: %w", db.dir, err)
	}
	return nil
}

// appendPrefix appends the prefix of the keys of state st in key group kg.
// The uvarint is prefix-free, so no other state's prefix starts with it.
func appendPrefix(dst []byte, kg int, st StateID) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(kg))
	return binary.AppendUvarint(dst, uint64(st))
}

// appendKey appends the stored key of a user key.
func appendKey(dst []byte, kg int, st StateID, key []byte) []byte {
	return append(appendPrefix(dst, kg, st), key...)
}

// prefixEnd returns the smallest key above every key with the given
// prefix. A uvarint's last byte is below 0x80, so incrementing it never
// carries.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

// groupBound returns the first key of key group kg (kg may be
// MaxKeyGroups: the bound above every key).
func groupBound(kg int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(kg)) }

func (db *DB) check(kg int) error {
	if !db.groups.Contains(kg) {
		return fmt.Errorf("key group %d outside the state db's range [%d, %d)", kg, db.groups.Start, db.groups.End)
	}
	return nil
}

// Get appends the value of key in state st and key group kg to dst and
// reports whether it was found; dst is returned unchanged if it was not.
// It does not allocate when dst has room.
func (db *DB) Get(kg int, st StateID, key, dst []byte) ([]byte, bool, error) {
	if err := db.check(kg); err != nil {
		return dst, false, err
	}
	db.key = appendKey(db.key[:0], kg, st, key)
	v, closer, err := db.pdb.Get(db.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, fmt.Errorf("state get: %w", err)
	}
	dst = append(dst, v...)
	if err := closer.Close(); err != nil {
		return dst, false, fmt.Errorf("state get: %w", err)
	}
	return dst, true, nil
}

// Put sets the value of key in state st and key group kg. For many writes,
// a Batch is cheaper.
func (db *DB) Put(kg int, st StateID, key, value []byte) error {
	if err := db.check(kg); err != nil {
		return err
	}
	db.key = appendKey(db.key[:0], kg, st, key)
	if err := db.pdb.Set(db.key, value, pebble.NoSync); err != nil {
		return fmt.Errorf("state put: %w", err)
	}
	return nil
}

// Delete removes key from state st in key group kg; a missing key is not
// an error.
func (db *DB) Delete(kg int, st StateID, key []byte) error {
	if err := db.check(kg); err != nil {
		return err
	}
	db.key = appendKey(db.key[:0], kg, st, key)
	if err := db.pdb.Delete(db.key, pebble.NoSync); err != nil {
		return fmt.Errorf("state delete: %w", err)
	}
	return nil
}

// Batch collects writes and applies them at once on Commit, the cheap way
// to write on the hot path. Reads do not see a batch's writes before it is
// committed. A Batch is reused after Commit; Close releases it.
type Batch struct {
	db  *DB
	b   *pebble.Batch
	key []byte
}

// NewBatch returns an empty batch.
func (db *DB) NewBatch() *Batch { return &Batch{db: db, b: db.pdb.NewBatch()} }

// Put sets the value of key in state st and key group kg when the batch
// commits. The batch copies key and value.
func (b *Batch) Put(kg int, st StateID, key, value []byte) error {
	if err := b.db.check(kg); err != nil {
		return err
	}
	b.key = appendKey(b.key[:0], kg, st, key)
	return b.b.Set(b.key, value, nil)
}

// Delete removes key from state st in key group kg when the batch commits.
func (b *Batch) Delete(kg int, st StateID, key []byte) error {
	if err := b.db.check(kg); err != nil {
		return err
	}
	b.key = appendKey(b.key[:0], kg, st, key)
	return b.b.Delete(b.key, nil)
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Size returns the bytes the batch holds.
func (b *Batch) Size() int { return b.b.Len() }

// Commit applies the batch's writes and empties it for reuse.
func (b *Batch) Commit() error {
	if b.b.Empty() {
		return nil
	}
	if err := b.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state batch commit: %w", err)
	}
	b.b.Reset()
	return nil
}

// Close discards uncommitted writes and releases the batch.
func (b *Batch) Close() error { return b.b.Close() }

// Scan calls fn with every entry of state st in key group kg, in key
// order. key and value are valid only during the call. Writes made during
// the scan (say, a TTL sweep deleting expired entries through a Batch) do
// not change what it sees.
func (db *DB) Scan(kg int, st StateID, fn func(key, value []byte) error) error {
	return db.scanState(db.pdb, kg, st, fn)
}

// scanState is Scan reading from r: the DB or a snapshot of it.
func (db *DB) scanState(r pebble.Reader, kg int, st StateID, fn func(key, value []byte) error) error {
	if err := db.check(kg); err != nil {
		return err
	}
	lo := appendPrefix(nil, kg, st)
	return scan(r, lo, prefixEnd(lo), len(lo), fn)
}

// View is the DB as it was when the view was taken, whatever is written
// after; it may be read from any goroutine, one at a time.
type View struct {
	db     *DB
	snap   *pebble.Snapshot
	closed bool
}

// View returns a view of the DB as it is now. The caller must close it:
// the DB's Close waits for that.
func (db *DB) View() *View {
	db.views.Add(1)
	return &View{db: db, snap: db.pdb.NewSnapshot()}
}

// Scan is DB.Scan on the view.
func (v *View) Scan(kg int, st StateID, fn func(key, value []byte) error) error {
	return v.db.scanState(v.snap, kg, st, fn)
}

// Close releases the view; closing it again does nothing.
func (v *View) Close() error {
	if v.closed {
		return nil
	}
	v.closed = true
	defer v.db.views.Done()
	if err := v.snap.Close(); err != nil {
		return fmt.Errorf("state db %s: close view: %w", v.db.dir, err)
	}
	return nil
}

// scan calls fn with the keys in [lo, hi), less their first skip bytes.
func scan(r pebble.Reader, lo, hi []byte, skip int, fn func(key, value []byte) error) (err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("state scan: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("state scan: %w", cerr)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("state scan: %w", err)
		}
		if err := fn(it.Key()[skip:], v); err != nil {
			return err
		}
	}
	return it.Error()
}

// quietLogger keeps Pebble's informational messages out of the task's
// output and passes its errors to slog.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}

func (quietLogger) Errorf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (quietLogger) Fatalf(format string, args ...any) {
	panic("pebble: " + fmt.Sprintf(format, args...))
}

// Compacting reports whether compactions are running, and the bytes
// Pebble estimates compactions still owe: measurements that want a settled
// LSM wait for the first to turn false and the second to stop falling.
func (db *DB) Compacting() (bool, uint64) {
	m := db.pdb.Metrics()
	return m.Compact.NumInProgress > 0, m.Compact.EstimatedDebt
}

// Flush writes the memtable to L0 files. Snapshot does it itself;
// measurements call it to settle the LSM before one.
func (db *DB) Flush() error {
	if err := db.pdb.Flush(); err != nil {
		return fmt.Errorf("state db %s: flush: %w", db.dir, err)
	}
	return nil
}
