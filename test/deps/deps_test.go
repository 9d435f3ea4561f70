// Package deps checks the dependency rules of the tree: a job binary carries
// only the SDK, its runtime and its connectors.
package deps

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/eddy-streams/eddy"

// deps lists the packages the given packages depend on, themselves included.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-test=false", "-f", "{{.ImportPath}}"}, pkgs...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func TestSDKDoesNotImportControlPlaneOrWorker(t *testing.T) {
	for _, p := range deps(t, module+"/plugin-sdk/...") {
		for _, banned := range []string{module + "/controlplane", module + "/worker", module + "/client", module + "/cmd"} {
			if p == banned || strings.HasPrefix(p, banned+"/") {
				t.Errorf("plugin-sdk depends on %s", p)
			}
		}
	}
}

func TestWorkerDoesNotImportControlPlane(t *testing.T) {
	for _, p := range deps(t, module+"/worker/...") {
		if strings.HasPrefix(p, module+"/controlplane") {
			t.Errorf("worker depends on %s", p)
		}
	}
}

func TestHandshakeStandsAlone(t *testing.T) {
	for _, p := range deps(t, module+"/plugin-sdk/handshake") {
		if strings.HasPrefix(p, module+"/") && p != module+"/plugin-sdk/handshake" && p != module+"/proto/pluginpb" {
			t.Errorf("plugin-sdk/handshake depends on %s", p)
		}
	}
}
