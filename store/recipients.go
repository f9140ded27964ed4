package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/breachcast/breachcast"
)

// ImportResult counts what an import changed.
type ImportResult struct {
	Inserted int // new recipients
	Updated  int // existing recipients (same address) whose name, locale or attributes were replaced
	Segment  string
}

// importChunk is how many rows go into one multi-row INSERT: 7 parameters a
// row keeps a statement well under SQLite's parameter limit.
const importChunk = 400

// ImportRecipients upserts recipients, matched by lower-cased address, and
// adds them to segment when it is not empty (creating the segment). It reads
// them from next until next returns nil, all in one transaction: an error
// part-way imports nothing. Validation is the caller's job; rows reaching the
// store are assumed valid.
func (s *DB) ImportRecipients(ctx context.Context, segment, actor string, next func() (*breachcast.Recipient, error)) (*ImportResult, error) {
	res := &ImportResult{Segment: segment}
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		var segmentID int64
		if segment != "" {
			err := tx.QueryRowContext(ctx, `INSERT INTO segments (name, created_at) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`, segment, now).Scan(&segmentID)
			if err != nil {
				return fmt.Errorf("create segment %s: %w", segment, err)
			}
		}
		var before int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM recipients`).Scan(&before); err != nil {
			return fmt.Errorf("count recipients: %w", err)
		}
		var total int
		chunk := make([]*breachcast.Recipient, 0, importChunk)
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			if err := upsertRecipients(ctx, tx, now, segmentID, chunk); err != nil {
				return err
			}
			total += len(chunk)
			chunk = chunk[:0]
			return nil
		}
		for {
			r, err := next()
			if err != nil {
				return err
			}
			if r == nil {
				break
			}
			chunk = append(chunk, r)
			if len(chunk) == importChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		var after int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM recipients`).Scan(&after); err != nil {
			return fmt.Errorf("count recipients: %w", err)
		}
		res.Inserted = after - before
		res.Updated = total - res.Inserted
		detail, _ := json.Marshal(map[string]any{"inserted": res.Inserted, "updated": res.Updated, "segment": segment})
		return audit(ctx, tx, now, actor, "recipients.import", segment, detail)
	})
	if err != nil {
		return nil, fmt.Errorf("import recipients: %w", err)
	}
	return res, nil
}

func upsertRecipients(ctx context.Context, tx *sql.Tx, now, segmentID int64, rs []*breachcast.Recipient) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO recipients (email, email_key, name, locale, attrs, created_at, updated_at) VALUES `)
	args := make([]any, 0, len(rs)*7)
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		attrs := "{}"
		if len(r.Attrs) > 0 {
			j, err := json.Marshal(r.Attrs)
			if err != nil {
				return fmt.Errorf("encode attributes of %s: %w", r.Email, err)
			}
			attrs = string(j)
		}
		args = append(args, r.Email, strings.ToLower(r.Email), r.Name, r.Locale, attrs, now, now)
	}
	b.WriteString(` ON CONFLICT (email_key) DO UPDATE SET email = excluded.email, name = excluded.name,
		locale = excluded.locale, attrs = excluded.attrs, updated_at = excluded.updated_at RETURNING id`)
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return fmt.Errorf("upsert recipients: %w", err)
	}
	ids := make([]any, 0, len(rs))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("upsert recipients: %w", err)
	}
	if segmentID == 0 {
		return nil
	}
	b.Reset()
	b.WriteString(`INSERT INTO segment_members (segment_id, recipient_id) VALUES `)
	margs := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
		margs = append(margs, segmentID, id)
	}
	b.WriteString(` ON CONFLICT DO NOTHING`)
	if _, err := tx.ExecContext(ctx, b.String(), margs...); err != nil {
		return fmt.Errorf("add to segment: %w", err)
	}
	return nil
}

// RecipientCount returns how many recipients an audience reaches
// (breachcast.AudienceAll or a segment name).
func (s *DB) RecipientCount(ctx context.Context, audience string) (int, error) {
	var n int
	var err error
	if audience == "" || audience == breachcast.AudienceAll {
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM recipients`).Scan(&n)
	} else {
		var id int64
		err = s.db.QueryRowContext(ctx, `SELECT id FROM segments WHERE name = ?`, audience).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, breachcast.Errorf(breachcast.ENOTFOUND, "no segment named %q", audience)
		}
		if err == nil {
			err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM segment_members WHERE segment_id = ?`, id).Scan(&n)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("count recipients of %s: %w", audience, err)
	}
	return n, nil
}

// Segments lists segment names with their member counts.
func (s *DB) Segments(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.name, count(m.recipient_id) FROM segments s
		LEFT JOIN segment_members m ON m.segment_id = s.id GROUP BY s.id ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		out[name] = n
	}
	return out, rows.Err()
}

// RecipientByEmail finds a recipient by address (case-insensitive).
func (s *DB) RecipientByEmail(ctx context.Context, email string) (*breachcast.Recipient, error) {
	var r breachcast.Recipient
	var attrs string
	err := s.db.QueryRowContext(ctx, `SELECT id, email, name, locale, attrs FROM recipients WHERE email_key = ?`,
		strings.ToLower(email)).Scan(&r.ID, &r.Email, &r.Name, &r.Locale, &attrs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no recipient %s", email)
	} else if err != nil {
		return nil, fmt.Errorf("find recipient: %w", err)
	}
	if err := decodeAttrs(attrs, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func decodeAttrs(attrs string, r *breachcast.Recipient) error {
	if attrs == "" || attrs == "{}" {
		return nil
	}
	if err := json.Unmarshal([]byte(attrs), &r.Attrs); err != nil {
		return fmt.Errorf("decode attributes of recipient %d: %w", r.ID, err)
	}
	return nil
}
