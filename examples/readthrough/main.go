// Command readthrough is a small HTTP service that embeds a starling node
// and reads items from a SQL database through a read-through group: a
// request for an item that is not cached is routed to the item's owner in
// the cluster, which alone queries the database, however many requests
// for it arrive at once, on however many instances.
//
// Run one instance, with an SQLite database it creates and seeds itself:
//
//	go run ./examples/readthrough
//	curl localhost:8080/items/42
//	curl localhost:8080/stats
//
// Run three, sharing one database and one cluster (the second and third
// join the first; standalone `starling start` nodes may join too):
//
//	go run ./examples/readthrough -dsn file:/tmp/items.db -name a -addr 127.0.0.1:7101 -gossip-addr 127.0.0.1:7946 -http 127.0.0.1:8081
//	go run ./examples/readthrough -dsn file:/tmp/items.db -name b -addr 127.0.0.1:7102 -gossip-addr 127.0.0.1:7947 -http 127.0.0.1:8082 -join 127.0.0.1:7946
//	go run ./examples/readthrough -dsn file:/tmp/items.db -name c -addr 127.0.0.1:7103 -gossip-addr 127.0.0.1:7948 -http 127.0.0.1:8083 -join 127.0.0.1:7946
//
// Use PostgreSQL instead with -dsn postgres://user:pass@host/db?sslmode=disable.
//
// With -bench it measures instead how many queries per second reach the
// database with and without the group (see bench.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/starlingcache/starling/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "readthrough:", err)
		os.Exit(1)
	}
}

// config is the service's flags.
type config struct {
	name, addr, gossipAddr, httpAddr string
	join                             []string
	dsn                              string
	seed                             int
	group                            node.GroupConfig
	bench                            bool
	benchCfg                         benchConfig
}

func parseFlags(args []string, out io.Writer) (config, error) {
	c := config{group: node.DefaultGroupConfig(), benchCfg: defaultBenchConfig()}
	fs := flag.NewFlagSet("readthrough", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.name, "name", "readthrough-1", "node name, unique in the cluster")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "node data (msgpack) address")
	fs.StringVar(&c.gossipAddr, "gossip-addr", "127.0.0.1:0", "node gossip address")
	fs.StringVar(&c.httpAddr, "http", "127.0.0.1:8080", "HTTP listen address")
	join := fs.String("join", "", "comma-separated gossip addresses of members to join")
	fs.StringVar(&c.dsn, "dsn", "", "database: postgres://... for PostgreSQL, else an SQLite DSN (default: a temporary SQLite file)")
	fs.IntVar(&c.seed, "seed", 10000, "items to create when the table is empty")
	fs.DurationVar(&c.group.TTL, "ttl", time.Minute, "how long an item stays cached")
	fs.DurationVar(&c.group.SoftTTL, "soft-ttl", 0, "serve an item older than this at once and refresh it in the background (0: off)")
	fs.DurationVar(&c.group.NegativeTTL, "negative-ttl", 10*time.Second, "how long a missing item stays cached as missing (0: not cached)")
	fs.DurationVar(&c.group.LoadTimeout, "load-timeout", 5*time.Second, "bound on one database query")
	fs.BoolVar(&c.bench, "bench", false, "measure database queries/s with and without the group, then exit")
	c.benchCfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*join, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.join = append(c.join, s)
		}
	}
	c.benchCfg.dsn = c.dsn
	return c, nil
}

// run starts the service and serves until ctx ends. ready, if not nil,
// receives the HTTP address once it is listening (tests).
func run(ctx context.Context, args []string, out io.Writer, ready chan<- string) error {
	cfg, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	if cfg.bench {
		return runBench(ctx, cfg.benchCfg, out)
	}
	items, err := openItems(cfg.dsn)
	if err != nil {
		return err
	}
	defer items.Close()
	if err := items.seed(ctx, cfg.seed); err != nil {
		return err
	}

	// The embedded node: the same configuration, gossip and transport as a
	// standalone `starling start`, in this process.
	ncfg := node.DefaultLocalConfig()
	ncfg.Name, ncfg.Addr = cfg.name, cfg.addr
	ncfg.Gossip.BindAddr, ncfg.Gossip.Seeds = cfg.gossipAddr, cfg.join
	ncfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nd, err := node.New(ncfg)
	if err != nil {
		return err
	}
	gcfg := cfg.group
	gcfg.Name, gcfg.Loader = "items", items.load
	// Registered before Start, so the node's first gossip metadata already
	// says it can load "items".
	group, err := nd.NewGroup(gcfg)
	if err != nil {
		return err
	}
	if err := nd.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = nd.Shutdown(sctx) // hands this node's keys to the others
	}()

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(nd, group, items), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(out, "node %s: data %s, gossip %s; HTTP on http://%s/items/{id}\n", nd.Name(), nd.Addr(), nd.GossipAddr(), ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// handler serves the items through the group, and a direct path and the
// counters for comparison.
func handler(nd *node.Node, group *node.Group, items *itemsDB) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v []byte, err error) {
		switch {
		case errors.Is(err, node.ErrNotFound):
			http.Error(w, "no such item", http.StatusNotFound)
		case errors.Is(err, context.DeadlineExceeded):
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadGateway)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(v)
		}
	}
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := group.Get(r.Context(), r.PathValue("id"))
		reply(w, v, err)
	})
	mux.HandleFunc("GET /direct/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := items.get(r.Context(), r.PathValue("id"))
		reply(w, v, err)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{
			"node":       nd.Name(),
			"members":    nd.Members(),
			"db_queries": items.queries.Load(),
			"group":      group.Stats(),
		})
	})
	return mux
}
