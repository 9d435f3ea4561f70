package worker_test

import (
	"testing"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
	"github.com/eddy-streams/eddy/worker"
)

// The worker names the SDK's variable without linking the SDK: the two
// must agree.
func TestStateDirVariable(t *testing.T) {
	if worker.EnvStateDir != sdk.EnvStateDir {
		t.Fatalf("the worker sets %s, the SDK reads %s", worker.EnvStateDir, sdk.EnvStateDir)
	}
}
