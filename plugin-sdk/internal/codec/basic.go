package codec

import (
	"encoding/binary"
	"math"
	"time"
)

// This file holds the primitives of the wire format and the dedicated codecs
// of the basic types, which use them directly. Plans use the same primitives,
// so a string field encodes exactly like a string record.

func appendVarint(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

// readUvarint decodes a canonical uvarint: binary.Uvarint also accepts
// overlong forms (0x80 0x00 for 0), which would give a value two encodings.
func readUvarint(src []byte) (uint64, int, error) {
	if len(src) > 0 && src[0] < 0x80 {
		return uint64(src[0]), 1, nil
	}
	v, n := binary.Uvarint(src)
	switch {
	case n == 0:
		return 0, 0, ErrShort
	case n < 0 || src[n-1] == 0:
		return 0, 0, ErrCorrupt
	}
	return v, n, nil
}

func readVarint(src []byte) (int64, int, error) {
	u, n, err := readUvarint(src)
	return int64(u>>1) ^ -int64(u&1), n, err
}

// readLen decodes a length and checks that that many bytes follow it.
func readLen(src []byte) (l, n int, err error) {
	u, n, err := readUvarint(src)
	if err != nil {
		return 0, 0, err
	}
	if u > uint64(len(src)-n) {
		return 0, 0, ErrShort
	}
	return int(u), n, nil
}

type integer interface {
	~int | ~int16 | ~int32 | ~int64 | ~uint | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

func readSigned[I integer](src []byte) (I, int, error) {
	x, n, err := readVarint(src)
	if err != nil {
		return 0, 0, err
	}
	if int64(I(x)) != x {
		return 0, 0, ErrCorrupt
	}
	return I(x), n, nil
}

func readUnsigned[U integer](src []byte) (U, int, error) {
	x, n, err := readUvarint(src)
	if err != nil {
		return 0, 0, err
	}
	if uint64(U(x)) != x {
		return 0, 0, ErrCorrupt
	}
	return U(x), n, nil
}

func readBool(src []byte) (bool, int, error) {
	if len(src) == 0 {
		return false, 0, ErrShort
	}
	switch src[0] {
	case 0:
		return false, 1, nil
	case 1:
		return true, 1, nil
	}
	return false, 0, ErrCorrupt
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func read32(src []byte) (uint32, int, error) {
	if len(src) < 4 {
		return 0, 0, ErrShort
	}
	return binary.LittleEndian.Uint32(src), 4, nil
}

func read64(src []byte) (uint64, int, error) {
	if len(src) < 8 {
		return 0, 0, ErrShort
	}
	return binary.LittleEndian.Uint64(src), 8, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func readString(src []byte) (string, int, error) {
	l, n, err := readLen(src)
	if err != nil {
		return "", 0, err
	}
	return string(src[n : n+l]), n + l, nil
}

// appendBytes and readBytes keep nil apart from empty, like other slices.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

func readBytes(src []byte) ([]byte, int, error) {
	u, n, err := readUvarint(src)
	if err != nil {
		return nil, 0, err
	}
	if u == 0 {
		return nil, n, nil
	}
	if u-1 > uint64(len(src)-n) {
		return nil, 0, ErrShort
	}
	b := make([]byte, u-1)
	return b, n + copy(b, src[n:]), nil
}

// maxZoneOffset bounds decoded zone offsets: real ones stay within ±26 h.
const maxZoneOffset = 7 * 24 * 3600

func appendTime(dst []byte, t time.Time) []byte {
	dst = appendVarint(dst, t.Unix())
	ns := uint64(t.Nanosecond()) << 1
	if t.Location() == time.UTC {
		return binary.AppendUvarint(dst, ns)
	}
	_, off := t.Zone()
	dst = binary.AppendUvarint(dst, ns|1)
	return appendVarint(dst, int64(off))
}

func readTime(src []byte) (time.Time, int, error) {
	sec, n, err := readVarint(src)
	if err != nil {
		return time.Time{}, 0, err
	}
	x, m, err := readUvarint(src[n:])
	if err != nil {
		return time.Time{}, 0, err
	}
	n += m
	ns := x >> 1
	if ns >= 1e9 {
		return time.Time{}, 0, ErrCorrupt
	}
	t := time.Unix(sec, int64(ns))
	if x&1 == 0 {
		return t.UTC(), n, nil
	}
	off, m, err := readVarint(src[n:])
	if err != nil {
		return time.Time{}, 0, err
	}
	n += m
	if off < -maxZoneOffset || off > maxZoneOffset {
		return time.Time{}, 0, ErrCorrupt
	}
	if _, local := t.Zone(); int64(local) == off {
		return t, n, nil
	}
	return t.In(time.FixedZone("", int(off))), n, nil
}

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) []byte     { return appendString(dst, v) }
func (stringCodec) Decode(src []byte) (string, int, error) { return readString(src) }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) []byte     { return appendBytes(dst, v) }
func (bytesCodec) Decode(src []byte) ([]byte, int, error) { return readBytes(src) }

type boolCodec struct{}

func (boolCodec) Append(dst []byte, v bool) []byte     { return appendBool(dst, v) }
func (boolCodec) Decode(src []byte) (bool, int, error) { return readBool(src) }

type signedCodec[I int | int16 | int32 | int64] struct{}

func (signedCodec[I]) Append(dst []byte, v I) []byte     { return appendVarint(dst, int64(v)) }
func (signedCodec[I]) Decode(src []byte) (I, int, error) { return readSigned[I](src) }

type unsignedCodec[U uint | uint16 | uint32 | uint64] struct{}

func (unsignedCodec[U]) Append(dst []byte, v U) []byte {
	return binary.AppendUvarint(dst, uint64(v))
}
func (unsignedCodec[U]) Decode(src []byte) (U, int, error) { return readUnsigned[U](src) }

type int8Codec struct{}

func (int8Codec) Append(dst []byte, v int8) []byte { return append(dst, byte(v)) }
func (int8Codec) Decode(src []byte) (int8, int, error) {
	if len(src) == 0 {
		return 0, 0, ErrShort
	}
	return int8(src[0]), 1, nil
}

type uint8Codec struct{}

func (uint8Codec) Append(dst []byte, v uint8) []byte { return append(dst, v) }
func (uint8Codec) Decode(src []byte) (uint8, int, error) {
	if len(src) == 0 {
		return 0, 0, ErrShort
	}
	return src[0], 1, nil
}

type float32Codec struct{}

func (float32Codec) Append(dst []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
}
func (float32Codec) Decode(src []byte) (float32, int, error) {
	b, n, err := read32(src)
	return math.Float32frombits(b), n, err
}

type float64Codec struct{}

func (float64Codec) Append(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}
func (float64Codec) Decode(src []byte) (float64, int, error) {
	b, n, err := read64(src)
	return math.Float64frombits(b), n, err
}

type timeCodec struct{}

func (timeCodec) Append(dst []byte, v time.Time) []byte     { return appendTime(dst, v) }
func (timeCodec) Decode(src []byte) (time.Time, int, error) { return readTime(src) }
