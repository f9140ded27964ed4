package status

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/breachcast/breachcast/internal/conformance"
)

// shape collects, for every key path in a JSON document ("incidents[].name"),
// the JSON types seen there. Array elements share one path.
func shape(v any, path string, out map[string]map[string]bool) {
	add := func(t string) {
		if out[path] == nil {
			out[path] = map[string]bool{}
		}
		out[path][t] = true
	}
	switch x := v.(type) {
	case map[string]any:
		add("object")
		for k, c := range x {
			shape(c, path+"."+k, out)
		}
	case []any:
		add("array")
		for _, c := range x {
			shape(c, path+"[]", out)
		}
	case string:
		add("string")
	case float64:
		add("number")
	case bool:
		add("boolean")
	case nil:
		add("null")
	}
}

func shapeOf(t *testing.T, b []byte) map[string]map[string]bool {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON: %v\n%.300s", err, b)
	}
	out := map[string]map[string]bool{}
	shape(v, "", out)
	return out
}

// compareShape checks that every key path of want (below prefix) is in got
// with a type want has there; a null in want accepts any type. Paths inside
// arrays that are empty in got cannot be checked and are reported as such.
func compareShape(t *testing.T, name string, want, got map[string]map[string]bool, prefix string) (checked int) {
	t.Helper()
	var paths []string
	for p := range want {
		if strings.HasPrefix(p, prefix) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if parentArrayEmpty(p, got) {
			continue
		}
		gt, ok := got[p]
		if !ok {
			t.Errorf("%s: key %s is missing", name, p)
			continue
		}
		checked++
		if want[p]["null"] {
			continue
		}
		match := false
		for ty := range gt {
			if want[p][ty] {
				match = true
			}
		}
		if !match {
			t.Errorf("%s: key %s has type %v, the real API has %v", name, p, keys(gt), keys(want[p]))
		}
	}
	return checked
}

// parentArrayEmpty reports whether p lies inside an array that got has but
// with no elements (so its element keys cannot exist).
func parentArrayEmpty(p string, got map[string]map[string]bool) bool {
	for i := strings.Index(p, "[]"); i >= 0; {
		arr := p[:i]
		if got[arr]["array"] {
			has := false
			for q := range got {
				if strings.HasPrefix(q, arr+"[]") {
					has = true
					break
				}
			}
			if !has {
				return true
			}
		}
		j := strings.Index(p[i+2:], "[]")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return false
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestStatuspageAPIHasTheShapeOfTheRealOne(t *testing.T) {
	dir := conformance.Path(t, "statuspage/summary_examples")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Statuspage examples in %s", dir)
	}
	// The union of the examples' shapes is what aggregators may rely on.
	want := map[string]map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for p, ts := range shapeOf(t, b) {
			if want[p] == nil {
				want[p] = map[string]bool{}
			}
			for ty := range ts {
				want[p][ty] = true
			}
		}
	}

	e := newEnv(t, nil)
	e.seed()
	docs := map[string][]string{ // document -> top-level keys to compare
		"/api/v2/summary.json":              {""},
		"/api/v2/status.json":               {".page", ".status"},
		"/api/v2/components.json":           {".page", ".components"},
		"/api/v2/incidents.json":            {".page", ".incidents"},
		"/api/v2/incidents/unresolved.json": {".page", ".incidents"},
	}
	for path, prefixes := range docs {
		resp, body := e.get(path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		got := shapeOf(t, []byte(body))
		checked := 0
		for _, pre := range prefixes {
			checked += compareShape(t, path, want, got, pre)
		}
		if checked < 5 || path == "/api/v2/summary.json" && checked < 60 {
			t.Errorf("%s: only %d keys compared", path, checked)
		}
		t.Logf("%s: %d key paths match the real API", path, checked)
	}

	// The summary of an open incident carries its updates and components,
	// so their keys were compared above; check a few values too.
	var sum spSummary
	_, body := e.get("/api/v2/summary.json")
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status.Indicator != "critical" || sum.Status.Description != "Major System Outage" {
		t.Errorf("status = %+v", sum.Status)
	}
	if len(sum.Incidents) != 1 || sum.Incidents[0].ID != "breach-2026" || len(sum.Incidents[0].IncidentUpdates) != 3 {
		t.Fatalf("summary incidents = %+v", sum.Incidents)
	}
	if got := sum.Incidents[0].IncidentUpdates[0].Body; got != "Email addresses were exposed." {
		t.Errorf("newest update first: got %q", got)
	}
	if len(sum.Components) != 2 || sum.Components[0].Status != "major_outage" {
		t.Errorf("components = %+v", sum.Components)
	}
	var all struct{ Incidents []spIncident }
	_, body = e.get("/api/v2/incidents.json")
	json.Unmarshal([]byte(body), &all)
	if len(all.Incidents) != 2 || all.Incidents[1].ResolvedAt == nil {
		t.Errorf("incidents.json should list both incidents, the resolved one with resolved_at: %+v", all.Incidents)
	}
}

func TestNoIncidentsMeansOperational(t *testing.T) {
	e := newEnv(t, nil)
	e.refresh()
	var st struct{ Status spStatus }
	_, body := e.get("/api/v2/status.json")
	json.Unmarshal([]byte(body), &st)
	if st.Status.Indicator != "none" || st.Status.Description != "All Systems Operational" {
		t.Fatalf("status = %+v", st.Status)
	}
	_, page := e.get("/")
	if !strings.Contains(page, "No open incidents.") {
		t.Error("empty page does not say there are no open incidents")
	}
}

// Feeds: the element structure of the Statuspage Atom feed.
type feedShape struct {
	XMLName xml.Name
	ID      string `xml:"id"`
	Title   string `xml:"title"`
	Updated string `xml:"updated"`
	Links   []struct {
		Rel  string `xml:"rel,attr"`
		Type string `xml:"type,attr"`
		Href string `xml:"href,attr"`
	} `xml:"link"`
	Author struct {
		Name string `xml:"name"`
	} `xml:"author"`
	Entries []struct {
		ID        string `xml:"id"`
		Published string `xml:"published"`
		Updated   string `xml:"updated"`
		Title     string `xml:"title"`
		Link      struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"link"`
		Content struct {
			Type string `xml:"type,attr"`
			Body string `xml:",chardata"`
		} `xml:"content"`
	} `xml:"entry"`
}

func TestAtomFeedFollowsStatuspage(t *testing.T) {
	ref, err := os.ReadFile(conformance.Path(t, "statuspage/githubstatus-history.atom"))
	if err != nil {
		t.Fatal(err)
	}
	var gh feedShape
	if err := xml.Unmarshal(ref, &gh); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	e.seed()
	resp, body := e.get("/history.atom")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/atom+xml") {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	var ours feedShape
	if err := xml.Unmarshal([]byte(body), &ours); err != nil {
		t.Fatalf("our feed is not XML: %v", err)
	}
	if ours.XMLName != gh.XMLName {
		t.Fatalf("root %v, Statuspage has %v", ours.XMLName, gh.XMLName)
	}
	if len(ours.Entries) != 2 || len(ours.Links) != len(gh.Links) || ours.Author.Name != "Acme" {
		t.Fatalf("feed: %d entries, %d links, author %q", len(ours.Entries), len(ours.Links), ours.Author.Name)
	}
	for i, l := range gh.Links {
		if ours.Links[i].Rel != l.Rel || ours.Links[i].Type != l.Type {
			t.Errorf("link %d: %s %s, Statuspage has %s %s", i, ours.Links[i].Rel, ours.Links[i].Type, l.Rel, l.Type)
		}
	}
	ge, oe := gh.Entries[0], ours.Entries[0]
	if !strings.HasPrefix(oe.ID, "tag:127.0.0.1,2005:Incident/") || !strings.HasPrefix(ge.ID, "tag:") {
		t.Errorf("entry id %q", oe.ID)
	}
	if oe.Content.Type != ge.Content.Type || oe.Link.Rel != ge.Link.Rel || oe.Published == "" || oe.Updated == "" {
		t.Errorf("entry: %+v", oe)
	}
	for _, want := range []string{"<small>Mar <var data-var='date'>14</var>, <var data-var='time'>10:00</var> UTC</small><br><strong>Identified</strong> - <p>Email addresses were exposed.</p>", "<strong>Investigating</strong>"} {
		if !strings.Contains(oe.Content.Body, want) {
			t.Errorf("entry content lacks %q:\n%s", want, oe.Content.Body)
		}
	}
	if oe.Link.Href != e.url+"/incidents/breach-2026/" {
		t.Errorf("entry link %q", oe.Link.Href)
	}
}

func TestRSSFeed(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	_, body := e.get("/history.rss")
	var rss struct {
		Version string `xml:"version,attr"`
		Channel struct {
			Title string `xml:"title"`
			Items []struct {
				Title       string `xml:"title"`
				Description string `xml:"description"`
				PubDate     string `xml:"pubDate"`
				Link        string `xml:"link"`
				GUID        string `xml:"guid"`
			} `xml:"item"`
		} `xml:"channel"`
	}
	if err := xml.Unmarshal([]byte(body), &rss); err != nil {
		t.Fatal(err)
	}
	if rss.Version != "2.0" || len(rss.Channel.Items) != 2 || rss.Channel.Items[0].Title != "Customer email addresses exposed" {
		t.Fatalf("rss: %+v", rss)
	}
	it := rss.Channel.Items[0]
	if it.Link != e.url+"/incidents/breach-2026/" || it.PubDate != "Sat, 14 Mar 2026 10:00:00 +0000" || it.GUID == "" ||
		!strings.Contains(it.Description, "Email addresses were exposed.") {
		t.Errorf("item: %+v", it)
	}
}
