package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/status"
)

// demoSource is a realistic breach: one incident with ten updates over a
// day, and three older resolved incidents. Timestamps are fixed so every run
// (and the static export) renders byte-identical pages.
type demoSource struct {
	mu        sync.Mutex
	incidents []*breachcast.Incident
	nextID    int64
}

var demoStart = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

var demoUpdates = []struct {
	status breachcast.Status
	sev    breachcast.Severity
	title  string
	body   string
}{
	{breachcast.Investigating, breachcast.SeverityMajor, "Unauthorised access to customer data", "We are investigating reports of unauthorised access to our customer database. As a precaution we have reset all API tokens. We will post an update within the hour."},
	{breachcast.Investigating, breachcast.SeverityMajor, "Unauthorised access to customer data", "Our security team has confirmed unusual queries against the customer database between 02:10 and 04:45 UTC. We have engaged an external incident response firm."},
	{breachcast.Identified, breachcast.SeverityMajor, "Unauthorised access to customer data", "We have identified the cause: a leaked credential for a legacy reporting service. The credential has been revoked and the service shut down."},
	{breachcast.Identified, breachcast.SeverityCritical, "Customer email addresses and hashed passwords exposed", "The attacker was able to read email addresses, names and bcrypt password hashes. Payment data is stored separately and was not accessed. Please change your password and enable two-factor authentication."},
	{breachcast.Identified, breachcast.SeverityCritical, "Customer email addresses and hashed passwords exposed", "We are emailing every affected customer directly. Be wary of phishing: we will never ask for your password by email, phone or social media."},
	{breachcast.Identified, breachcast.SeverityCritical, "Customer email addresses and hashed passwords exposed", "Password resets are now forced for all accounts at next sign-in. Sessions older than 24 hours have been ended."},
	{breachcast.Monitoring, breachcast.SeverityCritical, "Customer email addresses and hashed passwords exposed", "All known access paths are closed and additional monitoring is in place. We continue to watch for any sign of further activity."},
	{breachcast.Monitoring, breachcast.SeverityMajor, "Customer email addresses and hashed passwords exposed", "We have notified the relevant data protection authorities. A detailed FAQ is available in our help centre."},
	{breachcast.Monitoring, breachcast.SeverityMajor, "Customer email addresses and hashed passwords exposed", "No further suspicious activity has been observed in the last 12 hours. Forced password resets are 64% complete."},
	{breachcast.Monitoring, breachcast.SeverityMajor, "Customer email addresses and hashed passwords exposed", "The external investigation has confirmed the scope described above. We will publish a full post-incident report within 14 days."},
}

func newDemoSource() *demoSource {
	s := &demoSource{}
	for i, slug := range []string{"api-latency-jan", "login-errors-feb", "email-delays-mar"} {
		at := demoStart.Add(-time.Duration(30*(3-i)) * 24 * time.Hour)
		s.add(slug, "Resolved incident "+slug, breachcast.Investigating, breachcast.SeverityMinor, "We are looking into it.", at)
		s.add(slug, "Resolved incident "+slug, breachcast.Resolved, breachcast.SeverityMinor, "This incident has been resolved.", at.Add(90*time.Minute))
	}
	for i, u := range demoUpdates {
		s.add("security-incident-2026-03", u.title, u.status, u.sev, u.body, demoStart.Add(time.Duration(i)*150*time.Minute))
	}
	return s
}

func (s *demoSource) add(slug, title string, st breachcast.Status, sev breachcast.Severity, body string, at time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var inc *breachcast.Incident
	for _, i := range s.incidents {
		if i.Slug == slug {
			inc = i
		}
	}
	if inc == nil {
		inc = &breachcast.Incident{ID: int64(len(s.incidents) + 1), Slug: slug, CreatedAt: at}
		s.incidents = append(s.incidents, inc)
	}
	s.nextID++
	inc.Updates = append(inc.Updates, &breachcast.Update{
		ID: s.nextID, IncidentID: inc.ID, Incident: slug, Seq: len(inc.Updates) + 1, Title: title, Status: st,
		Severity: sev, Audience: breachcast.AudienceAll, Channels: []string{breachcast.ChannelStatus}, Body: body, PublishedAt: at,
	})
	inc.Title, inc.Status, inc.Severity, inc.UpdatedAt = title, st, sev, at
	if st == breachcast.Resolved {
		inc.ResolvedAt = at
	}
	return s.nextID
}

func (s *demoSource) PublicIncidents(ctx context.Context) ([]*breachcast.Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*breachcast.Incident, 0, len(s.incidents))
	for _, i := range s.incidents {
		c := *i
		c.Updates = slices.Clone(i.Updates)
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *breachcast.Incident) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}

func (s *demoSource) PublicVersion(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextID, nil
}

// renderParagraphs stands in for the templates package's renderer: the demo
// bodies are plain text.
func renderParagraphs(n *breachcast.Notice) (string, error) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return "<p>" + r.Replace(n.Body) + "</p>", nil
}

func demoServer(publicURL string, shards int) (*status.Server, *demoSource, error) {
	src := newDemoSource()
	srv, err := status.New(status.Config{
		PublicURL: publicURL, Company: "Acme", Components: []string{"Website", "API", "Mobile apps"},
		MaxConnections: 19900, MaxPerAddress: 19900, Shards: shards,
		Now: func() time.Time { return demoStart.Add(48 * time.Hour) },
	}, src, nil, nil, renderParagraphs, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	return srv, src, err
}

func exportDemo(ctx context.Context, dir string) error {
	srv, _, err := demoServer("http://127.0.0.1/", 1)
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Export(ctx, dir)
}

// serve runs the demo status server with two control endpoints:
// GET /_wsload/mem[?gc=1] reports memory, POST /_wsload/publish publishes
// one more update and returns its id.
func serve(ctx context.Context, o options, stdout io.Writer) error {
	var srv *status.Server
	var src *demoSource
	mux := http.NewServeMux()
	var handler http.Handler
	mux.HandleFunc("GET /_wsload/mem", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") != "" {
			runtime.GC()
			debug.FreeOSMemory()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		last, _ := src.PublicVersion(r.Context())
		json.NewEncoder(w).Encode(memReport{
			HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Sys: ms.Sys,
			Goroutines: runtime.NumGoroutine(), Viewers: srv.Viewers(), LastID: last, PID: os.Getpid(),
		})
	})
	var pubMu sync.Mutex
	n := 0
	mux.HandleFunc("POST /_wsload/publish", func(w http.ResponseWriter, r *http.Request) {
		pubMu.Lock()
		defer pubMu.Unlock()
		n++
		u := demoUpdates[n%len(demoUpdates)]
		id := src.add("security-incident-2026-03", u.title, breachcast.Monitoring, u.sev,
			fmt.Sprintf("Load test update %d. %s", n, u.body), demoStart.Add(48*time.Hour+time.Duration(n)*time.Minute))
		start := time.Now()
		if !o.viaPoll {
			if err := srv.Refresh(r.Context()); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		fmt.Fprintf(w, `{"id":%d,"refresh_us":%d}`, id, time.Since(start).Microseconds())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) })

	return listenAndServe(ctx, o.addr, mux, func(addr string) {
		var err error
		srv, src, err = demoServer("http://"+addr+"/", o.shards)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsload: ", err)
			os.Exit(1)
		}
		handler = srv.Handler()
		if err := srv.Refresh(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "wsload: ", err)
			os.Exit(1)
		}
		go srv.Run(ctx)
		fmt.Fprintf(stdout, "LISTENING %s %d\n", addr, os.Getpid())
	})
}
