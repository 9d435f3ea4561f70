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

	"github.com/cockroachdb/pebble/v2"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/engine"
	"github.com/eddy-streams/eddy/plugin-sdk/internal/keygroup"
	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
)

// BenchmarkCheckpointState measures checkpoints of about EDDY_STATE_MB
// megabytes of keyed state (default 16), built through the value state of
// a keyed operator's core (104-byte values that do not compress), on each
// backend: a first checkpoint, then a second after 1% of the keys changed,
// then EDDY_STATE_ROUNDS (default 3) more rounds of a 1% change and a
// checkpoint. A checkpoint is written as the plugin's state writer writes
// it, to a file:// store: in memory, the state frozen in the task's
// goroutine (copy-on-write) and its key-group blobs written after it, into
// one state file; on Pebble, the new database files and the manifest. It reports,
// per checkpoint, the time on the task's goroutine (sync-ms), the whole
// duration (total-ms) and the bytes uploaded (upload-MB); the second
// checkpoint's upload as a share of the first's (ckpt2-upload-%), and the
// mean of the later rounds' (rounds-upload-%). On Pebble, compactions
// settle before the first two checkpoints (load-settle-ms,
// ckpt1-settle-ms; EDDY_STATE_SETTLE=0 skips it), not in the later rounds.
// EDDY_STATE_TRACE=1 logs Pebble's flushes and compactions. Run it once:
//
//	EDDY_STATE_MB=1024 go test -run '^$' -bench CheckpointState -benchtime 1x ./plugin-sdk/
func BenchmarkCheckpointState(b *testing.B) {
	mb := envInt(b, "EDDY_STATE_MB", 16, 1, "a number of megabytes")
	rounds := envInt(b, "EDDY_STATE_ROUNDS", 3, 0, "a number of rounds")
	const valueSize = 104
	keys := mb << 20 / valueSize
	for _, backend := range []string{"memory", "pebble"} {
		b.Run(backend, func(b *testing.B) {
			for range b.N {
				benchCheckpoints(b, backend, keys, valueSize, rounds)
			}
		})
	}
}

func benchCheckpoints(b *testing.B, backend string, keys, valueSize, rounds int) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "file://"+b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	kc, _ := codec.For[int64]()
	tc := &engine.TaskContext{JobName: "bench", MaxParallelism: DefaultMaxParallelism,
		KeyGroups: keygroup.Range{Start: 0, End: DefaultMaxParallelism}, Ctx: ctx}
	if backend == "pebble" {
		opts := []PebbleOption{PebbleDir(b.TempDir())}
		if os.Getenv("EDDY_STATE_TRACE") == "1" {
			opts = append(opts, func(c *pebbleConfig) { c.opts.EventListener = traceEvents(b) })
		}
		tc.Ctx = withStateBackend(ctx, PebbleStateBackend(opts...))
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

	var stateMB float64 // what the first checkpoint uploaded: all of the state
	checkpoint := func(id uint64) float64 {
		o := &pluginpb.OperatorSubtaskState{}
		start := time.Now()
		var snap *engine.OperatorSnapshot
		if core.be.pb == nil {
			f, err := freezeKeyed(core.be, core.timers, false)
			if err != nil {
				b.Fatal(err)
			}
			snap = &engine.OperatorSnapshot{Deferred: f}
		} else {
			groups, err := snapshotTimers(core.be, core.timers)
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
		if snap.Deferred != nil {
			// Off the task's goroutine in a job.
			groups, err := snap.Deferred.KeyGroups()
			if err != nil {
				b.Fatal(err)
			}
			snap.KeyGroups, snap.Deferred = groups, nil
		}
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
		mb := float64(uploaded) / (1 << 20)
		if id == 1 {
			stateMB = mb
		}
		return mb
	}
	// Before the first checkpoint the LSM settles, as it would in a job
	// that has been running a while: a load of this size outruns
	// compactions, and the backlog (at 256 MB, some 50 MB of L0 files at
	// the first checkpoint) is compacted between the checkpoints, so the
	// second one would upload the compactions' output (a third of the
	// state) rather than the 1% change. The memtable is flushed first: the
	// first checkpoint's own flush of the load's last megabytes can tip
	// L0 over its compaction threshold, and the compactions it starts
	// (at 1 GB, up to 195 MB) would be uploaded by the second.
	// EDDY_STATE_SETTLE=0 measures without settling.
	settle := func(what string) {
		if core.be.pb == nil || os.Getenv("EDDY_STATE_SETTLE") == "0" {
			return
		}
		if err := core.be.pb.flush(); err != nil {
			b.Fatal(err)
		}
		if err := core.be.pb.db.Flush(); err != nil {
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
	b.Logf("%s: checkpoint 1", backend)
	checkpoint(1)
	settle("ckpt1")
	// 1% of the keys change, spread over the key space.
	change := func(round int) {
		b.Logf("%s: 1%% of the keys change", backend)
		for k := round % 100; k < keys; k += 100 {
			write(k)
		}
	}
	change(2)
	b.Logf("%s: checkpoint 2", backend)
	upload2 := checkpoint(2)
	b.ReportMetric(100*upload2/stateMB, "ckpt2-upload-%")
	// Then rounds as a running job has them: another 1% changes, and a
	// checkpoint, without waiting for compactions. What a checkpoint
	// uploads beyond the change is the output of the compactions since
	// the one before.
	var sum float64
	for r := range rounds {
		id := uint64(3 + r)
		change(int(id))
		sum += checkpoint(id)
	}
	if rounds > 0 {
		b.ReportMetric(100*sum/float64(rounds)/stateMB, "rounds-upload-%")
		b.Logf("%s: %d more rounds of a 1%% change uploaded %.2f%% of the state per checkpoint", backend, rounds, 100*sum/float64(rounds)/stateMB)
	}
}

// traceEvents logs Pebble's flushes and compactions (EDDY_STATE_TRACE=1),
// to tell which of a checkpoint's uploaded files a flush wrote and which a
// compaction.
func traceEvents(b *testing.B) *pebble.EventListener {
	return &pebble.EventListener{
		FlushEnd: func(info pebble.FlushInfo) { b.Logf("pebble: %s", info) },
		CompactionEnd: func(info pebble.CompactionInfo) {
			b.Logf("pebble: %s", info)
		},
	}
}

// envInt returns the number in the environment variable name, def when it
// is unset; anything but a number of at least least fails the benchmark.
func envInt(b *testing.B, name string, def, least int, want string) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		b.Fatalf("%s=%q: want %s", name, s, want)
	}
	return n
}
