//go:build unix && !linux

package worker

import "syscall"

// sysProcAttr puts a plugin in its own process group, so that killing the
// group reaches anything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
