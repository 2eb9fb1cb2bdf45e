package resp

import (
	"bytes"
	"io"
	"sync"
)

// Protocol limits that Redis hard-codes and clients rely on.
const (
	// maxInlineLen bounds an inline command line and the header lines of a
	// multibulk command (Redis's PROTO_INLINE_MAX_SIZE).
	maxInlineLen = 64 << 10
	// unauthMaxMulti and unauthMaxBulk bound what a client that has not
	// authenticated yet may send, as Redis does, so an anonymous peer cannot
	// make the server buffer much.
	unauthMaxMulti = 10
	unauthMaxBulk  = 16384
	// readBufSize is the initial read buffer of a connection, and the size
	// it shrinks back to after a large command.
	readBufSize = 16 << 10
	// maxKeptArgs bounds the argument list kept between commands.
	maxKeptArgs = 1024
)

// protocolError is a request the server cannot parse. Its text is what
// Redis replies before closing the connection.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "Protocol error: " + e.msg }
func (e *protocolError) Unwrap() error { return ErrProtocol }

func protoErr(msg string) error { return &protocolError{msg: msg} }

// reader splits a client's byte stream into commands. It parses RESP
// multibulk requests (what clients send) and inline commands (what a
// person types into telnet), like Redis's networking.c, whose error texts
// it reproduces.
//
// The arguments it returns are slices of its buffer: they stay valid until
// the next call to fill, so a whole batch of commands can be handed on
// without copying. A command that arrives over several reads is parsed
// incrementally (the arguments found so far are remembered as offsets), so
// a large command costs linear time, and the buffer grows only as bytes
// actually arrive: a length header alone never allocates anything.
type reader struct {
	src io.Reader
	// buf[r:w] holds received, not yet consumed bytes. buf is nil until
	// the first fill and while the connection is idle (see conn.readIdle).
	buf  []byte
	r, w int
	// bufs supplies buf and takes back a buffer of the standard size.
	bufs *bufPool

	maxBulk  int
	maxMulti int
	maxBuf   int
	// unauth applies Redis's tighter limits to unauthenticated clients.
	unauth bool

	// State of a multibulk command that is not complete yet. multi is the
	// argument count its header declared (0: no command in progress), pos
	// the next byte to parse and spans the [start, end) offsets of the
	// arguments parsed so far; all offsets index buf and move with it.
	multi int
	pos   int
	spans []int

	// args is reused for every command returned.
	args [][]byte
}

func newReader(src io.Reader, cfg *Config, bufs *bufPool) *reader {
	rd := new(reader)
	rd.init(src, cfg, bufs)
	return rd
}

func (rd *reader) init(src io.Reader, cfg *Config, bufs *bufPool) {
	*rd = reader{
		src:      src,
		bufs:     bufs,
		maxBulk:  cfg.MaxBulkLen,
		maxMulti: cfg.MaxMultiBulkLen,
		maxBuf:   cfg.MaxQueryBuffer,
	}
}

// partial reports whether the buffer holds the beginning of a command.
// Call it after next has returned ok == false: the buffer then holds no
// complete command.
func (rd *reader) partial() bool { return rd.r < rd.w || rd.multi > 0 }

// idle forgets consumed input and gives the buffer back, when no command
// has begun (partial is false), so that an idle connection holds none.
// Arguments returned by next are invalid afterwards.
func (rd *reader) idle() {
	rd.r, rd.w, rd.multi, rd.pos = 0, 0, 0, 0
	rd.bufs.put(rd.buf)
	rd.buf = nil
	rd.trim()
}

// trim drops the argument lists a command with very many arguments grew.
func (rd *reader) trim() {
	if cap(rd.args) > maxKeptArgs {
		rd.args = nil
	}
	if rd.multi == 0 && cap(rd.spans) > 2*maxKeptArgs {
		rd.spans = nil
	}
}

// next returns the next complete command in the buffer. ok is false when
// the buffer holds no complete command (call fill). Empty commands (blank
// inline lines, "*0") are skipped as Redis does. The returned slice and the
// arguments in it are valid until the next fill.
func (rd *reader) next() (args [][]byte, ok bool, err error) {
	for {
		if rd.multi == 0 {
			if rd.r == rd.w {
				return nil, false, nil
			}
			if rd.buf[rd.r] != '*' {
				args, ok, err = rd.inline()
				if err != nil || !ok {
					return nil, false, err
				}
				if len(args) == 0 {
					continue
				}
				return args, true, nil
			}
			more, err := rd.multibulkHeader()
			if err != nil || !more {
				return nil, false, err
			}
			if rd.multi == 0 {
				continue // "*0" or "*-1": nothing to run
			}
		}
		done, err := rd.bulks()
		if err != nil || !done {
			return nil, false, err
		}
		rd.args = rd.args[:0]
		for i := 0; i < len(rd.spans); i += 2 {
			s, e := rd.spans[i], rd.spans[i+1]
			rd.args = append(rd.args, rd.buf[s:e:e])
		}
		rd.r = rd.pos
		rd.multi = 0
		return rd.args, true, nil
	}
}

// multibulkHeader parses "*<count>\r\n" at r. more is false if the line is
// not complete yet.
func (rd *reader) multibulkHeader() (more bool, err error) {
	cr := bytes.IndexByte(rd.buf[rd.r:rd.w], '\r')
	if cr < 0 {
		if rd.w-rd.r > maxInlineLen {
			return false, protoErr("too big mbulk count string")
		}
		return false, nil
	}
	cr += rd.r
	if cr-rd.r > maxInlineLen {
		// Checked here too so the outcome does not depend on how the
		// bytes were split into reads.
		return false, protoErr("too big mbulk count string")
	}
	if cr+1 >= rd.w {
		return false, nil // wait for the byte after '\r'
	}
	n, ok := parseInt(rd.buf[rd.r+1 : cr])
	limit := rd.maxMulti
	if rd.unauth {
		limit = min(limit, unauthMaxMulti)
	}
	if !ok || n > int64(limit) {
		return false, protoErr("invalid multibulk length")
	}
	rd.pos = cr + 2
	if n <= 0 {
		rd.r = rd.pos
		return true, nil
	}
	rd.multi = int(n)
	rd.spans = rd.spans[:0]
	return true, nil
}

// bulks parses "$<len>\r\n<bytes>\r\n" arguments from pos until the
// command is complete (done) or the buffer runs out.
func (rd *reader) bulks() (done bool, err error) {
	limit := rd.maxBulk
	if rd.unauth {
		limit = min(limit, unauthMaxBulk)
	}
	for len(rd.spans) < 2*rd.multi {
		if rd.pos >= rd.w {
			return false, nil
		}
		cr := bytes.IndexByte(rd.buf[rd.pos:rd.w], '\r')
		if cr < 0 {
			if rd.w-rd.pos > maxInlineLen {
				return false, protoErr("too big bulk count string")
			}
			return false, nil
		}
		cr += rd.pos
		if cr-rd.pos > maxInlineLen {
			return false, protoErr("too big bulk count string")
		}
		if cr+1 >= rd.w {
			return false, nil
		}
		if c := rd.buf[rd.pos]; c != '$' {
			return false, protoErr("expected '$', got '" + printable(c) + "'")
		}
		n, ok := parseInt(rd.buf[rd.pos+1 : cr])
		if !ok || n < 0 || n > int64(limit) {
			return false, protoErr("invalid bulk length")
		}
		start := cr + 2
		end := start + int(n)
		if end+2 > rd.w {
			return false, nil
		}
		// Like Redis, the two bytes after the data are skipped unchecked.
		rd.spans = append(rd.spans, start, end)
		rd.pos = end + 2
	}
	return true, nil
}

// inline parses one inline command line at r.
func (rd *reader) inline() (args [][]byte, ok bool, err error) {
	nl := bytes.IndexByte(rd.buf[rd.r:rd.w], '\n')
	if nl < 0 {
		if rd.w-rd.r > maxInlineLen {
			return nil, false, protoErr("too big inline request")
		}
		return nil, false, nil
	}
	if nl > maxInlineLen {
		return nil, false, protoErr("too big inline request")
	}
	line := rd.buf[rd.r : rd.r+nl]
	rd.r += nl + 1
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	args, err = splitInline(line, rd.args[:0])
	if err != nil {
		return nil, false, err
	}
	rd.args = args
	return args, true, nil
}

// fill reads more bytes from src, first making room: consumed bytes are
// dropped, and a buffer that one incomplete command fills is doubled, up
// to maxBuf. Arguments returned by next are invalid afterwards.
func (rd *reader) fill() error {
	if rd.buf == nil {
		rd.buf = rd.bufs.get()
	}
	if rd.r > 0 {
		rd.compact()
	}
	rd.trim()
	if rd.w == len(rd.buf) {
		if len(rd.buf) >= rd.maxBuf {
			return protoErr("query buffer limit reached")
		}
		nb := make([]byte, min(2*len(rd.buf), rd.maxBuf))
		copy(nb, rd.buf[:rd.w])
		rd.bufs.put(rd.buf)
		rd.buf = nb
	}
	n, err := rd.src.Read(rd.buf[rd.w:])
	rd.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// compact moves the unconsumed bytes to the front of the buffer, shrinking
// a buffer that a large command grew once it is no longer needed.
func (rd *reader) compact() {
	shift := rd.r
	rest := rd.w - rd.r
	if len(rd.buf) > readBufSize && rest <= readBufSize/2 {
		nb := rd.bufs.get()
		copy(nb, rd.buf[rd.r:rd.w])
		rd.buf = nb
	} else {
		copy(rd.buf, rd.buf[rd.r:rd.w])
	}
	rd.r, rd.w = 0, rest
	if rd.multi > 0 {
		rd.pos -= shift
		for i := range rd.spans {
			rd.spans[i] -= shift
		}
	}
}

// bufPool recycles the buffers of the standard size, readBufSize, that
// connections read into and write replies from, so that only connections
// with work in hand hold one (a server may have 10,000 idle clients).
// Buffers a large command or reply grew are left to the garbage collector.
// The zero value is ready to use; a nil *bufPool allocates every buffer.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() []byte {
	if bp != nil {
		if b, _ := bp.p.Get().(*[readBufSize]byte); b != nil {
			return b[:]
		}
	}
	return make([]byte, readBufSize)
}

// put takes b back if it is a standard buffer. The caller must hold no
// other reference to it.
func (bp *bufPool) put(b []byte) {
	if bp != nil && cap(b) == readBufSize {
		bp.p.Put((*[readBufSize]byte)(b[:readBufSize]))
	}
}

// splitInline splits an inline command line into arguments the way Redis's
// sdssplitargs does: blanks separate arguments; "double quotes" understand
// \n \r \t \b \a \xHH and backslash-escaped characters; 'single quotes'
// understand \'; a closing quote must be followed by a blank or the end.
// Unescaping happens in place (the output is never longer than the input),
// so the arguments are slices of line. A NUL byte ends the line, as it
// does for Redis's C string.
func splitInline(line []byte, args [][]byte) ([][]byte, error) {
	if z := bytes.IndexByte(line, 0); z >= 0 {
		line = line[:z]
	}
	n := len(line)
	i := 0
	for {
		for i < n && isSpace(line[i]) {
			i++
		}
		if i >= n {
			return args, nil
		}
		start, w := i, i
		inq, insq := false, false
	token:
		for {
			switch {
			case inq:
				if i >= n {
					return nil, protoErr("unbalanced quotes in request")
				}
				c := line[i]
				switch {
				case c == '\\' && i+3 < n && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					line[w] = unhex(line[i+2])<<4 | unhex(line[i+3])
					w++
					i += 4
				case c == '\\' && i+1 < n:
					i++
					switch c = line[i]; c {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					}
					line[w] = c
					w++
					i++
				case c == '"':
					if i+1 < n && !isSpace(line[i+1]) {
						return nil, protoErr("unbalanced quotes in request")
					}
					i++
					break token
				default:
					line[w] = c
					w++
					i++
				}
			case insq:
				if i >= n {
					return nil, protoErr("unbalanced quotes in request")
				}
				c := line[i]
				switch {
				case c == '\\' && i+1 < n && line[i+1] == '\'':
					line[w] = '\''
					w++
					i += 2
				case c == '\'':
					if i+1 < n && !isSpace(line[i+1]) {
						return nil, protoErr("unbalanced quotes in request")
					}
					i++
					break token
				default:
					line[w] = c
					w++
					i++
				}
			default:
				if i >= n {
					break token
				}
				c := line[i]
				i++
				switch c {
				case ' ', '\n', '\r', '\t':
					break token
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					line[w] = c
					w++
				}
			}
		}
		args = append(args, line[start:w:w])
	}
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// printable renders one byte for an error message without breaking the
// reply line.
func printable(c byte) string {
	if c >= ' ' && c < 0x7f {
		return string(rune(c))
	}
	const hex = "0123456789abcdef"
	return string([]byte{'\\', 'x', hex[c>>4], hex[c&15]})
}

// parseInt parses a decimal int64 as strictly as Redis's string2ll: an
// optional '-', no '+', no blanks, no leading zeros, no overflow.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
