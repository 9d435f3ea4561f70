package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
)

// BenchmarkCheckpointState measures checkpoints of about EDDY_STATE_MB
// megabytes of keyed state (default 16), built through the value state of
// a keyed operator's core (104-byte values that do not compress), on each
// backend: a first checkpoint, then a second after 1% of the keys changed.
// A checkpoint is written as the plugin's state writer writes it, to a
// file:// store: in memory, the key-group blobs in one state file; on
// Pebble, the new database files and the manifest. It reports, per
// checkpoint, the time on the task's goroutine (sync-ms), the whole
// duration (total-ms) and the bytes uploaded (upload-MB). On Pebble,
// compactions settle before each checkpoint (load-settle-ms,
// ckpt1-settle-ms; EDDY_STATE_SETTLE=0 skips it). Run it once:
//
//	EDDY_STATE_MB=1024 go test -run x -bench CheckpointState -benchtime 1x ./plugin-sdk/
func BenchmarkCheckpointState(b *testing.B) {
	mb := 16
	if s := os.Getenv("EDDY_STATE_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("EDDY_STATE_MB=%q: want a number of megabytes", s)
		}
		mb = n
	}
	const valueSize = 104
	keys := mb << 20 / valueSize
	for _, backend := range []string{"memory", "pebble"} {
		b.Run(backend, func(b *testing.B) {
			for range b.N {
				benchCheckpoints(b, backend, keys, valueSize)
			}
		})
	}
}

func benchCheckpoints(b *testing.B, backend string, keys, valueSize int) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "file://"+b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	kc, _ := codec.For[int64]()
	tc := &engine.TaskContext{JobName: "bench", MaxParallelism: DefaultMaxParallelism,
		KeyGroups: keygroup.Range{Start: 0, End: DefaultMaxParallelism}, Ctx: ctx}
	if backend == "pebble" {
		tc.Ctx = withStateBackend(ctx, PebbleStateBackend(PebbleDir(b.TempDir())))
	}
	core := newKeyedCore(tc, kc)
	if core.pbErr != nil {
		b.Fatal(core.pbErr)
	}
	if core.be.pb != nil {
		defer core.be.pb.close()
	}
	state := NewValueState[[]byte](core.runtime(), "v")
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, valueSize)
	write := func(k int) {
		for i := 0; i < len(val); i += 8 {
			binary.LittleEndian.PutUint64(val[i:], rng.Uint64())
		}
		if err := core.setKey(int64(k)); err != nil {
			b.Fatal(err)
		}
		state.Update(bytes.Clone(val))
	}
	start := time.Now()
	for k := range keys {
		write(k)
	}
	b.Logf("%s: %d keys written in %s", backend, keys, time.Since(start).Round(time.Millisecond))

	checkpoint := func(id uint64) {
		o := &pluginpb.OperatorSubtaskState{}
		start := time.Now()
		var snap *engine.OperatorSnapshot
		if core.be.pb == nil {
			groups, err := snapshotKeyed(core.be, core.timers)
			if err != nil {
				b.Fatal(err)
			}
			snap = &engine.OperatorSnapshot{KeyGroups: groups}
		} else {
			groups, err := snapshotGroups(core.be, core.timers, false)
			if err != nil {
				b.Fatal(err)
			}
			s, err := core.be.pb.snapshot(id)
			if err != nil {
				b.Fatal(err)
			}
			snap = &engine.OperatorSnapshot{KeyGroups: groups, Incremental: s}
		}
		sync := time.Since(start)
		file := encodeStateFile(snap, o)
		var uploaded int64
		if snap.Incremental != nil {
			m, _, n, err := snap.Incremental.Upload(ctx, st, fmt.Sprintf("shared/chk-%d", id))
			if err != nil {
				b.Fatal(err)
			}
			file = append(file, m...)
			uploaded = n
		}
		info, err := st.Put(ctx, fmt.Sprintf("chk-%d/v-0.state", id), bytes.NewReader(file))
		if err != nil {
			b.Fatal(err)
		}
		uploaded += info.Size
		total := time.Since(start)
		b.ReportMetric(float64(sync.Milliseconds()), fmt.Sprintf("ckpt%d-sync-ms", id))
		b.ReportMetric(float64(total.Milliseconds()), fmt.Sprintf("ckpt%d-total-ms", id))
		b.ReportMetric(float64(uploaded)/(1<<20), fmt.Sprintf("ckpt%d-upload-MB", id))
		b.Logf("%s checkpoint %d: sync %s, total %s, uploaded %.1f MB", backend, id,
			sync.Round(time.Millisecond), total.Round(time.Millisecond), float64(uploaded)/(1<<20))
		if core.be.pb != nil {
			core.be.pb.complete(id)
		}
	}
	// Before each checkpoint the LSM settles, as it would in a job that
	// has been running a while: a load of this size outruns compactions,
	// and the backlog (at 256 MB, some 50 MB of L0 files at the first
	// checkpoint) is compacted between the checkpoints, so the second one
	// would upload the compactions' output (a third of the state) rather
	// than the 1% change. EDDY_STATE_SETTLE=0 measures without settling.
	settle := func(what string) {
		if core.be.pb == nil || os.Getenv("EDDY_STATE_SETTLE") == "0" {
			return
		}
		if err := core.be.pb.flush(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		// Settled: no compaction has run, nor has the estimated debt
		// moved, for a second (ten samples in a row).
		_, last := core.be.pb.db.Compacting()
		for quiet := 0; quiet < 10; {
			if time.Since(start) > 5*time.Minute {
				b.Logf("%s: compactions still running after 5 minutes", what)
				break
			}
			time.Sleep(100 * time.Millisecond)
			running, debt := core.be.pb.db.Compacting()
			if running || debt != last {
				quiet = 0
			} else {
				quiet++
			}
			last = debt
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), what+"-settle-ms")
		b.Logf("%s: compactions settled in %s", what, time.Since(start).Round(time.Millisecond))
	}
	settle("load")
	checkpoint(1)
	settle("ckpt1")
	// 1% of the keys change, spread over the key space.
	for k := 0; k < keys; k += 100 {
		write(k)
	}
	checkpoint(2)
}
