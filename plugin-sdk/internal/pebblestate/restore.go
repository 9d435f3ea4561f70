package pebblestate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/storage"
)

// restoreBatchBytes is how much a rescaling restore copies per batch.
const restoreBatchBytes = 4 << 20

// Restore rebuilds in dir a DB holding the key groups groups from the
// checkpoints of one or several old subtasks (manifests), as Open would
// create it: whatever dir holds is removed first.
//
// The manifest that overlaps groups the most becomes the new DB as it is:
// its files are downloaded and opened, and the key groups outside groups
// are deleted (a range deletion each side). Its SST files stay where the
// old checkpoint uploaded them and the new DB's checkpoints reference them
// rather than upload them again. The entries of the other manifests'
// overlapping key groups are copied in. A manifest with no key group in
// groups is not downloaded. An object whose content does not match its
// checksum fails the restore with an error wrapping storage.ErrChecksum.
func Restore(ctx context.Context, dir string, store storage.Store, manifests []Manifest, groups keygroup.Range, opts Options) (*DB, error) {
	if err := checkGroups(groups); err != nil {
		return nil, err
	}
	base, best := -1, 0
	for i, m := range manifests {
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("restore state db: manifest %d: %w", i, err)
		}
		if n := overlap(m.Groups, groups).Len(); n > best {
			base, best = i, n
		}
	}
	if base < 0 {
		return Open(dir, groups, opts)
	}
	opts = opts.withDefaults()
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("restore state db %s: %w", dir, err)
	}
	bm := manifests[base]
	if err := download(ctx, store, bm, dbDir(dir), opts.UploadConcurrency); err != nil {
		return nil, fmt.Errorf("restore state db %s: %w", dir, err)
	}
	db, err := openPebble(dir, groups, opts)
	if err != nil {
		return nil, fmt.Errorf("restore state db: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = db.Close()
		}
	}()
	if bm.Groups.Start < groups.Start {
		if err := db.pdb.DeleteRange(groupBound(0), groupBound(groups.Start), pebble.NoSync); err != nil {
			return nil, fmt.Errorf("restore state db: %w", err)
		}
	}
	if bm.Groups.End > groups.End {
		if err := db.pdb.DeleteRange(groupBound(groups.End), groupBound(MaxKeyGroups), pebble.NoSync); err != nil {
			return nil, fmt.Errorf("restore state db: %w", err)
		}
	}
	// The base's files are in a completed checkpoint: reference them.
	db.mu.Lock()
	for _, o := range bm.Objects {
		if o.Shared {
			db.confirmed[o.Local] = o
		}
	}
	db.mu.Unlock()

	for i, m := range manifests {
		r := overlap(m.Groups, groups)
		if i == base || r.Len() == 0 {
			continue
		}
		if err := db.copyFrom(ctx, store, m, r, filepath.Join(dir, fmt.Sprintf("restore-%d", i))); err != nil {
			return nil, fmt.Errorf("restore state db %s: manifest %d: %w", dir, i, err)
		}
	}
	ok = true
	return db, nil
}

// overlap returns the key groups in both a and b (empty if none).
func overlap(a, b keygroup.Range) keygroup.Range {
	r := keygroup.Range{Start: max(a.Start, b.Start), End: min(a.End, b.End)}
	if r.End < r.Start {
		r.End = r.Start
	}
	return r
}

// download writes every object of m into dir under its local name.
func download(ctx context.Context, store storage.Store, m Manifest, dir string, width int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return parallel(ctx, len(m.Objects), width, func(ctx context.Context, i int) error {
		o := m.Objects[i]
		return copyTo(ctx, store, o, filepath.Join(dir, o.Local))
	})
}

// copyFrom downloads the checkpoint m into tmp, opens it read-only and
// copies the entries of the key groups r into db.
func (db *DB) copyFrom(ctx context.Context, store storage.Store, m Manifest, r keygroup.Range, tmp string) (err error) {
	defer os.RemoveAll(tmp)
	if err := download(ctx, store, m, tmp, db.opts.UploadConcurrency); err != nil {
		return err
	}
	src, err := pebble.Open(tmp, &pebble.Options{ReadOnly: true, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := src.Close(); err == nil {
			err = cerr
		}
	}()
	b := db.pdb.NewBatch()
	defer b.Close()
	err = scan(src, groupBound(r.Start), groupBound(r.End), 0, func(k, v []byte) error {
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() < restoreBatchBytes {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Reset()
		return nil
	})
	if err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}
