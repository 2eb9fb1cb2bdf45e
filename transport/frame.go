package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// A frame is one message on a stream:
//
//	+-------------------------+--------+------------------+
//	| body length (uint32 BE) |  kind  |   msgpack body   |
//	+-------------------------+--------+------------------+
//	          4 bytes           1 byte    length bytes
//
// The length counts the body only and is checked against
// Config.MaxFrameSize before a byte of the body is read or allocated.
const frameHeaderSize = 5

// frameKind says what a frame's body holds. The values are part of the wire
// format: append new kinds at the end, never renumber. A receiver skips a
// well-formed frame of a kind it does not know (the server answers it with
// CodeBadRequest when it can read a request ID from it), so a newer peer can
// add kinds without breaking older ones. Zero is never valid, which catches
// many streams that are not this protocol at all.
type frameKind uint8

const (
	// kindRequest frames carry one msgpack Request, client to server.
	kindRequest frameKind = iota + 1
	// kindResponse frames carry one msgpack Response, server to client.
	kindResponse
	// kindAuthHello opens the secret handshake, client to server (see
	// auth.go for this and the next four kinds' bodies).
	kindAuthHello
	// kindAuthChallenge carries the server's nonce.
	kindAuthChallenge
	// kindAuthProof carries the client's proof.
	kindAuthProof
	// kindAuthOK accepts the connection and carries the server's proof.
	kindAuthOK
	// kindAuthFail says, in text, why the server refuses the connection;
	// the server closes it next. A client that sent no hello can receive
	// it too, as the answer to its first request.
	kindAuthFail
)

// bufferSize is the read buffer of every connection. Frames that fit are
// decoded in place; larger ones are read into a buffer of their own.
const bufferSize = 32 << 10

var errZeroKind = fmt.Errorf("%w: frame kind 0", ErrMalformed)

// frameReader splits a byte stream into frames.
type frameReader struct {
	br  *bufio.Reader
	max int
	// used is how much of br's buffer the last frame returned in place
	// still occupies; it is discarded at the next call.
	used int
	// broken is set once a read failed part-way through a frame: the stream
	// position is lost and the connection cannot be used any more.
	broken bool
}

func newFrameReader(r io.Reader, maxBody int) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, bufferSize), max: maxBody}
}

// release discards the previous frame from the buffer.
func (f *frameReader) release() {
	if f.used > 0 {
		_, _ = f.br.Discard(f.used) // buffered already: cannot fail
		f.used = 0
	}
}

// buffered reports whether a whole frame (or a header that will fail
// validation at once) is already buffered, so that next will not block. The
// server flushes its replies whenever the answer is no.
//
// When it says yes, next returns that frame without reading, so without
// moving or overwriting the buffer: the bodies next returned before stay
// intact. A client connection's reader relies on that to decode replies
// in place and copy them out only once buffered says no (see deliverAll).
func (f *frameReader) buffered() bool {
	f.release()
	n := f.br.Buffered()
	if n < frameHeaderSize {
		return false
	}
	hdr, _ := f.br.Peek(frameHeaderSize)
	size := binary.BigEndian.Uint32(hdr)
	if uint64(size) > uint64(f.max) || hdr[4] == 0 {
		return true
	}
	return uint64(n) >= frameHeaderSize+uint64(size)
}

// peekHeader returns the header of the frame next() failed on, if it is
// still buffered (next refuses a bad header without consuming it).
func (f *frameReader) peekHeader() []byte {
	if f.br.Buffered() < frameHeaderSize {
		return nil
	}
	hdr, _ := f.br.Peek(frameHeaderSize)
	return hdr
}

// next returns the next frame. body is owned by the caller when owned is
// true; otherwise it aliases the read buffer and is valid until a later
// call reads from the connection, which only one that buffered did not
// vouch for does. An error that leaves f.broken false (a read deadline while
// waiting for a frame to arrive) can be retried; any other error ends the
// stream: ErrFrameTooLarge or ErrMalformed for bad input, the read error
// (io.EOF at a frame boundary) otherwise.
func (f *frameReader) next() (kind frameKind, body []byte, owned bool, err error) {
	if f.broken {
		return 0, nil, false, io.ErrUnexpectedEOF
	}
	f.release()
	hdr, err := f.br.Peek(frameHeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, false, err
	}
	size := binary.BigEndian.Uint32(hdr)
	kind = frameKind(hdr[4])
	if uint64(size) > uint64(f.max) {
		f.broken = true
		return 0, nil, false, fmt.Errorf("%w: %d-byte frame, limit %d", ErrFrameTooLarge, size, f.max)
	}
	if kind == 0 {
		f.broken = true
		return 0, nil, false, errZeroKind
	}
	total := frameHeaderSize + int(size)
	if total <= f.br.Size() {
		// Fits the read buffer: decode in place, no copy.
		b, err := f.br.Peek(total)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, false, err // nothing consumed: retryable
		}
		f.used = total
		return kind, b[frameHeaderSize:], false, nil
	}
	// Larger than the buffer: read into a buffer of its own. The length was
	// checked above, and the buffer grows only as bytes actually arrive, so
	// a peer that announces a big frame and stalls costs little memory.
	_, _ = f.br.Discard(frameHeaderSize)
	f.broken = true // until the body is read in full
	body = make([]byte, 0, min(int(size), 4*bufferSize))
	for len(body) < int(size) {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(int(size), 2*cap(body)))
			copy(grown, body)
			body = grown
		}
		n, err := io.ReadFull(f.br, body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, false, err
		}
	}
	f.broken = false
	return kind, body, true, nil
}

// appendFrameHeader reserves a header at the end of b; finishFrame fills it
// in once the body has been appended after it.
func appendFrameHeader(b []byte, kind frameKind) []byte {
	return append(b, 0, 0, 0, 0, byte(kind))
}

// finishFrame writes the body length into the header that starts at
// b[start:]. It reports false, leaving b untouched, if the body exceeds
// maxBody; the caller then truncates b back to start.
func finishFrame(b []byte, start, maxBody int) bool {
	size := len(b) - start - frameHeaderSize
	if size > maxBody {
		return false
	}
	binary.BigEndian.PutUint32(b[start:], uint32(size))
	return true
}
