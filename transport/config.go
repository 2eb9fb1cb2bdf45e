package transport

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// maxValueSize is the largest value the cluster is meant to store (1 MiB);
// a frame must be able to carry one.
const maxValueSize = 1 << 20

// MinFrameSize is the smallest MaxFrameSize Validate accepts: a 1 MiB value
// plus 64 KiB for its key and the rest of the message. A deployment that
// stores larger values must raise MaxFrameSize to match.
const MinFrameSize = maxValueSize + 64<<10

// maxFrameLimit is the largest MaxFrameSize Validate accepts: a frame's
// length field is 32 bits, and nothing in a cache needs more than 1 GiB.
const maxFrameLimit = 1 << 30

// MinSecretSize is the shortest Config.Secret Validate accepts. A shorter
// secret could be guessed offline from one recorded handshake.
const MinSecretSize = 16

// Config tunes a Client and a Server. Both sides of a cluster should use the
// same MaxFrameSize and IdleTimeout: a client retires pooled connections
// after half the IdleTimeout, before the server would close them under it.
type Config struct {
	// MaxFrameSize bounds the body of one frame in bytes, in both
	// directions. A larger incoming frame is refused before anything is
	// allocated for it, and its connection closed; a larger outgoing
	// request fails its call with ErrFrameTooLarge. At least MinFrameSize.
	MaxFrameSize int

	// DialTimeout bounds connecting to a peer. A peer that cannot be
	// reached within it counts as unreachable (ErrUnreachable).
	DialTimeout time.Duration

	// CallTimeout bounds a Call or CallBatch whose context has no deadline
	// of its own, so a forgotten deadline cannot hang a caller forever.
	CallTimeout time.Duration

	// MaxClockSkew is how far apart the clocks of two hosts may be. A
	// Server refuses, unexecuted, a request read more than MaxClockSkew
	// after its Deadline (by the server's clock): its sender has given up.
	// Negative turns the check off. The cluster's clocks must be kept in
	// sync (NTP) anyway: TTLs and last-writer-wins versions rely on it.
	MaxClockSkew time.Duration

	// ConnsPerPeer is how many connections a Client may open to one
	// address. Every connection multiplexes many requests; more than one
	// lets the peer serve them on more than one core. A connection carries
	// up to 32 requests in flight before the next is used (and dialled):
	// under light load one connection carries everything, in fuller
	// writes, and one left idle is closed (see IdleTimeout).
	ConnsPerPeer int

	// IdleTimeout closes a server connection that has carried no request
	// and had none in flight for this long; a request must also arrive
	// whole within it, so a peer trickling a frame byte by byte is closed
	// too. Clients retire their own idle connections after half of it.
	IdleTimeout time.Duration

	// WriteTimeout bounds each write to a connection. A peer that stops
	// reading has its connection closed after it, so it cannot pin buffers
	// forever.
	WriteTimeout time.Duration

	// MaxConns bounds the connections a Server holds open; further ones are
	// closed as soon as they are accepted.
	MaxConns int

	// MaxInflightPerConn bounds the requests on one connection that have
	// been sent (client) or read (server) but not yet answered. A server
	// connection at the limit stops reading until its handler replies; a
	// client call waits for a free slot. This is what bounds memory when a
	// peer is slow.
	MaxInflightPerConn int

	// Secret, if not empty, is the shared cluster secret. A Server with a
	// Secret refuses every connection that does not prove knowledge of it
	// in a challenge-response handshake at connection start (see the
	// package documentation); a Client with one runs the handshake when it
	// dials, and also checks that the peer knows the secret. Client and
	// Server must agree: either side with a Secret refuses a peer without
	// one, with ErrAuth. The secret itself never crosses the wire. It
	// authenticates connection set-up only and neither encrypts nor
	// protects the traffic after it: combine it with TLS on an untrusted
	// network. At least MinSecretSize bytes; NewClient and NewServer keep
	// a copy.
	Secret []byte

	// TLS, if not nil, makes every connection use TLS. A Server wraps the
	// connections it accepts with it (it needs Certificates; set
	// ClientAuth to tls.RequireAndVerifyClientCert and ClientCAs for mutual
	// TLS); a Client dials with it (RootCAs to verify peers, Certificates
	// to present a client certificate). When ServerName is empty the
	// Client verifies the host part of the address it dials, so peers'
	// certificates need a SAN for the address they are reached at. LoadTLS
	// builds both from PEM files. A plaintext peer is refused with ErrAuth.
	// The transport does not modify it; it must not be modified after
	// NewClient or NewServer.
	TLS *tls.Config

	// HandshakeTimeout bounds the TLS and secret handshakes at the start of
	// a connection, on both sides. A server closes a connection that has
	// not completed them in time, so a peer that connects and then stalls
	// or trickles bytes holds a connection slot no longer than this.
	HandshakeTimeout time.Duration

	// Network dials and listens. Nil means TCP (TCPNetwork); tests use an
	// InmemNetwork to inject faults.
	Network Network

	// Logger receives connection-level events (malformed input, refused
	// connections). Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns settings for peers on one LAN.
func DefaultConfig() Config {
	return Config{
		MaxFrameSize:       8 << 20,
		DialTimeout:        time.Second,
		CallTimeout:        5 * time.Second,
		MaxClockSkew:       250 * time.Millisecond,
		ConnsPerPeer:       2,
		IdleTimeout:        2 * time.Minute,
		WriteTimeout:       5 * time.Second,
		MaxConns:           4096,
		MaxInflightPerConn: 1024,
		HandshakeTimeout:   5 * time.Second,
		Network:            TCPNetwork{},
	}
}

// Validate reports the first setting that would make the transport
// misbehave, wrapped in ErrInvalidConfig.
func (c *Config) Validate() error {
	switch {
	case c.MaxFrameSize < MinFrameSize || c.MaxFrameSize > maxFrameLimit:
		return fmt.Errorf("%w: MaxFrameSize %d outside [%d, %d]", ErrInvalidConfig, c.MaxFrameSize, MinFrameSize, maxFrameLimit)
	case c.DialTimeout <= 0:
		return fmt.Errorf("%w: DialTimeout must be positive", ErrInvalidConfig)
	case c.CallTimeout <= 0:
		return fmt.Errorf("%w: CallTimeout must be positive", ErrInvalidConfig)
	case c.ConnsPerPeer < 1 || c.ConnsPerPeer > 64:
		return fmt.Errorf("%w: ConnsPerPeer %d outside [1, 64]", ErrInvalidConfig, c.ConnsPerPeer)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("%w: IdleTimeout must be positive", ErrInvalidConfig)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("%w: WriteTimeout must be positive", ErrInvalidConfig)
	case c.MaxConns < 1:
		return fmt.Errorf("%w: MaxConns must be at least 1", ErrInvalidConfig)
	case c.MaxInflightPerConn < 1:
		return fmt.Errorf("%w: MaxInflightPerConn must be at least 1", ErrInvalidConfig)
	case c.HandshakeTimeout <= 0:
		return fmt.Errorf("%w: HandshakeTimeout must be positive", ErrInvalidConfig)
	case len(c.Secret) > 0 && len(c.Secret) < MinSecretSize:
		return fmt.Errorf("%w: Secret is %d bytes, at least %d needed", ErrInvalidConfig, len(c.Secret), MinSecretSize)
	}
	return nil
}

func (c *Config) network() Network {
	if c.Network == nil {
		return TCPNetwork{}
	}
	return c.Network
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
