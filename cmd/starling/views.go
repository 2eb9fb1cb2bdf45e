package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/node"
	"github.com/urfave/cli/v2"
)

// The operator's views of a running cluster: members, ring and stats. Each
// prints an aligned table for people and, with --json, a document for
// scripts; both go to the app's Writer so tests can read them.

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name: "members", Usage: "list the members a node sees",
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "[--addr HOST:PORT] [--json]", func(ctx context.Context, cl *client.Client) error {
				ms, err := cl.Members(ctx)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, ms)
				}
				return writeMembers(c.App.Writer, ms)
			})
		},
	}
}

// writeMembers prints the member table. Scripts (and the end-to-end tests)
// read the state from the fourth column: keep the column order.
func writeMembers(w io.Writer, ms []client.Member) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tGOSSIP ADDRESS\tDATA ADDRESS\tSTATE\tRESP ADDRESS")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.GossipAddr, m.DataAddr, m.State, orDash(m.RespAddr))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ringCommand() *cli.Command {
	return &cli.Command{
		Name:  "ring",
		Usage: "show each member's share of the key space, its virtual nodes and the ring version",
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "[--addr HOST:PORT] [--json]", func(ctx context.Context, cl *client.Client) error {
				v, err := cl.RingView(ctx)
				if err != nil {
					return err
				}
				rep := newRingReport(v)
				if rep.Version != rep.RebuiltVersion {
					// Not an error: the node may be mid-change. Say so on
					// stderr so the table (or JSON) stays parseable.
					fmt.Fprintf(c.App.ErrWriter, "starling: note: the node's ring version is %s but its member list gives %s: "+
						"its ring is changing (a join or leave in progress) or it uses another ring configuration\n",
						rep.Version, rep.RebuiltVersion)
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, rep)
				}
				return writeRing(c.App.Writer, rep)
			})
		},
	}
}

// ringReport is what `starling ring` shows. Versions are hex strings, as
// in ring.String, so that JSON readers that keep numbers as doubles do not
// round them.
type ringReport struct {
	// Version is the ring version the contacted node reported.
	Version string `json:"version"`
	// RebuiltVersion is the version of the ring rebuilt from the node's
	// member list; it equals Version unless the ring is changing.
	RebuiltVersion string `json:"rebuilt_version"`
	// VNodes is the number of virtual nodes each member has on the ring.
	VNodes  int          `json:"vnodes_per_member"`
	Members []ringMember `json:"members"`
}

// ringMember is one member's place on the ring.
type ringMember struct {
	Name     string `json:"name"`
	DataAddr string `json:"data_addr"`
	State    string `json:"state"`
	// VNodes is 0 for a member the ring leaves out (no data address).
	VNodes int `json:"vnodes"`
	// Share is the fraction of the key space (and so of uniformly hashed
	// keys) the member owns as primary, in [0, 1].
	Share float64 `json:"share"`
}

func newRingReport(v *client.RingView) ringReport {
	shares := v.Ring.Shares()
	rep := ringReport{
		Version:        fmt.Sprintf("%#x", v.NodeVersion),
		RebuiltVersion: fmt.Sprintf("%#x", v.Ring.Version()),
		VNodes:         v.Ring.VNodes(),
		Members:        make([]ringMember, 0, len(v.Members)),
	}
	for _, m := range v.Members {
		rm := ringMember{Name: m.Name, DataAddr: m.DataAddr, State: m.State}
		if v.Ring.Contains(m.Name) && m.DataAddr != "" {
			rm.VNodes, rm.Share = rep.VNodes, shares[m.Name]
		}
		rep.Members = append(rep.Members, rm)
	}
	slices.SortFunc(rep.Members, func(a, b ringMember) int { return strings.Compare(a.Name, b.Name) })
	return rep
}

func writeRing(w io.Writer, rep ringReport) error {
	onRing := 0
	for _, m := range rep.Members {
		if m.VNodes > 0 {
			onRing++
		}
	}
	members := "members"
	if onRing == 1 {
		members = "member"
	}
	fmt.Fprintf(w, "ring version %s: %d %s, %d virtual nodes each\n", rep.Version, onRing, members, rep.VNodes)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDATA ADDRESS\tSTATE\tVNODES\tSHARE")
	for _, m := range rep.Members {
		share := "-" // not on the ring
		if m.VNodes > 0 {
			share = fmt.Sprintf("%.2f%%", 100*m.Share)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Name, orDash(m.DataAddr), m.State, m.VNodes, share)
	}
	return tw.Flush()
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name: "stats", Usage: "show every node's counters and the cluster totals",
		Flags: clientFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "[--addr HOST:PORT] [--json]", func(ctx context.Context, cl *client.Client) error {
				nodes, err := cl.Stats(ctx)
				if err != nil {
					return err
				}
				total := totalStats(nodes)
				if c.Bool("json") {
					return printJSON(c.App.Writer, struct {
						Nodes []client.NodeStats `json:"nodes"`
						Total client.Stats       `json:"total"`
					}{nodes, total})
				}
				return writeStats(c.App.Writer, nodes, total)
			})
		},
	}
}

// totalStats sums the nodes' counters. The last hand-off's duration is the
// longest of any node's rather than a sum: a cluster-wide hand-off runs on
// every node at once.
func totalStats(nodes []client.NodeStats) client.Stats {
	var total client.Stats
	for _, n := range nodes {
		s := n.Stats
		total.Entries += s.Entries
		total.Bytes += s.Bytes
		total.MaxMemory += s.MaxMemory
		total.Hits += s.Hits
		total.Misses += s.Misses
		total.Evictions += s.Evictions
		total.Expirations += s.Expirations
		total.Forwarded += s.Forwarded
		total.Local += s.Local
		total.Replicated += s.Replicated
		total.FallbackHits += s.FallbackHits
		total.KeysMoved += s.KeysMoved
		total.BytesMoved += s.BytesMoved
		total.UnderReplicated += s.UnderReplicated
		total.HandoffMillis = max(total.HandoffMillis, s.HandoffMillis)
	}
	return total
}

// writeStats prints one row per node and a TOTAL row, numbers aligned
// right. A node that did not answer gets dashes, its error under the
// table, and adds nothing to the totals.
func writeStats(w io.Writer, nodes []client.NodeStats, total client.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "NODE\tKEYS\tMEMORY\tMAX MEMORY\tHITS\tMISSES\tEVICTED\tEXPIRED\tLOCAL\tFORWARDED\tREPLICATED\tKEYS MOVED\tBYTES MOVED\tLAST HANDOFF\tUNDER-REPLICATED\t")
	row := func(name string, s client.Stats, failed bool) {
		if failed {
			fmt.Fprintf(tw, "%s%s\n", name, strings.Repeat("\t-", 14)+"\t")
			return
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%dms\t%d\t\n", name, s.Entries,
			node.FormatSize(s.Bytes), node.FormatSize(s.MaxMemory), s.Hits, s.Misses, s.Evictions, s.Expirations,
			s.Local, s.Forwarded, s.Replicated, s.KeysMoved, node.FormatSize(s.BytesMoved), s.HandoffMillis, s.UnderReplicated)
	}
	var failed []client.NodeStats
	for _, n := range nodes {
		row(n.Name, n.Stats, n.Err != "")
		if n.Err != "" {
			failed = append(failed, n)
		}
	}
	row("TOTAL", total, false)
	if err := tw.Flush(); err != nil {
		return err
	}
	// Errors go under the table: in a cell they would widen its column.
	for _, n := range failed {
		if _, err := fmt.Fprintf(w, "%s (%s) did not answer: %s\n", n.Name, n.Addr, n.Err); err != nil {
			return err
		}
	}
	return nil
}
