package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var (
	testSecret  = []byte("the cluster secret for tests!!")
	otherSecret = []byte("another secret, not the cluster's")
)

func TestSecretRoundTrip(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.Secret = testSecret
		srv, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		dialPool(t, c, addr) // every connection does the handshake
		for range 2 * cfg.ConnsPerPeer {
			if resp := mustCall(t, c, addr, &Request{Op: OpGet, Key: "k"}); resp.Err != "k" {
				t.Fatalf("echo %+v", resp)
			}
		}
		resps, err := c.CallBatch(context.Background(), addr, []*Request{{Op: OpPing}, {Op: OpGet, Key: "b"}})
		if err != nil || resps[1].Err != "b" {
			t.Fatalf("batch: %v, %v", resps, err)
		}
		if n := len(srv.connsOf()); n != cfg.ConnsPerPeer {
			t.Fatalf("%d server connections, want %d", n, cfg.ConnsPerPeer)
		}
		// The caller's slice is copied: changing it later changes nothing.
		mine := bytes.Clone(testSecret)
		cfg.Secret = mine
		c2 := newTestClient(t, cfg)
		mine[0] ^= 0xff
		mustCall(t, c2, addr, &Request{Op: OpPing})
	})
}

// TestSecretMismatch: a client without the secret, with the wrong one, or
// with one against a server without any, gets ErrAuth saying why, not
// ErrUnreachable; nothing reaches the handler, and the server goes on
// serving the clients that know the secret.
func TestSecretMismatch(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		base := testConfig(nw)
		base.HandshakeTimeout = waitTimeout // a refusal must not wait for it
		withSecret := base
		withSecret.Secret = testSecret
		served := make(chan *Request, 100)
		h := HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			served <- req
			echo(ctx, req, w)
		})
		srv, addr := startServer(t, withSecret, h)
		_, plainAddr := startServer(t, base, echo)
		good := newTestClient(t, withSecret)
		mustCall(t, good, addr, &Request{Op: OpPing})
		<-served

		cases := []struct {
			name   string
			secret []byte
			addr   string
			want   string
		}{
			{"no secret", nil, addr, "authentication required"},
			{"wrong secret", otherSecret, addr, "wrong cluster secret"},
			{"secret, server without", testSecret, plainAddr, "does not use a cluster secret"},
		}
		for _, tc := range cases {
			cfg := base
			cfg.Secret = tc.secret
			c := newTestClient(t, cfg)
			for range 2 {
				_, err := c.Call(context.Background(), tc.addr, &Request{Op: OpSet, Key: "k", Value: []byte("v")})
				if !errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: Call err = %v, want ErrAuth saying %q", tc.name, err, tc.want)
				}
			}
			_, err := c.CallBatch(context.Background(), tc.addr, []*Request{{Op: OpPing}, {Op: OpPing}})
			if !errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("%s: CallBatch err = %v, want ErrAuth", tc.name, err)
			}
			mustCall(t, good, addr, &Request{Op: OpPing})
			<-served
		}
		select {
		case req := <-served:
			t.Fatalf("an unauthenticated request reached the handler: %+v", req)
		default:
		}
		eventually(t, "refused connections to close", func() bool { return len(srv.connsOf()) <= withSecret.ConnsPerPeer })
	})
}

// fakeServer accepts one connection on a fresh address of nw and runs fn
// on it; the returned channel is closed when fn has returned.
func fakeServer(t *testing.T, nw Network, fn func(conn io.ReadWriter, fr *frameReader)) (string, <-chan struct{}) {
	t.Helper()
	ln, err := nw.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(waitTimeout))
		fn(conn, newFrameReader(conn, MinFrameSize))
	}()
	return ln.Addr().String(), done
}

// TestSecretImpostor: the client checks the server's proof too, and tells
// a refusal (ErrAuth) from a peer that just hangs up (ErrUnreachable).
func TestSecretImpostor(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.Secret = testSecret
		c := newTestClient(t, cfg)
		cases := []struct {
			name  string
			serve func(conn io.ReadWriter, fr *frameReader)
			want  error
			says  string
		}{
			{"proof without the secret", func(conn io.ReadWriter, fr *frameReader) {
				fr.next() // hello
				writeFrame(conn, kindAuthChallenge, make([]byte, nonceSize))
				fr.next() // proof: accepted without checking
				writeFrame(conn, kindAuthOK, make([]byte, macSize))
				fr.next() // until the client hangs up
			}, ErrAuth, "did not prove"},
			{"answer in another protocol", func(conn io.ReadWriter, fr *frameReader) {
				fr.next()
				conn.Write(frame(kindResponse, appendResponse(nil, &Response{Code: CodeBadRequest})))
				fr.next()
			}, ErrAuth, "unexpected answer"},
			{"garbage", func(conn io.ReadWriter, fr *frameReader) {
				fr.next()
				conn.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
				fr.next()
			}, ErrAuth, "does not speak the handshake"},
			{"hang up", func(conn io.ReadWriter, fr *frameReader) {
				fr.next()
			}, ErrUnreachable, "dial"},
		}
		for _, tc := range cases {
			addr, done := fakeServer(t, nw, tc.serve)
			_, err := c.Call(context.Background(), addr, &Request{Op: OpPing})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("%s: err = %v, want %v saying %q", tc.name, err, tc.want, tc.says)
			}
			if tc.want == ErrAuth && errors.Is(err, ErrUnreachable) {
				t.Fatalf("%s: %v is also ErrUnreachable", tc.name, err)
			}
			<-done
		}
	})
}

// TestSecretReplay: a client's half of one handshake is refused when
// replayed on another connection (fresh server nonce) or relayed into
// another TLS session (other binding).
func TestSecretReplay(t *testing.T) {
	cnonce := bytes.Repeat([]byte{1}, nonceSize)
	nonceA, nonceB := bytes.Repeat([]byte{2}, nonceSize), bytes.Repeat([]byte{3}, nonceSize)
	binding := bytes.Repeat([]byte{4}, 32)
	var fromServer, fromClient bytes.Buffer
	fromServer.Write(frame(kindAuthChallenge, nonceA))
	fromServer.Write(frame(kindAuthOK, authMAC(testSecret, authLabelServer, cnonce, nonceA, binding)))
	err := clientAuth(&fromClient, newFrameReader(&fromServer, MinFrameSize), testSecret, binding, bytes.NewReader(cnonce))
	if err != nil {
		t.Fatalf("client side of a good handshake: %v", err)
	}
	recorded := fromClient.Bytes()
	replay := func(snonce, binding []byte) error {
		return serverAuth(io.Discard, newFrameReader(bytes.NewReader(recorded), MinFrameSize), testSecret, binding, bytes.NewReader(snonce))
	}
	if err := replay(nonceA, binding); err != nil {
		t.Fatalf("server side of the same handshake: %v", err)
	}
	if err := replay(nonceB, binding); !errors.Is(err, ErrAuth) {
		t.Fatalf("replayed on another connection: %v", err)
	}
	if err := replay(nonceA, bytes.Repeat([]byte{5}, 32)); !errors.Is(err, ErrAuth) {
		t.Fatalf("relayed into another TLS session: %v", err)
	}
	if err := serverAuth(io.Discard, newFrameReader(bytes.NewReader(recorded), MinFrameSize), otherSecret, binding, bytes.NewReader(nonceA)); !errors.Is(err, ErrAuth) {
		t.Fatalf("server with another secret: %v", err)
	}
	// And the client checks the server: an OK made for another nonce fails.
	fromServer.Reset()
	fromServer.Write(frame(kindAuthChallenge, nonceB))
	fromServer.Write(frame(kindAuthOK, authMAC(testSecret, authLabelServer, cnonce, nonceA, binding)))
	err = clientAuth(io.Discard, newFrameReader(&fromServer, MinFrameSize), testSecret, binding, bytes.NewReader(cnonce))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("client accepted a replayed server proof: %v", err)
	}
}

// TestHandshakeDeadline: a peer that connects and then stalls, or
// trickles its handshake a byte at a time, is closed after
// HandshakeTimeout (IdleTimeout is long here), while a client that knows
// the secret is served all along.
func TestHandshakeDeadline(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		ca := newTestCA(t)
		serverTLS, clientTLS := ca.mtls(t, "n")
		for _, mode := range []string{"secret", "tls"} {
			cfg := testConfig(nw)
			cfg.IdleTimeout = time.Hour
			cfg.HandshakeTimeout = 100 * time.Millisecond
			good := cfg
			good.HandshakeTimeout = waitTimeout
			if mode == "secret" {
				cfg.Secret, good.Secret = testSecret, testSecret
			} else {
				cfg.TLS, good.TLS = serverTLS, clientTLS
			}
			srv, addr := startServer(t, cfg, echo)
			gc := newTestClient(t, good)
			dialPool(t, gc, addr)
			mustCall(t, gc, addr, &Request{Op: OpPing})
			baseline := len(srv.connsOf())

			// The trickler needs seconds for its bytes: a hello frame for
			// the secret handshake, a TLS record for the TLS one.
			payload := frame(kindAuthHello, append([]byte{authVersion}, make([]byte, nonceSize)...))
			if mode == "tls" {
				payload = append([]byte{0x16, 0x03, 0x01, 0x02, 0x00}, make([]byte, 512)...)
			}
			silent := rawConn(t, nw, addr)
			trickler := rawConn(t, nw, addr)
			trickled := make(chan int, 1)
			go func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				n := 0
				for ; n < len(payload); n++ {
					<-tick.C
					if _, err := trickler.Write(payload[n : n+1]); err != nil {
						break
					}
				}
				trickled <- n
			}()
			for range 5 {
				mustCall(t, gc, addr, &Request{Op: OpPing})
			}
			readUntilClosed(t, silent)
			readUntilClosed(t, trickler)
			if n := <-trickled; n == len(payload) {
				t.Fatalf("%s: the server read a %d-byte handshake trickled over %d ms", mode, n, 10*n)
			}
			eventually(t, "stalled handshakes to be closed", func() bool { return len(srv.connsOf()) == baseline })
			mustCall(t, gc, addr, &Request{Op: OpPing})
		}
	})
}
