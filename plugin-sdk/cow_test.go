package sdk

// Tests of the in-memory backend's copy-on-write snapshots: a snapshot
// frozen in the task's goroutine and written while the task changes its
// state is exactly the state at the freeze, and the live state is exactly
// what the task made of it.

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// cowPoint is a state value that user code can change through its pointer
// without an Update.
type cowPoint struct{ X, Y int64 }

// A snapshot written in another goroutine while every kind of state
// changes (updates, list and map changes in place, clears, new keys,
// expiries, values changed through a pointer) holds the state as it was
// frozen, byte for byte; the state read after holds every change.
func TestFrozenSnapshotWhileStateChanges(t *testing.T) {
	all := keygroup.Range{Start: 0, End: snapMaxP}
	s := newSnapSubtask(all, "")
	rt := s.core.runtime()
	points := NewValueState[*cowPoint](rt, "points")
	short := NewValueState[string](rt, "short", WithTTL(300*time.Millisecond))
	const keys = 2000
	for i := range keys {
		s.setKey(t, snapKey(i))
		s.count.Update(int64(i))
		s.seen.Add("a")
		s.seen.Add(fmt.Sprint(i))
		s.attrs.Put("x", i)
		s.attrs.Put("y", -i)
		s.sum.Add(int64(i))
		s.avg.Add(int64(i))
		points.Update(&cowPoint{X: int64(i)})
		short.Update("soon gone")
		s.core.timerService().RegisterEventTimeTimer(1000 + int64(i))
	}
	// The blobs as a synchronous snapshot writes them.
	want, err := snapshotKeyed(s.core.be, s.core.timers)
	if err != nil {
		t.Fatal(err)
	}

	f, err := freezeKeyed(s.core.be, s.core.timers, false)
	if err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	type written struct {
		groups map[int][]byte
		err    error
	}
	done := make(chan written, 1)
	go func() {
		<-start
		g, err := f.KeyGroups()
		done <- written{g, err}
	}()
	change := func(i int) {
		s.setKey(t, snapKey(i))
		s.core.timerService().DeleteEventTimeTimer(1000 + int64(i))
		s.core.timerService().RegisterEventTimeTimer(5000 + int64(i))
		switch i % 6 {
		case 0:
			s.count.Update(-1)
			s.seen.Add("b") // appended in place
			s.attrs.Put("x", -1)
			s.attrs.Remove("y")
		case 1:
			s.count.Clear()
			s.seen.Update([]string{"new"})
			s.attrs.Clear()
		case 2:
			s.sum.Add(1000)
			s.avg.Add(1000)
			p, _ := points.Value()
			p.Y = 99 // through the pointer, no Update
		case 3:
			s.seen.Clear()
			s.sum.Clear()
			points.Clear()
		default:
			s.attrs.Put(fmt.Sprint("z", i), i)
			s.seen.Add("c")
		}
	}
	for i := range keys / 2 {
		change(i)
	}
	close(start) // the rest changes while the snapshot is written
	for i := keys / 2; i < keys; i++ {
		change(i)
	}
	for i := keys; i < keys+500; i++ { // new keys
		s.setKey(t, snapKey(i))
		s.count.Update(int64(i))
		s.seen.Add("n")
	}
	// The short-lived values expire and are swept from the live state.
	time.Sleep(400 * time.Millisecond)
	for range snapMaxP {
		s.core.be.sweep()
	}
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	// Map values are encoded in map order, so the blobs are compared by
	// what they restore to.
	if len(got.groups) != len(want) {
		t.Fatalf("frozen snapshot has %d key groups, want %d", len(got.groups), len(want))
	}
	restored := func(groups map[int][]byte) (*snapSubtask, ValueState[*cowPoint], string) {
		t.Helper()
		r := newSnapSubtask(all, "")
		rpoints := NewValueState[*cowPoint](r.core.runtime(), "points")
		rshort := NewValueState[string](r.core.runtime(), "short", WithTTL(time.Hour))
		if err := restoreKeyed(r.core.be, r.core.timers, groups, false); err != nil {
			t.Fatal(err)
		}
		var dump bytes.Buffer
		for i := range keys + 500 {
			r.setKey(t, snapKey(i))
			c, cok := r.count.Value()
			sum, sok := r.sum.Get()
			avg, aok := r.avg.Get()
			p, pok := rpoints.Value()
			sh, shok := rshort.Value()
			fmt.Fprintln(&dump, snapKey(i), c, cok, r.seen.Get(), maps.Collect(r.attrs.All()), sum, sok, avg, aok, p, pok, sh, shok)
		}
		return r, rpoints, dump.String()
	}
	wantSub, _, wantDump := restored(want)
	r, rpoints, gotDump := restored(got.groups)
	if gotDump != wantDump {
		t.Fatalf("the frozen snapshot restores to\n%.2000s\nwant the state at the freeze\n%.2000s", gotDump, wantDump)
	}
	if got, want := r.fireAll(t), wantSub.fireAll(t); !slices.Equal(got, want) || len(got) != keys {
		t.Fatalf("the frozen snapshot's timers fire %d times (%.200v), want the %d at the freeze (%.200v)", len(got), got, len(want), want)
	}
	if r := s.core.be.cow.required.Load(); r != 0 {
		t.Fatalf("after the snapshot was written, version %d is still required", r)
	}

	// The frozen snapshot restores to the state at the freeze.
	for i := range keys {
		r.setKey(t, snapKey(i))
		if v, ok := r.count.Value(); !ok || v != int64(i) {
			t.Fatalf("restored %s: count %d %v, want %d", snapKey(i), v, ok, i)
		}
		if got, want := fmt.Sprint(r.seen.Get()), fmt.Sprintf("[a %d]", i); got != want {
			t.Fatalf("restored %s: list %s, want %s", snapKey(i), got, want)
		}
		if x, _ := r.attrs.Get("x"); x != i || r.attrs.Len() != 2 {
			t.Fatalf("restored %s: map %v, want x=%d y=%d", snapKey(i), maps.Collect(r.attrs.All()), i, -i)
		}
		if p, ok := rpoints.Value(); !ok || *p != (cowPoint{X: int64(i)}) {
			t.Fatalf("restored %s: point %+v %v, want {X:%d}", snapKey(i), p, ok, i)
		}
	}

	// The live state holds every change.
	for i := range keys {
		s.setKey(t, snapKey(i))
		count, hasCount := s.count.Value()
		sum, _ := s.sum.Get()
		p, hasPoint := points.Value()
		list := fmt.Sprint(s.seen.Get())
		attrs := fmt.Sprint(maps.Collect(s.attrs.All()))
		var ok bool
		switch i % 6 {
		case 0:
			ok = count == -1 && list == fmt.Sprintf("[a %d b]", i) && attrs == "map[x:-1]"
		case 1:
			ok = !hasCount && list == "[new]" && attrs == "map[]"
		case 2:
			ok = sum == int64(i)+1000 && hasPoint && *p == cowPoint{X: int64(i), Y: 99}
		case 3:
			ok = list == "[]" && !hasPoint && count == int64(i)
		default:
			ok = list == fmt.Sprintf("[a %d c]", i) && s.attrs.Len() == 3
		}
		if !ok {
			t.Fatalf("live %s after the snapshot: count %d %v, list %s, map %s, sum %d, point %+v", snapKey(i), count, hasCount, list, attrs, sum, p)
		}
		if v, ok := short.Value(); ok {
			t.Fatalf("live %s: %q outlived its time to live", snapKey(i), v)
		}
	}
	if n := s.count.(*valueState[int64]).t.len(); n != keys-keys/6-1+500 {
		t.Fatalf("%d counts live, want %d", n, keys-keys/6-1+500)
	}
}

// Chains of entries whose keys share a hash: a change to any entry of a
// frozen chain leaves the frozen chain as it was. Snapshots overlap, and
// once the last is released nothing is copied any more.
func TestCopyOnWriteChains(t *testing.T) {
	cow := newCowClock()
	tab := newTable[[]int](cow, func(v []int) []int { return slices.Clone(v) })
	const h = 42
	for _, k := range []string{"a", "b", "c", "d", "a-key-longer-than-sixteen"} {
		e, _ := tab.put(h, []byte(k))
		e.val = []int{1}
	}
	tab.put(7, []byte("alone"))
	dump := func(m map[uint64]*entry[[]int]) string {
		var out []string
		for e := range chains(m) {
			out = append(out, fmt.Sprintf("%s=%v", e.Key(), e.val))
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}
	frozen1 := tab.m
	v1 := cow.freeze()
	want1 := dump(frozen1)

	// Change the middle and the tail of the chain, remove an entry, add one.
	tab.get(h, []byte("c")).val[0] = 2
	e, _ := tab.put(h, []byte("a"))
	e.val = append(e.val, 3)
	tab.del(h, []byte("b"))
	tab.put(h, []byte("e"))
	if got := dump(frozen1); got != want1 {
		t.Fatalf("frozen chain changed: %s, want %s", got, want1)
	}
	if got, want := dump(tab.m), "[a-key-longer-than-sixteen=[1] a=[1 3] alone=[] c=[2] d=[1] e=[]]"; got != want {
		t.Fatalf("live table %s, want %s", got, want)
	}

	// A second snapshot while the first is live, then more changes.
	frozen2 := tab.m
	v2 := cow.freeze()
	want2 := dump(frozen2)
	tab.del(h, []byte("a-key-longer-than-sixteen"))
	tab.get(h, []byte("d")).val[0] = 4
	tab.get(7, []byte("alone")).val = []int{5}
	cow.release(v1)
	if cow.required.Load() != v2 {
		t.Fatalf("after the first release, version %d is required, want %d", cow.required.Load(), v2)
	}
	tab.get(h, []byte("e")).val = []int{6}
	if got := dump(frozen1); got != want1 {
		t.Fatalf("first frozen table changed: %s, want %s", got, want1)
	}
	if got := dump(frozen2); got != want2 {
		t.Fatalf("second frozen table changed: %s, want %s", got, want2)
	}
	if tab.len() != 5 {
		t.Fatalf("%d keys live, want 5", tab.len())
	}

	// Entries with expiries, some of which end while frozen.
	for i, k := range []string{"a", "c", "d"} {
		tab.get(h, []byte(k)).expires = int64(10 * (i + 1)) // 10, 20, 30
	}
	frozen3 := tab.m
	v3 := cow.freeze()
	want3 := dump(frozen3)
	tab.expire(25)
	if got := dump(frozen3); got != want3 {
		t.Fatalf("frozen table changed by an expiry: %s, want %s", got, want3)
	}
	if got, want := dump(tab.m), "[alone=[5] d=[4] e=[6]]"; got != want {
		t.Fatalf("live table after the expiry %s, want %s", got, want)
	}
	cow.release(v2)
	cow.release(v3)
	if cow.required.Load() != 0 {
		t.Fatalf("after every release, version %d is required", cow.required.Load())
	}

	// Nothing is frozen: entries and the map are changed in place.
	m := tab.m
	d := tab.get(h, []byte("d"))
	if again := tab.get(h, []byte("d")); again != d {
		t.Fatal("an entry was copied with no snapshot live")
	}
	tab.put(h, []byte("f"))
	if _, ok := m[h]; !ok || len(m) != len(tab.m) {
		t.Fatal("the map was cloned with no snapshot live")
	}
}

// Which values are copied deeply when a frozen entry changes.
func TestMutableTypes(t *testing.T) {
	type flat struct {
		A int
		B string
		C [2]float64
		T time.Time
	}
	type withSlice struct {
		A int
		B []byte
	}
	for _, c := range []struct {
		name string
		copy bool
	}{
		{"int64", deepCopier(newStateCodec[int64]()) != nil},
		{"string", deepCopier(newStateCodec[string]()) != nil},
		{"flat struct", deepCopier(newStateCodec[flat]()) != nil},
		{"struct with a slice", deepCopier(newStateCodec[withSlice]()) == nil},
		{"pointer", deepCopier(newStateCodec[*flat]()) == nil},
		{"map", deepCopier(newStateCodec[map[string]int]()) == nil},
		{"slice", deepCopier(newStateCodec[[]string]()) == nil},
		{"func (no codec)", deepCopier(newStateCodec[func()]()) != nil},
	} {
		if c.copy {
			t.Errorf("%s: wrong copier", c.name)
		}
	}
	clone := deepCopier(newStateCodec[map[string][]int]())
	orig := map[string][]int{"a": {1, 2}}
	cp := clone(orig)
	cp["a"][0] = 9
	cp["b"] = nil
	if orig["a"][0] != 1 || len(orig) != 1 {
		t.Fatalf("the deep copy shares memory with the original: %v", orig)
	}
}

// The keyed operators' snapshots are frozen and written later; a
// savepoint's entries are in key order, so its bytes are canonical.
func TestOperatorSnapshotsAreDeferred(t *testing.T) {
	core := newSnapCore(keygroup.Range{Start: 0, End: snapMaxP})
	count := NewValueState[int64](core.runtime(), "count")
	for i := range 3000 {
		if err := core.setKey(snapKey(i)); err != nil {
			t.Fatal(err)
		}
		count.Update(int64(i))
	}
	op := &engine.Operator{Close: func() error { return nil }}
	if err := core.checkpoint(op); err != nil {
		t.Fatal(err)
	}
	want, err := snapshotKeyed(core.be, core.timers)
	if err != nil {
		t.Fatal(err)
	}
	for _, savepoint := range []bool{false, true} {
		snap, err := op.Snapshot(engine.CheckpointOptions{ID: 1, Savepoint: savepoint})
		if err != nil {
			t.Fatal(err)
		}
		if snap.Deferred == nil || len(snap.KeyGroups) != 0 {
			t.Fatalf("savepoint=%v: the snapshot was written in the task's goroutine", savepoint)
		}
		got, err := snap.Deferred.KeyGroups()
		if err != nil {
			t.Fatal(err)
		}
		same := 0
		for kg, b := range want {
			if bytes.Equal(got[kg], b) {
				same++
			}
		}
		if savepoint && same != len(want) {
			t.Fatalf("savepoint: %d of %d key groups have the canonical bytes", same, len(want))
		}
		if !savepoint && same == len(want) {
			t.Log("checkpoint: every key group happened to be in key order")
		}
	}
}
