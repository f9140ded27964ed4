package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Reply states as stored.
const (
	replyVisible = "visible"
	replyHidden  = "hidden"
	replyRemoved = "removed"
)

// IngestReply stores a customer reply, idempotently per (channel, external
// id), in one transaction, and reports whether the stored copy changed.
//
//   - add inserts the reply; one already stored is left as it is.
//   - edited replaces the text (and edited_at) only when the event is newer
//     than the last one applied, so a replayed or late older edit changes
//     nothing.
//   - remove marks the reply removed and keeps its text: support may need
//     it. Removal is final: later edits, hides and shows change nothing.
//   - hide and unhide mark it hidden or visible, unless an event newer than
//     theirs was applied already.
//
// An edit, removal, hide or show of a reply not stored yet stores it in that
// state. The event time is r.EventTime, else r.CreatedAt, else the store's
// clock.
//
// A reply whose IncidentID and UpdateID are 0 is matched to our posts: the
// post it answers (InReplyTo), else the stored reply it answers (a reply to
// a reply is filed with its parent), else the post its conversation hangs
// under (RootID); an email reply by the Message-ID of the notice it answers.
// The ids found, or those of the stored copy, are set on r. A reply that
// matches nothing is kept with ids 0.
func (s *DB) IngestReply(ctx context.Context, r *breachcast.Reply) (changed bool, err error) {
	if r == nil {
		return false, breachcast.Errorf(breachcast.EINVALID, "reply: nothing to store")
	}
	if r.Channel == "" || r.ExternalID == "" {
		return false, breachcast.Errorf(breachcast.EINVALID, "reply: channel and external id are required (got %q, %q)", r.Channel, r.ExternalID)
	}
	action := r.Action
	if action == "" {
		action = breachcast.ReplyAdded
	}
	switch action {
	case breachcast.ReplyAdded, breachcast.ReplyEdited, breachcast.ReplyRemoved, breachcast.ReplyHidden, breachcast.ReplyShown:
	default:
		return false, breachcast.Errorf(breachcast.EINVALID, "reply %s/%s: unknown action %q", r.Channel, r.ExternalID, action)
	}
	err = s.tx(ctx, func(tx *sql.Tx, now int64) error {
		event := ms(r.EventTime)
		if event == 0 {
			event = ms(r.CreatedAt)
		}
		if event == 0 {
			event = now
		}
		var (
			id, incidentID, updateID int64
			state, text              string
			eventAt, editedAt        int64
		)
		err := tx.QueryRowContext(ctx, `SELECT id, incident_id, update_id, state, text, event_at, edited_at
			FROM replies WHERE channel = ? AND external_id = ?`, r.Channel, r.ExternalID).
			Scan(&id, &incidentID, &updateID, &state, &text, &eventAt, &editedAt)
		if errors.Is(err, sql.ErrNoRows) {
			if err := matchReply(ctx, tx, r); err != nil {
				return err
			}
			state, edited := replyVisible, int64(0)
			switch action {
			case breachcast.ReplyEdited:
				edited = event
			case breachcast.ReplyRemoved:
				state = replyRemoved
			case breachcast.ReplyHidden:
				state = replyHidden
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO replies (channel, external_id, incident_id, update_id, author_id,
				author_name, text, in_reply_to, root_id, state, created_at, event_at, received_at, edited_at, raw)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.Channel, r.ExternalID, r.IncidentID, r.UpdateID, r.AuthorID, r.AuthorName, r.Text, r.InReplyTo, r.RootID,
				state, ms(r.CreatedAt), event, now, edited, string(r.Raw)); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			changed = true
			return nil
		} else if err != nil {
			return fmt.Errorf("find stored copy: %w", err)
		}
		if r.IncidentID == 0 && r.UpdateID == 0 {
			r.IncidentID, r.UpdateID = incidentID, updateID
		}
		if state == replyRemoved {
			return nil
		}
		switch action {
		case breachcast.ReplyEdited:
			// An edit always follows the post it edits, so one stamped with
			// the same second as an unedited copy is taken as newer.
			newer := event > eventAt || event == eventAt && editedAt == 0 && r.Text != text
			if !newer {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE replies SET text = ?, edited_at = ?, event_at = ?, raw = ? WHERE id = ?`,
				r.Text, event, max(event, eventAt), string(r.Raw), id); err != nil {
				return fmt.Errorf("apply edit: %w", err)
			}
			changed = r.Text != text
		case breachcast.ReplyRemoved:
			if _, err := tx.ExecContext(ctx, `UPDATE replies SET state = ?, event_at = ? WHERE id = ?`,
				replyRemoved, max(event, eventAt), id); err != nil {
				return fmt.Errorf("apply removal: %w", err)
			}
			changed = true
		case breachcast.ReplyHidden, breachcast.ReplyShown:
			want := replyHidden
			if action == breachcast.ReplyShown {
				want = replyVisible
			}
			if want == state || event < eventAt {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE replies SET state = ?, event_at = ? WHERE id = ?`, want, event, id); err != nil {
				return fmt.Errorf("apply %s: %w", action, err)
			}
			changed = true
		}
		return nil
	})
	if err != nil {
		if breachcast.ErrorCodeOf(err) == breachcast.EINVALID {
			return false, err
		}
		return false, fmt.Errorf("store %s reply %s: %w", r.Channel, r.ExternalID, err)
	}
	return changed, nil
}

// matchReply fills r.IncidentID and r.UpdateID from our posts, the stored
// reply it answers, or (email) the notice it answers.
func matchReply(ctx context.Context, tx *sql.Tx, r *breachcast.Reply) error {
	if r.UpdateID != 0 && r.IncidentID != 0 {
		return nil
	}
	if r.UpdateID != 0 {
		err := tx.QueryRowContext(ctx, `SELECT incident_id FROM updates WHERE id = ?`, r.UpdateID).Scan(&r.IncidentID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("find incident of update %d: %w", r.UpdateID, err)
		}
		return nil
	}
	if r.IncidentID != 0 {
		return nil // filed under the incident by whoever knew
	}
	post := func(externalID string) (bool, error) {
		if externalID == "" {
			return false, nil
		}
		err := tx.QueryRowContext(ctx, `SELECT u.incident_id, p.update_id FROM posts p JOIN updates u ON u.id = p.update_id
			WHERE p.channel = ? AND p.external_id = ? ORDER BY p.id LIMIT 1`, r.Channel, externalID).Scan(&r.IncidentID, &r.UpdateID)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	parent := func(externalID string) (bool, error) {
		if externalID == "" || externalID == r.ExternalID {
			return false, nil
		}
		err := tx.QueryRowContext(ctx, `SELECT incident_id, update_id FROM replies WHERE channel = ? AND external_id = ?
			AND incident_id <> 0`, r.Channel, externalID).Scan(&r.IncidentID, &r.UpdateID)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	notice := func(messageID string) (bool, error) {
		updateID, channel, recipientID, ok := parseMessageID(messageID)
		if !ok {
			return false, nil
		}
		err := tx.QueryRowContext(ctx, `SELECT u.incident_id, u.id FROM deliveries d JOIN updates u ON u.id = d.update_id
			WHERE d.update_id = ? AND d.channel = ? AND d.recipient_id = ? AND d.message_id = ?`,
			updateID, channel, recipientID, messageID).Scan(&r.IncidentID, &r.UpdateID)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	steps := []func(string) (bool, error){post, parent}
	ids := []string{r.InReplyTo, r.InReplyTo}
	if r.Channel == breachcast.ChannelEmail {
		steps = append(steps, notice, notice)
		ids = append(ids, r.InReplyTo, r.RootID)
	}
	steps = append(steps, post)
	ids = append(ids, r.RootID)
	for i, step := range steps {
		found, err := step(ids[i])
		if err != nil {
			return fmt.Errorf("match reply to our posts: %w", err)
		}
		if found {
			return nil
		}
	}
	return nil
}

// parseMessageID reads the update, ledger channel and recipient id out of
// a Message-ID the store made: "<bc.UPDATE.NONCE.rRECIPIENT@domain>" for a
// breach notice ("s" for a status subscriber's mail). The caller still
// checks the whole id against the ledger, so a forged one matches nothing.
func parseMessageID(id string) (updateID int64, channel string, recipientID int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(id), "<bc.")
	if !found || !strings.HasSuffix(rest, ">") {
		return 0, "", 0, false
	}
	local, _, found := strings.Cut(rest, "@")
	if !found {
		return 0, "", 0, false
	}
	parts := strings.Split(local, ".")
	if len(parts) != 3 || parts[2] == "" {
		return 0, "", 0, false
	}
	channel, rid := breachcast.ChannelEmail, parts[2]
	switch rid[0] {
	case 'r':
		rid = rid[1:]
	case 's':
		channel, rid = ChannelSubscribers, rid[1:]
	}
	u, err1 := strconv.ParseInt(parts[0], 10, 64)
	r, err2 := strconv.ParseInt(rid, 10, 64)
	if err1 != nil || err2 != nil || u <= 0 || r <= 0 {
		return 0, "", 0, false
	}
	return u, channel, r, true
}

const replyColumns = `r.channel, r.external_id, r.state, r.edited_at, r.author_id, r.author_name, r.text, r.in_reply_to,
	r.root_id, r.created_at, r.event_at, r.raw, r.incident_id, r.update_id`

func scanReply(sc interface{ Scan(...any) error }) (*breachcast.Reply, error) {
	var rep breachcast.Reply
	var state, raw string
	var edited, created, event int64
	if err := sc.Scan(&rep.Channel, &rep.ExternalID, &state, &edited, &rep.AuthorID, &rep.AuthorName, &rep.Text,
		&rep.InReplyTo, &rep.RootID, &created, &event, &raw, &rep.IncidentID, &rep.UpdateID); err != nil {
		return nil, err
	}
	switch {
	case state == replyRemoved:
		rep.Action = breachcast.ReplyRemoved
	case state == replyHidden:
		rep.Action = breachcast.ReplyHidden
	case edited != 0:
		rep.Action = breachcast.ReplyEdited
	default:
		rep.Action = breachcast.ReplyAdded
	}
	rep.CreatedAt, rep.EventTime = tm(created), tm(event)
	if raw != "" {
		rep.Raw = []byte(raw)
	}
	return &rep, nil
}

// Replies returns the replies filed under an incident, oldest first (newest
// last). A stored reply's Action is its state: add (visible, never edited),
// edited (visible, edited), hide (hidden) or remove (removed, its last text
// kept); EventTime is the last event applied.
func (s *DB) Replies(ctx context.Context, incidentSlug string) ([]*breachcast.Reply, error) {
	var incidentID int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM incidents WHERE slug = ?`, incidentSlug).Scan(&incidentID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no incident %q", incidentSlug)
	} else if err != nil {
		return nil, fmt.Errorf("replies of %s: %w", incidentSlug, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+replyColumns+` FROM replies r WHERE r.incident_id = ?
		ORDER BY r.created_at, r.id`, incidentID)
	if err != nil {
		return nil, fmt.Errorf("replies of %s: %w", incidentSlug, err)
	}
	defer rows.Close()
	out := []*breachcast.Reply{}
	for rows.Next() {
		rep, err := scanReply(rows)
		if err != nil {
			return nil, fmt.Errorf("scan reply: %w", err)
		}
		out = append(out, rep)
	}
	return out, rows.Err()
}

// Reply returns one stored reply, in the form Replies gives, or an error
// with code not_found.
func (s *DB) Reply(ctx context.Context, channel, externalID string) (*breachcast.Reply, error) {
	rep, err := scanReply(s.db.QueryRowContext(ctx, `SELECT `+replyColumns+` FROM replies r
		WHERE r.channel = ? AND r.external_id = ?`, channel, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "no %s reply %s", channel, externalID)
	} else if err != nil {
		return nil, fmt.Errorf("get %s reply %s: %w", channel, externalID, err)
	}
	return rep, nil
}

// Watches returns what a channels.Poller of channel should watch: per
// update, the ids of its posts made on that channel (state sent), with
// Root the incident's first post there, for incidents still open or
// updated at or after since (the zero time: every incident). Watches come
// in incident, then update order.
func (s *DB) Watches(ctx context.Context, channel string, since time.Time) ([]channels.Watch, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT u.incident_id, p.update_id, p.external_id,
		COALESCE((SELECT p2.external_id FROM posts p2 JOIN updates u2 ON u2.id = p2.update_id
			WHERE u2.incident_id = u.incident_id AND p2.channel = p.channel AND p2.state IN ('sent', 'retracted')
			AND p2.external_id <> '' ORDER BY u2.seq, p2.seq LIMIT 1), '')
		FROM posts p JOIN updates u ON u.id = p.update_id JOIN incidents i ON i.id = u.incident_id
		WHERE p.channel = ? AND p.state = 'sent' AND p.external_id <> '' AND (i.resolved_at = 0 OR i.updated_at >= ?)
		ORDER BY i.id, u.seq, p.seq`, channel, ms(since))
	if err != nil {
		return nil, fmt.Errorf("watches of %s: %w", channel, err)
	}
	defer rows.Close()
	var out []channels.Watch
	for rows.Next() {
		var incidentID, updateID int64
		var post, root string
		if err := rows.Scan(&incidentID, &updateID, &post, &root); err != nil {
			return nil, fmt.Errorf("scan watch: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].UpdateID == updateID {
			out[n-1].Posts = append(out[n-1].Posts, post)
			continue
		}
		out = append(out, channels.Watch{IncidentID: incidentID, UpdateID: updateID, Root: root, Posts: []string{post}})
	}
	return out, rows.Err()
}
