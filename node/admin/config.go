package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config holds everything the admin server needs. Build one with
// DefaultConfig and change what you need; NewServer validates it.
type Config struct {
	// Addr is the host:port the server should listen on. The server itself
	// only serves listeners handed to Serve; Addr is here so the node's
	// configuration carries it. Empty means the admin server is disabled.
	Addr string

	// EnablePprof serves Go's profiler under /debug/pprof/. It is off by
	// default: profiles reveal internals and a CPU profile costs CPU, so an
	// operator turns it on deliberately.
	EnablePprof bool

	// RefreshInterval is how often the status page polls /api/status.
	RefreshInterval time.Duration

	// SourceTimeout bounds one call to the Source (a status poll or a
	// scrape), so a peer that does not answer leaves a gap on the page
	// rather than a hung request.
	SourceTimeout time.Duration

	// Logger receives the server's structured logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a disabled configuration (no Addr) with the page
// refreshed every second.
func DefaultConfig() Config {
	return Config{
		RefreshInterval: time.Second,
		SourceTimeout:   2 * time.Second,
	}
}

// minRefresh keeps a misconfigured page from polling the node (and, through
// it, every peer) in a tight loop.
const minRefresh = 100 * time.Millisecond

// Validate reports the first problem with c, wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("%w: address %q: %v", ErrInvalidConfig, c.Addr, err)
		}
	}
	if c.RefreshInterval < minRefresh {
		return fmt.Errorf("%w: RefreshInterval %v is below %v", ErrInvalidConfig, c.RefreshInterval, minRefresh)
	}
	if c.SourceTimeout <= 0 {
		return fmt.Errorf("%w: SourceTimeout must be positive, got %v", ErrInvalidConfig, c.SourceTimeout)
	}
	return nil
}

var (
	// ErrInvalidConfig wraps every problem Validate reports.
	ErrInvalidConfig = errors.New("admin: invalid config")
	// ErrServerClosed is returned by Serve once Shutdown has been called.
	ErrServerClosed = errors.New("admin: server closed")
)
