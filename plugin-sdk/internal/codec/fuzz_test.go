package codec

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// fuzzTarget decodes arbitrary input as one type and checks what it can
// about the result; a panic anywhere fails the fuzz test.
type fuzzTarget func(t *testing.T, data []byte)

func target[T any](canonical bool) fuzzTarget {
	c, err := For[T]()
	if err != nil {
		panic(err)
	}
	return func(t *testing.T, data []byte) {
		v, n, err := c.Decode(data)
		if err != nil {
			if n != 0 || !reflect.ValueOf(&v).Elem().IsZero() {
				t.Fatalf("%T: failed Decode returned n=%d and a non-zero value", v, n)
			}
			return
		}
		if n < 0 || n > len(data) {
			t.Fatalf("%T: Decode consumed %d of %d bytes", v, n, len(data))
		}
		enc := c.Append(nil, v)
		v2, n2, err := c.Decode(enc)
		if err != nil || n2 != len(enc) {
			t.Fatalf("%T: re-decoding % x: n=%d of %d, %v", v, enc, n2, len(enc), err)
		}
		if !canonical {
			return
		}
		// Decode accepts only canonical input, so for types whose
		// encoding does not depend on map order it is a bijection.
		if !bytes.Equal(enc, data[:n]) {
			t.Fatalf("%T: decoded % x, re-encoded as % x", v, data[:n], enc)
		}
		if again := c.Append(nil, v2); !bytes.Equal(again, enc) {
			t.Fatalf("%T: encoding is not stable: % x, % x", v, enc, again)
		}
	}
}

// FuzzDecode decodes arbitrary input as one of several types, chosen by its
// first byte, and fails on any panic or inconsistency. One type per input
// keeps executions and minimisation cheap.
func FuzzDecode(f *testing.F) {
	type seeded struct {
		check fuzzTarget
		seeds [][]byte
	}
	targets := []seeded{
		{target[kitchen](false), encodings(sampleKitchen(), kitchen{})},
		{target[Event](true), encodings(sampleEvent(), Event{})},
		{target[Ledger](false), encodings(Ledger{Owner: "o", Balance: Money{1, "EUR"}, Entries: []Money{{2, "USD"}},
			ByDay: map[Money]*Money{{3, "X"}: {4, "Y"}}, Tag: Upper{"t"}})},
		{target[Tree](true), encodings(Tree{"a", []Tree{{"b", nil}, {"c", []Tree{}}}})},
		{target[Even](true), encodings(Even{1, &Odd{2, []Even{{3, nil}}}})},
		{target[[]*Node](true), encodings([]*Node{nil, {1, &Node{2, nil}}})},
		{target[Graph](false), encodings(Graph{"a": {"b": nil}, "c": {}})},
		{target[[3][]int16](true), encodings([3][]int16{nil, {}, {-1, 1 << 14}})},
		{target[map[Point][]uint32](false), encodings(map[Point][]uint32{{1, 2}: {3}, {}: nil})},
		{target[time.Time](true), encodings(time.Date(2024, 1, 1, 0, 0, 0, 5, time.FixedZone("", 3600)), time.Time{})},
		{target[[]byte](true), encodings([]byte("abc"), []byte(nil))},
		{target[string](true), encodings("héllo")},
		{target[[]struct{}](true), encodings(make([]struct{}, 5))},
		{target[Pair[Name, *Celsius]](true), encodings(Pair[Name, *Celsius]{"n", ptr(Celsius(1))})},
		{target[[]big](true), encodings(make([]big, 3))},
	}
	for i, tg := range targets {
		for _, enc := range tg.seeds {
			f.Add(append([]byte{byte(i)}, enc...))
		}
	}
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		targets[int(data[0])%len(targets)].check(t, data[1:])
	})
}

func encodings[T any](vs ...T) [][]byte {
	c, err := For[T]()
	if err != nil {
		panic(err)
	}
	var out [][]byte
	for _, v := range vs {
		out = append(out, c.Append(nil, v))
	}
	return out
}
