package nexmark_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsOnlyTheSDK checks the package's rule: job binaries import it,
// so it may import the SDK and the standard library only.
func TestImportsOnlyTheSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		standard := !strings.Contains(strings.Split(p, "/")[0], ".")
		if !standard && p != "github.com/eddy-streams/eddy/plugin-sdk" {
			t.Errorf("nexmark imports %s", p)
		}
	}
}
