//go:build unix && !linux

package procs

import "syscall"

// sysProcAttr puts a child in its own process group, so that Kill reaches
// everything it starts.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
