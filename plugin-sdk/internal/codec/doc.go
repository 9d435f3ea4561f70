// Package codec serialises the records of Eddy jobs: every value that crosses
// an exchange between tasks, is kept in keyed state, or is hashed as a key.
//
// A codec is chosen by type through generics: For[T] returns the codec of T
// without any registration. Basic types (string, []byte, bool, the integer
// and float types, time.Time) have dedicated codecs. Every other type gets a
// plan compiled once with reflect into a tree of small functions that work on
// unsafe.Pointer and field offsets, so encoding and decoding a record walk no
// reflect.Type and allocate nothing but what the decoded value itself holds
// (strings, slices, maps, pointers). The exceptions are maps, which the
// language gives no typed access to except through reflect (see mapPlan), and
// the allocation of slices and pointers whose element type is a struct or an
// array, which goes through reflect to get memory typed for the garbage
// collector. A type may choose its own encoding by implementing Marshaler and
// Unmarshaler.
//
// # Wire format
//
// The encoding carries no type information, field names or version: it is
// the fields of the value in declaration order, and only the same Go type can
// read it back. It is self-delimiting, so records can be concatenated.
//
//   - bool: one byte, 0 or 1.
//   - int, int16, int32, int64: zigzag varint. uint, uint16, uint32, uint64,
//     uintptr: uvarint. int8 and uint8: one raw byte (never longer than a
//     varint, and it makes [N]byte and []byte plain bytes).
//   - float32, float64: 4 or 8 bytes little-endian IEEE 754 bits (NaN payloads
//     survive); complex64, complex128: the real then the imaginary part.
//   - string: uvarint length, then the bytes.
//   - slice (including []byte): uvarint 0 for nil, otherwise uvarint len+1
//     and the elements, so nil and empty slices both survive a round trip.
//   - array: the elements; [N]byte is the N bytes.
//   - struct: the fields in order, exported or not; blank (_) fields are
//     skipped, as == skips them.
//   - pointer: one byte, 0 for nil or 1 followed by the value pointed to.
//     Shared pointers are encoded once per reference and cyclic values
//     recurse without end, as with encoding/gob.
//   - map: like a slice, with the entries as key then value, in Go's map
//     iteration order: the encoding of a map is not deterministic.
//   - time.Time: zigzag varint Unix seconds, then uvarint nanoseconds<<1|z,
//     where z=1 is followed by the zigzag varint zone offset in seconds.
//     z=0 means UTC. The monotonic clock reading is dropped; a zone is kept
//     as UTC, Local (when the offset matches Local's at that instant) or a
//     fixed unnamed offset, as time.Time.MarshalBinary does.
//   - Marshaler: whatever MarshalEddy appends.
//
// Decode accepts only canonical varints, so for types without maps or
// Marshalers a value has exactly one encoding. It never panics on invalid
// input: lengths are checked against the remaining input before anything is
// allocated, and nesting through pointers, slices and maps is limited to
// 65536 levels, so that input crafted for a recursive type cannot exhaust
// the stack.
//
// This package is an internal of the SDK and must not depend on any other
// Eddy package: job binaries, the SDK runtime and tools all link it.
package codec
