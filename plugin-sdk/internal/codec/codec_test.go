package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

type Celsius float64
type Name string
type Blob []byte
type IDs []int64
type Flag bool
type MyByte byte

type Pair[K comparable, V any] struct {
	Key K
	Val V
}

type Point struct{ X, Y int32 }

type Inner struct {
	A int
	B []string
}

type Outer struct {
	Name  string
	In    Inner
	Ptr   *Inner
	Arr   [3]Inner
	Items []Inner
	Index map[string]Inner
}

type private struct {
	a int
	b string
	c []float64
	d *private
	e map[int8]bool
}

type Node struct {
	V    int
	Next *Node
}

type Tree struct {
	Name string
	Kids []Tree
}

type Graph map[string]Graph

type Even struct {
	N   int
	Odd *Odd
}

type Odd struct {
	N    int
	Even []Even
}

type blanks struct {
	_ [0]func() // makes the struct non-comparable in real code; must not fail
	A int
	_ int
	B string
}

type zeros struct {
	E struct{}
	A [0]int
}

// Money encodes itself as a fixed 8-byte amount and a 3-letter currency,
// with a value receiver on MarshalEddy.
type Money struct {
	Cents    int64
	Currency string
}

func (m Money) MarshalEddy(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Cents))
	return append(dst, (m.Currency + "   ")[:3]...)
}

func (m *Money) UnmarshalEddy(src []byte) (int, error) {
	if len(src) < 11 {
		return 0, ErrShort
	}
	if *m != (Money{}) {
		return 0, errors.New("UnmarshalEddy called on a non-zero Money")
	}
	m.Cents = int64(binary.BigEndian.Uint64(src))
	m.Currency = strings.TrimRight(string(src[8:11]), " ")
	return 11, nil
}

// Upper has pointer receivers on both methods and stores its string in
// upper case, to show that the methods run.
type Upper struct{ s string }

func (u *Upper) MarshalEddy(dst []byte) []byte { return appendString(dst, strings.ToUpper(u.s)) }

func (u *Upper) UnmarshalEddy(src []byte) (int, error) {
	s, n, err := readString(src)
	u.s = s
	return n, err
}

type Ledger struct {
	Owner   string
	Balance Money
	Entries []Money
	ByDay   map[Money]*Money
	Tag     Upper
}

type kitchen struct {
	B    bool
	I    int
	I8   int8
	I16  int16
	I32  int32
	I64  int64
	U    uint
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	UP   uintptr
	F32  float32
	F64  float64
	C64  complex64
	C128 complex128
	S    string
	Bs   []byte
	T    time.Time
	D    time.Duration
	Arr  [2]Point
	Hash [4]byte
	Sl   []Point
	Nest [][]string
	M    map[string][]int
	P    *Point
	PP   **int
	Tree Tree
	priv private
	Cel  Celsius
	Blob Blob
	Pair Pair[Name, *Celsius]
}

// The same Event as the benchmarks.
type Event struct {
	ID    int64
	Name  string
	Price float64
	Tags  []string
	At    time.Time
}

func ptr[T any](v T) *T { return &v }

// rt returns a test that round-trips v and checks the result with eq (or
// reflect.DeepEqual), and that the encoding is canonical and every strict
// prefix of it fails with ErrShort.
func rt[T any](v T, eq ...func(a, b T) bool) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		c, err := For[T]()
		if err != nil {
			t.Fatalf("For: %v", err)
		}
		enc := c.Append(nil, v)
		got, n, err := c.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(% x): %v", enc, err)
		}
		if n != len(enc) {
			t.Fatalf("Decode consumed %d bytes of %d", n, len(enc))
		}
		same := reflect.DeepEqual
		if len(eq) > 0 {
			same = func(a, b any) bool { return eq[0](a.(T), b.(T)) }
		}
		if !same(got, v) {
			t.Fatalf("round trip: got %#v, want %#v", got, v)
		}
		// Values after a prefix and before a suffix decode the same.
		framed := c.Append([]byte("head"), v)
		framed = append(framed, "tail"...)
		got, n, err = c.Decode(framed[4:])
		if err != nil || n != len(enc) || !same(got, v) {
			t.Fatalf("framed decode: %#v, %d, %v", got, n, err)
		}
		if !hasMap(reflect.TypeFor[T]()) {
			if again := c.Append(nil, got); !bytes.Equal(again, enc) {
				t.Fatalf("re-encoding differs:\n% x\n% x", enc, again)
			}
		}
		for i := range len(enc) {
			if _, _, err := c.Decode(enc[:i]); !errors.Is(err, ErrShort) {
				t.Fatalf("Decode of %d of %d bytes: err %v, want ErrShort", i, len(enc), err)
			}
		}
	}
}

// hasMap reports whether t can contain a map, whose encoding depends on
// iteration order.
func hasMap(t reflect.Type) bool {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type) bool
	walk = func(t reflect.Type) bool {
		if seen[t] {
			return false
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Map:
			return true
		case reflect.Pointer, reflect.Slice, reflect.Array:
			return walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				if walk(t.Field(i).Type) {
					return true
				}
			}
		}
		return false
	}
	return walk(t)
}

func sameFloat64Bits(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
func sameFloat32Bits(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }
func sameInstant(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Equal(b) && ao == bo
}

func sampleKitchen() kitchen {
	c := Celsius(-40)
	i := 7
	pi := &i
	return kitchen{
		B: true, I: math.MinInt64, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MaxInt64,
		U: math.MaxUint, U8: 255, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64, UP: 12345,
		F32: -1.5, F64: math.Inf(-1), C64: complex(1, -2), C128: complex(math.Pi, math.E),
		S: "héllo, 世界", Bs: []byte{0, 1, 2}, T: time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
		D: -3 * time.Second, Arr: [2]Point{{1, 2}, {-3, -4}}, Hash: [4]byte{0xde, 0xad, 0xbe, 0xef},
		Sl: []Point{{5, 6}}, Nest: [][]string{nil, {}, {"x"}}, M: map[string][]int{"a": {1}, "b": nil},
		P: &Point{7, 8}, PP: &pi, Tree: Tree{"root", []Tree{{"leaf", nil}}},
		priv: private{a: -1, b: "hidden", c: []float64{0.5}, d: &private{a: 2}, e: map[int8]bool{-1: true}},
		Cel:  36.6, Blob: Blob("blob"), Pair: Pair[Name, *Celsius]{"k", &c},
	}
}

func sampleEvent() Event {
	return Event{
		ID:    1234567,
		Name:  "order-created",
		Price: 99.95,
		Tags:  []string{"eu", "priority", "web"},
		At:    time.Unix(1_700_000_000, 123_456_789).UTC(),
	}
}

func TestRoundTrip(t *testing.T) {
	nan64 := math.Float64frombits(0x7ff8_0000_dead_beef)
	nan32 := math.Float32frombits(0x7fa0_0001) // signalling
	cycleFree := &Node{1, &Node{2, &Node{3, nil}}}
	local := time.Date(2023, 6, 1, 12, 0, 0, 1, time.Local)
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"bool false", rt(false)},
		{"bool true", rt(true)},
		{"int zero", rt(0)},
		{"int min", rt(math.MinInt)},
		{"int max", rt(math.MaxInt)},
		{"int -1", rt(-1)},
		{"int8 min", rt(int8(math.MinInt8))},
		{"int8 max", rt(int8(math.MaxInt8))},
		{"int16 min", rt(int16(math.MinInt16))},
		{"int32 min", rt(int32(math.MinInt32))},
		{"int32 max", rt(int32(math.MaxInt32))},
		{"int64 min", rt(int64(math.MinInt64))},
		{"int64 max", rt(int64(math.MaxInt64))},
		{"uint max", rt(uint(math.MaxUint))},
		{"uint8 max", rt(uint8(math.MaxUint8))},
		{"uint16 max", rt(uint16(math.MaxUint16))},
		{"uint32 max", rt(uint32(math.MaxUint32))},
		{"uint64 max", rt(uint64(math.MaxUint64))},
		{"uint64 zero", rt(uint64(0))},
		{"uintptr", rt(uintptr(math.MaxUint64))},
		{"float32", rt(float32(-0.1))},
		{"float32 nan bits", rt(nan32, sameFloat32Bits)},
		{"float32 -0", rt(float32(math.Copysign(0, -1)), sameFloat32Bits)},
		{"float64", rt(math.SmallestNonzeroFloat64)},
		{"float64 nan bits", rt(nan64, sameFloat64Bits)},
		{"float64 -0", rt(math.Copysign(0, -1), sameFloat64Bits)},
		{"float64 inf", rt(math.Inf(1))},
		{"complex64", rt(complex64(complex(-1, 0.5)))},
		{"complex128", rt(complex(math.MaxFloat64, -math.MaxFloat64))},
		{"string empty", rt("")},
		{"string", rt("eddy\x00\xff")},
		{"string long", rt(strings.Repeat("x", 300))},
		{"bytes nil", rt([]byte(nil))},
		{"bytes empty", rt([]byte{})},
		{"bytes", rt([]byte("abc"))},
		{"time zero", rt(time.Time{})},
		{"time utc", rt(time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC))},
		{"time before 1678", rt(time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC))},
		{"time local", rt(local)},
		{"time fixed zone", rt(time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("CEST", 7200)), sameInstant)},
		{"time now", rt(time.Now(), sameInstant)},
		{"duration", rt(-time.Hour)},
		{"named float", rt(Celsius(-273.15))},
		{"named string", rt(Name("n"))},
		{"named bytes nil", rt(Blob(nil))},
		{"named bytes", rt(Blob{1})},
		{"named slice", rt(IDs{-1, 0, 1})},
		{"named bool", rt(Flag(true))},
		{"slice of named byte", rt([]MyByte{1, 2, 255})},
		{"ints nil", rt([]int(nil))},
		{"ints empty", rt([]int{})},
		{"ints", rt([]int{math.MinInt, 0, math.MaxInt})},
		{"strings", rt([]string{"", "a", "bc"})},
		{"slices of slices", rt([][]int{nil, {}, {1}})},
		{"slice of pointers", rt([]*int{nil, ptr(1)})},
		{"slice of maps", rt([]map[string]int{nil, {}, {"a": 1}})},
		{"slice of structs", rt([]Point{{1, 2}, {3, 4}})},
		{"slice of empty structs", rt(make([]struct{}, 1000))},
		{"slice of data-less structs", rt(make([]struct{ _ int }, 1000))},
		{"slice of arrays", rt([][2]string{{"a", "b"}})},
		{"array", rt([4]int{1, -2, 3, -4})},
		{"array of bytes", rt([32]byte{1, 31: 2})},
		{"array empty", rt([0]string{})},
		{"array of arrays", rt([2][3]string{{"a"}, {"", "b", "c"}})},
		{"map nil", rt(map[string]int(nil))},
		{"map empty", rt(map[string]int{})},
		{"map", rt(map[string]int{"a": 1, "b": -2, "": 0})},
		{"map struct key", rt(map[Point][]string{{1, 2}: {"x"}, {}: nil})},
		{"map of maps", rt(map[int]map[int]int{1: {2: 3}, 4: nil})},
		{"map zero-size key", rt(map[struct{}]int{{}: 5})},
		{"map zero-size entries", rt(map[struct{}]struct{}{{}: {}})},
		{"map float keys", rt(map[float64]bool{-0.5: true, math.Inf(1): false})},
		{"pointer nil", rt((*int)(nil))},
		{"pointer", rt(ptr("x"))},
		{"pointer to pointer", rt(ptr(ptr(3)))},
		{"pointer to struct", rt(&Point{1, 2})},
		{"pointer to empty struct", rt(&struct{}{})},
		{"struct zero", rt(Outer{})},
		{"struct", rt(Outer{
			Name:  "o",
			In:    Inner{1, []string{"a"}},
			Ptr:   &Inner{2, nil},
			Arr:   [3]Inner{{A: 3}},
			Items: []Inner{{4, []string{}}},
			Index: map[string]Inner{"k": {5, []string{"v"}}},
		})},
		{"struct unexported", rt(private{a: 1, b: "b", c: []float64{1}, d: &private{b: "d"}, e: map[int8]bool{1: true}})},
		{"struct blank fields", rt(blanks{A: 1, B: "b"})},
		{"struct zero-size fields", rt(zeros{})},
		{"struct empty", rt(struct{}{})},
		{"generic", rt(Pair[string, []Pair[int, bool]]{"k", []Pair[int, bool]{{1, true}}})},
		{"recursive list", rt(cycleFree)},
		{"recursive slice", rt(Tree{"a", []Tree{{"b", nil}, {"c", []Tree{{"d", []Tree{}}}}}})},
		{"recursive map", rt(Graph{"a": {"b": nil}, "c": {}})},
		{"mutually recursive", rt(Even{1, &Odd{2, []Even{{3, nil}, {4, &Odd{5, nil}}}}})},
		{"kitchen zero", rt(kitchen{})},
		{"kitchen", rt(sampleKitchen())},
		{"event", rt(sampleEvent())},
		{"marshaler", rt(Money{-150, "EUR"})},
		{"marshaler pointer receiver", rt(Upper{"UP"})},
		{"marshaler slice", rt([]Money{{1, "USD"}, {2, "EUR"}})},
		{"marshaler pointer", rt(&Money{3, "GBP"})},
		{"marshaler nested", rt(Ledger{
			Owner:   "o",
			Balance: Money{10, "EUR"},
			Entries: []Money{{1, "EUR"}, {-1, "EUR"}},
			ByDay:   map[Money]*Money{{1, "A"}: {2, "B"}, {3, "C"}: nil},
			Tag:     Upper{"TAG"},
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestMarshalerIsUsed(t *testing.T) {
	c, err := For[Upper]()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := c.Decode(c.Append(nil, Upper{"shout"}))
	if err != nil || got.s != "SHOUT" {
		t.Fatalf("got %q, %v; want the MarshalEddy encoding", got.s, err)
	}
	m, _ := For[Money]()
	if enc := m.Append(nil, Money{1, "EUR"}); string(enc) != "\x00\x00\x00\x00\x00\x00\x00\x01EUR" {
		t.Fatalf("encoding % x is not MarshalEddy's", enc)
	}
}

func TestNilAndEmptySurvive(t *testing.T) {
	c, _ := For[[]string]()
	for _, in := range [][]string{nil, {}} {
		got, _, err := c.Decode(c.Append(nil, in))
		if err != nil || (got == nil) != (in == nil) || len(got) != 0 {
			t.Fatalf("%#v decoded as %#v, %v", in, got, err)
		}
	}
}

// Decoded values must not share memory with the input.
func TestDecodeDoesNotAlias(t *testing.T) {
	c, _ := For[Event]()
	enc := c.Append(nil, sampleEvent())
	ev, _, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xff
	}
	if !reflect.DeepEqual(ev, sampleEvent()) {
		t.Fatalf("decoded value changed with its input: %#v", ev)
	}
}

type withFunc struct {
	ID      int
	Handler func()
}

type deep struct {
	Outer []struct {
		M map[string]*struct{ C chan int }
	}
}

type noUnmarshal struct{}

func (noUnmarshal) MarshalEddy(dst []byte) []byte { return dst }

type onlyUnmarshal struct{}

func (*onlyUnmarshal) UnmarshalEddy([]byte) (int, error) { return 0, nil }

type anyField struct{ V any }

type ptrField struct{ P unsafe.Pointer }

func TestUnsupported(t *testing.T) {
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"func field", errOf[withFunc], "codec for codec.withFunc: field Handler: func types cannot be encoded"},
		{"func", errOf[func()], "codec for func(): func types cannot be encoded"},
		{"chan", errOf[chan int], "codec for chan int: chan types cannot be encoded"},
		{"interface", errOf[any], "codec for interface {}: interface types cannot be encoded"},
		{"interface field", errOf[anyField], "codec for codec.anyField: field V: interface types cannot be encoded"},
		{"unsafe.Pointer", errOf[ptrField], "codec for codec.ptrField: field P: unsafe.Pointer cannot be encoded"},
		{"deep path", errOf[deep], "codec for codec.deep: field Outer[].M[value].C: chan types cannot be encoded"},
		{"element", errOf[[]func()], "codec for []func(): element []: func types cannot be encoded"},
		{"map key", errOf[map[[1]any]int], "codec for map[[1]interface {}]int: element [key][]: interface types cannot be encoded"},
		{"interface Marshaler", errOf[Marshaler], "codec for codec.Marshaler: interface types cannot be encoded"},
		{"no Unmarshaler", errOf[[]noUnmarshal], "codec for []codec.noUnmarshal: element []: codec.noUnmarshal implements Marshaler but *codec.noUnmarshal does not implement Unmarshaler"},
		{"no Marshaler", errOf[onlyUnmarshal], "codec for codec.onlyUnmarshal: *codec.onlyUnmarshal implements Unmarshaler but neither it nor codec.onlyUnmarshal implements Marshaler"},
		{"recursive", errOf[struct {
			Next *withFunc
			F    func()
		}], "codec for struct { Next *codec.withFunc; F func() }: field Next.Handler: func types cannot be encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			if err == nil {
				t.Fatalf("For succeeded, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n%q\nwant\n%q", err, tt.want)
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not wrap ErrUnsupported", err)
			}
		})
	}
}

func errOf[T any]() error {
	_, err := For[T]()
	return err
}

func TestCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   error
	}{
		{"bool 2", decodeAs[bool], []byte{2}, ErrCorrupt},
		{"bool field 2", decodeAs[struct{ B bool }], []byte{2}, ErrCorrupt},
		{"overlong varint", decodeAs[uint64], []byte{0x80, 0x00}, ErrCorrupt},
		{"varint overflow", decodeAs[uint64], bytes.Repeat([]byte{0xff}, 11), ErrCorrupt},
		{"int16 range", decodeAs[int16], binary.AppendVarint(nil, math.MaxInt16+1), ErrCorrupt},
		{"uint32 range", decodeAs[uint32], binary.AppendUvarint(nil, math.MaxUint32+1), ErrCorrupt},
		{"named int32 range", decodeAs[struct{ X int32 }], binary.AppendVarint(nil, math.MinInt32-1), ErrCorrupt},
		{"pointer flag", decodeAs[*int], []byte{2, 0}, ErrCorrupt},
		{"time nanos", decodeAs[time.Time], append([]byte{0}, binary.AppendUvarint(nil, 2e9)...), ErrCorrupt},
		{"time offset", decodeAs[time.Time], append([]byte{0, 1}, binary.AppendVarint(nil, 1e9)...), ErrCorrupt},
		{"huge string", decodeAs[string], binary.AppendUvarint(nil, 1<<62), ErrShort},
		{"huge slice", decodeAs[[]int], binary.AppendUvarint(nil, 1<<62), ErrShort},
		{"huge map", decodeAs[map[int]int], binary.AppendUvarint(nil, 1<<40), ErrShort},
		{"huge struct slice", decodeAs[[]Point], append(binary.AppendUvarint(nil, 1<<40), 1, 2, 3), ErrShort},
		{"zero-size map", decodeAs[map[struct{}]struct{}], []byte{3}, ErrCorrupt},
		{"marshaler short", decodeAs[Money], []byte{1, 2, 3}, ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Decode(% x): %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestDepthLimit(t *testing.T) {
	var head *Node
	for i := range maxDepth {
		head = &Node{i, head}
	}
	c, _ := For[*Node]()
	if _, _, err := c.Decode(c.Append(nil, head)); err != nil {
		t.Fatalf("list of maxDepth nodes: %v", err)
	}
	if _, _, err := c.Decode(c.Append(nil, &Node{-1, head})); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("list of maxDepth+1 nodes: err %v, want ErrCorrupt", err)
	}
	// A Tree nested 4 times deeper than the limit: each level is an empty
	// name and one child.
	in := append(bytes.Repeat([]byte{0, 2}, 4*maxDepth), 0, 0)
	if err := decodeAs[Tree](in); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("deep tree: err %v, want ErrCorrupt", err)
	}
}

// Deep values make the stack grow, and move, while plan functions hold
// pointers into the caller's frame.
func TestDeepValueOnStack(t *testing.T) {
	v := Tree{Name: "leaf"}
	for i := range 5000 {
		v = Tree{Name: fmt.Sprint(i), Kids: []Tree{v, {Name: "x"}}}
	}
	c, _ := For[Tree]()
	for range 3 {
		got, _, err := c.Decode(c.Append(nil, v))
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("deep tree did not survive: %v", err)
		}
		runtime.GC()
	}
}

func decodeAs[T any](b []byte) error {
	c, err := For[T]()
	if err != nil {
		return err
	}
	_, _, err = c.Decode(b)
	return err
}

// A slice of a large Marshaler type whose encoding is one byte must not be
// allocated at its claimed length before its elements decode.
type big struct{ _ [1 << 16]byte }

func (*big) MarshalEddy(dst []byte) []byte { return append(dst, 0) }
func (b *big) UnmarshalEddy(src []byte) (int, error) {
	if len(src) == 0 {
		return 0, ErrShort
	}
	if src[0] != 0 {
		return 0, ErrCorrupt
	}
	return 1, nil
}

func TestDecodeBoundsAllocation(t *testing.T) {
	c, err := For[[]big]()
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := c.Decode(c.Append(nil, make([]big, 20))); err != nil || len(got) != 20 {
		t.Fatalf("round trip: %d elements, %v", len(got), err)
	}
	// Claims 1000 elements (65 MB), has the bytes for them, and the fourth
	// is corrupt.
	in := binary.AppendUvarint(nil, 1000+1)
	in = append(in, 0, 0, 0, 0xff)
	in = append(in, make([]byte, 996)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, _, err := c.Decode(in); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err %v, want ErrCorrupt", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 4<<20 {
		t.Fatalf("decoding 3 elements allocated %d bytes", per)
	}
}

func TestRandomInputDoesNotPanic(t *testing.T) {
	k, _ := For[kitchen]()
	l, _ := For[Ledger]()
	valid := [][]byte{k.Append(nil, sampleKitchen()), l.Append(nil, Ledger{Balance: Money{1, "X"}, Entries: []Money{{}}})}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		in := append([]byte(nil), valid[i%2]...)
		for range 1 + r.IntN(4) {
			in[r.IntN(len(in))] = byte(r.Uint32())
		}
		// Corrupted input may or may not decode; this test checks only
		// that decoding it does not panic, so the errors are irrelevant.
		_, _, _ = k.Decode(in)
		_, _, _ = l.Decode(in)
		_, _, _ = k.Decode(in[:r.IntN(len(in))])
	}
}

func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := For[Even]()
			if err != nil {
				t.Error(err)
				return
			}
			m, _ := For[map[string]Money]()
			v := Even{1, &Odd{2, []Even{{3, nil}}}}
			mv := map[string]Money{"a": {1, "A"}, "b": {2, "B"}}
			for range 200 {
				got, _, err := c.Decode(c.Append(nil, v))
				if err != nil || !reflect.DeepEqual(got, v) {
					t.Errorf("got %#v, %v", got, err)
					return
				}
				gm, _, err := m.Decode(m.Append(nil, mv))
				if err != nil || !reflect.DeepEqual(gm, mv) {
					t.Errorf("got %#v, %v", gm, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestForCaches(t *testing.T) {
	a, _ := For[Outer]()
	b, _ := For[Outer]()
	if a != b {
		t.Fatalf("For returned different codecs for one type")
	}
}

func TestAppendAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters allocate")
	}
	ev, _ := For[Event]()
	k, _ := For[kitchen]()
	m, _ := For[map[string]int]()
	e, kv, mv := sampleEvent(), sampleKitchen(), map[string]int{"a": 1, "b": 2}
	buf := make([]byte, 0, 4096)
	tests := []struct {
		name    string
		hasMaps bool
		fn      func()
	}{
		{"struct", false, func() { buf = ev.Append(buf[:0], e) }},
		{"kitchen", true, func() { buf = k.Append(buf[:0], kv) }},
		{"map", true, func() { buf = m.Append(buf[:0], mv) }},
	}
	for _, tt := range tests {
		if tt.hasMaps && raceEnabled {
			continue // map scratch values are pooled; the race detector empties pools at random
		}
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: Append allocates %v times, want 0", tt.name, n)
		}
	}
	// Decode allocates the strings and slices of the value and nothing else:
	// Name, Tags, and three tags.
	enc := ev.Append(nil, e)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := ev.Decode(enc); err != nil {
			t.Fatal(err)
		}
	}); n != 5 {
		t.Errorf("Decode allocates %v times, want 5", n)
	}
}

// The interface-layout trick in custom must give the same interface value
// as the language does.
func TestMakeAny(t *testing.T) {
	m := &Money{1, "X"}
	var proto any = m
	got := makeAny((*eface)(unsafe.Pointer(&proto)).typ, unsafe.Pointer(m))
	if got != proto {
		t.Fatalf("makeAny = %#v, want %#v", got, proto)
	}
}

// Hand-written encoding/binary baseline in the same wire format.
func appendEventByHand(dst []byte, e *Event) []byte {
	dst = binary.AppendVarint(dst, e.ID)
	dst = binary.AppendUvarint(dst, uint64(len(e.Name)))
	dst = append(dst, e.Name...)
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Price))
	dst = binary.AppendUvarint(dst, uint64(len(e.Tags))+1)
	for _, s := range e.Tags {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendVarint(dst, e.At.Unix())
	return binary.AppendUvarint(dst, uint64(e.At.Nanosecond())<<1)
}

func decodeEventByHand(src []byte, e *Event) (int, error) {
	var n int
	id, m := binary.Varint(src)
	if m <= 0 {
		return 0, ErrShort
	}
	e.ID, n = id, m
	str := func() (string, error) {
		l, m := binary.Uvarint(src[n:])
		if m <= 0 || l > uint64(len(src)-n-m) {
			return "", ErrShort
		}
		s := string(src[n+m : n+m+int(l)])
		n += m + int(l)
		return s, nil
	}
	var err error
	if e.Name, err = str(); err != nil {
		return 0, err
	}
	if len(src)-n < 8 {
		return 0, ErrShort
	}
	e.Price = math.Float64frombits(binary.LittleEndian.Uint64(src[n:]))
	n += 8
	l, m := binary.Uvarint(src[n:])
	if m <= 0 || l > uint64(len(src)-n) {
		return 0, ErrShort
	}
	n += m
	if l > 0 {
		e.Tags = make([]string, l-1)
		for i := range e.Tags {
			if e.Tags[i], err = str(); err != nil {
				return 0, err
			}
		}
	}
	sec, m := binary.Varint(src[n:])
	if m <= 0 {
		return 0, ErrShort
	}
	n += m
	ns, m := binary.Uvarint(src[n:])
	if m <= 0 {
		return 0, ErrShort
	}
	e.At = time.Unix(sec, int64(ns>>1)).UTC()
	return n + m, nil
}

func TestHandBaselineMatches(t *testing.T) {
	c, _ := For[Event]()
	e := sampleEvent()
	if a, b := c.Append(nil, e), appendEventByHand(nil, &e); !bytes.Equal(a, b) {
		t.Fatalf("baseline encodes differently:\n% x\n% x", a, b)
	}
}

func BenchmarkStructAppend(b *testing.B) {
	e := sampleEvent()
	b.Run("eddy", func(b *testing.B) {
		c, err := For[Event]()
		if err != nil {
			b.Fatal(err)
		}
		buf := c.Append(nil, e)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = c.Append(buf[:0], e)
		}
	})
	b.Run("binary-by-hand", func(b *testing.B) {
		buf := appendEventByHand(nil, &e)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = appendEventByHand(buf[:0], &e)
		}
	})
	b.Run("gob", func(b *testing.B) {
		var w bytes.Buffer
		enc := gob.NewEncoder(&w)
		if err := enc.Encode(&e); err != nil { // type descriptor sent once
			b.Fatal(err)
		}
		w.Reset()
		if err := enc.Encode(&e); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(w.Len()))
		b.ReportAllocs()
		for b.Loop() {
			w.Reset()
			if err := enc.Encode(&e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkStructDecode(b *testing.B) {
	e := sampleEvent()
	b.Run("eddy", func(b *testing.B) {
		c, _ := For[Event]()
		buf := c.Append(nil, e)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Decode(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary-by-hand", func(b *testing.B) {
		buf := appendEventByHand(nil, &e)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			var got Event
			if _, err := decodeEventByHand(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gob", func(b *testing.B) {
		// One stream of records, as gob is meant to be used: the type
		// descriptor is decoded once, before the timer.
		const batch = 4096
		var w bytes.Buffer
		enc := gob.NewEncoder(&w)
		for range batch {
			if err := enc.Encode(&e); err != nil {
				b.Fatal(err)
			}
		}
		stream := w.Bytes()
		b.SetBytes(int64(len(stream) / batch))
		b.ReportAllocs()
		var dec *gob.Decoder
		left := 0
		for b.Loop() {
			if left == 0 {
				b.StopTimer()
				dec, left = gob.NewDecoder(bytes.NewReader(stream)), batch
				var got Event
				if err := dec.Decode(&got); err != nil {
					b.Fatal(err)
				}
				left--
				b.StartTimer()
			}
			var got Event
			if err := dec.Decode(&got); err != nil {
				b.Fatal(err)
			}
			left--
		}
	})
}

func BenchmarkKitchen(b *testing.B) {
	c, _ := For[kitchen]()
	v := sampleKitchen()
	buf := c.Append(nil, v)
	b.Run("Append", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = c.Append(buf[:0], v)
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Decode(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBasic(b *testing.B) {
	s, _ := For[string]()
	i, _ := For[int64]()
	buf := make([]byte, 0, 64)
	b.Run("string/Append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = s.Append(buf[:0], "hello, world")
		}
	})
	b.Run("int64/Append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = i.Append(buf[:0], -123456789)
		}
	})
	enc := i.Append(nil, -123456789)
	b.Run("int64/Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := i.Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMap(b *testing.B) {
	c, _ := For[map[string]int64]()
	m := make(map[string]int64)
	for i := range 16 {
		m[fmt.Sprint("key", i)] = int64(i)
	}
	buf := c.Append(nil, m)
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = c.Append(buf[:0], m)
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Decode(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
