package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// A state file holds the state of one operator subtask in one checkpoint:
// the key-group blobs, in key-group order, followed by the operator state
// items, in order, concatenated without framing. The OperatorSubtaskState
// that names the file records where each blob and item is (KeyGroupSlice,
// Slice); the blobs check themselves, and storage checks the whole file
// against its checksum.

// StateFileSuffix ends the name of every state file.
const StateFileSuffix = ".state"

// maxNameUID bounds the part of a state file's name taken from the UID.
const maxNameUID = 80

// StateFileName returns the name of operator uid's subtask's state file in
// a checkpoint directory: "<uid>-<subtask>.state", with characters other
// than letters, digits, '.', '_' and '-' replaced by '_' and, when that (or
// shortening a long UID) changed the UID, a short hash of the real UID
// added, so that two UIDs never share a name. Restores read the names
// recorded in the metadata; they never derive them.
func StateFileName(uid string, subtask int) string {
	var b strings.Builder
	changed := uid == ""
	for i, r := range uid {
		ok := r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' ||
			(r == '.' && i > 0))
		if !ok {
			r, changed = '_', true
		}
		b.WriteRune(r)
	}
	name := b.String()
	if name == "" {
		name = "_"
	}
	if len(name) > maxNameUID {
		name, changed = name[:maxNameUID], true
	}
	if changed {
		sum := sha256.Sum256([]byte(uid))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	return fmt.Sprintf("%s-%d%s", name, subtask, StateFileSuffix)
}

// ErrIncompatible is wrapped by the errors that refuse to restore a
// checkpoint into a job that cannot take its state.
var ErrIncompatible = errors.New("checkpoint does not fit the job")

// CheckMaxParallelism refuses a checkpoint taken at another max
// parallelism: key groups are the unit of keyed state, and their number is
// fixed for the life of a job's state.
func CheckMaxParallelism(m *pluginpb.CheckpointMetadata, maxParallelism int) error {
	if old := int(m.GetMaxParallelism()); old != 0 && old != maxParallelism {
		return fmt.Errorf("%w: checkpoint %d was taken at max parallelism %d and the job has max parallelism %d; keyed state cannot move between them (keep the max parallelism at %d)",
			ErrIncompatible, m.GetCheckpointId(), old, maxParallelism, old)
	}
	for _, op := range m.GetOperators() {
		if old := int(op.GetMaxParallelism()); old != 0 && old != maxParallelism {
			return fmt.Errorf("%w: operator %q was checkpointed at max parallelism %d and the job has max parallelism %d; keyed state cannot move between them",
				ErrIncompatible, op.GetUid(), old, maxParallelism)
		}
	}
	return nil
}

// CheckOperators refuses a checkpoint that holds state of operators whose
// UIDs the job does not have (their state would be lost), unless
// allowNonRestored. Operators whose every subtask is empty hold nothing to
// lose and are ignored.
func CheckOperators(m *pluginpb.CheckpointMetadata, uids []string, allowNonRestored bool) error {
	if allowNonRestored {
		return nil
	}
	missing := NonRestored(m, uids)
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: checkpoint %d holds state of operators the job does not have: %s (a UID changed or an operator was removed); restore with --allow-non-restored-state to drop it",
		ErrIncompatible, m.GetCheckpointId(), strings.Join(quoteAll(missing), ", "))
}

// NonRestored returns, sorted, the UIDs of the operators with state in m
// that are not among uids.
func NonRestored(m *pluginpb.CheckpointMetadata, uids []string) []string {
	have := make(map[string]bool, len(uids))
	for _, u := range uids {
		have[u] = true
	}
	var missing []string
	for _, op := range m.GetOperators() {
		if !have[op.GetUid()] && hasState(op) {
			missing = append(missing, op.GetUid())
		}
	}
	sort.Strings(missing)
	return missing
}

// Validate is CheckMaxParallelism and CheckOperators.
func Validate(m *pluginpb.CheckpointMetadata, maxParallelism int, uids []string, allowNonRestored bool) error {
	if err := CheckMaxParallelism(m, maxParallelism); err != nil {
		return err
	}
	return CheckOperators(m, uids, allowNonRestored)
}

func hasState(op *pluginpb.OperatorState) bool {
	for _, s := range op.GetSubtasks() {
		if s.GetFile() != "" || len(s.GetKeyGroups()) > 0 || len(s.GetItems()) > 0 || len(s.GetShared()) > 0 {
			return true
		}
	}
	return false
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return q
}

// KeyGroupRange is a half-open range of key groups [Start, End), as the
// SDK assigns them to subtasks.
type KeyGroupRange struct {
	Start, End int
}

// Contains reports whether key group g is in the range.
func (r KeyGroupRange) Contains(g int) bool { return g >= r.Start && g < r.End }

// Part is a byte range of a state file of a checkpoint.
type Part struct {
	File           string // relative to the checkpoint directory
	Offset, Length int64
}

// KeyGroupPart is the part of a state file that holds one key group.
type KeyGroupPart struct {
	KeyGroup int
	Part
}

// SubtaskRestore is what one operator subtask restores from a checkpoint.
type SubtaskRestore struct {
	// KeyGroups are the blobs of the key groups of the subtask's range, in
	// key-group order.
	KeyGroups []KeyGroupPart
	// Items are the operator state items the subtask takes, in order.
	Items []Part
	// Incremental are the manifests of the incremental snapshots (the
	// Pebble state backend) of the old subtasks whose key groups overlap
	// the subtask's, in old subtask order.
	Incremental []IncrementalPart
	// Sizes are the recorded sizes of the files the parts are in.
	Sizes map[string]int64
}

// Files returns the state files the subtask reads, sorted.
func (r *SubtaskRestore) Files() []string {
	files := make([]string, 0, len(r.Sizes))
	for f := range r.Sizes {
		files = append(files, f)
	}
	sort.Strings(files)
	return files
}

// IncrementalPart is the manifest of an old subtask's incremental
// snapshot: the part of its state file after its key-group blobs and
// items, naming files relative to the job's checkpoint directory.
type IncrementalPart struct {
	Part
	// Groups are the key groups the old subtask held.
	Groups KeyGroupRange
}

// Incremental reports whether s is an incremental snapshot: it lists
// shared files, and its state file ends with their manifest.
func Incremental(s *pluginpb.OperatorSubtaskState) bool { return len(s.GetShared()) > 0 }

// Operator returns the state of operator uid in m, or nil.
func Operator(m *pluginpb.CheckpointMetadata, uid string) *pluginpb.OperatorState {
	for _, op := range m.GetOperators() {
		if op.GetUid() == uid {
			return op
		}
	}
	return nil
}

// Assign tells what subtask of parallelism, which owns the key groups of
// groups, restores of operator uid from the checkpoint m: the blobs of its
// key groups, whichever old subtasks held them, and its share of the
// operator state items (item i of the concatenation of every old subtask's
// items, in subtask order, goes to new subtask i mod parallelism). It
// returns nil and no error when the operator is not in the checkpoint (it
// starts empty); an operator in it gets a non-nil restore, possibly empty.
// Metadata whose slices do not fit its files, or that lists a key group
// twice, is refused with ErrCorrupt.
func Assign(m *pluginpb.CheckpointMetadata, uid string, subtask, parallelism int, groups KeyGroupRange, maxParallelism int) (*SubtaskRestore, error) {
	if parallelism < 1 || subtask < 0 || subtask >= parallelism {
		return nil, fmt.Errorf("restore operator %q: subtask %d of parallelism %d", uid, subtask, parallelism)
	}
	if groups.Start < 0 || groups.End < groups.Start || groups.End > maxParallelism {
		return nil, fmt.Errorf("restore operator %q: key groups [%d, %d) outside max parallelism %d", uid, groups.Start, groups.End, maxParallelism)
	}
	if err := CheckMaxParallelism(m, maxParallelism); err != nil {
		return nil, err
	}
	op := Operator(m, uid)
	if op == nil {
		return nil, nil
	}
	subs := append([]*pluginpb.OperatorSubtaskState(nil), op.GetSubtasks()...)
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].GetSubtask() < subs[j].GetSubtask() })
	r := &SubtaskRestore{Sizes: map[string]int64{}}
	seen := map[int]uint32{}
	item := 0
	for i, s := range subs {
		if i > 0 && s.GetSubtask() == subs[i-1].GetSubtask() {
			return nil, fmt.Errorf("%w: operator %q lists subtask %d twice", ErrCorrupt, uid, s.GetSubtask())
		}
		part := func(what string, off, n int64) (Part, error) {
			if s.GetFile() == "" {
				return Part{}, fmt.Errorf("%w: operator %q subtask %d has %s but no state file", ErrCorrupt, uid, s.GetSubtask(), what)
			}
			if off < 0 || n < 0 || off > s.GetSize() || n > s.GetSize()-off {
				return Part{}, fmt.Errorf("%w: operator %q subtask %d: %s at [%d, +%d) outside its file %s of %d bytes",
					ErrCorrupt, uid, s.GetSubtask(), what, off, n, s.GetFile(), s.GetSize())
			}
			return Part{File: s.GetFile(), Offset: off, Length: n}, nil
		}
		used := false
		if Incremental(s) {
			// The manifest follows the blobs and items; the key groups of
			// the blobs are the ones the old subtask held.
			var end int64
			old := KeyGroupRange{Start: maxParallelism, End: 0}
			for _, kg := range s.GetKeyGroups() {
				end = max(end, kg.GetOffset()+kg.GetLength())
				old.Start, old.End = min(old.Start, int(kg.GetKeyGroup())), max(old.End, int(kg.GetKeyGroup())+1)
			}
			for _, it := range s.GetItems() {
				end = max(end, it.GetOffset()+it.GetLength())
			}
			if old.Start < old.End && old.Start < groups.End && groups.Start < old.End {
				p, err := part("a state manifest", end, s.GetSize()-end)
				if err != nil {
					return nil, err
				}
				r.Incremental = append(r.Incremental, IncrementalPart{Part: p, Groups: old})
				used = true
			}
		}
		for _, kg := range s.GetKeyGroups() {
			g := int(kg.GetKeyGroup())
			if g >= maxParallelism {
				return nil, fmt.Errorf("%w: operator %q subtask %d holds key group %d of max parallelism %d", ErrCorrupt, uid, s.GetSubtask(), g, maxParallelism)
			}
			if prev, dup := seen[g]; dup {
				return nil, fmt.Errorf("%w: operator %q holds key group %d in subtasks %d and %d", ErrCorrupt, uid, g, prev, s.GetSubtask())
			}
			seen[g] = s.GetSubtask()
			if !groups.Contains(g) {
				continue
			}
			p, err := part(fmt.Sprintf("key group %d", g), kg.GetOffset(), kg.GetLength())
			if err != nil {
				return nil, err
			}
			r.KeyGroups = append(r.KeyGroups, KeyGroupPart{KeyGroup: g, Part: p})
			used = true
		}
		for j, it := range s.GetItems() {
			mine := item%parallelism == subtask
			item++
			if !mine {
				continue
			}
			p, err := part(fmt.Sprintf("item %d", j), it.GetOffset(), it.GetLength())
			if err != nil {
				return nil, err
			}
			r.Items = append(r.Items, p)
			used = true
		}
		if used {
			r.Sizes[s.GetFile()] = s.GetSize()
		}
	}
	sort.SliceStable(r.KeyGroups, func(i, j int) bool { return r.KeyGroups[i].KeyGroup < r.KeyGroups[j].KeyGroup })
	return r, nil
}

// Files returns, sorted and once each, the state files checkpoint m
// references (its own, files carried over from earlier checkpoints, shared
// files), as names relative to the job's checkpoint directory, given dir,
// the checkpoint's directory relative to it (Dir(id)). A file name in m is
// relative to the checkpoint's directory and may lead to a directory
// beside it ("../chk-3/sum-0.state"); one that leaves the job's checkpoint
// directory is refused with ErrCorrupt. Retention deletes no file that a
// retained checkpoint references.
func Files(m *pluginpb.CheckpointMetadata, dir string) ([]string, error) {
	seen := map[string]bool{}
	add := func(name string) error {
		if name == "" {
			return nil
		}
		p := path.Clean(path.Join(dir, name))
		if p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") {
			return fmt.Errorf("%w: state file %q of checkpoint %d is outside the job's checkpoint directory", ErrCorrupt, name, m.GetCheckpointId())
		}
		seen[p] = true
		return nil
	}
	for _, op := range m.GetOperators() {
		for _, s := range op.GetSubtasks() {
			if err := add(s.GetFile()); err != nil {
				return nil, err
			}
			for _, f := range s.GetShared() {
				if err := add(f); err != nil {
					return nil, err
				}
			}
		}
	}
	files := make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	sort.Strings(files)
	return files, nil
}
