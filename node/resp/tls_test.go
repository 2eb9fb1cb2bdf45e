package resp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "starling test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// startTLSServer starts a server speaking TLS with a fresh certificate and
// returns it with a client TLS configuration that trusts it.
func startTLSServer(t *testing.T, mutate func(*Config)) (*testServer, *tls.Config) {
	t.Helper()
	cert, pool := selfSigned(t)
	ts := startServer(t, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if mutate != nil {
			mutate(c)
		}
	})
	return ts, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// TestTLS: go-redis over TLS works with both protocols and with a
// password; a plaintext client against the TLS port fails cleanly and the
// server carries on.
func TestTLS(t *testing.T) {
	ts, clientTLS := startTLSServer(t, func(c *Config) { c.RequirePass = "s3cret" })
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		rdb := ts.client(t, proto, func(o *redis.Options) { o.TLSConfig = clientTLS; o.Password = "s3cret" })
		eq(t, "SET over TLS", "OK")(rdb.Set(ctx, "k", "v", 0).Result())
		eq(t, "GET over TLS", "v")(rdb.Get(ctx, "k").Result())
		pipe := rdb.Pipeline()
		for range 100 {
			pipe.Incr(ctx, "n")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("pipeline over TLS: %v", err)
		}
	}
	anon := ts.client(t, 2, func(o *redis.Options) { o.TLSConfig = clientTLS })
	wantErr(t, "GET without AUTH over TLS", anon.Get(ctx, "k").Err(), "NOAUTH Authentication required.")

	plain := ts.client(t, 2, func(o *redis.Options) {
		o.Password = "s3cret"
		o.DialTimeout, o.ReadTimeout = 5*time.Second, 5*time.Second
	})
	err := plain.Ping(ctx).Err()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("plaintext go-redis client against the TLS port: %v, want the connection closed", err)
	}
	rc := ts.raw(t)
	rc.send(cmd("PING"))
	if out, _ := rc.readAll(); strings.Contains(string(out), "PONG") {
		t.Fatalf("plaintext PING answered over the TLS port: %q", out)
	}
	rdb := ts.client(t, 3, func(o *redis.Options) { o.TLSConfig = clientTLS; o.Password = "s3cret" })
	eq(t, "GET over TLS after plaintext attempts", "v")(rdb.Get(ctx, "k").Result())
}

// TestTLSPipelineWithoutReading: a go-redis pipeline whose replies
// exceed the socket buffers (go-redis writes the whole pipeline before it
// reads) is answered in full over TLS, where a write that times out would
// break the connection for good.
func TestTLSPipelineWithoutReading(t *testing.T) {
	ts, clientTLS := startTLSServer(t, nil)
	val := strings.Repeat("v", 1024)
	ts.be.data["k"] = &fakeEntry{val: []byte(val)}
	rdb := ts.client(t, 2, func(o *redis.Options) { o.TLSConfig = clientTLS; o.ReadTimeout = 30 * time.Second })
	ctx := context.Background()
	pipe := rdb.Pipeline()
	const n = 20000
	for range n {
		pipe.Get(ctx, "k")
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		t.Fatalf("pipeline of %d GETs over TLS: %v", n, err)
	}
	for i, c := range cmds {
		if v, err := c.(*redis.StringCmd).Result(); err != nil || v != val {
			t.Fatalf("GET %d: %d bytes, %v", i, len(v), err)
		}
	}
}

// TestTLSHandshakeTimeout: a client that connects and never starts a
// handshake loses its connection slot after HandshakeTimeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	ts, clientTLS := startTLSServer(t, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond; c.MaxConns = 1 })
	silent := ts.raw(t)
	silent.expectClosed()
	waitFor(t, func() bool { return ts.srv.ConnectedClients() == 0 }, "the silent client's slot to be freed")

	// The slot is free again; with it taken, the next TLS client is told
	// the server is full, over TLS.
	ctx := context.Background()
	rdb := ts.client(t, 2, func(o *redis.Options) { o.TLSConfig = clientTLS; o.PoolSize = 1 })
	eq(t, "PING over TLS", "PONG")(rdb.Ping(ctx).Result())
	tc, err := tls.Dial("tcp", ts.addr, clientTLS)
	if err != nil {
		t.Fatalf("TLS dial of a rejected client: %v", err)
	}
	defer tc.Close()
	rc := &rawConn{t: t, nc: tc, br: bufio.NewReader(tc)}
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	rc.expect("-ERR max number of clients reached")
}

func TestTLSConfigValidate(t *testing.T) {
	cert, _ := selfSigned(t)
	c := DefaultConfig()
	c.TLS = &tls.Config{}
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("TLS without a certificate: Validate = %v", err)
	}
	c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	c.HandshakeTimeout = 0
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("TLS without HandshakeTimeout: Validate = %v", err)
	}
	c.HandshakeTimeout = time.Second
	if err := c.Validate(); err != nil {
		t.Fatalf("valid TLS config: %v", err)
	}
}
