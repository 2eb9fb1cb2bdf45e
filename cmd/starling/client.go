package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/transport"
	"github.com/urfave/cli/v2"
)

func clientFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "addr", Usage: "data address of any node; repeat for fallbacks", Value: cli.NewStringSlice("127.0.0.1:7001"), EnvVars: env("CLIENT_ADDR")},
		&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 5 * time.Second, EnvVars: env("TIMEOUT")},
	}, extra...)
}

// withClient connects to the cluster named by the flags, runs fn, and maps
// its error onto the documented exit codes.
func withClient(c *cli.Context, nargs int, usage string, fn func(ctx context.Context, cl *client.Client) error) error {
	if c.NArg() != nargs {
		return cli.Exit(fmt.Sprintf("usage: starling %s %s", c.Command.Name, usage), exitUsage)
	}
	cfg := client.DefaultConfig()
	cfg.Addrs = splitList(c.StringSlice("addr"))
	cfg.Timeout = c.Duration("timeout")
	cl, err := client.New(cfg)
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(c.Context, cfg.Timeout)
	defer cancel()
	switch err := fn(ctx, cl); {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNotFound):
		return cli.Exit(fmt.Sprintf("(not found) %s", c.Args().First()), exitNotFound)
	case errors.Is(err, client.ErrUnavailable):
		return cli.Exit(err, exitUnavailable)
	default:
		return cli.Exit(err, exitError)
	}
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name: "get", Usage: "print the value of a key", ArgsUsage: "KEY",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			return withClient(c, 1, "[--addr HOST:PORT] KEY", func(ctx context.Context, cl *client.Client) error {
				v, err := cl.Get(ctx, c.Args().Get(0))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(os.Stdout, "%s\n", v)
				return err
			})
		},
	}
}

func setCommand() *cli.Command {
	return &cli.Command{
		Name: "set", Usage: "store a value under a key", ArgsUsage: "KEY VALUE",
		Flags: clientFlags(&cli.DurationFlag{Name: "ttl", Usage: "expire after this long (0: never)"}),
		Action: func(c *cli.Context) error {
			return withClient(c, 2, "[--addr HOST:PORT] [--ttl 30s] KEY VALUE", func(ctx context.Context, cl *client.Client) error {
				if err := cl.Set(ctx, c.Args().Get(0), []byte(c.Args().Get(1)), c.Duration("ttl")); err != nil {
					return err
				}
				fmt.Println("OK")
				return nil
			})
		},
	}
}

func delCommand() *cli.Command {
	return &cli.Command{
		Name: "del", Usage: "delete a key", ArgsUsage: "KEY",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			return withClient(c, 1, "[--addr HOST:PORT] KEY", func(ctx context.Context, cl *client.Client) error {
				if err := cl.Delete(ctx, c.Args().Get(0)); err != nil {
					return err
				}
				fmt.Println("OK")
				return nil
			})
		},
	}
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name: "members", Usage: "list the members a node sees",
		Flags: clientFlags(&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "[--addr HOST:PORT] [--json]", func(ctx context.Context, cl *client.Client) error {
				ms, err := cl.Members(ctx)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(ms)
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tGOSSIP ADDRESS\tDATA ADDRESS\tSTATE\tRESP ADDRESS")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.GossipAddr, m.DataAddr, m.State, orDash(m.RespAddr))
				}
				return tw.Flush()
			})
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name: "stats", Usage: "show every node's counters and the cluster totals",
		Flags: clientFlags(&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "[--addr HOST:PORT] [--json]", func(ctx context.Context, cl *client.Client) error {
				nodes, err := cl.Stats(ctx)
				if err != nil {
					return err
				}
				var total transport.Stats
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
					total.KeysMoved += s.KeysMoved
					total.BytesMoved += s.BytesMoved
					total.UnderReplicated += s.UnderReplicated
					total.HandoffMillis = max(total.HandoffMillis, s.HandoffMillis)
				}
				if c.Bool("json") {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(struct {
						Nodes []client.NodeStats `json:"nodes"`
						Total transport.Stats    `json:"total"`
					}{nodes, total})
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "NODE\tKEYS\tMEMORY\tMAX MEMORY\tHITS\tMISSES\tEVICTED\tEXPIRED\tLOCAL\tFORWARDED\tREPLICATED\tKEYS MOVED\tBYTES MOVED\tLAST HANDOFF\tUNDER-REPLICATED\t")
				row := func(name string, s transport.Stats, errText string) {
					if errText != "" {
						fmt.Fprintf(tw, "%s\t(%s)\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", name, errText)
						return
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%dms\t%d\t\n", name, s.Entries,
						node.FormatSize(s.Bytes), node.FormatSize(s.MaxMemory), s.Hits, s.Misses, s.Evictions, s.Expirations,
						s.Local, s.Forwarded, s.Replicated, s.KeysMoved, node.FormatSize(s.BytesMoved), s.HandoffMillis, s.UnderReplicated)
				}
				for _, n := range nodes {
					row(n.Name, n.Stats, n.Err)
				}
				row("TOTAL", total, "")
				return tw.Flush()
			})
		},
	}
}

func leaveCommand() *cli.Command {
	return &cli.Command{
		Name: "leave", Usage: "ask the node at --addr to hand off its keys, leave the cluster and exit",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "--addr HOST:PORT", func(ctx context.Context, cl *client.Client) error {
				addrs := splitList(c.StringSlice("addr"))
				if len(addrs) != 1 {
					return fmt.Errorf("leave takes exactly one --addr")
				}
				if err := cl.Leave(ctx, addrs[0]); err != nil {
					return err
				}
				fmt.Println("OK: the node is handing off its keys and will exit")
				return nil
			})
		},
	}
}
