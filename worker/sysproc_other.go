//go:build !unix

package worker

import "syscall"

// sysProcAttr has no process groups to offer here.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup does nothing: go-plugin kills the plugin process itself.
func killGroup(int) {}
