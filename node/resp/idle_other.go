//go:build !unix

package resp

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: without unix sockets an idle connection keeps its
// buffers and reads through net.Conn.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (c *conn) readRaw(uintptr) bool { return true }
