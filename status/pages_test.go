package status

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
)

func TestNewRejectsBadConfig(t *testing.T) {
	src := &fakeSource{}
	secret := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name string
		cfg  Config
		subs Subscribers
		want string
	}{
		{"no public URL", Config{}, nil, "public URL"},
		{"relative public URL", Config{PublicURL: "/status"}, nil, "absolute"},
		{"ftp public URL", Config{PublicURL: "ftp://x.test"}, nil, "absolute"},
		{"duplicate component", Config{PublicURL: "https://s.test", Components: []string{"A", "A"}}, nil, "twice"},
		{"bad origin", Config{PublicURL: "https://s.test", AllowedOrigins: []string{"nope"}}, nil, "allowed origin"},
		{"short secret", Config{PublicURL: "https://s.test", Secret: []byte("short"), MailFrom: "a@b.test"}, newFakeSubs(), "secret"},
		{"no sender", Config{PublicURL: "https://s.test", Secret: secret}, newFakeSubs(), "MailFrom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mail *fakeMailer
			if tt.subs != nil {
				mail = &fakeMailer{}
			}
			var err error
			if mail != nil {
				_, err = New(tt.cfg, src, tt.subs, mail, nil, nil)
			} else {
				_, err = New(tt.cfg, src, nil, nil, nil, nil)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestPagesAnswer503UntilTheFirstLoad(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.get("/")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("before the first load: %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if strings.Contains(body, "All Systems Operational") {
		t.Fatal("an unloaded page must never claim all systems are operational")
	}
}

func TestIndexPinsOpenIncidentsWithTimelineAndChanges(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	resp, body := e.get("/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`<html lang="en">`,
		`<a class="skip" href="#main">Skip to content</a>`,
		`<main id="main"`,
		`<h1>Acme Status</h1>`,
		`Critical security incident`,
		`id="incident-breach-2026"`,
		`<span class="badge badge-identified">Identified</span>`,
		`<time datetime="2026-03-14T10:00:00Z">Mar 14, 2026 10:00 UTC</time>`,
		`Status changed from Investigating to Identified`,
		`Title changed from “Unauthorised access to customer data” to “Customer email addresses exposed”`,
		`Severity raised from major to critical`,
		`Incident opened.`,
		`<p>Email addresses were exposed.</p>`,
		`role="status" aria-live="polite"`,
		`data-live="/live"`,
		`data-last-id="5"`,
		`Recently resolved`,
		`action="/subscribe"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	// Newest update first within the timeline.
	if a, b := strings.Index(body, "Email addresses were exposed."), strings.Index(body, "We are investigating unauthorised access."); a < 0 || b < 0 || a > b {
		t.Errorf("timeline is not newest first (newest at %d, oldest at %d)", a, b)
	}
	// The resolved incident is not pinned as a card on the front page.
	if strings.Contains(body, `id="incident-db-outage"`) {
		t.Error("a resolved incident is pinned on the front page")
	}
	for _, link := range regexp.MustCompile(`(?:href|src)="(/[^"]*)"`).FindAllStringSubmatch(body, -1) {
		if r, _ := e.get(link[1]); r.StatusCode != 200 {
			t.Errorf("link %s on / answers %d", link[1], r.StatusCode)
		}
	}
}

func TestIncidentPageHasTheWholeTimeline(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for _, p := range []string{"/incidents/db-outage", "/incidents/db-outage/"} {
		resp, body := e.get(p)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		for _, want := range []string{"Database outage", "The database is down.", "Fixed.", `badge-resolved`, `data-slug="db-outage"`, "Status changed from Investigating to Resolved", `name="incident" value="db-outage"`} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s lacks %q", p, want)
			}
		}
	}
}

func TestHistoryListsResolvedIncidentsToo(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	_, body := e.get("/history")
	for _, want := range []string{"<h1>Incident history</h1>", `href="/incidents/db-outage/"`, `href="/incidents/breach-2026/"`, "Resolved <time"} {
		if !strings.Contains(body, want) {
			t.Errorf("/history lacks %q", want)
		}
	}
	if strings.Contains(body, "data-live") {
		t.Error("/history has no cards to update, yet opens the live channel")
	}
}

func TestUnknownPathsGetARealNotFoundPage(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for _, p := range []string{"/incidents/nope", "/incidents/nope/extra", "/incidents/", "/nope", "/static/app.css", "/api/v2/nope.json"} {
		resp, body := e.get(p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
			continue
		}
		if !strings.Contains(body, "<h1>Page not found</h1>") || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: not the 404 page: %.200s", p, body)
		}
	}
	req, _ := http.NewRequest("DELETE", e.url+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /: %d, want 405", resp.StatusCode)
	}
}

func TestEveryResponseCarriesSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	_, index := e.get("/")
	css := regexp.MustCompile(`href="(/static/app\.[0-9a-f]+\.css)"`).FindStringSubmatch(index)[1]
	for _, p := range []string{"/", "/history", "/incidents/db-outage", "/nope", css, "/history.atom", "/api/v2/summary.json", "/live", "/live/since?id=0", "/live/since?id=x", "/subscribe/confirm?token=x"} {
		resp, _ := e.get(p)
		h := resp.Header
		if got := h.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", p, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: X-Content-Type-Options %q Referrer-Policy %q", p, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
	}
}

func TestTitlesAndBodiesRenderInert(t *testing.T) {
	e := newEnv(t, nil)
	e.src.publish("xss", `<script>alert(1)</script>"><img src=x onerror=alert(2)>`, breachcast.Investigating, breachcast.SeverityMinor,
		"<script>alert(3)</script>", t0)
	e.src.publish("text-fallback", "Renderer fails", breachcast.Investigating, breachcast.SeverityMinor, "RENDER-FAIL <b>bold</b>", t0)
	e.refresh()
	for _, p := range []string{"/", "/incidents/xss", "/history", "/history.atom", "/history.rss", "/api/v2/summary.json"} {
		_, body := e.get(p)
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>bold</b>"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains live markup %q", p, bad)
			}
		}
	}
	_, body := e.get("/incidents/text-fallback")
	if !strings.Contains(body, "RENDER-FAIL &lt;b&gt;bold&lt;/b&gt;") {
		t.Error("a body the renderer refused is not shown as escaped text")
	}
}

func TestUnsafeSlugsAreNotServed(t *testing.T) {
	e := newEnv(t, nil)
	e.src.publish("../../etc", "Traversal", breachcast.Investigating, breachcast.SeverityMinor, "x", t0)
	e.src.publish("ok", "Fine", breachcast.Investigating, breachcast.SeverityMinor, "y", t0)
	e.refresh()
	_, body := e.get("/")
	if strings.Contains(body, "Traversal") || !strings.Contains(body, "Fine") {
		t.Fatal("an incident with an unsafe slug was shown, or a safe one was not")
	}
}

func TestConditionalRequestsAndGzip(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	resp, plain := e.get("/")
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if !regexp.MustCompile(`^"[0-9a-f]+"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a strong validator", etag)
	}
	if lm == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "stale-while-revalidate") || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("headers: Last-Modified %q Cache-Control %q Vary %q", lm, resp.Header.Get("Cache-Control"), resp.Header.Get("Vary"))
	}

	gz, zbody := e.get("/", "Accept-Encoding", "br;q=1, gzip;q=0.8")
	if gz.Header.Get("Content-Encoding") != "gzip" || gz.Header.Get("ETag") == etag {
		t.Fatalf("gzip variant: Content-Encoding %q ETag %q (identity %q)", gz.Header.Get("Content-Encoding"), gz.Header.Get("ETag"), etag)
	}
	zr, err := gzip.NewReader(strings.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	unz, _ := io.ReadAll(zr)
	if string(unz) != plain {
		t.Fatal("the gzip variant does not decode to the identity body")
	}
	if r, _ := e.get("/", "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still got gzip")
	}

	tests := []struct {
		name string
		hdr  []string
		want int
	}{
		{"matching etag", []string{"If-None-Match", etag}, 304},
		{"weak form of the etag", []string{"If-None-Match", "W/" + etag}, 304},
		{"etag in a list", []string{"If-None-Match", `"nope", ` + etag}, 304},
		{"star", []string{"If-None-Match", "*"}, 304},
		{"other etag", []string{"If-None-Match", `"nope"`}, 200},
		{"etag wins over date", []string{"If-None-Match", `"nope"`, "If-Modified-Since", lm}, 200},
		{"not modified since", []string{"If-Modified-Since", lm}, 304},
		{"modified since", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
		{"garbage date", []string{"If-Modified-Since", "yesterday-ish"}, 200},
		{"garbage etag", []string{"If-None-Match", "\"unterminated, ,,, W/"}, 200},
		{"huge garbage", []string{"If-None-Match", strings.Repeat("x,", 4000)}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get("/", tt.hdr...)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 304 && body != "" {
				t.Fatal("304 with a body")
			}
		})
	}

	// A publish changes the validators.
	e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Monitoring, breachcast.SeverityCritical, "Fix deployed.", t0.Add(2*time.Hour))
	e.refresh()
	if r, _ := e.get("/", "If-None-Match", etag); r.StatusCode != 200 {
		t.Fatalf("after a publish the old ETag still gives %d", r.StatusCode)
	}
}

func TestStaticAssetsAreFingerprintedAndCachedForAYear(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	_, index := e.get("/")
	for _, re := range []string{`href="(/static/app\.[0-9a-f]{10}\.css)"`, `src="(/static/app\.[0-9a-f]{10}\.js)"`} {
		m := regexp.MustCompile(re).FindStringSubmatch(index)
		if m == nil {
			t.Fatalf("no fingerprinted asset matching %s", re)
		}
		resp, body := e.get(m[1])
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || body == "" {
			t.Errorf("%s: %d Cache-Control %q", m[1], resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
}

func TestNoInlineScriptOrStyle(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for _, p := range []string{"/", "/history", "/incidents/breach-2026", "/nope"} {
		_, body := e.get(p)
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|style="|\son[a-z]+=`).MatchString(body) {
			t.Errorf("%s has inline script or style, which the CSP blocks", p)
		}
	}
}

func TestRunPicksUpPublishesFromAnotherProcessAndSurvivesSourceFailures(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, "first load", 2*time.Second, func() bool { r, _ := e.get("/"); return r.StatusCode == 200 })

	e.src.publish("late", "Published elsewhere", breachcast.Investigating, breachcast.SeverityMinor, "hello", t0)
	waitFor(t, "the publish to show", time.Second, func() bool { _, b := e.get("/"); return strings.Contains(b, "Published elsewhere") })

	e.src.setFail(errors.New("database is locked"))
	e.src.mu.Lock()
	calls := e.src.calls
	e.src.mu.Unlock()
	waitFor(t, "a few failed polls", time.Second, func() bool {
		e.src.mu.Lock()
		defer e.src.mu.Unlock()
		return e.src.version > 0 && e.src.calls >= calls
	})
	if r, b := e.get("/"); r.StatusCode != 200 || !strings.Contains(b, "Published elsewhere") {
		t.Fatalf("while the source fails the last snapshot must stay served: %d", r.StatusCode)
	}
	e.src.setFail(nil)
	e.src.publish("late", "Published elsewhere", breachcast.Resolved, breachcast.SeverityMinor, "bye", t0.Add(time.Minute))
	waitFor(t, "recovery", time.Second, func() bool { _, b := e.get("/incidents/late"); return strings.Contains(b, "bye") })
}

func TestBasePathFromPublicURL(t *testing.T) {
	src := &fakeSource{}
	src.publish("x", "Prefixed", breachcast.Investigating, breachcast.SeverityMinor, "b", t0)
	srv, err := New(Config{PublicURL: "https://acme.test/status/"}, src, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status/incidents/x/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `href="/status/history/"`) || !strings.Contains(rec.Body.String(), `data-live="/status/live"`) {
		t.Fatalf("prefixed page: %d %.300s", rec.Code, rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), `action="/status/subscribe"`) {
		t.Error("subscriptions are off, yet the form is shown")
	}
}

func TestASnapshotIsRenderedOncePerPublishEvenWhenRefreshAndThePollBothSeeIt(t *testing.T) {
	e := newEnv(t, nil)
	e.src.publish("breach-2026", "Unauthorised access", breachcast.Investigating, breachcast.SeverityMajor, "We are looking.", t0)
	if err := e.srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Run's first poll sees the same version an in-process Refresh already
	// rendered, and a second Refresh comes in for the same publish.
	if err := e.srv.refreshIfChanged(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.src.mu.Lock()
	calls := e.src.calls
	e.src.mu.Unlock()
	if calls != 1 {
		t.Fatalf("the site was read and rendered %d times for one publish", calls)
	}
}
