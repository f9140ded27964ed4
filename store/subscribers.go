package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/breachcast/breachcast"
)

const subscriberColumns = `id, email, incident, created_at, confirmed_at`

func scanSubscriber(sc interface{ Scan(...any) error }) (*breachcast.Subscriber, error) {
	var s breachcast.Subscriber
	var created, confirmed int64
	if err := sc.Scan(&s.ID, &s.Email, &s.Incident, &created, &confirmed); err != nil {
		return nil, err
	}
	s.CreatedAt, s.ConfirmedAt = tm(created), tm(confirmed)
	return &s, nil
}

// AddSubscriber records an unconfirmed subscription, or returns the existing
// one for the same address and incident unchanged.
func (s *DB) AddSubscriber(ctx context.Context, email, incident string, now time.Time) (*breachcast.Subscriber, error) {
	var sub *breachcast.Subscriber
	err := s.tx(ctx, func(tx *sql.Tx, _ int64) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO subscribers (email, incident, created_at) VALUES (?, ?, ?)
			ON CONFLICT (email, incident) DO NOTHING`, email, incident, ms(now)); err != nil {
			return err
		}
		var err error
		sub, err = scanSubscriber(tx.QueryRowContext(ctx, `SELECT `+subscriberColumns+` FROM subscribers
			WHERE email = ? AND incident = ?`, email, incident))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("add subscriber: %w", err)
	}
	return sub, nil
}

// Subscriber returns one subscriber.
func (s *DB) Subscriber(ctx context.Context, id int64) (*breachcast.Subscriber, error) {
	sub, err := scanSubscriber(s.db.QueryRowContext(ctx, `SELECT `+subscriberColumns+` FROM subscribers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no subscriber %d", id)
	} else if err != nil {
		return nil, fmt.Errorf("get subscriber %d: %w", id, err)
	}
	return sub, nil
}

// ConfirmSubscriber marks a subscription confirmed; confirming twice keeps
// the first time.
func (s *DB) ConfirmSubscriber(ctx context.Context, id int64, now time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx, _ int64) error {
		r, err := tx.ExecContext(ctx, `UPDATE subscribers SET confirmed_at = CASE WHEN confirmed_at = 0 THEN ? ELSE confirmed_at END
			WHERE id = ?`, ms(now), id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return breachcast.Errorf(breachcast.ENOTFOUND, "no subscriber %d", id)
		}
		return nil
	})
	if err != nil && breachcast.ErrorCodeOf(err) != breachcast.ENOTFOUND {
		return fmt.Errorf("confirm subscriber %d: %w", id, err)
	}
	return err
}

// Unsubscribe deletes a subscriber; an unknown id is not an error.
func (s *DB) Unsubscribe(ctx context.Context, id int64) error {
	err := s.tx(ctx, func(tx *sql.Tx, _ int64) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM subscribers WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("unsubscribe %d: %w", id, err)
	}
	return nil
}

// ConfirmedSubscribers lists confirmed subscribers of an incident and of
// every incident.
func (s *DB) ConfirmedSubscribers(ctx context.Context, incident string) ([]*breachcast.Subscriber, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+subscriberColumns+` FROM subscribers
		WHERE confirmed_at > 0 AND (incident = '' OR incident = ?) ORDER BY id`, incident)
	if err != nil {
		return nil, fmt.Errorf("list subscribers: %w", err)
	}
	defer rows.Close()
	var out []*breachcast.Subscriber
	for rows.Next() {
		sub, err := scanSubscriber(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}
