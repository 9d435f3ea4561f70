package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/controlplane/fsm"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// ---- helpers ----

// apply encodes cmd as a command of type ct, applies it at index and returns
// the response. It fails the test if Apply does not return a *fsm.Response
// for that index.
func apply(t *testing.T, f *fsm.FSM, index uint64, ct fsm.CommandType, cmd proto.Message) *fsm.Response {
	t.Helper()
	data, err := fsm.Encode(ct, cmd)
	if err != nil {
		t.Fatalf("encode %s: %v", ct, err)
	}
	out := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data})
	resp, ok := out.(*fsm.Response)
	if !ok {
		t.Fatalf("apply %s at %d returned %T, want *fsm.Response", ct, index, out)
	}
	if resp.Index != index {
		t.Fatalf("apply %s at %d: response index %d", ct, index, resp.Index)
	}
	return resp
}

// mustApply applies a command that must succeed.
func mustApply(t *testing.T, f *fsm.FSM, index uint64, ct fsm.CommandType, cmd proto.Message) {
	t.Helper()
	if resp := apply(t, f, index, ct, cmd); resp.Err != nil {
		t.Fatalf("apply %s at %d: %v", ct, index, resp.Err)
	}
}

// command is one command of a test scenario.
type command struct {
	typ fsm.CommandType
	msg proto.Message
}

// applyAll applies cmds at consecutive indexes from first; every one must
// succeed. It returns the next free index.
func applyAll(t *testing.T, f *fsm.FSM, first uint64, cmds ...command) uint64 {
	t.Helper()
	for i, c := range cmds {
		mustApply(t, f, first+uint64(i), c.typ, c.msg)
	}
	return first + uint64(len(cmds))
}

func initCluster(id string) command {
	return command{fsm.CmdInitCluster, &eddypb.InitClusterCommand{ClusterId: id, CreatedAtMs: 1}}
}

func member(id string) *eddypb.Member {
	return &eddypb.Member{Id: id, RaftAddr: id + ":7000", GrpcAddr: id + ":7001", HttpAddr: id + ":7002"}
}

func upsertMember(m *eddypb.Member) command {
	return command{fsm.CmdUpsertMember, &eddypb.UpsertMemberCommand{Member: m}}
}

func removeMember(id string) command {
	return command{fsm.CmdRemoveMember, &eddypb.RemoveMemberCommand{NodeId: id}}
}

func spec(id string) *eddypb.JobSpec {
	return &eddypb.JobSpec{
		JobId:          id,
		Name:           "job " + id,
		Artifact:       &eddypb.ArtifactRef{Sha256: "abc", Url: "s3://bucket/" + id, Size: 42},
		Parallelism:    2,
		MaxParallelism: 8,
		Graph:          []byte{1, 2, 3},
		Args:           []string{"--in", "topic"},
		Config:         map[string]string{"k": "v", "x": "y"},
	}
}

func submitJob(id string, atMs int64) command {
	return command{fsm.CmdSubmitJob, &eddypb.SubmitJobCommand{Spec: spec(id), AtMs: atMs}}
}

func jobStatus(id string, st eddypb.JobStatus, atMs int64, expected ...eddypb.JobStatus) command {
	return command{fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
		JobId: id, Status: st, Reason: "reason " + st.String(), AtMs: atMs, Expected: expected,
	}}
}

func registerWorker(id, instance string, slots uint32, atMs int64) command {
	return command{fsm.CmdRegisterWorker, &eddypb.RegisterWorkerCommand{
		Worker: &eddypb.Worker{Id: id, Address: id + ":9000", Slots: slots, InstanceId: instance},
		AtMs:   atMs,
	}}
}

func workerStatus(id, instance string, st eddypb.WorkerStatus, atMs int64) command {
	return command{fsm.CmdUpdateWorkerStatus, &eddypb.UpdateWorkerStatusCommand{
		WorkerId: id, Status: st, InstanceId: instance, AtMs: atMs,
	}}
}

func slot(job, worker string, n uint32) *eddypb.SlotAssignment {
	return &eddypb.SlotAssignment{JobId: job, WorkerId: worker, Slot: n, Task: fmt.Sprintf("task-%s-%d", worker, n), Attempt: 1}
}

func assignSlots(job string, atMs int64, as ...*eddypb.SlotAssignment) command {
	return command{fsm.CmdAssignSlots, &eddypb.AssignSlotsCommand{JobId: job, Assignments: as, AtMs: atMs}}
}

func releaseSlots(job string) command {
	return command{fsm.CmdReleaseSlots, &eddypb.ReleaseSlotsCommand{JobId: job, AtMs: 1}}
}

// checkpoint is the record of a job's checkpoint id (of attempt 0) after
// triggerCheckpoint and completeCheckpoint of it.
func checkpoint(job string, id uint64) *eddypb.CheckpointRecord {
	return &eddypb.CheckpointRecord{
		JobId: job, CheckpointId: id, Url: fmt.Sprintf("s3://cp/%s/chk-%d", job, id),
		SizeBytes: int64(id) * 100, TriggeredAtMs: int64(id) * 10, CompletedAtMs: int64(id)*10 + 5,
		Status: eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED, Attempt: 0, DurationMs: 5,
	}
}

// triggerCheckpoint starts cp (which must be the job's next id).
func triggerCheckpoint(cp *eddypb.CheckpointRecord) command {
	return command{fsm.CmdTriggerCheckpoint, &eddypb.TriggerCheckpointCommand{
		JobId: cp.JobId, Attempt: cp.Attempt, AtMs: cp.TriggeredAtMs, Url: "s3://cp/" + cp.JobId, Manual: cp.Manual,
	}}
}

// completeCheckpoint completes cp, which must be in progress.
func completeCheckpoint(cp *eddypb.CheckpointRecord, retain uint32) command {
	return command{fsm.CmdCompleteCheckpoint, &eddypb.CompleteCheckpointCommand{Checkpoint: &eddypb.CheckpointRecord{
		JobId: cp.JobId, CheckpointId: cp.CheckpointId, Attempt: cp.Attempt, SizeBytes: cp.SizeBytes, CompletedAtMs: cp.CompletedAtMs,
	}, Retain: retain}}
}

func failCheckpoint(job string, id uint64, failure string, atMs int64) command {
	return command{fsm.CmdFailCheckpoint, &eddypb.FailCheckpointCommand{JobId: job, CheckpointId: id, Failure: failure, AtMs: atMs}}
}

func discardCheckpoint(job string, id uint64, reason string) command {
	return command{fsm.CmdDiscardCheckpoint, &eddypb.DiscardCheckpointCommand{JobId: job, CheckpointId: id, Reason: reason, AtMs: 1}}
}

func restartJob(job string, attempt uint64, reason string, atMs int64) command {
	return command{fsm.CmdRestartJob, &eddypb.RestartJobCommand{JobId: job, Attempt: attempt, Reason: reason, AtMs: atMs}}
}

// seeded returns an FSM with a cluster, two members, four jobs, two workers,
// slot assignments and checkpoints, and the next free index:
//
//	j1 SCHEDULED on w1/0 and w1/1
//	j2 CREATED
//	j3 RUNNING on w2/0, two checkpoints
//	j4 FINISHED
//	w1 alive, 3 slots, instance w1-a
//	w2 alive, 2 slots, instance w2-a
func seeded(t *testing.T) (*fsm.FSM, uint64) {
	t.Helper()
	f := fsm.New()
	next := applyAll(t, f, 1,
		initCluster("c1"),
		upsertMember(member("n1")),
		upsertMember(member("n2")),
		submitJob("j1", 100),
		submitJob("j2", 101),
		submitJob("j3", 102),
		submitJob("j4", 103),
		registerWorker("w1", "w1-a", 3, 110),
		registerWorker("w2", "w2-a", 2, 111),
		assignSlots("j1", 120, slot("j1", "w1", 0), slot("j1", "w1", 1)),
		assignSlots("j3", 121, slot("j3", "w2", 0)),
		jobStatus("j3", eddypb.JobStatus_JOB_STATUS_RUNNING, 122),
		jobStatus("j4", eddypb.JobStatus_JOB_STATUS_FINISHED, 123),
		triggerCheckpoint(checkpoint("j3", 1)),
		completeCheckpoint(checkpoint("j3", 1), 0),
		triggerCheckpoint(checkpoint("j3", 2)),
		completeCheckpoint(checkpoint("j3", 2), 0),
	)
	return f, next
}

// view is a deep copy of everything a State exposes, so that it can be
// compared with a later view even if the state were modified in place.
type view struct {
	clusterID   string
	index       uint64
	freeSlots   int
	members     []*eddypb.Member
	jobs        []*eddypb.Job
	workers     []*eddypb.Worker
	all         []*eddypb.SlotAssignment
	assignments map[string][]*eddypb.SlotAssignment
	checkpoints map[string][]*eddypb.CheckpointRecord
	cpStats     map[string][]*eddypb.JobCheckpoints
}

func cloneAll[M proto.Message](ms []M) []M {
	out := make([]M, len(ms))
	for i, m := range ms {
		out[i] = proto.CloneOf(m)
	}
	return out
}

func capture(s *fsm.State) view {
	v := view{
		clusterID:   s.ClusterID(),
		index:       s.Index(),
		freeSlots:   s.FreeSlots(),
		members:     cloneAll(s.Members()),
		jobs:        cloneAll(s.Jobs()),
		workers:     cloneAll(s.Workers()),
		all:         cloneAll(s.AllAssignments()),
		assignments: map[string][]*eddypb.SlotAssignment{},
		checkpoints: map[string][]*eddypb.CheckpointRecord{},
		cpStats:     map[string][]*eddypb.JobCheckpoints{},
	}
	for _, j := range s.Jobs() {
		id := j.GetSpec().GetJobId()
		if as := s.Assignments(controlplane.JobID(id)); len(as) > 0 {
			v.assignments[id] = cloneAll(as)
		}
		if cps := s.Checkpoints(controlplane.JobID(id)); len(cps) > 0 {
			v.checkpoints[id] = cloneAll(cps)
		}
		if st := s.CheckpointStats(controlplane.JobID(id)); st != nil {
			v.cpStats[id] = []*eddypb.JobCheckpoints{proto.CloneOf(st)}
		}
	}
	return v
}

func equalMessages[M proto.Message](a, b []M) bool {
	return slices.EqualFunc(a, b, func(x, y M) bool { return proto.Equal(x, y) })
}

func equalMessageMaps[M proto.Message](a, b map[string][]M) bool {
	return maps.EqualFunc(a, b, equalMessages[M])
}

// diff describes how got differs from want, one line per difference.
func diff(want, got view) []string {
	var d []string
	if want.clusterID != got.clusterID {
		d = append(d, fmt.Sprintf("cluster id: want %q, got %q", want.clusterID, got.clusterID))
	}
	if want.index != got.index {
		d = append(d, fmt.Sprintf("index: want %d, got %d", want.index, got.index))
	}
	if want.freeSlots != got.freeSlots {
		d = append(d, fmt.Sprintf("free slots: want %d, got %d", want.freeSlots, got.freeSlots))
	}
	if !equalMessages(want.members, got.members) {
		d = append(d, fmt.Sprintf("members:\nwant %v\ngot  %v", want.members, got.members))
	}
	if !equalMessages(want.jobs, got.jobs) {
		d = append(d, fmt.Sprintf("jobs:\nwant %v\ngot  %v", want.jobs, got.jobs))
	}
	if !equalMessages(want.workers, got.workers) {
		d = append(d, fmt.Sprintf("workers:\nwant %v\ngot  %v", want.workers, got.workers))
	}
	if !equalMessages(want.all, got.all) {
		d = append(d, fmt.Sprintf("all assignments:\nwant %v\ngot  %v", want.all, got.all))
	}
	if !equalMessageMaps(want.assignments, got.assignments) {
		d = append(d, fmt.Sprintf("assignments by job:\nwant %v\ngot  %v", want.assignments, got.assignments))
	}
	if !equalMessageMaps(want.checkpoints, got.checkpoints) {
		d = append(d, fmt.Sprintf("checkpoints:\nwant %v\ngot  %v", want.checkpoints, got.checkpoints))
	}
	if !equalMessageMaps(want.cpStats, got.cpStats) {
		d = append(d, fmt.Sprintf("checkpoint stats:\nwant %v\ngot  %v", want.cpStats, got.cpStats))
	}
	return d
}

// assertView fails the test if got differs from want.
func assertView(t *testing.T, want, got view) {
	t.Helper()
	for _, d := range diff(want, got) {
		t.Error(d)
	}
}

// assertOnlyIndexChanged fails the test unless s equals before in everything
// but its index, which must be index.
func assertOnlyIndexChanged(t *testing.T, before view, s *fsm.State, index uint64) {
	t.Helper()
	want := before
	want.index = index
	assertView(t, want, capture(s))
}

func job(t *testing.T, s *fsm.State, id string) *eddypb.Job {
	t.Helper()
	j, ok := s.Job(controlplane.JobID(id))
	if !ok {
		t.Fatalf("job %s not found", id)
	}
	return j
}

func worker(t *testing.T, s *fsm.State, id string) *eddypb.Worker {
	t.Helper()
	w, ok := s.Worker(controlplane.WorkerID(id))
	if !ok {
		t.Fatalf("worker %s not found", id)
	}
	return w
}

func checkErr(t *testing.T, got, want error) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Fatalf("unexpected error: %v", got)
	case want != nil && !errors.Is(got, want):
		t.Fatalf("error = %v, want %v", got, want)
	}
}

// panicMessage runs fn and returns the value it panicked with, formatted,
// and whether it panicked.
func panicMessage(fn func()) (msg string, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			msg, panicked = fmt.Sprint(r), true
		}
	}()
	fn()
	return "", false
}

// ---- commands ----

func TestCommandTypeString(t *testing.T) {
	tests := []struct {
		typ  fsm.CommandType
		want string
	}{
		{fsm.CmdInitCluster, "init_cluster"},
		{fsm.CmdUpsertMember, "upsert_member"},
		{fsm.CmdRemoveMember, "remove_member"},
		{fsm.CmdSubmitJob, "submit_job"},
		{fsm.CmdUpdateJobStatus, "update_job_status"},
		{fsm.CmdRegisterWorker, "register_worker"},
		{fsm.CmdUpdateWorkerStatus, "update_worker_status"},
		{fsm.CmdAssignSlots, "assign_slots"},
		{fsm.CmdReleaseSlots, "release_slots"},
		{fsm.CmdCompleteCheckpoint, "complete_checkpoint"},
		{fsm.CmdTriggerCheckpoint, "trigger_checkpoint"},
		{fsm.CmdFailCheckpoint, "fail_checkpoint"},
		{fsm.CmdDiscardCheckpoint, "discard_checkpoint"},
		{fsm.CmdRestartJob, "restart_job"},
		{0, "command(0)"},
		{42, "command(42)"},
	}
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.want {
			t.Errorf("CommandType(%d).String() = %q, want %q", uint8(tt.typ), got, tt.want)
		}
	}
}

// The command numbers are a wire format shared with logs on disk.
func TestCommandNumbersAreStable(t *testing.T) {
	want := map[fsm.CommandType]uint8{
		fsm.CmdInitCluster:        1,
		fsm.CmdUpsertMember:       2,
		fsm.CmdRemoveMember:       3,
		fsm.CmdSubmitJob:          4,
		fsm.CmdUpdateJobStatus:    5,
		fsm.CmdRegisterWorker:     6,
		fsm.CmdUpdateWorkerStatus: 7,
		fsm.CmdAssignSlots:        8,
		fsm.CmdReleaseSlots:       9,
		fsm.CmdCompleteCheckpoint: 10,
		fsm.CmdUpdateTasks:        11,
		fsm.CmdStartAttempt:       12,
		fsm.CmdTriggerCheckpoint:  13,
		fsm.CmdFailCheckpoint:     14,
		fsm.CmdDiscardCheckpoint:  15,
		fsm.CmdRestartJob:         16,
	}
	for typ, n := range want {
		if uint8(typ) != n {
			t.Errorf("%s = %d, want %d", typ, uint8(typ), n)
		}
	}
}

func TestEncode(t *testing.T) {
	cmd := &eddypb.SubmitJobCommand{Spec: spec("j1"), AtMs: 7}
	b, err := fsm.Encode(fsm.CmdSubmitJob, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || fsm.CommandType(b[0]) != fsm.CmdSubmitJob {
		t.Fatalf("encoded command starts with %v, want type byte %d", b[:min(len(b), 1)], fsm.CmdSubmitJob)
	}
	var got eddypb.SubmitJobCommand
	if err := proto.Unmarshal(b[1:], &got); err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	if !proto.Equal(&got, cmd) {
		t.Errorf("payload = %v, want %v", &got, cmd)
	}

	// proto3 strings must be valid UTF-8, so this payload cannot be marshalled.
	_, err = fsm.Encode(fsm.CmdRemoveMember, &eddypb.RemoveMemberCommand{NodeId: "\xff"})
	if err == nil || !strings.HasPrefix(err.Error(), "encode remove_member: ") {
		t.Errorf("Encode(invalid utf-8) error = %v, want one starting with %q", err, "encode remove_member: ")
	}
}

func TestInitCluster(t *testing.T) {
	tests := []struct {
		name    string
		before  []command
		id      string
		wantErr error
		wantID  string
	}{
		{name: "bootstrap", id: "c1", wantID: "c1"},
		{name: "same id again", before: []command{initCluster("c1")}, id: "c1", wantID: "c1"},
		{name: "other id", before: []command{initCluster("c1")}, id: "c2", wantErr: controlplane.ErrOtherCluster, wantID: "c1"},
		{name: "empty id", id: "", wantErr: controlplane.ErrInvalidArgument, wantID: ""},
		{name: "empty id after bootstrap", before: []command{initCluster("c1")}, id: "", wantErr: controlplane.ErrInvalidArgument, wantID: "c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			next := applyAll(t, f, 1, tt.before...)
			resp := apply(t, f, next, fsm.CmdInitCluster, initCluster(tt.id).msg)
			checkErr(t, resp.Err, tt.wantErr)
			s := f.State()
			if got := s.ClusterID(); got != tt.wantID {
				t.Errorf("ClusterID() = %q, want %q", got, tt.wantID)
			}
			if s.Index() != next {
				t.Errorf("Index() = %d, want %d", s.Index(), next)
			}
		})
	}
}

func TestUpsertMember(t *testing.T) {
	f := fsm.New()
	n2, n1 := member("n2"), member("n1")
	applyAll(t, f, 1, upsertMember(n2), upsertMember(n1))

	s := f.State()
	if got := s.Members(); !equalMessages(got, []*eddypb.Member{n1, n2}) {
		t.Fatalf("Members() = %v, want n1, n2 sorted by id", got)
	}
	if m, ok := s.Member("n2"); !ok || !proto.Equal(m, n2) {
		t.Errorf("Member(n2) = %v, %v; want %v", m, ok, n2)
	}
	if _, ok := s.Member("n3"); ok {
		t.Error("Member(n3) found, want not found")
	}

	t.Run("replaces existing member", func(t *testing.T) {
		moved := &eddypb.Member{Id: "n1", RaftAddr: "new:7000", GrpcAddr: "new:7001", HttpAddr: "new:7002"}
		mustApply(t, f, 3, fsm.CmdUpsertMember, &eddypb.UpsertMemberCommand{Member: moved})
		s := f.State()
		if m, _ := s.Member("n1"); !proto.Equal(m, moved) {
			t.Errorf("Member(n1) = %v, want %v", m, moved)
		}
		if got := len(s.Members()); got != 2 {
			t.Errorf("len(Members()) = %d, want 2", got)
		}
	})

	t.Run("member without id", func(t *testing.T) {
		for i, cmd := range []*eddypb.UpsertMemberCommand{{}, {Member: &eddypb.Member{RaftAddr: "x:1"}}} {
			resp := apply(t, f, uint64(10+i), fsm.CmdUpsertMember, cmd)
			checkErr(t, resp.Err, controlplane.ErrInvalidArgument)
		}
		if got := len(f.State().Members()); got != 2 {
			t.Errorf("len(Members()) = %d, want 2", got)
		}
	})
}

func TestRemoveMember(t *testing.T) {
	f := fsm.New()
	next := applyAll(t, f, 1, upsertMember(member("n1")), upsertMember(member("n2")))

	mustApply(t, f, next, fsm.CmdRemoveMember, removeMember("n1").msg)
	s := f.State()
	if _, ok := s.Member("n1"); ok {
		t.Error("n1 still a member after removal")
	}
	if got := s.Members(); !equalMessages(got, []*eddypb.Member{member("n2")}) {
		t.Errorf("Members() = %v, want [n2]", got)
	}

	resp := apply(t, f, next+1, fsm.CmdRemoveMember, removeMember("n1").msg)
	checkErr(t, resp.Err, controlplane.ErrNodeNotFound)
}

func TestSubmitJob(t *testing.T) {
	f := fsm.New()
	cmd := &eddypb.SubmitJobCommand{Spec: spec("j1"), AtMs: 1234}
	mustApply(t, f, 7, fsm.CmdSubmitJob, cmd)

	want := &eddypb.Job{
		Spec:          spec("j1"),
		Status:        eddypb.JobStatus_JOB_STATUS_CREATED,
		SubmittedAtMs: 1234,
		UpdatedAtMs:   1234,
		CreateIndex:   7,
		ModifyIndex:   7,
	}
	if got := job(t, f.State(), "j1"); !proto.Equal(got, want) {
		t.Errorf("job = %v, want %v", got, want)
	}

	tests := []struct {
		name    string
		cmd     *eddypb.SubmitJobCommand
		wantErr error
	}{
		{"same id twice", &eddypb.SubmitJobCommand{Spec: spec("j1"), AtMs: 2000}, controlplane.ErrJobExists},
		{"empty id", &eddypb.SubmitJobCommand{Spec: spec(""), AtMs: 2000}, controlplane.ErrInvalidArgument},
		{"no spec", &eddypb.SubmitJobCommand{AtMs: 2000}, controlplane.ErrInvalidArgument},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := capture(f.State())
			index := uint64(8 + i)
			resp := apply(t, f, index, fsm.CmdSubmitJob, tt.cmd)
			checkErr(t, resp.Err, tt.wantErr)
			assertOnlyIndexChanged(t, before, f.State(), index)
		})
	}
}

func TestUpdateJobStatus(t *testing.T) {
	const (
		created   = eddypb.JobStatus_JOB_STATUS_CREATED
		scheduled = eddypb.JobStatus_JOB_STATUS_SCHEDULED
		running   = eddypb.JobStatus_JOB_STATUS_RUNNING
		failing   = eddypb.JobStatus_JOB_STATUS_FAILING
	)
	tests := []struct {
		name     string
		status   eddypb.JobStatus
		expected []eddypb.JobStatus
		wantErr  error
	}{
		{name: "unconditional", status: running},
		{name: "expected matches", status: running, expected: []eddypb.JobStatus{scheduled}},
		{name: "expected matches one of several", status: failing, expected: []eddypb.JobStatus{running, scheduled, created}},
		{name: "expected does not match", status: running, expected: []eddypb.JobStatus{created}, wantErr: fsm.ErrStatusMismatch},
		{name: "expected none of several", status: running, expected: []eddypb.JobStatus{created, running}, wantErr: fsm.ErrStatusMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, next := seeded(t) // j1 is SCHEDULED
			old := job(t, f.State(), "j1")
			before := capture(f.State())

			resp := apply(t, f, next, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
				JobId: "j1", Status: tt.status, Reason: "because", AtMs: 5000, Expected: tt.expected,
			})
			checkErr(t, resp.Err, tt.wantErr)
			if tt.wantErr != nil {
				assertOnlyIndexChanged(t, before, f.State(), next)
				return
			}
			want := proto.CloneOf(old)
			want.Status = tt.status
			want.StatusReason = "because"
			want.UpdatedAtMs = 5000
			want.ModifyIndex = next
			if got := job(t, f.State(), "j1"); !proto.Equal(got, want) {
				t.Errorf("job = %v, want %v", got, want)
			}
			// The job was created at index 4 and keeps its submission time.
			if got := job(t, f.State(), "j1"); got.CreateIndex != 4 || got.SubmittedAtMs != 100 {
				t.Errorf("create index %d, submitted at %d; want 4, 100", got.CreateIndex, got.SubmittedAtMs)
			}
		})
	}

	t.Run("unknown job", func(t *testing.T) {
		f, next := seeded(t)
		before := capture(f.State())
		resp := apply(t, f, next, fsm.CmdUpdateJobStatus, jobStatus("nope", running, 1).msg)
		checkErr(t, resp.Err, controlplane.ErrJobNotFound)
		assertOnlyIndexChanged(t, before, f.State(), next)
	})
}

// A job that reaches a terminal status gives its slots back; other statuses
// keep them.
func TestUpdateJobStatusReleasesSlotsWhenTerminal(t *testing.T) {
	tests := []struct {
		status       eddypb.JobStatus
		wantReleased bool
	}{
		{eddypb.JobStatus_JOB_STATUS_CANCELED, true},
		{eddypb.JobStatus_JOB_STATUS_FINISHED, true},
		{eddypb.JobStatus_JOB_STATUS_FAILED, true},
		{eddypb.JobStatus_JOB_STATUS_RUNNING, false},
		{eddypb.JobStatus_JOB_STATUS_CANCELLING, false},
		{eddypb.JobStatus_JOB_STATUS_FAILING, false},
		{eddypb.JobStatus_JOB_STATUS_RESTARTING, false},
		{eddypb.JobStatus_JOB_STATUS_CREATED, false},
	}
	for _, tt := range tests {
		t.Run(tt.status.String(), func(t *testing.T) {
			f, next := seeded(t) // j1 on w1/0, w1/1; j3 on w2/0
			j3 := capture(f.State()).assignments["j3"]
			free := f.State().FreeSlots()

			mustApply(t, f, next, fsm.CmdUpdateJobStatus, jobStatus("j1", tt.status, 1).msg)
			s := f.State()
			got := s.Assignments("j1")
			if tt.wantReleased {
				if len(got) != 0 {
					t.Errorf("assignments of j1 = %v, want none", got)
				}
				if s.FreeSlots() != free+2 {
					t.Errorf("FreeSlots() = %d, want %d", s.FreeSlots(), free+2)
				}
			} else if len(got) != 2 {
				t.Errorf("assignments of j1 = %v, want the two it had", got)
			}
			if !equalMessages(s.Assignments("j3"), j3) {
				t.Errorf("assignments of j3 = %v, want %v", s.Assignments("j3"), j3)
			}
		})
	}
}

func TestRegisterWorker(t *testing.T) {
	f := fsm.New()
	// The command's status and indexes are the FSM's to set, not the caller's.
	mustApply(t, f, 3, fsm.CmdRegisterWorker, &eddypb.RegisterWorkerCommand{
		Worker: &eddypb.Worker{
			Id: "w1", Address: "w1:9000", Slots: 4, InstanceId: "a",
			Status: eddypb.WorkerStatus_WORKER_STATUS_LOST, CreateIndex: 99, ModifyIndex: 99, RegisteredAtMs: 1, StatusAtMs: 1,
		},
		AtMs: 500,
	})
	want := &eddypb.Worker{
		Id: "w1", Address: "w1:9000", Slots: 4, InstanceId: "a",
		Status:         eddypb.WorkerStatus_WORKER_STATUS_ALIVE,
		RegisteredAtMs: 500, StatusAtMs: 500,
		CreateIndex: 3, ModifyIndex: 3,
	}
	if got := worker(t, f.State(), "w1"); !proto.Equal(got, want) {
		t.Fatalf("worker = %v, want %v", got, want)
	}

	t.Run("re-register keeps create index", func(t *testing.T) {
		mustApply(t, f, 4, fsm.CmdUpdateWorkerStatus, workerStatus("w1", "a", eddypb.WorkerStatus_WORKER_STATUS_LOST, 600).msg)
		mustApply(t, f, 5, fsm.CmdRegisterWorker, registerWorker("w1", "b", 8, 700).msg)
		want := &eddypb.Worker{
			Id: "w1", Address: "w1:9000", Slots: 8, InstanceId: "b",
			Status:         eddypb.WorkerStatus_WORKER_STATUS_ALIVE,
			RegisteredAtMs: 700, StatusAtMs: 700,
			CreateIndex: 3, ModifyIndex: 5,
		}
		if got := worker(t, f.State(), "w1"); !proto.Equal(got, want) {
			t.Errorf("worker = %v, want %v", got, want)
		}
	})

	t.Run("worker without id", func(t *testing.T) {
		for i, cmd := range []*eddypb.RegisterWorkerCommand{{AtMs: 1}, {Worker: &eddypb.Worker{Slots: 2}}} {
			before := capture(f.State())
			index := uint64(10 + i)
			resp := apply(t, f, index, fsm.CmdRegisterWorker, cmd)
			checkErr(t, resp.Err, controlplane.ErrInvalidArgument)
			assertOnlyIndexChanged(t, before, f.State(), index)
		}
	})
}

func TestUpdateWorkerStatus(t *testing.T) {
	const (
		alive = eddypb.WorkerStatus_WORKER_STATUS_ALIVE
		lost  = eddypb.WorkerStatus_WORKER_STATUS_LOST
	)
	tests := []struct {
		name      string
		instance  string
		wantApply bool
	}{
		{"current instance", "w1-a", true},
		{"any instance", "", true},
		{"stale instance", "w1-old", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, next := seeded(t)
			old := worker(t, f.State(), "w1")
			before := capture(f.State())

			resp := apply(t, f, next, fsm.CmdUpdateWorkerStatus, workerStatus("w1", tt.instance, lost, 9000).msg)
			if resp.Err != nil {
				t.Fatalf("unexpected error: %v", resp.Err)
			}
			if !tt.wantApply {
				assertOnlyIndexChanged(t, before, f.State(), next)
				return
			}
			want := proto.CloneOf(old)
			want.Status = lost
			want.StatusAtMs = 9000
			want.ModifyIndex = next
			if got := worker(t, f.State(), "w1"); !proto.Equal(got, want) {
				t.Errorf("worker = %v, want %v", got, want)
			}

			mustApply(t, f, next+1, fsm.CmdUpdateWorkerStatus, workerStatus("w1", tt.instance, alive, 9100).msg)
			if got := worker(t, f.State(), "w1"); got.Status != alive || got.ModifyIndex != next+1 || got.CreateIndex != old.CreateIndex {
				t.Errorf("worker after coming back = %v, want alive, modify index %d, create index %d", got, next+1, old.CreateIndex)
			}
		})
	}

	t.Run("unknown worker", func(t *testing.T) {
		f, next := seeded(t)
		before := capture(f.State())
		resp := apply(t, f, next, fsm.CmdUpdateWorkerStatus, workerStatus("nope", "", lost, 1).msg)
		checkErr(t, resp.Err, controlplane.ErrWorkerNotFound)
		assertOnlyIndexChanged(t, before, f.State(), next)
	})
}

func TestAssignSlots(t *testing.T) {
	t.Run("created job becomes scheduled", func(t *testing.T) {
		f, next := seeded(t) // j2 is CREATED, w1/2 and w2/1 free
		mustApply(t, f, next, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{
			JobId: "j2", Status: eddypb.JobStatus_JOB_STATUS_CREATED, Reason: "waiting for slots", AtMs: 200,
		})
		old := job(t, f.State(), "j2")
		as := []*eddypb.SlotAssignment{slot("j2", "w1", 2), slot("j2", "w2", 1)}
		mustApply(t, f, next+1, fsm.CmdAssignSlots, assignSlots("j2", 300, as...).msg)

		s := f.State()
		if got := s.Assignments("j2"); !equalMessages(got, as) {
			t.Errorf("Assignments(j2) = %v, want %v", got, as)
		}
		want := proto.CloneOf(old)
		want.Status = eddypb.JobStatus_JOB_STATUS_SCHEDULED
		want.StatusReason = ""
		want.UpdatedAtMs = 300
		want.ModifyIndex = next + 1
		if got := job(t, s, "j2"); !proto.Equal(got, want) {
			t.Errorf("job = %v, want %v", got, want)
		}
		if s.FreeSlots() != 0 {
			t.Errorf("FreeSlots() = %d, want 0", s.FreeSlots())
		}
	})

	t.Run("running job keeps its status", func(t *testing.T) {
		f, next := seeded(t) // j3 RUNNING on w2/0
		old := job(t, f.State(), "j3")
		as := []*eddypb.SlotAssignment{slot("j3", "w2", 1)}
		mustApply(t, f, next, fsm.CmdAssignSlots, assignSlots("j3", 300, as...).msg)
		s := f.State()
		if got := job(t, s, "j3"); !proto.Equal(got, old) {
			t.Errorf("job = %v, want it unchanged: %v", got, old)
		}
		if got := s.Assignments("j3"); !equalMessages(got, as) {
			t.Errorf("Assignments(j3) = %v, want the new assignments %v", got, as)
		}
	})

	t.Run("job may keep its own slots", func(t *testing.T) {
		f, next := seeded(t) // j1 on w1/0, w1/1
		as := []*eddypb.SlotAssignment{slot("j1", "w1", 1), slot("j1", "w1", 0), slot("j1", "w1", 2)}
		mustApply(t, f, next, fsm.CmdAssignSlots, assignSlots("j1", 300, as...).msg)
		if got := f.State().Assignments("j1"); !equalMessages(got, as) {
			t.Errorf("Assignments(j1) = %v, want %v", got, as)
		}
	})

	t.Run("last slot of a worker", func(t *testing.T) {
		f, next := seeded(t) // w1 has 3 slots
		mustApply(t, f, next, fsm.CmdAssignSlots, assignSlots("j2", 300, slot("j2", "w1", 2)).msg)
	})

	t.Run("released slots can be taken", func(t *testing.T) {
		f, next := seeded(t) // j1 on w1/0, w1/1; j3 on w2/0
		applyAll(t, f, next,
			releaseSlots("j1"),
			jobStatus("j3", eddypb.JobStatus_JOB_STATUS_CANCELED, 200),
			assignSlots("j2", 300, slot("j2", "w1", 0), slot("j2", "w1", 1), slot("j2", "w2", 0)),
		)
		if got := len(f.State().Assignments("j2")); got != 3 {
			t.Errorf("len(Assignments(j2)) = %d, want 3", got)
		}
	})

	tests := []struct {
		name    string
		job     string
		as      []*eddypb.SlotAssignment
		wantErr error
	}{
		{"unknown job", "nope", []*eddypb.SlotAssignment{slot("nope", "w1", 2)}, controlplane.ErrJobNotFound},
		{"terminal job", "j4", []*eddypb.SlotAssignment{slot("j4", "w1", 2)}, fsm.ErrStatusMismatch},
		{"slot of another job", "j2", []*eddypb.SlotAssignment{slot("j2", "w1", 0)}, fsm.ErrSlotTaken},
		{"slot of another job after a free one", "j2", []*eddypb.SlotAssignment{slot("j2", "w1", 2), slot("j2", "w2", 0)}, fsm.ErrSlotTaken},
		{"slot number equal to worker slots", "j2", []*eddypb.SlotAssignment{slot("j2", "w1", 3)}, fsm.ErrSlotTaken},
		{"slot number beyond worker slots", "j2", []*eddypb.SlotAssignment{slot("j2", "w2", 7)}, fsm.ErrSlotTaken},
		{"unknown worker", "j2", []*eddypb.SlotAssignment{slot("j2", "w9", 0)}, fsm.ErrSlotTaken},
		{"same slot twice", "j2", []*eddypb.SlotAssignment{slot("j2", "w1", 2), slot("j2", "w1", 2)}, fsm.ErrSlotTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, next := seeded(t)
			before := capture(f.State())
			resp := apply(t, f, next, fsm.CmdAssignSlots, assignSlots(tt.job, 300, tt.as...).msg)
			checkErr(t, resp.Err, tt.wantErr)
			assertOnlyIndexChanged(t, before, f.State(), next)
		})
	}
}

func TestReleaseSlots(t *testing.T) {
	f, next := seeded(t) // j1 on w1/0, w1/1; j3 on w2/0
	before := capture(f.State())

	mustApply(t, f, next, fsm.CmdReleaseSlots, releaseSlots("j1").msg)
	s := f.State()
	if got := s.Assignments("j1"); len(got) != 0 {
		t.Errorf("Assignments(j1) = %v, want none", got)
	}
	if !equalMessages(s.Assignments("j3"), before.assignments["j3"]) {
		t.Errorf("Assignments(j3) = %v, want %v", s.Assignments("j3"), before.assignments["j3"])
	}
	if got := s.FreeSlots(); got != before.freeSlots+2 {
		t.Errorf("FreeSlots() = %d, want %d", got, before.freeSlots+2)
	}
	// Releasing slots is not a status change.
	if got := job(t, s, "j1"); !proto.Equal(got, before.jobs[0]) {
		t.Errorf("job j1 = %v, want unchanged %v", got, before.jobs[0])
	}

	t.Run("job without slots", func(t *testing.T) {
		before := capture(f.State())
		for i, id := range []string{"j1", "j2", "nope"} {
			mustApply(t, f, next+1+uint64(i), fsm.CmdReleaseSlots, releaseSlots(id).msg)
		}
		assertOnlyIndexChanged(t, before, f.State(), next+3)
	})
}

func TestCompleteCheckpoint(t *testing.T) {
	tests := []struct {
		name   string
		retain uint32
		want   []uint64 // checkpoint ids kept after completing 1..5
	}{
		{"retain all", 0, []uint64{1, 2, 3, 4, 5}},
		{"retain last three", 3, []uint64{3, 4, 5}},
		{"retain last one", 1, []uint64{5}},
		{"retain exactly all", 5, []uint64{1, 2, 3, 4, 5}},
		{"retain more than completed", 10, []uint64{1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			next := applyAll(t, f, 1, submitJob("a", 1), submitJob("b", 1),
				jobStatus("a", eddypb.JobStatus_JOB_STATUS_RUNNING, 2), jobStatus("b", eddypb.JobStatus_JOB_STATUS_RUNNING, 2))
			var lastDropped []*eddypb.CheckpointRecord
			for id := uint64(1); id <= 5; id++ {
				before := f.State().Checkpoints("a")
				next = applyAll(t, f, next, triggerCheckpoint(checkpoint("a", id)), completeCheckpoint(checkpoint("a", id), tt.retain))
				lastDropped = f.State().CheckpointStats("a").GetDropped()
				// Dropped are exactly the ones retained before and not now.
				var want []*eddypb.CheckpointRecord
				for _, r := range before {
					if !slices.ContainsFunc(f.State().Checkpoints("a"), func(x *eddypb.CheckpointRecord) bool { return x.CheckpointId == r.CheckpointId }) {
						want = append(want, r)
					}
				}
				if !equalMessages(lastDropped, want) {
					t.Errorf("after %d: dropped %v, want %v", id, lastDropped, want)
				}
			}
			next = applyAll(t, f, next, triggerCheckpoint(checkpoint("b", 1)), completeCheckpoint(checkpoint("b", 1), 1))

			var want []*eddypb.CheckpointRecord
			for _, id := range tt.want {
				want = append(want, checkpoint("a", id))
			}
			if got := f.State().Checkpoints("a"); !equalMessages(got, want) {
				t.Errorf("Checkpoints(a) = %v, want %v", got, want)
			}
			if got, _ := f.State().LatestCheckpoint("a"); !proto.Equal(got, checkpoint("a", 5)) {
				t.Errorf("LatestCheckpoint(a) = %v, want 5", got)
			}
			st := f.State().CheckpointStats("a")
			if st.Completed != 5 || st.Failed != 0 || st.InProgress != nil || st.LastId != 5 || len(st.History) != 5 {
				t.Errorf("stats of a: %v", st)
			}
			// Retention is per job.
			if got := f.State().Checkpoints("b"); !equalMessages(got, []*eddypb.CheckpointRecord{checkpoint("b", 1)}) {
				t.Errorf("Checkpoints(b) = %v, want [1]", got)
			}
			_ = next
		})
	}

	t.Run("fenced", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			cmd     command
			wantErr error
		}{
			{"unknown job", completeCheckpoint(checkpoint("nope", 1), 0), controlplane.ErrJobNotFound},
			{"no checkpoint", command{fsm.CmdCompleteCheckpoint, &eddypb.CompleteCheckpointCommand{Retain: 3}}, controlplane.ErrJobNotFound},
			{"completed already", completeCheckpoint(checkpoint("j3", 2), 0), fsm.ErrCheckpointMismatch},
			{"not triggered", completeCheckpoint(checkpoint("j3", 3), 0), fsm.ErrCheckpointMismatch},
			{"of another attempt", completeCheckpoint(&eddypb.CheckpointRecord{JobId: "j3", CheckpointId: 3, Attempt: 1}, 0), fsm.ErrStatusMismatch},
		} {
			t.Run(tt.name, func(t *testing.T) {
				f, next := seeded(t)
				before := capture(f.State())
				resp := apply(t, f, next, tt.cmd.typ, tt.cmd.msg)
				checkErr(t, resp.Err, tt.wantErr)
				assertOnlyIndexChanged(t, before, f.State(), next)
			})
		}
	})
}

func TestTriggerCheckpoint(t *testing.T) {
	f, next := seeded(t)
	cp := checkpoint("j3", 3)
	cp.Manual = true
	next = applyAll(t, f, next, triggerCheckpoint(cp))
	st := f.State().CheckpointStats("j3")
	want := &eddypb.CheckpointRecord{
		JobId: "j3", CheckpointId: 3, Url: "s3://cp/j3/chk-3", TriggeredAtMs: 30,
		Status: eddypb.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS, Manual: true,
	}
	if !proto.Equal(st.InProgress, want) || st.LastId != 3 {
		t.Fatalf("in progress %v (last id %d), want %v", st.InProgress, st.LastId, want)
	}
	// A second trigger while one is in progress is refused.
	before := capture(f.State())
	checkErr(t, apply(t, f, next, fsm.CmdTriggerCheckpoint, triggerCheckpoint(checkpoint("j3", 4)).msg).Err, fsm.ErrCheckpointMismatch)
	assertOnlyIndexChanged(t, before, f.State(), next)
	next++

	// Fencing: the job must be RUNNING at the attempt.
	for _, tt := range []struct {
		name    string
		cmd     *eddypb.TriggerCheckpointCommand
		wantErr error
	}{
		{"unknown job", &eddypb.TriggerCheckpointCommand{JobId: "nope"}, controlplane.ErrJobNotFound},
		{"scheduled job", &eddypb.TriggerCheckpointCommand{JobId: "j1"}, fsm.ErrStatusMismatch},
		{"finished job", &eddypb.TriggerCheckpointCommand{JobId: "j4"}, fsm.ErrStatusMismatch},
		{"other attempt", &eddypb.TriggerCheckpointCommand{JobId: "j3", Attempt: 2}, fsm.ErrStatusMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := capture(f.State())
			checkErr(t, apply(t, f, next, fsm.CmdTriggerCheckpoint, tt.cmd).Err, tt.wantErr)
			assertOnlyIndexChanged(t, before, f.State(), next)
			next++
		})
	}
}

func TestFailCheckpoint(t *testing.T) {
	f, next := seeded(t)
	// Failing needs the id in progress.
	before := capture(f.State())
	checkErr(t, apply(t, f, next, fsm.CmdFailCheckpoint, failCheckpoint("j3", 3, "x", 1).msg).Err, fsm.ErrCheckpointMismatch)
	assertOnlyIndexChanged(t, before, f.State(), next)
	next++

	// The history keeps the last HistorySize checkpoints, failed ones with
	// their cause and duration; ids keep increasing after failures.
	id := uint64(3)
	for ; id < 3+fsm.HistorySize; id++ {
		cp := checkpoint("j3", id)
		next = applyAll(t, f, next, triggerCheckpoint(cp), failCheckpoint("j3", id, fmt.Sprintf("cause %d", id), cp.TriggeredAtMs+7))
	}
	st := f.State().CheckpointStats("j3")
	if len(st.History) != fsm.HistorySize || st.History[0].CheckpointId != 3 || st.Failed != fsm.HistorySize || st.ConsecutiveFailures != fsm.HistorySize {
		t.Fatalf("history of %d from %d, %d failed, %d consecutive", len(st.History), st.History[0].CheckpointId, st.Failed, st.ConsecutiveFailures)
	}
	last := st.History[len(st.History)-1]
	want := &eddypb.CheckpointRecord{
		JobId: "j3", CheckpointId: id - 1, Url: fmt.Sprintf("s3://cp/j3/chk-%d", id-1), TriggeredAtMs: int64(id-1) * 10,
		CompletedAtMs: int64(id-1)*10 + 7, DurationMs: 7, Status: eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED,
		Failure: fmt.Sprintf("cause %d", id-1),
	}
	if !proto.Equal(last, want) {
		t.Errorf("last history entry %v, want %v", last, want)
	}
	if got := f.State().Checkpoints("j3"); len(got) != 2 {
		t.Errorf("failures changed the retained checkpoints: %v", got)
	}
	// A completion resets the consecutive failures and pushes out the oldest.
	next = applyAll(t, f, next, triggerCheckpoint(checkpoint("j3", id)), completeCheckpoint(checkpoint("j3", id), 0))
	st = f.State().CheckpointStats("j3")
	if st.ConsecutiveFailures != 0 || st.Completed != 3 || len(st.History) != fsm.HistorySize || st.History[0].CheckpointId != 4 {
		t.Errorf("after completion: %d consecutive, %d completed, history from %d", st.ConsecutiveFailures, st.Completed, st.History[0].CheckpointId)
	}
	_ = next
}

func TestCheckpointAbortedWhenAttemptEnds(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cmd     command
		failure string
	}{
		{"new attempt", command{fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{JobId: "j3", Attempt: 1, Status: eddypb.JobStatus_JOB_STATUS_SCHEDULED, AtMs: 50}}, "aborted: attempt 1 started"},
		{"job failed", jobStatus("j3", eddypb.JobStatus_JOB_STATUS_FAILED, 50), "aborted: job FAILED"},
		{"restart", restartJob("j3", 0, "task x failed", 50), "aborted: job restarting after task x failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, next := seeded(t)
			next = applyAll(t, f, next, triggerCheckpoint(checkpoint("j3", 3)), tt.cmd)
			st := f.State().CheckpointStats("j3")
			if st.InProgress != nil || st.Failed != 1 {
				t.Fatalf("in progress %v, %d failed", st.InProgress, st.Failed)
			}
			if h := st.History[len(st.History)-1]; h.CheckpointId != 3 || h.Failure != tt.failure || h.Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_FAILED {
				t.Errorf("history entry %v, want failure %q", h, tt.failure)
			}
			// The late completion is refused.
			if err := apply(t, f, next, fsm.CmdCompleteCheckpoint, completeCheckpoint(checkpoint("j3", 3), 0).msg).Err; err == nil {
				t.Error("a checkpoint of an ended attempt completed")
			}
		})
	}
}

func TestDiscardCheckpoint(t *testing.T) {
	f, next := seeded(t)
	before := capture(f.State())
	checkErr(t, apply(t, f, next, fsm.CmdDiscardCheckpoint, discardCheckpoint("j3", 7, "x").msg).Err, fsm.ErrCheckpointMismatch)
	assertOnlyIndexChanged(t, before, f.State(), next)
	next = applyAll(t, f, next+1, discardCheckpoint("j3", 2, "chk-2/op-1: checksum mismatch"))
	if got, _ := f.State().LatestCheckpoint("j3"); got.GetCheckpointId() != 1 {
		t.Fatalf("latest after discarding 2: %v, want 1", got)
	}
	st := f.State().CheckpointStats("j3")
	if h := st.History[len(st.History)-1]; h.CheckpointId != 2 || h.Status != eddypb.CheckpointStatus_CHECKPOINT_STATUS_DISCARDED || h.Failure == "" {
		t.Errorf("history entry %v", h)
	}
	// Ids are not reused.
	next = applyAll(t, f, next, triggerCheckpoint(checkpoint("j3", 3)))
	_ = next
}

func TestRestartJob(t *testing.T) {
	f, next := seeded(t)
	next = applyAll(t, f, next, restartJob("j3", 0, "task src (1/1) failed: boom", 60))
	j := job(t, f.State(), "j3")
	if j.Status != eddypb.JobStatus_JOB_STATUS_RESTARTING || j.Restarts != 1 || j.Failure != "task src (1/1) failed: boom" || j.FailureAtMs != 60 || j.StatusReason != j.Failure {
		t.Fatalf("restarted job %v", j)
	}
	if as := f.State().Assignments("j3"); len(as) != 0 {
		t.Errorf("restart kept slots %v", as)
	}
	// The next attempt's slots move it to SCHEDULED; it starts from a
	// checkpoint.
	next = applyAll(t, f, next,
		assignSlots("j3", 61, slot("j3", "w2", 1)),
		command{fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{JobId: "j3", Attempt: 1, Status: eddypb.JobStatus_JOB_STATUS_SCHEDULED, AtMs: 62, RestoreCheckpointId: 2}},
	)
	j = job(t, f.State(), "j3")
	if j.Status != eddypb.JobStatus_JOB_STATUS_SCHEDULED || j.Attempt != 1 || j.RestoredCheckpointId != 2 || j.Restarts != 1 {
		t.Fatalf("next attempt %v", j)
	}
	for _, tt := range []struct {
		name string
		cmd  command
	}{
		{"stale attempt", restartJob("j3", 0, "late", 70)},
		{"not running", restartJob("j2", 0, "x", 70)},
		{"ended", restartJob("j4", 0, "x", 70)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := capture(f.State())
			checkErr(t, apply(t, f, next, fsm.CmdRestartJob, tt.cmd.msg).Err, fsm.ErrStatusMismatch)
			assertOnlyIndexChanged(t, before, f.State(), next)
			next++
		})
	}
}

// Every business error leaves the state as it was, but for the applied index.
func TestRejectedCommandChangesOnlyIndex(t *testing.T) {
	tests := []struct {
		name    string
		cmd     command
		wantErr error
	}{
		{"init other cluster", initCluster("c2"), controlplane.ErrOtherCluster},
		{"init empty cluster id", initCluster(""), controlplane.ErrInvalidArgument},
		{"upsert member without id", upsertMember(&eddypb.Member{RaftAddr: "x:1"}), controlplane.ErrInvalidArgument},
		{"remove unknown member", removeMember("n9"), controlplane.ErrNodeNotFound},
		{"submit existing job", submitJob("j1", 5), controlplane.ErrJobExists},
		{"submit job without id", submitJob("", 5), controlplane.ErrInvalidArgument},
		{"update unknown job", jobStatus("nope", eddypb.JobStatus_JOB_STATUS_RUNNING, 5), controlplane.ErrJobNotFound},
		{"update with other expected status", jobStatus("j3", eddypb.JobStatus_JOB_STATUS_FAILED, 5, eddypb.JobStatus_JOB_STATUS_SCHEDULED), fsm.ErrStatusMismatch},
		{"register worker without id", registerWorker("", "i", 2, 5), controlplane.ErrInvalidArgument},
		{"update unknown worker", workerStatus("w9", "", eddypb.WorkerStatus_WORKER_STATUS_LOST, 5), controlplane.ErrWorkerNotFound},
		{"assign to unknown job", assignSlots("nope", 5, slot("nope", "w1", 2)), controlplane.ErrJobNotFound},
		{"assign to finished job", assignSlots("j4", 5, slot("j4", "w1", 2)), fsm.ErrStatusMismatch},
		{"assign taken slot", assignSlots("j2", 5, slot("j2", "w2", 0)), fsm.ErrSlotTaken},
		{"assign missing slot", assignSlots("j2", 5, slot("j2", "w2", 2)), fsm.ErrSlotTaken},
		{"assign slot of another job's id", assignSlots("j2", 5, slot("j3", "w1", 2)), controlplane.ErrInvalidArgument},
		{"assign slot without job id", assignSlots("j2", 5, slot("", "w1", 2)), controlplane.ErrInvalidArgument},
		{"checkpoint of unknown job", completeCheckpoint(checkpoint("nope", 3), 1), controlplane.ErrJobNotFound},
		{"trigger on scheduled job", triggerCheckpoint(checkpoint("j1", 1)), fsm.ErrStatusMismatch},
		{"complete not in progress", completeCheckpoint(checkpoint("j3", 3), 1), fsm.ErrCheckpointMismatch},
		{"fail not in progress", failCheckpoint("j3", 2, "x", 5), fsm.ErrCheckpointMismatch},
		{"discard not retained", discardCheckpoint("j3", 9, "x"), fsm.ErrCheckpointMismatch},
		{"restart ended job", restartJob("j4", 0, "x", 5), fsm.ErrStatusMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, next := seeded(t)
			old := f.State()
			before := capture(old)
			changed := f.Changed()

			resp := apply(t, f, next, tt.cmd.typ, tt.cmd.msg)
			checkErr(t, resp.Err, tt.wantErr)
			assertOnlyIndexChanged(t, before, f.State(), next)
			// The view taken before is untouched, index included.
			assertView(t, before, capture(old))
			select {
			case <-changed:
			default:
				t.Error("Changed() channel not closed by a rejected command")
			}
		})
	}
}

// A view taken before Apply is not affected by it: Apply replaces maps and
// messages instead of changing them.
func TestStateIsCopyOnWrite(t *testing.T) {
	f, next := seeded(t)
	old := f.State()
	before := capture(old)

	cp3 := checkpoint("j3", 3)
	applyAll(t, f, next,
		triggerCheckpoint(cp3),
		completeCheckpoint(cp3, 1),
		initCluster("c1"),
		upsertMember(&eddypb.Member{Id: "n1", RaftAddr: "moved:1"}),
		removeMember("n2"),
		upsertMember(member("n3")),
		submitJob("j5", 500),
		jobStatus("j1", eddypb.JobStatus_JOB_STATUS_RUNNING, 501),
		jobStatus("j3", eddypb.JobStatus_JOB_STATUS_FAILED, 502),
		registerWorker("w1", "w1-b", 5, 503),
		registerWorker("w3", "w3-a", 1, 504),
		workerStatus("w2", "w2-a", eddypb.WorkerStatus_WORKER_STATUS_LOST, 505),
		assignSlots("j1", 506, slot("j1", "w1", 4)),
		assignSlots("j2", 507, slot("j2", "w1", 0), slot("j2", "w3", 0)),
		releaseSlots("j2"),
		assignSlots("j5", 508, slot("j5", "w3", 0)),
		triggerCheckpoint(checkpoint("j1", 1)),
	)

	assertView(t, before, capture(old))
	if d := diff(before, capture(f.State())); len(d) < 8 {
		// Sanity check that the commands above did change the current state.
		t.Errorf("current state differs from the old view in only %d ways: %v", len(d), d)
	}
	if got := f.State().Checkpoints("j3"); !equalMessages(got, []*eddypb.CheckpointRecord{cp3}) {
		t.Errorf("Checkpoints(j3) = %v, want [%v]", got, cp3)
	}

	// Objects no command touched are shared between views, which is what
	// makes a view cheap.
	oldJ4, _ := old.Job("j4")
	newJ4, _ := f.State().Job("j4")
	if oldJ4 != newJ4 {
		t.Error("untouched job j4 was copied, want it shared between views")
	}
}

func TestApplyIgnoresNonCommandEntries(t *testing.T) {
	f, next := seeded(t)
	before := capture(f.State())
	changed := f.Changed()
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration} {
		if out := f.Apply(&raft.Log{Type: typ, Index: next, Data: []byte{byte(fsm.CmdSubmitJob)}}); out != nil {
			t.Errorf("Apply(%s) = %v, want nil", typ, out)
		}
	}
	assertView(t, before, capture(f.State()))
	select {
	case <-changed:
		t.Error("Changed() channel closed by a non-command entry")
	default:
	}
}

func TestApplyPanics(t *testing.T) {
	payload := func(t fsm.CommandType, b ...byte) []byte { return append([]byte{byte(t)}, b...) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"nil command", nil, "fsm: empty command at index 42"},
		{"empty command", []byte{}, "fsm: empty command at index 42"},
		{"command type zero", payload(0), "fsm: unknown command type 0 at index 42"},
		{"command type after the last", payload(fsm.CmdRestartJob + 1), "fsm: unknown command type 17 at index 42"},
		{"command type 255", payload(255, 0x0a, 0x00), "fsm: unknown command type 255 at index 42"},
		{"truncated varint", payload(fsm.CmdSubmitJob, 0xff), "fsm: decode submit_job at index 42"},
		{"truncated field", payload(fsm.CmdRemoveMember, 0x0a, 0x05, 'n'), "fsm: decode remove_member at index 42"},
		{"invalid utf-8", payload(fsm.CmdRemoveMember, 0x0a, 0x01, 0xff), "fsm: decode remove_member at index 42"},
		{"field number zero", payload(fsm.CmdAssignSlots, 0x00), "fsm: decode assign_slots at index 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := seeded(t)
			before := capture(f.State())
			msg, panicked := panicMessage(func() {
				f.Apply(&raft.Log{Type: raft.LogCommand, Index: 42, Data: tt.data})
			})
			if !panicked {
				t.Fatal("Apply did not panic")
			}
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("panic %q, want it to start with %q", msg, tt.want)
			}
			assertView(t, before, capture(f.State()))
		})
	}
}

func TestChanged(t *testing.T) {
	f := fsm.New()
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("Changed() closed before any command")
	default:
	}
	mustApply(t, f, 1, fsm.CmdInitCluster, initCluster("c1").msg)
	select {
	case <-ch:
	default:
		t.Fatal("Changed() not closed by Apply")
	}
	select {
	case <-f.Changed():
		t.Fatal("Changed() after Apply is already closed")
	default:
	}
}

// Readers see whole commands: every view has exactly one job per applied
// index, however it races with Apply.
func TestConcurrentReaders(t *testing.T) {
	const n = 200
	f := fsm.New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := f.State()
				if got := len(s.Jobs()); uint64(got) != s.Index() {
					errs <- fmt.Errorf("view at index %d has %d jobs", s.Index(), got)
					return
				}
				snap, err := f.Snapshot()
				if err != nil {
					errs <- err
					return
				}
				sink := &memSink{}
				if err := snap.Persist(sink); err != nil {
					errs <- err
					return
				}
				snap.Release()
			}
		}()
	}
	for i := uint64(1); i <= n; i++ {
		mustApply(t, f, i, fsm.CmdSubmitJob, submitJob(fmt.Sprintf("j%03d", i), int64(i)).msg)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(f.State().Jobs()); got != n {
		t.Errorf("len(Jobs()) = %d, want %d", got, n)
	}
}

func TestEndedJobStaysEnded(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, 1, fsm.CmdSubmitJob, &eddypb.SubmitJobCommand{Spec: &eddypb.JobSpec{JobId: "j", Name: "j"}})
	mustApply(t, f, 2, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{JobId: "j", Status: eddypb.JobStatus_JOB_STATUS_FINISHED})
	resp := apply(t, f, 3, fsm.CmdUpdateJobStatus, &eddypb.UpdateJobStatusCommand{JobId: "j", Status: eddypb.JobStatus_JOB_STATUS_RUNNING})
	if !errors.Is(resp.Err, fsm.ErrStatusMismatch) {
		t.Fatalf("reviving a finished job: err %v, want ErrStatusMismatch", resp.Err)
	}
	if j, _ := f.State().Job("j"); j.Status != eddypb.JobStatus_JOB_STATUS_FINISHED {
		t.Fatalf("finished job is now %s", j.Status)
	}
}

func task(job string, attempt uint64, chain, subtask uint32, st eddypb.TaskState) *eddypb.TaskStatus {
	return &eddypb.TaskStatus{JobId: job, Attempt: attempt, Chain: chain, Subtask: subtask, State: st}
}

func TestAttemptsAndTasks(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, 1, fsm.CmdSubmitJob, &eddypb.SubmitJobCommand{Spec: &eddypb.JobSpec{JobId: "j", Name: "j"}})
	running := eddypb.TaskState_TASK_STATE_RUNNING
	finished := eddypb.TaskState_TASK_STATE_FINISHED
	// Reports of an attempt that has not started are ignored.
	mustApply(t, f, 2, fsm.CmdUpdateTasks, &eddypb.UpdateTasksCommand{JobId: "j", Attempt: 1, Tasks: []*eddypb.TaskStatus{task("j", 1, 0, 0, running)}})
	if n := len(f.State().Tasks("j")); n != 0 {
		t.Fatalf("%d tasks recorded for an attempt that has not started", n)
	}
	mustApply(t, f, 3, fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{JobId: "j", Attempt: 1, Status: eddypb.JobStatus_JOB_STATUS_SCHEDULED})
	mustApply(t, f, 4, fsm.CmdUpdateTasks, &eddypb.UpdateTasksCommand{JobId: "j", Attempt: 1, Tasks: []*eddypb.TaskStatus{
		task("j", 1, 1, 0, running), task("j", 1, 0, 1, running), task("j", 1, 0, 0, finished),
	}})
	// A terminal state is final; others are replaced.
	mustApply(t, f, 5, fsm.CmdUpdateTasks, &eddypb.UpdateTasksCommand{JobId: "j", Attempt: 1, Tasks: []*eddypb.TaskStatus{
		task("j", 1, 0, 0, running), task("j", 1, 1, 0, finished),
	}})
	got := f.State().Tasks("j")
	want := []*eddypb.TaskStatus{task("j", 1, 0, 0, finished), task("j", 1, 0, 1, running), task("j", 1, 1, 0, finished)}
	if len(got) != len(want) {
		t.Fatalf("tasks %v", got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("task %d = %v, want %v", i, got[i], want[i])
		}
	}
	// A task of another job in the command is refused.
	if resp := apply(t, f, 6, fsm.CmdUpdateTasks, &eddypb.UpdateTasksCommand{JobId: "j", Attempt: 1, Tasks: []*eddypb.TaskStatus{task("k", 1, 0, 0, running)}}); !errors.Is(resp.Err, controlplane.ErrInvalidArgument) {
		t.Fatalf("foreign task: %v", resp.Err)
	}
	// A new attempt clears the table; going back is refused.
	mustApply(t, f, 7, fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{JobId: "j", Attempt: 2, Status: eddypb.JobStatus_JOB_STATUS_RESTARTING})
	if j, _ := f.State().Job("j"); j.Attempt != 2 || j.Status != eddypb.JobStatus_JOB_STATUS_RESTARTING || len(f.State().Tasks("j")) != 0 {
		t.Fatalf("after attempt 2: %v, %d tasks", j, len(f.State().Tasks("j")))
	}
	if resp := apply(t, f, 8, fsm.CmdStartAttempt, &eddypb.StartAttemptCommand{JobId: "j", Attempt: 2}); !errors.Is(resp.Err, fsm.ErrStatusMismatch) {
		t.Fatalf("restarting attempt 2: %v", resp.Err)
	}
	// Snapshots carry tasks.
	mustApply(t, f, 9, fsm.CmdUpdateTasks, &eddypb.UpdateTasksCommand{JobId: "j", Attempt: 2, Tasks: []*eddypb.TaskStatus{task("j", 2, 0, 0, running)}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := fsm.New()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if ts := g.State().Tasks("j"); len(ts) != 1 || !proto.Equal(ts[0], task("j", 2, 0, 0, running)) {
		t.Fatalf("restored tasks %v", ts)
	}
}
