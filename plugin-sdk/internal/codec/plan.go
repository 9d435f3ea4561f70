package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// A plan encodes and decodes one type through a pointer to a value of it.
// Plans are built once per type, by build, and never change after build
// returns; they are shared by every codec whose type contains theirs.
type plan struct {
	enc encFunc
	dec decFunc
	// min is the fewest bytes any value encodes to. Decoders of slices and
	// maps use it to refuse lengths the remaining input cannot hold before
	// allocating.
	min int
	// empty is set when every value encodes to no bytes at all (struct{},
	// [0]T): collections of them carry only a length.
	empty bool
	// fields is set for plain structs so that a struct field's fields are
	// inlined into its parent's list, saving a call per level.
	fields []field
}

// encFunc appends the encoding of the value at p to dst.
type encFunc func(dst []byte, p unsafe.Pointer) []byte

// decFunc decodes a value from the front of src into the memory at p and
// returns the bytes consumed. depth is the number of pointers, slices and
// maps the value is inside of (see maxDepth). Except for Marshalers, it
// writes every non-blank field of the value, so p need not be zeroed (map
// decoding reuses its scratch values).
type decFunc func(src []byte, p unsafe.Pointer, depth int) (int, error)

type field struct {
	off uintptr
	enc encFunc
	dec decFunc
}

// sliceHeader is the memory layout of every slice type.
type sliceHeader struct {
	data unsafe.Pointer
	len  int
	cap  int
}

// plans caches finished plans by reflect.Type for reuse across builds.
var plans sync.Map

// zeroBase is where empty non-nil slices point: any non-nil address will do.
var zeroBase uintptr

var (
	timeType        = reflect.TypeFor[time.Time]()
	marshalerType   = reflect.TypeFor[Marshaler]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
)

// build returns the plan of t. Plans of recursive types refer to themselves:
// a type being built is found in b.local and its unfinished plan is used,
// which is safe because only pointers, slices and maps can lead back to it,
// and their functions load the element plan's functions when they run.
func build(t reflect.Type) (*plan, error) {
	if p, ok := plans.Load(t); ok {
		return p.(*plan), nil
	}
	b := builder{root: t, local: make(map[reflect.Type]*plan)}
	p, err := b.plan(t, "")
	if err != nil {
		return nil, err
	}
	// Publish only complete builds: a failed one may have left plans that
	// refer to the unfinished plan of the type that failed.
	for lt, lp := range b.local {
		plans.LoadOrStore(lt, lp)
	}
	return p, nil
}

type builder struct {
	root  reflect.Type
	local map[reflect.Type]*plan
}

// typeError is an error of For: the type it was asked for, where in it the
// problem is and what the problem is.
type typeError struct {
	root   reflect.Type
	path   string
	reason string
}

func (e *typeError) Error() string {
	switch {
	case e.path == "":
		return fmt.Sprintf("codec for %v: %s", e.root, e.reason)
	case strings.HasPrefix(e.path, "["):
		return fmt.Sprintf("codec for %v: element %s: %s", e.root, e.path, e.reason)
	}
	return fmt.Sprintf("codec for %v: field %s: %s", e.root, e.path, e.reason)
}

func (e *typeError) Unwrap() error { return ErrUnsupported }

func (b *builder) fail(path, format string, args ...any) error {
	return &typeError{root: b.root, path: path, reason: fmt.Sprintf(format, args...)}
}

func (b *builder) plan(t reflect.Type, path string) (*plan, error) {
	if p, ok := plans.Load(t); ok {
		return p.(*plan), nil
	}
	if p, ok := b.local[t]; ok {
		return p, nil
	}
	p := new(plan)
	b.local[t] = p
	if err := b.fill(p, t, path); err != nil {
		return nil, err
	}
	return p, nil
}

// funcs returns the functions of p for a parent plan to call. If p is still
// being built (a pointer, slice or map type that leads back to a type being
// built, met as a field or array element), they are not set yet, and the
// returned functions load them when they run. Its min and empty fields are
// final already: fill sets them before it builds element plans.
func (p *plan) funcs() (encFunc, decFunc) {
	if p.enc != nil {
		return p.enc, p.dec
	}
	return func(dst []byte, v unsafe.Pointer) []byte { return p.enc(dst, v) },
		func(src []byte, v unsafe.Pointer, depth int) (int, error) { return p.dec(src, v, depth) }
}

func (b *builder) fill(p *plan, t reflect.Type, path string) error {
	switch t.Kind() {
	case reflect.Interface:
		return b.fail(path, "interface types cannot be encoded")
	case reflect.Pointer:
		// Pointer types have no methods of their own; those of *E are E's.
	default:
		if custom, err := b.custom(p, t, path); custom || err != nil {
			return err
		}
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func:
		return b.fail(path, "%s types cannot be encoded", t.Kind())
	case reflect.UnsafePointer:
		return b.fail(path, "unsafe.Pointer cannot be encoded")
	}
	if t == timeType {
		p.enc, p.dec, p.min = encTime, decTime, 2
		return nil
	}
	p.min = 1
	switch t.Kind() {
	case reflect.Bool:
		p.enc, p.dec = encBool, decBool
	case reflect.Int:
		p.enc, p.dec = encSigned[int], decSigned[int]
	case reflect.Int8:
		p.enc, p.dec = encByte, decByte
	case reflect.Int16:
		p.enc, p.dec = encSigned[int16], decSigned[int16]
	case reflect.Int32:
		p.enc, p.dec = encSigned[int32], decSigned[int32]
	case reflect.Int64:
		p.enc, p.dec = encSigned[int64], decSigned[int64]
	case reflect.Uint:
		p.enc, p.dec = encUnsigned[uint], decUnsigned[uint]
	case reflect.Uint8:
		p.enc, p.dec = encByte, decByte
	case reflect.Uint16:
		p.enc, p.dec = encUnsigned[uint16], decUnsigned[uint16]
	case reflect.Uint32:
		p.enc, p.dec = encUnsigned[uint32], decUnsigned[uint32]
	case reflect.Uint64:
		p.enc, p.dec = encUnsigned[uint64], decUnsigned[uint64]
	case reflect.Uintptr:
		p.enc, p.dec = encUnsigned[uintptr], decUnsigned[uintptr]
	case reflect.Float32:
		p.enc, p.dec, p.min = enc32, dec32, 4
	case reflect.Float64:
		p.enc, p.dec, p.min = enc64, dec64, 8
	case reflect.Complex64:
		p.enc, p.dec, p.min = encComplex64, decComplex64, 8
	case reflect.Complex128:
		p.enc, p.dec, p.min = encComplex128, decComplex128, 16
	case reflect.String:
		p.enc, p.dec = encString, decString
	case reflect.Slice:
		return b.slice(p, t, path)
	case reflect.Array:
		return b.array(p, t, path)
	case reflect.Struct:
		return b.structure(p, t, path)
	case reflect.Map:
		return b.mapping(p, t, path)
	case reflect.Pointer:
		return b.pointer(p, t, path)
	default:
		return b.fail(path, "%s types cannot be encoded", t.Kind())
	}
	return nil
}

// custom fills p with calls to the Marshaler and Unmarshaler methods of t if
// it has them, and reports whether it did.
func (b *builder) custom(p *plan, t reflect.Type, path string) (bool, error) {
	pt := reflect.PointerTo(t)
	m, u := pt.Implements(marshalerType), pt.Implements(unmarshalerType)
	switch {
	case !m && !u:
		return false, nil
	case !u:
		return false, b.fail(path, "%v implements Marshaler but %v does not implement Unmarshaler", t, pt)
	case !m:
		return false, b.fail(path, "%v implements Unmarshaler but neither it nor %v implements Marshaler", pt, t)
	}
	// The methods are called through an interface value made of *T's type
	// word and the pointer at hand, which costs a cached type assertion and
	// no reflect.Value per record.
	proto := reflect.New(t).Interface()
	ptype := (*eface)(unsafe.Pointer(&proto)).typ
	p.enc = func(dst []byte, v unsafe.Pointer) []byte {
		return makeAny(ptype, v).(Marshaler).MarshalEddy(dst)
	}
	p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
		n, err := makeAny(ptype, v).(Unmarshaler).UnmarshalEddy(src)
		if err != nil {
			return 0, err
		}
		if n < 0 || n > len(src) {
			return 0, ErrCorrupt
		}
		return n, nil
	}
	return true, nil
}

// eface is the layout of an empty interface value.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// makeAny returns the interface value of dynamic type typ, a pointer type,
// holding the pointer data.
func makeAny(typ, data unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, data
	return v
}

// hasMethods reports whether t has either Eddy method.
func hasMethods(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(marshalerType) || pt.Implements(unmarshalerType)
}

// holdsCustom reports whether a value of t contains, in its own memory
// rather than behind a pointer, a value whose plan calls user methods.
func holdsCustom(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer:
		return false
	case reflect.Struct:
		if t == timeType {
			return false
		}
		if hasMethods(t) {
			return true
		}
		for i := range t.NumField() {
			if f := t.Field(i); f.Name != "_" && holdsCustom(f.Type) {
				return true
			}
		}
		return false
	case reflect.Array:
		return hasMethods(t) || (t.Len() > 0 && holdsCustom(t.Elem()))
	}
	return hasMethods(t)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (b *builder) structure(p *plan, t reflect.Type, path string) error {
	var fs []field
	p.min = 0
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Name == "_" {
			continue
		}
		fp, err := b.plan(sf.Type, join(path, sf.Name))
		if err != nil {
			return err
		}
		if fp.empty {
			continue
		}
		if fp.fields != nil {
			for _, f := range fp.fields {
				fs = append(fs, field{off: sf.Offset + f.off, enc: f.enc, dec: f.dec})
			}
		} else {
			enc, dec := fp.funcs()
			fs = append(fs, field{off: sf.Offset, enc: enc, dec: dec})
		}
		p.min = addMin(p.min, fp.min)
	}
	if len(fs) == 0 {
		p.empty = true
		p.enc, p.dec = encNothing, decNothing
		return nil
	}
	p.fields = fs
	if len(fs) == 1 && fs[0].off == 0 {
		p.enc, p.dec = fs[0].enc, fs[0].dec
		return nil
	}
	p.enc = func(dst []byte, v unsafe.Pointer) []byte {
		for i := range fs {
			dst = fs[i].enc(dst, unsafe.Add(v, fs[i].off))
		}
		return dst
	}
	p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
		n := 0
		for i := range fs {
			m, err := fs[i].dec(src[n:], unsafe.Add(v, fs[i].off), depth)
			if err != nil {
				return 0, err
			}
			n += m
		}
		return n, nil
	}
	return nil
}

func addMin(a, b int) int {
	return int(min(int64(a)+int64(b), math.MaxInt32))
}

func (b *builder) array(p *plan, t reflect.Type, path string) error {
	n := t.Len()
	if n == 0 {
		p.min, p.empty = 0, true
		p.enc, p.dec = encNothing, decNothing
		return nil
	}
	et := t.Elem()
	if et.Kind() == reflect.Uint8 && !hasMethods(et) {
		p.min = n
		p.enc = func(dst []byte, v unsafe.Pointer) []byte {
			return append(dst, unsafe.Slice((*byte)(v), n)...)
		}
		p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
			if len(src) < n {
				return 0, ErrShort
			}
			return copy(unsafe.Slice((*byte)(v), n), src), nil
		}
		return nil
	}
	ep, err := b.plan(et, path+"[]")
	if err != nil {
		return err
	}
	if ep.empty {
		p.min, p.empty = 0, true
		p.enc, p.dec = encNothing, decNothing
		return nil
	}
	p.min = int(min(int64(n)*int64(ep.min), math.MaxInt32))
	size := et.Size()
	enc, dec := ep.funcs()
	p.enc = func(dst []byte, v unsafe.Pointer) []byte {
		for i := range n {
			dst = enc(dst, unsafe.Add(v, uintptr(i)*size))
		}
		return dst
	}
	p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
		m := 0
		for i := range n {
			k, err := dec(src[m:], unsafe.Add(v, uintptr(i)*size), depth)
			if err != nil {
				return 0, err
			}
			m += k
		}
		return m, nil
	}
	return nil
}

// maxDepth bounds how deeply pointers, slices and maps may nest in a decoded
// value. Only recursive types can nest without limit, and input crafted to
// nest them would otherwise overflow the stack, which is fatal, not a panic.
// A level takes a few hundred bytes of stack.
const maxDepth = 1 << 16

// allocBudget bounds what a decoder allocates for a collection before it has
// decoded its elements: count*size may exceed neither this many bytes nor
// budgetFactor bytes per remaining input byte. The element-count check alone
// would let a one-byte Marshaler of a large type claim huge allocations.
const (
	allocBudget  = 1 << 20
	budgetFactor = 32
)

func overBudget(count int, size uintptr, rest int) bool {
	if size == 0 {
		return false
	}
	limit := max(uintptr(allocBudget), uintptr(rest)*budgetFactor)
	return uintptr(count) > limit/size
}

func (b *builder) slice(p *plan, t reflect.Type, path string) error {
	et := t.Elem()
	if et.Kind() == reflect.Uint8 && !hasMethods(et) {
		p.enc, p.dec = encBytes, decBytes
		return nil
	}
	// ep may be unfinished if t is recursive: read its fields only when
	// running.
	ep, err := b.plan(et, path+"[]")
	if err != nil {
		return err
	}
	size := et.Size()
	alloc := newArray(et)
	p.enc = func(dst []byte, v unsafe.Pointer) []byte {
		h := (*sliceHeader)(v)
		if h.data == nil {
			return append(dst, 0)
		}
		dst = binary.AppendUvarint(dst, uint64(h.len)+1)
		if ep.empty {
			return dst
		}
		enc := ep.enc
		for i := range h.len {
			dst = enc(dst, unsafe.Add(h.data, uintptr(i)*size))
		}
		return dst
	}
	p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
		u, n, err := readUvarint(src)
		if err != nil {
			return 0, err
		}
		h := (*sliceHeader)(v)
		if u == 0 {
			*h = sliceHeader{}
			return n, nil
		}
		u--
		rest := len(src) - n
		if ep.empty {
			// Elements carry no data: only the memory they take bounds
			// the length.
			if u > math.MaxInt || overBudget(int(u), size, rest) {
				return 0, ErrCorrupt
			}
			data := unsafe.Pointer(&zeroBase)
			if u > 0 && size > 0 {
				data = alloc(int(u))
			}
			*h = sliceHeader{data: data, len: int(u), cap: int(u)}
			return n, nil
		}
		if u > uint64(rest/max(ep.min, 1)) {
			return 0, ErrShort
		}
		count := int(u)
		if count == 0 {
			*h = sliceHeader{data: unsafe.Pointer(&zeroBase)}
			return n, nil
		}
		if depth >= maxDepth {
			return 0, ErrCorrupt
		}
		if overBudget(count, size, rest) {
			m, err := decodeGrowing(src[n:], v, depth, t, ep, count)
			return n + m, err
		}
		data := alloc(count)
		*h = sliceHeader{data: data, len: count, cap: count}
		dec := ep.dec
		for i := range count {
			m, err := dec(src[n:], unsafe.Add(data, uintptr(i)*size), depth+1)
			if err != nil {
				return 0, err
			}
			n += m
		}
		return n, nil
	}
	return nil
}

// decodeGrowing decodes count elements into the slice at v, growing it as
// elements arrive rather than allocating them all up front.
func decodeGrowing(src []byte, v unsafe.Pointer, depth int, t reflect.Type, ep *plan, count int) (int, error) {
	*(*sliceHeader)(v) = sliceHeader{}
	s := reflect.NewAt(t, v).Elem()
	size := t.Elem().Size()
	n := 0
	for i := range count {
		if i == s.Cap() {
			s.Grow(min(count-i, max(i, 8)))
		}
		s.SetLen(i + 1)
		m, err := ep.dec(src[n:], unsafe.Add((*sliceHeader)(v).data, uintptr(i)*size), depth+1)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

// newArray returns a function that allocates zeroed memory for n values of t
// (n > 0). Types laid out like a basic type are allocated as that type:
// the garbage collector only needs to know which words hold pointers. Others
// are allocated by reflect, which knows t's layout.
func newArray(t reflect.Type) func(n int) unsafe.Pointer {
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		return makeArray[uint8]
	case reflect.Int16, reflect.Uint16:
		return makeArray[uint16]
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return makeArray[uint32]
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Uintptr, reflect.Float64:
		return makeArray[uint64]
	case reflect.Complex64:
		return makeArray[complex64]
	case reflect.Complex128:
		return makeArray[complex128]
	case reflect.String:
		return makeArray[string]
	case reflect.Slice:
		return makeArray[[]byte]
	case reflect.Pointer, reflect.Map:
		return makeArray[unsafe.Pointer]
	}
	st := reflect.SliceOf(t)
	return func(n int) unsafe.Pointer {
		var h sliceHeader
		reflect.NewAt(st, unsafe.Pointer(&h)).Elem().Grow(n)
		return h.data
	}
}

func makeArray[E any](n int) unsafe.Pointer {
	return unsafe.Pointer(unsafe.SliceData(make([]E, n)))
}

func (b *builder) pointer(p *plan, t reflect.Type, path string) error {
	et := t.Elem()
	ep, err := b.plan(et, path)
	if err != nil {
		return err
	}
	alloc := func() unsafe.Pointer { return reflect.New(et).UnsafePointer() }
	if k := et.Kind(); k != reflect.Struct && k != reflect.Array {
		fn := newArray(et)
		alloc = func() unsafe.Pointer { return fn(1) }
	}
	p.enc = func(dst []byte, v unsafe.Pointer) []byte {
		q := *(*unsafe.Pointer)(v)
		if q == nil {
			return append(dst, 0)
		}
		return ep.enc(append(dst, 1), q)
	}
	p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
		if len(src) == 0 {
			return 0, ErrShort
		}
		switch src[0] {
		case 0:
			*(*unsafe.Pointer)(v) = nil
			return 1, nil
		case 1:
		default:
			return 0, ErrCorrupt
		}
		if depth >= maxDepth {
			return 0, ErrCorrupt
		}
		if len(src)-1 < ep.min {
			return 0, ErrShort
		}
		q := alloc()
		*(*unsafe.Pointer)(v) = q
		n, err := ep.dec(src[1:], q, depth+1)
		if err != nil {
			return 0, err
		}
		return n + 1, nil
	}
	return nil
}

// mapScratch holds a key and a value that map entries are copied into for
// encoding and decoded into before insertion.
type mapScratch struct {
	k, e   reflect.Value // addressable
	kp, ep unsafe.Pointer
}

// mapping builds the plan of a map type. Go offers no typed access to the
// entries of a map whose type is known only at run time except reflect, so
// this is the one plan that uses reflect.Value per record: it iterates with
// a MapIter, copies each entry into pooled scratch values with SetIterKey
// and SetIterValue (no allocation), and inserts with SetMapIndex. Entries
// are written in iteration order, so equal maps may encode differently.
func (b *builder) mapping(p *plan, t reflect.Type, path string) error {
	kt, et := t.Key(), t.Elem()
	kp, err := b.plan(kt, path+"[key]")
	if err != nil {
		return err
	}
	ep, err := b.plan(et, path+"[value]")
	if err != nil {
		return err
	}
	// User methods may expect a zero receiver: give them one.
	zero := holdsCustom(kt) || holdsCustom(et)
	scratch := &sync.Pool{New: func() any {
		k, e := reflect.New(kt), reflect.New(et)
		return &mapScratch{k: k.Elem(), e: e.Elem(), kp: k.UnsafePointer(), ep: e.UnsafePointer()}
	}}
	release := func(s *mapScratch) {
		// Drop the references the scratch values hold into user data.
		s.k.SetZero()
		s.e.SetZero()
		scratch.Put(s)
	}
	entrySize := kt.Size() + et.Size()
	p.enc = func(dst []byte, v unsafe.Pointer) []byte {
		m := reflect.NewAt(t, v).Elem()
		if m.IsNil() {
			return append(dst, 0)
		}
		dst = binary.AppendUvarint(dst, uint64(m.Len())+1)
		s := scratch.Get().(*mapScratch)
		var it reflect.MapIter
		it.Reset(m)
		for it.Next() {
			s.k.SetIterKey(&it)
			s.e.SetIterValue(&it)
			dst = kp.enc(dst, s.kp)
			dst = ep.enc(dst, s.ep)
		}
		release(s)
		return dst
	}
	p.dec = func(src []byte, v unsafe.Pointer, depth int) (int, error) {
		u, n, err := readUvarint(src)
		if err != nil {
			return 0, err
		}
		if u == 0 {
			*(*unsafe.Pointer)(v) = nil
			return n, nil
		}
		u--
		rest := len(src) - n
		if kp.empty && ep.empty {
			// Every key is the zero key: one entry at most.
			if u > 1 {
				return 0, ErrCorrupt
			}
		} else if u > uint64(rest/max(kp.min+ep.min, 1)) {
			return 0, ErrShort
		}
		if depth >= maxDepth {
			return 0, ErrCorrupt
		}
		count := int(u)
		hint := count
		if overBudget(count, entrySize, rest) {
			hint = 0
		}
		m := reflect.MakeMapWithSize(t, hint)
		s := scratch.Get().(*mapScratch)
		defer release(s)
		for range count {
			if zero {
				s.k.SetZero()
				s.e.SetZero()
			}
			k, err := kp.dec(src[n:], s.kp, depth+1)
			if err != nil {
				return 0, err
			}
			n += k
			k, err = ep.dec(src[n:], s.ep, depth+1)
			if err != nil {
				return 0, err
			}
			n += k
			m.SetMapIndex(s.k, s.e)
		}
		*(*unsafe.Pointer)(v) = m.UnsafePointer()
		return n, nil
	}
	return nil
}

func encNothing(dst []byte, _ unsafe.Pointer) []byte              { return dst }
func decNothing(src []byte, _ unsafe.Pointer, _ int) (int, error) { return 0, nil }

func encBool(dst []byte, p unsafe.Pointer) []byte { return appendBool(dst, *(*bool)(p)) }
func decBool(src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := readBool(src)
	*(*bool)(p) = v
	return n, err
}

func encByte(dst []byte, p unsafe.Pointer) []byte { return append(dst, *(*byte)(p)) }
func decByte(src []byte, p unsafe.Pointer, _ int) (int, error) {
	if len(src) == 0 {
		return 0, ErrShort
	}
	*(*byte)(p) = src[0]
	return 1, nil
}

func encSigned[I integer](dst []byte, p unsafe.Pointer) []byte {
	return appendVarint(dst, int64(*(*I)(p)))
}
func decSigned[I integer](src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := readSigned[I](src)
	*(*I)(p) = v
	return n, err
}

func encUnsigned[U integer](dst []byte, p unsafe.Pointer) []byte {
	return binary.AppendUvarint(dst, uint64(*(*U)(p)))
}
func decUnsigned[U integer](src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := readUnsigned[U](src)
	*(*U)(p) = v
	return n, err
}

// Floats are moved as bits, never through a float register, so that
// signalling NaNs keep their payload on every architecture.
func enc32(dst []byte, p unsafe.Pointer) []byte {
	return binary.LittleEndian.AppendUint32(dst, *(*uint32)(p))
}
func dec32(src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := read32(src)
	*(*uint32)(p) = v
	return n, err
}

func enc64(dst []byte, p unsafe.Pointer) []byte {
	return binary.LittleEndian.AppendUint64(dst, *(*uint64)(p))
}
func dec64(src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := read64(src)
	*(*uint64)(p) = v
	return n, err
}

func encComplex64(dst []byte, p unsafe.Pointer) []byte {
	c := (*[2]uint32)(p)
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(dst, c[0]), c[1])
}
func decComplex64(src []byte, p unsafe.Pointer, _ int) (int, error) {
	if len(src) < 8 {
		return 0, ErrShort
	}
	c := (*[2]uint32)(p)
	c[0], c[1] = binary.LittleEndian.Uint32(src), binary.LittleEndian.Uint32(src[4:])
	return 8, nil
}

func encComplex128(dst []byte, p unsafe.Pointer) []byte {
	c := (*[2]uint64)(p)
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(dst, c[0]), c[1])
}
func decComplex128(src []byte, p unsafe.Pointer, _ int) (int, error) {
	if len(src) < 16 {
		return 0, ErrShort
	}
	c := (*[2]uint64)(p)
	c[0], c[1] = binary.LittleEndian.Uint64(src), binary.LittleEndian.Uint64(src[8:])
	return 16, nil
}

func encString(dst []byte, p unsafe.Pointer) []byte { return appendString(dst, *(*string)(p)) }
func decString(src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := readString(src)
	*(*string)(p) = v
	return n, err
}

func encBytes(dst []byte, p unsafe.Pointer) []byte { return appendBytes(dst, *(*[]byte)(p)) }
func decBytes(src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := readBytes(src)
	*(*[]byte)(p) = v
	return n, err
}

func encTime(dst []byte, p unsafe.Pointer) []byte { return appendTime(dst, *(*time.Time)(p)) }
func decTime(src []byte, p unsafe.Pointer, _ int) (int, error) {
	v, n, err := readTime(src)
	*(*time.Time)(p) = v
	return n, err
}
