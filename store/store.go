// Package store keeps breachcast's state in a SQL database: incidents and
// their updates, recipients, the outbox (jobs, batches and the per-recipient
// delivery ledger), social posts, replies, the kill switch and the audit log.
//
// SQLite (modernc.org/sqlite, pure Go) is the embedded default: one file, WAL
// mode, migrations embedded and applied on Open. The SQL is kept to what
// PostgreSQL also speaks (integer millisecond times, RETURNING, partial
// indexes, ON CONFLICT) and the dialect-specific parts (DSN, pragmas,
// placeholders, the claim query) sit behind the dialect type, so a pgx
// implementation can follow without changing callers.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/breachcast/breachcast"
)

//go:embed migrations
var migrations embed.FS

// DB is a handle on the store. It is safe for concurrent use by many
// goroutines and, through SQLite's locking, by many processes.
type DB struct {
	db   *sql.DB
	path string

	// Now is the clock; tests replace it. Every method reads it once per
	// transaction so one operation sees one time.
	Now func() time.Time
}

// Open opens (creating if needed) the database named by dsn and applies any
// pending migrations. dsn is a file path, or "sqlite:PATH"; "postgres://"
// URLs are recognised and refused until the PostgreSQL implementation lands.
func Open(ctx context.Context, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return nil, breachcast.Errorf(breachcast.EINVALID,
			"database %q: PostgreSQL is not supported yet; use a SQLite file path", redactDSN(dsn))
	case strings.HasPrefix(dsn, "sqlite:"):
		dsn = strings.TrimPrefix(dsn, "sqlite:")
	}
	if dsn == "" {
		return nil, breachcast.Errorf(breachcast.EINVALID, "database: no path given (set db in the config or BREACHCAST_DB)")
	}
	path := dsn
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	q := url.Values{}
	// Pragmas go in the DSN so that every pooled connection gets them.
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(0)
	s := &DB{db: db, path: path, Now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// The database holds every customer's address: keep it private to its owner.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(p, 0o600)
		}
	}
	return s, nil
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://..."
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// Path returns the database file.
func (s *DB) Path() string { return s.path }

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

// SQL exposes the underlying handle for tests and diagnostics.
func (s *DB) SQL() *sql.DB { return s.db }

func (s *DB) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/sqlite/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(filepath.Base(name), ".sql")
		if err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, now)
			return err
		}); err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE on SQLite) with the time
// fixed for its whole duration, committing when fn returns nil.
func (s *DB) tx(ctx context.Context, fn func(tx *sql.Tx, now int64) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx, ms(s.Now())); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ms converts a time to integer Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// tm converts integer Unix milliseconds back; 0 is the zero time.
func tm(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// ErrNoWork is returned by the claim methods when nothing is due.
var ErrNoWork = errors.New("no work due")

// placeholders returns "?, ?, ?" for n arguments.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
