package transport

import (
	"context"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// InmemNetwork is a Network whose connections are in-process pipes
// (net.Pipe), so a test can run many nodes in one process and break the
// links between them on purpose: Disconnect makes an address unreachable
// (its connections are cut and dials to it refused) until Reconnect.
// Addresses are "host:port" strings in the network's own namespace; a port
// of 0 picks a free one. Create it with NewInmemNetwork. It is safe for
// concurrent use.
type InmemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*inmemListener
	down      map[string]bool
	conns     map[*inmemConn]struct{}
	nextPort  int
	nextConn  int
}

var _ Network = (*InmemNetwork)(nil)

// NewInmemNetwork returns an empty in-memory network.
func NewInmemNetwork() *InmemNetwork {
	return &InmemNetwork{
		listeners: make(map[string]*inmemListener),
		down:      make(map[string]bool),
		conns:     make(map[*inmemConn]struct{}),
		nextPort:  10000,
	}
}

// Listen listens on addr. A port of 0 (or an empty addr) picks an unused
// port; the listener's Addr says which.
func (n *InmemNetwork) Listen(addr string) (net.Listener, error) {
	host, port := "inmem", "0"
	if addr != "" {
		var err error
		if host, port, err = net.SplitHostPort(addr); err != nil {
			return nil, &net.OpError{Op: "listen", Net: "inmem", Err: err}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == "0" {
		for {
			n.nextPort++
			addr = net.JoinHostPort(host, strconv.Itoa(n.nextPort))
			if n.listeners[addr] == nil {
				break
			}
		}
	}
	if n.listeners[addr] != nil {
		return nil, &net.OpError{Op: "listen", Net: "inmem", Addr: inmemAddr(addr), Err: syscall.EADDRINUSE}
	}
	l := &inmemListener{
		net:    n,
		addr:   inmemAddr(addr),
		accept: make(chan net.Conn),
		done:   make(chan struct{}),
	}
	n.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener at addr and waits (until ctx ends) for it
// to accept. Like a real refused dial, it fails at once with an error
// matching syscall.ECONNREFUSED if nothing listens on addr or addr is
// disconnected.
func (n *InmemNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	refused := &net.OpError{Op: "dial", Net: "inmem", Addr: inmemAddr(addr), Err: syscall.ECONNREFUSED}
	n.mu.Lock()
	l := n.listeners[addr]
	if l == nil || n.down[addr] {
		n.mu.Unlock()
		return nil, refused
	}
	n.nextConn++
	local := inmemAddr("inmem-client:" + strconv.Itoa(n.nextConn))
	a, b := net.Pipe()
	client := &inmemConn{Conn: a, net: n, local: local, remote: l.addr}
	server := &inmemConn{Conn: b, net: n, local: l.addr, remote: local}
	n.conns[client] = struct{}{}
	n.conns[server] = struct{}{}
	n.mu.Unlock()

	var err error
	select {
	case l.accept <- server:
		return client, nil
	case <-l.done:
		err = refused
	case <-ctx.Done():
		err = &net.OpError{Op: "dial", Net: "inmem", Addr: inmemAddr(addr), Err: ctx.Err()}
	}
	client.Close()
	server.Close()
	return nil, err
}

// Disconnect makes addr unreachable: every open connection to or from it
// is closed (both ends see it fail, as after a crash or a reset) and dials
// to it are refused until Reconnect. Its listener stays open.
func (n *InmemNetwork) Disconnect(addr string) {
	n.mu.Lock()
	n.down[addr] = true
	var cut []*inmemConn
	for c := range n.conns {
		if string(c.local) == addr || string(c.remote) == addr {
			cut = append(cut, c)
		}
	}
	n.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

// Reconnect undoes Disconnect: dials to addr succeed again.
func (n *InmemNetwork) Reconnect(addr string) {
	n.mu.Lock()
	delete(n.down, addr)
	n.mu.Unlock()
}

// Conns returns how many connection ends to or from addr are open, so a
// test can wait for connections to be closed or pooled.
func (n *InmemNetwork) Conns(addr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	cnt := 0
	for c := range n.conns {
		if string(c.local) == addr || string(c.remote) == addr {
			cnt++
		}
	}
	return cnt
}

// inmemAddr is an address in an InmemNetwork.
type inmemAddr string

func (a inmemAddr) Network() string { return "inmem" }
func (a inmemAddr) String() string  { return string(a) }

// inmemConn is one end of a pipe, with addresses and bookkeeping so
// Disconnect can find it.
type inmemConn struct {
	net.Conn
	net    *InmemNetwork
	local  inmemAddr
	remote inmemAddr
	once   sync.Once
}

func (c *inmemConn) LocalAddr() net.Addr  { return c.local }
func (c *inmemConn) RemoteAddr() net.Addr { return c.remote }

// Close closes both directions of this end; the peer's reads see io.EOF.
func (c *inmemConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.net.mu.Lock()
		delete(c.net.conns, c)
		c.net.mu.Unlock()
	})
	return err
}

// inmemListener accepts the server ends of pipes dialled to its address.
type inmemListener struct {
	net    *InmemNetwork
	addr   inmemAddr
	accept chan net.Conn
	done   chan struct{}
	once   sync.Once
}

func (l *inmemListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "inmem", Addr: l.addr, Err: net.ErrClosed}
	}
}

// Close stops accepting and frees the address. Accepted connections stay
// open, as with TCP.
func (l *inmemListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.net.mu.Lock()
		if l.net.listeners[string(l.addr)] == l {
			delete(l.net.listeners, string(l.addr))
		}
		l.net.mu.Unlock()
	})
	return nil
}

func (l *inmemListener) Addr() net.Addr { return l.addr }
