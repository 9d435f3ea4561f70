package sdk

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/eddy-streams/eddy/storage"
)

// ExactlyOnceFileSink writes every record, formatted by format (fmt's %v
// when format is nil), as one line to part files under location, and
// publishes each part only when the checkpoint after its records completes:
// whatever fails, every record is in exactly one published part. location
// is a local directory (a path, or file:///abs/path) or an S3 prefix
// (s3://bucket/prefix, opened as the storage package opens it: endpoint,
// region and credentials from the URL's parameters or the standard AWS
// environment variables).
//
// A sink subtask writes its records to an in-progress part,
// location/_inprogress/inprogress-<subtask>-<random>-<n>: hidden from
// readers such as FileLines, never named part-*, and named per subtask and
// writer, so that a restarted attempt never appends to an old attempt's
// part. At a checkpoint the part is closed (on S3, uploaded
// under _inprogress/) and its name goes into the checkpoint; when the
// checkpoint completes the part is published as
// location/part-<subtask>-<checkpoint>-0 (renamed in a directory; on S3
// copied to its final name, then the staged object deleted). Publishing
// again after a restore finds the part published and does nothing. Parts
// with no records are not published. Without checkpointing the one part of
// each subtask is published at the end of input, as part-<subtask>-0-0.
//
// The sink keeps its transactions in checkpoints, so it needs a UID
// (WithUID). format is called from the sink's subtasks concurrently.
func ExactlyOnceFileSink[T any](location string, format func(T) string) TransactionalSink[T] {
	return &txnFileSink[T]{location: location, format: format}
}

// inProgressDir holds the parts that are not published yet.
const inProgressDir = "_inprogress"

type txnFileSink[T any] struct {
	location string
	format   func(T) string
}

func (s *txnFileSink[T]) Open(ctx context.Context, sc SinkContext) (Writer[T], error) {
	return s.OpenTransactional(ctx, sc)
}

func (s *txnFileSink[T]) OpenTransactional(ctx context.Context, sc SinkContext) (TransactionalWriter[T], error) {
	target, err := openPartTarget(ctx, s.location)
	if err != nil {
		return nil, fmt.Errorf("file sink %s: %w", s.location, err)
	}
	token := make([]byte, 6)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	format := s.format
	if format == nil {
		format = func(v T) string { return fmt.Sprint(v) }
	}
	return &txnFileWriter[T]{
		target: target, format: format, subtask: sc.Subtask(),
		prefix: fmt.Sprintf("inprogress-%d-%s", sc.Subtask(), hex.EncodeToString(token)),
	}, nil
}

// txnFileWriter writes the in-progress part of one sink subtask. The file
// is created at the first record of a transaction.
type txnFileWriter[T any] struct {
	target  partTarget
	format  func(T) string
	subtask int
	prefix  string // of the writer's staged names: inprogress-<subtask>-<random>
	seq     int    // transactions so far
	staged  string // the open part's staged name
	f       *os.File
	bw      *bufio.Writer
}

func (w *txnFileWriter[T]) Write(_ context.Context, v T) error {
	if w.f == nil {
		w.staged = fmt.Sprintf("%s-%d", w.prefix, w.seq)
		f, err := w.target.create(w.staged)
		if err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		w.f = f
		if w.bw == nil {
			w.bw = bufio.NewWriterSize(f, fileBufferSize)
		} else {
			w.bw.Reset(f)
		}
	}
	// bufio.Writer's errors are sticky: the second call reports the first's.
	_, _ = w.bw.WriteString(w.format(v))
	if err := w.bw.WriteByte('\n'); err != nil {
		return fmt.Errorf("file sink: write %s: %w", w.staged, err)
	}
	return nil
}

func (w *txnFileWriter[T]) Flush(context.Context) error {
	if w.f == nil {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("file sink: write %s: %w", w.staged, err)
	}
	return nil
}

// PreCommit closes and stages the open part and returns its staged and
// final names.
func (w *txnFileWriter[T]) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if w.f == nil {
		return nil, nil
	}
	if err := w.Flush(ctx); err != nil {
		return nil, err
	}
	f := w.f
	w.f = nil
	w.seq++
	if err := w.target.stage(ctx, f, w.staged); err != nil {
		return nil, fmt.Errorf("file sink: stage %s: %w", w.staged, err)
	}
	t := partTxn{staged: w.staged, final: fmt.Sprintf("part-%d-%d-0", w.subtask, checkpointID)}
	return t.encode(), nil
}

// Commit publishes the staged parts under their final names.
func (w *txnFileWriter[T]) Commit(ctx context.Context, txns [][]byte) error {
	for _, b := range txns {
		t, err := decodePartTxn(b)
		if err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		if err := w.target.publish(ctx, t.staged, t.final); err != nil {
			return fmt.Errorf("file sink: publish %s as %s: %w", t.staged, t.final, err)
		}
	}
	return w.target.sync()
}

// Abort drops the open part.
func (w *txnFileWriter[T]) Abort(context.Context) error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	w.seq++
	return w.target.drop(f, w.staged)
}

func (w *txnFileWriter[T]) Close(ctx context.Context) error { return w.Abort(ctx) }

// partTxn is a pre-committed part: its staged name (under _inprogress/)
// and the name it is published under. Encoded, version 1: the version
// byte, then both names (each a uvarint length and the bytes).
type partTxn struct{ staged, final string }

const partTxnVersion = 1

func (t partTxn) encode() []byte {
	b := appendSnapBytes([]byte{partTxnVersion}, []byte(t.staged))
	return appendSnapBytes(b, []byte(t.final))
}

func decodePartTxn(b []byte) (partTxn, error) {
	r := snapReader{b: b}
	if v := r.byte(); r.err == nil && v != partTxnVersion {
		return partTxn{}, fmt.Errorf("part transaction format %d: %w (this SDK reads %d)", v, errSnapshotVersion, partTxnVersion)
	}
	staged, final := string(r.bytes()), string(r.bytes())
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the part transaction", errSnapshotCorrupt, len(r.b))
	}
	for _, n := range []string{staged, final} {
		if r.err == nil && (n == "" || strings.ContainsAny(n, `/\`) || strings.HasPrefix(n, ".")) {
			r.err = fmt.Errorf("%w: part name %q", errSnapshotCorrupt, n)
		}
	}
	if r.err != nil {
		return partTxn{}, fmt.Errorf("part transaction: %w", r.err)
	}
	return partTxn{staged: staged, final: final}, nil
}

// partTarget is where the parts of an exactly-once file sink go. Records
// are written to a local file in every case.
type partTarget interface {
	// create returns the local file the records of part staged go to.
	create(staged string) (*os.File, error)
	// stage makes the part in f, which it closes, durable under its staged
	// name.
	stage(ctx context.Context, f *os.File, staged string) error
	// publish makes staged visible under final. A part already published
	// (its staged copy gone, its final one there) is done.
	publish(ctx context.Context, staged, final string) error
	// sync makes the publications so far durable.
	sync() error
	// drop closes f and forgets a part that was not staged.
	drop(f *os.File, staged string) error
}

func openPartTarget(ctx context.Context, location string) (partTarget, error) {
	if location == "" {
		return nil, errors.New("no location given")
	}
	dir := location
	if strings.Contains(location, "://") {
		u, err := url.Parse(location)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "file" {
			st, err := storage.Open(ctx, location)
			if err != nil {
				return nil, err
			}
			return &storeTarget{st: st}, nil
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file url: host %q not supported; use file:///absolute/path", u.Host)
		}
		dir = u.Path
	}
	if err := os.MkdirAll(filepath.Join(dir, inProgressDir), 0o755); err != nil {
		return nil, err
	}
	return &dirTarget{dir: dir}, nil
}

// dirTarget writes parts in a local directory: a part is staged where it
// is written, under _inprogress/, and published by a rename.
type dirTarget struct {
	dir       string
	published bool // since the last sync
}

func (d *dirTarget) stagedPath(staged string) string {
	return filepath.Join(d.dir, inProgressDir, staged)
}

func (d *dirTarget) create(staged string) (*os.File, error) {
	return os.OpenFile(d.stagedPath(staged), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}

func (d *dirTarget) stage(_ context.Context, f *os.File, _ string) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d *dirTarget) publish(_ context.Context, staged, final string) error {
	err := os.Rename(d.stagedPath(staged), filepath.Join(d.dir, final))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(d.dir, final)); serr == nil {
			return nil
		}
		return fmt.Errorf("neither the staged part nor the published one exists: %w", err)
	}
	d.published = d.published || err == nil
	return err
}

func (d *dirTarget) sync() error {
	if !d.published {
		return nil
	}
	d.published = false
	f, err := os.Open(d.dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d *dirTarget) drop(f *os.File, staged string) error {
	err := f.Close()
	if rerr := os.Remove(d.stagedPath(staged)); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}

// storeTarget writes parts to an object store: a part is written to a
// local temporary file, uploaded under _inprogress/ at the pre-commit,
// and published by copying it to its final name and deleting the staged
// object.
type storeTarget struct{ st storage.Store }

func (s *storeTarget) create(string) (*os.File, error) { return os.CreateTemp("", "eddy-part-*") }

func (s *storeTarget) stage(ctx context.Context, f *os.File, staged string) error {
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	_, err := s.st.Put(ctx, inProgressDir+"/"+staged, f)
	return err
}

func (s *storeTarget) publish(ctx context.Context, staged, final string) error {
	name := inProgressDir + "/" + staged
	r, _, err := s.st.Open(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		if _, serr := s.st.Stat(ctx, final); serr == nil {
			return nil
		}
		return fmt.Errorf("neither the staged part nor the published one exists: %w", err)
	}
	if err != nil {
		return err
	}
	// Reading the staged object to its end verifies its checksum, which
	// fails the copy on a mismatch.
	_, err = s.st.Put(ctx, final, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.st.Delete(ctx, name)
}

func (s *storeTarget) sync() error { return nil }

func (s *storeTarget) drop(f *os.File, _ string) error {
	err := f.Close()
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}
