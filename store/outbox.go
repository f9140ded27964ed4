package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/breachcast/breachcast"
)

// ErrPaused is returned by the claim methods while the kill switch is on.
var ErrPaused = errors.New("sending is paused")

// ErrLeaseLost is returned when a worker reports on work whose lease another
// worker has taken over (its lease ran out: it was too slow to renew it).
var ErrLeaseLost = errors.New("lease lost to another worker")

// Batch is a claimed provider request's worth of recipients.
type Batch struct {
	ID         int64
	JobID      int64
	UpdateID   int64
	Channel    string
	Attempts   int   // including this one
	Recovered  bool  // in flight when its previous worker vanished: these recipients may get it twice
	First      int64 // recipient ids in [First, Last]
	Last       int64
	Recipients []BatchRecipient
}

// BatchRecipient is one recipient of a batch with its ledger entry.
type BatchRecipient struct {
	breachcast.Recipient
	MessageID string
	ThreadRef string // Message-ID of the recipient's first notice of the incident, "" for the first
}

// ClaimBatch leases the next due batch of channel for owner: first a batch
// whose worker vanished mid-send or whose retry is due (sent again as the
// same batch), else up to size queued recipients of the oldest due job in a
// new batch. It returns ErrNoWork when nothing is due and ErrPaused while
// the kill switch is on. Jobs with nothing left are marked done on the way.
func (s *DB) ClaimBatch(ctx context.Context, channel, owner string, size int, lease time.Duration) (*Batch, error) {
	var b *Batch
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		if paused, err := pausedTx(ctx, tx); err != nil {
			return err
		} else if paused {
			return ErrPaused
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, update_id FROM jobs WHERE channel = ? AND state IN ('queued', 'running')
			AND next_at <= ? ORDER BY id`, channel, now)
		if err != nil {
			return fmt.Errorf("find due jobs: %w", err)
		}
		type job struct{ id, update int64 }
		var jobs []job
		for rows.Next() {
			var j job
			if err := rows.Scan(&j.id, &j.update); err != nil {
				rows.Close()
				return err
			}
			jobs = append(jobs, j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		until := now + lease.Milliseconds()
		for _, j := range jobs {
			// A batch to send again: its worker vanished, or its retry is due.
			var id, first, last int64
			var state string
			var attempts, recovered int
			err := tx.QueryRowContext(ctx, `SELECT id, state, attempts, recovered, first_recipient, last_recipient FROM batches
				WHERE job_id = ? AND ((state = 'inflight' AND lease_until < ?) OR (state = 'retry' AND next_at <= ?))
				ORDER BY id LIMIT 1`, j.id, now, now).Scan(&id, &state, &attempts, &recovered, &first, &last)
			switch {
			case err == nil:
				wasInflight := state == "inflight"
				if wasInflight {
					recovered++
				}
				if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'inflight', attempts = attempts + 1, recovered = ?,
					lease_owner = ?, lease_until = ? WHERE id = ?`, recovered, owner, until, id); err != nil {
					return fmt.Errorf("reclaim batch %d: %w", id, err)
				}
				b = &Batch{ID: id, JobID: j.id, UpdateID: j.update, Channel: channel, Attempts: attempts + 1,
					Recovered: recovered > 0, First: first, Last: last}
				if wasInflight {
					detail, _ := json.Marshal(map[string]any{"batch": id, "job": j.id, "attempt": attempts + 1})
					if err := audit(ctx, tx, now, owner, "batch.recovered", fmt.Sprintf("update %d %s", j.update, channel), detail); err != nil {
						return err
					}
				}
				return loadBatchRecipients(ctx, tx, b)
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("find batch to resend: %w", err)
			}

			// A new batch: the next recipients behind the job's cursor.
			var n int
			var cursor int64
			if err := tx.QueryRowContext(ctx, `SELECT cursor FROM jobs WHERE id = ?`, j.id).Scan(&cursor); err != nil {
				return fmt.Errorf("read job cursor: %w", err)
			}
			if err := tx.QueryRowContext(ctx, `SELECT count(*), COALESCE(min(recipient_id), 0), COALESCE(max(recipient_id), 0)
				FROM (SELECT recipient_id FROM deliveries WHERE update_id = ? AND channel = ? AND recipient_id > ?
				ORDER BY recipient_id LIMIT ?)`, j.update, channel, cursor, size).Scan(&n, &first, &last); err != nil {
				return fmt.Errorf("cut batch: %w", err)
			}
			if n == 0 {
				if err := finishJobIfDrained(ctx, tx, j.id, now); err != nil {
					return err
				}
				continue
			}
			r, err := tx.ExecContext(ctx, `INSERT INTO batches (job_id, update_id, channel, state, size, first_recipient,
				last_recipient, lease_owner, lease_until, created_at) VALUES (?, ?, ?, 'inflight', ?, ?, ?, ?, ?, ?)`,
				j.id, j.update, channel, n, first, last, owner, until, now)
			if err != nil {
				return fmt.Errorf("create batch: %w", err)
			}
			id, _ = r.LastInsertId()
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'running', cursor = ?, updated_at = ? WHERE id = ?`,
				last, now, j.id); err != nil {
				return fmt.Errorf("advance job cursor: %w", err)
			}
			b = &Batch{ID: id, JobID: j.id, UpdateID: j.update, Channel: channel, Attempts: 1, First: first, Last: last}
			return loadBatchRecipients(ctx, tx, b)
		}
		return nil // nothing due; drained jobs were marked done, so commit
	})
	if err != nil {
		if errors.Is(err, ErrPaused) {
			return nil, err
		}
		return nil, fmt.Errorf("claim %s batch: %w", channel, err)
	}
	if b == nil {
		return nil, ErrNoWork
	}
	return b, nil
}

func loadBatchRecipients(ctx context.Context, tx *sql.Tx, b *Batch) error {
	who := `recipients r`
	cols := `r.id, r.email, r.name, r.locale, r.attrs`
	if b.Channel == ChannelSubscribers {
		// A subscriber who unsubscribed since the publish is no longer there
		// and is not sent to.
		who, cols = `subscribers r`, `r.id, r.email, '', '', '{}'`
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+cols+`, d.message_id, d.thread_ref
		FROM deliveries d JOIN `+who+` ON r.id = d.recipient_id
		WHERE d.update_id = ? AND d.channel = ? AND d.recipient_id BETWEEN ? AND ? ORDER BY d.recipient_id`,
		b.UpdateID, b.Channel, b.First, b.Last)
	if err != nil {
		return fmt.Errorf("load batch %d: %w", b.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var br BatchRecipient
		var attrs string
		if err := rows.Scan(&br.ID, &br.Email, &br.Name, &br.Locale, &attrs, &br.MessageID, &br.ThreadRef); err != nil {
			return fmt.Errorf("load batch %d: %w", b.ID, err)
		}
		if err := decodeAttrs(attrs, &br.Recipient); err != nil {
			return err
		}
		b.Recipients = append(b.Recipients, br)
	}
	return rows.Err()
}

// finishJobIfDrained marks a batch job done when it has no queued
// recipients and no batch in flight or waiting to be retried.
func finishJobIfDrained(ctx context.Context, tx *sql.Tx, jobID, now int64) error {
	var open int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM batches WHERE job_id = ? AND state IN ('inflight', 'retry')`,
		jobID).Scan(&open); err != nil {
		return fmt.Errorf("check job %d: %w", jobID, err)
	}
	if open > 0 {
		return nil
	}
	var failed int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM batches WHERE job_id = ? AND state = 'failed'`,
		jobID).Scan(&failed); err != nil {
		return fmt.Errorf("check job %d: %w", jobID, err)
	}
	state := "done"
	if failed > 0 {
		state = "failed"
	}
	_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, done_at = ?, updated_at = ? WHERE id = ?`, state, now, now, jobID)
	return err
}

// MarkBatchSent records that the provider accepted a batch.
func (s *DB) MarkBatchSent(ctx context.Context, b *Batch, owner, providerID string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'sent', provider_id = ?, sent_at = ?, lease_owner = '',
			lease_until = 0, last_error = '' WHERE id = ? AND lease_owner = ? AND state = 'inflight'`, providerID, now, b.ID, owner)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'sent', batch_id = ?, sent_at = ?, error = ''
			WHERE update_id = ? AND channel = ? AND recipient_id BETWEEN ? AND ?`, b.ID, now, b.UpdateID, b.Channel, b.First, b.Last)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark batch %d sent: %w", b.ID, err)
	}
	return nil
}

// RetryBatch puts a batch back to be sent again, as the same batch, at
// next. When holdJob is set (the provider rate-limited the account) the
// whole job waits until then, so no other worker hammers the provider.
func (s *DB) RetryBatch(ctx context.Context, b *Batch, owner string, next time.Time, reason string, holdJob bool) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'retry', next_at = ?, last_error = ?, lease_owner = '',
			lease_until = 0 WHERE id = ? AND lease_owner = ? AND state = 'inflight'`, ms(next), reason, b.ID, owner)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		if holdJob {
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET next_at = max(next_at, ?), last_error = ?, updated_at = ? WHERE id = ?`,
				ms(next), reason, now, b.JobID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET last_error = ?, updated_at = ? WHERE id = ?`, reason, now, b.JobID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("retry batch %d: %w", b.ID, err)
	}
	return nil
}

// FailBatch records that a batch cannot be sent (a permanent provider error
// or too many attempts). Its recipients are marked failed with the reason.
func (s *DB) FailBatch(ctx context.Context, b *Batch, owner, reason string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'failed', last_error = ?, lease_owner = '', lease_until = 0
			WHERE id = ? AND lease_owner = ? AND state = 'inflight'`, reason, b.ID, owner)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'failed', batch_id = ?, error = ?
			WHERE update_id = ? AND channel = ? AND recipient_id BETWEEN ? AND ?`, b.ID, reason, b.UpdateID, b.Channel, b.First, b.Last); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET last_error = ?, updated_at = ? WHERE id = ?`, reason, now, b.JobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail batch %d: %w", b.ID, err)
	}
	return nil
}

// RenewLeases extends every lease owner holds, so that only the work of a
// worker that really stopped is taken over.
func (s *DB) RenewLeases(ctx context.Context, owner string, lease time.Duration) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		until := now + lease.Milliseconds()
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET lease_until = ? WHERE lease_owner = ? AND state = 'inflight'`,
			until, owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND state IN ('queued', 'running')`,
			until, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("renew leases: %w", err)
	}
	return nil
}

// Job is a claimed per-update job of a social or status channel.
type Job struct {
	ID         int64
	UpdateID   int64
	IncidentID int64
	Incident   string
	Seq        int // update number within the incident
	Channel    string
	Attempts   int
	Posts      []*Post
	// Parent is the provider id of the incident's last post on this channel
	// before this update (a thread continues from it); Root the first.
	Parent string
	Root   string
}

// Post is one planned or made social post.
type Post struct {
	ID         int64
	UpdateID   int64
	Channel    string
	Seq        int
	Text       string
	State      string // queued | sent | failed | retracted
	ExternalID string
	URL        string
	ParentID   string
	Error      string
	PostedAt   time.Time
}

// ClaimJob leases the next due job of channel for owner. A job waits while
// an earlier update of the same incident still has an open job on the same
// channel, so threads are continued in order. It returns ErrNoWork when
// nothing is due and ErrPaused while the kill switch is on.
func (s *DB) ClaimJob(ctx context.Context, channel, owner string, lease time.Duration) (*Job, error) {
	var j *Job
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		if paused, err := pausedTx(ctx, tx); err != nil {
			return err
		} else if paused {
			return ErrPaused
		}
		j = &Job{Channel: channel}
		err := tx.QueryRowContext(ctx, `SELECT j.id, j.update_id, u.incident_id, i.slug, u.seq, j.attempts
			FROM jobs j JOIN updates u ON u.id = j.update_id JOIN incidents i ON i.id = u.incident_id
			WHERE j.channel = ? AND j.state IN ('queued', 'running') AND j.next_at <= ?
			  AND (j.lease_owner = '' OR j.lease_until < ?)
			  AND NOT EXISTS (SELECT 1 FROM jobs j2 JOIN updates u2 ON u2.id = j2.update_id
			      WHERE u2.incident_id = u.incident_id AND u2.seq < u.seq AND j2.channel = j.channel
			        AND j2.state IN ('queued', 'running'))
			ORDER BY j.id LIMIT 1`, channel, now, now).Scan(&j.ID, &j.UpdateID, &j.IncidentID, &j.Incident, &j.Seq, &j.Attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoWork
		} else if err != nil {
			return fmt.Errorf("find due job: %w", err)
		}
		j.Attempts++
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'running', attempts = ?, lease_owner = ?, lease_until = ?,
			updated_at = ? WHERE id = ?`, j.Attempts, owner, now+lease.Milliseconds(), now, j.ID); err != nil {
			return fmt.Errorf("lease job %d: %w", j.ID, err)
		}
		if j.Posts, err = postsTx(ctx, tx, j.UpdateID, channel); err != nil {
			return err
		}
		// The incident's thread so far on this channel.
		err = tx.QueryRowContext(ctx, `SELECT
			COALESCE((SELECT p.external_id FROM posts p JOIN updates u ON u.id = p.update_id
				WHERE u.incident_id = ? AND u.seq < ? AND p.channel = ? AND p.state IN ('sent', 'retracted') AND p.external_id <> ''
				ORDER BY u.seq DESC, p.seq DESC LIMIT 1), ''),
			COALESCE((SELECT p.external_id FROM posts p JOIN updates u ON u.id = p.update_id
				WHERE u.incident_id = ? AND u.seq < ? AND p.channel = ? AND p.state IN ('sent', 'retracted') AND p.external_id <> ''
				ORDER BY u.seq, p.seq LIMIT 1), '')`,
			j.IncidentID, j.Seq, channel, j.IncidentID, j.Seq, channel).Scan(&j.Parent, &j.Root)
		if err != nil {
			return fmt.Errorf("find thread of incident %s: %w", j.Incident, err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNoWork) || errors.Is(err, ErrPaused) {
			return nil, err
		}
		return nil, fmt.Errorf("claim %s job: %w", channel, err)
	}
	return j, nil
}

func postsTx(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, updateID int64, channel string) ([]*Post, error) {
	query := `SELECT id, update_id, channel, seq, text, state, external_id, url, parent_id, error, posted_at
		FROM posts WHERE update_id = ?`
	args := []any{updateID}
	if channel != "" {
		query += ` AND channel = ?`
		args = append(args, channel)
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY channel, seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("load posts of update %d: %w", updateID, err)
	}
	defer rows.Close()
	var out []*Post
	for rows.Next() {
		var p Post
		var posted int64
		if err := rows.Scan(&p.ID, &p.UpdateID, &p.Channel, &p.Seq, &p.Text, &p.State, &p.ExternalID, &p.URL, &p.ParentID,
			&p.Error, &posted); err != nil {
			return nil, err
		}
		p.PostedAt = tm(posted)
		out = append(out, &p)
	}
	return out, rows.Err()
}

// Posts returns the social posts of an update on every channel (channel
// "") or one.
func (s *DB) Posts(ctx context.Context, updateID int64, channel string) ([]*Post, error) {
	return postsTx(ctx, s.db, updateID, channel)
}

// RecordPost stores the provider id of a post the moment it is made, so that
// a resumed thread never makes it again.
func (s *DB) RecordPost(ctx context.Context, postID int64, externalID, url, parentID string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.ExecContext(ctx, `UPDATE posts SET state = 'sent', external_id = ?, url = ?, parent_id = ?, posted_at = ?,
			error = '' WHERE id = ? AND state = 'queued'`, externalID, url, parentID, now, postID)
		return err
	})
	if err != nil {
		return fmt.Errorf("record post %d: %w", postID, err)
	}
	return nil
}

// FailPost records why a post could not be made.
func (s *DB) FailPost(ctx context.Context, postID int64, reason string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.ExecContext(ctx, `UPDATE posts SET state = 'failed', error = ? WHERE id = ? AND state = 'queued'`, reason, postID)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail post %d: %w", postID, err)
	}
	return nil
}

// RetryJob releases a job to be tried again at next.
func (s *DB) RetryJob(ctx context.Context, j *Job, owner string, next time.Time, reason string) error {
	return s.releaseJob(ctx, j, owner, "running", next, reason)
}

// FinishJob marks a job done, or failed with the reason when reason is not
// empty.
func (s *DB) FinishJob(ctx context.Context, j *Job, owner, reason string) error {
	state := "done"
	if reason != "" {
		state = "failed"
	}
	return s.releaseJob(ctx, j, owner, state, time.Time{}, reason)
}

func (s *DB) releaseJob(ctx context.Context, j *Job, owner, state string, next time.Time, reason string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		return setJobTx(ctx, tx, j, owner, state, ms(next), reason, now)
	})
	if err != nil {
		return fmt.Errorf("release job %d: %w", j.ID, err)
	}
	return nil
}

// setJobTx moves a job owner holds to state and gives up the lease; a done
// or failed job gets its done_at.
func setJobTx(ctx context.Context, tx *sql.Tx, j *Job, owner, state string, next int64, reason string, now int64) error {
	done := int64(0)
	if state == "done" || state == "failed" {
		done = now
	}
	r, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, next_at = ?, last_error = ?, lease_owner = '', lease_until = 0,
		done_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ?`, state, next, reason, done, now, j.ID, owner)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// MarkPublic puts an update on the status page and finishes its status job.
func (s *DB) MarkPublic(ctx context.Context, j *Job, owner string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		if _, err := tx.ExecContext(ctx, `UPDATE updates SET public_at = ? WHERE id = ? AND public_at = 0`, now, j.UpdateID); err != nil {
			return err
		}
		return setJobTx(ctx, tx, j, owner, "done", 0, "", now)
	})
	if err != nil {
		return fmt.Errorf("publish update %d on the status page: %w", j.UpdateID, err)
	}
	return nil
}

// UnfinishedJobs counts jobs not yet done or failed, optionally of one
// update (updateID 0 for all).
func (s *DB) UnfinishedJobs(ctx context.Context, updateID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE state IN ('queued', 'running') AND (? = 0 OR update_id = ?)`,
		updateID, updateID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unfinished jobs: %w", err)
	}
	return n, nil
}

// MarkPostRetracted records that a post was taken down at the provider.
func (s *DB) MarkPostRetracted(ctx context.Context, postID int64, actor string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		var channel, external string
		var updateID int64
		if err := tx.QueryRowContext(ctx, `SELECT channel, external_id, update_id FROM posts WHERE id = ?`, postID).
			Scan(&channel, &external, &updateID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE posts SET state = 'retracted', retracted_at = ? WHERE id = ?`, now, postID); err != nil {
			return err
		}
		detail, _ := json.Marshal(map[string]any{"post": postID, "external_id": external, "update_id": updateID})
		return audit(ctx, tx, now, actor, "retract", channel+" "+external, detail)
	})
	if err != nil {
		return fmt.Errorf("mark post %d retracted: %w", postID, err)
	}
	return nil
}

// ReleaseBatch hands back a claimed batch that was not sent (the kill switch
// went on, or the worker is stopping). It goes out again as the same batch;
// the claim does not count as an attempt and the last error is kept.
func (s *DB) ReleaseBatch(ctx context.Context, b *Batch, owner string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'retry', next_at = ?, attempts = attempts - 1, lease_owner = '',
			lease_until = 0 WHERE id = ? AND lease_owner = ? AND state = 'inflight'`, now, b.ID, owner)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release batch %d: %w", b.ID, err)
	}
	return nil
}

// ReleaseJob hands back a claimed job whose next post was not attempted;
// the claim does not count as an attempt and the last error is kept.
func (s *DB) ReleaseJob(ctx context.Context, j *Job, owner string) error {
	err := s.tx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.ExecContext(ctx, `UPDATE jobs SET attempts = attempts - 1, next_at = ?, lease_owner = '', lease_until = 0,
			updated_at = ? WHERE id = ? AND lease_owner = ?`, now, now, j.ID, owner)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release job %d: %w", j.ID, err)
	}
	return nil
}
