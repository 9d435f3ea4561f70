package procs

import (
	"fmt"
	"net"
	"sync"
)

var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// FreeAddr returns a loopback address ("127.0.0.1:port") whose port was free
// a moment ago and has not been handed out before by this process. Another
// process may still take it before it is used: a start that fails to listen
// says so in its log.
func FreeAddr(t TB) string {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !ports.used[port] {
			ports.used[port] = true
			return fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	t.Fatalf("find a free port: every port the kernel offered was handed out already")
	return ""
}
