package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast/emulators/fbemu"
	"github.com/breachcast/breachcast/emulators/sgemu"
	"github.com/breachcast/breachcast/emulators/xemu"
	"github.com/breachcast/breachcast/internal/conformance"
)

// rig is a breachcast installation for a test: a fresh database and the three
// provider emulators on loopback, every request checked against the official
// specs where they exist.
type rig struct {
	t   *testing.T
	dir string
	env map[string]string
	sg  *sgemu.Server
	x   *xemu.Server
	fb  *fbemu.Server
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir()}
	// Every request is checked against the providers' official specs when
	// the shared conformance data is there; the end-to-end tests run either way.
	r.sg = sgemu.New(sgemu.Options{Keys: map[string][]string{"SG.test-key": nil},
		Validator: conformance.RequestValidator(t, conformance.SendGridMailSpec)})
	r.x = xemu.New(xemu.Options{Validator: conformance.RequestValidator(t, conformance.XSpec)})
	r.fb = fbemu.New(fbemu.Options{})
	sgURL, err := r.sg.Start()
	if err != nil {
		t.Fatal(err)
	}
	xURL, err := r.x.Start()
	if err != nil {
		t.Fatal(err)
	}
	fbURL, err := r.fb.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.sg.Close()
		r.x.Close()
		r.fb.Close()
		if errs := r.sg.ConformanceFailures(); len(errs) > 0 {
			t.Errorf("requests that do not conform to SendGrid's spec: %v", errs)
		}
		if errs := r.x.ValidationErrors(); len(errs) > 0 {
			t.Errorf("requests that do not conform to X's spec: %v", errs)
		}
	})
	r.env = map[string]string{
		"BREACHCAST_DB":                      filepath.Join(r.dir, "breachcast.db"),
		"BREACHCAST_PUBLIC_URL":              "https://status.acme.example",
		"BREACHCAST_COMPANY":                 "Acme",
		"BREACHCAST_ACTOR":                   "tester",
		"BREACHCAST_LOG_LEVEL":               "error",
		"BREACHCAST_SENDGRID_API_KEY":        "SG.test-key",
		"BREACHCAST_SENDGRID_BASE_URL":       sgURL,
		"BREACHCAST_SENDGRID_FROM_EMAIL":     "security@acme.example",
		"BREACHCAST_SENDGRID_FROM_NAME":      "Acme Security",
		"BREACHCAST_SENDGRID_INBOUND_DOMAIN": "reply.acme.example",
		"BREACHCAST_X_BASE_URL":              xURL,
		"BREACHCAST_X_CONSUMER_KEY":          xemu.DefaultConsumerKey,
		"BREACHCAST_X_CONSUMER_SECRET":       xemu.DefaultConsumerSecret,
		"BREACHCAST_X_ACCESS_TOKEN":          xemu.DefaultAccessToken,
		"BREACHCAST_X_ACCESS_SECRET":         xemu.DefaultAccessSecret,
		"BREACHCAST_FACEBOOK_BASE_URL":       fbURL,
		"BREACHCAST_FACEBOOK_APP_ID":         fbemu.DefaultAppID,
		"BREACHCAST_FACEBOOK_APP_SECRET":     fbemu.DefaultAppSecret,
		"BREACHCAST_FACEBOOK_PAGE_ID":        fbemu.DefaultPageID,
		"BREACHCAST_FACEBOOK_PAGE_TOKEN":     fbemu.DefaultPageToken,
		"BREACHCAST_FACEBOOK_VERIFY_TOKEN":   "verify-me",
		"BREACHCAST_HTTP_ADDR":               "127.0.0.1:0",
		"BREACHCAST_WORKER_LEASE":            "2s",
		"BREACHCAST_SENDGRID_BATCH_SIZE":     "100",
		"BREACHCAST_SENDGRID_CONCURRENCY":    "4",
		"BREACHCAST_STATUS_SECRET_KEY":       strings.Repeat("k", 32),
		"BREACHCAST_WORKER_MAX_ATTEMPTS":     "3",
		"BREACHCAST_STATUS_COMPONENTS":       "Website,API",
	}
	return r
}

func (r *rig) getenv(k string) string { return r.env[k] }

// environ is the rig's settings as a process environment, for subprocesses.
func (r *rig) environ() []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.dir}
	for k, v := range r.env {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// cli runs the breachcast command in-process and returns its output and exit
// status.
func (r *rig) cli(args ...string) (stdout, stderr string, code int) {
	return r.cliCtx(context.Background(), args...)
}

func (r *rig) cliCtx(ctx context.Context, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb, r.getenv)
	return out.String(), errb.String(), code
}

// must runs the command and fails the test unless it exits 0.
func (r *rig) must(args ...string) string {
	r.t.Helper()
	out, errb, code := r.cli(args...)
	if code != 0 {
		r.t.Fatalf("breachcast %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errb)
	}
	return out
}

// write creates a file in the rig's directory.
func (r *rig) write(name, content string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// customers writes a CSV of n customers and imports it.
func (r *rig) customers(n int) {
	r.t.Helper()
	var b strings.Builder
	b.WriteString("email,name,locale,plan\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "customer%d@example.com,Customer %d,en,pro\n", i, i)
	}
	r.must("recipients", "import", r.write("customers.csv", b.String()))
}

func noticeText(slug, status, channels, body string) string {
	return fmt.Sprintf("---\nincident: %s\ntitle: Unauthorized access to customer data\nstatus: %s\nseverity: critical\nchannels: %s\n---\n%s\n",
		slug, status, channels, body)
}

const breachBody = `{{if .Recipient.Email}}Hi {{.Recipient.NameOr "there"}},{{end}}

Earlier today we found that someone reached a database holding customer **names and email addresses**. We cut off the access within the hour.

Passwords and payment details are not affected. Reply to this email with any question: we answer every one.`

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the breachcast command once per test run, for tests that
// need a real process (SIGKILL).
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "breachcast-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "breachcast")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
