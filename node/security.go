package node

import (
	"crypto/tls"

	"github.com/starlingcache/starling/gossip"
	"github.com/starlingcache/starling/transport"
)

// The helpers below turn the security material an operator hands a node
// (PEM files, base64 gossip keys) into Config values. They live here so
// that programs built on node — the starling command first — configure
// every layer through this package alone.

// GossipKey is a gossip encryption key (Config.Gossip.SecretKey and
// ExtraKeys): 16, 24 or 32 bytes, which never print or log.
type GossipKey = gossip.Key

// ParseGossipKey decodes a gossip key written in base64, as `openssl rand
// -base64 32` prints one. Errors never quote the input.
func ParseGossipKey(s string) (GossipKey, error) { return gossip.ParseKey(s) }

// LoadGossipKeyFile reads a file holding one gossip key in base64 (a
// mounted secret, say). Errors name the file, never its content.
func LoadGossipKeyFile(path string) (GossipKey, error) { return gossip.LoadKeyFile(path) }

// LoadTLS reads a certificate, its key and the CA certificate(s) from PEM
// files into Config.ServerTLS and Config.ClientTLS: mutual TLS 1.3
// between nodes, and for clients that dial them (client uses the second).
// Errors wrap transport.ErrInvalidConfig.
func LoadTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	return transport.LoadTLS(certFile, keyFile, caFile)
}
