package sdk

import (
	"fmt"
	"iter"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// ValueState holds one value per key.
type ValueState[T any] interface {
	// Value returns the current key's value and whether it has one.
	Value() (T, bool)
	// Update sets the current key's value.
	Update(v T)
	// Clear removes the current key's value.
	Clear()
}

// ListState holds a list of values per key.
type ListState[T any] interface {
	// Get returns the current key's list; the caller must not keep it
	// across calls that change the state.
	Get() []T
	Add(v T)
	Update(vs []T)
	Clear()
}

// MapState holds a map per key.
type MapState[UK comparable, UV any] interface {
	Get(k UK) (UV, bool)
	Put(k UK, v UV)
	Remove(k UK)
	Contains(k UK) bool
	// All iterates over the current key's entries.
	All() iter.Seq2[UK, UV]
	Len() int
	Clear()
}

// ReducingState folds the values added for a key into one with a reduce
// function.
type ReducingState[T any] interface {
	Get() (T, bool)
	Add(v T)
	Clear()
}

// keyedBackend is the in-memory keyed state of one operator subtask. State
// is organised by key group from the start, so that snapshots can be taken
// and redistributed by key-group range. Keys are the encoded key bytes; the
// operator sets the current key, its hash and its group before each record.
type keyedBackend struct {
	groups keygroup.Range
	key    []byte // the current key, encoded
	hash   uint64 // keygroup.Hash(key)
	kg     int    // the current key group, relative to groups.Start
	states map[string]any
	// sweepNext is the next key group (by position) the TTL sweep visits.
	sweepNext int
	// pb is the Pebble store of the state, nil when it is in memory.
	pb *pebbleBackend
	// naming is the name of the state being registered.
	naming string
	// cow versions the in-memory tables for asynchronous snapshots.
	cow *cowClock
}

func newKeyedBackend(groups keygroup.Range) *keyedBackend {
	return &keyedBackend{groups: groups, states: map[string]any{}, cow: newCowClock()}
}

// setKey makes an encoded key current, with its keygroup.Hash. It is
// called between records, which is when the Pebble store writes back what
// the previous records changed.
func (be *keyedBackend) setKey(key []byte, hash uint64, kg int) {
	if be.pb != nil && be.pb.dirty >= pebbleFlushEntries {
		be.pb.flush()
	}
	be.key = key
	be.hash = hash
	be.kg = kg - be.groups.Start
}

// tables is one table per key group of the backend, with the state's time
// to live: the store of one state. On the Pebble backend the tables are
// not used and pb keeps the entries.
type tables[V any] struct {
	t     []*table[V]
	ttl   int64          // ms; 0: entries live until cleared
	codec *stateCodec[V] // built at registration, for snapshots
	pb    *pebbleTable[V]
}

func newTables[V any](be *keyedBackend, cfg stateConfig) tables[V] {
	t := tables[V]{ttl: cfg.ttl.Milliseconds(), codec: newStateCodec[V]()}
	if be.pb != nil {
		t.pb = newPebbleTable(be.pb, be.naming, t.ttl, t.codec)
		return t
	}
	t.t = make([]*table[V], be.groups.Len())
	clone := deepCopier(t.codec)
	for i := range t.t {
		t.t[i] = newTable(be.cow, clone)
	}
	return t
}

// get returns the current key's entry; an expired one is removed and not
// returned.
func (t tables[V]) get(be *keyedBackend) *entry[V] { return t.getAt(be.kg, be.hash, be.key) }

// getAt returns the entry of key in key group kg (relative to the
// backend's range), with hash its keygroup.Hash.
func (t tables[V]) getAt(kg int, hash uint64, key []byte) *entry[V] {
	if t.pb != nil {
		return t.pb.get(kg, hash, key)
	}
	e := t.t[kg].get(hash, key)
	if e != nil && t.ttl > 0 && e.expires <= time.Now().UnixMilli() {
		t.t[kg].del(hash, key)
		return nil
	}
	return e
}

// put returns the current key's entry, creating it; a write renews the
// time to live, as Flink's OnCreateAndWrite does.
func (t tables[V]) put(be *keyedBackend) (*entry[V], bool) { return t.putAt(be.kg, be.hash, be.key) }

func (t tables[V]) putAt(kg int, hash uint64, key []byte) (*entry[V], bool) {
	if t.pb != nil {
		return t.pb.put(kg, hash, key)
	}
	tab := t.t[kg]
	if t.ttl > 0 {
		if e := t.getAt(kg, hash, key); e == nil {
			// Expired or absent: start afresh.
			e, _ := tab.put(hash, key)
			e.expires = time.Now().UnixMilli() + t.ttl
			return e, true
		}
	}
	e, created := tab.put(hash, key)
	if t.ttl > 0 {
		e.expires = time.Now().UnixMilli() + t.ttl
	}
	return e, created
}

// set returns the current key's entry for a write that replaces its value
// whole: on Pebble, without reading what the database holds.
func (t tables[V]) set(be *keyedBackend) *entry[V] {
	if t.pb != nil {
		return t.pb.set(be.kg, be.hash, be.key)
	}
	e, _ := t.putAt(be.kg, be.hash, be.key)
	return e
}

func (t tables[V]) del(be *keyedBackend) { t.delAt(be.kg, be.hash, be.key) }

func (t tables[V]) delAt(kg int, hash uint64, key []byte) {
	if t.pb != nil {
		t.pb.del(kg, hash, key)
		return
	}
	t.t[kg].del(hash, key)
}

// len returns the number of entries over all key groups.
func (t tables[V]) len() int {
	if t.pb != nil {
		return t.pb.len()
	}
	n := 0
	for _, tab := range t.t {
		n += tab.len()
	}
	return n
}

// expireGroup removes the expired entries of one key group (by position in
// the backend's range); states without a time to live have none.
func (t tables[V]) expireGroup(g int, now int64) {
	if t.ttl <= 0 {
		return
	}
	if t.pb != nil {
		t.pb.expireGroup(g, now)
		return
	}
	t.t[g].expire(now)
}

// expirer is implemented by the state types, for the background sweep.
type expirer interface {
	expireGroup(g int, now int64)
}

// sweep removes expired entries of the next key group of every state, so
// that keys never touched again do not keep their expired state forever.
// Operators call it when their task is idle, one key group at a time.
func (be *keyedBackend) sweep() {
	if be.groups.Len() == 0 {
		return
	}
	if be.pb != nil {
		be.pb.flush()
	}
	now := time.Now().UnixMilli()
	g := be.sweepNext % be.groups.Len()
	be.sweepNext = g + 1
	for _, s := range be.states {
		if e, ok := s.(expirer); ok {
			e.expireGroup(g, now)
		}
	}
}

// StateOption configures a keyed state.
type StateOption func(*stateConfig)

type stateConfig struct {
	ttl time.Duration
}

// WithTTL makes entries expire d after they were last written: an expired
// value is never returned, and is removed when next touched.
func WithTTL(d time.Duration) StateOption { return func(c *stateConfig) { c.ttl = d } }

func stateOptions(opts []StateOption) stateConfig {
	var c stateConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// register returns the state named name, creating it with create, or
// panics when the name is taken by a state of another type (Open turns the
// panic into an error).
func register[S any](ctx RuntimeContext, name string, create func(*keyedBackend) S) S {
	be := ctx.state()
	if be == nil {
		panic(fmt.Sprintf("sdk: state %q: keyed state is only available in keyed operators (after KeyBy)", name))
	}
	if s, ok := be.states[name]; ok {
		if typed, ok := s.(S); ok {
			return typed
		}
		panic(fmt.Sprintf("sdk: state %q is registered twice with different types", name))
	}
	be.naming = name
	s := create(be)
	be.naming = ""
	be.states[name] = s
	return s
}

// NewValueState returns the value state called name of the operator whose
// function is being opened. Call it from Open.
func NewValueState[T any](ctx RuntimeContext, name string, opts ...StateOption) ValueState[T] {
	return register(ctx, name, func(be *keyedBackend) *valueState[T] {
		return &valueState[T]{be: be, t: newTables[T](be, stateOptions(opts))}
	})
}

type valueState[T any] struct {
	be *keyedBackend
	t  tables[T]
}

func (s *valueState[T]) Value() (T, bool) {
	if e := s.t.get(s.be); e != nil {
		return e.val, true
	}
	var zero T
	return zero, false
}

func (s *valueState[T]) Update(v T) {
	s.t.set(s.be).val = v
}

func (s *valueState[T]) Clear() { s.t.del(s.be) }

// NewListState returns the list state called name.
func NewListState[T any](ctx RuntimeContext, name string, opts ...StateOption) ListState[T] {
	return register(ctx, name, func(be *keyedBackend) *listState[T] {
		return &listState[T]{be: be, t: newTables[[]T](be, stateOptions(opts))}
	})
}

type listState[T any] struct {
	be *keyedBackend
	t  tables[[]T]
}

func (s *listState[T]) Get() []T {
	if e := s.t.get(s.be); e != nil {
		return e.val
	}
	return nil
}

func (s *listState[T]) Add(v T) {
	e, _ := s.t.put(s.be)
	e.val = append(e.val, v)
}

func (s *listState[T]) Update(vs []T) {
	if len(vs) == 0 {
		s.Clear()
		return
	}
	e := s.t.set(s.be)
	e.val = append(e.val[:0:0], vs...)
}

func (s *listState[T]) Clear() { s.t.del(s.be) }

// NewMapState returns the map state called name.
func NewMapState[UK comparable, UV any](ctx RuntimeContext, name string, opts ...StateOption) MapState[UK, UV] {
	return register(ctx, name, func(be *keyedBackend) *mapState[UK, UV] {
		return &mapState[UK, UV]{be: be, t: newTables[map[UK]UV](be, stateOptions(opts))}
	})
}

type mapState[UK comparable, UV any] struct {
	be *keyedBackend
	t  tables[map[UK]UV]
}

func (s *mapState[UK, UV]) cur() map[UK]UV {
	if e := s.t.get(s.be); e != nil {
		return e.val
	}
	return nil
}

func (s *mapState[UK, UV]) Get(k UK) (UV, bool) {
	v, ok := s.cur()[k]
	return v, ok
}

func (s *mapState[UK, UV]) Put(k UK, v UV) {
	e, _ := s.t.put(s.be)
	if e.val == nil {
		e.val = map[UK]UV{}
	}
	e.val[k] = v
}

func (s *mapState[UK, UV]) Remove(k UK) {
	m := s.cur()
	if m == nil {
		return
	}
	delete(m, k)
	if len(m) == 0 {
		s.Clear()
	}
}

func (s *mapState[UK, UV]) Contains(k UK) bool {
	_, ok := s.cur()[k]
	return ok
}

func (s *mapState[UK, UV]) All() iter.Seq2[UK, UV] {
	m := s.cur()
	return func(yield func(UK, UV) bool) {
		for k, v := range m {
			if !yield(k, v) {
				return
			}
		}
	}
}

func (s *mapState[UK, UV]) Len() int { return len(s.cur()) }
func (s *mapState[UK, UV]) Clear()   { s.t.del(s.be) }

// NewReducingState returns the reducing state called name, which combines
// the values added for a key with reduce.
func NewReducingState[T any](ctx RuntimeContext, name string, reduce func(a, b T) T, opts ...StateOption) ReducingState[T] {
	return register(ctx, name, func(be *keyedBackend) *reducingState[T] {
		return &reducingState[T]{valueState: valueState[T]{be: be, t: newTables[T](be, stateOptions(opts))}, reduce: reduce}
	})
}

type reducingState[T any] struct {
	valueState[T]
	reduce func(a, b T) T
}

func (s *reducingState[T]) Get() (T, bool) { return s.Value() }

func (s *reducingState[T]) Add(v T) { s.addGet(v) }

// addGet adds v and returns the new reduction with one lookup of the key.
func (s *reducingState[T]) addGet(v T) T {
	e, created := s.t.put(s.be)
	if created {
		e.val = v
	} else {
		e.val = s.reduce(e.val, v)
	}
	return e.val
}

// AggregateFunction folds records into an accumulator and turns it into a
// result; Merge combines two accumulators (session windows merge theirs).
// Its methods must not keep references to their arguments.
type AggregateFunction[IN, ACC, OUT any] interface {
	CreateAccumulator() ACC
	Add(acc ACC, v IN) ACC
	Result(acc ACC) OUT
	Merge(a, b ACC) ACC
}

// AggregatingState keeps one accumulator per key.
type AggregatingState[IN, OUT any] interface {
	// Get returns the result for the current key, if it has values.
	Get() (OUT, bool)
	Add(v IN)
	Clear()
}

// NewAggregatingState returns the aggregating state called name.
func NewAggregatingState[IN, ACC, OUT any](ctx RuntimeContext, name string, agg AggregateFunction[IN, ACC, OUT], opts ...StateOption) AggregatingState[IN, OUT] {
	return register(ctx, name, func(be *keyedBackend) *aggregatingState[IN, ACC, OUT] {
		return &aggregatingState[IN, ACC, OUT]{be: be, t: newTables[ACC](be, stateOptions(opts)), agg: agg}
	})
}

type aggregatingState[IN, ACC, OUT any] struct {
	be  *keyedBackend
	t   tables[ACC]
	agg AggregateFunction[IN, ACC, OUT]
}

func (s *aggregatingState[IN, ACC, OUT]) Get() (OUT, bool) {
	if e := s.t.get(s.be); e != nil {
		return s.agg.Result(e.val), true
	}
	var zero OUT
	return zero, false
}

func (s *aggregatingState[IN, ACC, OUT]) Add(v IN) {
	e, created := s.t.put(s.be)
	if created {
		e.val = s.agg.CreateAccumulator()
	}
	e.val = s.agg.Add(e.val, v)
}

func (s *aggregatingState[IN, ACC, OUT]) Clear() { s.t.del(s.be) }

func (s *valueState[T]) expireGroup(g int, now int64)    { s.t.expireGroup(g, now) }
func (s *listState[T]) expireGroup(g int, now int64)     { s.t.expireGroup(g, now) }
func (s *mapState[UK, UV]) expireGroup(g int, now int64) { s.t.expireGroup(g, now) }
func (s *aggregatingState[IN, ACC, OUT]) expireGroup(g int, now int64) {
	s.t.expireGroup(g, now)
}
