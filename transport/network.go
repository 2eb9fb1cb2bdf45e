package transport

import (
	"context"
	"net"
)

// Network is how the transport reaches the outside world. TCPNetwork is the
// real one; InmemNetwork runs many nodes in one process and injects faults,
// and the same tests run against both.
type Network interface {
	// Listen opens a listener on addr ("host:port"; port 0 picks one).
	Listen(addr string) (net.Listener, error)
	// Dial connects to addr. It gives up when ctx ends.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCPNetwork is the Network of real TCP sockets. Its zero value is ready.
type TCPNetwork struct{}

var _ Network = TCPNetwork{}

// Listen opens a TCP listener.
func (TCPNetwork) Listen(addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(context.Background(), "tcp", addr)
}

// Dial opens a TCP connection. Go disables Nagle's algorithm on it, which the
// transport relies on: it batches writes itself.
func (TCPNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
