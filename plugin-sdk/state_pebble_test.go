package sdk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/pebblestate"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
	"github.com/eddy-streams/eddy/storage/checkpoint"
)

// onPebble runs f with the Pebble backend as the default of keyed
// operators whose job sets none, its databases under a test directory.
func onPebble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	prev := defaultStateBackend
	defaultStateBackend = PebbleStateBackend(PebbleDir(t.TempDir()), PebbleMemTableSize(1<<20))
	defer func() { defaultStateBackend = prev }()
	f(t)
}

// The state tests of every kind, window and join operators, snapshots and
// restores at other parallelisms, and kill-and-restore runs through the
// in-memory checkpoint harness (which uploads the incremental snapshots)
// pass on the Pebble backend.
func TestPebbleBackendPassesStateTests(t *testing.T) {
	for name, f := range map[string]func(*testing.T){
		"SnapshotRestoreRescale":              TestSnapshotRestoreRescale,
		"RestoreRefuses":                      TestRestoreRefuses,
		"SnapshotRestoreWindows":              TestSnapshotRestoreWindows,
		"KeyedProcessRestore":                 TestKeyedProcessRestore,
		"WindowRestore":                       TestWindowRestore,
		"WindowLatenessByHand":                TestWindowLatenessByHand,
		"SessionMergeByHand":                  TestSessionMergeByHand,
		"CustomTriggerByHand":                 TestCustomTriggerByHand,
		"TaskExecutorCheckpointAndRestore":    TestTaskExecutorCheckpointAndRestore,
		"TaskExecutorRestoreFromCorruptCheck": TestTaskExecutorRestoreFromCorruptCheckpoint,
	} {
		t.Run(name, func(t *testing.T) { onPebble(t, f) })
	}
}

// pebbleSubtask is a snapSubtask on the Pebble backend, its database under
// dir.
func pebbleSubtask(t *testing.T, r keygroup.Range, dir string, opts ...PebbleOption) *snapSubtask {
	t.Helper()
	prev := defaultStateBackend
	defaultStateBackend = PebbleStateBackend(append([]PebbleOption{PebbleDir(dir), PebbleMemTableSize(1 << 20)}, opts...)...)
	defer func() { defaultStateBackend = prev }()
	s := newSnapSubtask(r, "")
	if s.core.be.pb == nil {
		t.Fatalf("the subtask's state is not on Pebble: %v", s.core.pbErr)
	}
	t.Cleanup(func() {
		if s.core.be.pb != nil {
			_ = s.core.be.pb.close()
		}
	})
	return s
}

// Every state kind reads back what was written, through the write-back
// cache and after it was written out, and a time to live expires entries
// on Pebble as in memory.
func TestPebbleStateKinds(t *testing.T) {
	s := pebbleSubtask(t, keygroup.Range{Start: 0, End: snapMaxP}, t.TempDir())
	ttl := NewValueState[string](s.core.runtime(), "short", WithTTL(30*time.Millisecond))
	check := func(round int) {
		t.Helper()
		for i := range 50 {
			k := fmt.Sprint("k", i)
			if err := s.core.setKey(k); err != nil {
				t.Fatal(err)
			}
			if round == 0 {
				s.count.Update(int64(i))
				s.seen.Add("a")
				s.seen.Add(k)
				s.attrs.Put("x", i)
				s.attrs.Put("y", -i)
				s.sum.Add(int64(i))
				s.sum.Add(1)
				s.avg.Add(2)
				s.avg.Add(4)
				ttl.Update(k)
				if i%5 == 0 {
					s.attrs.Remove("y")
					s.seen.Clear()
				}
				continue
			}
			if v, ok := s.count.Value(); !ok || v != int64(i) {
				t.Fatalf("round %d %s: count %d %v", round, k, v, ok)
			}
			wantSeen := []string{"a", k}
			if i%5 == 0 {
				wantSeen = nil
			}
			if got := s.seen.Get(); fmt.Sprint(got) != fmt.Sprint(wantSeen) {
				t.Fatalf("round %d %s: list %q, want %q", round, k, got, wantSeen)
			}
			if v, ok := s.attrs.Get("x"); !ok || v != i || s.attrs.Contains("y") != (i%5 != 0) {
				t.Fatalf("round %d %s: map %v %v", round, k, v, ok)
			}
			if v, ok := s.sum.Get(); !ok || v != int64(i)+1 {
				t.Fatalf("round %d %s: sum %d %v", round, k, v, ok)
			}
			if v, ok := s.avg.Get(); !ok || v != 3 {
				t.Fatalf("round %d %s: avg %v %v", round, k, v, ok)
			}
			v, ok := ttl.Value()
			if expired := round == 2; ok == expired || (ok && v != k) {
				t.Fatalf("round %d %s: ttl state %q %v", round, k, v, ok)
			}
		}
	}
	check(0)
	check(1) // through the cache
	if err := s.core.be.pb.flush(); err != nil {
		t.Fatal(err)
	}
	if n := s.core.be.pb.dirty; n != 0 {
		t.Fatalf("%d entries cached after a flush", n)
	}
	check(1) // from Pebble
	time.Sleep(50 * time.Millisecond)
	check(2)
	// The sweep deletes expired entries of keys never read again.
	if err := s.core.setKey("late"); err != nil {
		t.Fatal(err)
	}
	ttl.Update("x")
	time.Sleep(50 * time.Millisecond)
	for range snapMaxP {
		s.core.be.sweep()
	}
	if n := ttl.(*valueState[string]).t.len(); n != 0 {
		t.Fatalf("%d expired entries after a sweep", n)
	}
	// Clearing removes the keys from Pebble.
	for i := range 50 {
		if err := s.core.setKey(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
		s.count.Clear()
	}
	if n := s.count.(*valueState[int64]).t.len(); n != 0 {
		t.Fatalf("%d entries after clearing every key", n)
	}
}

// fill writes n keys of about size bytes each into the subtask's list
// state, starting at key first.
func fill(t *testing.T, s *snapSubtask, first, n, size int, tag string) {
	t.Helper()
	pad := string(bytes.Repeat([]byte("x"), size))
	for i := first; i < first+n; i++ {
		if err := s.core.setKey(fmt.Sprint("key-", i)); err != nil {
			t.Fatal(err)
		}
		s.seen.Update([]string{tag, pad})
	}
}

func uploadSnapshot(t *testing.T, s *snapSubtask, id uint64, st storage.Store) ([]byte, int64) {
	t.Helper()
	snap, err := s.core.be.pb.snapshot(id)
	if err != nil {
		t.Fatal(err)
	}
	b, files, n, err := snap.Upload(context.Background(), st, fmt.Sprintf("shared/chk-%d", id))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("a snapshot without files")
	}
	return b, n
}

// A checkpoint after another completed uploads only the files that are
// new since: every file it shares with the completed one is referenced
// where that one uploaded it. Before the first completed, a second uploads
// everything again (the first's files may be deleted if it is aborted).
func TestPebbleIncrementalCheckpoint(t *testing.T) {
	st, err := storage.Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := pebbleSubtask(t, keygroup.Range{Start: 0, End: snapMaxP}, t.TempDir(), PebbleMemTableSize(32<<20))
	const keys = 20000
	fill(t, s, 0, keys, 200, "a")
	m1, _ := uploadSnapshot(t, s, 1, st)
	fill(t, s, 0, keys/100, 200, "b")
	m2, unconfirmed := uploadSnapshot(t, s, 2, st)
	if unconfirmed != manifestOf(t, m2).Size() {
		t.Fatalf("checkpoint 2, taken before 1 completed, uploaded %d bytes of %d: want everything", unconfirmed, manifestOf(t, m2).Size())
	}
	_ = m1
	s.core.be.pb.complete(2)
	// A compaction may rewrite every file meanwhile: then nothing can be
	// kept, and the next checkpoint is tried.
	for id := uint64(3); id < 10; id++ {
		fill(t, s, int(id)*keys/10, keys/100, 200, fmt.Sprint(id))
		m, n := uploadSnapshot(t, s, id, st)
		prev := map[string]pebblestate.Object{}
		for _, o := range manifestOf(t, m2).Objects {
			prev[o.Local] = o
		}
		var kept, want int64
		for _, o := range manifestOf(t, m).Objects {
			p, ok := prev[o.Local]
			if ok && o.Shared {
				if o.Name != p.Name {
					t.Fatalf("file %s of the completed checkpoint uploaded again as %s", p.Name, o.Name)
				}
				kept++
				continue
			}
			want += o.Size
		}
		if n != want {
			t.Fatalf("checkpoint %d uploaded %d bytes, want %d (the files not in the completed checkpoint)", id, n, want)
		}
		t.Logf("checkpoint %d uploaded %d bytes and kept %d files of %d bytes", id, n, kept, manifestOf(t, m).Size()-n)
		if kept > 0 {
			return
		}
		s.core.be.pb.complete(id)
		m2 = m
	}
	t.Fatal("no checkpoint kept a file of the one before")
}

func manifestOf(t *testing.T, b []byte) pebblestate.Manifest {
	t.Helper()
	m, err := pebblestate.DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A savepoint (canonical key-group blobs) of a Pebble subtask restores into
// in-memory subtasks at another parallelism and one of in-memory subtasks
// into Pebble; a Pebble checkpoint (incremental) restores into in-memory
// subtasks too.
func TestPebbleSavepointCrossBackend(t *testing.T) {
	all := keygroup.Range{Start: 0, End: snapMaxP}
	write := func(s *snapSubtask) {
		for i := range 40 {
			k := fmt.Sprint("k", i)
			if err := s.core.setKey(k); err != nil {
				t.Fatal(err)
			}
			s.count.Update(int64(i))
			s.seen.Add(k)
			s.attrs.Put(k, i)
			s.sum.Add(int64(i))
			s.avg.Add(int64(i))
			s.core.registerEventTimer(nil, int64(100+i))
		}
	}
	read := func(t *testing.T, subs []*snapSubtask) {
		t.Helper()
		n := 0
		for i := range 40 {
			k := fmt.Sprint("k", i)
			for _, s := range subs {
				if !s.core.be.groups.Contains(keygroup.Of([]byte(codecString(k)), snapMaxP)) {
					continue
				}
				n++
				if err := s.core.setKey(k); err != nil {
					t.Fatal(err)
				}
				v, ok := s.count.Value()
				m, _ := s.attrs.Get(k)
				sum, _ := s.sum.Get()
				avg, _ := s.avg.Get()
				if !ok || v != int64(i) || fmt.Sprint(s.seen.Get()) != fmt.Sprint([]string{k}) || m != i || sum != int64(i) || avg != float64(i) {
					t.Fatalf("key %s restored as %d %v %q %d %d %v", k, v, ok, s.seen.Get(), m, sum, avg)
				}
			}
		}
		timers := 0
		for _, s := range subs {
			timers += s.core.timers.event.len()
		}
		if n != 40 || timers != 40 {
			t.Fatalf("%d keys and %d timers restored, want 40 and 40", n, timers)
		}
	}
	t.Run("pebble to memory", func(t *testing.T) {
		src := pebbleSubtask(t, all, t.TempDir())
		write(src)
		blobs, err := snapshotKeyed(src.core.be, src.core.timers)
		if err != nil {
			t.Fatal(err)
		}
		var subs []*snapSubtask
		for i := range 3 {
			r := keygroup.For(i, snapMaxP, 3)
			s := memSubtask(r)
			if s.core.be.pb != nil {
				t.Fatal("not in memory")
			}
			if err := restoreKeyed(s.core.be, s.core.timers, part(blobs, r), false); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		read(t, subs)
	})
	t.Run("memory to pebble", func(t *testing.T) {
		src := memSubtask(all)
		write(src)
		blobs, err := snapshotKeyed(src.core.be, src.core.timers)
		if err != nil {
			t.Fatal(err)
		}
		var subs []*snapSubtask
		for i := range 2 {
			r := keygroup.For(i, snapMaxP, 2)
			s := pebbleSubtask(t, r, t.TempDir())
			if err := restoreKeyed(s.core.be, s.core.timers, part(blobs, r), false); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		read(t, subs)
		// And back: the Pebble subtasks' savepoint is what the in-memory
		// subtask wrote.
		merged := map[int][]byte{}
		for _, s := range subs {
			b, err := snapshotKeyed(s.core.be, s.core.timers)
			if err != nil {
				t.Fatal(err)
			}
			for kg, blob := range b {
				merged[kg] = blob
			}
		}
		for kg, b := range blobs {
			if !bytes.Equal(merged[kg], b) {
				t.Fatalf("key group %d: the Pebble savepoint differs from the in-memory one", kg)
			}
		}
	})
	t.Run("pebble checkpoint to memory", func(t *testing.T) {
		st, err := storage.Open(context.Background(), "file://"+t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		src := pebbleSubtask(t, all, t.TempDir())
		write(src)
		timers, err := snapshotTimers(src.core.be, src.core.timers)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := uploadSnapshot(t, src, 1, st)
		var subs []*snapSubtask
		for i := range 2 {
			r := keygroup.For(i, snapMaxP, 2)
			s := memSubtask(r)
			if err := restoreIncrementalInMemory(context.Background(), s.core.be, []engine.RestoredIncremental{{State: m, Store: st}}, false); err != nil {
				t.Fatal(err)
			}
			if err := restoreKeyed(s.core.be, s.core.timers, part(timers, r), false); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		read(t, subs)
	})
}

// memSubtask is a snapSubtask in memory, whatever the default backend.
func memSubtask(r keygroup.Range) *snapSubtask {
	prev := defaultStateBackend
	defaultStateBackend = InMemoryStateBackend()
	defer func() { defaultStateBackend = prev }()
	return newSnapSubtask(r, "")
}

func part(blobs map[int][]byte, r keygroup.Range) map[int][]byte {
	out := map[int][]byte{}
	for kg, b := range blobs {
		if r.Contains(kg) {
			out[kg] = b
		}
	}
	return out
}

func codecString(s string) string {
	c, _ := codec.For[string]()
	return string(c.Append(nil, s))
}

// The database of a subtask is made under the configured directory and
// removed when the operator closes.
func TestPebbleDirRemovedAtClose(t *testing.T) {
	dir := t.TempDir()
	job := NewJob("dirs").SetStateBackend(PebbleStateBackend(PebbleDir(dir)))
	var seen []string
	src := FromSource(job, FromSlice([]int64{1, 2, 3, 4}), WithUID("src"))
	out := Reduce(KeyBy(src, func(v int64) int64 { return v % 2 }), func(a, b int64) int64 {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			seen = append(seen, e.Name())
		}
		return a + b
	}, WithUID("sum"))
	SinkTo(out, Collect[int64]())
	if err := RunLocal(context.Background(), job, LocalParallelism(1)); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || filepath.Base(seen[0])[:len("eddy-state-dirs-sum-0-")] != "eddy-state-dirs-sum-0-" {
		t.Fatalf("state directories while running: %q", seen)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("%d entries left in the state directory after the job", len(entries))
	}
}

// The plugin's state writer uploads a Pebble subtask's files into the
// job's shared directory and lists them relative to the checkpoint's; a
// checkpoint after a completed one lists the files it kept from it and
// uploads the rest; the restorer hands the manifest back with the store
// its names are in, and a new subtask restores from it.
func TestStateWriterPebble(t *testing.T) {
	job, _, _ := checkpointedSumJob(10, 10)
	plan, err := job.plan(1)
	if err != nil {
		t.Fatal(err)
	}
	var sum *engine.Vertex
	for _, v := range plan.Vertices {
		if v.UID == "sum" {
			sum = v
		}
	}
	all := keygroup.For(0, plan.MaxParallelism, 1)
	emit, ack := ackRecorder()
	root := t.TempDir()
	base := fileURL(t, root)
	w := newStateWriter(context.Background(), base, 1, emit)
	defer w.close()
	// Each checkpoint flushes one memtable: too few files for a compaction
	// to rewrite the first one's.
	s := pebbleSubtask(t, all, t.TempDir(), PebbleMemTableSize(32<<20))
	take := func(id uint64, first, n int) *pluginpb.OperatorSubtaskState {
		t.Helper()
		fill(t, s, first, n, 100, fmt.Sprint(id))
		groups, err := snapshotTimers(s.core.be, s.core.timers)
		if err != nil {
			t.Fatal(err)
		}
		inc, err := s.core.be.pb.snapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		w.triggered(id, fmt.Sprintf("%s/chk-%d", base, id))
		w.onSnapshot(&engine.TaskSnapshot{Task: engine.TaskKey{JobID: "j1", Attempt: 1}, Checkpoint: engine.CheckpointOptions{ID: id},
			Operators: map[*engine.Vertex]*engine.OperatorSnapshot{sum: {KeyGroups: groups, Incremental: inc}}})
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if a := ack(id); a != nil {
				if a.GetError() != "" || len(a.GetOperators()) != 1 {
					t.Fatalf("checkpoint %d: %v", id, a)
				}
				s.core.be.pb.complete(id)
				return a.GetOperators()[0]
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("checkpoint %d not acknowledged", id)
		return nil
	}
	first := take(1, 0, 50000)
	for _, f := range first.GetShared() {
		if !strings.HasPrefix(f, "../shared/chk-1/") {
			t.Fatalf("checkpoint 1 lists %q: want files in ../shared/chk-1/", first.GetShared())
		}
	}
	// A compaction may rewrite every file of a checkpoint before the next:
	// then the next uploads all, and a later one is tried.
	var second *pluginpb.OperatorSubtaskState
	var id uint64
	for id = 2; id < 8; id++ {
		second = take(id, 0, 50)
		own, kept := 0, 0
		for _, f := range second.GetShared() {
			if _, err := os.Stat(filepath.Join(root, fmt.Sprintf("chk-%d", id), f)); err != nil {
				t.Fatalf("listed file %s: %v", f, err)
			}
			if strings.HasPrefix(f, fmt.Sprintf("../shared/chk-%d/", id)) {
				own++
			} else if strings.HasPrefix(f, "../shared/chk-") {
				kept++
			}
		}
		if own == 0 {
			t.Fatalf("checkpoint %d lists %q: want new files in ../shared/chk-%d/", id, second.GetShared(), id)
		}
		if kept > 0 {
			break
		}
	}
	if id == 8 {
		t.Fatal("no checkpoint kept a file of an earlier one")
	}
	m := &pluginpb.CheckpointMetadata{CheckpointId: id, MaxParallelism: uint32(plan.MaxParallelism),
		Operators: []*pluginpb.OperatorState{{Uid: "sum", Subtasks: []*pluginpb.OperatorSubtaskState{second}}}}
	st, err := storage.Open(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteMetadata(context.Background(), st, checkpoint.Dir(id), m); err != nil {
		t.Fatal(err)
	}
	r := newRestorer(context.Background(), &pluginpb.RestoreSpec{Url: base + "/" + checkpoint.Dir(id)}, plan, "j1", 2, nil)
	snap, err := r.restore(sum, 0, 1, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Restored) != 1 || snap.Restored[0].Store.URL("") != st.URL("") || len(snap.KeyGroups) != all.Len() {
		t.Fatalf("restored %d manifests (store %v) and %d key groups", len(snap.Restored), snap.Restored, len(snap.KeyGroups))
	}
	back := pebbleSubtask(t, all, t.TempDir())
	if err := back.core.be.pb.restore(context.Background(), snap.Restored); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{0, 49, 50, 49999} {
		if err := back.core.setKey(fmt.Sprint("key-", k)); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint(id)
		if k >= 50 {
			want = "1"
		}
		if got := back.seen.Get(); len(got) != 2 || got[0] != want {
			t.Fatalf("key-%d restored as %.10q, want tag %s", k, got, want)
		}
	}
}

// A value or list replaced whole is written without reading the database
// first: what it replaces, a Clear after it and a time to live all come
// out as when the old value was read.
func TestPebbleBlindWrites(t *testing.T) {
	s := pebbleSubtask(t, keygroup.Range{Start: 0, End: snapMaxP}, t.TempDir())
	ttl := NewValueState[string](s.core.runtime(), "renewed", WithTTL(time.Second))
	key := func(i int) {
		t.Helper()
		if err := s.core.setKey(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		t.Helper()
		if err := s.core.be.pb.flush(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		key(i)
		s.count.Update(int64(i))
		s.seen.Update([]string{"a", fmt.Sprint(i)})
		ttl.Update("first")
	}
	flush()
	start := time.Now()
	// Every key is in the database and none in the cache: each write
	// below is blind.
	for i := range 60 { // k50-k59 are new
		key(i)
		s.count.Update(int64(i + 100))
		if i%2 == 0 {
			s.count.Clear()
		}
		if i%3 == 0 {
			s.seen.Update(nil)
		} else {
			s.seen.Update([]string{"b"})
			s.seen.Add("c")
		}
	}
	flush()
	for i := range 60 {
		key(i)
		v, ok := s.count.Value()
		if want := i%2 == 1; ok != want || (ok && v != int64(i+100)) {
			t.Fatalf("k%d: count %d %v after a blind update, want %d present=%v", i, v, ok, i+100, want)
		}
		want := "[b c]"
		if i%3 == 0 {
			want = "[]"
		}
		if got := fmt.Sprint(s.seen.Get()); got != want {
			t.Fatalf("k%d: list %s after a blind update, want %s", i, got, want)
		}
	}
	if n := s.count.(*valueState[int64]).t.len(); n != 30 {
		t.Fatalf("%d counts in the database, want 30: a Clear after a blind update left the old value", n)
	}
	if n := s.seen.(*listState[string]).t.len(); n != 40 {
		t.Fatalf("%d lists in the database, want 40", n)
	}

	// A blind update renews the time to live.
	time.Sleep(time.Second - time.Since(start) - 200*time.Millisecond)
	for i := range 50 {
		key(i)
		ttl.Update("second")
	}
	flush()
	time.Sleep(time.Until(start.Add(time.Second + 200*time.Millisecond)))
	for i := range 50 {
		key(i)
		if v, ok := ttl.Value(); !ok || v != "second" {
			t.Fatalf("k%d: %q %v after its time to live was renewed by a blind update", i, v, ok)
		}
	}
}

// A savepoint on Pebble is read from a view of the store taken in the
// task's goroutine and written while the task changes the state: it holds
// the state as it was frozen. Closing the store waits for the view.
func TestPebbleSavepointWhileStateChanges(t *testing.T) {
	all := keygroup.Range{Start: 0, End: snapMaxP}
	s := pebbleSubtask(t, all, t.TempDir())
	const keys = 500
	for i := range keys {
		s.setKey(t, snapKey(i))
		s.count.Update(int64(i))
		s.seen.Update([]string{"a", fmt.Sprint(i)})
	}
	// Some of it is still in the write-back cache: the freeze writes it.
	f, err := freezeKeyed(s.core.be, s.core.timers, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		s.setKey(t, snapKey(i))
		if i%2 == 0 {
			s.count.Clear()
		} else {
			s.count.Update(-1)
		}
		s.seen.Add("b")
	}
	for i := keys; i < keys+100; i++ {
		s.setKey(t, snapKey(i))
		s.count.Update(int64(i))
	}
	if err := s.core.be.pb.flush(); err != nil {
		t.Fatal(err)
	}
	groups, err := f.KeyGroups()
	if err != nil {
		t.Fatal(err)
	}
	r := newSnapSubtask(all, "")
	if err := restoreKeyed(r.core.be, r.core.timers, groups, false); err != nil {
		t.Fatal(err)
	}
	for i := range keys + 100 {
		r.setKey(t, snapKey(i))
		v, ok := r.count.Value()
		if want := i < keys; ok != want || (ok && v != int64(i)) {
			t.Fatalf("savepoint %s: count %d %v, want %d present=%v", snapKey(i), v, ok, i, want)
		}
		if want := fmt.Sprintf("[a %d]", i); i < keys && fmt.Sprint(r.seen.Get()) != want {
			t.Fatalf("savepoint %s: list %v, want %s", snapKey(i), r.seen.Get(), want)
		}
	}

	// The store is not closed under a view that is still to be written.
	f, err = freezeKeyed(s.core.be, s.core.timers, false)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	pb := s.core.be.pb
	s.core.be.pb = nil // closed here, not by the cleanup
	go func() { closed <- pb.close() }()
	select {
	case err := <-closed:
		t.Fatalf("the store closed under an open view: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := f.KeyGroups(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
