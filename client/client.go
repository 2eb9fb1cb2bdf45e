// Package client is the Go client for a starling cluster. It talks the
// msgpack transport to any node; that node serves the request or forwards it
// to the key's owner.
package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/starlingcache/starling/transport"
)

// Errors callers branch on. They are the transport's sentinels, re-exported
// so that users of this package need not import transport.
var (
	// ErrNotFound reports a key that does not exist or has expired.
	ErrNotFound = transport.ErrNotFound
	// ErrUnavailable reports that no node (or not the key's owner) could be reached.
	ErrUnavailable = transport.ErrUnavailable
	// ErrTooLarge reports a key or value over the cluster's limits.
	ErrTooLarge = transport.ErrTooLarge
	// ErrInvalidConfig reports a Config that cannot work.
	ErrInvalidConfig = errors.New("client: invalid config")
)

// Config configures a Client.
type Config struct {
	// Addrs are data addresses of cluster nodes. Requests go to the first
	// node that answers.
	Addrs []string
	// Timeout bounds each call whose context has no earlier deadline.
	Timeout time.Duration
	// Transport tunes connections, frame limits and pooling.
	Transport transport.Config
}

// DefaultConfig returns a Config for a node on the default local address.
func DefaultConfig() Config {
	return Config{
		Addrs:     []string{"127.0.0.1:7001"},
		Timeout:   5 * time.Second,
		Transport: transport.DefaultConfig(),
	}
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	if len(c.Addrs) == 0 {
		return fmt.Errorf("%w: at least one node address is required", ErrInvalidConfig)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: timeout must be positive", ErrInvalidConfig)
	}
	return c.Transport.Validate()
}

// Client sends requests to a cluster. It is safe for concurrent use.
type Client struct {
	cfg Config
	tc  *transport.Client
}

// New returns a Client; it connects lazily on the first request.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, err := transport.NewClient(cfg.Transport)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, tc: tc}, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.tc.Close() }

// Get returns the value stored under key, or an error wrapping ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	resp, err := c.do(ctx, &transport.Request{Op: transport.OpGet, Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

// Set stores value under key. A ttl of 0 keeps it until it is deleted or
// evicted.
func (c *Client) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("client: negative ttl %v", ttl)
	}
	ms := int64(0)
	if ttl > 0 {
		ms = max(1, ttl.Milliseconds())
	}
	_, err := c.do(ctx, &transport.Request{Op: transport.OpSet, Key: key, Value: value, TTL: ms})
	return err
}

// Delete removes key. It returns an error wrapping ErrNotFound if the key
// did not exist.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.do(ctx, &transport.Request{Op: transport.OpDelete, Key: key})
	return err
}

// Members returns the cluster members as the contacted node sees them.
func (c *Client) Members(ctx context.Context) ([]transport.Member, error) {
	resp, err := c.do(ctx, &transport.Request{Op: transport.OpMembers})
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// Ping checks that a node answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, &transport.Request{Op: transport.OpPing})
	return err
}

// do sends req to the first reachable node and converts the reply's code
// into an error. Only failures to reach a node move on to the next address:
// an answer, even an error, is final.
func (c *Client) do(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	var lastErr error
	for _, addr := range c.cfg.Addrs {
		r := *req
		resp, err := c.tc.Call(ctx, addr, &r)
		if err != nil {
			lastErr = fmt.Errorf("%w: %s: %w", ErrUnavailable, addr, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return resp, resp.Error()
	}
	return nil, lastErr
}

// NodeStats is one node's counters, or why they could not be read.
type NodeStats struct {
	Name  string          `json:"name"`
	Addr  string          `json:"addr"`
	Stats transport.Stats `json:"stats"`
	Err   string          `json:"error,omitempty"`
}

// Stats asks every member the contacted node knows of for its counters,
// in parallel. A node that does not answer is listed with Err set.
func (c *Client) Stats(ctx context.Context) ([]NodeStats, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	out := make([]NodeStats, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = NodeStats{Name: m.Name, Addr: m.DataAddr}
		wg.Go(func() {
			resp, err := c.tc.Call(ctx, m.DataAddr, &transport.Request{Op: transport.OpStats})
			switch {
			case err != nil:
				out[i].Err = err.Error()
			case resp.Error() != nil:
				out[i].Err = resp.Error().Error()
			case resp.Stats != nil:
				out[i].Stats = *resp.Stats
			}
		})
	}
	wg.Wait()
	return out, nil
}

// Leave asks the node at addr to hand its keys to their next owners,
// leave the cluster and stop, as SIGTERM would.
func (c *Client) Leave(ctx context.Context, addr string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	resp, err := c.tc.Call(ctx, addr, &transport.Request{Op: transport.OpLeave})
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, addr, err)
	}
	return resp.Error()
}
