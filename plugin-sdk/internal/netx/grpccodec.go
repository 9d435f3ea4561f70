package netx

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/pluginpb"
)

// wireCodec is the gRPC codec of the Exchange service on both ends. It is
// protobuf, wire compatible with gRPC's own ("proto"), with two changes that
// matter for batches of BatchSize bytes:
//
//   - Its buffers come from a pool of power-of-two sizes that it does not
//     zero. gRPC's default pool has no size between 32 KiB and 1 MiB and
//     zeroes what it hands out, so every frame of a full batch (a little
//     over 32 KiB) cost two 1 MiB memclrs, one on each end.
//   - A consumer receives frames as *rawFrame: the message is copied once
//     out of gRPC's read buffers into a pooled buffer, and the batch handed
//     to the task is a slice of it, returned to the pool when the task is
//     done with it, instead of protobuf copying the records a second time
//     into a fresh allocation.
type wireCodec struct{ pool *bufPool }

func (wireCodec) Name() string { return "proto" }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("marshal %T: not a protobuf message", v)
	}
	size := proto.Size(m)
	// UseCachedSize reuses the Size just computed.
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	buf := c.pool.Get(size)
	b, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawFrame); ok {
		r.buf = c.pool.Get(data.Len())
		data.CopyTo(*r.buf)
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("unmarshal %T: not a protobuf message", v)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// rawFrame is a pluginpb.Frame as received, still encoded, in a buffer of
// the codec's pool.
type rawFrame struct {
	buf *[]byte
}

// frame is a decoded rawFrame; records is a slice of the raw buffer.
type frame struct {
	open    bool
	records []byte
	count   uint32
	event   *pluginpb.Event
}

// decode parses the frame the way proto.Unmarshal would parse a
// pluginpb.Frame, without copying the records.
func (r *rawFrame) decode() (frame, error) {
	var f frame
	b := *r.buf
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return f, fmt.Errorf("decode frame: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			f.open = true
			n = protowire.ConsumeFieldValue(num, typ, b)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			f.records = v[:len(v):len(v)]
		case num == 3 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			f.count = uint32(v)
		case num == 4 && typ == protowire.BytesType:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 {
				f.event = new(pluginpb.Event)
				if err := proto.Unmarshal(v, f.event); err != nil {
					return f, fmt.Errorf("decode frame event: %w", err)
				}
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return f, fmt.Errorf("decode frame field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if len(f.records) == 0 {
		f.records = nil
	}
	return f, nil
}

// bufPool is a mem.BufferPool of power-of-two sizes from minPooled up to
// maxPooled bytes, which hands out buffers without zeroing them: every user
// in gRPC and in this package overwrites what it reads.
type bufPool struct {
	tiers [maxPoolExp + 1]sync.Pool
}

const (
	minPoolExp = 8  // 256 bytes
	maxPoolExp = 27 // 128 MiB, above the largest MaxMessageSize worth pooling
)

var _ mem.BufferPool = (*bufPool)(nil)

func (p *bufPool) Get(n int) *[]byte {
	exp := max(bits.Len(uint(max(n, 1)-1)), minPoolExp)
	if exp > maxPoolExp {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[exp].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<exp)
	return &b
}

func (p *bufPool) Put(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)
	exp := bits.Len(uint(c)) - 1
	if c == 0 || c != 1<<exp || exp < minPoolExp || exp > maxPoolExp {
		return // not one of ours
	}
	p.tiers[exp].Put(b)
}
