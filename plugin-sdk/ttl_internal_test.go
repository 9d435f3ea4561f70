package sdk

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
)

// TestSweepRemovesExpiredStateOfIdleKeys: keys that are never read or
// written again lose their expired state to the background sweep, and
// states without a time to live keep theirs.
func TestSweepRemovesExpiredStateOfIdleKeys(t *testing.T) {
	const maxP = 8
	be := newKeyedBackend(keygroup.For(0, maxP, 1))
	ctx := rtContext{tc: &engine.TaskContext{}, be: be}
	short := NewValueState[int](ctx, "short", WithTTL(10*time.Millisecond)).(*valueState[int])
	forever := NewValueState[int](ctx, "forever").(*valueState[int])
	var buf []byte
	for i := range 200 {
		buf = binary.AppendUvarint(buf[:0], uint64(i))
		h := keygroup.Hash(buf)
		be.setKey(buf, h, keygroup.OfHash(h, maxP))
		short.Update(i)
		forever.Update(i)
	}
	count := func(t tables[int]) int {
		n := 0
		for _, tab := range t.t {
			n += tab.n
		}
		return n
	}
	if count(short.t) != 200 || count(forever.t) != 200 {
		t.Fatalf("before expiry: %d and %d entries", count(short.t), count(forever.t))
	}
	time.Sleep(20 * time.Millisecond)
	for range maxP {
		be.sweep()
	}
	if n := count(short.t); n != 0 {
		t.Fatalf("%d expired entries survived a full sweep", n)
	}
	if n := count(forever.t); n != 200 {
		t.Fatalf("the sweep removed %d entries without a time to live", 200-n)
	}
}
