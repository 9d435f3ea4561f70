package codec

import (
	"errors"
	"reflect"
	"sync"
	"time"
	"unsafe"
)

// Codec encodes and decodes values of one type. Implementations are safe for
// concurrent use: they hold no per-call state.
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the extended slice.
	Append(dst []byte, v T) []byte
	// Decode decodes one value from the front of src and returns it with the
	// number of bytes consumed. The value never aliases src. On error it
	// returns the zero value, 0 and ErrShort, ErrCorrupt or the error of an
	// UnmarshalEddy method.
	Decode(src []byte) (v T, n int, err error)
}

// Marshaler lets a type choose its own encoding: if *T or T implements it,
// For uses it, and *T must then implement Unmarshaler. MarshalEddy appends
// the encoding of the receiver to dst and returns the extended slice. The
// encoding must be self-delimiting (UnmarshalEddy must know where it ends)
// and should be at least one byte long: a decoder trusts a slice or map
// length only as far as one byte of remaining input per element. Neither
// method may keep its receiver after it returns.
type Marshaler interface {
	MarshalEddy(dst []byte) []byte
}

// Unmarshaler is the decoding half of Marshaler, implemented on the pointer.
// UnmarshalEddy decodes the receiver from the front of src, which may hold
// more bytes after the value, and returns how many bytes it consumed. The
// receiver is a zero value when it is called.
type Unmarshaler interface {
	UnmarshalEddy(src []byte) (n int, err error)
}

var (
	// ErrShort is returned by Decode when the input ends inside a value,
	// or claims more elements than the remaining input can hold.
	ErrShort = errors.New("codec: input too short")
	// ErrCorrupt is returned by Decode for input that no value encodes to:
	// a bool byte other than 0 or 1, an overlong varint, a number out of
	// the range of its type, an invalid nil flag, pointers, slices and
	// maps nested deeper than 65536 levels.
	ErrCorrupt = errors.New("codec: corrupt input")
	// ErrUnsupported is wrapped by the errors of For for types it cannot
	// encode: channels, funcs, unsafe.Pointer, interfaces, and Marshalers
	// without an Unmarshaler.
	ErrUnsupported = errors.New("codec: unsupported type")
)

// codecs caches the codec of every type For built, keyed by reflect.Type.
var codecs sync.Map

// For returns the codec of T, building it on first use and caching it per
// type. It fails for types it cannot encode, with an error that names the
// type and the path to the field at fault and wraps ErrUnsupported. Callers
// on a hot path should call For once and keep the codec.
func For[T any]() (Codec[T], error) {
	if c := basic[T](); c != nil {
		return c, nil
	}
	t := reflect.TypeFor[T]()
	if c, ok := codecs.Load(t); ok {
		return c.(Codec[T]), nil
	}
	p, err := build(t)
	if err != nil {
		return nil, err
	}
	var c Codec[T] = planCodec[T]{p}
	if holdsCustom(t) {
		c = heapCodec[T]{p}
	}
	actual, _ := codecs.LoadOrStore(t, c)
	return actual.(Codec[T]), nil
}

// basic returns the dedicated codec of T, or nil if T has none.
func basic[T any]() Codec[T] {
	var c any
	switch any((*T)(nil)).(type) {
	case *string:
		c = stringCodec{}
	case *[]byte:
		c = bytesCodec{}
	case *bool:
		c = boolCodec{}
	case *int:
		c = signedCodec[int]{}
	case *int8:
		c = int8Codec{}
	case *int16:
		c = signedCodec[int16]{}
	case *int32:
		c = signedCodec[int32]{}
	case *int64:
		c = signedCodec[int64]{}
	case *uint:
		c = unsignedCodec[uint]{}
	case *uint8:
		c = uint8Codec{}
	case *uint16:
		c = unsignedCodec[uint16]{}
	case *uint32:
		c = unsignedCodec[uint32]{}
	case *uint64:
		c = unsignedCodec[uint64]{}
	case *float32:
		c = float32Codec{}
	case *float64:
		c = float64Codec{}
	case *time.Time:
		c = timeCodec{}
	default:
		return nil
	}
	return c.(Codec[T])
}

// planCodec runs a compiled plan on the caller's value in place. The plan
// functions take an unsafe.Pointer, which the compiler must assume escapes,
// so &v would move every v to the heap; noescape hides it. That is sound
// because no plan function keeps the pointer after it returns. User methods
// could, so types that hold a Marshaler by value use heapCodec instead.
type planCodec[T any] struct{ p *plan }

func (c planCodec[T]) Append(dst []byte, v T) []byte {
	return c.p.enc(dst, noescape(unsafe.Pointer(&v)))
}

func (c planCodec[T]) Decode(src []byte) (v T, n int, err error) {
	n, err = c.p.dec(src, noescape(unsafe.Pointer(&v)), 0)
	if err != nil {
		var zero T
		return zero, 0, err
	}
	return v, n, nil
}

// heapCodec is planCodec for types whose plan calls user methods on memory
// inside v: v escapes to the heap, as it would with a direct method call.
type heapCodec[T any] struct{ p *plan }

func (c heapCodec[T]) Append(dst []byte, v T) []byte {
	return c.p.enc(dst, unsafe.Pointer(&v))
}

func (c heapCodec[T]) Decode(src []byte) (v T, n int, err error) {
	n, err = c.p.dec(src, unsafe.Pointer(&v), 0)
	if err != nil {
		var zero T
		return zero, 0, err
	}
	return v, n, nil
}

// noescape hides p from escape analysis, like the runtime's function of the
// same name. The pointer passes through a uintptr only within this function,
// which has no calls and no stack check, so the stack cannot move meanwhile.
// It reloads the word through memory rather than converting the uintptr back,
// which keeps go vet's unsafeptr check and the race detector's checkptr quiet.
//
//go:nosplit
func noescape(p unsafe.Pointer) unsafe.Pointer {
	x := uintptr(p)
	return *(*unsafe.Pointer)(unsafe.Pointer(&x))
}
