package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/breachcast/breachcast"
)

// PublicIncidents returns every incident with at least one update on the
// status page, most recently updated first. Each incident's Updates hold only
// its public updates, oldest first, timed when they went up; its title,
// status and severity are those of its latest public update, so an
// email-only update never shows on the page.
func (s *DB) PublicIncidents(ctx context.Context) ([]*breachcast.Incident, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT u.id, u.incident_id, i.slug, u.seq, u.title, u.status, u.severity,
		u.audience, u.channels, u.summary, u.body, u.reply_token, u.source, u.public_at, u.published_by, i.created_at
		FROM updates u JOIN incidents i ON i.id = u.incident_id WHERE u.public_at > 0 ORDER BY u.incident_id, u.seq`)
	if err != nil {
		return nil, fmt.Errorf("read public updates: %w", err)
	}
	defer rows.Close()
	byID := map[int64]*breachcast.Incident{}
	var out []*breachcast.Incident
	for rows.Next() {
		var u breachcast.Update
		var channels string
		var public, created int64
		if err := rows.Scan(&u.ID, &u.IncidentID, &u.Incident, &u.Seq, &u.Title, &u.Status, &u.Severity, &u.Audience,
			&channels, &u.Summary, &u.Body, &u.ReplyToken, &u.Source, &public, &u.PublishedBy, &created); err != nil {
			return nil, fmt.Errorf("read public updates: %w", err)
		}
		u.Channels = strings.Split(channels, ",")
		u.PublishedAt = tm(public)
		u.ReplyToken = "" // not public
		inc := byID[u.IncidentID]
		if inc == nil {
			inc = &breachcast.Incident{ID: u.IncidentID, Slug: u.Incident, CreatedAt: tm(created)}
			byID[u.IncidentID] = inc
			out = append(out, inc)
		}
		inc.Updates = append(inc.Updates, &u)
		inc.Title, inc.Status, inc.Severity, inc.UpdatedAt = u.Title, u.Status, u.Severity, u.PublishedAt
		inc.ResolvedAt = time.Time{}
		if u.Status == breachcast.Resolved {
			inc.ResolvedAt = u.PublishedAt
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *breachcast.Incident) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}

// PublicVersion is the id of the newest update on the status page (0 when
// none): it changes exactly when PublicIncidents would. One index probe.
func (s *DB) PublicVersion(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM updates WHERE public_at > 0 ORDER BY id DESC LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("read status page version: %w", err)
	}
	return id, nil
}
