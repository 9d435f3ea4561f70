package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	buf      bytes.Buffer
	writeErr error // returned by every Write when set
	closed   bool
	canceled bool
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	return s.buf.Write(p)
}

func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

// readCloser records whether Restore closed it.
type readCloser struct {
	io.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

// persist takes a snapshot of f and returns its bytes.
func persist(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("sink closed %v, canceled %v; want closed and not canceled", sink.closed, sink.canceled)
	}
	return sink.buf.Bytes()
}

// restore restores b into f and checks that Restore closed the reader.
func restore(t *testing.T, f *fsm.FSM, b []byte) error {
	t.Helper()
	rc := &readCloser{Reader: bytes.NewReader(b)}
	err := f.Restore(rc)
	if !rc.closed {
		t.Error("Restore did not close its reader")
	}
	return err
}

// rich returns an FSM whose state uses every kind of object and most fields.
func rich(t *testing.T) *fsm.FSM {
	t.Helper()
	f, next := seeded(t)
	applyAll(t, f, next,
		upsertMember(&eddypb.Member{Id: "n0", RaftAddr: "n0:1"}),
		submitJob("j0", 300), // created last, sorts first by id
		jobStatus("j2", eddypb.JobStatus_JOB_STATUS_CREATED, 301),
		registerWorker("w3", "w3-a", 4, 302),
		assignSlots("j0", 303, slot("j0", "w3", 3), slot("j0", "w3", 1)),
		workerStatus("w3", "w3-a", eddypb.WorkerStatus_WORKER_STATUS_LOST, 304),
		triggerCheckpoint(checkpoint("j3", 3)),
		completeCheckpoint(checkpoint("j3", 3), 2),
		triggerCheckpoint(checkpoint("j3", 4)),
		failCheckpoint("j3", 4, "task x declined", 45),
		discardCheckpoint("j3", 2, "unreadable"),
		triggerCheckpoint(checkpoint("j3", 5)),
		completeCheckpoint(checkpoint("j3", 5), 2),
		triggerCheckpoint(checkpoint("j3", 6)), // in progress
		jobStatus("j0", eddypb.JobStatus_JOB_STATUS_RUNNING, 305),
		triggerCheckpoint(checkpoint("j0", 1)),
		completeCheckpoint(checkpoint("j0", 1), 0),
	)
	return f
}

func TestSnapshotRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		fsm  func(t *testing.T) *fsm.FSM
	}{
		{"empty", func(*testing.T) *fsm.FSM { return fsm.New() }},
		{"seeded", func(t *testing.T) *fsm.FSM { f, _ := seeded(t); return f }},
		{"rich", rich},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.fsm(t)
			want := capture(src.State())

			dst := fsm.New()
			if err := restore(t, dst, persist(t, src)); err != nil {
				t.Fatalf("restore: %v", err)
			}
			assertView(t, want, capture(dst.State()))
		})
	}
}

func TestRestoreReplacesState(t *testing.T) {
	src := rich(t)
	want := capture(src.State())
	b := persist(t, src)

	dst := fsm.New()
	applyAll(t, dst, 1,
		initCluster("other"),
		submitJob("stale", 1),
		registerWorker("w9", "x", 8, 1),
		assignSlots("stale", 1, slot("stale", "w9", 0)),
		jobStatus("stale", eddypb.JobStatus_JOB_STATUS_RUNNING, 1),
		triggerCheckpoint(checkpoint("stale", 1)),
		completeCheckpoint(checkpoint("stale", 1), 0),
	)
	changed := dst.Changed()
	if err := restore(t, dst, b); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertView(t, want, capture(dst.State()))
	if _, ok := dst.State().Job("stale"); ok {
		t.Error("job of the replaced state survived Restore")
	}
	select {
	case <-changed:
	default:
		t.Error("Changed() not closed by Restore")
	}
}

// A restored FSM goes on applying commands exactly like the one it was
// taken from.
func TestRestoredStateAppliesLikeTheOriginal(t *testing.T) {
	src := rich(t)
	next := src.State().Index() + 1
	dst := fsm.New()
	if err := restore(t, dst, persist(t, src)); err != nil {
		t.Fatalf("restore: %v", err)
	}

	cmds := []struct {
		cmd     command
		wantErr error
	}{
		{submitJob("j1", 1), controlplane.ErrJobExists},
		{initCluster("c2"), controlplane.ErrOtherCluster},
		{assignSlots("j2", 400, slot("j2", "w1", 0)), fsm.ErrSlotTaken},
		{assignSlots("j2", 400, slot("j2", "w1", 2)), nil},
		{registerWorker("w1", "w1-b", 3, 401), nil},
		{jobStatus("j1", eddypb.JobStatus_JOB_STATUS_FAILED, 402), nil},
		{completeCheckpoint(checkpoint("j3", 6), 2), nil},
		{triggerCheckpoint(checkpoint("j3", 7)), nil},
		{triggerCheckpoint(checkpoint("j3", 8)), fsm.ErrCheckpointMismatch},
		{workerStatus("w2", "stale", eddypb.WorkerStatus_WORKER_STATUS_LOST, 403), nil},
	}
	for i, c := range cmds {
		index := next + uint64(i)
		a := apply(t, src, index, c.cmd.typ, c.cmd.msg)
		b := apply(t, dst, index, c.cmd.typ, c.cmd.msg)
		checkErr(t, a.Err, c.wantErr)
		checkErr(t, b.Err, c.wantErr)
		if fmt.Sprint(a.Err) != fmt.Sprint(b.Err) {
			t.Errorf("%s at %d: original returned %v, restored %v", c.cmd.typ, index, a.Err, b.Err)
		}
	}
	assertView(t, capture(src.State()), capture(dst.State()))
	if w := worker(t, dst.State(), "w1"); w.CreateIndex != 8 {
		t.Errorf("re-registered restored worker has create index %d, want 8", w.CreateIndex)
	}
}

// A snapshot is the state at the time Snapshot was called, however late it
// is persisted.
func TestSnapshotIsPointInTime(t *testing.T) {
	f, next := seeded(t)
	want := capture(f.State())
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	applyAll(t, f, next,
		submitJob("late", 1),
		jobStatus("j1", eddypb.JobStatus_JOB_STATUS_CANCELED, 2),
		triggerCheckpoint(checkpoint("j3", 3)),
		completeCheckpoint(checkpoint("j3", 3), 1),
	)

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	dst := fsm.New()
	if err := restore(t, dst, sink.buf.Bytes()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertView(t, want, capture(dst.State()))
}

func TestPersistCancelsOnWriteError(t *testing.T) {
	f := rich(t)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	errDisk := errors.New("disk full")
	sink := &memSink{writeErr: errDisk}
	err = snap.Persist(sink)
	if !errors.Is(err, errDisk) {
		t.Errorf("Persist() = %v, want it to wrap %v", err, errDisk)
	}
	if !sink.canceled || sink.closed {
		t.Errorf("sink canceled %v, closed %v; want canceled and not closed", sink.canceled, sink.closed)
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	valid := persist(t, rich(t))
	if !bytes.HasPrefix(valid, []byte(fsm.SnapshotMagic)) {
		t.Fatalf("snapshot does not start with the magic: %q", valid[:min(len(valid), 16)])
	}
	if valid[len(valid)-1] != fsm.RecordEnd {
		t.Fatalf("snapshot does not end with the end record: %x", valid[len(valid)-1])
	}
	// header returns a valid header for a state at index 5, then records.
	header := func(records ...byte) []byte {
		b := []byte(fsm.SnapshotMagic)
		b = binary.BigEndian.AppendUint32(b, fsm.SnapshotVersion)
		b = binary.BigEndian.AppendUint64(b, 5)
		return append(b, records...)
	}
	withVersion := func(v uint32) []byte {
		b := bytes.Clone(valid)
		binary.BigEndian.PutUint32(b[len(fsm.SnapshotMagic):], v)
		return b
	}
	wrongMagic := bytes.Clone(valid)
	wrongMagic[0] ^= 0xff

	tests := []struct {
		name string
		data []byte
		want string // part of the error message
	}{
		{"empty", nil, "read header"},
		{"garbage", []byte(strings.Repeat("this is not a snapshot ", 10)), "not an eddy fsm snapshot"},
		{"short header", valid[:fsm.SnapshotHeaderLen-1], "read header"},
		{"wrong magic", wrongMagic, "not an eddy fsm snapshot"},
		{"version zero", withVersion(0), "version 0"},
		{"newer version", withVersion(fsm.SnapshotVersion + 1), "version 2"},
		{"header only", valid[:fsm.SnapshotHeaderLen], "read record"},
		{"no end record", valid[:len(valid)-1], "read record"},
		{"truncated record", valid[:len(valid)/2], "read record"},
		{"truncated length", header(fsm.RecordJob, 0x80), "read record length"},
		{"unknown record type", header(99, 0, fsm.RecordEnd), "unknown snapshot record type 99"},
		{"undecodable record", header(fsm.RecordJob, 1, 0xff, fsm.RecordEnd), "restore snapshot"},
	}
	// An empty snapshot made by header is valid: the cases above fail for
	// the reason their name gives.
	if err := restore(t, fsm.New(), header(fsm.RecordEnd)); err != nil {
		t.Fatalf("restore of an empty snapshot: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := seeded(t)
			before := capture(f.State())
			err := restore(t, f, tt.data)
			if err == nil {
				t.Fatal("Restore succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "restore snapshot: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to start with %q and contain %q", err, "restore snapshot: ", tt.want)
			}
			assertView(t, before, capture(f.State()))
		})
	}
}

// A snapshot written before checkpoints had their own bookkeeping holds
// bare checkpoint records (record type 6): they restore as the retained
// checkpoints of their job, and ids go on after the highest.
func TestRestoreReadsBareCheckpointRecords(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("EDDYFSM\x00")
	b.Write([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9})
	put := func(typ byte, m proto.Message) {
		p, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteByte(typ)
		b.Write(binary.AppendUvarint(nil, uint64(len(p))))
		b.Write(p)
	}
	put(3, &eddypb.Job{Spec: spec("old"), Status: eddypb.JobStatus_JOB_STATUS_RUNNING})
	put(6, &eddypb.CheckpointRecord{JobId: "old", CheckpointId: 4, Url: "file:///c/old/chk-4", SizeBytes: 10})
	put(6, &eddypb.CheckpointRecord{JobId: "old", CheckpointId: 5, Url: "file:///c/old/chk-5", SizeBytes: 11})
	b.WriteByte(0)
	f := fsm.New()
	if err := restore(t, f, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	got := f.State().Checkpoints("old")
	if len(got) != 2 || got[0].CheckpointId != 4 || got[1].CheckpointId != 5 || got[1].Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
		t.Fatalf("restored checkpoints %v", got)
	}
	mustApply(t, f, 10, fsm.CmdTriggerCheckpoint, &eddypb.TriggerCheckpointCommand{JobId: "old", Url: "file:///c/old"})
	if p := f.State().CheckpointStats("old").GetInProgress(); p.GetCheckpointId() != 6 {
		t.Errorf("next checkpoint %v, want id 6", p)
	}
	// Written back, it uses the new record and reads the same.
	dst := fsm.New()
	if err := restore(t, dst, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	assertView(t, capture(f.State()), capture(dst.State()))
}
