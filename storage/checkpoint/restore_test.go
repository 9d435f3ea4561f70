package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
)

// keyGroups is keygroup.For (which storage cannot import): the key groups
// of a subtask.
func keyGroups(subtask, maxParallelism, parallelism int) KeyGroupRange {
	return KeyGroupRange{
		Start: (subtask*maxParallelism + parallelism - 1) / parallelism,
		End:   ((subtask+1)*maxParallelism + parallelism - 1) / parallelism,
	}
}

// subtaskState is the state one operator subtask restored or snapshots.
type subtaskState struct {
	keyGroups map[int][]byte
	items     [][]byte
}

// writeStates writes the state of every subtask of operator uid as a
// checkpoint task would: one file per subtask, key groups then items.
func writeStates(t *testing.T, files map[string][]byte, uid string, states []subtaskState) *pluginpb.OperatorState {
	t.Helper()
	op := &pluginpb.OperatorState{Uid: uid, Parallelism: uint32(len(states)), MaxParallelism: 128}
	for i, st := range states {
		s := &pluginpb.OperatorSubtaskState{Uid: uid, Subtask: uint32(i)}
		var buf bytes.Buffer
		for g := range 128 {
			b, ok := st.keyGroups[g]
			if !ok {
				continue
			}
			s.KeyGroups = append(s.KeyGroups, &pluginpb.KeyGroupSlice{KeyGroup: uint32(g), Offset: int64(buf.Len()), Length: int64(len(b))})
			buf.Write(b)
		}
		for _, it := range st.items {
			s.Items = append(s.Items, &pluginpb.Slice{Offset: int64(buf.Len()), Length: int64(len(it))})
			buf.Write(it)
		}
		if buf.Len() > 0 {
			s.File = fmt.Sprintf("chk-%d/%s", len(files), StateFileName(uid, i))
			s.Size = int64(buf.Len())
			files[s.File] = buf.Bytes()
		}
		op.Subtasks = append(op.Subtasks, s)
	}
	// The order of subtasks in the metadata must not matter.
	rand.Shuffle(len(op.Subtasks), func(i, j int) { op.Subtasks[i], op.Subtasks[j] = op.Subtasks[j], op.Subtasks[i] })
	return op
}

// restoreAll restores every subtask at parallelism p, reading the parts
// from files.
func restoreAll(t *testing.T, m *pluginpb.CheckpointMetadata, files map[string][]byte, uid string, p int) []subtaskState {
	t.Helper()
	out := make([]subtaskState, p)
	for s := range p {
		r, err := Assign(m, uid, s, p, keyGroups(s, 128, p), 128)
		if err != nil {
			t.Fatalf("assign subtask %d of %d: %v", s, p, err)
		}
		if r == nil {
			t.Fatalf("assign subtask %d of %d: nil for an operator in the checkpoint", s, p)
		}
		out[s] = subtaskState{keyGroups: map[int][]byte{}}
		for _, kg := range r.KeyGroups {
			if !keyGroups(s, 128, p).Contains(kg.KeyGroup) {
				t.Fatalf("subtask %d of %d got key group %d outside its range %v", s, p, kg.KeyGroup, keyGroups(s, 128, p))
			}
			if _, dup := out[s].keyGroups[kg.KeyGroup]; dup {
				t.Fatalf("subtask %d got key group %d twice", s, kg.KeyGroup)
			}
			out[s].keyGroups[kg.KeyGroup] = files[kg.File][kg.Offset : kg.Offset+kg.Length]
		}
		for _, it := range r.Items {
			out[s].items = append(out[s].items, files[it.File][it.Offset:it.Offset+it.Length])
		}
		for _, f := range r.Files() {
			if int64(len(files[f])) != r.Sizes[f] {
				t.Fatalf("file %s: recorded size %d, has %d", f, r.Sizes[f], len(files[f]))
			}
		}
	}
	return out
}

// checkComplete checks that the subtasks hold every key group of 0..127
// exactly once, with its original blob, and every item exactly once.
func checkComplete(t *testing.T, stage string, states []subtaskState, items int) {
	t.Helper()
	seenKG := map[int]int{}
	seenItem := map[string]int{}
	for s, st := range states {
		for g, b := range st.keyGroups {
			if string(b) != fmt.Sprintf("key group %d's state", g) {
				t.Fatalf("%s: key group %d holds %q", stage, g, b)
			}
			if prev, dup := seenKG[g]; dup {
				t.Fatalf("%s: key group %d in subtasks %d and %d", stage, g, prev, s)
			}
			seenKG[g] = s
		}
		for _, it := range st.items {
			if prev, dup := seenItem[string(it)]; dup {
				t.Fatalf("%s: item %q in subtasks %d and %d", stage, it, prev, s)
			}
			seenItem[string(it)] = s
		}
	}
	if len(seenKG) != 128 {
		t.Fatalf("%s: %d key groups restored, want 128", stage, len(seenKG))
	}
	if len(seenItem) != items {
		t.Fatalf("%s: %d items restored, want %d", stage, len(seenItem), items)
	}
}

func TestAssignRedistributes4To2To8(t *testing.T) {
	files := map[string][]byte{}
	// At parallelism 4: each subtask owns its key groups, and a different
	// number of items (the last none).
	var states []subtaskState
	items := 0
	for s := range 4 {
		st := subtaskState{keyGroups: map[int][]byte{}}
		r := keyGroups(s, 128, 4)
		for g := r.Start; g < r.End; g++ {
			st.keyGroups[g] = []byte(fmt.Sprintf("key group %d's state", g))
		}
		for j := range 3 - s {
			st.items = append(st.items, []byte(fmt.Sprintf("split %d.%d", s, j)))
			items++
		}
		states = append(states, st)
	}
	m := &pluginpb.CheckpointMetadata{CheckpointId: 1, MaxParallelism: 128,
		Operators: []*pluginpb.OperatorState{writeStates(t, files, "op", states)}}
	checkComplete(t, "at 4", states, items)

	at2 := restoreAll(t, m, files, "op", 2)
	checkComplete(t, "4 -> 2", at2, items)
	// Round robin over the concatenation in subtask order.
	var concat []string
	for s := range 4 {
		for _, it := range states[s].items {
			concat = append(concat, string(it))
		}
	}
	for s := range 2 {
		var want []string
		for i := s; i < len(concat); i += 2 {
			want = append(want, concat[i])
		}
		var got []string
		for _, it := range at2[s].items {
			got = append(got, string(it))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("subtask %d of 2 items %q, want %q", s, got, want)
		}
	}

	m2 := &pluginpb.CheckpointMetadata{CheckpointId: 2, MaxParallelism: 128,
		Operators: []*pluginpb.OperatorState{writeStates(t, files, "op", at2)}}
	at8 := restoreAll(t, m2, files, "op", 8)
	checkComplete(t, "4 -> 2 -> 8", at8, items)
	// Subtasks past the number of items take none.
	for s := items; s < 8; s++ {
		if len(at8[s].items) != 0 {
			t.Fatalf("subtask %d of 8 has items %q, there are only %d", s, at8[s].items, items)
		}
	}

	// An operator not in the checkpoint starts empty; one whose subtasks
	// hold nothing gets an empty, non-nil restore.
	if r, err := Assign(m, "other", 0, 2, keyGroups(0, 128, 2), 128); r != nil || err != nil {
		t.Fatalf("operator not in the checkpoint: %v %v, want nil, nil", r, err)
	}
	m.Operators = append(m.Operators, &pluginpb.OperatorState{Uid: "stateless", Subtasks: []*pluginpb.OperatorSubtaskState{{Uid: "stateless"}}})
	if r, err := Assign(m, "stateless", 1, 2, keyGroups(1, 128, 2), 128); err != nil || r == nil || len(r.KeyGroups)+len(r.Items)+len(r.Files()) != 0 {
		t.Fatalf("operator with empty state: %+v %v, want an empty restore", r, err)
	}
}

func TestAssignRefusesBadMetadata(t *testing.T) {
	good := func() *pluginpb.CheckpointMetadata {
		return &pluginpb.CheckpointMetadata{CheckpointId: 3, MaxParallelism: 8, Operators: []*pluginpb.OperatorState{{
			Uid: "op", Subtasks: []*pluginpb.OperatorSubtaskState{
				{Subtask: 0, File: "a", Size: 10, KeyGroups: []*pluginpb.KeyGroupSlice{{KeyGroup: 0, Offset: 0, Length: 5}}, Items: []*pluginpb.Slice{{Offset: 5, Length: 5}}},
				{Subtask: 1, File: "b", Size: 4, KeyGroups: []*pluginpb.KeyGroupSlice{{KeyGroup: 4, Offset: 0, Length: 4}}},
			},
		}}}
	}
	if _, err := Assign(good(), "op", 0, 1, KeyGroupRange{0, 8}, 8); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(m *pluginpb.CheckpointMetadata)
		want string
	}{
		{"slice past the file", func(m *pluginpb.CheckpointMetadata) { m.Operators[0].Subtasks[1].KeyGroups[0].Length = 5 }, "outside its file b of 4 bytes"},
		{"negative offset", func(m *pluginpb.CheckpointMetadata) { m.Operators[0].Subtasks[0].Items[0].Offset = -1 }, "item 0 at [-1, +5)"},
		{"key group twice", func(m *pluginpb.CheckpointMetadata) { m.Operators[0].Subtasks[1].KeyGroups[0].KeyGroup = 0 }, "key group 0 in subtasks 0 and 1"},
		{"key group past max", func(m *pluginpb.CheckpointMetadata) { m.Operators[0].Subtasks[1].KeyGroups[0].KeyGroup = 8 }, "key group 8 of max parallelism 8"},
		{"subtask twice", func(m *pluginpb.CheckpointMetadata) { m.Operators[0].Subtasks[1].Subtask = 0 }, "subtask 0 twice"},
		{"slices without file", func(m *pluginpb.CheckpointMetadata) { m.Operators[0].Subtasks[1].File = "" }, "no state file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := good()
			c.edit(m)
			_, err := Assign(m, "op", 0, 1, KeyGroupRange{0, 8}, 8)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("assign: %v, want ErrCorrupt with %q", err, c.want)
			}
		})
	}
	_, err := Assign(good(), "op", 0, 1, KeyGroupRange{0, 16}, 16)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "max parallelism 8") || !strings.Contains(err.Error(), "max parallelism 16") {
		t.Fatalf("assign at another max parallelism: %v", err)
	}
	if _, err := Assign(good(), "op", 2, 2, KeyGroupRange{0, 8}, 8); err == nil {
		t.Fatal("subtask 2 of 2 accepted")
	}
}

func TestValidate(t *testing.T) {
	m := &pluginpb.CheckpointMetadata{CheckpointId: 7, MaxParallelism: 128, Operators: []*pluginpb.OperatorState{
		{Uid: "src", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "f", Size: 1, Items: []*pluginpb.Slice{{Length: 1}}}}},
		{Uid: "old-sum", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "g", Size: 1, KeyGroups: []*pluginpb.KeyGroupSlice{{Length: 1}}}}},
		{Uid: "gone-window", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "h", Size: 1, Items: []*pluginpb.Slice{{Length: 1}}}}},
		{Uid: "empty", Subtasks: []*pluginpb.OperatorSubtaskState{{}}},
	}}
	if err := Validate(m, 128, []string{"src", "old-sum", "gone-window"}, false); err != nil {
		t.Fatal(err)
	}
	err := Validate(m, 128, []string{"src", "sum"}, false)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), `"gone-window", "old-sum"`) || strings.Contains(err.Error(), "empty") ||
		!strings.Contains(err.Error(), "allow-non-restored-state") {
		t.Fatalf("validate with missing UIDs: %v, want both named (sorted), not the empty operator", err)
	}
	if err := Validate(m, 128, []string{"src"}, true); err != nil {
		t.Fatalf("allow non-restored: %v", err)
	}
	err = Validate(m, 256, []string{"src", "old-sum", "gone-window"}, true)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "max parallelism 128") || !strings.Contains(err.Error(), "max parallelism 256") {
		t.Fatalf("validate at another max parallelism: %v, want both named", err)
	}
	m.MaxParallelism = 0
	m.Operators[1].MaxParallelism = 64
	err = Validate(m, 128, []string{"src", "old-sum", "gone-window"}, false)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), `"old-sum"`) || !strings.Contains(err.Error(), "64") {
		t.Fatalf("operator at another max parallelism: %v", err)
	}
}

func TestStateFileName(t *testing.T) {
	cases := map[string]string{
		"sum":        "sum-3.state",
		"my.op_v2-x": "my.op_v2-x-3.state",
	}
	for uid, want := range cases {
		if got := StateFileName(uid, 3); got != want {
			t.Errorf("StateFileName(%q) = %q, want %q", uid, got, want)
		}
	}
	names := map[string]string{}
	for _, uid := range []string{"a/b", "a_b", "a b", "a:b", ".hidden", "", "ü", strings.Repeat("x", 300), strings.Repeat("x", 301), "../x"} {
		n := StateFileName(uid, 0)
		if prev, dup := names[n]; dup {
			t.Errorf("UIDs %q and %q share the file name %q", prev, uid, n)
		}
		names[n] = uid
		if strings.ContainsAny(n, "/ :\\") || strings.HasPrefix(n, ".") || len(n) > 120 || !strings.HasSuffix(n, "-0.state") {
			t.Errorf("StateFileName(%q) = %q: not a safe name", uid, n)
		}
	}
	if n := StateFileName("a/b", 0); !strings.HasPrefix(n, "a_b-") || n == "a_b-0.state" {
		t.Errorf("a sanitised UID keeps its readable part and adds a hash: %q", n)
	}
	// Every name is one a store accepts.
	st, err := storage.Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for n := range names {
		if _, err := st.Put(context.Background(), Dir(1)+"/"+n, strings.NewReader("x")); err != nil {
			t.Errorf("put %q: %v", n, err)
		}
	}
}

func sampleMetadata() *pluginpb.CheckpointMetadata {
	return &pluginpb.CheckpointMetadata{JobId: "j1", JobName: "sum", CheckpointId: 42, TimestampMs: 1700000000000, MaxParallelism: 128,
		Operators: []*pluginpb.OperatorState{{Uid: "src", Name: "Source", Kind: "source", Parallelism: 2, MaxParallelism: 128,
			Subtasks: []*pluginpb.OperatorSubtaskState{
				{Uid: "src", Subtask: 0, File: "src-0.state", Size: 12, Items: []*pluginpb.Slice{{Offset: 0, Length: 12}}},
				{Uid: "src", Subtask: 1, File: "src-1.state", Size: 30, KeyGroups: []*pluginpb.KeyGroupSlice{{KeyGroup: 64, Offset: 0, Length: 30}}},
			}}}}
}

// Every single-bit flip and every truncation of a _metadata file is
// refused, and random bytes never decode or panic.
func TestDecodeMetadataRefusesCorruption(t *testing.T) {
	m := sampleMetadata()
	b, err := EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	m.FormatVersion = FormatVersion
	if !proto.Equal(got, m) {
		t.Fatalf("round trip: %v, want %v", got, m)
	}
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			_, err := DecodeMetadata(c)
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotMetadata) && !errors.Is(err, ErrVersion) {
				t.Fatalf("bit %d of byte %d flipped: %v, want a refusal", bit, i, err)
			}
		}
	}
	for n := range len(b) {
		if _, err := DecodeMetadata(b[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: decoded", n, len(b))
		}
	}
	if _, err := DecodeMetadata(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a byte appended: %v, want ErrCorrupt", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		c := bytes.Clone(b)
		// Several random bytes changed, or random content behind the magic.
		if rng.IntN(2) == 0 {
			for range 1 + rng.IntN(8) {
				c[rng.IntN(len(c))] = byte(rng.Uint32())
			}
		} else {
			c = append([]byte(Magic), make([]byte, rng.IntN(64))...)
			for i := len(Magic); i < len(c); i++ {
				c[i] = byte(rng.Uint32())
			}
		}
		if bytes.Equal(c, b) {
			continue
		}
		if _, err := DecodeMetadata(c); err == nil {
			t.Fatalf("corrupted metadata %x decoded", c)
		}
	}
}

func FuzzDecodeMetadata(f *testing.F) {
	b, err := EncodeMetadata(sampleMetadata())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMetadata(b)
		if err != nil {
			return
		}
		// What decodes encodes to the same bytes.
		again, err := EncodeMetadata(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := DecodeMetadata(again)
		if err != nil || !proto.Equal(m, m2) {
			t.Fatalf("re-encoded metadata: %v %v", m2, err)
		}
	})
}

func TestWriteReadMetadata(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetadata(ctx, st, Dir(42)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("read missing metadata: %v, want ErrNotFound", err)
	}
	if err := WriteMetadata(ctx, st, Dir(42), sampleMetadata()); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMetadata(ctx, st, Dir(42))
	if err != nil || m.GetCheckpointId() != 42 {
		t.Fatalf("read metadata: %v %v", m, err)
	}
}

func TestFiles(t *testing.T) {
	m := &pluginpb.CheckpointMetadata{CheckpointId: 5, Operators: []*pluginpb.OperatorState{
		{Uid: "a", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "a-0.state"}, {File: "../chk-3/a-1.state"}, {}}},
		{Uid: "b", Subtasks: []*pluginpb.OperatorSubtaskState{{File: "b-0.state", Shared: []string{"../shared/b/000001.sst", "../shared/b/000001.sst"}}}},
	}}
	got, err := Files(m, Dir(5))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"chk-3/a-1.state", "chk-5/a-0.state", "chk-5/b-0.state", "shared/b/000001.sst"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	m.Operators[0].Subtasks[2].File = "../../elsewhere"
	if _, err := Files(m, Dir(5)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "../../elsewhere") {
		t.Fatalf("a file outside the directory: %v, want ErrCorrupt naming it", err)
	}
}

// An incremental subtask state (one that lists shared files) ends its
// state file with a manifest: Assign hands each new subtask the manifests
// of the old subtasks whose key groups overlap its range, with the old
// ranges, and the key-group blobs of its own range as usual.
func TestAssignIncremental(t *testing.T) {
	const maxP = 128
	m := &pluginpb.CheckpointMetadata{CheckpointId: 4, MaxParallelism: maxP}
	op := &pluginpb.OperatorState{Uid: "sum", Parallelism: 2, MaxParallelism: maxP}
	for s := range 2 {
		r := keyGroups(s, maxP, 2)
		st := &pluginpb.OperatorSubtaskState{Uid: "sum", Subtask: uint32(s), File: fmt.Sprintf("sum-%d.state", s),
			Shared: []string{fmt.Sprintf("../shared/chk-4/db%d-1-000005.sst", s)}}
		var off int64
		for kg := r.Start; kg < r.End; kg++ {
			st.KeyGroups = append(st.KeyGroups, &pluginpb.KeyGroupSlice{KeyGroup: uint32(kg), Offset: off, Length: 3})
			off += 3
		}
		st.Size = off + 100 // the manifest
		op.Subtasks = append(op.Subtasks, st)
	}
	m.Operators = []*pluginpb.OperatorState{op}
	for _, tc := range []struct {
		p, s int
		want []KeyGroupRange
	}{
		{1, 0, []KeyGroupRange{{0, 64}, {64, 128}}},
		{3, 0, []KeyGroupRange{{0, 64}}},
		{3, 1, []KeyGroupRange{{0, 64}, {64, 128}}},
		{3, 2, []KeyGroupRange{{64, 128}}},
	} {
		r := keyGroups(tc.s, maxP, tc.p)
		a, err := Assign(m, "sum", tc.s, tc.p, r, maxP)
		if err != nil {
			t.Fatal(err)
		}
		var got []KeyGroupRange
		for _, p := range a.Incremental {
			got = append(got, p.Groups)
			if p.Offset != 64*3 || p.Length != 100 {
				t.Fatalf("subtask %d of %d: manifest at [%d, +%d), want [192, +100)", tc.s, tc.p, p.Offset, p.Length)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("subtask %d of %d: manifests of %v, want %v", tc.s, tc.p, got, tc.want)
		}
		if len(a.KeyGroups) != r.End-r.Start {
			t.Fatalf("subtask %d of %d: %d key-group blobs, want %d", tc.s, tc.p, len(a.KeyGroups), r.End-r.Start)
		}
	}
	files, err := Files(m, Dir(6))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"chk-6/sum-0.state", "chk-6/sum-1.state", "shared/chk-4/db0-1-000005.sst", "shared/chk-4/db1-1-000005.sst"}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("files %q, want %q", files, want)
	}
}
