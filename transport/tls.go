package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// LoadTLS builds the TLS configurations for mutual TLS between nodes from
// PEM files: certFile and keyFile hold this node's certificate (chain) and
// private key, caFile the certificate of the CA that signs every node's
// certificate (several may be concatenated, e.g. during a CA rotation).
//
// server is for a Server (Config.TLS of a node's server): it presents the
// certificate and requires and verifies one signed by the CA from every
// client. client is for a Client (Config.TLS of a node's client or a
// command-line client): it verifies peers against the CA and presents the
// same certificate. A node, which is both, gives each side its own.
//
// The certificate must be valid for both server and client authentication
// (extended key usages serverAuth and clientAuth, or none) and name every
// address peers dial the node at in a SAN (an IP SAN for an IP address).
// Both configurations require TLS 1.3. Errors wrap ErrInvalidConfig.
func LoadTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: TLS certificate: %w", ErrInvalidConfig, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: TLS CA: %w", ErrInvalidConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("%w: TLS CA: no PEM certificate in %s", ErrInvalidConfig, caFile)
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}
	return server, client, nil
}

// clientTLS returns the TLS configuration for dialling addr: cfg with
// ServerName set to addr's host when cfg leaves it empty, as tls.Dial
// does, so the peer's certificate is verified against the address dialled.
func clientTLS(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil || cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// validServerTLS reports whether cfg can serve: a server needs a
// certificate.
func validServerTLS(cfg *tls.Config) bool {
	return cfg == nil || len(cfg.Certificates) > 0 || cfg.GetCertificate != nil || cfg.GetConfigForClient != nil
}

// tlsBinding returns keying material unique to a TLS session, which the
// secret handshake mixes into its proofs.
func tlsBinding(tc *tls.Conn) ([]byte, error) {
	st := tc.ConnectionState()
	return st.ExportKeyingMaterial(tlsExporterLabel, nil, 32)
}

// looksLikeTLS reports whether a frame header is really the start of a TLS
// handshake record (content type 22, version 3.x): a TLS client talking to
// a plaintext server.
func looksLikeTLS(hdr []byte) bool {
	return len(hdr) >= 3 && hdr[0] == 0x16 && hdr[1] == 0x03 && hdr[2] <= 0x04
}

// tlsHandshakeFailure is a TLS fatal alert record, handshake_failure (40).
// A plaintext server sends it to a TLS client so that the client's
// handshake fails at once with a TLS error (ErrAuth) instead of waiting
// for bytes that make no sense to it.
var tlsHandshakeFailure = []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40}
