package status

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/gorilla/websocket"
)

// slugPattern bounds what becomes a URL path and, in Export, a directory
// name: no slashes, no dot segments.
var slugPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// snapshot is everything public at one version, rendered.
type snapshot struct {
	version   int64
	modified  time.Time                // newest update time (Last-Modified)
	res       map[string]*resource     // path below the base -> resource
	notFound  *resource                // the 404 page
	incidents []*incidentView          // most recently updated first
	bySlug    map[string]*incidentView //
	updateIDs map[int64]bool           // every public update id
	lastID    int64                    // newest update id
	msgs      []*liveMessage           // one per incident, by ascending id
	banner    template.HTML            // the status banner, for live messages
	page      pageData                 // what every page shares
	sev       breachcast.Severity      // worst severity of open incidents
	open      int                      // open incidents
}

// liveMessage is one message to live viewers (see liveJSON), encoded once;
// its websocket frame is prepared once and shared by every connection.
type liveMessage struct {
	id   int64 // newest update id of the incident
	slug string
	json []byte
	pm   *websocket.PreparedMessage
}

type timeView struct {
	ISO  string // RFC 3339 for <time datetime>
	Text string // in the page's time zone
}

type updateView struct {
	ID          int64
	Seq         int
	Status      string
	StatusTitle string
	Title       string
	Severity    string
	Time        timeView
	Changes     []string
	Body        template.HTML
	u           *breachcast.Update
}

type incidentView struct {
	Slug        string
	Title       string
	Status      string
	StatusTitle string
	Severity    string
	Open        bool
	URL         string
	Created     timeView
	Updated     timeView
	Resolved    timeView
	Updates     []*updateView // newest first
	Latest      *updateView
	Card        template.HTML
	MaxID       int64
	inc         *breachcast.Incident
}

type componentView struct {
	Name   string
	Status string // Statuspage component status
	Label  string
}

type overallView struct {
	Indicator   string
	Description string
	Open        int
}

type siteView struct {
	Name      string
	Company   string
	Base      string
	Home      string
	History   string
	Atom      string
	RSS       string
	CSS       string
	JS        string
	Icon      string
	Live      string // websocket path; "" in a static export
	SSE       string
	Poll      string
	Subscribe string // form action; "" when subscriptions are off
}

// pageData is what every page template receives.
type pageData struct {
	Site       *siteView
	NoLive     bool // pages without incident cards do not open the live channel
	Title      string
	Canonical  string
	Overall    overallView
	Components []componentView
	Open       []*incidentView
	Recent     []*incidentView
	All        []*incidentView
	Incident   *incidentView
	LastID     int64
	Slug       string
	Message    *messageView
	Form       *formView
}

type messageView struct {
	Heading  string
	Text     string
	Error    bool
	Action   string // form action for a confirm button
	Button   string
	Fields   map[string]string
	Link     string
	LinkText string
}

type formView struct {
	Email    string
	Incident string
	Error    string
}

type renderOpts struct {
	static bool // for Export: no live channel, no forms
}

func (s *Server) site(o renderOpts) *siteView {
	v := &siteView{
		Name: s.cfg.PageName, Company: s.cfg.Company, Base: s.base,
		Home: s.base + "/", History: s.base + "/history/",
		Atom: s.base + "/history.atom", RSS: s.base + "/history.rss",
		CSS: s.assets.url["app.css"], JS: s.assets.url["app.js"], Icon: s.assets.url["icon.svg"],
	}
	if !o.static {
		v.Live = s.base + "/live"
		v.SSE = s.base + "/live/sse"
		v.Poll = s.base + "/live/since"
		if s.subs != nil {
			v.Subscribe = s.base + "/subscribe"
		}
	}
	return v
}

func (s *Server) timeView(t time.Time) timeView {
	if t.IsZero() {
		return timeView{}
	}
	return timeView{ISO: t.UTC().Format(time.RFC3339), Text: t.In(s.cfg.TimeZone).Format("Jan 2, 2006 15:04 MST")}
}

// body returns an update's body as a safe fragment, rendering each update
// once (updates are immutable; a changed body is rendered again).
func (s *Server) body(u *breachcast.Update) template.HTML {
	if h, ok := s.bodies[u.ID]; ok && s.bodyKey[u.ID] == u.Body {
		return h
	}
	var out template.HTML
	if s.render != nil {
		frag, err := s.render(u.Notice())
		if err == nil {
			out = template.HTML(frag) // trusted: the renderer sanitises
		} else {
			s.log.Error("status: render update body; showing it as text", "update_id", u.ID, "err", err)
		}
	}
	if out == "" {
		out = textHTML(u.Body)
	}
	s.bodies[u.ID] = out
	s.bodyKey[u.ID] = u.Body
	return out
}

// textHTML shows plain text as escaped paragraphs.
func textHTML(text string) template.HTML {
	var b strings.Builder
	for _, p := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			b.WriteString("<p>" + strings.ReplaceAll(html.EscapeString(p), "\n", "<br>") + "</p>\n")
		}
	}
	return template.HTML(b.String())
}

var severityRank = map[breachcast.Severity]int{
	breachcast.SeverityNone: 0, breachcast.SeverityMinor: 1, breachcast.SeverityMajor: 2, breachcast.SeverityCritical: 3,
}

// changes says in words what an update changed from the previous one.
func changes(prev, u *breachcast.Update) []string {
	if prev == nil {
		return nil
	}
	var out []string
	if prev.Status != u.Status {
		out = append(out, fmt.Sprintf("Status changed from %s to %s", prev.Status.Title(), u.Status.Title()))
	}
	if prev.Title != u.Title {
		out = append(out, fmt.Sprintf("Title changed from “%s” to “%s”", prev.Title, u.Title))
	}
	if prev.Severity != u.Severity {
		verb := "lowered"
		if severityRank[u.Severity] > severityRank[prev.Severity] {
			verb = "raised"
		}
		out = append(out, fmt.Sprintf("Severity %s from %s to %s", verb, prev.Severity, u.Severity))
	}
	return out
}

// incidentViews turns the source's incidents into views, skipping (and
// logging) any whose slug could not be a safe URL path.
func (s *Server) incidentViews(incs []*breachcast.Incident) []*incidentView {
	var out []*incidentView
	for _, inc := range incs {
		if inc == nil || len(inc.Updates) == 0 {
			continue
		}
		if !slugPattern.MatchString(inc.Slug) {
			s.log.Error("status: incident slug is not URL-safe; not shown", "incident_id", inc.ID)
			continue
		}
		ups := slices.Clone(inc.Updates)
		slices.SortStableFunc(ups, func(a, b *breachcast.Update) int {
			return cmp.Or(a.PublishedAt.Compare(b.PublishedAt), cmp.Compare(a.ID, b.ID))
		})
		v := &incidentView{
			Slug: inc.Slug, Title: inc.Title, Status: string(inc.Status), StatusTitle: inc.Status.Title(),
			Severity: string(inc.Severity), Open: inc.Open(),
			URL:     s.base + "/incidents/" + inc.Slug + "/",
			Created: s.timeView(inc.CreatedAt), Updated: s.timeView(inc.UpdatedAt),
			Resolved: s.timeView(inc.ResolvedAt), inc: inc,
		}
		var prev *breachcast.Update
		for _, u := range ups {
			uv := &updateView{
				ID: u.ID, Seq: u.Seq, Status: string(u.Status), StatusTitle: u.Status.Title(), Title: u.Title,
				Severity: string(u.Severity), Time: s.timeView(u.PublishedAt), Changes: changes(prev, u),
				Body: s.body(u), u: u,
			}
			v.Updates = append(v.Updates, uv)
			v.MaxID = max(v.MaxID, u.ID)
			prev = u
		}
		slices.Reverse(v.Updates)
		v.Latest = v.Updates[0]
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b *incidentView) int {
		return cmp.Or(b.inc.UpdatedAt.Compare(a.inc.UpdatedAt), cmp.Compare(b.MaxID, a.MaxID))
	})
	return out
}

// worst returns the most severe severity among open incidents and how many
// are open.
func worst(views []*incidentView) (breachcast.Severity, int) {
	sev, n := breachcast.SeverityNone, 0
	for _, v := range views {
		if v.Open {
			n++
			if severityRank[v.inc.Severity] > severityRank[sev] {
				sev = v.inc.Severity
			}
		}
	}
	return sev, n
}

// Statuspage's words for the page indicator.
var indicatorText = map[breachcast.Severity]string{
	breachcast.SeverityNone:     "All Systems Operational",
	breachcast.SeverityMinor:    "Minor Service Outage",
	breachcast.SeverityMajor:    "Partial System Outage",
	breachcast.SeverityCritical: "Major System Outage",
}

// componentStatus maps an incident's state to a Statuspage component status.
func componentStatus(open bool, sev breachcast.Severity) string {
	if !open {
		return "operational"
	}
	switch sev {
	case breachcast.SeverityMinor:
		return "degraded_performance"
	case breachcast.SeverityMajor:
		return "partial_outage"
	case breachcast.SeverityCritical:
		return "major_outage"
	}
	return "operational"
}

// componentLabel is what the page says of a component. The API keeps
// Statuspage's enum; the page says what it means during a security incident,
// which need not be an outage.
var componentLabel = map[string]string{
	"operational": "Operational", "degraded_performance": "Minor impact",
	"partial_outage": "Affected", "major_outage": "Critically affected",
}

// bannerText is the page's headline for the worst open incident: Statuspage's
// indicator words speak of outages, a breach page speaks of the incident.
var bannerText = map[breachcast.Severity]string{
	breachcast.SeverityNone:     "All Systems Operational",
	breachcast.SeverityMinor:    "Security incident (minor impact)",
	breachcast.SeverityMajor:    "Security incident",
	breachcast.SeverityCritical: "Critical security incident",
}

// build renders every public resource for incs at version v.
func (s *Server) build(incs []*breachcast.Incident, v int64, o renderOpts) (*snapshot, error) {
	sn, err := s.buildLive(incs, v, o)
	if err != nil {
		return nil, err
	}
	if err := s.buildPages(sn, o); err != nil {
		return nil, err
	}
	return sn, nil
}

// buildLive renders what live viewers need (cards, banner, catch-up
// messages): the part of a snapshot that must be ready before a broadcast.
func (s *Server) buildLive(incs []*breachcast.Incident, v int64, o renderOpts) (*snapshot, error) {
	views := s.incidentViews(incs)
	sn := &snapshot{
		version: v, res: map[string]*resource{}, incidents: views, bySlug: map[string]*incidentView{},
		updateIDs: map[int64]bool{}, modified: s.started,
	}
	for _, iv := range views {
		sn.bySlug[iv.Slug] = iv
		for _, u := range iv.Updates {
			sn.updateIDs[u.ID] = true
			if u.u.PublishedAt.After(sn.modified) {
				sn.modified = u.u.PublishedAt
			}
		}
		sn.lastID = max(sn.lastID, iv.MaxID)
	}
	site := s.site(o)
	sev, open := worst(views)
	overall := overallView{Indicator: string(sev), Description: bannerText[sev], Open: open}
	if open > 0 && sev == breachcast.SeverityNone {
		overall.Description = "Incident under way"
	}
	cs := componentStatus(open > 0, sev)
	var comps []componentView
	for _, n := range s.cfg.Components {
		comps = append(comps, componentView{Name: n, Status: cs, Label: componentLabel[cs]})
	}
	base := pageData{Site: site, Overall: overall, Components: comps, LastID: sn.lastID}

	// Cards first: pages embed them and live messages carry them.
	for _, iv := range views {
		var b bytes.Buffer
		if err := s.pages.byName["index"].ExecuteTemplate(&b, "card", iv); err != nil {
			return nil, fmt.Errorf("status: render card %s: %w", iv.Slug, err)
		}
		iv.Card = template.HTML(b.String())
	}
	banner, err := s.fragment("banner", base)
	if err != nil {
		return nil, err
	}
	sn.banner = banner

	// Live messages: one per incident, in the order viewers should apply them.
	for _, iv := range views {
		m, err := prepare(liveJSON{
			Type: "incident", ID: iv.MaxID, Slug: iv.Slug, Open: iv.Open, Title: iv.Title,
			Status: iv.Status, Card: string(iv.Card), Banner: string(banner),
		})
		if err != nil {
			return nil, err
		}
		sn.msgs = append(sn.msgs, m)
	}
	slices.SortFunc(sn.msgs, func(a, b *liveMessage) int { return cmp.Compare(a.id, b.id) })
	sn.page = base
	sn.sev, sn.open = sev, open
	return sn, nil
}

// buildPages renders every page, feed and API document of sn.
func (s *Server) buildPages(sn *snapshot, o renderOpts) error {
	views, base, sev, open := sn.incidents, sn.page, sn.sev, sn.open
	site := base.Site
	html := func(status int, cache, name string, d pageData) (*resource, error) {
		var b bytes.Buffer
		if err := s.pages.byName[name].ExecuteTemplate(&b, "layout", d); err != nil {
			return nil, fmt.Errorf("status: render %s page: %w", name, err)
		}
		return newResource(status, "text/html; charset=utf-8", cache, b.Bytes(), sn.modified), nil
	}
	add := func(paths []string, r *resource, err error) error {
		if err != nil {
			return err
		}
		for _, p := range paths {
			sn.res[p] = r
		}
		return nil
	}

	idx := base
	idx.Title = s.cfg.PageName
	idx.Canonical = s.origin + s.base + "/"
	for _, iv := range views {
		if iv.Open {
			idx.Open = append(idx.Open, iv)
		} else if len(idx.Recent) < 5 {
			idx.Recent = append(idx.Recent, iv)
		}
	}
	if s.subs != nil && !o.static {
		idx.Form = &formView{}
	}
	r, err := html(http.StatusOK, cacheLive, "index", idx)
	if err := add([]string{"/", "/index.html"}, r, err); err != nil {
		return err
	}

	hist := base
	hist.Title = "Incident history · " + s.cfg.PageName
	hist.Canonical = s.origin + s.base + "/history/"
	hist.All = views
	hist.NoLive = true
	r, err = html(http.StatusOK, cacheLive, "history", hist)
	if err := add([]string{"/history", "/history/"}, r, err); err != nil {
		return err
	}

	for _, iv := range views {
		d := base
		d.Title = iv.Title + " · " + s.cfg.PageName
		d.Canonical = s.origin + iv.URL
		d.Incident = iv
		d.Slug = iv.Slug
		if s.subs != nil && !o.static {
			d.Form = &formView{Incident: iv.Slug}
		}
		r, err := html(http.StatusOK, cacheLive, "incident", d)
		if err := add([]string{"/incidents/" + iv.Slug, "/incidents/" + iv.Slug + "/"}, r, err); err != nil {
			return err
		}
	}

	nf := base
	nf.Title = "Page not found · " + s.cfg.PageName
	nf.NoLive = true
	nf.Message = &messageView{
		Heading: "Page not found",
		Text:    "There is no page at this address. The incident may have a different name; every incident is listed in the history.",
		Link:    site.History, LinkText: "See all incidents",
	}
	if sn.notFound, err = html(http.StatusNotFound, cacheError, "message", nf); err != nil {
		return err
	}

	if err := s.buildFeeds(sn, views); err != nil {
		return err
	}
	if err := s.buildAPI(sn, views, sev, open); err != nil {
		return err
	}

	return nil
}

// liveJSON is a message to live viewers. Type "incident" carries the
// incident's whole card, replacing the one on the page (catch-up). Type
// "update" is what a publish broadcasts: only the new timeline entry and the
// card's new header, applicable to a card whose newest update is Prev, so
// a crowd receives a kilobyte each instead of the whole timeline; a new
// incident's first update carries its card too.
type liveJSON struct {
	Type   string `json:"type"`
	ID     int64  `json:"id"`
	Prev   int64  `json:"prev,omitempty"`
	Slug   string `json:"slug"`
	Open   bool   `json:"open"`
	Title  string `json:"title"`
	Status string `json:"status"`
	Card   string `json:"card,omitempty"`
	Head   string `json:"head,omitempty"`
	Entry  string `json:"entry,omitempty"`
	Banner string `json:"banner"`
}

func (s *Server) fragment(name string, d any) (template.HTML, error) {
	var b bytes.Buffer
	if err := s.pages.byName["index"].ExecuteTemplate(&b, name, d); err != nil {
		return "", fmt.Errorf("status: render %s: %w", name, err)
	}
	return template.HTML(b.String()), nil
}

// newMessages returns one "update" message per update that is in next but
// not in prev, oldest first.
func (s *Server) newMessages(prev, next *snapshot) ([]*liveMessage, error) {
	if prev == nil {
		return nil, nil
	}
	var out []*liveMessage
	for _, iv := range next.incidents {
		for i, uv := range iv.Updates {
			if prev.updateIDs[uv.ID] {
				continue
			}
			m := liveJSON{
				Type: "update", ID: uv.ID, Slug: iv.Slug, Open: iv.Open, Title: iv.Title, Status: iv.Status,
				Banner: string(next.banner),
			}
			if i+1 < len(iv.Updates) {
				m.Prev = iv.Updates[i+1].ID
			} else {
				m.Card = string(iv.Card)
			}
			head, err := s.fragment("cardhead", iv)
			if err != nil {
				return nil, err
			}
			entry, err := s.fragment("entry", uv)
			if err != nil {
				return nil, err
			}
			m.Head, m.Entry = string(head), string(entry)
			lm, err := prepare(m)
			if err != nil {
				return nil, err
			}
			out = append(out, lm)
		}
	}
	slices.SortFunc(out, func(a, b *liveMessage) int { return cmp.Compare(a.id, b.id) })
	return out, nil
}

func prepare(m liveJSON) (*liveMessage, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("status: encode live message: %w", err)
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil, fmt.Errorf("status: prepare live message: %w", err)
	}
	return &liveMessage{id: m.ID, slug: m.Slug, json: b, pm: pm}, nil
}
