package jobmanager

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eddy-streams/eddy/controlplane"
	"github.com/eddy-streams/eddy/proto/eddypb"
	"github.com/eddy-streams/eddy/proto/pluginpb"
)

func TestRestartDelay(t *testing.T) {
	exp := &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF, DelayMs: 100, MaxDelayMs: 1000, Multiplier: 3}
	for n, want := range map[uint32]time.Duration{1: 100 * time.Millisecond, 2: 300 * time.Millisecond, 3: 900 * time.Millisecond, 4: time.Second, 40: time.Second} {
		if got := restartDelay(exp, n); got != want {
			t.Errorf("exponential restart %d: %s, want %s", n, got, want)
		}
	}
	fixed := &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 250}
	if got := restartDelay(fixed, 9); got != 250*time.Millisecond {
		t.Errorf("fixed delay: %s", got)
	}
	if got := restartDelay(&pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF}, 2); got != 2*DefaultRestartDelay {
		t.Errorf("default backoff, second restart: %s", got)
	}
}

func TestRestartStrategyDefaultsAndOverrides(t *testing.T) {
	cp := &pluginpb.JobGraph{Checkpointing: &pluginpb.CheckpointConfig{IntervalMs: 1000}}
	plain := &pluginpb.JobGraph{}
	tests := []struct {
		name   string
		g      *pluginpb.JobGraph
		config map[string]string
		want   *pluginpb.RestartStrategy
	}{
		{"checkpointing job", cp, nil, &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 1000}},
		{"plain job", plain, nil, &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_NONE}},
		{"plain job with attempts", plain, map[string]string{ConfigRestartAttempts: "2"}, &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_FIXED_DELAY, DelayMs: 1000, MaxAttempts: 2}},
		{"graph strategy with attempts", &pluginpb.JobGraph{Restart: &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF, DelayMs: 5, MaxAttempts: 9}},
			map[string]string{ConfigRestartAttempts: "0"}, &pluginpb.RestartStrategy{Kind: pluginpb.RestartStrategy_KIND_EXPONENTIAL_BACKOFF, DelayMs: 5}},
	}
	for _, tt := range tests {
		r, err := RestartStrategy(&eddypb.JobSpec{Config: tt.config}, tt.g)
		if err != nil || r.String() != tt.want.String() {
			t.Errorf("%s: %v, %v; want %v", tt.name, r, err, tt.want)
		}
	}
	if _, err := RestartStrategy(&eddypb.JobSpec{Config: map[string]string{ConfigRestartAttempts: "many"}}, cp); !errors.Is(err, controlplane.ErrInvalidArgument) {
		t.Errorf("bad attempts: %v", err)
	}
}

func TestCheckpointConfigOverrides(t *testing.T) {
	g := &pluginpb.JobGraph{Checkpointing: &pluginpb.CheckpointConfig{IntervalMs: 1000, Retain: 3}}
	c, err := CheckpointConfig(&eddypb.JobSpec{Config: map[string]string{ConfigCheckpointInterval: "250ms"}}, g)
	if err != nil || c.IntervalMs != 250 || c.Retain != 3 || c.TimeoutMs != DefaultCheckpointTimeout.Milliseconds() {
		t.Errorf("override: %v, %v", c, err)
	}
	if g.Checkpointing.IntervalMs != 1000 {
		t.Error("the override changed the graph")
	}
	for _, bad := range []string{"soon", "-1s"} {
		if _, err := CheckpointConfig(&eddypb.JobSpec{Config: map[string]string{ConfigCheckpointInterval: bad}}, g); !errors.Is(err, controlplane.ErrInvalidArgument) {
			t.Errorf("interval %q: %v", bad, err)
		}
	}
	if c, err := CheckpointConfig(&eddypb.JobSpec{}, &pluginpb.JobGraph{}); c != nil || err != nil {
		t.Errorf("job without checkpointing: %v, %v", c, err)
	}
	if _, err := CheckpointConfig(&eddypb.JobSpec{Config: map[string]string{ConfigCheckpointInterval: "1s"}}, &pluginpb.JobGraph{}); !errors.Is(err, controlplane.ErrInvalidArgument) {
		t.Errorf("interval on a job without checkpointing: %v", err)
	}
}

func TestCarriedNames(t *testing.T) {
	for name, want := range map[string]string{
		"src-0.state":                     "../chk-4/src-0.state",
		"../chk-2/src-0.state":            "../chk-2/src-0.state",
		"../shared/chk-3/db-1-000007.sst": "../shared/chk-3/db-1-000007.sst",
		"":                                "",
	} {
		if got := besideName(4, name); got != want {
			t.Errorf("besideName(4, %q) = %q, want %q", name, got, want)
		}
	}
	// A savepoint cannot take incremental state: it fails rather than
	// leave the state out.
	cp := &copier{rec: &eddypb.CheckpointRecord{CheckpointId: 5, Savepoint: true}, copied: map[string]string{}}
	_, err := cp.carry(t.Context(), &finalState{cp: 3}, &pluginpb.OperatorSubtaskState{Uid: "sum", File: "sum-0.state", Shared: []string{"../shared/chk-3/x.sst"}})
	if err == nil || !strings.Contains(err.Error(), "incremental state") {
		t.Errorf("carrying incremental state into a savepoint: %v", err)
	}
}
