package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/eddypb"
)

// CommandType is the first byte of every Raft log entry the FSM applies.
// The numbers are a wire format: append only, never renumber, never reuse.
type CommandType uint8

// The command types. Each takes the protobuf payload named after it.
const (
	CmdInitCluster        CommandType = 1  // eddypb.InitClusterCommand
	CmdUpsertMember       CommandType = 2  // eddypb.UpsertMemberCommand
	CmdRemoveMember       CommandType = 3  // eddypb.RemoveMemberCommand
	CmdSubmitJob          CommandType = 4  // eddypb.SubmitJobCommand
	CmdUpdateJobStatus    CommandType = 5  // eddypb.UpdateJobStatusCommand
	CmdRegisterWorker     CommandType = 6  // eddypb.RegisterWorkerCommand
	CmdUpdateWorkerStatus CommandType = 7  // eddypb.UpdateWorkerStatusCommand
	CmdAssignSlots        CommandType = 8  // eddypb.AssignSlotsCommand
	CmdReleaseSlots       CommandType = 9  // eddypb.ReleaseSlotsCommand
	CmdCompleteCheckpoint CommandType = 10 // eddypb.CompleteCheckpointCommand
	CmdUpdateTasks        CommandType = 11 // eddypb.UpdateTasksCommand
	CmdStartAttempt       CommandType = 12 // eddypb.StartAttemptCommand
	CmdTriggerCheckpoint  CommandType = 13 // eddypb.TriggerCheckpointCommand
	CmdFailCheckpoint     CommandType = 14 // eddypb.FailCheckpointCommand
	CmdDiscardCheckpoint  CommandType = 15 // eddypb.DiscardCheckpointCommand
	CmdRestartJob         CommandType = 16 // eddypb.RestartJobCommand
)

func (t CommandType) String() string {
	switch t {
	case CmdInitCluster:
		return "init_cluster"
	case CmdUpsertMember:
		return "upsert_member"
	case CmdRemoveMember:
		return "remove_member"
	case CmdSubmitJob:
		return "submit_job"
	case CmdUpdateJobStatus:
		return "update_job_status"
	case CmdRegisterWorker:
		return "register_worker"
	case CmdUpdateWorkerStatus:
		return "update_worker_status"
	case CmdAssignSlots:
		return "assign_slots"
	case CmdReleaseSlots:
		return "release_slots"
	case CmdCompleteCheckpoint:
		return "complete_checkpoint"
	case CmdUpdateTasks:
		return "update_tasks"
	case CmdStartAttempt:
		return "start_attempt"
	case CmdTriggerCheckpoint:
		return "trigger_checkpoint"
	case CmdFailCheckpoint:
		return "fail_checkpoint"
	case CmdDiscardCheckpoint:
		return "discard_checkpoint"
	case CmdRestartJob:
		return "restart_job"
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// Encode returns the log entry for a command: its type byte and payload.
func Encode(t CommandType, msg proto.Message) ([]byte, error) {
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// commandFor returns an empty payload of the type command t takes, or nil
// for an unknown command.
func commandFor(t CommandType) proto.Message {
	switch t {
	case CmdInitCluster:
		return &eddypb.InitClusterCommand{}
	case CmdUpsertMember:
		return &eddypb.UpsertMemberCommand{}
	case CmdRemoveMember:
		return &eddypb.RemoveMemberCommand{}
	case CmdSubmitJob:
		return &eddypb.SubmitJobCommand{}
	case CmdUpdateJobStatus:
		return &eddypb.UpdateJobStatusCommand{}
	case CmdRegisterWorker:
		return &eddypb.RegisterWorkerCommand{}
	case CmdUpdateWorkerStatus:
		return &eddypb.UpdateWorkerStatusCommand{}
	case CmdAssignSlots:
		return &eddypb.AssignSlotsCommand{}
	case CmdReleaseSlots:
		return &eddypb.ReleaseSlotsCommand{}
	case CmdCompleteCheckpoint:
		return &eddypb.CompleteCheckpointCommand{}
	case CmdUpdateTasks:
		return &eddypb.UpdateTasksCommand{}
	case CmdStartAttempt:
		return &eddypb.StartAttemptCommand{}
	case CmdTriggerCheckpoint:
		return &eddypb.TriggerCheckpointCommand{}
	case CmdFailCheckpoint:
		return &eddypb.FailCheckpointCommand{}
	case CmdDiscardCheckpoint:
		return &eddypb.DiscardCheckpointCommand{}
	case CmdRestartJob:
		return &eddypb.RestartJobCommand{}
	}
	return nil
}
