package store

import (
	"context"
	"fmt"
	"time"
)

// ChannelProgress is where one channel of one update stands.
type ChannelProgress struct {
	UpdateID  int64
	Channel   string
	JobState  string // queued | running | done | failed
	Total     int
	Queued    int // not yet handed to the provider (includes batches waiting to be retried)
	Inflight  int // handed to a worker, not yet confirmed
	Sent      int
	Failed    int
	NextAt    time.Time // when a waiting job may go on (backoff, rate limit)
	LastError string
	Attempts  int
	Recovered int // recipients in batches re-sent after their worker vanished: the only possible duplicates
}

// Progress returns per-channel progress of an update, in the update's
// channel order.
func (s *DB) Progress(ctx context.Context, updateID int64) ([]*ChannelProgress, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT channel, state, total, next_at, last_error, attempts FROM jobs
		WHERE update_id = ? ORDER BY id`, updateID)
	if err != nil {
		return nil, fmt.Errorf("read progress of update %d: %w", updateID, err)
	}
	var out []*ChannelProgress
	for rows.Next() {
		p := &ChannelProgress{UpdateID: updateID}
		var next int64
		if err := rows.Scan(&p.Channel, &p.JobState, &p.Total, &next, &p.LastError, &p.Attempts); err != nil {
			rows.Close()
			return nil, err
		}
		p.NextAt = tm(next)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, p := range out {
		if err := s.countChannel(ctx, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *DB) countChannel(ctx context.Context, p *ChannelProgress) error {
	var q string
	switch p.Channel {
	case "twitter", "facebook":
		q = `SELECT state, count(*) FROM posts WHERE update_id = ? AND channel = ? GROUP BY state`
	case "status":
		var public int64
		if err := s.db.QueryRowContext(ctx, `SELECT public_at FROM updates WHERE id = ?`, p.UpdateID).Scan(&public); err != nil {
			return fmt.Errorf("read status of update %d: %w", p.UpdateID, err)
		}
		if public > 0 {
			p.Sent = 1
		} else if p.JobState == "failed" {
			p.Failed = 1
		} else {
			p.Queued = 1
		}
		return nil
	default:
		return s.countBatches(ctx, p)
	}
	rows, err := s.db.QueryContext(ctx, q, p.UpdateID, p.Channel)
	if err != nil {
		return fmt.Errorf("count %s of update %d: %w", p.Channel, p.UpdateID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return err
		}
		switch state {
		case "queued":
			p.Queued += n
		case "sent", "retracted":
			p.Sent += n
		case "failed":
			p.Failed += n
		}
	}
	return rows.Err()
}

// countBatches counts a recipient channel from its batches, which partition
// the recipients handed out so far: cheap while a million-recipient fan-out
// is being watched. A batch waiting for its retry counts as queued.
func (s *DB) countBatches(ctx context.Context, p *ChannelProgress) error {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COALESCE(SUM(size), 0), COALESCE(SUM(CASE WHEN recovered > 0 THEN size END), 0)
		FROM batches WHERE update_id = ? AND channel = ? GROUP BY state`, p.UpdateID, p.Channel)
	if err != nil {
		return fmt.Errorf("count %s of update %d: %w", p.Channel, p.UpdateID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n, recovered int
		if err := rows.Scan(&state, &n, &recovered); err != nil {
			return err
		}
		p.Recovered += recovered
		switch state {
		case "sent":
			p.Sent += n
		case "failed":
			p.Failed += n
		case "inflight":
			p.Inflight += n
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	p.Queued = p.Total - p.Sent - p.Failed - p.Inflight
	return nil
}

// LedgerBatch is one provider request as the ledger records it.
type LedgerBatch struct {
	ID         int64
	State      string
	Size       int
	Attempts   int
	Recovered  int
	ProviderID string
	LastError  string
	SentAt     time.Time
}

// Batches lists the batches of an update's channel. With recoveredOnly,
// only those that were in flight when their worker vanished and were sent
// again: their recipients are the only ones who may have the mail twice.
func (s *DB) Batches(ctx context.Context, updateID int64, channel string, recoveredOnly bool) ([]LedgerBatch, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, state, size, attempts, recovered, provider_id, last_error, sent_at
		FROM batches WHERE update_id = ? AND channel = ? AND (? = 0 OR recovered > 0) ORDER BY id`,
		updateID, channel, recoveredOnly)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	defer rows.Close()
	var out []LedgerBatch
	for rows.Next() {
		var b LedgerBatch
		var sent int64
		if err := rows.Scan(&b.ID, &b.State, &b.Size, &b.Attempts, &b.Recovered, &b.ProviderID, &b.LastError, &sent); err != nil {
			return nil, err
		}
		b.SentAt = tm(sent)
		out = append(out, b)
	}
	return out, rows.Err()
}

// BatchRecipientEmails returns the addresses of a batch.
func (s *DB) BatchRecipientEmails(ctx context.Context, batchID int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.email FROM batches b JOIN deliveries d ON d.update_id = b.update_id
		AND d.channel = b.channel AND d.recipient_id BETWEEN b.first_recipient AND b.last_recipient
		JOIN recipients r ON r.id = d.recipient_id WHERE b.id = ? ORDER BY r.id`, batchID)
	if err != nil {
		return nil, fmt.Errorf("list batch %d: %w", batchID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Missing lists, by address, who has not received an update on an email
// channel yet (queued, in flight or failed), with the state and error.
// limit <= 0 means all.
func (s *DB) Missing(ctx context.Context, updateID int64, channel string, limit int, fn func(email, state, reason string) error) error {
	if limit <= 0 {
		limit = -1
	}
	// Queued rows behind the job's cursor belong to a batch in flight.
	rows, err := s.db.QueryContext(ctx, `SELECT r.email,
		CASE WHEN d.state = 'queued' AND d.recipient_id <= j.cursor THEN 'inflight' ELSE d.state END, d.error
		FROM deliveries d JOIN recipients r ON r.id = d.recipient_id
		JOIN jobs j ON j.update_id = d.update_id AND j.channel = d.channel
		WHERE d.update_id = ? AND d.channel = ? AND d.state <> 'sent' ORDER BY d.recipient_id LIMIT ?`, updateID, channel, limit)
	if err != nil {
		return fmt.Errorf("list missing recipients: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var email, state, reason string
		if err := rows.Scan(&email, &state, &reason); err != nil {
			return err
		}
		if err := fn(email, state, reason); err != nil {
			return err
		}
	}
	return rows.Err()
}
