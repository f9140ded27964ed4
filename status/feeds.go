package status

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The feeds follow Atlassian Statuspage's incident history feed: one entry
// per incident, its content every update newest first, each a paragraph with
// the time in <small> and the status in <strong>.

type atomFeed struct {
	XMLName xml.Name    `xml:"feed"`
	Lang    string      `xml:"xml:lang,attr"`
	NS      string      `xml:"xmlns,attr"`
	ID      string      `xml:"id"`
	Links   []atomLink  `xml:"link"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomAuthor  `xml:"author"`
	Entries []atomEntry `xml:"entry"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
	Href string `xml:"href,attr"`
}

type atomAuthor struct {
	Name string `xml:"name"`
}

type atomEntry struct {
	ID        string      `xml:"id"`
	Published string      `xml:"published"`
	Updated   string      `xml:"updated"`
	Link      atomLink    `xml:"link"`
	Title     string      `xml:"title"`
	Content   atomContent `xml:"content"`
}

type atomContent struct {
	Type string `xml:"type,attr"`
	Body string `xml:",chardata"`
}

type rssFeed struct {
	XMLName xml.Name   `xml:"rss"`
	Version string     `xml:"version,attr"`
	Atom    string     `xml:"xmlns:atom,attr"`
	Channel rssChannel `xml:"channel"`
}

type rssChannel struct {
	Title       string    `xml:"title"`
	Link        string    `xml:"link"`
	Description string    `xml:"description"`
	Self        rssSelf   `xml:"atom:link"`
	LastBuild   string    `xml:"lastBuildDate,omitempty"`
	Items       []rssItem `xml:"item"`
}

type rssSelf struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
}

type rssItem struct {
	Title       string  `xml:"title"`
	Description string  `xml:"description"`
	PubDate     string  `xml:"pubDate"`
	Link        string  `xml:"link"`
	GUID        rssGUID `xml:"guid"`
}

type rssGUID struct {
	IsPermaLink string `xml:"isPermaLink,attr"`
	Value       string `xml:",chardata"`
}

const feedItems = 50

// feedContent is an incident's updates as the HTML Statuspage feeds carry.
func (s *Server) feedContent(iv *incidentView) string {
	var b strings.Builder
	for _, u := range iv.Updates {
		t := u.u.PublishedAt.In(s.cfg.TimeZone)
		fmt.Fprintf(&b, "<p><small>%s <var data-var='date'>%d</var>, <var data-var='time'>%s</var> %s</small><br><strong>%s</strong> - %s</p>",
			t.Format("Jan"), t.Day(), t.Format("15:04"), html.EscapeString(t.Format("MST")),
			html.EscapeString(u.StatusTitle), strings.TrimSpace(string(u.Body)))
	}
	return b.String()
}

func (s *Server) buildFeeds(sn *snapshot, views []*incidentView) error {
	tagBase := "tag:" + hostOnly(s.host) + ",2005:"
	home := s.origin + s.base + "/"
	updated := sn.modified.UTC().Format(time.RFC3339)

	af := atomFeed{
		Lang: "en", NS: "http://www.w3.org/2005/Atom",
		ID: tagBase + s.base + "/history",
		Links: []atomLink{
			{Rel: "alternate", Type: "text/html", Href: home},
			{Rel: "self", Type: "application/atom+xml", Href: s.origin + s.base + "/history.atom"},
		},
		Title: s.cfg.PageName + " - Incident History", Updated: updated,
		Author: atomAuthor{Name: s.cfg.Company},
	}
	rf := rssFeed{Version: "2.0", Atom: "http://www.w3.org/2005/Atom", Channel: rssChannel{
		Title: s.cfg.PageName + " - Incident History", Link: home,
		Description: "Incident updates from " + s.cfg.Company,
		Self:        rssSelf{Href: s.origin + s.base + "/history.rss", Rel: "self", Type: "application/rss+xml"},
		LastBuild:   sn.modified.UTC().Format(time.RFC1123Z),
	}}
	for i, iv := range views {
		if i == feedItems {
			break
		}
		link := s.origin + iv.URL
		content := s.feedContent(iv)
		id := tagBase + "Incident/" + strconv.FormatInt(iv.inc.ID, 10)
		af.Entries = append(af.Entries, atomEntry{
			ID:        id,
			Published: iv.inc.CreatedAt.UTC().Format(time.RFC3339),
			Updated:   iv.inc.UpdatedAt.UTC().Format(time.RFC3339),
			Link:      atomLink{Rel: "alternate", Type: "text/html", Href: link},
			Title:     iv.Title,
			Content:   atomContent{Type: "html", Body: content},
		})
		rf.Channel.Items = append(rf.Channel.Items, rssItem{
			Title: iv.Title, Description: content,
			PubDate: iv.inc.UpdatedAt.UTC().Format(time.RFC1123Z), Link: link,
			GUID: rssGUID{IsPermaLink: "false", Value: id + "/" + strconv.FormatInt(iv.MaxID, 10)},
		})
	}
	for _, f := range []struct {
		path, ctype string
		v           any
	}{
		{"/history.atom", "application/atom+xml; charset=utf-8", af},
		{"/history.rss", "application/rss+xml; charset=utf-8", rf},
	} {
		var b bytes.Buffer
		b.WriteString(xml.Header)
		enc := xml.NewEncoder(&b)
		enc.Indent("", "  ")
		if err := enc.Encode(f.v); err != nil {
			return fmt.Errorf("status: encode %s: %w", f.path, err)
		}
		b.WriteByte('\n')
		sn.res[f.path] = newResource(http.StatusOK, f.ctype, cacheLive, b.Bytes(), sn.modified)
	}
	return nil
}

// hostOnly strips the port from host[:port] for tag: URIs.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		return h[:i]
	}
	return strings.Trim(h, "[]")
}
