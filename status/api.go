package status

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/breachcast/breachcast"
)

// The Atlassian Statuspage public API v2 (/api/v2/*.json), shaped key for
// key like the real thing so existing aggregators and widgets work
// unchanged. Ids are strings; incidents are identified by their slug.

type spPage struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	URL       string `json:"url"`
	TimeZone  string `json:"time_zone"`
	UpdatedAt string `json:"updated_at"`
}

type spComponent struct {
	ID                 string  `json:"id"`
	Name               string  `json:"name"`
	Status             string  `json:"status"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
	Position           int     `json:"position"`
	Description        *string `json:"description"`
	Showcase           bool    `json:"showcase"`
	StartDate          *string `json:"start_date"`
	GroupID            *string `json:"group_id"`
	PageID             string  `json:"page_id"`
	Group              bool    `json:"group"`
	OnlyShowIfDegraded bool    `json:"only_show_if_degraded"`
}

type spAffected struct {
	Code      string `json:"code"`
	Name      string `json:"name"`
	OldStatus string `json:"old_status"`
	NewStatus string `json:"new_status"`
}

type spUpdate struct {
	ID                   string       `json:"id"`
	Status               string       `json:"status"`
	Body                 string       `json:"body"`
	IncidentID           string       `json:"incident_id"`
	CreatedAt            string       `json:"created_at"`
	UpdatedAt            string       `json:"updated_at"`
	DisplayAt            string       `json:"display_at"`
	AffectedComponents   []spAffected `json:"affected_components"`
	DeliverNotifications bool         `json:"deliver_notifications"`
	CustomTweet          *string      `json:"custom_tweet"`
	TweetID              *string      `json:"tweet_id"`
}

type spIncident struct {
	ID                string        `json:"id"`
	Name              string        `json:"name"`
	Status            string        `json:"status"`
	CreatedAt         string        `json:"created_at"`
	UpdatedAt         string        `json:"updated_at"`
	MonitoringAt      *string       `json:"monitoring_at"`
	ResolvedAt        *string       `json:"resolved_at"`
	Impact            string        `json:"impact"`
	Shortlink         string        `json:"shortlink"`
	StartedAt         string        `json:"started_at"`
	PageID            string        `json:"page_id"`
	IncidentUpdates   []spUpdate    `json:"incident_updates"`
	Components        []spComponent `json:"components"`
	ReminderIntervals string        `json:"reminder_intervals"`
}

type spStatus struct {
	Indicator   string `json:"indicator"`
	Description string `json:"description"`
}

type spSummary struct {
	Page                  spPage        `json:"page"`
	Components            []spComponent `json:"components"`
	Incidents             []spIncident  `json:"incidents"`
	ScheduledMaintenances []spIncident  `json:"scheduled_maintenances"`
	Status                spStatus      `json:"status"`
}

func spTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func spTimePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := spTime(t)
	return &s
}

func shortID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

func (s *Server) buildAPI(sn *snapshot, views []*incidentView, sev breachcast.Severity, open int) error {
	pageID := shortID(s.cfg.PublicURL)
	page := spPage{
		ID: pageID, Name: s.cfg.PageName, URL: s.origin + s.base, TimeZone: s.cfg.TimeZone.String(),
		UpdatedAt: spTime(sn.modified),
	}
	cs := componentStatus(open > 0, sev)
	comps := make([]spComponent, len(s.cfg.Components))
	compAt := map[string]time.Time{} // a component last changed when an incident did
	for i, n := range s.cfg.Components {
		updated := s.started
		for _, iv := range views {
			updated = later(updated, iv.inc.UpdatedAt)
		}
		compAt[n] = updated
		comps[i] = spComponent{
			ID: shortID("component:" + n), Name: n, Status: cs, CreatedAt: spTime(s.started),
			UpdatedAt: spTime(updated), Position: i + 1, Showcase: true, PageID: pageID,
		}
	}

	incident := func(iv *incidentView) spIncident {
		inc := iv.inc
		out := spIncident{
			ID: iv.Slug, Name: iv.Title, Status: iv.Status,
			CreatedAt: spTime(inc.CreatedAt), UpdatedAt: spTime(inc.UpdatedAt),
			ResolvedAt: spTimePtr(inc.ResolvedAt), Impact: iv.Severity,
			Shortlink: s.origin + iv.URL, StartedAt: spTime(inc.CreatedAt), PageID: pageID,
			ReminderIntervals: "[]", IncidentUpdates: []spUpdate{}, Components: []spComponent{},
		}
		// Updates oldest first to know each one's component transition.
		prevStatus := "operational"
		var ups []spUpdate
		for i := len(iv.Updates) - 1; i >= 0; i-- {
			u := iv.Updates[i]
			if u.u.Status == breachcast.Monitoring && out.MonitoringAt == nil {
				out.MonitoringAt = spTimePtr(u.u.PublishedAt)
			}
			now := componentStatus(u.u.Status != breachcast.Resolved, u.u.Severity)
			aff := make([]spAffected, len(s.cfg.Components))
			for j, n := range s.cfg.Components {
				aff[j] = spAffected{Code: shortID("component:" + n), Name: n, OldStatus: prevStatus, NewStatus: now}
			}
			prevStatus = now
			ups = append(ups, spUpdate{
				ID: strconv.FormatInt(u.ID, 10), Status: u.Status, Body: u.u.Body, IncidentID: iv.Slug,
				CreatedAt: spTime(u.u.PublishedAt), UpdatedAt: spTime(u.u.PublishedAt), DisplayAt: spTime(u.u.PublishedAt),
				AffectedComponents: aff, DeliverNotifications: true,
			})
		}
		for i := len(ups) - 1; i >= 0; i-- { // Statuspage lists newest first
			out.IncidentUpdates = append(out.IncidentUpdates, ups[i])
		}
		ics := componentStatus(iv.Open, inc.Severity)
		for i, n := range s.cfg.Components {
			c := comps[i]
			c.Status = ics
			c.UpdatedAt = spTime(compAt[n])
			out.Components = append(out.Components, c)
		}
		return out
	}

	all := []spIncident{}
	unresolved := []spIncident{}
	for i, iv := range views {
		if iv.Open {
			unresolved = append(unresolved, incident(iv))
		}
		if i < 50 {
			all = append(all, incident(iv))
		}
	}
	status := spStatus{Indicator: string(sev), Description: indicatorText[sev]}

	docs := map[string]any{
		"/api/v2/summary.json": spSummary{
			Page: page, Components: comps, Incidents: unresolved, ScheduledMaintenances: []spIncident{}, Status: status,
		},
		"/api/v2/status.json": struct {
			Page   spPage   `json:"page"`
			Status spStatus `json:"status"`
		}{page, status},
		"/api/v2/components.json": struct {
			Page       spPage        `json:"page"`
			Components []spComponent `json:"components"`
		}{page, comps},
		"/api/v2/incidents.json": struct {
			Page      spPage       `json:"page"`
			Incidents []spIncident `json:"incidents"`
		}{page, all},
		"/api/v2/incidents/unresolved.json": struct {
			Page      spPage       `json:"page"`
			Incidents []spIncident `json:"incidents"`
		}{page, unresolved},
	}
	for p, d := range docs {
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return fmt.Errorf("status: encode %s: %w", p, err)
		}
		sn.res[p] = newResource(http.StatusOK, "application/json", cacheLive, append(b, '\n'), sn.modified)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
