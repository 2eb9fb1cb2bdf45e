//go:build linux || darwin

package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Load tests open thousands of sockets and take seconds, so the normal
// suite skips them; STARLING_LOAD_TESTS=1 runs them.
const loadTestsEnv = "STARLING_LOAD_TESTS"

// idleChildEnv tells a re-executed test binary to act as the idle clients
// of TestTenThousandIdleConnections: its value is "address,count".
const idleChildEnv = "STARLING_RESP_IDLE_CHILD"

// TestTenThousandIdleConnections holds 10,000 client connections open
// against one server, each having sent a PING and a GET, and reports what
// an idle connection costs the server and whether it slows the active
// clients down.
//
// Method. The idle clients run in a child process (this test binary,
// re-executed into TestIdleClientsChild), for two reasons: a connection
// costs one descriptor at each end, and 2 x 10,000 descriptors exceed
// common hard limits (20,000 on the box this was written on) that a test
// cannot raise without CAP_SYS_RESOURCE; and the client side's memory then
// stays out of this process, so that the delta measured here is the
// server's alone. Memory per idle connection is the growth of HeapInuse +
// StackInuse (after three forced GCs, which also empty the sync.Pools)
// between "server running, no client connected" and "10,000 idle clients
// connected", divided by 10,000. It counts the connection's goroutine, its
// buffers and bookkeeping, and the net package's per-socket structures on
// the Go heap; kernel socket buffers and the netpoller's off-heap
// descriptors are not Go memory and are not counted.
//
// Latency: the same set of active clients (raw connections, one GET at a
// time) runs, after a warm-up round, before the idle clients connect and
// while they are connected;
// the test logs both p99s and their ratio but asserts nothing about time
// (the target is a ratio of at most 2).
func TestTenThousandIdleConnections(t *testing.T) {
	if os.Getenv(loadTestsEnv) != "1" {
		t.Skipf("load test: set %s=1 to run it", loadTestsEnv)
	}
	const idle = 10000
	raiseNoFile(t, idle+500)
	ts := startServer(t, func(c *Config) { c.MaxConns = idle + 100 })
	ts.be.data["k"] = &fakeEntry{val: []byte(strings.Repeat("v", 100))}

	latencies(t, ts.addr) // warm-up
	quiet := latencies(t, ts.addr)
	waitFor(t, func() bool { return ts.srv.ConnectedClients() == 0 }, "the active clients to be gone")
	heap0, stack0 := heapAndStacks()

	start := time.Now()
	startIdleClients(t, ts.addr, idle)
	waitFor(t, func() bool { return ts.srv.ConnectedClients() == idle }, "10,000 connections on the server")
	t.Logf("%d idle connections open and served after %v", idle, time.Since(start).Round(time.Millisecond))
	heap1, stack1 := heapAndStacks()
	heap, stack := (float64(heap1)-float64(heap0))/idle, (float64(stack1)-float64(stack0))/idle
	t.Logf("server memory per idle connection: %.0f B (heap %.0f B, goroutine stacks %.0f B; target < 8192)", heap+stack, heap, stack)

	busy := latencies(t, ts.addr)
	t.Logf("p99 of one GET at a time: %v without idle connections, %v with %d idle; ratio %.2f (target <= 2)",
		quiet, busy, idle, float64(busy)/float64(quiet))
	waitFor(t, func() bool { return ts.srv.ConnectedClients() == idle }, "the idle connections alone to remain")
}

// TestIdleClientsChild is the client side of TestTenThousandIdleConnections
// when run in a child process; otherwise it does nothing. It opens the
// connections, sends each a PING and a GET, checks the replies, prints
// "ready" and keeps them open until its stdin is closed (at most two
// minutes).
func TestIdleClientsChild(t *testing.T) {
	spec := os.Getenv(idleChildEnv)
	if spec == "" {
		t.Skip("only runs as the child process of TestTenThousandIdleConnections")
	}
	addr, count, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if err != nil {
		t.Fatalf("bad %s=%q", idleChildEnv, spec)
	}
	raiseNoFile(t, uint64(n)+100)
	conns := make([]net.Conn, n)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				_ = nc.Close()
			}
		}
	}()
	req := []byte(cmd("PING") + cmd("GET", "k"))
	want := "+PONG\r\n$100\r\n" + strings.Repeat("v", 100) + "\r\n"
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			reply := make([]byte, len(want))
			for i := range next {
				nc, err := dialAndCheck(addr, req, reply, want)
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("client %d: %w", i, err)
					}
					errMu.Unlock()
					continue
				}
				conns[i] = nc
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	fmt.Println("ready")
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-stdinClosed:
	case <-time.After(2 * time.Minute):
		t.Fatal("parent did not close stdin within 2 minutes")
	}
}

func dialAndCheck(addr string, req, reply []byte, want string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(req); err != nil {
		_ = nc.Close()
		return nil, err
	}
	if _, err := io.ReadFull(nc, reply); err != nil || string(reply) != want {
		_ = nc.Close()
		return nil, fmt.Errorf("reply %q: %v", reply, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}

// startIdleClients re-executes the test binary as TestIdleClientsChild
// with n connections to addr and waits until they are all served. The
// child exits when the test ends (its stdin is closed) and is killed, by
// its PID, if it does not.
func startIdleClients(t *testing.T, addr string, n int) {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^TestIdleClientsChild$", "-test.count=1", "-test.v")
	child.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", idleChildEnv, addr, n))
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatalf("starting the client process: %v", err)
	}
	exited := make(chan error, 1)
	ready := make(chan struct{})
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if sc.Text() == "ready" {
				close(ready)
				_, _ = io.Copy(io.Discard, stdout)
				break
			}
		}
		exited <- child.Wait()
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("client process: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = child.Process.Kill()
			<-exited
			t.Errorf("client process did not exit; killed pid %d", child.Process.Pid)
		}
	})
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("client process exited before it was ready: %v\n%s", err, out.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("client process not ready after 90s:\n%s", out.String())
	}
}

// latencies runs 8 active clients, each sending 1,500 GETs one at a time
// (stopping early after 20 s), and returns the 99th percentile of their
// round trips.
func latencies(t *testing.T, addr string) time.Duration {
	t.Helper()
	const clients, perClient = 8, 1500
	stop := time.Now().Add(20 * time.Second)
	req := []byte(cmd("GET", "k"))
	want := "$100\r\n" + strings.Repeat("v", 100) + "\r\n"
	samples := make([][]time.Duration, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
			reply := make([]byte, len(want))
			own := make([]time.Duration, 0, perClient)
			for range perClient {
				t0 := time.Now()
				if _, err := nc.Write(req); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(nc, reply); err != nil || string(reply) != want {
					errs <- fmt.Errorf("reply %q: %v", reply, err)
					return
				}
				own = append(own, time.Since(t0))
				if time.Now().After(stop) {
					break
				}
			}
			samples[i] = own
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("active client: %v", err)
	}
	all := slices.Concat(samples...)
	slices.Sort(all)
	return all[len(all)*99/100]
}

// heapAndStacks returns the Go heap and goroutine stacks in use after
// garbage has been collected and the sync.Pools emptied (and idle
// goroutines' stacks shrunk, which takes a GC per halving).
func heapAndStacks() (heap, stacks uint64) {
	for range 3 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// raiseNoFile raises the soft RLIMIT_NOFILE to at least need (Go already
// raises it to the hard limit at start-up on Linux), and skips the test if
// the hard limit is lower and cannot be raised.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	// Raising the hard limit too takes privileges a test rarely has.
	want := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Skipf("need %d file descriptors; RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %v",
			need, lim.Cur, lim.Max, err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}
