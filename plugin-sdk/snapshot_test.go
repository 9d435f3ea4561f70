package sdk

// Tests of keyed state snapshots: state of every kind and timers written by
// subtasks at one parallelism and restored by subtasks at another, read back
// through the state handles with each key made current as operators do.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

const snapMaxP = 128

type snapAvg struct{ Sum, N int64 }

type snapAvgAgg struct{}

func (snapAvgAgg) CreateAccumulator() snapAvg { return snapAvg{} }
func (snapAvgAgg) Add(a snapAvg, v int64) snapAvg {
	a.Sum += v
	a.N++
	return a
}
func (snapAvgAgg) Result(a snapAvg) float64   { return float64(a.Sum) / float64(a.N) }
func (snapAvgAgg) Merge(a, b snapAvg) snapAvg { return snapAvg{a.Sum + b.Sum, a.N + b.N} }

// snapSubtask is one subtask of a keyed operator with a state of every
// kind, on the core that keyed operators are built on.
type snapSubtask struct {
	core  *keyedCore[string]
	count ValueState[int64] // with a time to live
	seen  ListState[string]
	attrs MapState[string, int]
	sum   ReducingState[int64]
	avg   AggregatingState[int64, float64]
	fired []string
}

func newSnapCore(r keygroup.Range) *keyedCore[string] {
	kc, err := codec.For[string]()
	if err != nil {
		panic(err)
	}
	return newKeyedCore(&engine.TaskContext{JobName: "snap", MaxParallelism: snapMaxP, KeyGroups: r, Ctx: context.Background()}, kc)
}

// newSnapSubtask registers every state but omit.
func newSnapSubtask(r keygroup.Range, omit string) *snapSubtask {
	s := &snapSubtask{core: newSnapCore(r)}
	rt := s.core.runtime()
	if omit != "count" {
		s.count = NewValueState[int64](rt, "count", WithTTL(time.Hour))
	}
	if omit != "seen" {
		s.seen = NewListState[string](rt, "seen")
	}
	if omit != "attrs" {
		s.attrs = NewMapState[string, int](rt, "attrs")
	}
	if omit != "sum" {
		s.sum = NewReducingState(rt, "sum", func(a, b int64) int64 { return a + b })
	}
	if omit != "avg" {
		s.avg = NewAggregatingState[int64, snapAvg, float64](rt, "avg", snapAvgAgg{})
	}
	s.core.onTimer = func(ns string, ts int64, d TimeDomain) error {
		s.fired = append(s.fired, fmt.Sprintf("%s %v %d %q", s.core.cur, d, ts, ns))
		return nil
	}
	return s
}

func (s *snapSubtask) setKey(t *testing.T, k string) {
	t.Helper()
	if err := s.core.setKey(k); err != nil {
		t.Fatal(err)
	}
}

// fireAll fires every timer and returns what fired.
func (s *snapSubtask) fireAll(t *testing.T) []string {
	t.Helper()
	if err := s.core.advanceWatermark(MaxWatermark); err != nil {
		t.Fatal(err)
	}
	if err := s.core.fireAllProcessing(); err != nil {
		t.Fatal(err)
	}
	return s.fired
}

func snapKey(i int) string { return fmt.Sprintf("k%d", i) }

func subtaskOf(k string, p int) int {
	kc, _ := codec.For[string]()
	return keygroup.Subtask(keygroup.Of(kc.Append(nil, k), snapMaxP), snapMaxP, p)
}

const (
	snapKeys    = 300
	expiredKey  = 7 // its count's time to live has ended at the snapshot
	procTimerAt = int64(1) << 41
)

// fillSnap fills the subtasks of a parallelism with state and timers for
// snapKeys keys, and returns the count's expiry of each key and the timers
// that must fire.
func fillSnap(t *testing.T, subs []*snapSubtask) (expiries map[string]int64, timers []string) {
	expiries = map[string]int64{}
	for i := range snapKeys {
		k := snapKey(i)
		s := subs[subtaskOf(k, len(subs))]
		s.setKey(t, k)
		s.count.Update(int64(i))
		if i%3 != 0 {
			s.seen.Add("a" + k)
			s.seen.Add("b" + k)
		}
		if i%2 == 0 {
			s.attrs.Put("x", i)
			s.attrs.Put("y", -i)
		}
		s.sum.Add(int64(i))
		s.sum.Add(10)
		s.avg.Add(int64(i))
		s.avg.Add(int64(i) + 2)
		e := s.count.(*valueState[int64]).t.get(s.core.be)
		if i == expiredKey {
			e.expires = time.Now().UnixMilli() - 1
		}
		expiries[k] = e.expires

		ts := s.core.timerService()
		ts.RegisterEventTimeTimer(1000 + int64(i))
		ts.RegisterEventTimeTimer(2000 + int64(i))
		ts.RegisterProcessingTimeTimer(procTimerAt + int64(i))
		timers = append(timers,
			fmt.Sprintf("%s %v %d %q", k, EventTime, 1000+i, ""),
			fmt.Sprintf("%s %v %d %q", k, ProcessingTime, procTimerAt+int64(i), ""))
		if i%4 == 0 {
			ts.DeleteEventTimeTimer(2000 + int64(i)) // deleted timers stay out
		} else {
			timers = append(timers, fmt.Sprintf("%s %v %d %q", k, EventTime, 2000+i, ""))
		}
	}
	slices.Sort(timers)
	return expiries, timers
}

// snapshotAll snapshots every subtask and returns the blobs of all key
// groups.
func snapshotAll(t *testing.T, subs []*snapSubtask) map[int][]byte {
	t.Helper()
	all := map[int][]byte{}
	for i, s := range subs {
		blobs, err := snapshotKeyed(s.core.be, s.core.timers)
		if err != nil {
			t.Fatal(err)
		}
		if r := keygroup.For(i, snapMaxP, len(subs)); !slices.Equal(slices.Sorted(maps.Keys(blobs)), rangeGroups(r)) {
			t.Fatalf("subtask %d snapshot groups %v, want %v", i, slices.Sorted(maps.Keys(blobs)), r)
		}
		maps.Copy(all, blobs)
	}
	return all
}

func rangeGroups(r keygroup.Range) []int {
	var kgs []int
	for kg := r.Start; kg < r.End; kg++ {
		kgs = append(kgs, kg)
	}
	return kgs
}

func groupsIn(all map[int][]byte, r keygroup.Range) map[int][]byte {
	out := map[int][]byte{}
	for _, kg := range rangeGroups(r) {
		out[kg] = all[kg]
	}
	return out
}

func TestSnapshotRestoreRescale(t *testing.T) {
	const fromP = 4
	subs := make([]*snapSubtask, fromP)
	for i := range subs {
		subs[i] = newSnapSubtask(keygroup.For(i, snapMaxP, fromP), "")
	}
	expiries, wantTimers := fillSnap(t, subs)
	all := snapshotAll(t, subs)
	if len(all) != snapMaxP {
		t.Fatalf("%d key groups snapshotted, want %d", len(all), snapMaxP)
	}

	for _, p := range []int{2, 4, 8} {
		t.Run(fmt.Sprintf("p%d", p), func(t *testing.T) {
			var fired []string
			keys := 0
			for st := range p {
				r := keygroup.For(st, snapMaxP, p)
				s := newSnapSubtask(r, "")
				if err := restoreKeyed(s.core.be, s.core.timers, groupsIn(all, r), false); err != nil {
					t.Fatal(err)
				}
				for i := range snapKeys {
					k := snapKey(i)
					if subtaskOf(k, p) != st {
						continue
					}
					keys++
					checkSnapKey(t, s, i, expiries[k])
				}
				fired = append(fired, s.fireAll(t)...)
			}
			if keys != snapKeys {
				t.Fatalf("%d keys checked, want %d", keys, snapKeys)
			}
			slices.Sort(fired)
			if !slices.Equal(fired, wantTimers) {
				t.Errorf("timers fired after restore:\n got %d %q\nwant %d %q", len(fired), fired, len(wantTimers), wantTimers)
			}
		})
	}
}

// checkSnapKey checks every state of key i, read through the handles.
func checkSnapKey(t *testing.T, s *snapSubtask, i int, expires int64) {
	t.Helper()
	k := snapKey(i)
	s.setKey(t, k)
	v, ok := s.count.Value()
	switch {
	case i == expiredKey:
		if ok {
			t.Errorf("%s: expired count restored: %d", k, v)
		}
	case !ok || v != int64(i):
		t.Errorf("%s: count %d, %v; want %d", k, v, ok, i)
	default:
		if got := s.count.(*valueState[int64]).t.get(s.core.be).expires; got != expires {
			t.Errorf("%s: count expires at %d, want %d", k, got, expires)
		}
	}
	var wantSeen []string
	if i%3 != 0 {
		wantSeen = []string{"a" + k, "b" + k}
	}
	if got := s.seen.Get(); !slices.Equal(got, wantSeen) {
		t.Errorf("%s: seen %q, want %q", k, got, wantSeen)
	}
	wantAttrs := map[string]int{}
	if i%2 == 0 {
		wantAttrs = map[string]int{"x": i, "y": -i}
	}
	if got := maps.Collect(s.attrs.All()); !maps.Equal(got, wantAttrs) || s.attrs.Len() != len(wantAttrs) {
		t.Errorf("%s: attrs %v, want %v", k, got, wantAttrs)
	}
	if got, ok := s.sum.Get(); !ok || got != int64(i)+10 {
		t.Errorf("%s: sum %d, %v; want %d", k, got, ok, i+10)
	}
	if got, ok := s.avg.Get(); !ok || got != float64(i)+1 {
		t.Errorf("%s: avg %v, %v; want %d", k, got, ok, i+1)
	}
	// The aggregating state goes on from the restored accumulator.
	s.avg.Add(int64(i) + 1)
	if got, _ := s.avg.Get(); got != float64(i)+1 {
		t.Errorf("%s: avg after an add %v, want %d", k, got, i+1)
	}
}

// groupBlob frames state blobs as snapshotKeyed does, for hand-made input.
func groupBlob(kg int, states map[string][]byte) []byte {
	b := append([]byte(groupMagic), groupVersion)
	b = binary.AppendUvarint(b, uint64(kg))
	b = binary.AppendUvarint(b, uint64(len(states)))
	for _, name := range slices.Sorted(maps.Keys(states)) {
		b = appendSnapBytes(b, []byte(name))
		b = appendSnapBytes(b, states[name])
	}
	b = append(b, 0, 0) // no timers
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func TestRestoreRefuses(t *testing.T) {
	r := keygroup.For(0, snapMaxP, 4)
	subs := []*snapSubtask{newSnapSubtask(r, "")}
	// One subtask of four: fill only the keys it owns.
	for i := range snapKeys {
		if k := snapKey(i); subtaskOf(k, 4) == 0 {
			subs[0].setKey(t, k)
			subs[0].count.Update(int64(i) + 1)
			subs[0].seen.Add(k)
		}
	}
	blobs, err := snapshotKeyed(subs[0].core.be, subs[0].core.timers)
	if err != nil {
		t.Fatal(err)
	}
	// A group with state in it.
	kg := -1
	for i := range snapKeys {
		if k := snapKey(i); subtaskOf(k, 4) == 0 {
			kc, _ := codec.For[string]()
			kg = keygroup.Of(kc.Append(nil, k), snapMaxP)
			break
		}
	}
	good := blobs[kg]
	with := func(f func(b []byte) []byte) map[int][]byte {
		return map[int][]byte{kg: f(bytes.Clone(good))}
	}
	stringCount := func() *snapSubtask {
		s := &snapSubtask{core: newSnapCore(r)}
		rt := s.core.runtime()
		NewValueState[string](rt, "count", WithTTL(time.Hour))
		NewListState[string](rt, "seen")
		NewMapState[string, int](rt, "attrs")
		NewReducingState(rt, "sum", func(a, b int64) int64 { return a + b })
		NewAggregatingState[int64, snapAvg, float64](rt, "avg", snapAvgAgg{})
		return s
	}
	undecodable := func(*snapSubtask) map[int][]byte {
		// A valid frame around a value the int64 codec cannot read: a
		// varint cut short.
		state := []byte{stateVersion}
		state = appendSnapBytes(state, []byte("int64"))
		state = append(state, 1)                     // one entry
		state = appendSnapBytes(state, []byte("k1")) // key
		state = append(state, 0, 0x80)               // no expiry; a truncated varint
		return map[int][]byte{kg: groupBlob(kg, map[string][]byte{"count": state})}
	}
	for _, tc := range []struct {
		name   string
		sub    func() *snapSubtask
		groups func(*snapSubtask) map[int][]byte
		allow  bool
		is     error
		want   []string // substrings of the error
	}{
		{name: "flipped byte", groups: func(*snapSubtask) map[int][]byte {
			return with(func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
		}, is: errSnapshotCorrupt, want: []string{fmt.Sprintf("key group %d", kg), "checksum mismatch"}},
		{name: "truncated", groups: func(*snapSubtask) map[int][]byte {
			return with(func(b []byte) []byte { return b[:len(b)-7] })
		}, is: errSnapshotCorrupt, want: []string{fmt.Sprintf("key group %d", kg)}},
		{name: "not a snapshot", groups: func(*snapSubtask) map[int][]byte {
			return with(func(b []byte) []byte { return []byte("{}") })
		}, is: errSnapshotCorrupt, want: []string{"not a key group snapshot"}},
		{name: "future version", groups: func(*snapSubtask) map[int][]byte {
			return with(func(b []byte) []byte { b[len(groupMagic)] = 9; return b })
		}, is: errSnapshotVersion, want: []string{fmt.Sprintf("key group %d", kg), "version 9"}},
		{name: "future state version", groups: func(*snapSubtask) map[int][]byte {
			return map[int][]byte{kg: groupBlob(kg, map[string][]byte{"seen": {7}})}
		}, is: errSnapshotVersion, want: []string{fmt.Sprintf(`restore state "seen" key group %d`, kg), "state format 7"}},
		{name: "group of another subtask", groups: func(*snapSubtask) map[int][]byte {
			return map[int][]byte{r.End: good}
		}, want: []string{fmt.Sprintf("restore key group %d: outside this subtask's key groups %d-%d", r.End, r.Start, r.End-1)}},
		{name: "blob of another group", groups: func(*snapSubtask) map[int][]byte {
			other := r.Start
			if other == kg {
				other++
			}
			return map[int][]byte{other: good}
		}, is: errSnapshotCorrupt, want: []string{fmt.Sprintf("the blob is of key group %d", kg)}},
		{name: "unknown state", sub: func() *snapSubtask { return newSnapSubtask(r, "seen") },
			groups: func(*snapSubtask) map[int][]byte { return blobs },
			is:     errUnknownState, want: []string{`state "seen": not registered by the operator`, "key group"}},
		{name: "unknown state allowed", sub: func() *snapSubtask { return newSnapSubtask(r, "seen") },
			groups: func(*snapSubtask) map[int][]byte { return blobs }, allow: true},
		{name: "int64 restored as string", sub: stringCount,
			groups: func(*snapSubtask) map[int][]byte { return blobs },
			want:   []string{`restore state "count" key group`, "written as int64, read as string"}},
		{name: "undecodable value", groups: undecodable, is: codec.ErrShort,
			want: []string{fmt.Sprintf(`restore state "count" key group %d: entry 0: decode int64 value`, kg)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := newSnapSubtask(r, "")
			if tc.sub != nil {
				sub = tc.sub()
			}
			err := restoreKeyed(sub.core.be, sub.core.timers, tc.groups(sub), tc.allow)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("restored; want an error")
			}
			t.Log(err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// With non-restored state allowed, what is known is restored.
	sub := newSnapSubtask(r, "seen")
	if err := restoreKeyed(sub.core.be, sub.core.timers, blobs, true); err != nil {
		t.Fatal(err)
	}
	for i := range snapKeys {
		if k := snapKey(i); subtaskOf(k, 4) == 0 {
			sub.setKey(t, k)
			if v, ok := sub.count.Value(); !ok || v != int64(i)+1 {
				t.Errorf("%s: count %d, %v; want %d", k, v, ok, i+1)
			}
		}
	}
}

// A state whose values the codec cannot encode is reported by the snapshot,
// naming the state.
func TestSnapshotUnsupportedType(t *testing.T) {
	core := newSnapCore(keygroup.Range{Start: 0, End: snapMaxP})
	NewValueState[func()](core.runtime(), "callback")
	_, err := snapshotKeyed(core.be, core.timers)
	if !errors.Is(err, codec.ErrUnsupported) || !strings.Contains(err.Error(), `snapshot state "callback"`) {
		t.Fatalf("snapshot of a func state: %v", err)
	}
}

// buildWindowAt builds a subtask of the window operator of s that owns the
// key groups r.
func buildWindowAt[K comparable, T, S, OUT any](t *testing.T, s *Stream[OUT], r keygroup.Range) (*windowOp[K, T, S, OUT], *recorder[OUT]) {
	t.Helper()
	out := &recorder[OUT]{}
	tc := &engine.TaskContext{JobName: "test", Vertex: s.v, Parallelism: 1, MaxParallelism: snapMaxP,
		KeyGroups: r, Ctx: context.Background(), Sides: map[string]any{}}
	op, err := s.v.Build(tc, engine.Output[OUT](out))
	if err != nil {
		t.Fatal(err)
	}
	return op.Inputs[0].(engine.Output[T]).(*windowOp[K, T, S, OUT]), out
}

// Window contents, trigger state, sessions and window timers survive a
// snapshot and a rescale from one subtask to three: the restored subtasks
// emit what the original emits.
func TestSnapshotRestoreWindows(t *testing.T) {
	for _, tc := range []struct {
		name     string
		assigner WindowAssigner
		opts     []WindowOption
	}{
		{"tumbling", TumblingEventTimeWindows(10 * time.Millisecond), []WindowOption{AllowedLateness(5 * time.Millisecond)}},
		{"sessions", EventTimeSessionWindows(4 * time.Millisecond), nil},
		{"global count", GlobalWindows(), []WindowOption{WithTrigger(CountTrigger(3))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ks := tickJob()
			res := WindowReduce(WindowBy(ks, tc.assigner, tc.opts...), sumTicks, WithUID("w"))
			type op = windowOp[string, tick, tick, Windowed[string, tick]]
			build := func(r keygroup.Range) (*op, *recorder[Windowed[string, tick]]) {
				return buildWindowAt[string, tick, tick, Windowed[string, tick]](t, res, r)
			}
			keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
			before := []int64{1, 3, 7, 12, 14}
			after := []int64{15, 9, 30}

			orig, origOut := build(keygroup.Range{Start: 0, End: snapMaxP})
			for _, ts := range before {
				for i, k := range keys {
					if err := orig.Process(tick{k, int64(i) + ts}, ts); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := orig.Watermark(10); err != nil {
				t.Fatal(err)
			}
			blobs, err := snapshotKeyed(orig.w.core.be, orig.w.core.timers)
			if err != nil {
				t.Fatal(err)
			}
			origOut.take()

			const p = 3
			var subs []*op
			var outs []*recorder[Windowed[string, tick]]
			for st := range p {
				r := keygroup.For(st, snapMaxP, p)
				s, out := build(r)
				if err := restoreKeyed(s.w.core.be, s.w.core.timers, groupsIn(blobs, r), false); err != nil {
					t.Fatal(err)
				}
				s.w.core.wm = 10 // the watermark is the operator's, restored by the wiring
				subs, outs = append(subs, s), append(outs, out)
			}
			if n, m := orig.w.contents.len()+orig.w.tstate.len()+orig.w.sessions.len(), restoredEntries(subs); n != m || n == 0 {
				t.Fatalf("%d window entries restored of %d", m, n)
			}
			run := func(o *op) {
				t.Helper()
				for _, ts := range after {
					for i, k := range keys {
						if i%2 == 1 {
							continue // the windows of half the keys fire on restored timers alone
						}
						if subtaskOf(k, p) != slices.Index(subs, o) && o != orig {
							continue
						}
						if err := o.Process(tick{k, int64(i) * ts}, ts); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := o.Watermark(MaxWatermark); err != nil {
					t.Fatal(err)
				}
			}
			run(orig)
			want := records(origOut.take())
			var got []string
			for i, s := range subs {
				run(s)
				got = append(got, records(outs[i].take())...)
			}
			slices.Sort(want)
			slices.Sort(got)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("restored windows emit\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func restoredEntries(subs []*windowOp[string, tick, tick, Windowed[string, tick]]) int {
	n := 0
	for _, s := range subs {
		n += s.w.contents.len() + s.w.tstate.len() + s.w.sessions.len()
	}
	return n
}

// records drops the watermarks from a recorder's log.
func records(log []string) []string {
	return slices.DeleteFunc(log, func(l string) bool { return strings.HasPrefix(l, "wm ") })
}

// Sorting by keyPrefix, then by the whole key, is sorting by key: keys of
// every length up to past the prefix, zero bytes included.
func TestKeyPrefixOrder(t *testing.T) {
	var keys [][]byte
	for i := range 5000 {
		k := make([]byte, i%12)
		for j := range k {
			k[j] = []byte{0, 1, 'a', 0xff}[(i*7+j*13+i/12)%4]
		}
		keys = append(keys, k)
	}
	byPrefix := slices.Clone(keys)
	slices.SortFunc(byPrefix, func(a, b []byte) int {
		if pa, pb := keyPrefix(a), keyPrefix(b); pa != pb {
			if pa < pb {
				return -1
			}
			return 1
		}
		return bytes.Compare(a, b)
	})
	slices.SortFunc(keys, bytes.Compare)
	for i := range keys {
		if !bytes.Equal(keys[i], byPrefix[i]) {
			t.Fatalf("position %d: %q by prefix, %q by key", i, byPrefix[i], keys[i])
		}
	}
}
