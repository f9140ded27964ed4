package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/breachcast/breachcast"
)

// Publication is everything one publish writes, in one transaction.
type Publication struct {
	Notice     *breachcast.Notice
	SourceHash string // sha256 of the notice file; publishing the same file twice in a row is refused
	Actor      string // who published (operator name or OS user)

	// Seq is the update number the renderings were made for. If another
	// update of the incident landed in the meantime the publish is refused
	// (the renderings would be wrong) and the caller renders again.
	Seq int

	// Email is the email rendering (JSON, opaque to the store), stored so
	// that workers, and a restart, send exactly what was previewed.
	Email []byte
	// SubscriberEmail is the rendering for opt-in status subscribers (with
	// an unsubscribe footer). When set and the notice goes to the status
	// page, every confirmed subscriber of the incident gets it, except those
	// who already get the breach notice itself.
	SubscriberEmail []byte
	// Posts holds the rendered social posts per channel (an X thread, a
	// Facebook post).
	Posts map[string][]string

	// MessageIDDomain is the right-hand side of the Message-IDs given to
	// each recipient's email.
	MessageIDDomain string
}

// PublishResult says what a publish queued.
type PublishResult struct {
	Update      *breachcast.Update
	Recipients  int            // email deliveries queued
	Subscribers int            // subscriber deliveries queued
	Jobs        map[string]int // channel -> job id
}

// Publish records a new update of the notice's incident (creating the
// incident on its first update) together with its rendered content, one job
// per channel, the email delivery ledger for the whole audience and the
// planned social posts — all in one transaction, so a crash leaves either
// everything or nothing.
func (s *DB) Publish(ctx context.Context, p *Publication) (*PublishResult, error) {
	n := p.Notice
	if n == nil || n.Incident == "" {
		return nil, breachcast.Errorf(breachcast.EINVALID, "publish: no notice")
	}
	if n.HasChannel(breachcast.ChannelEmail) && len(p.Email) == 0 {
		return nil, breachcast.Errorf(breachcast.EINVALID, "publish: email channel without an email rendering")
	}
	token, err := randomToken(16)
	if err != nil {
		return nil, err
	}
	nonce, err := randomToken(5)
	if err != nil {
		return nil, err
	}
	res := &PublishResult{Jobs: map[string]int{}}
	err = s.tx(ctx, func(tx *sql.Tx, now int64) error {
		// The incident, created on its first update.
		var incidentID int64
		var lastSeq int
		var lastHash string
		err := tx.QueryRowContext(ctx, `SELECT i.id, COALESCE(MAX(u.seq), 0),
			COALESCE((SELECT source_hash FROM updates WHERE incident_id = i.id ORDER BY seq DESC LIMIT 1), '')
			FROM incidents i LEFT JOIN updates u ON u.incident_id = i.id WHERE i.slug = ? GROUP BY i.id`,
			n.Incident).Scan(&incidentID, &lastSeq, &lastHash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			r, err := tx.ExecContext(ctx, `INSERT INTO incidents (slug, title, status, severity, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?)`, n.Incident, n.Title, n.Status, n.Severity, now, now)
			if err != nil {
				return fmt.Errorf("create incident: %w", err)
			}
			incidentID, _ = r.LastInsertId()
		case err != nil:
			return fmt.Errorf("find incident: %w", err)
		}
		seq := lastSeq + 1
		if p.Seq != 0 && p.Seq != seq {
			return breachcast.Errorf(breachcast.ECONFLICT,
				"incident %s: update %d was published while this one was prepared; preview and publish again", n.Incident, lastSeq)
		}
		if p.SourceHash != "" && p.SourceHash == lastHash {
			return breachcast.Errorf(breachcast.ECONFLICT,
				"incident %s: this file is identical to update %d, already published; edit it to publish a new update", n.Incident, lastSeq)
		}

		// Who gets the email.
		var segmentID int64
		if n.HasChannel(breachcast.ChannelEmail) && n.Audience != breachcast.AudienceAll {
			err := tx.QueryRowContext(ctx, `SELECT id FROM segments WHERE name = ?`, n.Audience).Scan(&segmentID)
			if errors.Is(err, sql.ErrNoRows) {
				return breachcast.Errorf(breachcast.EINVALID, "%s: audience: no segment named %q (import recipients with --segment %s first)",
					n.Source, n.Audience, n.Audience)
			} else if err != nil {
				return fmt.Errorf("find segment: %w", err)
			}
		}

		resolvedAt := int64(0)
		if n.Status == breachcast.Resolved {
			resolvedAt = now
		}
		if _, err := tx.ExecContext(ctx, `UPDATE incidents SET title = ?, status = ?, severity = ?, updated_at = ?,
			resolved_at = ? WHERE id = ?`, n.Title, n.Status, n.Severity, now, resolvedAt, incidentID); err != nil {
			return fmt.Errorf("update incident: %w", err)
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO updates (incident_id, seq, title, status, severity, audience, channels,
			summary, body, source, source_hash, reply_token, published_at, published_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			incidentID, seq, n.Title, n.Status, n.Severity, n.Audience, strings.Join(n.Channels, ","), n.Summary, n.Body,
			n.Source, p.SourceHash, token, now, p.Actor)
		if err != nil {
			return fmt.Errorf("insert update: %w", err)
		}
		updateID, _ := r.LastInsertId()

		for _, ch := range n.Channels {
			total := 1
			switch ch {
			case breachcast.ChannelEmail:
				if _, err := tx.ExecContext(ctx, `INSERT INTO renderings (update_id, channel, content) VALUES (?, ?, ?)`,
					updateID, ch, string(p.Email)); err != nil {
					return fmt.Errorf("store email rendering: %w", err)
				}
				count, err := insertEmailDeliveries(ctx, tx, breachcast.ChannelEmail, incidentID, updateID, segmentID, nonce, p.MessageIDDomain, n.Incident, false)
				if err != nil {
					return err
				}
				if count == 0 {
					who := "no recipients have been imported"
					if segmentID != 0 {
						who = fmt.Sprintf("segment %q has no recipients", n.Audience)
					}
					return breachcast.Errorf(breachcast.EINVALID,
						"%s: email: %s; import them with `breachcast recipients import`, or remove email from channels", n.Source, who)
				}
				total = count
				res.Recipients = count
			case breachcast.ChannelTwitter, breachcast.ChannelFacebook:
				posts := p.Posts[ch]
				if len(posts) == 0 {
					return breachcast.Errorf(breachcast.EINVALID, "publish: %s channel without rendered posts", ch)
				}
				for i, text := range posts {
					if _, err := tx.ExecContext(ctx, `INSERT INTO posts (update_id, channel, seq, text, state)
						VALUES (?, ?, ?, ?, 'queued')`, updateID, ch, i+1, text); err != nil {
						return fmt.Errorf("plan %s post: %w", ch, err)
					}
				}
				total = len(posts)
			}
			r, err := tx.ExecContext(ctx, `INSERT INTO jobs (update_id, channel, state, total, next_at, created_at, updated_at)
				VALUES (?, ?, 'queued', ?, ?, ?, ?)`, updateID, ch, total, now, now, now)
			if err != nil {
				return fmt.Errorf("queue %s job: %w", ch, err)
			}
			id, _ := r.LastInsertId()
			res.Jobs[ch] = int(id)
		}
		if n.HasChannel(breachcast.ChannelStatus) && len(p.SubscriberEmail) > 0 {
			count, err := insertEmailDeliveries(ctx, tx, ChannelSubscribers, incidentID, updateID, segmentID, nonce, p.MessageIDDomain,
				n.Incident, n.HasChannel(breachcast.ChannelEmail))
			if err != nil {
				return err
			}
			if count > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO renderings (update_id, channel, content) VALUES (?, ?, ?)`,
					updateID, ChannelSubscribers, string(p.SubscriberEmail)); err != nil {
					return fmt.Errorf("store subscriber rendering: %w", err)
				}
				r, err := tx.ExecContext(ctx, `INSERT INTO jobs (update_id, channel, state, total, next_at, created_at, updated_at)
					VALUES (?, ?, 'queued', ?, ?, ?, ?)`, updateID, ChannelSubscribers, count, now, now, now)
				if err != nil {
					return fmt.Errorf("queue subscriber job: %w", err)
				}
				id, _ := r.LastInsertId()
				res.Jobs[ChannelSubscribers] = int(id)
				res.Subscribers = count
			}
		}
		detail, _ := json.Marshal(map[string]any{
			"update_id": updateID, "channels": n.Channels, "recipients": res.Recipients, "subscribers": res.Subscribers,
			"source": n.Source, "sha256": p.SourceHash, "status": n.Status,
		})
		if err := audit(ctx, tx, now, p.Actor, "publish", fmt.Sprintf("%s#%d", n.Incident, seq), detail); err != nil {
			return err
		}
		res.Update = &breachcast.Update{
			ID: updateID, IncidentID: incidentID, Incident: n.Incident, Seq: seq, Title: n.Title, Status: n.Status,
			Severity: n.Severity, Audience: n.Audience, Channels: n.Channels, Summary: n.Summary, Body: n.Body,
			ReplyToken: token, Source: n.Source, PublishedAt: tm(now), PublishedBy: p.Actor,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", n.Incident, err)
	}
	return res, nil
}

// ChannelSubscribers is the ledger channel of the opt-in status subscription
// stream: email, kept apart from the mandatory breach notice.
const ChannelSubscribers = "subscribers"

// insertEmailDeliveries writes the email ledger of an update in one
// statement: every recipient of the audience (channel email) or every
// confirmed subscriber of the incident (channel subscribers), each with its
// own Message-ID and a reference to the Message-ID of its first mail about
// the incident on that channel, so later updates thread in mail clients.
// Subscribers who get the breach notice itself (excludeAffected) are left out.
func insertEmailDeliveries(ctx context.Context, tx *sql.Tx, channel string, incidentID, updateID, segmentID int64,
	nonce, domain, slug string, excludeAffected bool) (int, error) {
	if domain == "" {
		domain = "breachcast.invalid"
	}
	var prior []any
	rows, err := tx.QueryContext(ctx, `SELECT u.id FROM updates u JOIN jobs j ON j.update_id = u.id AND j.channel = ?
		WHERE u.incident_id = ? AND u.id <> ? ORDER BY u.seq`, channel, incidentID, updateID)
	if err != nil {
		return 0, fmt.Errorf("find earlier notices: %w", err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		prior = append(prior, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}

	kind := "r"
	if channel == ChannelSubscribers {
		kind = "s"
	}
	threadRef := `''`
	args := []any{updateID, channel, fmt.Sprintf("<bc.%d.%s.%s", updateID, nonce, kind), "@" + domain + ">"}
	if len(prior) > 0 {
		// The first earlier mail this recipient was sent, found by primary
		// key per earlier update: cheap even for a million recipients.
		threadRef = `COALESCE((SELECT d.message_id FROM deliveries d WHERE d.channel = ? AND d.recipient_id = r.id
			AND d.update_id IN (` + placeholders(len(prior)) + `) ORDER BY d.update_id LIMIT 1), '')`
		args = append(args, channel)
		args = append(args, prior...)
	}
	var from string
	switch {
	case channel == ChannelSubscribers:
		from = `subscribers r WHERE r.confirmed_at > 0 AND (r.incident = '' OR r.incident = ?)`
		args = append(args, slug)
		if excludeAffected && segmentID == 0 {
			from += ` AND NOT EXISTS (SELECT 1 FROM recipients a WHERE a.email_key = r.email)`
		} else if excludeAffected {
			from += ` AND NOT EXISTS (SELECT 1 FROM recipients a JOIN segment_members m ON m.recipient_id = a.id
				AND m.segment_id = ? WHERE a.email_key = r.email)`
			args = append(args, segmentID)
		}
	case segmentID != 0:
		from = `segment_members m JOIN recipients r ON r.id = m.recipient_id AND m.segment_id = ?`
		args = append(args, segmentID)
	default:
		from = `recipients r`
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO deliveries (update_id, channel, recipient_id, state, message_id, thread_ref)
		SELECT ?, ?, r.id, 'queued', ? || r.id || ?, `+threadRef+` FROM `+from, args...)
	if err != nil {
		return 0, fmt.Errorf("queue %s deliveries: %w", channel, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func audit(ctx context.Context, tx *sql.Tx, now int64, actor, action, subject string, detail []byte) error {
	if len(detail) == 0 {
		detail = []byte("{}")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`,
		now, actor, action, subject, string(detail)); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

var token32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomToken returns n random bytes as lower-case base32, safe in an email
// local part and a URL.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return strings.ToLower(token32.EncodeToString(b)), nil
}

const updateColumns = `u.id, u.incident_id, i.slug, u.seq, u.title, u.status, u.severity, u.audience, u.channels,
	u.summary, u.body, u.reply_token, u.source, u.published_at, u.published_by`

func scanUpdate(sc interface{ Scan(...any) error }) (*breachcast.Update, error) {
	var u breachcast.Update
	var channels string
	var published int64
	if err := sc.Scan(&u.ID, &u.IncidentID, &u.Incident, &u.Seq, &u.Title, &u.Status, &u.Severity, &u.Audience, &channels,
		&u.Summary, &u.Body, &u.ReplyToken, &u.Source, &published, &u.PublishedBy); err != nil {
		return nil, err
	}
	if channels != "" {
		u.Channels = strings.Split(channels, ",")
	}
	u.PublishedAt = tm(published)
	return &u, nil
}

const incidentColumns = `i.id, i.slug, i.title, i.status, i.severity, i.created_at, i.updated_at, i.resolved_at`

func scanIncident(sc interface{ Scan(...any) error }) (*breachcast.Incident, error) {
	var i breachcast.Incident
	var created, updated, resolved int64
	if err := sc.Scan(&i.ID, &i.Slug, &i.Title, &i.Status, &i.Severity, &created, &updated, &resolved); err != nil {
		return nil, err
	}
	i.CreatedAt, i.UpdatedAt, i.ResolvedAt = tm(created), tm(updated), tm(resolved)
	return &i, nil
}

// Incident returns the incident with the given slug and all its updates,
// oldest first.
func (s *DB) Incident(ctx context.Context, slug string) (*breachcast.Incident, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents i WHERE i.slug = ?`, slug)
	inc, err := scanIncident(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no incident %q", slug)
	} else if err != nil {
		return nil, fmt.Errorf("get incident %s: %w", slug, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+updateColumns+` FROM updates u JOIN incidents i ON i.id = u.incident_id
		WHERE u.incident_id = ? ORDER BY u.seq`, inc.ID)
	if err != nil {
		return nil, fmt.Errorf("get updates of %s: %w", slug, err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUpdate(rows)
		if err != nil {
			return nil, fmt.Errorf("scan update: %w", err)
		}
		inc.Updates = append(inc.Updates, u)
	}
	return inc, rows.Err()
}

// LatestUpdate returns the newest update of the incident, or an ENOTFOUND
// error when the incident has none (it is new).
func (s *DB) LatestUpdate(ctx context.Context, slug string) (*breachcast.Update, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+updateColumns+` FROM updates u JOIN incidents i ON i.id = u.incident_id
		WHERE i.slug = ? ORDER BY u.seq DESC LIMIT 1`, slug)
	u, err := scanUpdate(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "incident %q has no updates", slug)
	} else if err != nil {
		return nil, fmt.Errorf("latest update of %s: %w", slug, err)
	}
	return u, nil
}

// Update returns one update by id.
func (s *DB) Update(ctx context.Context, id int64) (*breachcast.Update, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+updateColumns+` FROM updates u JOIN incidents i ON i.id = u.incident_id
		WHERE u.id = ?`, id)
	u, err := scanUpdate(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no update %d", id)
	} else if err != nil {
		return nil, fmt.Errorf("get update %d: %w", id, err)
	}
	return u, nil
}

// Incidents lists every incident, most recently updated first, without
// their updates.
func (s *DB) Incidents(ctx context.Context) ([]*breachcast.Incident, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+incidentColumns+` FROM incidents i ORDER BY i.updated_at DESC, i.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []*breachcast.Incident
	for rows.Next() {
		inc, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("scan incident: %w", err)
		}
		out = append(out, inc)
	}
	return out, rows.Err()
}

// Rendering returns the stored rendering of an update for a channel.
func (s *DB) Rendering(ctx context.Context, updateID int64, channel string) ([]byte, error) {
	var content string
	err := s.db.QueryRowContext(ctx, `SELECT content FROM renderings WHERE update_id = ? AND channel = ?`,
		updateID, channel).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no %s rendering for update %d", channel, updateID)
	} else if err != nil {
		return nil, fmt.Errorf("get rendering: %w", err)
	}
	return []byte(content), nil
}
