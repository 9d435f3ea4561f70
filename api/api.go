// Package api defines the JSON bodies of Eddy's REST API (under /v1): the
// dispatcher serves them and the client sends and reads them. Field names are
// part of the user-facing contract: add fields, never rename or remove them.
//
// It must not depend on any other Eddy package.
package api

import (
	"encoding/json"
	"time"
)

// Error is the body of every error response.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a stable, documented code and a human message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Artifact names a job binary in the artifact store.
type Artifact struct {
	SHA256 string `json:"sha256"`
	URL    string `json:"url,omitempty"`
	Size   int64  `json:"size,omitempty"`
}

// SubmitJob is the body of POST /v1/jobs.
type SubmitJob struct {
	// JobID is optional; the server picks one when it is empty. A client that
	// retries a submission with the same id never creates the job twice.
	JobID          string    `json:"job_id,omitempty"`
	Name           string    `json:"name"`
	Artifact       *Artifact `json:"artifact,omitempty"`
	Parallelism    uint32    `json:"parallelism,omitempty"`
	MaxParallelism uint32    `json:"max_parallelism,omitempty"`
	// Graph is the job graph a job binary describes (EDDY_DESCRIBE=1).
	Graph  json.RawMessage   `json:"graph,omitempty"`
	Args   []string          `json:"args,omitempty"`
	Config map[string]string `json:"config,omitempty"`
	// Restore, when set, starts the job from a savepoint (or a retained
	// checkpoint): refused at once if it cannot be read or does not fit.
	Restore *Restore `json:"restore,omitempty"`
}

// Restore names the savepoint a job starts from.
type Restore struct {
	URL string `json:"url"`
	// AllowNonRestoredState lets the job drop the state of operators it no
	// longer has (by UID) instead of being refused.
	AllowNonRestoredState bool `json:"allow_non_restored_state,omitempty"`
	// CheckpointID is the id the savepoint's _metadata records; the job's
	// checkpoint ids continue after it. Set by the server.
	CheckpointID uint64 `json:"checkpoint_id,omitempty"`
}

// Job is a job as GET /v1/jobs and GET /v1/jobs/{id} return it.
type Job struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Status         string            `json:"status"`
	StatusReason   string            `json:"status_reason,omitempty"`
	Parallelism    uint32            `json:"parallelism"`
	MaxParallelism uint32            `json:"max_parallelism"`
	Artifact       *Artifact         `json:"artifact,omitempty"`
	Args           []string          `json:"args,omitempty"`
	Config         map[string]string `json:"config,omitempty"`
	SubmittedAt    time.Time         `json:"submitted_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	CreateIndex    uint64            `json:"create_index"`
	ModifyIndex    uint64            `json:"modify_index"`
	// Attempt is the current execution attempt, from 1 once deployed.
	Attempt uint64 `json:"attempt"`
	// Restarts counts the restarts after failures; Failure is the cause of
	// the latest one, at FailureAt.
	Restarts  uint32     `json:"restarts"`
	Failure   string     `json:"failure,omitempty"`
	FailureAt *time.Time `json:"failure_at,omitempty"`
	// RestoredCheckpoint is the checkpoint the current attempt started
	// from; 0 when it started empty.
	RestoredCheckpoint uint64 `json:"restored_checkpoint,omitempty"`
	// RestoredURL is the directory of the checkpoint or savepoint the
	// current attempt started from.
	RestoredURL string `json:"restored_url,omitempty"`
	// Restore is the savepoint the job was submitted from.
	Restore *Restore `json:"restore,omitempty"`
	// Tasks, Execution, Checkpoints, Savepoints and Graph are filled by
	// GET /v1/jobs/{id} only.
	Tasks       []Task       `json:"tasks,omitempty"`
	Execution   []TaskState  `json:"execution,omitempty"`
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	// Savepoints are the job's savepoints, oldest first: every completed
	// one and the latest failed ones.
	Savepoints []Checkpoint `json:"savepoints,omitempty"`
	// Graph is the job graph the job was submitted with (as in SubmitJob).
	Graph json.RawMessage `json:"graph,omitempty"`
}

// TaskState is the state of one parallel subtask of one chain of operators
// in the current attempt.
type TaskState struct {
	Chain    uint32 `json:"chain"`
	Name     string `json:"name,omitempty"`
	Subtask  uint32 `json:"subtask"`
	State    string `json:"state"`
	Error    string `json:"error,omitempty"`
	WorkerID string `json:"worker_id,omitempty"`
}

// Task is one parallel subtask of a job and the slot it is assigned to.
type Task struct {
	Task     string `json:"task"`
	WorkerID string `json:"worker_id"`
	Slot     uint32 `json:"slot"`
	Attempt  uint64 `json:"attempt"`
}

// Checkpoint is a checkpoint or savepoint of a job.
type Checkpoint struct {
	ID          uint64    `json:"id"`
	URL         string    `json:"url"`
	SizeBytes   int64     `json:"size_bytes"`
	TriggeredAt time.Time `json:"triggered_at"`
	// CompletedAt is when the checkpoint completed, failed or was discarded.
	CompletedAt time.Time `json:"completed_at"`
	Savepoint   bool      `json:"savepoint"`
	// Status is IN_PROGRESS, COMPLETED, FAILED or DISCARDED (completed, then
	// found unreadable at a restore).
	Status     string `json:"status,omitempty"`
	DurationMs int64  `json:"duration_ms"`
	Failure    string `json:"failure,omitempty"`
	Attempt    uint64 `json:"attempt,omitempty"`
	Manual     bool   `json:"manual,omitempty"`
	// RequestID is the id a savepoint request was answered with.
	RequestID string `json:"request_id,omitempty"`
	// Stop marks the savepoint of a stop with savepoint; Drain, one that
	// fired every window first.
	Stop  bool `json:"stop,omitempty"`
	Drain bool `json:"drain,omitempty"`
}

// SavepointRequest is the body of POST /v1/jobs/{id}/savepoints and of
// POST /v1/jobs/{id}/stop (stop with savepoint).
type SavepointRequest struct {
	// URL is the savepoint's directory (file:// or s3://); empty: a new
	// directory under the cluster's default (--savepoints).
	URL string `json:"url,omitempty"`
	// Drain, for a stop only, fires every window and timer (the final
	// watermark) before the savepoint.
	Drain bool `json:"drain,omitempty"`
}

// SavepointTriggered answers a savepoint or stop request (202): poll
// GET /v1/jobs/{id}/savepoints/{request_id}.
type SavepointTriggered struct {
	RequestID string `json:"request_id"`
	// ID is the savepoint's checkpoint id, URL its directory.
	ID  uint64 `json:"id"`
	URL string `json:"url"`
}

// Savepoints is the body of GET /v1/jobs/{id}/savepoints.
type Savepoints struct {
	Savepoints []Checkpoint `json:"savepoints"`
}

// Checkpoints is the body of GET /v1/jobs/{id}/checkpoints.
type Checkpoints struct {
	Counts CheckpointCounts `json:"counts"`
	// Latest is the latest completed checkpoint still retained.
	Latest *Checkpoint `json:"latest,omitempty"`
	// InProgress is the checkpoint in progress.
	InProgress *Checkpoint `json:"in_progress,omitempty"`
	// Retained are the completed checkpoints kept, oldest first.
	Retained []Checkpoint `json:"retained"`
	// History lists the recent checkpoints, newest first, the one in
	// progress included.
	History []Checkpoint `json:"history"`
	// Config is the job's checkpointing; nil when it does not checkpoint.
	Config *CheckpointConfig `json:"config,omitempty"`
	// Savepoints are the job's savepoints, oldest first.
	Savepoints []Checkpoint `json:"savepoints"`
}

// CheckpointCounts counts a job's checkpoints.
type CheckpointCounts struct {
	Completed  uint64 `json:"completed"`
	Failed     uint64 `json:"failed"`
	InProgress uint64 `json:"in_progress"`
	// ConsecutiveFailures counts the failures since the last completion.
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
}

// CheckpointConfig is how a job checkpoints and restarts.
type CheckpointConfig struct {
	IntervalMs        int64         `json:"interval_ms"`
	TimeoutMs         int64         `json:"timeout_ms"`
	MinPauseMs        int64         `json:"min_pause_ms"`
	TolerableFailures uint32        `json:"tolerable_failures"`
	Retain            uint32        `json:"retain"`
	Dir               string        `json:"dir,omitempty"`
	Restart           RestartConfig `json:"restart"`
}

// RestartConfig is a job's restart strategy.
type RestartConfig struct {
	// Strategy is none, fixed-delay or exponential-backoff.
	Strategy    string  `json:"strategy"`
	MaxAttempts uint32  `json:"max_attempts"` // 0: no limit
	DelayMs     int64   `json:"delay_ms,omitempty"`
	MaxDelayMs  int64   `json:"max_delay_ms,omitempty"`
	Multiplier  float64 `json:"multiplier,omitempty"`
}

// TriggeredCheckpoint is the body of the answer to POST
// /v1/jobs/{id}/checkpoints.
type TriggeredCheckpoint struct {
	ID uint64 `json:"id"`
}

// Jobs is the body of GET /v1/jobs.
type Jobs struct {
	Jobs []Job `json:"jobs"`
}

// Worker is one worker as GET /v1/workers returns it.
type Worker struct {
	ID             string    `json:"id"`
	Address        string    `json:"address"`
	Status         string    `json:"status"`
	InstanceID     string    `json:"instance_id"`
	Slots          uint32    `json:"slots"`
	SlotsFree      uint32    `json:"slots_free"`
	RegisteredAt   time.Time `json:"registered_at"`
	StatusChangeAt time.Time `json:"status_changed_at"`
	// Unreachable is set for an alive worker the leader could not reach:
	// its slots are skipped until its next heartbeat.
	Unreachable *Unreachable `json:"unreachable,omitempty"`
	Tasks       []Task       `json:"tasks,omitempty"`
}

// Unreachable says since when, and why, the leader cannot reach a worker.
type Unreachable struct {
	Since time.Time `json:"since"`
	Cause string    `json:"cause"`
}

// Workers is the body of GET /v1/workers.
type Workers struct {
	Workers []Worker `json:"workers"`
}

// Member is one control plane node.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	GRPCAddr string `json:"grpc_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Cluster is the body of GET /v1/cluster.
type Cluster struct {
	ClusterID string   `json:"cluster_id"`
	LeaderID  string   `json:"leader_id"`
	Term      uint64   `json:"term"`
	Members   []Member `json:"members"`
}

// JoinRequest is the body of POST /v1/cluster/members: the node to add.
type JoinRequest struct {
	NodeID    string `json:"node_id"`
	RaftAddr  string `json:"raft_addr"`
	GRPCAddr  string `json:"grpc_addr"`
	HTTPAddr  string `json:"http_addr"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// Node is the body of GET /v1/node: the answering node itself.
type Node struct {
	ID        string `json:"id"`
	ClusterID string `json:"cluster_id,omitempty"`
	RaftAddr  string `json:"raft_addr"`
	GRPCAddr  string `json:"grpc_addr"`
	HTTPAddr  string `json:"http_addr"`
	State     string `json:"state"`
	LeaderID  string `json:"leader_id,omitempty"`
	Term      uint64 `json:"term"`
	// AppliedIndex is the last Raft index applied on this node.
	AppliedIndex uint64 `json:"applied_index"`
}

// Overview is the body of GET /v1/overview.
type Overview struct {
	NodeID         string `json:"node_id"`
	LeaderID       string `json:"leader_id"`
	Workers        uint32 `json:"workers"`
	SlotsTotal     uint32 `json:"slots_total"`
	SlotsAvailable uint32 `json:"slots_available"`
	JobsRunning    uint32 `json:"jobs_running"`
	JobsPending    uint32 `json:"jobs_pending"`
	JobsFinished   uint32 `json:"jobs_finished"`
	JobsCancelled  uint32 `json:"jobs_cancelled"`
	JobsFailed     uint32 `json:"jobs_failed"`
}
