package sdk

import (
	"iter"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// table maps encoded keys to entries. Go maps keyed by short strings are
// several times slower than maps keyed by integers, so the table is an
// integer map from a 64-bit hash of the key bytes to a chain of entries
// holding the key itself: one hash, one integer lookup, one short string
// comparison per record.
//
// Tables are copy-on-write, so that a checkpoint of the in-memory state
// backend is written while the task goes on changing its state, as
// Flink's copy-on-write state maps do. A snapshot freezes every table of
// the backend in the task's goroutine: it keeps each table's map as it
// is and moves the backend's version clock on. From then on, until the
// snapshot is released, nothing the snapshot can reach is changed: the
// first change of a frozen map clones it, and an entry made before the
// snapshot is copied (with a deep copy of a value that could be changed
// in place) before it is returned for use, together with the entries
// ahead of it in its chain, whose links change. Freezing costs a pointer
// per key group and state, however large the state; the copies are made
// as the task touches keys, at most once per key per snapshot.
type table[V any] struct {
	m   map[uint64]*entry[V]
	n   int
	cow *cowClock
	// mver is the version the map was made at: frozen while a snapshot
	// of that version or a later one is live.
	mver uint32
	// clone deep-copies a value that can be changed in place (it holds
	// pointers, slices or maps); nil for values that cannot.
	clone func(V) V
}

// entry keeps short keys inline, so that comparing a key does not touch
// another cache line; longer keys live in a string.
type entry[V any] struct {
	short [shortKey]byte
	klen  int32
	// ver is the version the entry was made at: a snapshot of that version
	// or a later one may read it, and then it is not changed.
	ver  uint32
	long string
	val  V
	next *entry[V]
	// expires is when the entry's time to live ends (Unix ms), or 0.
	expires int64
}

const shortKey = 16

func (e *entry[V]) is(key []byte) bool {
	if len(key) != int(e.klen) {
		return false
	}
	if e.klen <= shortKey {
		return string(e.short[:e.klen]) == string(key)
	}
	return e.long == string(key)
}

// Key returns the entry's encoded key.
func (e *entry[V]) Key() []byte {
	if e.klen <= shortKey {
		return e.short[:e.klen]
	}
	return []byte(e.long)
}

// cowClock versions the tables of one keyed backend for copy-on-write
// snapshots. ver is only used by the task's goroutine; a snapshot is
// released from the goroutine that wrote it.
type cowClock struct {
	ver uint32 // the version of what is made now; starts at 1
	// required is the newest version a live snapshot reads, 0 for none:
	// maps and entries of that version or older are frozen.
	required atomic.Uint32
	mu       sync.Mutex
	live     map[uint32]int // live snapshots by version
}

func newCowClock() *cowClock { return &cowClock{ver: 1, live: map[uint32]int{}} }

// frozen reports whether what was made at version v may be read by a live
// snapshot.
func (c *cowClock) frozen(v uint32) bool { return v <= c.required.Load() }

// freeze starts a snapshot of everything made so far and returns its
// version, for release.
func (c *cowClock) freeze() uint32 {
	v := c.ver
	c.ver++
	c.mu.Lock()
	c.live[v]++
	c.required.Store(v) // the newest live snapshot: versions only grow
	c.mu.Unlock()
	return v
}

// release ends the snapshot of version v.
func (c *cowClock) release(v uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live[v]--; c.live[v] <= 0 {
		delete(c.live, v)
	}
	var newest uint32
	for l := range c.live {
		newest = max(newest, l)
	}
	c.required.Store(newest)
}

func newTable[V any](cow *cowClock, clone func(V) V) *table[V] {
	return &table[V]{m: map[uint64]*entry[V]{}, cow: cow, mver: cow.ver, clone: clone}
}

// writableMap makes t.m the table's own, cloning it if a snapshot holds it.
func (t *table[V]) writableMap() {
	if t.cow.frozen(t.mver) {
		t.m = maps.Clone(t.m)
		t.mver = t.cow.ver
	}
}

// copyEntry returns a copy of e made now, its value deep-copied if it
// could be changed in place.
func (t *table[V]) copyEntry(e *entry[V]) *entry[V] {
	c := *e
	c.ver = t.cow.ver
	if t.clone != nil {
		c.val = t.clone(e.val)
	}
	return &c
}

// own returns a copy of the frozen entry target of the chain of h, put in
// its place: the frozen entries ahead of it are copied too, since the link
// to what follows them changes.
func (t *table[V]) own(h uint64, target *entry[V]) *entry[V] {
	t.writableMap()
	var prev *entry[V] // the last entry of the chain that is the table's own
	for e := t.m[h]; ; e = e.next {
		c := e
		if t.cow.frozen(e.ver) {
			c = t.copyEntry(e)
			if prev == nil {
				t.m[h] = c
			} else {
				prev.next = c
			}
		}
		if e == target {
			return c
		}
		prev = c
	}
}

// get returns the entry of key, or nil. The entry is the table's own: the
// caller may change it.
func (t *table[V]) get(h uint64, key []byte) *entry[V] {
	e := t.lookup(h, key)
	if e != nil && t.cow.frozen(e.ver) {
		return t.own(h, e)
	}
	return e
}

// lookup returns the entry of key, or nil, frozen or not.
func (t *table[V]) lookup(h uint64, key []byte) *entry[V] {
	e := t.m[h]
	for e != nil && !e.is(key) {
		e = e.next
	}
	return e
}

// put returns the entry of key, creating it with the zero value; created
// reports whether it did.
func (t *table[V]) put(h uint64, key []byte) (e *entry[V], created bool) {
	if e = t.get(h, key); e != nil {
		return e, false
	}
	t.writableMap()
	e = &entry[V]{klen: int32(len(key)), ver: t.cow.ver, next: t.m[h]}
	if len(key) <= shortKey {
		copy(e.short[:], key)
	} else {
		e.long = string(key)
	}
	t.m[h] = e
	t.n++
	return e, true
}

// del removes key.
func (t *table[V]) del(h uint64, key []byte) {
	var prev *entry[V]
	for e := t.m[h]; e != nil; prev, e = e, e.next {
		if !e.is(key) {
			continue
		}
		t.writableMap()
		switch {
		case prev != nil:
			if t.cow.frozen(prev.ver) {
				prev = t.own(h, prev)
			}
			prev.next = e.next
		case e.next != nil:
			t.m[h] = e.next
		default:
			delete(t.m, h)
		}
		t.n--
		return
	}
}

// len returns the number of keys.
func (t *table[V]) len() int { return t.n }

// all iterates over the entries in no particular order. The entries may
// be frozen: the caller must not change them.
func (t *table[V]) all() iter.Seq[*entry[V]] { return chains(t.m) }

// chains iterates over the entries of a table's map.
func chains[V any](m map[uint64]*entry[V]) iter.Seq[*entry[V]] {
	return func(yield func(*entry[V]) bool) {
		for _, e := range m {
			for ; e != nil; e = e.next {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// expire removes the entries whose time to live ended at or before now.
func (t *table[V]) expire(now int64) {
	expired := func(e *entry[V]) bool { return e.expires != 0 && e.expires <= now }
	for h, head := range t.m {
		n := 0
		for e := head; e != nil; e = e.next {
			if expired(e) {
				n++
			}
		}
		if n == 0 {
			continue
		}
		// t.m may be cloned here; the range goes on over the map it
		// started with, whose chains are the same.
		t.writableMap()
		t.n -= n
		var keep, last *entry[V]
		for e := head; e != nil; e = e.next {
			if expired(e) {
				continue
			}
			c := e
			if t.cow.frozen(e.ver) {
				c = t.copyEntry(e) // its link changes
			}
			if keep == nil {
				keep = c
			} else {
				last.next = c
			}
			last = c
		}
		if last != nil {
			last.next = nil
		}
		if keep == nil {
			delete(t.m, h)
		} else {
			t.m[h] = keep
		}
	}
}

// deepCopier returns a function that copies values of V through their
// codec, or nil when V holds nothing that can be changed in place (then a
// copy of the value is a copy of its bytes). A type the codec cannot
// encode gets nil: its state cannot be snapshotted, so it is never frozen.
func deepCopier[V any](sc *stateCodec[V]) func(V) V {
	if sc.err != nil || !mutable(reflect.TypeFor[V](), 0) {
		return nil
	}
	return func(v V) V {
		b := sc.c.Append(nil, v)
		c, _, err := sc.c.Decode(b)
		if err != nil {
			// The codec decodes what it encoded; anything else is a bug
			// in a user type's UnmarshalEddy.
			panic("sdk: state copy-on-write: decode " + sc.typ + ": " + err.Error())
		}
		return c
	}
}

var timeType = reflect.TypeFor[time.Time]()

// mutable reports whether a value of type t can be changed without
// assigning it: it holds a pointer, a slice, a map, a channel, a function
// or an interface. time.Time's location pointer is never written through.
func mutable(t reflect.Type, depth int) bool {
	if t == timeType {
		return false
	}
	if depth > 32 {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return false
	case reflect.Array:
		return mutable(t.Elem(), depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			if mutable(t.Field(i).Type, depth+1) {
				return true
			}
		}
		return false
	default:
		return true
	}
}
