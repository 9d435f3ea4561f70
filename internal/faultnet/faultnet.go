// Package faultnet is an in-process network fault injector for tests that
// cannot use network namespaces: every node dials through its own Dialer, and
// the Network refuses or cuts connections between nodes that a test
// partitioned. It needs no privileges and works on loopback.
//
// It must not depend on any other Eddy package.
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// ErrPartitioned is returned by a Dialer when the target is on the other side
// of a partition.
var ErrPartitioned = errors.New("faultnet: partitioned")

// Network knows which node listens on which address and which nodes may talk.
// It is safe for concurrent use.
type Network struct {
	mu    sync.Mutex
	owner map[string]string // listen address -> node
	group map[string]int    // node -> partition group; absent means group 0
	conns map[*conn]struct{}
}

// New returns a Network with every node connected.
func New() *Network {
	return &Network{
		owner: map[string]string{},
		group: map[string]int{},
		conns: map[*conn]struct{}{},
	}
}

// Register records that node listens on addr.
func (n *Network) Register(node, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.owner[addr] = node
}

// Partition puts the given nodes in a group of their own, cut off from all
// others, and closes the connections that cross the new boundary.
func (n *Network) Partition(nodes ...string) {
	n.mu.Lock()
	g := 1
	for _, v := range n.group {
		g = max(g, v+1)
	}
	for _, id := range nodes {
		n.group[id] = g
	}
	var cut []*conn
	for c := range n.conns {
		// The owner is looked up now: a connection may have been dialled
		// before its target registered.
		if to, ok := n.owner[c.addr]; ok && n.group[c.from] != n.group[to] {
			cut = append(cut, c)
		}
	}
	n.mu.Unlock()
	for _, c := range cut {
		_ = c.Close()
	}
}

// Heal reconnects every node.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = map[string]int{}
}

// Reachable reports whether node from may talk to node to.
func (n *Network) Reachable(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.group[from] == n.group[to]
}

// Dialer returns the dial function of node from. Addresses that no node
// registered are always reachable.
func (n *Network) Dialer(from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.mu.Lock()
		to, known := n.owner[addr]
		blocked := known && n.group[from] != n.group[to]
		n.mu.Unlock()
		if blocked {
			return nil, fmt.Errorf("dial %s from %s: %w", addr, from, ErrPartitioned)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return c, err
		}
		wc := &conn{Conn: c, net: n, from: from, addr: addr}
		n.mu.Lock()
		// The partition may have changed while dialling.
		if to, known = n.owner[addr]; known && n.group[from] != n.group[to] {
			n.mu.Unlock()
			_ = c.Close()
			return nil, fmt.Errorf("dial %s from %s: %w", addr, from, ErrPartitioned)
		}
		n.conns[wc] = struct{}{}
		n.mu.Unlock()
		return wc, nil
	}
}

type conn struct {
	net.Conn
	net        *Network
	from, addr string
	once       sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.net.mu.Lock()
		delete(c.net.conns, c)
		c.net.mu.Unlock()
	})
	return c.Conn.Close()
}
