package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
	"github.com/urfave/cli/v2"
)

// runViewApp runs `starling args...` with the view commands in process and
// returns stdout, stderr and the error (carrying the exit code).
func runViewApp(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:           "starling",
		Commands:       []*cli.Command{membersCommand(), ringCommand(), statsCommand()},
		Writer:         &out,
		ErrWriter:      &errOut,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"starling"}, args...))
	return out.String(), errOut.String(), err
}

// cells finds the cells of a table line: runs of text separated by at
// least two spaces. Each is [start, end) in bytes.
var cells = regexp.MustCompile(`\S+(?: \S+)*`)

// checkAligned fails unless every line of the table has the same number of
// cells and each column starts (left-aligned) or ends (right-aligned) at
// the same offset on every line.
func checkAligned(t *testing.T, table []string, right bool) {
	t.Helper()
	edge := func(loc []int) int {
		if right {
			return loc[1]
		}
		return loc[0]
	}
	first := cells.FindAllStringIndex(table[0], -1)
	for _, line := range table[1:] {
		got := cells.FindAllStringIndex(line, -1)
		if len(got) != len(first) {
			t.Fatalf("%d cells in %q, %d in the header %q", len(got), line, len(first), table[0])
		}
		for i := range got {
			if edge(got[i]) != edge(first[i]) {
				t.Fatalf("column %d misaligned:\n%s\n%s", i+1, table[0], line)
			}
		}
	}
}

func TestViewCommandsAgainstACluster(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	addr := nodes[1].Addr()
	cfg := client.DefaultConfig()
	cfg.Addrs = []string{addr}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 100 {
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("members", func(t *testing.T) {
		out, _, err := runViewApp(t, "members", "--addr", addr)
		if err != nil {
			t.Fatalf("members: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		checkAligned(t, lines, false)
		alive := 0
		for _, l := range lines[1:] { // as the end-to-end tests read it
			if f := strings.Fields(l); len(f) >= 4 && f[3] == "alive" {
				alive++
			}
		}
		if alive != 3 {
			t.Errorf("%d alive members in\n%s", alive, out)
		}
		out, _, err = runViewApp(t, "members", "--addr", addr, "--json")
		var ms []transport.Member
		if err != nil || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 3 {
			t.Errorf("members --json: %v\n%s", err, out)
		}
	})

	t.Run("ring", func(t *testing.T) {
		want := nodes[1].Ring()
		out, errOut, err := runViewApp(t, "ring", "--addr", addr, "--json")
		if err != nil || errOut != "" {
			t.Fatalf("ring --json: %v\n%s%s", err, out, errOut)
		}
		var rep ringReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("ring --json: %v\n%s", err, out)
		}
		v := fmt.Sprintf("%#x", want.Version())
		if rep.Version != v || rep.RebuiltVersion != v || rep.VNodes != ring.DefaultVNodes || len(rep.Members) != 3 {
			t.Fatalf("ring --json = %+v, want version %s, %d vnodes, 3 members", rep, v, ring.DefaultVNodes)
		}
		shares := want.Shares()
		for _, m := range rep.Members {
			if m.VNodes != ring.DefaultVNodes || math.Abs(m.Share-shares[m.Name]) > 1e-12 || m.State != "alive" || m.DataAddr == "" {
				t.Errorf("member %+v; the node's ring gives it share %v", m, shares[m.Name])
			}
		}

		out, errOut, err = runViewApp(t, "ring", "--addr", addr)
		if err != nil || errOut != "" {
			t.Fatalf("ring: %v\n%s%s", err, out, errOut)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if wantHead := fmt.Sprintf("ring version %s: 3 members, %d virtual nodes each", v, ring.DefaultVNodes); lines[0] != wantHead {
			t.Errorf("first line %q, want %q", lines[0], wantHead)
		}
		checkAligned(t, lines[1:], false)
		var sum float64
		for _, l := range lines[2:] {
			f := strings.Fields(l)
			var pct float64
			if _, err := fmt.Sscanf(f[len(f)-1], "%f%%", &pct); err != nil {
				t.Fatalf("share in %q: %v", l, err)
			}
			sum += pct
		}
		if math.Abs(sum-100) > 0.05 {
			t.Errorf("shares add up to %.2f%%:\n%s", sum, out)
		}
		t.Logf("\n%s", out)
	})

	t.Run("stats", func(t *testing.T) {
		out, _, err := runViewApp(t, "stats", "--addr", addr, "--json")
		if err != nil {
			t.Fatalf("stats --json: %v\n%s", err, out)
		}
		var rep struct {
			Nodes []client.NodeStats `json:"nodes"`
			Total transport.Stats    `json:"total"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("stats --json: %v\n%s", err, out)
		}
		var entries int64
		for _, n := range rep.Nodes {
			entries += n.Stats.Entries
		}
		// 100 keys, 2 replicas each (the default).
		if len(rep.Nodes) != 3 || rep.Total.Entries != entries || entries != 200 {
			t.Errorf("stats: %d nodes, total entries %d, sum of the nodes' %d; want 3, 200, 200", len(rep.Nodes), rep.Total.Entries, entries)
		}
		out, _, err = runViewApp(t, "stats", "--addr", addr)
		if err != nil {
			t.Fatalf("stats: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		checkAligned(t, lines, true)
		if len(lines) != 5 || !strings.HasPrefix(strings.TrimSpace(lines[4]), "TOTAL") || strings.Fields(lines[4])[1] != "200" {
			t.Errorf("stats table:\n%s", out)
		}
	})
}

// The views keep the client commands' exit codes.
func TestViewCommandErrors(t *testing.T) {
	for _, cmd := range []string{"members", "ring", "stats"} {
		if _, _, err := runViewApp(t, cmd, "--addr", "127.0.0.1:1", "--timeout", "1s"); exitCode(err) != exitUnavailable {
			t.Errorf("%s against nothing: %v (exit %d), want %d", cmd, err, exitCode(err), exitUnavailable)
		}
		if _, _, err := runViewApp(t, cmd, "extra-arg"); exitCode(err) != exitUsage {
			t.Errorf("%s with an argument: %v (exit %d), want %d", cmd, err, exitCode(err), exitUsage)
		}
	}
}

// A node whose ring is changing reports a version its member list does
// not give: the ring view still prints, and says so on stderr.
func TestRingCommandNotesAVersionMismatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv, err := transport.NewServer(transport.DefaultConfig(), transport.HandlerFunc(
		func(_ context.Context, req *transport.Request, w transport.ResponseWriter) {
			resp := &transport.Response{ID: req.ID, RingVersion: 42}
			if req.Op == transport.OpMembers {
				resp.Members = []transport.Member{
					{Name: "a", DataAddr: addr, State: "alive"},
					{Name: "b", State: "alive"}, // no data address: off the ring
				}
			}
			w.Reply(resp)
		}))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	out, errOut, err := runViewApp(t, "ring", "--addr", addr)
	if err != nil {
		t.Fatalf("ring: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "ring version is 0x2a but its member list gives 0x") {
		t.Errorf("stderr %q does not note the mismatch", errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if lines[0] != fmt.Sprintf("ring version 0x2a: 1 member, %d virtual nodes each", ring.DefaultVNodes) {
		t.Errorf("first line %q", lines[0])
	}
	checkAligned(t, lines[1:], false)
	if f := strings.Fields(lines[2]); f[0] != "a" || f[4] != "100.00%" {
		t.Errorf("member a: %q", lines[2])
	}
	if f := strings.Fields(lines[3]); f[0] != "b" || f[1] != "-" || f[3] != "0" || f[4] != "-" {
		t.Errorf("member b (off the ring): %q", lines[3])
	}
}

// A node that does not answer gets dashes and its error under the table,
// and adds nothing to the totals.
func TestWriteStatsWithAFailedNode(t *testing.T) {
	nodes := []client.NodeStats{
		{Name: "n1", Addr: "10.0.0.1:7001", Stats: transport.Stats{Entries: 10, Hits: 5, FallbackHits: 1, HandoffMillis: 30}},
		{Name: "n2", Addr: "10.0.0.2:7001", Err: "dial tcp 10.0.0.2:7001: connection refused"},
		{Name: "n3", Addr: "10.0.0.3:7001", Stats: transport.Stats{Entries: 7, Hits: 2, FallbackHits: 2, HandoffMillis: 120}},
	}
	total := totalStats(nodes)
	if total.Entries != 17 || total.Hits != 7 || total.FallbackHits != 3 || total.HandoffMillis != 120 {
		t.Errorf("totals %+v", total)
	}
	var buf bytes.Buffer
	if err := writeStats(&buf, nodes, total); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("want header, 3 nodes, total and one error line:\n%s", buf.String())
	}
	checkAligned(t, lines[:5], true)
	if f := strings.Fields(lines[2]); f[0] != "n2" || strings.Count(lines[2], "-") != 14 {
		t.Errorf("failed node's row: %q", lines[2])
	}
	if lines[5] != "n2 (10.0.0.2:7001) did not answer: dial tcp 10.0.0.2:7001: connection refused" {
		t.Errorf("error line %q", lines[5])
	}
}
