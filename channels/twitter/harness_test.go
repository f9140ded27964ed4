package twitter

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast/emulators/xemu"
	"github.com/breachcast/breachcast/internal/conformance"
	"github.com/breachcast/breachcast/internal/testclock"
)

// Credentials of the tests; distinctive so a leak is easy to spot.
const (
	testConsumerKey    = "ck-3f9a1c"
	testConsumerSecret = "cs-SECRET-7d2e8b"
	testAccessToken    = "1500000000000000001-at-51c0de"
	testAccessSecret   = "as-SECRET-9e4f20"
)

// clock is the tests' settable clock.
type clock = testclock.Clock

// safeBuffer collects log output from concurrent writers.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is the emulator on loopback, checking every request against the
// official X spec, with a clock the test moves.
type harness struct {
	t     *testing.T
	clock *clock
	emu   *xemu.Server
	url   string
	logs  *safeBuffer
}

func newHarness(t *testing.T, o xemu.Options) *harness {
	t.Helper()
	validate := conformance.RequestValidator(t, conformance.XSpec)
	h := &harness{t: t, clock: testclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), logs: &safeBuffer{}}
	o.ConsumerKey, o.ConsumerSecret = testConsumerKey, testConsumerSecret
	o.AccessToken, o.AccessSecret = testAccessToken, testAccessSecret
	o.Validator = validate
	o.Now = h.clock.Now
	h.emu = xemu.New(o)
	u, err := h.emu.Start()
	if err != nil {
		t.Fatal(err)
	}
	h.url = u
	t.Cleanup(func() {
		_ = h.emu.Close()
		for _, err := range h.emu.ValidationErrors() {
			t.Errorf("request does not conform to the X spec: %v", err)
		}
		secrets := []string{testConsumerSecret, testAccessSecret, testAccessToken, testConsumerKey}
		for _, r := range h.emu.Requests() {
			for _, s := range secrets {
				if strings.Contains(r.Path+"?"+r.Query, s) {
					t.Errorf("a credential travelled in a URL: %s %s", r.Method, r.Path)
				}
			}
		}
		for _, s := range secrets[:3] {
			if strings.Contains(h.logs.String(), s) {
				t.Errorf("a credential was logged:\n%s", h.logs.String())
			}
		}
	})
	return h
}

// client returns a new Client for the emulator, as after a restart.
func (h *harness) client(mod ...func(*Config)) *Client {
	h.t.Helper()
	cfg := Config{
		BaseURL:        h.url,
		ConsumerKey:    testConsumerKey,
		ConsumerSecret: testConsumerSecret,
		AccessToken:    testAccessToken,
		AccessSecret:   testAccessSecret,
		Now:            h.clock.Now,
		Logger:         slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// count is how many requests reached endpoint.
func (h *harness) count(endpoint string) int {
	n := 0
	for _, r := range h.emu.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// requests are the requests that reached endpoint.
func (h *harness) requests(endpoint string) []xemu.Request {
	var out []xemu.Request
	for _, r := range h.emu.Requests() {
		if r.Endpoint == endpoint {
			out = append(out, r)
		}
	}
	return out
}
