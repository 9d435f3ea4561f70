package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
)

// Snapshot format: the magic, a format version and the applied index, then
// typed records (a record type byte, a uvarint length, a protobuf payload),
// then recEnd. Record types, like command types, are append only.
const (
	snapshotMagic   = "EDDYFSM\x00"
	snapshotVersion = 1
)

// maxRecordSize bounds one record, so that a corrupt length is an error and
// not an allocation of gigabytes.
const maxRecordSize = 64 << 20

type recordType uint8

const (
	recEnd        recordType = 0
	recCluster    recordType = 1 // eddypb.InitClusterCommand
	recMember     recordType = 2 // eddypb.Member
	recJob        recordType = 3 // eddypb.Job
	recWorker     recordType = 4 // eddypb.Worker
	recAssignment recordType = 5 // eddypb.SlotAssignment
	recCheckpoint recordType = 6 // eddypb.CheckpointRecord
	recTask       recordType = 7 // eddypb.TaskStatus
	// recJobCheckpoints replaces recCheckpoint, which is still read (as a
	// retained checkpoint) but no longer written.
	recJobCheckpoints recordType = 8 // eddypb.JobCheckpoints
)

type snapshot struct{ state *State }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var hdr [len(snapshotMagic) + 4 + 8]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint32(hdr[len(snapshotMagic):], snapshotVersion)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic)+4:], s.state.index)
	if _, err := bw.Write(hdr[:]); err != nil {
		return err
	}
	put := func(t recordType, m proto.Message) error {
		b, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		var pre [1 + binary.MaxVarintLen64]byte
		pre[0] = byte(t)
		n := binary.PutUvarint(pre[1:], uint64(len(b)))
		if _, err := bw.Write(pre[:1+n]); err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	}
	st := s.state
	if st.clusterID != "" {
		if err := put(recCluster, &eddypb.InitClusterCommand{ClusterId: st.clusterID}); err != nil {
			return err
		}
	}
	for _, m := range st.Members() {
		if err := put(recMember, m); err != nil {
			return err
		}
	}
	for _, j := range st.Jobs() {
		if err := put(recJob, j); err != nil {
			return err
		}
	}
	for _, w := range st.Workers() {
		if err := put(recWorker, w); err != nil {
			return err
		}
	}
	for _, a := range st.AllAssignments() {
		if err := put(recAssignment, a); err != nil {
			return err
		}
	}
	for _, j := range st.Jobs() {
		if c, ok := st.checkpoints[controlplane.JobID(j.Spec.JobId)]; ok {
			if err := put(recJobCheckpoints, c); err != nil {
				return err
			}
		}
	}
	for _, j := range st.Jobs() {
		for _, t := range st.tasks[controlplane.JobID(j.Spec.JobId)] {
			if err := put(recTask, t); err != nil {
				return err
			}
		}
	}
	if err := bw.WriteByte(byte(recEnd)); err != nil {
		return err
	}
	return bw.Flush()
}

func readSnapshot(r io.Reader) (*State, error) {
	br := bufio.NewReader(r)
	var hdr [len(snapshotMagic) + 4 + 8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("not an eddy fsm snapshot")
	}
	if v := binary.BigEndian.Uint32(hdr[len(snapshotMagic):]); v != snapshotVersion {
		return nil, fmt.Errorf("snapshot format version %d, this build reads %d", v, snapshotVersion)
	}
	s := newState()
	s.index = binary.BigEndian.Uint64(hdr[len(snapshotMagic)+4:])
	for {
		t, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		if recordType(t) == recEnd {
			return s, nil
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("read record length: %w", err)
		}
		if n > maxRecordSize {
			return nil, fmt.Errorf("snapshot record of %d bytes exceeds %d: corrupt snapshot", n, maxRecordSize)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		if err := s.restoreRecord(recordType(t), b); err != nil {
			return nil, err
		}
	}
}

func (s *State) restoreRecord(t recordType, b []byte) error {
	switch t {
	case recCluster:
		var m eddypb.InitClusterCommand
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		s.clusterID = m.ClusterId
	case recMember:
		var m eddypb.Member
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		s.members[controlplane.NodeID(m.Id)] = &m
	case recJob:
		var m eddypb.Job
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		s.jobs[controlplane.JobID(m.Spec.GetJobId())] = &m
	case recWorker:
		var m eddypb.Worker
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		s.workers[controlplane.WorkerID(m.Id)] = &m
	case recAssignment:
		var m eddypb.SlotAssignment
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		id := controlplane.JobID(m.JobId)
		s.assignments[id] = append(s.assignments[id], &m)
	case recCheckpoint:
		var m eddypb.CheckpointRecord
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		id := controlplane.JobID(m.JobId)
		c := s.checkpoints[id]
		if c == nil {
			c = &eddypb.JobCheckpoints{JobId: m.JobId}
			s.checkpoints[id] = c
		}
		m.Status = eddypb.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED
		c.Retained = append(c.Retained, &m)
		c.LastId = max(c.LastId, m.CheckpointId)
	case recJobCheckpoints:
		var m eddypb.JobCheckpoints
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		s.checkpoints[controlplane.JobID(m.JobId)] = &m
	case recTask:
		var m eddypb.TaskStatus
		if err := proto.Unmarshal(b, &m); err != nil {
			return err
		}
		id := controlplane.JobID(m.JobId)
		s.tasks[id] = append(s.tasks[id], &m)
	default:
		return fmt.Errorf("unknown snapshot record type %d", t)
	}
	return nil
}
