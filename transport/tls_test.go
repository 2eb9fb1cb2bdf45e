package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is an ephemeral certificate authority for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "starling test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool,
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a node certificate for 127.0.0.1, good for both server and
// client authentication, as PEM certificate and key.
func (ca *testCA) issue(t testing.TB, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial := new(big.Int).Add(big.NewInt(time.Now().UnixNano()), big.NewInt(int64(len(name))))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// files writes a node certificate, its key and the CA to a temporary
// directory, as the CLI's --tls-cert, --tls-key and --tls-ca name them.
func (ca *testCA) files(t testing.TB, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, name)
	certFile, keyFile, caFile = filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"), filepath.Join(dir, "ca.crt")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, caFile: ca.pem} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, caFile
}

// mtls returns LoadTLS's server and client configurations for a fresh
// node certificate of ca.
func (ca *testCA) mtls(t testing.TB, name string) (server, client *tls.Config) {
	t.Helper()
	server, client, err := LoadTLS(ca.files(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

func TestLoadTLSRoundTrip(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		ca := newTestCA(t)
		scfg, ccfg := testConfig(nw), testConfig(nw)
		scfg.TLS, _ = ca.mtls(t, "server")
		_, ccfg.TLS = ca.mtls(t, "client")
		srv, addr := startServer(t, scfg, echo)
		c := newTestClient(t, ccfg)
		for _, size := range []int{0, 100, 3 * bufferSize, maxValueSize} {
			val := make([]byte, size)
			if resp := mustCall(t, c, addr, &Request{Op: OpSet, Key: "k", Value: val}); len(resp.Value) != size {
				t.Fatalf("size %d: echoed %d bytes", size, len(resp.Value))
			}
		}
		resps, err := c.CallBatch(context.Background(), addr, []*Request{{Op: OpPing}, {Op: OpGet, Key: "b"}})
		if err != nil || resps[1].Err != "b" {
			t.Fatalf("batch over TLS: %v, %v", resps, err)
		}
		for _, sc := range srv.connsOf() {
			tc, ok := sc.conn.(*tls.Conn)
			if !ok {
				t.Fatal("server connection is not TLS")
			}
			st := tc.ConnectionState()
			if st.Version != tls.VersionTLS13 || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "client" {
				t.Fatalf("TLS state: version %x, peer certificates %d", st.Version, len(st.PeerCertificates))
			}
		}
	})
}

func TestLoadTLSErrors(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile, caFile := ca.files(t, "n1")
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string][3]string{
		"missing cert":   {filepath.Join(t.TempDir(), "none"), keyFile, caFile},
		"key for cert":   {certFile, caFile, caFile},
		"missing CA":     {certFile, keyFile, filepath.Join(t.TempDir(), "none")},
		"CA without PEM": {certFile, keyFile, junk},
	}
	for name, f := range cases {
		if _, _, err := LoadTLS(f[0], f[1], f[2]); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	cfg := DefaultConfig()
	cfg.TLS = &tls.Config{} // no certificate: cannot serve
	if _, err := NewServer(cfg, echo); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("server TLS without a certificate: %v", err)
	}
	if c, err := NewClient(cfg); err != nil { // a client needs none
		t.Errorf("client TLS without a certificate: %v", err)
	} else {
		c.Close()
	}
}

// TestTLSRefusals: every TLS mismatch is ErrAuth (not ErrUnreachable, not a
// hang), for Call and CallBatch, and the server goes on serving good
// clients.
func TestTLSRefusals(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		ca, other := newTestCA(t), newTestCA(t)
		base := testConfig(nw)
		base.HandshakeTimeout = waitTimeout // a refusal must not wait for it
		tlsCfg := base
		tlsCfg.TLS, _ = ca.mtls(t, "server")
		srv, addr := startServer(t, tlsCfg, echo)
		_, plainAddr := startServer(t, base, echo)
		secretOnly := base
		secretOnly.Secret = testSecret
		_, secretAddr := startServer(t, secretOnly, echo)
		_, good := ca.mtls(t, "good")
		_, stranger := other.mtls(t, "stranger")
		untrusted := good.Clone() // trusts the server, but nobody trusts it
		untrusted.Certificates = stranger.Certificates
		noCert := good.Clone()
		noCert.Certificates = nil
		wrongRoots := good.Clone()
		wrongRoots.RootCAs = other.pool

		goodCfg := base
		goodCfg.TLS = good
		gc := newTestClient(t, goodCfg)
		mustCall(t, gc, addr, &Request{Op: OpPing})

		cases := []struct {
			name   string
			tls    *tls.Config
			secret []byte
			addr   string
			want   string
		}{
			{"no client certificate", noCert, nil, addr, "certificate required"},
			{"untrusted client certificate", untrusted, nil, addr, "unknown certificate authority"},
			{"untrusted server certificate", wrongRoots, nil, addr, "unknown authority"},
			{"plaintext client", nil, nil, addr, "this server requires TLS"},
			{"plaintext client with a secret", nil, []byte("0123456789abcdef"), addr, "this server requires TLS"},
			{"TLS client, plaintext server", good, nil, plainAddr, "handshake failure"},
			{"TLS client, server with a secret only", good, testSecret, secretAddr, "handshake failure"},
		}
		for _, tc := range cases {
			cfg := base
			cfg.TLS, cfg.Secret = tc.tls, tc.secret
			c := newTestClient(t, cfg)
			_, err := c.Call(context.Background(), tc.addr, &Request{Op: OpPing})
			if !errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Call err = %v, want ErrAuth mentioning %q", tc.name, err, tc.want)
			}
			_, err = c.CallBatch(context.Background(), tc.addr, []*Request{{Op: OpPing}, {Op: OpPing}})
			if !errors.Is(err, ErrAuth) || errors.Is(err, ErrUnreachable) {
				t.Errorf("%s: CallBatch err = %v, want ErrAuth", tc.name, err)
			}
			mustCall(t, gc, addr, &Request{Op: OpPing})
		}
		// Refused connections are all gone; the good client's remain.
		eventually(t, "refused connections to close", func() bool { return len(srv.connsOf()) <= goodCfg.ConnsPerPeer })

		// A raw plaintext stream gets a refusal and a close, not a hang.
		conn := rawConn(t, nw, addr)
		go conn.Write(requestFrame(&Request{ID: 1, Op: OpPing}))
		conn.SetReadDeadline(time.Now().Add(waitTimeout))
		fr := newFrameReader(conn, MinFrameSize)
		if kind, body, _, err := fr.next(); err != nil || kind != kindAuthFail || !strings.Contains(string(body), "TLS") {
			t.Fatalf("plaintext request on a TLS server: kind %d %q, %v", kind, body, err)
		}
	})
}

func BenchmarkRoundTripTLS(b *testing.B) {
	ca := newTestCA(b)
	cfg := DefaultConfig()
	cfg.Secret = []byte("benchmark secret, 32 bytes long!")
	scfg := cfg
	scfg.TLS, cfg.TLS = ca.mtls(b, "bench")
	_, addr := startServer(b, scfg, benchHandler)
	c, err := NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for range 2 * cfg.ConnsPerPeer {
		if _, err := c.Call(ctx, addr, &Request{Op: OpPing}); err != nil {
			b.Fatal(err)
		}
	}
	req := &Request{Op: OpGet, Key: "key:000000001234"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, addr, req); err != nil {
			b.Fatal(err)
		}
	}
}
