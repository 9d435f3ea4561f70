package s3test

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the gateway if the test binary dies
// before its cleanup runs, so no versitygw outlives a crashed test.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
