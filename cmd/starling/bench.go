package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/client/bench"
	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	d := bench.DefaultConfig()
	return &cli.Command{
		Name:  "bench",
		Usage: "load a cluster with pipelined GETs and SETs and report ops/s and latency percentiles",
		Description: "Workers (--clients) each send --pipeline requests at a time over --keys keys until\n" +
			"--requests are done or --duration has passed. With --smart (the default) the client\n" +
			"sends each request straight to its key's owner; --smart=false sends everything through\n" +
			"--addr, which forwards. A live progress line goes to stderr when it is a terminal;\n" +
			"the summary (or --json) goes to stdout. Exits 4 if any request failed.",
		Flags: append(securityFlags(),
			&cli.StringSliceFlag{Name: "addr", Usage: "data address of any node; repeat for fallbacks", Value: cli.NewStringSlice("127.0.0.1:7001"), EnvVars: env("CLIENT_ADDR")},
			&cli.IntFlag{Name: "clients", Usage: "concurrent workers", Value: d.Clients},
			&cli.IntFlag{Name: "pipeline", Usage: "requests each worker sends at once", Value: d.Pipeline},
			&cli.Int64Flag{Name: "requests", Usage: "total requests (0: run for --duration)", Value: d.Requests},
			&cli.DurationFlag{Name: "duration", Usage: "run this long (0: until --requests are done)"},
			&cli.IntFlag{Name: "keys", Usage: "distinct keys (key:000000000000 ...)", Value: d.Keys},
			&cli.IntFlag{Name: "value-size", Usage: "bytes per SET value", Value: d.ValueSize},
			&cli.StringFlag{Name: "ratio", Usage: "GET:SET mix, e.g. 9:1, 1:0 for GETs only", Value: fmt.Sprintf("%d:%d", d.GetRatio, d.SetRatio)},
			&cli.StringFlag{Name: "dist", Usage: "key distribution: uniform or zipf", Value: d.Dist},
			&cli.Float64Flag{Name: "zipf-exponent", Usage: "skew of --dist zipf (> 1)", Value: d.ZipfExponent},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the key and operation sequences", Value: d.Seed},
			&cli.BoolFlag{Name: "preload", Usage: "write every key once before the run, so GETs hit"},
			&cli.DurationFlag{Name: "ttl", Usage: "expiry of SET values (0: none)"},
			&cli.BoolFlag{Name: "smart", Usage: "send requests straight to their owners", Value: true},
			&cli.IntFlag{Name: "replicas", Usage: "the cluster's --replicas, for read failover", Value: client.DefaultConfig().Replicas},
			&cli.IntFlag{Name: "conns", Usage: "connections per node, at most (one carries up to 32 requests in flight before the next is opened)", Value: client.DefaultConfig().Transport.ConnsPerPeer},
			&cli.DurationFlag{Name: "timeout", Usage: "give up on a request after this long", Value: 5 * time.Second, EnvVars: env("TIMEOUT")},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.BoolFlag{Name: "split", Usage: "with --smart=false, --pipeline 1 and one --addr: time the GETs that node serves itself and those it forwards apart, at the same load (answered GETs only; the two kinds travel on separate connections)"},
		),
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("usage: starling bench [flags]; see --help", exitUsage)
	}
	cfg := bench.DefaultConfig()
	cfg.Clients = c.Int("clients")
	cfg.Pipeline = c.Int("pipeline")
	cfg.Requests = c.Int64("requests")
	cfg.Duration = c.Duration("duration")
	if c.IsSet("duration") && !c.IsSet("requests") {
		cfg.Requests = 0
	}
	cfg.Keys = c.Int("keys")
	cfg.ValueSize = c.Int("value-size")
	cfg.Dist = c.String("dist")
	cfg.ZipfExponent = c.Float64("zipf-exponent")
	cfg.Seed = c.Uint64("seed")
	cfg.Preload = c.Bool("preload")
	cfg.TTL = c.Duration("ttl")
	var err error
	if cfg.GetRatio, cfg.SetRatio, err = bench.ParseRatio(c.String("ratio")); err != nil {
		return cli.Exit(err, exitUsage)
	}
	if err := cfg.Validate(); err != nil {
		return cli.Exit(err, exitUsage)
	}
	if c.Bool("split") && (c.Bool("smart") || cfg.Pipeline != 1 || len(splitList(c.StringSlice("addr"))) != 1) {
		return cli.Exit("--split needs --smart=false, --pipeline 1 and one --addr (the node whose own keys it times apart)", exitUsage)
	}

	ccfg := client.DefaultConfig()
	ccfg.Addrs = splitList(c.StringSlice("addr"))
	ccfg.Smart = c.Bool("smart")
	ccfg.Replicas = c.Int("replicas")
	ccfg.Timeout = c.Duration("timeout")
	ccfg.Transport.ConnsPerPeer = c.Int("conns")
	sec, err := loadSecurity(c)
	if err != nil {
		return err
	}
	ccfg.Transport.Secret, ccfg.Transport.TLS = sec.secret, sec.clientTLS
	cl, err := client.New(ccfg)
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	defer cl.Close()

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	mctx, cancel := context.WithTimeout(ctx, ccfg.Timeout)
	members, err := cl.Members(mctx)
	cancel()
	if err != nil {
		return cli.Exit(fmt.Errorf("cannot reach the cluster: %w", err), exitUnavailable)
	}
	var d bench.Doer = cl
	if c.Bool("split") {
		mctx, cancel := context.WithTimeout(ctx, ccfg.Timeout)
		cfg.Local, err = cl.Owns(mctx, ccfg.Addrs[0])
		cancel()
		if err != nil {
			return cli.Exit(err, exitUnavailable)
		}
		// The forwarded GETs get a client, and connections, of their own.
		fwd, err := client.New(ccfg)
		if err != nil {
			return cli.Exit(err, exitUsage)
		}
		defer fwd.Close()
		d = bench.ByKey{Local: cl, Other: fwd, IsLocal: cfg.Local}
	}
	if isTerminal(c.App.ErrWriter) {
		w := c.App.ErrWriter
		cfg.Progress = func(p bench.Progress) { fmt.Fprintf(w, "\r%s\x1b[K", bench.FormatProgress(p)) }
	}
	res, err := bench.Run(ctx, d, cfg)
	if cfg.Progress != nil {
		fmt.Fprint(c.App.ErrWriter, "\r\x1b[K")
	}
	if err != nil {
		return cli.Exit(err, exitError)
	}
	rep := &bench.Report{Addrs: ccfg.Addrs, Smart: ccfg.Smart, Members: len(members), Config: cfg, Result: res}
	if c.Bool("json") {
		err = rep.WriteJSON(c.App.Writer)
	} else {
		err = rep.WriteText(c.App.Writer)
	}
	switch {
	case err != nil:
		return cli.Exit(err, exitError)
	case res.Errors > 0:
		return cli.Exit(fmt.Sprintf("%d of %d requests failed", res.Errors, res.Ops), exitError)
	}
	return nil
}

// isTerminal reports whether w is a terminal, where a line rewritten in
// place makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
