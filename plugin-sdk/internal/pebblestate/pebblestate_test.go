package pebblestate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/storage"
)

const maxP = 128

func openStore(t testing.TB) (storage.Store, string) {
	t.Helper()
	dir := t.TempDir()
	u, err := storage.FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return st, dir
}

func openDB(t testing.TB, groups keygroup.Range) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "state"), groups, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// entry names one stored entry: its key group, state and key.
type entry struct {
	kg  int
	st  StateID
	key string
}

func (e entry) id() string { return fmt.Sprintf("%d/%d/%s", e.kg, e.st, e.key) }

// dump returns every entry of a DB by its id.
func dump(t testing.TB, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := scan(db.pdb, groupBound(0), groupBound(MaxKeyGroups), 0, func(k, v []byte) error {
		kg := int(binary.BigEndian.Uint16(k))
		st, n := binary.Uvarint(k[2:])
		if n <= 0 {
			return fmt.Errorf("bad key %x", k)
		}
		out[entry{kg: kg, st: StateID(st), key: string(k[2+n:])}.id()] = string(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fill writes n entries with keys key-<i> in the key groups of r (keys of
// other groups are skipped) over states 1 and 2, values of size vsize.
func fill(t testing.TB, db *DB, r keygroup.Range, n, vsize int, seed uint64) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	want := map[string]string{}
	b := db.NewBatch()
	defer b.Close()
	v := make([]byte, vsize)
	for i := range n {
		key := fmt.Sprintf("key-%d", i)
		kg := keygroup.Of([]byte(key), maxP)
		if !r.Contains(kg) {
			continue
		}
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		st := StateID(1 + i%2)
		if err := b.Put(kg, st, []byte(key), v); err != nil {
			t.Fatal(err)
		}
		want[entry{kg: kg, st: st, key: key}.id()] = string(v)
		if b.Size() > 1<<20 {
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return want
}

func equalMaps(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("%s: entry %s missing", what, k)
		}
		if g != v {
			t.Fatalf("%s: entry %s has value %x, want %x", what, k, g, v)
		}
	}
}

func TestPutGetDeleteScan(t *testing.T) {
	db := openDB(t, keygroup.Range{Start: 10, End: 20})
	// States whose uvarints have one and two bytes, next to each other,
	// so that a prefix bound that is off by one shows.
	states := []StateID{1, 127, 128, 129, 1 << 20}
	want := map[string]string{}
	b := db.NewBatch()
	for kg := 10; kg < 20; kg++ {
		for _, st := range states {
			for i := range 20 {
				key := fmt.Sprintf("k%02d", i)
				val := fmt.Sprintf("v-%d-%d-%d", kg, st, i)
				var err error
				if i%2 == 0 {
					err = db.Put(kg, st, []byte(key), []byte(val))
				} else {
					err = b.Put(kg, st, []byte(key), []byte(val))
				}
				if err != nil {
					t.Fatal(err)
				}
				want[entry{kg: kg, st: st, key: key}.id()] = val
			}
		}
	}
	if b.Len() != 10*len(states)*10 {
		t.Fatalf("batch holds %d writes, want %d", b.Len(), 10*len(states)*10)
	}
	if _, ok, _ := db.Get(10, 1, []byte("k01"), nil); ok {
		t.Fatal("a batch's write is visible before Commit")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatal("batch not empty after Commit")
	}
	// Deletes, direct and batched.
	for _, d := range []struct {
		kg  int
		st  StateID
		key string
	}{{12, 128, "k03"}, {19, 1, "k00"}, {15, 1 << 20, "k19"}} {
		if err := db.Delete(d.kg, d.st, []byte(d.key)); err != nil {
			t.Fatal(err)
		}
		delete(want, entry{kg: d.kg, st: d.st, key: d.key}.id())
	}
	if err := b.Delete(11, 127, []byte("k05")); err != nil {
		t.Fatal(err)
	}
	delete(want, entry{kg: 11, st: 127, key: "k05"}.id())
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	equalMaps(t, "dump", dump(t, db), want)

	// Get appends to the caller's buffer.
	buf := []byte("prefix:")
	got, ok, err := db.Get(13, 129, []byte("k07"), buf)
	if err != nil || !ok || string(got) != "prefix:v-13-129-7" {
		t.Fatalf("Get = %q, %v, %v", got, ok, err)
	}
	got, ok, err = db.Get(12, 128, []byte("k03"), buf)
	if err != nil || ok || string(got) != "prefix:" {
		t.Fatalf("Get of a deleted key = %q, %v, %v", got, ok, err)
	}
	if _, _, err := db.Get(20, 1, []byte("k00"), nil); err == nil {
		t.Fatal("Get outside the key groups succeeded")
	}
	if err := db.Put(9, 1, []byte("k00"), nil); err == nil {
		t.Fatal("Put outside the key groups succeeded")
	}

	// Scan sees exactly one state of one group, in key order.
	for _, st := range states {
		var keys []string
		err := db.Scan(12, st, func(k, v []byte) error {
			if w := want[entry{kg: 12, st: st, key: string(k)}.id()]; w != string(v) {
				return fmt.Errorf("key %s: value %q, want %q", k, v, w)
			}
			keys = append(keys, string(k))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantN := 20
		if st == 128 {
			wantN = 19
		}
		if len(keys) != wantN || !slices.IsSorted(keys) {
			t.Fatalf("scan of state %d: %d keys %v, want %d sorted", st, len(keys), keys, wantN)
		}
	}
	stop := errors.New("stop")
	if err := db.Scan(12, 1, func(k, v []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("scan returned %v, want the callback's error", err)
	}
}

// TestGetHitsBlockCache checks that reads are served from the block cache
// once the memtables have grown to their full size. Pebble charges every
// memtable (and the one it keeps for reuse) to the block cache: a cache of
// only CacheSize would then have no room for blocks, and every Get would
// read the disk.
func TestGetHitsBlockCache(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state"), keygroup.Range{Start: 0, End: maxP},
		Options{CacheSize: 1 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 24 MB of writes: memtables start small and double, so this fills
	// several at 4 MiB, each more than the whole of CacheSize.
	const n, hot = 24000, 200
	rng := rand.New(rand.NewPCG(7, 8))
	v := make([]byte, 1000)
	batch := db.NewBatch()
	defer batch.Close()
	key := func(i int) ([]byte, int) {
		k := binary.BigEndian.AppendUint64(nil, uint64(i)*0x9e3779b97f4a7c15)
		return k, keygroup.Of(k, maxP)
	}
	for i := range n {
		for j := 0; j < len(v); j += 8 {
			binary.LittleEndian.PutUint64(v[j:], rng.Uint64())
		}
		k, kg := key(i)
		if err := batch.Put(kg, 1, k, v); err != nil {
			t.Fatal(err)
		}
		if batch.Len() == 500 {
			if err := batch.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if m := db.pdb.Metrics(); m.MemTable.Size < 4<<20 {
		t.Fatalf("memtables hold %d bytes, want 4 MiB: the test no longer fills the memtables", m.MemTable.Size)
	}
	// Compact everything into the last level, so that no compaction
	// replaces the tables while the test reads them.
	if err := db.pdb.Compact(context.Background(), groupBound(0), groupBound(MaxKeyGroups), false); err != nil {
		t.Fatal(err)
	}
	// The hot keys' blocks (about 250 KB) fit the 1 MiB cache: a second
	// pass over them is served from it.
	buf := make([]byte, 0, len(v))
	read := func() {
		for i := range hot {
			k, kg := key(i * (n / hot))
			got, ok, err := db.Get(kg, 1, k, buf[:0])
			if err != nil || !ok || len(got) != len(v) {
				t.Fatalf("Get %d: %d bytes, %v, %v", i, len(got), ok, err)
			}
		}
	}
	read()
	before := db.pdb.Metrics().BlockCache
	read()
	after := db.pdb.Metrics().BlockCache
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	if hits == 0 || misses*10 > hits+misses {
		t.Errorf("second pass over %d hot keys: %d block cache hits, %d misses; want at most 10%% misses (cache holds %d blocks, %d bytes)",
			hot, hits, misses, after.Count, after.Size)
	}
}

func TestCheckpointRestore(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	all := keygroup.Range{Start: 0, End: maxP}
	db := openDB(t, all)
	want := fill(t, db, all, 5000, 64, 1)
	// Some of it flushed before the checkpoint, some still in the memtable.
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	for k := range 100 {
		key := fmt.Sprintf("late-%d", k)
		kg := keygroup.Of([]byte(key), maxP)
		if err := db.Put(kg, 3, []byte(key), []byte("x")); err != nil {
			t.Fatal(err)
		}
		want[entry{kg: kg, st: 3, key: key}.id()] = "x"
	}
	m, st, err := db.Checkpoint(ctx, store, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if st.UploadedBytes != st.Bytes || st.Bytes != m.Size() || st.Files != len(m.Objects) {
		t.Fatalf("first checkpoint stats %+v, manifest of %d bytes in %d objects", st, m.Size(), len(m.Objects))
	}
	for _, name := range m.Files() {
		if !strings.HasPrefix(name, "shared/") {
			t.Fatalf("object %s not under the shared prefix", name)
		}
		if _, err := store.Stat(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// Writes after the checkpoint are not in it.
	if err := db.Put(5, 1, []byte("after"), []byte("y")); err != nil {
		t.Fatal(err)
	}

	enc, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := DecodeManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Restore(ctx, filepath.Join(t.TempDir(), "restored"), store, []Manifest{m2}, all, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	equalMaps(t, "restored", dump(t, r), want)
	// The restored DB takes writes and checkpoints.
	if err := r.Put(7, 1, []byte("new"), []byte("z")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Checkpoint(ctx, store, "shared"); err != nil {
		t.Fatal(err)
	}
}

func TestIncrementalCheckpoint(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	all := keygroup.Range{Start: 0, End: maxP}
	db := openDB(t, all)
	const n = 40000
	want := fill(t, db, all, n, 100, 2) // about 4.5 MB
	m1, st1, err := db.Checkpoint(ctx, store, "shared")
	if err != nil {
		t.Fatal(err)
	}
	db.Confirm(m1)

	change := func(seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 3))
		for range n / 100 {
			i := rng.IntN(n)
			key := fmt.Sprintf("key-%d", i)
			kg := keygroup.Of([]byte(key), maxP)
			st := StateID(1 + i%2)
			v := fmt.Sprintf("changed-%d", rng.Uint64())
			if err := db.Put(kg, st, []byte(key), []byte(v)); err != nil {
				t.Fatal(err)
			}
			want[entry{kg: kg, st: st, key: key}.id()] = v
		}
	}
	change(1)
	m2, st2, err := db.Checkpoint(ctx, store, "shared")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first checkpoint %+v; second %+v", st1, st2)
	if st1.UploadedBytes < 3<<20 {
		t.Fatalf("first checkpoint uploaded %d bytes, want the whole state", st1.UploadedBytes)
	}
	if float64(st2.UploadedBytes) >= 0.2*float64(st1.UploadedBytes) {
		t.Fatalf("second checkpoint uploaded %d bytes, first %d: not incremental", st2.UploadedBytes, st1.UploadedBytes)
	}
	first := map[string]bool{}
	for _, o := range m1.Objects {
		if o.Shared {
			first[o.Name] = true
		}
	}
	var reused int64
	for _, o := range m2.Objects {
		if first[o.Name] {
			reused += o.Size
		}
	}
	if reused == 0 || reused != st2.Bytes-st2.UploadedBytes {
		t.Fatalf("second checkpoint references %d bytes of the first's objects, stats %+v", reused, st2)
	}

	// The second is not confirmed: a third references the first's files
	// but none that only the second uploaded, which may yet be deleted.
	change(2)
	m3, _, err := db.Checkpoint(ctx, store, "shared")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range m3.Objects {
		if slices.Contains(m2.Files(), o.Name) && !first[o.Name] {
			t.Fatalf("third checkpoint references %s of the unconfirmed second", o.Name)
		}
	}

	// Restore needs only what the manifest lists: delete everything else.
	keep := map[string]bool{}
	for _, name := range m3.Files() {
		keep[name] = true
	}
	infos, err := store.List(ctx, "shared/")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if !keep[in.Name] {
			if err := store.Delete(ctx, in.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := Restore(ctx, filepath.Join(t.TempDir(), "restored"), store, []Manifest{m3}, all, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	equalMaps(t, "restored", dump(t, r), want)
}

func TestRescale(t *testing.T) {
	ctx := context.Background()
	store, _ := openStore(t)
	old := []keygroup.Range{{Start: 0, End: 64}, {Start: 64, End: 128}}
	var manifests []Manifest
	want := map[string]string{}
	for i, r := range old {
		db := openDB(t, r)
		w := fill(t, db, r, 20000, 32, uint64(10+i))
		for k, v := range w {
			want[k] = v
		}
		m, _, err := db.Checkpoint(ctx, store, fmt.Sprintf("shared/op-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, m)
	}
	seen := map[string]string{}
	for i := range 3 {
		r := keygroup.For(i, maxP, 3)
		db, err := Restore(ctx, filepath.Join(t.TempDir(), "restored"), store, manifests, r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := dump(t, db)
		for id, v := range got {
			var kg int
			if _, err := fmt.Sscanf(id, "%d/", &kg); err != nil {
				t.Fatalf("entry %s: %v", id, err)
			}
			if !r.Contains(kg) {
				t.Fatalf("new subtask %d (%v) holds %s of key group %d", i, r, id, kg)
			}
			if _, dup := seen[id]; dup {
				t.Fatalf("%s restored twice", id)
			}
			seen[id] = v
		}
		if r.Len() == 0 || len(got) == 0 {
			t.Fatalf("new subtask %d (%v) restored %d entries", i, r, len(got))
		}

		// A checkpoint of the restored DB references the files it was
		// restored from, and restores by itself.
		m, st, err := db.Checkpoint(ctx, store, "shared/new")
		if err != nil {
			t.Fatal(err)
		}
		if st.UploadedBytes >= st.Bytes {
			t.Fatalf("checkpoint after restore uploaded all of it: %+v", st)
		}
		_ = db.Close()
		again, err := Restore(ctx, filepath.Join(t.TempDir(), "again"), store, []Manifest{m}, r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		equalMaps(t, fmt.Sprintf("subtask %d restored twice", i), dump(t, again), got)
		_ = again.Close()
	}
	equalMaps(t, "union of the new subtasks", seen, want)
}

func TestRestoreCorruptObject(t *testing.T) {
	ctx := context.Background()
	store, storeDir := openStore(t)
	all := keygroup.Range{Start: 0, End: maxP}
	db := openDB(t, all)
	fill(t, db, all, 2000, 64, 4)
	m, _, err := db.Checkpoint(ctx, store, "shared")
	if err != nil {
		t.Fatal(err)
	}
	var sst Object
	for _, o := range m.Objects {
		if o.Shared && o.Size > sst.Size {
			sst = o
		}
	}
	if sst.Name == "" {
		t.Fatal("checkpoint has no SST")
	}
	p := filepath.Join(storeDir, filepath.FromSlash(sst.Name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx, filepath.Join(t.TempDir(), "restored"), store, []Manifest{m}, all, Options{})
	if !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("restore of a corrupted checkpoint: %v, want %v", err, storage.ErrChecksum)
	}
}

func TestDecodeManifestRejects(t *testing.T) {
	good := Manifest{Version: ManifestVersion, Groups: keygroup.Range{Start: 0, End: 4}, Objects: []Object{{Local: "000005.sst", Name: "s/a", Size: 3, Shared: true}}}
	enc, _ := good.MarshalBinary()
	if _, err := DecodeManifest(enc); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]Manifest{
		"version":    {Version: 2, Groups: good.Groups},
		"groups":     {Version: ManifestVersion, Groups: keygroup.Range{Start: 0, End: MaxKeyGroups + 1}},
		"escape":     {Version: ManifestVersion, Objects: []Object{{Local: "../x", Name: "s/a"}}},
		"no name":    {Version: ManifestVersion, Objects: []Object{{Local: "x"}}},
		"dot dot":    {Version: ManifestVersion, Objects: []Object{{Local: "..", Name: "s/a"}}},
		"negative":   {Version: ManifestVersion, Objects: []Object{{Local: "x", Name: "s/a", Size: -1}}},
		"backslash":  {Version: ManifestVersion, Objects: []Object{{Local: `a\b`, Name: "s/a"}}},
		"empty name": {Version: ManifestVersion, Objects: []Object{{Local: "", Name: "s/a"}}},
	} {
		enc, _ := m.MarshalBinary()
		if _, err := DecodeManifest(enc); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := DecodeManifest([]byte("{")); err == nil {
		t.Error("truncated JSON decoded")
	}
	if !bytes.Contains(enc, []byte(`"objects"`)) {
		t.Errorf("encoding %s", enc)
	}
}
