// Command passthrough is a measuring instrument, not part of starling: a
// minimal RESP cache node that forwards requests to their owners, run by
// bench/resp.sh as a baseline beside starling, so that what forwarding
// costs on a machine can be told apart from what starling adds to it.
//
// Each node keeps GET/SET keys in a sharded map and serves a client
// connection's pipeline in one pass: commands it owns are executed, the
// others are copied, raw, into one buffer per owner and written to that
// owner over a connection of their own (one per client connection per
// owner, so nothing is multiplexed, framed or re-encoded); the owners'
// replies are read back and all replies written in order in one write.
// Ownership of a GET or SET is FNV-1a of the key modulo the node count;
// every other command is answered where it arrives. There is no
// membership, replication, expiry, eviction, multiplexing or batching
// across clients: the simplest forwarding there is, not the cheapest (one
// upstream connection per client connection means an owner wakes for
// each client's share of a pipeline).
//
//	passthrough --addr 127.0.0.1:19001                       # one node
//	passthrough --addr 127.0.0.1:19011 --self 0 \
//	    --peers 127.0.0.1:19011,127.0.0.1:19012,127.0.0.1:19013  # node 0 of 3
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19001", "listen address")
	peers := flag.String("peers", "", "every node's address, comma-separated, the same list and order on every node; empty for one node")
	self := flag.Int("self", 0, "this node's index in --peers")
	flag.Parse()
	list := []string{*addr}
	if *peers != "" {
		list = strings.Split(*peers, ",")
	}
	s, err := newServer(list, *self)
	if err == nil && list[*self] != *addr {
		err = fmt.Errorf("--peers names %s at --self %d, not --addr %s", list[*self], *self, *addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "passthrough:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "passthrough:", err)
		os.Exit(1)
	}
	log.Fatal(s.serveListener(ln))
}

// maxArg bounds one argument and maxRound the commands read before they
// are served, so a bad length or an endless pipeline cannot make a node
// allocate without limit.
const (
	maxArg   = 1 << 20
	maxRound = 4 << 20
)

// dialTimeout bounds connecting to an owner.
const dialTimeout = 2 * time.Second

type server struct {
	self   int
	peers  []string
	seed   maphash.Seed
	shards [256]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newServer(peers []string, self int) (*server, error) {
	if self < 0 || self >= len(peers) {
		return nil, fmt.Errorf("--self %d is not an index of the %d addresses in --peers", self, len(peers))
	}
	s := &server{self: self, peers: peers, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string][]byte)
	}
	return s, nil
}

// serveListener serves every connection ln accepts until it fails.
func (s *server) serveListener(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.serve(c)
	}
}

// owner is the index of the node that holds key.
func (s *server) owner(key []byte) int {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return int(h % uint64(len(s.peers)))
}

// command is one parsed request: its arguments and its raw bytes, as
// offsets into the connection's arena.
type command struct {
	from, to int      // raw bytes
	args     [][2]int // each argument's bytes
	owner    int
	reply    [2]int // the reply's bytes in replies (local) or the owner's arena
}

// upstream is a client connection's own connection to one owner.
type upstream struct {
	conn  net.Conn
	r     *bufio.Reader
	out   []byte
	n     int    // commands in out
	arena []byte // the replies read back
	err   error
}

type conn struct {
	s       *server
	nc      net.Conn
	r       *bufio.Reader
	arena   []byte // this round's commands, raw
	cmds    []command
	argBuf  [][2]int
	replies []byte // replies to the commands served here
	out     []byte
	ups     []*upstream
}

func (s *server) serve(nc net.Conn) {
	c := &conn{s: s, nc: nc, r: bufio.NewReaderSize(nc, 64<<10), ups: make([]*upstream, len(s.peers))}
	defer func() {
		nc.Close()
		for _, u := range c.ups {
			if u != nil {
				u.conn.Close()
			}
		}
	}()
	for {
		if err := c.round(); err != nil {
			return
		}
	}
}

// round reads every complete command buffered (waiting for the first),
// serves them and writes their replies in one write.
func (c *conn) round() error {
	c.arena, c.cmds, c.argBuf, c.replies, c.out = c.arena[:0], c.cmds[:0], c.argBuf[:0], c.replies[:0], c.out[:0]
	for {
		if err := c.parse(); err != nil {
			return err
		}
		if c.r.Buffered() == 0 || len(c.arena) >= maxRound {
			break
		}
	}
	for i := range c.cmds {
		cm := &c.cmds[i]
		cm.owner = c.s.self
		if keyed(c.arg(cm, 0)) && len(cm.args) >= 2 {
			cm.owner = c.s.owner(c.arg(cm, 1))
		}
		if cm.owner == c.s.self {
			from := len(c.replies)
			c.replies = c.s.exec(c.replies, c, cm)
			cm.reply = [2]int{from, len(c.replies)}
			continue
		}
		u := c.upstream(cm.owner)
		if u.err == nil {
			u.out = append(u.out, c.arena[cm.from:cm.to]...)
			u.n++
		}
	}
	for _, u := range c.ups {
		if u != nil && u.n > 0 {
			if _, err := u.conn.Write(u.out); err != nil {
				u.err = err
			}
			u.out = u.out[:0]
		}
	}
	for o, u := range c.ups {
		if u == nil || u.n == 0 && u.err == nil {
			continue
		}
		u.arena = u.arena[:0]
		for i := range c.cmds {
			cm := &c.cmds[i]
			if cm.owner != o {
				continue
			}
			from := len(u.arena)
			if u.err == nil {
				u.arena, u.err = readReply(u.r, u.arena)
			}
			if u.err != nil {
				u.arena = append(u.arena[:from], "-ERR owner unreachable\r\n"...)
			}
			cm.reply = [2]int{from, len(u.arena)}
		}
		u.n = 0
	}
	for i := range c.cmds {
		cm := &c.cmds[i]
		if cm.owner == c.s.self {
			c.out = append(c.out, c.replies[cm.reply[0]:cm.reply[1]]...)
		} else {
			c.out = append(c.out, c.ups[cm.owner].arena[cm.reply[0]:cm.reply[1]]...)
		}
	}
	_, err := c.nc.Write(c.out)
	return err
}

func (c *conn) arg(cm *command, i int) []byte {
	a := cm.args[i]
	return c.arena[a[0]:a[1]]
}

// keyed reports whether a command goes to its key's owner.
func keyed(name []byte) bool {
	return bytes.EqualFold(name, []byte("GET")) || bytes.EqualFold(name, []byte("SET"))
}

// upstream returns the connection to owner o, dialling it the first time.
// A failed dial or a broken connection is remembered for the rest of the
// client connection: that owner's commands get an error (an instrument
// need not reconnect).
func (c *conn) upstream(o int) *upstream {
	if u := c.ups[o]; u != nil {
		return u
	}
	u := &upstream{}
	u.conn, u.err = net.DialTimeout("tcp", c.s.peers[o], dialTimeout)
	if u.err == nil {
		u.r = bufio.NewReaderSize(u.conn, 64<<10)
	} else {
		u.conn = nopConn{}
	}
	c.ups[o] = u
	return u
}

var errProtocol = errors.New("protocol error")

// parse reads one command (a RESP array of bulk strings) into the arena.
func (c *conn) parse() error {
	from := len(c.arena)
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	n, ok := header(line, '*')
	if !ok || n < 1 || n > 1024 {
		return errProtocol
	}
	c.arena = append(c.arena, line...)
	argFrom := len(c.argBuf)
	for range n {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		l, ok := header(line, '$')
		if !ok || l < 0 || l > maxArg {
			return errProtocol
		}
		c.arena = append(c.arena, line...)
		start := len(c.arena)
		c.arena = append(c.arena, make([]byte, l+2)...)
		if _, err := io.ReadFull(c.r, c.arena[start:]); err != nil {
			return err
		}
		if !bytes.HasSuffix(c.arena, []byte("\r\n")) {
			return errProtocol
		}
		c.argBuf = append(c.argBuf, [2]int{start, start + l})
	}
	c.cmds = append(c.cmds, command{from: from, to: len(c.arena), args: c.argBuf[argFrom:len(c.argBuf):len(c.argBuf)]})
	return nil
}

// header parses a "<kind><int>\r\n" line.
func header(line []byte, kind byte) (int, bool) {
	if len(line) < 4 || line[0] != kind || line[len(line)-2] != '\r' || line[1] == '+' {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	return n, err == nil
}

// readReply appends one reply (a simple string, error, integer or bulk
// string: all GET and SET answer with) to b.
func readReply(r *bufio.Reader, b []byte) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return b, err
	}
	b = append(b, line...)
	switch line[0] {
	case '+', '-', ':':
		return b, nil
	case '$':
		l, ok := header(line, '$')
		if !ok || l > maxArg {
			return b, errProtocol
		}
		if l < 0 {
			return b, nil
		}
		start := len(b)
		b = append(b, make([]byte, l+2)...)
		if _, err = io.ReadFull(r, b[start:]); err == nil && !bytes.HasSuffix(b, []byte("\r\n")) {
			err = errProtocol
		}
		return b, err
	}
	return b, errProtocol
}

// exec serves cm here, appending its reply to out.
func (s *server) exec(out []byte, c *conn, cm *command) []byte {
	name := c.arg(cm, 0)
	switch {
	case bytes.EqualFold(name, []byte("GET")) && len(cm.args) == 2:
		key := c.arg(cm, 1)
		sh := &s.shards[maphash.Bytes(s.seed, key)%uint64(len(s.shards))]
		sh.mu.Lock()
		v, ok := sh.m[string(key)]
		if !ok {
			sh.mu.Unlock()
			return append(out, "$-1\r\n"...)
		}
		out = append(out, '$')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		out = append(out, "\r\n"...)
		out = append(out, v...)
		sh.mu.Unlock()
		return append(out, "\r\n"...)
	case bytes.EqualFold(name, []byte("SET")) && len(cm.args) == 3:
		key := c.arg(cm, 1)
		sh := &s.shards[maphash.Bytes(s.seed, key)%uint64(len(s.shards))]
		v := bytes.Clone(c.arg(cm, 2))
		sh.mu.Lock()
		sh.m[string(key)] = v
		sh.mu.Unlock()
		return append(out, "+OK\r\n"...)
	case bytes.EqualFold(name, []byte("PING")):
		return append(out, "+PONG\r\n"...)
	case bytes.EqualFold(name, []byte("CONFIG")):
		return append(out, "*0\r\n"...) // redis-benchmark asks for settings first
	}
	return append(out, "-ERR only GET key, SET key value, PING and CONFIG\r\n"...)
}

// nopConn stands in for an owner that could not be dialled.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
