package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/lib/pq"  // the "postgres" database/sql driver
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go: no cgo, no set-up

	"github.com/starlingcache/starling/node"
)

// itemsDB is the source of truth the cache reads through: a table of
// items in SQLite or PostgreSQL. It counts the queries that reach it.
type itemsDB struct {
	db      *sql.DB
	queries atomic.Int64
	cleanup func()
}

// openItems opens the database: PostgreSQL when dsn starts with
// postgres:// or postgresql://, SQLite otherwise (a file in a fresh
// temporary directory when dsn is empty, removed by Close).
func openItems(dsn string) (*itemsDB, error) {
	driver, cleanup := "sqlite", func() {}
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		driver = "postgres"
	case dsn == "":
		dir, err := os.MkdirTemp("", "readthrough-")
		if err != nil {
			return nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		dsn = "file:" + filepath.Join(dir, "items.db")
		fallthrough
	default:
		// Readers must not fail while a writer holds the lock.
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("open %s: %w", driver, err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
		db.Close()
		cleanup()
		return nil, fmt.Errorf("create table: %w", err)
	}
	return &itemsDB{db: db, cleanup: cleanup}, nil
}

// Close closes the database and removes a temporary one.
func (d *itemsDB) Close() error {
	err := d.db.Close()
	d.cleanup()
	return err
}

// seed fills the table with items 1..n unless it already has rows.
func (d *itemsDB) seed(ctx context.Context, n int) error {
	var have int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&have); err != nil {
		return fmt.Errorf("count items: %w", err)
	}
	if have > 0 || n <= 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO items (id, value) VALUES ($1, $2)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := 1; i <= n; i++ {
		if _, err := stmt.ExecContext(ctx, fmt.Sprint(i), fmt.Sprintf(`{"id":%d,"name":"item %d"}`, i, i)); err != nil {
			return fmt.Errorf("seed item %d: %w", i, err)
		}
	}
	return tx.Commit()
}

// get reads one item straight from the database: what every request
// would cost without the cache.
func (d *itemsDB) get(ctx context.Context, id string) ([]byte, error) {
	d.queries.Add(1)
	var v string
	err := d.db.QueryRowContext(ctx, `SELECT value FROM items WHERE id = $1`, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, node.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("query item %q: %w", id, err)
	}
	return []byte(v), nil
}

// load is the group's Loader: a missing row is node.ErrNotFound, which the
// group caches for its NegativeTTL; ttl 0 leaves the TTL to the group.
func (d *itemsDB) load(ctx context.Context, id string) ([]byte, time.Duration, error) {
	v, err := d.get(ctx, id)
	return v, 0, err
}
