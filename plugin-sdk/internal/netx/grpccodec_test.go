package netx

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// TestRawFrame checks that a received frame decodes as proto.Unmarshal
// would decode it, through the codec both ends use.
func TestRawFrame(t *testing.T) {
	c := wireCodec{pool: &bufPool{}}
	big := bytes.Repeat([]byte("0123456789abcdef"), 2100) // over 32 KiB
	for _, tc := range []struct {
		name string
		f    *pluginpb.Frame
	}{
		{"batch", &pluginpb.Frame{Records: big, Count: 2100}},
		{"small batch", &pluginpb.Frame{Records: []byte("abc"), Count: 1}},
		{"watermark", &pluginpb.Frame{Event: &pluginpb.Event{Kind: &pluginpb.Event_Watermark{Watermark: -7}}}},
		{"end", &pluginpb.Frame{Event: &pluginpb.Event{Kind: &pluginpb.Event_EndOfInput{EndOfInput: true}}}},
		{"open", &pluginpb.Frame{Open: &pluginpb.Channel{JobId: "j", ToChain: 2}}},
		{"empty", &pluginpb.Frame{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := c.Marshal(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var want pluginpb.Frame
			if err := proto.Unmarshal(data.Materialize(), &want); err != nil {
				t.Fatal(err)
			}
			var raw rawFrame
			if err := c.Unmarshal(data, &raw); err != nil {
				t.Fatal(err)
			}
			data.Free()
			got, err := raw.decode()
			if err != nil {
				t.Fatal(err)
			}
			if got.open != (want.Open != nil) || !bytes.Equal(got.records, want.Records) ||
				got.count != want.Count || !proto.Equal(got.event, want.Event) {
				t.Errorf("decoded %+v, want %v", got, &want)
			}
			if want.Records == nil && got.records != nil {
				t.Errorf("records %q for a frame without a batch", got.records)
			}
			c.pool.Put(raw.buf)
		})
	}
	t.Run("unknown field", func(t *testing.T) {
		b := protowire.AppendTag(nil, 99, protowire.VarintType)
		b = protowire.AppendVarint(b, 5)
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, 8)
		raw := rawFrame{buf: &b}
		f, err := raw.decode()
		if err != nil || f.count != 8 {
			t.Errorf("decoded %+v, %v; want count 8", f, err)
		}
	})
	for _, bad := range [][]byte{
		{0x12, 0x05, 'a'},        // records longer than the frame
		{0x22, 0x02, 0x08, 0x80}, // truncated varint in the event
		{0xff},                   // truncated tag
	} {
		raw := rawFrame{buf: &bad}
		if f, err := raw.decode(); err == nil {
			t.Errorf("% x decoded to %+v", bad, f)
		}
	}
}

func TestBufPool(t *testing.T) {
	var p bufPool
	for _, n := range []int{0, 1, 255, 256, 257, 32 << 10, 32<<10 + 9, 1 << 20} {
		b := p.Get(n)
		if len(*b) != n {
			t.Errorf("Get(%d) has length %d", n, len(*b))
		}
		if c := cap(*b); c < n || c&(c-1) != 0 || c < 1<<minPoolExp {
			t.Errorf("Get(%d) has capacity %d, want a power of two of at least %d", n, c, max(n, 1<<minPoolExp))
		}
		p.Put(b)
	}
	odd := make([]byte, 100, 300)
	p.Put(&odd) // not from the pool: dropped
	p.Put(nil)
	var _ mem.BufferPool = &p
}
