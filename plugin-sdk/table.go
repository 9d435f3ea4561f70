package sdk

import "iter"

// table maps encoded keys to entries. Go maps keyed by short strings are
// several times slower than maps keyed by integers, so the table is an
// integer map from a 64-bit hash of the key bytes to a chain of entries
// holding the key itself: one hash, one integer lookup, one short string
// comparison per record.
type table[V any] struct {
	m map[uint64]*entry[V]
	n int
}

// entry keeps short keys inline, so that comparing a key does not touch
// another cache line; longer keys live in a string.
type entry[V any] struct {
	short [shortKey]byte
	klen  int
	long  string
	val   V
	next  *entry[V]
	// expires is when the entry's time to live ends (Unix ms), or 0.
	expires int64
}

const shortKey = 16

func (e *entry[V]) is(key []byte) bool {
	if len(key) != e.klen {
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

func newTable[V any]() *table[V] { return &table[V]{m: map[uint64]*entry[V]{}} }

// get returns the entry of key, or nil.
func (t *table[V]) get(h uint64, key []byte) *entry[V] {
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
	e = &entry[V]{klen: len(key), next: t.m[h]}
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
		switch {
		case prev != nil:
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

// all iterates over the entries in no particular order.
func (t *table[V]) all() iter.Seq[*entry[V]] {
	return func(yield func(*entry[V]) bool) {
		for _, e := range t.m {
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
	for h, e := range t.m {
		var keep *entry[V]
		var last *entry[V]
		for ; e != nil; e = e.next {
			if e.expires != 0 && e.expires <= now {
				t.n--
				continue
			}
			c := e
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
