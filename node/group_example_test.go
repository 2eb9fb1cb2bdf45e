package node_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/starlingcache/starling/node"
)

// A service embeds a node, joining the same cluster as standalone
// `starling start` nodes with the same configuration, and reads users
// through a group: a miss anywhere in the cluster queries the database
// once, on the key's owner. (Not run: it needs a cluster and a database.)
func ExampleNode_NewGroup() {
	var db *sql.DB // the service's database

	cfg := node.DefaultConfig()
	cfg.Name = "app-1" // unique and stable, like any member's
	cfg.Addr = "10.0.0.7:7001"
	cfg.Gossip.BindAddr = "10.0.0.7:7946"
	cfg.Gossip.Seeds = []string{"10.0.0.1:7946"} // any member
	nd, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	// Registered before Start, so the node's first gossip metadata says it
	// runs this loader; nodes without it forward their loads here.
	users, err := nd.NewGroup(node.GroupConfig{
		Name:        "users",
		TTL:         5 * time.Minute,
		SoftTTL:     time.Minute,      // older: served at once, refreshed in the background
		NegativeTTL: 10 * time.Second, // "no such user" is cached too
		LoadTimeout: 2 * time.Second,
		Loader: func(ctx context.Context, id string) ([]byte, time.Duration, error) {
			var row []byte
			err := db.QueryRowContext(ctx, `SELECT json FROM users WHERE id = $1`, id).Scan(&row)
			if errors.Is(err, sql.ErrNoRows) {
				return nil, 0, node.ErrNotFound
			}
			return row, 0, err // 0: the group's TTL
		},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := nd.Start(ctx); err != nil {
		panic(err)
	}
	defer nd.Shutdown(ctx)

	user, err := users.Get(ctx, "42")
	switch {
	case errors.Is(err, node.ErrNotFound):
		fmt.Println("no user 42")
	case err != nil:
		fmt.Println("lookup failed:", err)
	default:
		fmt.Printf("user 42: %s\n", user)
	}
}
