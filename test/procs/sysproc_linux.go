package procs

import "syscall"

// sysProcAttr puts a child in its own process group, so that Kill reaches
// everything it starts, and has the kernel kill it if this process dies
// without running its cleanups (a test binary killed on timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
