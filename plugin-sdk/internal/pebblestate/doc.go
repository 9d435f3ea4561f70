// Package pebblestate keeps the keyed state of one operator subtask in a
// Pebble database on local disk, for state larger than memory, and
// checkpoints it incrementally: a checkpoint uploads only the SST files
// that no confirmed earlier checkpoint uploaded, and references the rest.
//
// Keys are laid out like Flink's RocksDB backend, key group first:
//
//	2 bytes big-endian key group | uvarint state id | user key bytes
//
// so that the state of a range of key groups is one contiguous range of
// keys (a rescale keeps or drops whole ranges), and the entries of one
// state in one key group are one contiguous range too (TTL sweeps and
// savepoint blobs iterate it). Values are opaque bytes. Key groups are
// below 1<<15, the job's largest max parallelism.
//
// The write-ahead log is disabled: durability comes from checkpoints, and
// a failed task restores from the last completed one.
//
// A checkpoint is taken in two steps: DB.Snapshot, on the goroutine that
// writes, flushes the memtable and hard-links the live files into a local
// directory (fast, a few file operations); Snapshot.Upload, on any
// goroutine while processing goes on, uploads what is new to a
// storage.Store and returns a Manifest. Only files of a checkpoint the
// caller has confirmed complete (DB.Confirm) are referenced by later ones:
// the files of an aborted checkpoint may be deleted by the coordinator.
//
// It depends on storage and keygroup only; the SDK puts its state kinds
// on it.
package pebblestate
