package sdk

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/pebblestate"
)

// Snapshots of keyed state, the foundation of checkpoints and savepoints.
//
// The keyed state and timers of an operator subtask are written as one blob
// per key group it owns, so that a restore can hand each blob to whichever
// subtask owns that key group at the new parallelism (keygroup.For). The
// blob of a key group, version 1:
//
//	"EDKG", then the version byte 1
//	uvarint key group
//	uvarint number of states; per state, sorted by name:
//	    name (uvarint length, bytes), state blob (uvarint length, bytes)
//	uvarint number of live event-time timers; per timer, by (time, key):
//	    zigzag varint time, key (uvarint length, bytes)
//	the same for processing-time timers
//	CRC-32C (Castagnoli) of everything above, 4 bytes little-endian
//
// The blob of one state in one key group, written by its snapshotter,
// version 1:
//
//	the version byte 1
//	the Go type of the values (uvarint length, bytes)
//	uvarint number of entries; per entry (sorted by key in savepoints and
//	on Pebble; in the in-memory backend's checkpoints, in table order):
//	    key (uvarint length, bytes), zigzag varint expiry (Unix ms, 0: none),
//	    value (internal/codec of the value type)
//
// The checksum makes a blob self-validating wherever it is stored, even
// packed with others into one file. The value type's name is only used to
// explain a decoding failure: the codec decides what can be read back, so
// a renamed type of the same layout still restores. Entries whose time to
// live has ended are not written.

const (
	groupMagic   = "EDKG"
	groupVersion = 1
	stateVersion = 1
)

var (
	// errSnapshotCorrupt is wrapped by restore errors for bytes that no
	// snapshot encodes to.
	errSnapshotCorrupt = errors.New("corrupt snapshot")
	// errSnapshotVersion is wrapped by restore errors for a format version
	// this SDK does not know.
	errSnapshotVersion = errors.New("unknown snapshot version")
	// errUnknownState is wrapped by restore errors for a state in the
	// snapshot that the operator does not register.
	errUnknownState = errors.New("not registered by the operator (restore allowing non-restored state to drop it)")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotter is implemented by every keyed state: it writes and reads the
// entries of one key group. g is the group's index in the backend's range
// (the key group minus groups.Start), as in keyedBackend.kg. readGroup adds
// to what the state holds; a key it already holds is an error.
type snapshotter interface {
	readGroup(g int, b []byte) error
	// freeze returns a view of the state as it is now that stays so while
	// the task changes the state: in memory, once the backend's clock is
	// frozen (see table); on Pebble, through the snapshot's view of the
	// store. It is called in the task's goroutine; the view is written
	// from any.
	freeze(f *freezer) (groupWriter, error)
}

// freezer is what the states of one snapshot are frozen with.
type freezer struct {
	now  int64             // entries that expired by then are left out
	view *pebblestate.View // the Pebble store's, nil in memory
	// sorted asks for entries in key order (savepoints: canonical
	// bytes); checkpoints take them in the tables' order, which is
	// cheaper. Pebble's are always in key order.
	sorted bool
}

// groupWriter writes the blob of one state in one key group.
type groupWriter interface {
	// appendGroup appends the blob of the state in key group g (by
	// position in the backend's range) to dst.
	appendGroup(dst []byte, g int) ([]byte, error)
}

// stateCodec is the serialiser of a state's values, built when the state is
// registered. A type the codec cannot encode (an interface, a func) is
// reported when the state is snapshotted, so jobs that never checkpoint can
// still keep such state.
type stateCodec[V any] struct {
	c   codec.Codec[V]
	err error
	typ string
}

func newStateCodec[V any]() *stateCodec[V] {
	c, err := codec.For[V]()
	return &stateCodec[V]{c: c, err: err, typ: reflect.TypeFor[V]().String()}
}

func (t tables[V]) freeze(fz *freezer) (groupWriter, error) {
	if t.pb != nil {
		return t.pb.freeze(fz)
	}
	if t.codec.err != nil {
		return nil, t.codec.err
	}
	f := &frozenTables[V]{maps: make([]map[uint64]*entry[V], len(t.t)), codec: t.codec, now: fz.now, sorted: fz.sorted}
	for i, tab := range t.t {
		f.maps[i] = tab.m
	}
	return f, nil
}

// frozenTables is a state's tables as a snapshot froze them.
type frozenTables[V any] struct {
	maps   []map[uint64]*entry[V]
	codec  *stateCodec[V]
	now    int64 // entries that expired by then are left out
	sorted bool
	w      entryWriter
}

func (f *frozenTables[V]) appendGroup(dst []byte, g int) ([]byte, error) {
	return appendEntries(dst, &f.w, chains(f.maps[g]), f.codec, f.now, f.sorted)
}

func (t tables[V]) readGroup(g int, b []byte) error {
	if t.pb != nil {
		return t.pb.readGroup(g, b)
	}
	return readEntries(t.t[g], t.codec, b, t.ttl)
}

func (s *valueState[T]) readGroup(g int, b []byte) error        { return s.t.readGroup(g, b) }
func (s *valueState[T]) freeze(f *freezer) (groupWriter, error) { return s.t.freeze(f) }
func (s *listState[T]) readGroup(g int, b []byte) error         { return s.t.readGroup(g, b) }
func (s *listState[T]) freeze(f *freezer) (groupWriter, error)  { return s.t.freeze(f) }

func (s *mapState[UK, UV]) readGroup(g int, b []byte) error        { return s.t.readGroup(g, b) }
func (s *mapState[UK, UV]) freeze(f *freezer) (groupWriter, error) { return s.t.freeze(f) }

func (s *aggregatingState[IN, ACC, OUT]) readGroup(g int, b []byte) error {
	return s.t.readGroup(g, b)
}
func (s *aggregatingState[IN, ACC, OUT]) freeze(f *freezer) (groupWriter, error) {
	return s.t.freeze(f)
}

// The window operator's tables have no time to live.
func (s *nsTable[V]) readGroup(g int, b []byte) error        { return s.tab.readGroup(g, b) }
func (s *nsTable[V]) freeze(f *freezer) (groupWriter, error) { return s.tab.freeze(f) }

// Every state kind is a snapshotter, reducingState through its valueState.
var _ = []snapshotter{
	(*valueState[int])(nil), (*listState[int])(nil), (*mapState[int, int])(nil),
	(*reducingState[int])(nil), (*aggregatingState[int, int, int])(nil), (*nsTable[int])(nil),
}

// appendEntries appends the state blob of one table to dst, leaving out
// the entries that expired by now; sorted puts them in key order. The
// entries are read once, in the table's order, and encoded into w's
// buffer: reading them again in key order would miss the cache on every
// one.
func appendEntries[V any](dst []byte, w *entryWriter, all iter.Seq[*entry[V]], sc *stateCodec[V], now int64, sorted bool) ([]byte, error) {
	if sc.err != nil {
		return dst, sc.err
	}
	w.buf, w.at = w.buf[:0], w.at[:0]
	n := 0
	for e := range all {
		if e.expires != 0 && e.expires <= now {
			continue
		}
		key := e.Key()
		start := len(w.buf)
		w.buf = appendSnapBytes(w.buf, key)
		if sorted {
			w.at = append(w.at, encoded{prefix: keyPrefix(key), start: start, key: len(w.buf) - len(key), keyLen: len(key)})
		}
		n++
		w.buf = binary.AppendVarint(w.buf, e.expires)
		w.buf = sc.c.Append(w.buf, e.val)
	}
	dst = append(dst, stateVersion)
	dst = appendSnapBytes(dst, []byte(sc.typ))
	dst = binary.AppendUvarint(dst, uint64(n))
	if !sorted {
		return append(dst, w.buf...), nil
	}
	for i := range w.at {
		w.at[i].end = len(w.buf)
		if i+1 < len(w.at) {
			w.at[i].end = w.at[i+1].start
		}
	}
	slices.SortFunc(w.at, func(a, b encoded) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return bytes.Compare(w.key(a), w.key(b))
	})
	for _, e := range w.at {
		dst = append(dst, w.buf[e.start:e.end]...)
	}
	return dst, nil
}

// entryWriter is the scratch of appendEntries, kept from one key group to
// the next.
type entryWriter struct {
	buf []byte    // the encoded entries, in the table's order
	at  []encoded // where each is in buf, when they are sorted
}

// encoded is where one encoded entry is in an entryWriter's buffer.
type encoded struct {
	prefix      uint64 // keyPrefix of the key
	start, end  int    // the entry
	key, keyLen int    // its key
}

func (w *entryWriter) key(e encoded) []byte { return w.buf[e.key : e.key+e.keyLen] }

// keyPrefix returns the first eight bytes of key, big-endian, padded with
// zeros: keys whose prefixes differ are in the order of their prefixes.
func keyPrefix(key []byte) uint64 {
	if len(key) >= 8 {
		return binary.BigEndian.Uint64(key)
	}
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}

// readEntries adds the entries of a state blob to tab. With a time to live
// (ttl ms), an entry written without one lives ttl from now and an entry
// that expired meanwhile is dropped; without, expiries are dropped.
func readEntries[V any](tab *table[V], sc *stateCodec[V], b []byte, ttl int64) error {
	if sc.err != nil {
		return sc.err
	}
	r := snapReader{b: b}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return fmt.Errorf("%w: state format %d (this SDK reads %d)", errSnapshotVersion, v, stateVersion)
	}
	written := string(r.bytes())
	n := r.count()
	if r.err != nil {
		return r.err
	}
	// hint explains a decoding failure by a change of type.
	hint := ""
	if written != sc.typ {
		hint = fmt.Sprintf(" (values written as %s, read as %s)", written, sc.typ)
	}
	now := time.Now().UnixMilli()
	for i := range n {
		key := r.bytes()
		expires := r.varint()
		if r.err != nil {
			return fmt.Errorf("entry %d: %w", i, r.err)
		}
		v, m, err := sc.c.Decode(r.b)
		if err != nil {
			return fmt.Errorf("entry %d: decode %s value%s: %w", i, sc.typ, hint, err)
		}
		r.b = r.b[m:]
		switch {
		case ttl == 0:
			expires = 0
		case expires == 0:
			expires = now + ttl
		case expires <= now:
			continue
		}
		e, created := tab.put(keygroup.Hash(key), key)
		if !created {
			return fmt.Errorf("entry %d: %w: key %q restored twice", i, errSnapshotCorrupt, key)
		}
		e.val, e.expires = v, expires
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last entry%s", errSnapshotCorrupt, len(r.b), hint)
	}
	return nil
}

// snapshotKeyed snapshots the keyed state and timers (t, which may be nil)
// of an operator subtask: one blob per key group of be.groups. It must run
// in the task's goroutine, between records, and writes the blobs there;
// checkpoints and savepoints use freezeKeyed, which writes them later.
func snapshotKeyed(be *keyedBackend, t *timers) (map[int][]byte, error) {
	f, err := freezeKeyed(be, t, true)
	if err != nil {
		return nil, err
	}
	return f.KeyGroups()
}

// snapshotTimers is snapshotKeyed without the states: the blobs of the
// Pebble backend's checkpoints, whose state is in the store's files.
func snapshotTimers(be *keyedBackend, t *timers) (map[int][]byte, error) {
	k := &frozenKeyed{groups: be.groups}
	if t != nil {
		k.event, k.processing = t.event.set, t.processing.set
	}
	return k.encode()
}

// freezeKeyed snapshots the keyed state and timers of an operator subtask
// as snapshotKeyed does, but only freezes the state in the task's
// goroutine: the blobs are written by KeyGroups, from any goroutine, while
// the task goes on. In memory the tables are copy-on-write until then (see
// table); on Pebble the blobs are read from a view of the store. sorted
// asks for each state's entries in key order, as savepoints have them. The
// caller calls KeyGroups or Release once.
func freezeKeyed(be *keyedBackend, t *timers, sorted bool) (_ *frozenKeyed, err error) {
	k := &frozenKeyed{groups: be.groups, names: slices.Sorted(maps.Keys(be.states))}
	fz := &freezer{now: time.Now().UnixMilli(), sorted: sorted}
	if be.pb != nil {
		if err := be.pb.flush(); err != nil {
			return nil, err
		}
		fz.view = be.pb.db.View()
		k.view = fz.view
		defer func() {
			if err != nil {
				_ = k.view.Close()
			}
		}()
	}
	k.states = make([]groupWriter, len(k.names))
	for i, name := range k.names {
		s, ok := be.states[name].(snapshotter)
		if !ok {
			return nil, fmt.Errorf("snapshot state %q: %T cannot be snapshotted", name, be.states[name])
		}
		f, err := s.freeze(fz)
		if err != nil {
			return nil, fmt.Errorf("snapshot state %q: %w", name, err)
		}
		k.states[i] = f
	}
	if t != nil {
		// A copy of the sets, a copy of memory: they are grouped and
		// sorted when the blobs are written.
		k.event, k.processing = maps.Clone(t.event.set), maps.Clone(t.processing.set)
	}
	if be.pb == nil {
		k.cow, k.ver = be.cow, be.cow.freeze()
	}
	return k, nil
}

// frozenKeyed is the keyed state and timers of an operator subtask as a
// snapshot took them: engine.DeferredKeyGroups.
type frozenKeyed struct {
	groups            keygroup.Range
	names             []string
	states            []groupWriter         // by name
	event, processing map[timerKey]struct{} // the live timers
	cow               *cowClock             // in memory; nil: nothing frozen
	ver               uint32
	view              *pebblestate.View // on Pebble
	released          sync.Once
}

// KeyGroups writes the blobs and releases the frozen state.
func (k *frozenKeyed) KeyGroups() (map[int][]byte, error) {
	defer k.Release()
	return k.encode()
}

// Release ends the snapshot without writing it.
func (k *frozenKeyed) Release() {
	k.released.Do(func() {
		if k.cow != nil {
			k.cow.release(k.ver)
		}
		if k.view != nil {
			_ = k.view.Close()
		}
	})
}

func (k *frozenKeyed) encode() (map[int][]byte, error) {
	out := make(map[int][]byte, k.groups.Len())
	event, processing := timersByGroup(k.event), timersByGroup(k.processing)
	// Each state's blob is appended to one buffer, reused from group to
	// group, and copied once into the group's blob of the right size.
	var buf []byte
	ends := make([]int, len(k.names))
	for kg := k.groups.Start; kg < k.groups.End; kg++ {
		buf = buf[:0]
		for i, name := range k.names {
			var err error
			if buf, err = k.states[i].appendGroup(buf, kg-k.groups.Start); err != nil {
				return nil, fmt.Errorf("snapshot state %q key group %d: %w", name, kg, err)
			}
			ends[i] = len(buf)
		}
		size := len(groupMagic) + 1 + 2*binary.MaxVarintLen64 + len(buf) + 4
		for _, name := range k.names {
			size += 2*binary.MaxVarintLen64 + len(name)
		}
		b := make([]byte, 0, size)
		b = append(b, groupMagic...)
		b = append(b, groupVersion)
		b = binary.AppendUvarint(b, uint64(kg))
		b = binary.AppendUvarint(b, uint64(len(k.names)))
		start := 0
		for i, name := range k.names {
			b = appendSnapBytes(b, []byte(name))
			b = appendSnapBytes(b, buf[start:ends[i]])
			start = ends[i]
		}
		b = appendTimers(b, event[kg])
		b = appendTimers(b, processing[kg])
		out[kg] = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	return out, nil
}

// timersByGroup returns the timers of set by key group, each group's in
// (time, key) order.
func timersByGroup(set map[timerKey]struct{}) map[int][]timerKey {
	by := map[int][]timerKey{}
	for k := range set {
		by[k.kg] = append(by[k.kg], k)
	}
	for _, ks := range by {
		slices.SortFunc(ks, func(a, b timerKey) int {
			if a.ts != b.ts {
				return cmp.Compare(a.ts, b.ts)
			}
			return strings.Compare(a.key, b.key)
		})
	}
	return by
}

func appendTimers(b []byte, ks []timerKey) []byte {
	b = binary.AppendUvarint(b, uint64(len(ks)))
	for _, k := range ks {
		b = binary.AppendVarint(b, k.ts)
		b = binary.AppendUvarint(b, uint64(len(k.key)))
		b = append(b, k.key...)
	}
	return b
}

// restoreKeyed restores key-group blobs written by snapshotKeyed, from
// subtasks of any parallelism, into the backend and timers of a subtask
// whose states are registered (after its function's Open) and empty. Each
// blob must be of a key group in be.groups. A state the operator does not
// register is refused unless allowNonRestored, which drops it. On error the
// backend holds part of the state and must be discarded.
//
// Restored processing-time timers are in t but not scheduled with the
// task: the caller does that.
func restoreKeyed(be *keyedBackend, t *timers, groups map[int][]byte, allowNonRestored bool) error {
	for _, kg := range slices.Sorted(maps.Keys(groups)) {
		if err := restoreGroup(be, t, kg, groups[kg], allowNonRestored); err != nil {
			return err
		}
	}
	return nil
}

func restoreGroup(be *keyedBackend, t *timers, kg int, b []byte, allowNonRestored bool) error {
	if !be.groups.Contains(kg) {
		return fmt.Errorf("restore key group %d: outside this subtask's key groups %d-%d", kg, be.groups.Start, be.groups.End-1)
	}
	if len(b) < len(groupMagic)+1+4 || string(b[:len(groupMagic)]) != groupMagic {
		return fmt.Errorf("restore key group %d: %w: not a key group snapshot", kg, errSnapshotCorrupt)
	}
	if v := b[len(groupMagic)]; v != groupVersion {
		return fmt.Errorf("restore key group %d: %w %d (this SDK reads %d)", kg, errSnapshotVersion, v, groupVersion)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return fmt.Errorf("restore key group %d: %w: checksum mismatch", kg, errSnapshotCorrupt)
	}
	r := snapReader{b: body[len(groupMagic)+1:]}
	if got := r.uvarint(); r.err == nil && got != uint64(kg) {
		return fmt.Errorf("restore key group %d: %w: the blob is of key group %d", kg, errSnapshotCorrupt, got)
	}
	n := r.count()
	for range n {
		name, blob := string(r.bytes()), r.bytes()
		if r.err != nil {
			break
		}
		s, ok := be.states[name]
		if !ok {
			if allowNonRestored {
				continue
			}
			return fmt.Errorf("restore key group %d: state %q: %w", kg, name, errUnknownState)
		}
		sn, ok := s.(snapshotter)
		if !ok {
			return fmt.Errorf("restore state %q key group %d: %T cannot be restored", name, kg, s)
		}
		if err := sn.readGroup(kg-be.groups.Start, blob); err != nil {
			return fmt.Errorf("restore state %q key group %d: %w", name, kg, err)
		}
	}
	for _, processing := range []bool{false, true} {
		n := r.count()
		if n > 0 && t == nil {
			return fmt.Errorf("restore key group %d: %d timers for an operator without timers", kg, n)
		}
		for range n {
			ts, key := r.varint(), r.bytes()
			if r.err != nil {
				break
			}
			q := &t.event
			if processing {
				q = &t.processing
			}
			q.add(timerKey{ts: ts, kg: kg, key: string(key)})
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the timers", errSnapshotCorrupt, len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("restore key group %d: %w", kg, r.err)
	}
	return nil
}

func appendSnapBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// snapReader reads the framing of snapshots. The first error sticks; reads
// after it return zero values.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail() {
	r.err, r.b = fmt.Errorf("%w: truncated or malformed", errSnapshotCorrupt), nil
}

func (r *snapReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a length and that many bytes, aliasing the input.
func (r *snapReader) bytes() []byte {
	l := r.uvarint()
	if r.err != nil {
		return nil
	}
	if l > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	b := r.b[:l:l]
	r.b = r.b[l:]
	return b
}

// count reads a number of items of at least one byte each, so that a
// corrupt count cannot ask for more than the input holds.
func (r *snapReader) count() int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}
