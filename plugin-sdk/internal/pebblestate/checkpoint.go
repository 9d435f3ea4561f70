package pebblestate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/storage"
)

// ManifestVersion is the version of the Manifest encoding this package
// writes and reads.
const ManifestVersion = 1

// Manifest describes one checkpoint of a DB: the objects in a store from
// which Restore rebuilds it. Shared objects (SST and blob files, which
// never change once written) may be referenced by several checkpoints of
// the DB; the others (MANIFEST, OPTIONS, markers) belong to this one. All
// are named under the checkpoint's shared prefix.
type Manifest struct {
	Version int `json:"version"`
	// Instance identifies the DB that wrote the checkpoint.
	Instance string `json:"instance"`
	// Seq numbers the DB's checkpoints, from 1.
	Seq uint64 `json:"seq"`
	// Groups are the key groups the DB held.
	Groups  keygroup.Range `json:"key_groups"`
	Objects []Object       `json:"objects"`
}

// Object is one file of a checkpoint.
type Object struct {
	// Local is the file's name in the DB's directory.
	Local string `json:"local"`
	// Name is the object's name in the store.
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Shared is set for SST and blob files, which later checkpoints of the
	// same DB may reference.
	Shared bool `json:"shared,omitempty"`
}

// Files returns the names in the store of every object the checkpoint
// references: the coordinator keeps an object while a retained
// checkpoint's manifest lists it.
func (m Manifest) Files() []string {
	names := make([]string, len(m.Objects))
	for i, o := range m.Objects {
		names[i] = o.Name
	}
	return names
}

// Size returns the bytes of every object the checkpoint references.
func (m Manifest) Size() int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.Size
	}
	return n
}

// MarshalBinary encodes the manifest (as JSON).
func (m Manifest) MarshalBinary() ([]byte, error) { return json.Marshal(m) }

// DecodeManifest decodes and validates an encoded manifest.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("decode state manifest: %w", err)
	}
	if err := m.validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func (m Manifest) validate() error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("state manifest version %d: want %d", m.Version, ManifestVersion)
	}
	if err := checkGroups(m.Groups); err != nil {
		return fmt.Errorf("state manifest: %w", err)
	}
	for _, o := range m.Objects {
		// Restore writes objects under their local names.
		if o.Local == "" || o.Local != filepath.Base(o.Local) || o.Local == "." || o.Local == ".." || strings.ContainsAny(o.Local, `/\`) {
			return fmt.Errorf("state manifest: bad local file name %q", o.Local)
		}
		if o.Name == "" || o.Size < 0 {
			return fmt.Errorf("state manifest: bad object %q (%d bytes)", o.Name, o.Size)
		}
	}
	return nil
}

// Stats tells what a checkpoint transferred.
type Stats struct {
	// Files and Bytes count every object the checkpoint references.
	Files int
	Bytes int64
	// UploadedFiles and UploadedBytes count the objects it uploaded; the
	// rest were uploaded by an earlier, confirmed checkpoint.
	UploadedFiles int
	UploadedBytes int64
}

// Snapshot is a consistent local copy of a DB (hard links to its live
// files), taken by DB.Snapshot and uploaded by Upload.
type Snapshot struct {
	db    *DB
	dir   string
	seq   uint64
	files []localFile
}

type localFile struct {
	name   string
	size   int64
	shared bool
}

// Snapshot flushes the DB's memtable and links its live files into a
// directory beside it. It is called on the goroutine that writes, between
// writes; Upload may then run on another goroutine while writes go on.
func (db *DB) Snapshot() (*Snapshot, error) {
	if err := db.pdb.Flush(); err != nil {
		return nil, fmt.Errorf("state snapshot: flush: %w", err)
	}
	db.seq++
	dir := filepath.Join(db.dir, fmt.Sprintf("snapshot-%d", db.seq))
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("state snapshot: %w", err)
	}
	if err := db.pdb.Checkpoint(dir); err != nil {
		return nil, fmt.Errorf("state snapshot: %w", err)
	}
	s := &Snapshot{db: db, dir: dir, seq: db.seq}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.Release()
		return nil, fmt.Errorf("state snapshot: %w", err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			s.Release()
			return nil, fmt.Errorf("state snapshot: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		name := e.Name()
		s.files = append(s.files, localFile{
			name:   name,
			size:   fi.Size(),
			shared: strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob"),
		})
	}
	return s, nil
}

// Release removes the snapshot's local files; Upload does it itself. It
// is for a snapshot that will not be uploaded.
func (s *Snapshot) Release() { _ = os.RemoveAll(s.dir) }

// Upload writes the snapshot to store under sharedPrefix: every file that
// no confirmed checkpoint of the DB uploaded, under a name no other DB or
// checkpoint uses. It returns the checkpoint's manifest and what it
// transferred. Objects are verified against their checksums by the store.
func (s *Snapshot) Upload(ctx context.Context, store storage.Store, sharedPrefix string) (Manifest, Stats, error) {
	defer s.Release()
	db := s.db
	m := Manifest{
		Version:  ManifestVersion,
		Instance: db.instance,
		Seq:      s.seq,
		Groups:   db.groups,
		Objects:  make([]Object, len(s.files)),
	}
	var st Stats
	var todo []int
	db.mu.Lock()
	for i, f := range s.files {
		if o, ok := db.confirmed[f.name]; ok && f.shared && o.Size == f.size {
			m.Objects[i] = o
			continue
		}
		m.Objects[i] = Object{
			Local:  f.name,
			Name:   path.Join(sharedPrefix, fmt.Sprintf("%s-%d-%s", db.instance, s.seq, f.name)),
			Size:   f.size,
			Shared: f.shared,
		}
		todo = append(todo, i)
	}
	db.mu.Unlock()

	err := parallel(ctx, len(todo), db.opts.UploadConcurrency, func(ctx context.Context, j int) error {
		o := m.Objects[todo[j]]
		f, err := os.Open(filepath.Join(s.dir, o.Local))
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := store.Put(ctx, o.Name, f)
		if err != nil {
			return err
		}
		if info.Size != o.Size {
			return fmt.Errorf("upload %s: stored %d bytes of %d", o.Name, info.Size, o.Size)
		}
		return nil
	})
	if err != nil {
		return Manifest{}, Stats{}, fmt.Errorf("state checkpoint %d: %w", s.seq, err)
	}
	for _, o := range m.Objects {
		st.Files++
		st.Bytes += o.Size
	}
	for _, i := range todo {
		st.UploadedFiles++
		st.UploadedBytes += m.Objects[i].Size
	}
	return m, st, nil
}

// Checkpoint takes a snapshot and uploads it (DB.Snapshot, then
// Snapshot.Upload), on the goroutine that writes.
func (db *DB) Checkpoint(ctx context.Context, store storage.Store, sharedPrefix string) (Manifest, Stats, error) {
	s, err := db.Snapshot()
	if err != nil {
		return Manifest{}, Stats{}, err
	}
	return s.Upload(ctx, store, sharedPrefix)
}

// Confirm tells the DB that the checkpoint of m completed, so later
// checkpoints reference its shared objects instead of uploading them
// again. Until then they upload their own copies: the objects of a
// checkpoint that is aborted may be deleted. A manifest of another DB, or
// older than one already confirmed, is ignored. Safe from any goroutine.
func (db *DB) Confirm(m Manifest) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if m.Instance != db.instance || m.Seq <= db.confirmedSeq {
		return
	}
	db.confirmedSeq = m.Seq
	// A file that is not live at m's snapshot never comes back (file
	// numbers are not reused), so m's shared files are all worth keeping.
	db.confirmed = make(map[string]Object, len(m.Objects))
	for _, o := range m.Objects {
		if o.Shared {
			db.confirmed[o.Local] = o
		}
	}
}

// parallel runs fn(ctx, 0..n-1) on up to width goroutines and returns the
// first error, cancelling the others' context.
func parallel(parent context.Context, n, width int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range min(width, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	// Not every item may have been handed out.
	return parent.Err()
}

// copyTo writes the content of an object into a local file, verifying its
// checksum and size.
func copyTo(ctx context.Context, store storage.Store, o Object, file string) error {
	r, _, err := store.Open(ctx, o.Name)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", o.Name, err)
	}
	if n != o.Size {
		return fmt.Errorf("download %s: %d bytes, manifest says %d", o.Name, n, o.Size)
	}
	return nil
}

// Unconfirm forgets the confirmed checkpoints: the next checkpoint uploads
// every file. It is for a DB restored from files in a store that later
// checkpoints go to another of (a job restored from another job's
// checkpoint), whose files the new store's retention does not keep. Safe
// from any goroutine.
func (db *DB) Unconfirm() {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.confirmed = map[string]Object{}
}
