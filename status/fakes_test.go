package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/internal/testclock"
)

// fakeSource is an in-memory Source. Publish appends an update the way the
// store will: the incident takes the update's title, status and severity.
type fakeSource struct {
	mu        sync.Mutex
	incidents []*breachcast.Incident
	version   int64
	nextID    int64
	fail      error
	calls     int
}

func (f *fakeSource) PublicIncidents(ctx context.Context) ([]*breachcast.Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	out := make([]*breachcast.Incident, 0, len(f.incidents))
	for _, inc := range f.incidents {
		c := *inc
		c.Updates = slices.Clone(inc.Updates)
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *breachcast.Incident) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}

func (f *fakeSource) PublicVersion(ctx context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	return f.version, nil
}

func (f *fakeSource) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// publish adds an update to incident slug at time at and returns it.
func (f *fakeSource) publish(slug, title string, st breachcast.Status, sev breachcast.Severity, body string, at time.Time) *breachcast.Update {
	f.mu.Lock()
	defer f.mu.Unlock()
	var inc *breachcast.Incident
	for _, i := range f.incidents {
		if i.Slug == slug {
			inc = i
		}
	}
	if inc == nil {
		inc = &breachcast.Incident{ID: int64(len(f.incidents) + 1), Slug: slug, CreatedAt: at}
		f.incidents = append(f.incidents, inc)
	}
	f.nextID++
	u := &breachcast.Update{
		ID: f.nextID, IncidentID: inc.ID, Incident: slug, Seq: len(inc.Updates) + 1, Title: title, Status: st,
		Severity: sev, Audience: "all", Channels: []string{"status"}, Body: body, PublishedAt: at,
	}
	inc.Updates = append(inc.Updates, u)
	inc.Title, inc.Status, inc.Severity, inc.UpdatedAt = title, st, sev, at
	if st == breachcast.Resolved {
		inc.ResolvedAt = at
	}
	f.version = f.nextID
	return u
}

// fakeSubs is an in-memory Subscribers.
type fakeSubs struct {
	mu   sync.Mutex
	next int64
	byID map[int64]*breachcast.Subscriber
}

func newFakeSubs() *fakeSubs { return &fakeSubs{byID: map[int64]*breachcast.Subscriber{}} }

func (f *fakeSubs) AddSubscriber(ctx context.Context, email, incident string, now time.Time) (*breachcast.Subscriber, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.byID {
		if s.Email == email && s.Incident == incident {
			c := *s
			return &c, nil
		}
	}
	f.next++
	s := &breachcast.Subscriber{ID: f.next, Email: email, Incident: incident, CreatedAt: now}
	f.byID[s.ID] = s
	c := *s
	return &c, nil
}

func (f *fakeSubs) Subscriber(ctx context.Context, id int64) (*breachcast.Subscriber, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byID[id]
	if !ok {
		return nil, breachcast.Errorf(breachcast.ENOTFOUND, "subscriber %d not found", id)
	}
	c := *s
	return &c, nil
}

func (f *fakeSubs) ConfirmSubscriber(ctx context.Context, id int64, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byID[id]
	if !ok {
		return breachcast.Errorf(breachcast.ENOTFOUND, "subscriber %d not found", id)
	}
	if s.ConfirmedAt.IsZero() {
		s.ConfirmedAt = now
	}
	return nil
}

func (f *fakeSubs) Unsubscribe(ctx context.Context, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byID, id)
	return nil
}

func (f *fakeSubs) ConfirmedSubscribers(ctx context.Context, incident string) ([]*breachcast.Subscriber, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*breachcast.Subscriber
	for _, s := range f.byID {
		if s.Confirmed() && (s.Incident == "" || s.Incident == incident) {
			c := *s
			out = append(out, &c)
		}
	}
	return out, nil
}

// fakeMailer records batches.
type fakeMailer struct {
	mu      sync.Mutex
	batches []*channels.EmailBatch
	fail    error
}

func (m *fakeMailer) SendBatch(ctx context.Context, b *channels.EmailBatch) (*channels.BatchReceipt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.batches = append(m.batches, b)
	return &channels.BatchReceipt{ProviderID: fmt.Sprint(len(m.batches))}, nil
}

func (m *fakeMailer) sent() []*channels.EmailBatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.batches)
}

// clock is the tests' settable clock.
type clock = testclock.Clock

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// env is a status server on a loopback httptest server.
type env struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	src   *fakeSource
	subs  *fakeSubs
	mail  *fakeMailer
	clock *clock
	url   string
}

// fakeRender stands in for templates.Renderer.StatusHTML: the body as a
// paragraph, escaped (the real renderer sanitises markdown).
func fakeRender(n *breachcast.Notice) (string, error) {
	if strings.Contains(n.Body, "RENDER-FAIL") {
		return "", errors.New("renderer exploded")
	}
	return "<p>" + htmlEscape(n.Body) + "</p>", nil
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")
	return r.Replace(s)
}

func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	e := &env{t: t, src: &fakeSource{}, subs: newFakeSubs(), mail: &fakeMailer{}, clock: testclock.New(t0.Add(time.Hour))}
	e.ts = httptest.NewUnstartedServer(nil)
	e.url = "http://" + e.ts.Listener.Addr().String()
	cfg := Config{
		PublicURL: e.url, Company: "Acme", Components: []string{"Website", "API"},
		Secret: []byte("0123456789abcdef0123456789abcdef"), MailFrom: "status@acme.test", MailFromName: "Acme Status",
		Now: e.clock.Now, PollInterval: 10 * time.Millisecond, PingInterval: time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg, e.src, e.subs, e.mail, fakeRender, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	e.ts.Config.Handler = srv.Handler()
	e.ts.Start()
	t.Cleanup(func() {
		srv.Close()
		e.ts.Close()
	})
	return e
}

// seed publishes a realistic incident history: an open breach with four
// updates and an older resolved incident.
func (e *env) seed() {
	e.src.publish("db-outage", "Database outage", breachcast.Investigating, breachcast.SeverityMajor, "The database is down.", t0.Add(-48*time.Hour))
	e.src.publish("db-outage", "Database outage", breachcast.Resolved, breachcast.SeverityMajor, "Fixed.", t0.Add(-47*time.Hour))
	e.src.publish("breach-2026", "Unauthorised access to customer data", breachcast.Investigating, breachcast.SeverityMajor, "We are investigating unauthorised access.", t0)
	e.src.publish("breach-2026", "Unauthorised access to customer data", breachcast.Identified, breachcast.SeverityMajor, "We found the cause.", t0.Add(30*time.Minute))
	e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Identified, breachcast.SeverityCritical, "Email addresses were exposed.", t0.Add(60*time.Minute))
	e.refresh()
}

func (e *env) refresh() {
	e.t.Helper()
	if err := e.srv.Refresh(context.Background()); err != nil {
		e.t.Fatalf("Refresh: %v", err)
	}
}

// get fetches path with optional request headers and returns the response
// and its body.
func (e *env) get(path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read %s: %v", path, err)
	}
	return resp, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}
