package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/urfave/cli/v2"
)

func clientFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "addr", Usage: "data address of any node; repeat for fallbacks", Value: cli.NewStringSlice("127.0.0.1:7001"), EnvVars: env("CLIENT_ADDR")},
		&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 5 * time.Second, EnvVars: env("TIMEOUT")},
	}, append(securityFlags(), extra...)...)
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
	sec, err := loadSecurity(c)
	if err != nil {
		return err
	}
	cfg.Transport.Secret, cfg.Transport.TLS = sec.secret, sec.clientTLS
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

func scanCommand() *cli.Command {
	return &cli.Command{
		Name: "scan", Usage: "list the cluster's keys, one per line (all of them within --timeout)",
		Flags: clientFlags(
			&cli.StringFlag{Name: "match", Usage: "only keys matching this Redis glob pattern", Value: "*"},
			&cli.IntFlag{Name: "count", Usage: "about how many keys each step looks at", Value: 1000},
		),
		Action: func(c *cli.Context) error {
			return withClient(c, 0, "[--addr HOST:PORT] [--match PATTERN] [--count N]", func(ctx context.Context, cl *client.Client) error {
				w := bufio.NewWriter(os.Stdout)
				err := cl.ScanAll(ctx, c.String("match"), c.Int("count"), func(key string) error {
					_, err := fmt.Fprintln(w, key)
					return err
				})
				if ferr := w.Flush(); err == nil {
					err = ferr
				}
				return err
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
