package resp

import (
	"strconv"
)

// writer appends RESP replies to a buffer that the connection flushes. The
// protocol version (2, or 3 after HELLO 3) only changes how nulls and maps
// are spelled.
type writer struct {
	b     []byte
	proto int
}

func (w *writer) simple(s string) {
	w.b = append(w.b, '+')
	w.b = append(w.b, s...)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) ok() { w.b = append(w.b, "+OK\r\n"...) }

// errorString writes an error reply; msg starts with the error code
// ("ERR ...", "NOAUTH ..."). Line breaks in msg are replaced by blanks, as
// Redis does, so that a message can never break the framing.
func (w *writer) errorString(msg string) {
	w.b = append(w.b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.b = append(w.b, c)
	}
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) int(n int64) {
	w.b = append(w.b, ':')
	w.b = strconv.AppendInt(w.b, n, 10)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) header(c byte, n int) {
	w.b = append(w.b, c)
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) bulk(v []byte) {
	w.header('$', len(v))
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) bulkString(s string) {
	w.header('$', len(s))
	w.b = append(w.b, s...)
	w.b = append(w.b, '\r', '\n')
}

// null writes a missing value: $-1 in RESP2, _ in RESP3.
func (w *writer) null() {
	if w.proto == 3 {
		w.b = append(w.b, "_\r\n"...)
		return
	}
	w.b = append(w.b, "$-1\r\n"...)
}

func (w *writer) array(n int) { w.header('*', n) }

// mapLen starts a map of n pairs: a RESP3 map, or a flat array of 2n
// elements in RESP2.
func (w *writer) mapLen(n int) {
	if w.proto == 3 {
		w.header('%', n)
		return
	}
	w.header('*', 2*n)
}
