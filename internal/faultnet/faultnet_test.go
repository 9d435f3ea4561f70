package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestPartitionRefusesAndCuts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	n := New()
	n.Register("b", ln.Addr().String())
	dial := n.Dialer("a")
	ctx := context.Background()

	c, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial before partition: %v", err)
	}
	n.Partition("b")
	if n.Reachable("a", "b") {
		t.Fatal("a reaches b across a partition")
	}
	// The open connection was cut.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a cut connection succeeded")
	}
	if _, err := dial(ctx, "tcp", ln.Addr().String()); !errors.Is(err, ErrPartitioned) {
		t.Fatalf("dial across partition: got %v, want ErrPartitioned", err)
	}
	n.Heal()
	c2, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	_ = c2.Close()
}
