package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// PauseState is the kill switch as stored.
type PauseState struct {
	Paused bool
	Since  time.Time
	By     string
	Reason string
}

type pauseValue struct {
	Paused bool   `json:"paused"`
	By     string `json:"by"`
	Reason string `json:"reason"`
}

func pausedTx(ctx context.Context, tx *sql.Tx) (bool, error) {
	var v string
	err := tx.QueryRowContext(ctx, `SELECT value FROM control WHERE key = 'paused'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read kill switch: %w", err)
	}
	var p pauseValue
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		// An unreadable switch is treated as on: never send by accident.
		return true, nil
	}
	return p.Paused, nil
}

// Pause reads the kill switch. It is one indexed read, cheap enough to poll
// several times a second from every process.
func (s *DB) Pause(ctx context.Context) (*PauseState, error) {
	var v string
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT value, updated_at FROM control WHERE key = 'paused'`).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return &PauseState{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read kill switch: %w", err)
	}
	var p pauseValue
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return &PauseState{Paused: true, Since: tm(at), Reason: "unreadable kill switch value"}, nil
	}
	return &PauseState{Paused: p.Paused, Since: tm(at), By: p.By, Reason: p.Reason}, nil
}

// SetPause turns the kill switch on or off and records who did it and why in
// the audit log. It reports whether the state changed.
func (s *DB) SetPause(ctx context.Context, paused bool, actor, reason string) (bool, error) {
	changed := false
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		was, err := pausedTx(ctx, tx)
		if err != nil {
			return err
		}
		if was == paused {
			return nil
		}
		changed = true
		v, _ := json.Marshal(pauseValue{Paused: paused, By: actor, Reason: reason})
		if _, err := tx.ExecContext(ctx, `INSERT INTO control (key, value, updated_at) VALUES ('paused', ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, string(v), now); err != nil {
			return err
		}
		action := "resume"
		if paused {
			action = "pause"
		}
		detail, _ := json.Marshal(map[string]string{"reason": reason})
		return audit(ctx, tx, now, actor, action, "", detail)
	})
	if err != nil {
		return false, fmt.Errorf("set kill switch: %w", err)
	}
	return changed, nil
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID      int64
	At      time.Time
	Actor   string
	Action  string
	Subject string
	Detail  json.RawMessage
}

// Audit returns the newest limit entries of the audit log, newest first.
func (s *DB) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Subject, &detail); err != nil {
			return nil, err
		}
		e.At, e.Detail = tm(at), json.RawMessage(detail)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Cursor returns a stored poller cursor, "" when there is none.
func (s *DB) Cursor(ctx context.Context, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM cursors WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("read cursor %s: %w", name, err)
	}
	return v, nil
}

// SetCursor stores a poller cursor.
func (s *DB) SetCursor(ctx context.Context, name, value string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, value, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("store cursor %s: %w", name, err)
	}
	return nil
}

// SigningKey returns the random key named name (32 bytes), creating it on
// first use. It signs low-value tokens (subscription links) when no key is
// configured, so that every process sharing the store agrees on it. Provider
// credentials are never kept in the database.
func (s *DB) SigningKey(ctx context.Context, name string) ([]byte, error) {
	var key []byte
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM control WHERE key = ?`, "key:"+name).Scan(&v)
		if err == nil {
			key, err = hex.DecodeString(v)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO control (key, value, updated_at) VALUES (?, ?, ?)`,
			"key:"+name, hex.EncodeToString(key), now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", name, err)
	}
	return key, nil
}
