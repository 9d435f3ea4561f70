//go:build unix

package worker

import "syscall"

// killGroup kills the process group a plugin leads (see sysProcAttr). The
// group outlives its leader while any member lives, so this also reaches
// what the plugin started after the plugin itself has gone.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
