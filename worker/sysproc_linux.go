package worker

import "syscall"

// sysProcAttr puts a plugin in its own process group, so that killing the
// group reaches anything it started, and has the kernel kill it if the
// worker dies without running its cleanups (SIGKILL, a crash).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
