package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/resp"
	"github.com/urfave/cli/v2"
)

func env(name string) []string { return []string{"STARLING_" + name} }

func startCommand() *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "run a node; without --join it starts a new cluster",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "unique, stable node name", EnvVars: env("NAME"), Required: true},
			&cli.StringFlag{Name: "addr", Usage: "data (msgpack) listen address", Value: "127.0.0.1:7001", EnvVars: env("ADDR")},
			&cli.StringFlag{Name: "gossip-addr", Usage: "gossip listen address (TCP and UDP)", Value: "127.0.0.1:7946", EnvVars: env("GOSSIP_ADDR")},
			&cli.StringFlag{Name: "resp-addr", Usage: "Redis-protocol (RESP) listen address; empty disables it", EnvVars: env("RESP_ADDR")},
			&cli.StringFlag{Name: "requirepass", Usage: "password RESP clients must AUTH with (prefer the env var or --requirepass-file: argv is visible to other users)", EnvVars: env("REQUIREPASS")},
			&cli.StringFlag{Name: "requirepass-file", Usage: "file holding the RESP password", EnvVars: env("REQUIREPASS_FILE")},
			&cli.BoolFlag{Name: "resp-tls", Usage: "serve RESP over TLS with --tls-cert and --tls-key (clients need no certificate)", EnvVars: env("RESP_TLS")},
			&cli.StringFlag{Name: "http-addr", Usage: "HTTP listen address for /metrics, /healthz, /readyz and the status page; empty disables it", EnvVars: env("HTTP_ADDR")},
			&cli.BoolFlag{Name: "pprof", Usage: "serve /debug/pprof/ on --http-addr", EnvVars: env("PPROF")},
			&cli.StringFlag{Name: "gossip-key", Usage: "gossip encryption key, base64 of 16, 24 or 32 bytes (prefer the env var or --gossip-key-file)", EnvVars: env("GOSSIP_KEY")},
			&cli.StringFlag{Name: "gossip-key-file", Usage: "file holding the gossip key (base64 or raw 16/24/32 bytes)", EnvVars: env("GOSSIP_KEY_FILE")},
			&cli.StringSliceFlag{Name: "gossip-extra-key", Usage: "further gossip keys accepted while rotating (base64); repeat or comma-separate", EnvVars: env("GOSSIP_EXTRA_KEY")},
			&cli.BoolFlag{Name: "enable-flushall", Usage: "allow FLUSHALL, which empties every node of the cluster", EnvVars: env("ENABLE_FLUSHALL")},
			&cli.StringFlag{Name: "advertise", Usage: "host other nodes and clients reach this node at (needed when binding 0.0.0.0)", EnvVars: env("ADVERTISE")},
			&cli.StringSliceFlag{Name: "join", Usage: "seed gossip address HOST:PORT; repeat or comma-separate", EnvVars: env("JOIN")},
			&cli.StringFlag{Name: "gossip-profile", Usage: "failure-detection timings: lan (seconds) or local (sub-second, more traffic)", Value: "lan", EnvVars: env("GOSSIP_PROFILE")},
			&cli.StringFlag{Name: "max-memory", Usage: "bound on stored keys, values and overhead, e.g. 512MiB, 2GiB (default: a quarter of RAM)", EnvVars: env("MAX_MEMORY")},
			&cli.StringFlag{Name: "eviction", Usage: "eviction policy when full: s3fifo or lru", Value: "s3fifo", EnvVars: env("EVICTION")},
			&cli.StringFlag{Name: "max-key-size", Usage: "largest key accepted", Value: "64KiB", EnvVars: env("MAX_KEY_SIZE")},
			&cli.StringFlag{Name: "max-value-size", Usage: "largest value accepted", Value: "1MiB", EnvVars: env("MAX_VALUE_SIZE")},
			&cli.IntFlag{Name: "max-conns", Usage: "connections the data port holds open; further ones are closed at once", Value: node.DefaultConfig().Transport.MaxConns, EnvVars: env("MAX_CONNS")},
			&cli.IntFlag{Name: "resp-max-conns", Usage: "RESP clients held open (Redis's maxclients)", Value: resp.DefaultConfig().MaxConns, EnvVars: env("RESP_MAX_CONNS")},
			&cli.IntFlag{Name: "max-inflight", Usage: "requests in flight per data connection; at the limit the node stops reading it (backpressure)", Value: node.DefaultConfig().Transport.MaxInflightPerConn, EnvVars: env("MAX_INFLIGHT")},
			&cli.DurationFlag{Name: "idle-timeout", Usage: "close a data connection idle this long", Value: node.DefaultConfig().Transport.IdleTimeout, EnvVars: env("IDLE_TIMEOUT")},
			&cli.IntFlag{Name: "peer-conns", Usage: "connections to each peer for forwarded requests; a second lets a peer serve them on two cores, at the cost of smaller writes (the default is 1 when GOMAXPROCS is 1: a one-CPU machine or cpuset; set 1 yourself under a CPU quota of one)", Value: node.DefaultConfig().Transport.ConnsPerPeer, EnvVars: env("PEER_CONNS")},
			&cli.DurationFlag{Name: "resp-idle-timeout", Usage: "close a RESP client idle this long (0: never, as Redis)", EnvVars: env("RESP_IDLE_TIMEOUT")},
			&cli.DurationFlag{Name: "resp-command-timeout", Usage: "longest a RESP client may take to send one command (slowloris guard; 0: none)", Value: resp.DefaultConfig().CommandTimeout, EnvVars: env("RESP_COMMAND_TIMEOUT")},
			&cli.IntFlag{Name: "replicas", Usage: "copies of each key (1 = no replication)", Value: 2, EnvVars: env("REPLICAS")},
			&cli.StringFlag{Name: "write-ack", Usage: "copies a write waits for: one, quorum or all", Value: "quorum", EnvVars: env("WRITE_ACK")},
			&cli.DurationFlag{Name: "leave-timeout", Usage: "how long a graceful shutdown may take", Value: 30 * time.Second, EnvVars: env("LEAVE_TIMEOUT")},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: env("LOG_LEVEL")},
			&cli.StringFlag{Name: "sysmon", Usage: "the Go runtime's monitor thread: awake (the node starts itself again, same PID, with GODEBUG=schedtrace set, so the monitor never parks; this can cut the CPU per request where nodes share a core) or default (Go's own); a schedtrace in GODEBUG wins", Value: "awake", EnvVars: env("SYSMON")},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: env("LOG_FORMAT")},
		}, securityFlags()...),
		Action: runStart,
	}
}

func runStart(c *cli.Context) error {
	logger, err := newLogger(c.String("log-level"), c.String("log-format"))
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	if err := keepSysmonAwake(logger, c.String("sysmon"), c.Path(configFlagName)); err != nil {
		return cli.Exit(err, exitUsage)
	}
	var cfg node.Config
	switch c.String("gossip-profile") {
	case "lan":
		cfg = node.DefaultConfig()
	case "local":
		cfg = node.DefaultLocalConfig()
	default:
		return cli.Exit(fmt.Sprintf("unknown --gossip-profile %q (want lan or local)", c.String("gossip-profile")), exitUsage)
	}
	cfg.Name = c.String("name")
	cfg.Addr = c.String("addr")
	cfg.Advertise = c.String("advertise")
	cfg.Gossip.BindAddr = c.String("gossip-addr")
	cfg.Gossip.Seeds = splitList(c.StringSlice("join"))
	cfg.Logger = logger
	cfg.Replicas = c.Int("replicas")
	if cfg.WriteAck, err = node.ParseAckMode(c.String("write-ack")); err != nil {
		return cli.Exit(err, exitUsage)
	}
	cfg.RESP.Addr = c.String("resp-addr")
	if cfg.RESP.RequirePass, err = secretFlag(c, "requirepass"); err != nil {
		return err
	}
	sec, err := loadSecurity(c)
	if err != nil {
		return err
	}
	cfg.Transport.Secret, cfg.ServerTLS, cfg.ClientTLS = sec.secret, sec.serverTLS, sec.clientTLS
	if c.Bool("resp-tls") {
		if sec.serverTLS == nil {
			return cli.Exit("--resp-tls needs --tls-cert, --tls-key and --tls-ca", exitUsage)
		}
		cfg.RESP.TLS = sec.serverTLS.Clone()
		cfg.RESP.TLS.ClientAuth = tls.NoClientCert // redis-cli --tls and the like bring no certificate
	}
	cfg.HTTP.Addr = c.String("http-addr")
	cfg.HTTP.EnablePprof = c.Bool("pprof")
	if cfg.Gossip.SecretKey, err = gossipKey(c); err != nil {
		return err
	}
	for _, k := range splitList(c.StringSlice("gossip-extra-key")) {
		key, err := node.ParseGossipKey(k)
		if err != nil {
			return cli.Exit(fmt.Sprintf("--gossip-extra-key: %v", err), exitUsage)
		}
		cfg.Gossip.ExtraKeys = append(cfg.Gossip.ExtraKeys, key)
	}
	cfg.RESP.EnableFlushAll = c.Bool("enable-flushall")
	cfg.Store.Policy = c.String("eviction")
	cfg.Store.MaxMemory = node.DefaultMaxMemory()
	if c.String("max-memory") != "" {
		if cfg.Store.MaxMemory, err = sizeFlag(c, "max-memory"); err != nil {
			return err
		}
	}
	keySize, err := sizeFlag(c, "max-key-size")
	if err != nil {
		return err
	}
	valueSize, err := sizeFlag(c, "max-value-size")
	if err != nil {
		return err
	}
	cfg.Store.MaxKeySize, cfg.Store.MaxValueSize = int(keySize), int(valueSize)
	cfg.Transport.MaxConns, cfg.Transport.MaxInflightPerConn = c.Int("max-conns"), c.Int("max-inflight")
	cfg.Transport.IdleTimeout = c.Duration("idle-timeout")
	cfg.Transport.ConnsPerPeer = c.Int("peer-conns")
	cfg.RESP.MaxConns, cfg.RESP.IdleTimeout = c.Int("resp-max-conns"), c.Duration("resp-idle-timeout")
	cfg.RESP.CommandTimeout = c.Duration("resp-command-timeout")
	logger.Info("memory bound", "max_memory", node.FormatSize(cfg.Store.MaxMemory), "eviction", cfg.Store.Policy)

	n, err := node.New(cfg)
	if err != nil {
		return cli.Exit(err, exitUsage)
	}
	tuneGC(logger, cfg.Store.MaxMemory)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := n.Start(ctx); err != nil {
		return cli.Exit(err, exitError)
	}
	select {
	case <-ctx.Done():
		logger.Info("signal received; handing off and leaving the cluster", "timeout", c.Duration("leave-timeout"))
	case <-n.LeaveRequested():
		logger.Info("leave requested; handing off and leaving the cluster", "timeout", c.Duration("leave-timeout"))
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), c.Duration("leave-timeout"))
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return cli.Exit(err, exitError)
	}
	return nil
}

// gossipKey returns the key --gossip-key or --gossip-key-file gives, nil
// for none.
func gossipKey(c *cli.Context) (node.GossipKey, error) {
	switch v, file := c.String("gossip-key"), c.String("gossip-key-file"); {
	case v != "" && file != "":
		return nil, cli.Exit("--gossip-key and --gossip-key-file are exclusive", exitUsage)
	case file != "":
		k, err := node.LoadGossipKeyFile(file)
		if err != nil {
			return nil, cli.Exit(fmt.Sprintf("--gossip-key-file: %v", err), exitUsage)
		}
		return k, nil
	case v != "":
		k, err := node.ParseGossipKey(v)
		if err != nil {
			return nil, cli.Exit(fmt.Sprintf("--gossip-key: %v", err), exitUsage)
		}
		return k, nil
	}
	return nil, nil
}

// sizeFlag parses a byte-size flag such as --max-memory 2GiB.
func sizeFlag(c *cli.Context, name string) (int64, error) {
	n, err := node.ParseSize(c.String(name))
	if err != nil {
		return 0, cli.Exit(fmt.Sprintf("--%s: %v", name, err), exitUsage)
	}
	return n, nil
}

// splitList accepts both repeated flags and comma-separated values, and
// drops empty items so a trailing comma or an empty env var is harmless.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
