package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/starlingcache/starling/gossip"
	"github.com/starlingcache/starling/node/resp"
	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// Config holds everything a node needs. Build one from DefaultConfig (LAN
// timings) or DefaultLocalConfig (fast failure detection for tests and a
// single machine), then set Name, Addr and the gossip addresses.
type Config struct {
	// Name identifies the node in the cluster. It must be unique and stable
	// across restarts: the ring places keys by name, so a restarted node with
	// the same name gets the same share of the key space back.
	Name string

	// Addr is the host:port the msgpack transport listens on for clients and
	// peers. Port 0 picks a free port (tests).
	Addr string

	// Advertise, if set, is the host other nodes and clients should use to
	// reach this node (for both the data and gossip ports). Needed when Addr
	// binds a wildcard address such as 0.0.0.0.
	Advertise string

	// Gossip configures membership. Its Name and Meta are filled in by the
	// node; set BindAddr and Seeds.
	Gossip gossip.Config

	// Transport configures the server peers and clients connect to, and the
	// client this node forwards requests with.
	Transport transport.Config

	// RESP configures the Redis-protocol front end. It is disabled unless
	// RESP.Addr is set.
	RESP resp.Config

	// Store bounds and tunes the local storage engine.
	Store store.Config

	// Ring configures the consistent-hash ring rebuilt on every membership
	// change.
	Ring ring.Config

	// ForwardTimeout bounds one forwarded request when the caller's context
	// has no earlier deadline. It must stay well below gossip's failure
	// detection time: a request must not hang on a dead owner that gossip
	// has not yet removed.
	ForwardTimeout time.Duration

	// Logger receives the node's structured logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration with LAN gossip timings, suited to
// nodes on separate machines of one data centre.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:7001",
		Gossip:         gossip.DefaultLANConfig(),
		Transport:      transport.DefaultConfig(),
		RESP:           resp.DefaultConfig(),
		Store:          store.DefaultConfig(),
		Ring:           ring.DefaultConfig(),
		ForwardTimeout: 2 * time.Second,
	}
}

// DefaultLocalConfig returns DefaultConfig with fast gossip timings: failures
// are detected in well under a second, at the cost of more gossip traffic
// and CPU. Use it for tests and for clusters on one machine.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.Gossip = gossip.DefaultFastConfig()
	c.ForwardTimeout = time.Second
	return c
}

// Validate reports the first problem that would stop a node from starting,
// so a misconfiguration fails fast with a clear message instead of at the
// first request.
func (c *Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("%w: node name is required", ErrInvalidConfig)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: data address %q: %v", ErrInvalidConfig, c.Addr, err)
	}
	if c.ForwardTimeout <= 0 {
		return fmt.Errorf("%w: forward timeout must be positive", ErrInvalidConfig)
	}
	if err := c.Transport.Validate(); err != nil {
		return fmt.Errorf("%w: transport: %w", ErrInvalidConfig, err)
	}
	if c.RESP.Addr != "" {
		if _, _, err := net.SplitHostPort(c.RESP.Addr); err != nil {
			return fmt.Errorf("%w: RESP address %q: %v", ErrInvalidConfig, c.RESP.Addr, err)
		}
		if err := c.RESP.Validate(); err != nil {
			return fmt.Errorf("%w: resp: %w", ErrInvalidConfig, err)
		}
	}
	if err := c.Store.Validate(); err != nil {
		return fmt.Errorf("%w: store: %w", ErrInvalidConfig, err)
	}
	if err := c.Ring.Validate(); err != nil {
		return fmt.Errorf("%w: ring: %w", ErrInvalidConfig, err)
	}
	return nil
}

// Errors returned by New, Start and the request path.
var (
	// ErrInvalidConfig wraps every configuration problem found by Validate.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotStarted is returned by calls that need a running node.
	ErrNotStarted = errors.New("node not started")
	// ErrShutdown is returned by calls made after Shutdown.
	ErrShutdown = errors.New("node shut down")
)
