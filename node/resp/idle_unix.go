//go:build unix

package resp

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawConnOf returns the raw socket of nc for readIdle, or nil if it has
// none.
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readRaw is RawConn.Read's callback for an idle connection: it reads what
// the socket holds into the read buffer, taking the buffers only now.
// When the socket holds nothing it gives them back and returns false, and
// RawConn.Read parks the goroutine until the socket is readable (or the
// read deadline passes) and calls it again. Its result is in c.rerr.
func (c *conn) readRaw(fd uintptr) bool {
	c.acquire()
	for {
		n, err := syscall.Read(int(fd), c.rd.buf[c.rd.w:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.release()
			return false
		case err != nil:
			c.rerr = os.NewSyscallError("read", err)
		case n == 0:
			c.rerr = io.EOF
		default:
			c.rd.w += n
		}
		return true
	}
}
