package resp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starlingcache/starling/transport"
)

// Backend executes requests for the RESP server. node.Node implements it;
// tests use an in-memory map.
//
// The server reuses its requests: a Backend must not keep reqs, or the
// Key and Value of any request, after Do returns (Value aliases the
// connection's read buffer). Anything it stores or sends later must be
// copied or fully encoded before Do returns.
type Backend interface {
	// Do executes a pipeline's worth of requests: resps[i] answers reqs[i].
	// The backend groups requests by owner and sends each group in one
	// round trip, owners in parallel; requests this node owns are served
	// inline. Requests for the same key must take effect in slice order (a
	// pipelined SET then GET must see the SET). Do fills every entry of
	// resps, never with nil.
	Do(ctx context.Context, reqs []*transport.Request, resps []*transport.Response)
	// Broadcast sends req to every live member (including this node) and
	// returns their replies (used for cluster-wide DBSIZE and FLUSHALL, and
	// INFO's keyspace). A member that cannot be reached is represented by an
	// error response.
	Broadcast(ctx context.Context, req *transport.Request) []*transport.Response
	// Scan runs one step of a walk over every key in the cluster (SCAN,
	// KEYS): from cursor (0 starts a walk) it returns some of the keys
	// that match the Redis glob match, about count looked at, and the
	// cursor to go on from, 0 once the walk is done. A key stored for the
	// whole walk is listed at least once while the membership holds still
	// (see node.Node.Scan).
	Scan(ctx context.Context, cursor uint64, match string, count int) (keys []string, next uint64, err error)
	// Members returns the members this node sees (INFO's cluster section).
	Members() []transport.Member
	// Stats returns this node's counters (INFO).
	Stats() transport.Stats
}

// ScratchBackend is a Backend that can build a pipeline's answers, and the
// values they carry, in storage the connection lends it and reuses from
// one pipeline to the next, so that serving a pipeline allocates nothing
// at steady state.
type ScratchBackend interface {
	Backend
	// NewScratch returns storage for DoScratch.
	NewScratch() Scratch
	// DoScratch is Do with the answers built in s. They stay valid until
	// s.Reset, which the server calls once their replies are encoded.
	DoScratch(ctx context.Context, reqs []*transport.Request, resps []*transport.Response, s Scratch)
}

// Scratch is a ScratchBackend's storage for one connection's answers.
type Scratch interface {
	// Reset makes the storage available again; answers built in it
	// before must no longer be in use.
	Reset()
}

// Server accepts RESP client connections and serves Redis commands through
// a Backend. Create it with NewServer, hand it listeners with Serve and
// stop it with Shutdown.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	now     func() time.Time
	cmds    map[string]*command
	// cmdList is cmds in a fixed order, for COMMAND.
	cmdList []*command
	// cmdGet and cmdSet are looked up without the map.
	cmdGet, cmdSet *command
	started        time.Time
	runID          string

	// baseCtx parents every request; cancel aborts in-flight requests when
	// Shutdown's deadline passes.
	baseCtx context.Context
	cancel  context.CancelFunc

	// bufs and batches lend connections the memory they need only while
	// serving commands; an idle connection holds neither.
	bufs    bufPool
	batches sync.Pool

	nextID     atomic.Int64
	clients    atomic.Int64
	rejecting  atomic.Int64 // goroutines turning TLS clients away
	totalConns atomic.Int64
	rejected   atomic.Int64
	totalCmds  atomic.Int64

	wg sync.WaitGroup // one per connection goroutine

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	done      chan struct{} // closed when every connection has ended after Shutdown
}

// NewServer validates cfg and returns a server that executes commands
// through b. It does not listen: call Serve.
func NewServer(cfg Config, b Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("resp: nil backend")
	}
	s := &Server{
		cfg:       cfg,
		backend:   b,
		log:       cfg.Logger,
		now:       cfg.Now,
		started:   time.Now(),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	var id [20]byte
	_, _ = rand.Read(id[:])
	s.runID = hex.EncodeToString(id[:])
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.cmds, s.cmdList = commandTable()
	s.cmdGet, s.cmdSet = s.cmds["get"], s.cmds["set"]
	return s, nil
}

// Serve accepts connections on ln until Shutdown, serving each on its own
// goroutine. It always closes ln, and returns ErrServerClosed after
// Shutdown or the listener's error otherwise. Serve may be called with
// several listeners. With Config.TLS, Serve wraps each connection in TLS
// itself: ln must be a plain listener.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("resp: accept failed; retrying", "err", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.accept(nc)
	}
}

// accept registers nc and starts its goroutine, or turns it away when the
// server is full or shutting down.
func (s *Server) accept(nc net.Conn) {
	s.totalConns.Add(1)
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if s.cfg.MaxConns > 0 && len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		s.rejected.Add(1)
		s.reject(nc)
		return
	}
	cn := nc
	if s.cfg.TLS != nil {
		cn = tls.Server(nc, s.cfg.TLS)
	}
	c := newConn(s, cn, nc)
	s.conns[c] = struct{}{}
	s.clients.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.clients.Add(-1)
	}()
}

// maxRejecting bounds the goroutines that turn TLS clients away.
const maxRejecting = 64

const errMaxClients = "-ERR max number of clients reached\r\n"

// reject tells a client the server is full and closes its connection. A
// fresh socket takes the few bytes at once; over TLS the handshake needs a
// round trip, so it runs on a goroutine of its own, with a deadline, and
// beyond maxRejecting of them connections are closed without a word: the
// accept loop must never wait on a client.
func (s *Server) reject(nc net.Conn) {
	if s.cfg.TLS == nil {
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(nc, errMaxClients)
		_ = nc.Close()
		return
	}
	if s.rejecting.Add(1) > maxRejecting {
		s.rejecting.Add(-1)
		_ = nc.Close()
		return
	}
	s.wg.Add(1) // Shutdown waits for it (at most a second)
	go func() {
		defer s.wg.Done()
		defer s.rejecting.Add(-1)
		tc := tls.Server(nc, s.cfg.TLS)
		_ = tc.SetDeadline(time.Now().Add(min(s.cfg.HandshakeTimeout, time.Second)))
		_, _ = io.WriteString(tc, errMaxClients)
		_ = tc.Close()
	}()
}

// Addr returns the address of a listener being served (the first one if
// there are several), or nil if Serve is not running. With port 0 it tells
// tests which port was picked.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		return ln.Addr()
	}
	return nil
}

// ConnectedClients returns the number of open client connections (INFO's
// connected_clients).
func (s *Server) ConnectedClients() int { return int(s.clients.Load()) }

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting connections, stops reading from every client,
// lets the batch each one is executing finish and be answered, and closes
// them all. If ctx ends first, in-flight requests are cancelled, the
// remaining connections are closed at once and ctx's error is returned.
// Shutdown may be called more than once, concurrently too.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		s.done = make(chan struct{})
		for ln := range s.listeners {
			_ = ln.Close()
		}
		for c := range s.conns {
			c.stopReading()
		}
		go func(done chan struct{}) {
			s.wg.Wait()
			s.cancel()
			close(done)
		}(s.done)
	}
	done := s.done
	s.mu.Unlock()

	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	return ctx.Err()
}
