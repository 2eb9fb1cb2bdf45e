package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// listen opens a loopback listener on an ephemeral port, closed when the
// test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// start serves node i of peers on ln until the test ends.
func start(t *testing.T, ln net.Listener, peers []string, i int) *server {
	t.Helper()
	s, err := newServer(peers, i)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.serveListener(ln) }()
	return s
}

// startNodes starts n nodes and returns their addresses.
func startNodes(t *testing.T, n int) []string {
	t.Helper()
	lns := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		lns[i] = listen(t)
		addrs[i] = lns[i].Addr().String()
	}
	for i, ln := range lns {
		start(t, ln, addrs, i)
	}
	return addrs
}

// pipeline sends cmds in one write and returns the replies' first lines
// (with a bulk string's data line appended after a space).
func pipeline(t *testing.T, addr string, cmds ...[]string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	for _, args := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	out := make([]string, len(cmds))
	for i := range out {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		out[i] = strings.TrimSuffix(line, "\r\n")
		if strings.HasPrefix(out[i], "$") && out[i] != "$-1" {
			data, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reply %d data: %v", i, err)
			}
			out[i] += " " + strings.TrimSuffix(data, "\r\n")
		}
	}
	return out
}

func TestForwardsToOwners(t *testing.T) {
	addrs := startNodes(t, 3)
	s, err := newServer(addrs, 0) // for its owner function
	if err != nil {
		t.Fatal(err)
	}
	const keys = 60
	var sets, gets [][]string
	owners := map[int]int{}
	for i := range keys {
		k := fmt.Sprintf("key:%d", i)
		owners[s.owner([]byte(k))]++
		sets = append(sets, []string{"SET", k, fmt.Sprintf("v%d", i)})
		gets = append(gets, []string{"get", k})
	}
	if len(owners) != 3 {
		t.Fatalf("keys spread over %d nodes, want 3: %v", len(owners), owners)
	}
	for i, r := range pipeline(t, addrs[0], sets...) {
		if r != "+OK" {
			t.Fatalf("SET %d: %q", i, r)
		}
	}
	// Read back through another node: every key from wherever it lives.
	for i, r := range pipeline(t, addrs[2], gets...) {
		if want := fmt.Sprintf("$%d v%d", len(fmt.Sprint("v", i)), i); r != want {
			t.Fatalf("GET key:%d = %q, want %q", i, r, want)
		}
	}
	got := pipeline(t, addrs[1], []string{"GET", "missing"}, []string{"PING"}, []string{"FLUSHALL"})
	if got[0] != "$-1" || got[1] != "+PONG" || !strings.HasPrefix(got[2], "-ERR") {
		t.Fatalf("miss, PING, unknown command: %q", got)
	}
	// Commands without a key are answered where they arrive (redis-benchmark
	// asks every node for its settings), and leave the owners reachable.
	for i, addr := range addrs {
		got := pipeline(t, addr, []string{"CONFIG", "GET", "save"}, gets[0], gets[1], gets[2])
		if got[0] != "*0" || got[1] != "$2 v0" || got[2] != "$2 v1" || got[3] != "$2 v2" {
			t.Fatalf("node %d: CONFIG then GETs: %q", i, got)
		}
	}
}

func TestRefusesMalformedInput(t *testing.T) {
	addrs := startNodes(t, 1)
	for _, in := range []string{
		"*1\r\n$4\r\nPINGxx\r\n", // bulk string without its \r\n
		"*1\r\n$+4\r\nPING\r\n",  // a sign in a length
		"*0\r\n",                 // no command
		"*1\r\n$-1\r\n",          // a negative length
		"PING\r\n",               // an inline command
	} {
		c, err := net.Dial("tcp", addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(b) != 0 {
			t.Fatalf("%q: got %q, %v; want the connection closed without a reply", in, b, err)
		}
	}
	// The node still serves.
	if got := pipeline(t, addrs[0], []string{"PING"}); got[0] != "+PONG" {
		t.Fatalf("PING after bad input: %q", got)
	}
}

func TestUnreachableOwner(t *testing.T) {
	// Node 2 listens nowhere: its keys get an error, the others' are
	// still served.
	ln0, ln1, dead := listen(t), listen(t), listen(t)
	peers := []string{ln0.Addr().String(), ln1.Addr().String(), dead.Addr().String()}
	dead.Close()
	s := start(t, ln0, peers, 0)
	start(t, ln1, peers, 1)
	var cmds [][]string
	var owner []int
	for i := range 30 {
		k := fmt.Sprintf("k%d", i)
		cmds = append(cmds, []string{"SET", k, "x"})
		owner = append(owner, s.owner([]byte(k)))
	}
	for i, r := range pipeline(t, peers[0], cmds...) {
		want := "+OK"
		if owner[i] == 2 {
			want = "-ERR owner unreachable"
		}
		if r != want {
			t.Fatalf("SET k%d (owner %d) = %q, want %q", i, owner[i], r, want)
		}
	}
	if !slices.Contains(owner, 2) || !slices.Contains(owner, 1) {
		t.Fatalf("owners %v: want keys on nodes 1 and 2", owner)
	}
	if _, err := newServer(peers, 3); err == nil {
		t.Fatal("newServer accepted --self 3 of 3 peers")
	}
}
