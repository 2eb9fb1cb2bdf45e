package transport

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"io"
	"testing"
)

// Fixed nonces make the fuzzed handshakes deterministic, so seeds can hold
// complete, valid transcripts.
var (
	fuzzCnonce = bytes.Repeat([]byte{0xc1}, nonceSize)
	fuzzSnonce = bytes.Repeat([]byte{0x5e}, nonceSize)
)

// validClientStream is what a client that knows testSecret sends a server
// whose nonce is fuzzSnonce.
func validClientStream() []byte {
	b := frame(kindAuthHello, append([]byte{authVersion}, fuzzCnonce...))
	return append(b, frame(kindAuthProof, authMAC(testSecret, authLabelClient, fuzzCnonce, fuzzSnonce, nil))...)
}

// validServerStream is what a server that knows testSecret sends a client
// whose nonce is fuzzCnonce.
func validServerStream() []byte {
	b := frame(kindAuthChallenge, fuzzSnonce)
	return append(b, frame(kindAuthOK, authMAC(testSecret, authLabelServer, fuzzCnonce, fuzzSnonce, nil))...)
}

// handshakeIOError reports whether err is how a byte stream that simply
// ends cuts a handshake short.
func handshakeIOError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// FuzzServerAuth feeds arbitrary client streams to the server's side of
// the secret handshake: it never panics, fails only with ErrAuth (having
// told the client) or an I/O error, and accepts only a stream carrying a
// valid proof. Seeds live in testdata/fuzz/FuzzServerAuth.
func FuzzServerAuth(f *testing.F) {
	valid := validClientStream()
	f.Add(valid)
	f.Add(valid[:frameHeaderSize+helloSize])
	f.Add(requestFrame(&Request{ID: 1, Op: OpPing}))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		err := serverAuth(&out, newFrameReader(bytes.NewReader(in), MinFrameSize), testSecret, nil, bytes.NewReader(fuzzSnonce))
		switch {
		case err == nil:
			fr := newFrameReader(bytes.NewReader(in), MinFrameSize)
			k1, hello, _, _ := fr.next()
			hello = bytes.Clone(hello)
			k2, proof, _, _ := fr.next()
			if k1 != kindAuthHello || len(hello) != helloSize || k2 != kindAuthProof ||
				!hmac.Equal(proof, authMAC(testSecret, authLabelClient, hello[1:], fuzzSnonce, nil)) {
				t.Fatalf("accepted a stream without a valid proof: %x", in)
			}
		case errors.Is(err, ErrAuth):
			// The refusal is the last thing sent.
			fr := newFrameReader(bytes.NewReader(out.Bytes()), MinFrameSize)
			var last frameKind
			for {
				kind, _, _, err := fr.next()
				if err != nil {
					break
				}
				last = kind
			}
			if last != kindAuthFail {
				t.Fatalf("refused (%v) without telling the client", err)
			}
		case !handshakeIOError(err):
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// FuzzClientAuth feeds arbitrary server streams to the client's side of
// the secret handshake: it never panics, fails only with ErrAuth or an I/O
// error, and succeeds only if the server proved the secret. Seeds live in
// testdata/fuzz/FuzzClientAuth.
func FuzzClientAuth(f *testing.F) {
	valid := validServerStream()
	f.Add(valid)
	f.Add(frame(kindAuthFail, []byte("wrong cluster secret")))
	f.Add(frame(kindResponse, appendResponse(nil, &Response{Code: CodeBadRequest})))
	f.Fuzz(func(t *testing.T, in []byte) {
		err := clientAuth(io.Discard, newFrameReader(bytes.NewReader(in), MinFrameSize), testSecret, nil, bytes.NewReader(fuzzCnonce))
		switch {
		case err == nil:
			fr := newFrameReader(bytes.NewReader(in), MinFrameSize)
			k1, snonce, _, _ := fr.next()
			snonce = bytes.Clone(snonce)
			k2, proof, _, _ := fr.next()
			if k1 != kindAuthChallenge || len(snonce) != nonceSize || k2 != kindAuthOK ||
				!hmac.Equal(proof, authMAC(testSecret, authLabelServer, fuzzCnonce, snonce, nil)) {
				t.Fatalf("accepted a server that did not prove the secret: %x", in)
			}
		case errors.Is(err, ErrAuth), handshakeIOError(err):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
