// Package keygroup assigns keys to key groups and key groups to subtasks.
//
// A key's group is a stable hash of its encoded bytes modulo the job's max
// parallelism, the same in every process and every version: it decides where
// keyed state lives, and savepoints depend on it. Key groups are assigned to
// subtasks in contiguous ranges, so that a change of parallelism moves whole
// ranges of state. The arithmetic is Flink's (KeyGroupRangeAssignment).
//
// It must not depend on any other Eddy package.
package keygroup

// Hash returns the stable 64-bit hash of an encoded key: FNV-1a over the
// bytes, finished with murmur3's fmix64 so that similar keys spread. The
// keyed state tables use the same hash, so a record's key is hashed once.
func Hash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Of returns the key group of an encoded key.
func Of(key []byte, maxParallelism int) int {
	return OfHash(Hash(key), maxParallelism)
}

// OfHash returns the key group of a key with the given Hash.
func OfHash(h uint64, maxParallelism int) int {
	return int((h >> 32) % uint64(maxParallelism))
}

// Subtask returns the subtask that owns key group kg.
func Subtask(kg, maxParallelism, parallelism int) int {
	return kg * parallelism / maxParallelism
}

// Range is a half-open range of key groups [Start, End).
type Range struct {
	Start, End int
}

// Len returns the number of key groups in the range.
func (r Range) Len() int { return r.End - r.Start }

// Contains reports whether kg is in the range.
func (r Range) Contains(kg int) bool { return kg >= r.Start && kg < r.End }

// For returns the key groups owned by a subtask: exactly those for which
// Subtask returns it.
func For(subtask, maxParallelism, parallelism int) Range {
	start := (subtask*maxParallelism + parallelism - 1) / parallelism
	end := ((subtask+1)*maxParallelism + parallelism - 1) / parallelism
	return Range{Start: start, End: end}
}
