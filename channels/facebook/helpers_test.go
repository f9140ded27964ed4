package facebook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/fbemu"
	"github.com/breachcast/breachcast/internal/conformance"
	"github.com/breachcast/breachcast/internal/testclock"
)

// Test identities. The token and secret are distinctive so a leak is easy
// to spot in any URL, log line or error message.
const (
	testAppID     = "700000000000007"
	testAppSecret = "test-app-secret-SECRETSECRET"
	testPageID    = "555000555"
	testPageToken = "EAATESTPAGETOKENSECRET"
	testVerify    = "verify-me-please"
)

// day is the test clock: a Monday, 24 Nov 2025, 09:00 UTC.
var day = time.Date(2025, 11, 24, 9, 0, 0, 0, time.UTC)

// clock is the tests' settable clock.
type clock = testclock.Clock

// env is a Graph emulator on loopback and a Client pointed at it.
type env struct {
	emu    *fbemu.Server
	url    string
	clock  *clock
	client *Client
	logs   *bytes.Buffer
}

var (
	specOnce sync.Once
	spec     *fbemu.Spec
	specErr  error
)

// graphSpec loads Meta's Graph API spec once for all tests.
func graphSpec(t *testing.T) *fbemu.Spec {
	t.Helper()
	dir := conformance.OptionalPath(t, "facebook/graph_api_specs")
	if dir == "" {
		return nil // the emulator then accepts only the parameters it implements
	}
	specOnce.Do(func() { spec, specErr = fbemu.LoadSpec(dir) })
	if specErr != nil {
		t.Fatal(specErr)
	}
	return spec
}

func newEnv(t *testing.T, cfg func(*Config), opts func(*fbemu.Options)) *env {
	t.Helper()
	clk := testclock.New(day)
	o := fbemu.Options{
		AppID: testAppID, AppSecret: testAppSecret, PageID: testPageID, PageName: "Acme Support",
		PageToken: testPageToken, Now: clk.Now,
		Spec: graphSpec(t),
	}
	if opts != nil {
		opts(&o)
	}
	emu := fbemu.New(o)
	u, err := emu.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	e := &env{emu: emu, url: u, clock: clk, logs: &bytes.Buffer{}}
	e.client = e.newClient(t, cfg)
	return e
}

// newClient makes another Client on the same emulator (a restart).
func (e *env) newClient(t *testing.T, cfg func(*Config)) *Client {
	t.Helper()
	c := Config{
		BaseURL: e.url, AppID: testAppID, AppSecret: testAppSecret, PageID: testPageID,
		PageToken: testPageToken, VerifyToken: testVerify, Now: e.clock.Now,
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Logger:     slog.New(slog.NewTextHandler(&lockedWriter{buf: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if cfg != nil {
		cfg(&c)
	}
	cl, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// assertNoSecretsLeaked checks every URL the emulator saw, and the logs,
// for the token and the app secret.
func (e *env) assertNoSecretsLeaked(t *testing.T) {
	t.Helper()
	reqs := e.emu.Requests()
	if len(reqs) == 0 {
		t.Fatal("the emulator saw no requests")
	}
	for _, r := range reqs {
		for _, secret := range []string{testPageToken, testAppSecret} {
			if strings.Contains(r.URL, secret) {
				t.Errorf("%s %s: secret in the URL", r.Method, r.URL)
			}
		}
		if r.TokenSource != "header" {
			t.Errorf("%s %s: token came from %q, want the Authorization header", r.Method, r.Path, r.TokenSource)
		}
		if strings.Contains(r.URL, "access_token") || strings.Contains(r.URL, "input_token") {
			t.Errorf("%s %s: token parameter in the URL", r.Method, r.URL)
		}
	}
	w := e.logs.String()
	if strings.Contains(w, testPageToken) || strings.Contains(w, testAppSecret) {
		t.Errorf("a secret reached the logs:\n%s", w)
	}
}

// lastRequest returns the last request the emulator saw.
func (e *env) lastRequest(t *testing.T) fbemu.Request {
	t.Helper()
	reqs := e.emu.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request")
	}
	return reqs[len(reqs)-1]
}

// memSink is an idempotent sink like the inbox: one copy per comment, older
// edits ignored.
type memSink struct {
	mu      sync.Mutex
	byID    map[string]breachcast.Reply
	ingests int
	fail    error
}

func newSink() *memSink { return &memSink{byID: map[string]breachcast.Reply{}} }

func (s *memSink) Ingest(_ context.Context, r *breachcast.Reply) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.ingests++
	key := r.Channel + "/" + r.ExternalID
	if old, ok := s.byID[key]; ok && r.EventTime.Before(old.EventTime) {
		return nil
	}
	s.byID[key] = *r
	return nil
}

func (s *memSink) get(id string) (breachcast.Reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[Name+"/"+id]
	return r, ok
}

func (s *memSink) count() (stored, ingests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID), s.ingests
}

// asChannelError unwraps err into a *channels.Error or fails the test.
func asChannelError(t *testing.T, err error) *channels.Error {
	t.Helper()
	var ce *channels.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *channels.Error", err, err)
	}
	if ce.Channel != Name {
		t.Errorf("Channel = %q, want %q", ce.Channel, Name)
	}
	return ce
}

// post sends body to h with the given signature header and returns the
// response.
func post(h http.Handler, body []byte, sig string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/facebook", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if sig != "" {
		r.Header.Set("X-Hub-Signature-256", sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newTestLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{buf: buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
