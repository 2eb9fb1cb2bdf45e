package transport

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// The secret handshake runs at the start of a connection, after TLS if
// any, when Config.Secret is set. The client speaks first, so that a
// server without a secret, or a client without one, learns of the
// mismatch at once rather than at a timeout:
//
//	client -> server  kindAuthHello      authVersion (1 byte) | client nonce (32 bytes)
//	server -> client  kindAuthChallenge  server nonce (32 bytes)
//	client -> server  kindAuthProof      HMAC-SHA256(secret, authLabelClient | 0 | cnonce | snonce | binding)
//	server -> client  kindAuthOK         HMAC-SHA256(secret, authLabelServer | 0 | cnonce | snonce | binding)
//
// The server answers kindAuthFail (a reason, as text) instead of the
// challenge or the OK when it refuses, and closes the connection. Both
// nonces are fresh random bytes, so a recorded proof is worth nothing on
// another connection; the two labels differ, so one side's proof is never
// valid as the other's; binding is empty over plain TCP and TLS keying
// material (an RFC 8446 exporter) over TLS, so a proof cannot be relayed
// into another TLS session. Proofs are compared in constant time.
const (
	authVersion       = 1
	nonceSize         = 32
	macSize           = sha256.Size
	helloSize         = 1 + nonceSize
	authLabelClient   = "starling transport auth v1 client"
	authLabelServer   = "starling transport auth v1 server"
	tlsExporterLabel  = "EXPORTER-starling-transport-auth"
	maxHandshakeFrame = 512 // far above what the handshake sends
	maxReasonLen      = 256
)

// authMAC is one side's proof of the secret for this connection.
func authMAC(secret []byte, label string, cnonce, snonce, binding []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(cnonce)
	m.Write(snonce)
	m.Write(binding)
	return m.Sum(nil)
}

// writeFrame writes one frame made of parts.
func writeFrame(w io.Writer, kind frameKind, parts ...[]byte) error {
	b := appendFrameHeader(make([]byte, 0, frameHeaderSize+maxReasonLen), kind)
	for _, p := range parts {
		b = append(b, p...)
	}
	finishFrame(b, 0, maxFrameLimit)
	_, err := w.Write(b)
	return err
}

// refuse sends the peer the reason it is refused and returns it as an
// ErrAuth error. A failure to send is ignored: the connection is closed
// next in any case.
func refuse(w io.Writer, reason string) error {
	_ = writeFrame(w, kindAuthFail, []byte(reason))
	return fmt.Errorf("%w: %s", ErrAuth, reason)
}

// refusedBy turns the body of a kindAuthFail frame into an ErrAuth error.
// The text comes from the network, so it is shortened and quoted.
func refusedBy(reason []byte) error {
	return fmt.Errorf("%w: refused by the peer: %q", ErrAuth, reason[:min(len(reason), maxReasonLen)])
}

// handshakeFrame reads one frame of at most maxHandshakeFrame bytes.
// Bytes that are not a frame are the peer's protocol error, reported as
// ErrMalformed or ErrFrameTooLarge; I/O errors are returned as they are.
func handshakeFrame(fr *frameReader) (frameKind, []byte, error) {
	limit := fr.max
	fr.max = min(limit, maxHandshakeFrame)
	kind, body, _, err := fr.next()
	fr.max = limit
	return kind, body, err
}

// serverAuth runs the server's side of the secret handshake on a fresh
// connection. It returns nil once the client has proved the secret (and
// been sent the server's proof), an ErrAuth error once it has refused the
// client (and told it why), or the I/O error that cut the handshake
// short. rnd supplies the server nonce.
func serverAuth(w io.Writer, fr *frameReader, secret, binding []byte, rnd io.Reader) error {
	kind, body, err := handshakeFrame(fr)
	if err != nil {
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrFrameTooLarge) {
			return refuse(w, "authentication required: this server needs the cluster secret")
		}
		return err
	}
	if kind != kindAuthHello {
		return refuse(w, "authentication required: this server needs the cluster secret")
	}
	if len(body) != helloSize || body[0] != authVersion {
		return refuse(w, "unsupported authentication handshake")
	}
	var cnonce, snonce [nonceSize]byte
	copy(cnonce[:], body[1:])
	if _, err := io.ReadFull(rnd, snonce[:]); err != nil {
		return err
	}
	if err := writeFrame(w, kindAuthChallenge, snonce[:]); err != nil {
		return err
	}
	kind, body, err = handshakeFrame(fr)
	switch {
	case err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge):
		return err
	case err != nil || kind != kindAuthProof || len(body) != macSize:
		return refuse(w, "malformed authentication proof")
	case !hmac.Equal(body, authMAC(secret, authLabelClient, cnonce[:], snonce[:], binding)):
		return refuse(w, "wrong cluster secret")
	}
	return writeFrame(w, kindAuthOK, authMAC(secret, authLabelServer, cnonce[:], snonce[:], binding))
}

// clientAuth runs the client's side of the secret handshake. It returns
// nil once both sides have proved the secret, an ErrAuth error if the
// server refused or failed to prove it, or the I/O error that cut the
// handshake short. rnd supplies the client nonce.
func clientAuth(w io.Writer, fr *frameReader, secret, binding []byte, rnd io.Reader) error {
	var cnonce, snonce [nonceSize]byte
	if _, err := io.ReadFull(rnd, cnonce[:]); err != nil {
		return err
	}
	if err := writeFrame(w, kindAuthHello, []byte{authVersion}, cnonce[:]); err != nil {
		return err
	}
	body, err := serverAnswer(fr, kindAuthChallenge, nonceSize)
	if err != nil {
		return err
	}
	copy(snonce[:], body)
	if err := writeFrame(w, kindAuthProof, authMAC(secret, authLabelClient, cnonce[:], snonce[:], binding)); err != nil {
		return err
	}
	if body, err = serverAnswer(fr, kindAuthOK, macSize); err != nil {
		return err
	}
	if !hmac.Equal(body, authMAC(secret, authLabelServer, cnonce[:], snonce[:], binding)) {
		return fmt.Errorf("%w: the peer did not prove it knows the cluster secret", ErrAuth)
	}
	return nil
}

// serverAnswer reads the server's next handshake frame, which must be of
// kind want with a size-byte body. A refusal, or anything else that is not
// an I/O error, is an ErrAuth error saying why.
func serverAnswer(fr *frameReader, want frameKind, size int) ([]byte, error) {
	kind, body, err := handshakeFrame(fr)
	switch {
	case err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: the peer does not speak the handshake: %w", ErrAuth, err)
	case kind == kindAuthFail:
		return nil, refusedBy(body)
	case kind != want || len(body) != size:
		return nil, fmt.Errorf("%w: unexpected answer to the handshake (frame kind %d, %d bytes)", ErrAuth, kind, len(body))
	}
	return body, nil
}

// isIOError reports whether err is a failure of the connection itself
// (closed, reset, timed out) rather than something the peer chose to say.
// During a handshake the first means the peer may be gone (ErrUnreachable),
// the second that it refused us (ErrAuth).
func isIOError(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && !isTLSAlert(op)
}

// isTLSAlert reports whether err is a TLS alert, sent by the peer or
// raised locally: crypto/tls reports both as a *net.OpError with these
// operation names.
func isTLSAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "remote error" || op.Op == "local error")
}

// isRemoteTLSAlert reports whether err is a TLS alert the peer sent. On a
// connection that is already up, that is how a TLS 1.3 server refuses a
// client certificate: the client's side of the handshake has completed by
// then, so it learns of the refusal only on its first read.
func isRemoteTLSAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}
