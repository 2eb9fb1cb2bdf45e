package resp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config holds everything the RESP server needs. Build one with
// DefaultConfig and change what you need; NewServer validates it.
type Config struct {
	// Addr is the host:port the server should listen on. The server itself
	// only serves listeners handed to Serve; Addr is here so the node's
	// configuration carries it. Empty means the RESP front end is disabled.
	Addr string

	// RequirePass, if not empty, is the password of the "default" user:
	// clients must send AUTH (or HELLO ... AUTH) before any other command.
	RequirePass string

	// EnableFlushAll allows FLUSHALL and FLUSHDB, which empty every node of
	// the cluster. They are refused by default because one stray command
	// would drop the whole cache.
	EnableFlushAll bool

	// MaxConns bounds concurrent client connections (Redis's maxclients).
	// Connections beyond it get "-ERR max number of clients reached" and are
	// closed (over TLS, after a handshake bounded by one second; past 64
	// such handshakes at once, without a word). 0 means no limit.
	MaxConns int

	// IdleTimeout closes a connection that sends nothing for this long
	// (Redis's timeout). 0 keeps idle connections open forever. A client
	// that trickles a byte now and then is never idle: CommandTimeout is
	// what bounds it.
	IdleTimeout time.Duration

	// CommandTimeout bounds the time from the first byte of a command to
	// its last: a client that has started a command and does not finish it
	// in time (a slowloris trickling one byte at a time, or a peer that
	// stalled mid-value) is disconnected, so that it cannot hold a
	// connection slot and a growing query buffer forever. Time the server
	// itself spends not reading (executing commands, waiting for a client
	// to read its replies) does not count. Redis has no such limit. 0
	// disables it; the default, 30 s, lets the largest default value
	// (MaxBulkLen, 64 MiB) arrive at about 18 Mbit/s.
	CommandTimeout time.Duration

	// TLS, if not nil, makes the server speak TLS (Redis's tls-port): every
	// connection handed to Serve is wrapped with tls.Server and must
	// complete a handshake before anything else. The listeners given to
	// Serve must be plain TCP. It needs a certificate (Certificates,
	// GetCertificate or GetConfigForClient); for client certificates set
	// ClientAuth and ClientCAs as usual. The server does not modify it.
	TLS *tls.Config

	// HandshakeTimeout bounds a TLS handshake, so that a client that
	// connects and stays silent holds a connection slot (see MaxConns) for
	// at most this long. It must be positive when TLS is set.
	HandshakeTimeout time.Duration

	// MaxBulkLen is the largest bulk string (key or value) a client may send
	// (Redis's proto-max-bulk-len). A larger length header gets
	// "-ERR Protocol error: invalid bulk length" and the connection is closed
	// before anything is allocated for it.
	MaxBulkLen int

	// MaxMultiBulkLen is the largest number of arguments one command may
	// have. A larger count gets "-ERR Protocol error: invalid multibulk
	// length" and the connection is closed.
	MaxMultiBulkLen int

	// MaxQueryBuffer bounds the bytes one connection may buffer for a single
	// incomplete command (Redis's client-query-buffer-limit). It must be at
	// least MaxBulkLen plus some room for the command's other arguments.
	MaxQueryBuffer int

	// MaxReplyBuffer bounds the replies one connection queues for a client
	// that is not reading them yet. A client that sends a long pipeline
	// before reading any reply needs the server to buffer (Redis does);
	// beyond this bound the server stops reading that client's commands
	// until it catches up, so such a client costs at most about
	// MaxReplyBuffer plus one flush (64 KiB or one reply, if larger) and
	// never delays other clients.
	MaxReplyBuffer int

	// MaxPipeline is the most commands gathered into one batch for the
	// Backend. Pipelined commands beyond it go into the next batch, so one
	// client cannot make a batch, and the memory behind it, arbitrarily large.
	MaxPipeline int

	// NodeName is this node's name, reported by INFO.
	NodeName string

	// Version is starling's version, reported by INFO and HELLO.
	Version string

	// Now returns the current time. It turns the absolute expiry times of
	// EXPIREAT, SET ... EXAT and the like into the relative TTLs requests
	// carry. Nil means time.Now; tests inject a fake clock.
	Now func() time.Time

	// Logger receives the server's structured logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration with Redis's defaults where they
// fit a cache node: no password, FLUSHALL refused, 10000 clients, no idle
// timeout, 64 MiB bulk strings, 256 MiB of unread replies per client and
// 256 commands per batch; and two limits Redis lacks: 30 s to receive one
// command and 10 s for a TLS handshake. TLS is off. Addr is empty (disabled), so that a node only
// opens a RESP port when asked to.
func DefaultConfig() Config {
	return Config{
		MaxConns:         10000,
		MaxBulkLen:       64 << 20,
		MaxMultiBulkLen:  1 << 20,
		MaxQueryBuffer:   128 << 20,
		MaxReplyBuffer:   256 << 20,
		MaxPipeline:      256,
		CommandTimeout:   30 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		Version:          "dev",
	}
}

// Validate reports the first problem that would stop the server from
// working, so a misconfiguration fails at start-up rather than on a client.
func (c Config) Validate() error {
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("%w: address %q: %v", ErrInvalidConfig, c.Addr, err)
		}
	}
	switch {
	case c.MaxConns < 0:
		return fmt.Errorf("%w: MaxConns must not be negative", ErrInvalidConfig)
	case c.IdleTimeout < 0:
		return fmt.Errorf("%w: IdleTimeout must not be negative", ErrInvalidConfig)
	case c.CommandTimeout < 0:
		return fmt.Errorf("%w: CommandTimeout must not be negative", ErrInvalidConfig)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("%w: HandshakeTimeout must not be negative", ErrInvalidConfig)
	case c.TLS != nil && c.HandshakeTimeout == 0:
		return fmt.Errorf("%w: HandshakeTimeout must be positive when TLS is set", ErrInvalidConfig)
	case c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil:
		return fmt.Errorf("%w: TLS has no certificate", ErrInvalidConfig)
	case c.MaxBulkLen < 1:
		return fmt.Errorf("%w: MaxBulkLen must be positive", ErrInvalidConfig)
	case c.MaxMultiBulkLen < 1:
		return fmt.Errorf("%w: MaxMultiBulkLen must be positive", ErrInvalidConfig)
	case c.MaxReplyBuffer < 1:
		return fmt.Errorf("%w: MaxReplyBuffer must be positive", ErrInvalidConfig)
	case c.MaxPipeline < 1:
		return fmt.Errorf("%w: MaxPipeline must be positive", ErrInvalidConfig)
	case c.MaxQueryBuffer < c.MaxBulkLen+minQueryRoom:
		return fmt.Errorf("%w: MaxQueryBuffer (%d) must be at least MaxBulkLen (%d) + %d",
			ErrInvalidConfig, c.MaxQueryBuffer, c.MaxBulkLen, minQueryRoom)
	}
	for _, r := range c.NodeName + c.Version {
		if r == '\r' || r == '\n' {
			return fmt.Errorf("%w: NodeName and Version must not contain line breaks", ErrInvalidConfig)
		}
	}
	return nil
}

// minQueryRoom is the query buffer needed on top of the largest bulk
// string: the command name, a key and the protocol headers.
const minQueryRoom = 64 << 10

// Errors returned by the server.
var (
	// ErrInvalidConfig wraps every problem Validate finds.
	ErrInvalidConfig = errors.New("invalid resp config")
	// ErrServerClosed is returned by Serve once Shutdown has been called.
	ErrServerClosed = errors.New("resp: server closed")
	// ErrProtocol wraps the protocol violations that make the server close
	// a client connection (malformed or oversized requests). It reaches only
	// logs: the client gets Redis's "-ERR Protocol error: ..." text.
	ErrProtocol = errors.New("protocol error")
)
