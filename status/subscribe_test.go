package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
)

// post sends a form from the page's own origin (as a browser would).
func (e *env) post(path string, form url.Values, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+`)

func TestSubscribeWithDoubleOptInAndOneClickUnsubscribe(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()

	resp, body := e.post("/subscribe", url.Values{"email": {" Alice@Example.COM "}, "incident": {"breach-2026"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Check your inbox") {
		t.Fatalf("subscribe: %d %.300s", resp.StatusCode, body)
	}
	sent := e.mail.sent()
	if len(sent) != 1 || len(sent[0].Recipients) != 1 || sent[0].Recipients[0].Email != "alice@example.com" {
		t.Fatalf("confirmation mail: %+v", sent)
	}
	b := sent[0]
	if b.FromEmail != "status@acme.test" || !strings.Contains(b.Subject, "Confirm") || !strings.Contains(b.Text, "Customer email addresses exposed") {
		t.Errorf("confirmation mail: from %q subject %q text %q", b.FromEmail, b.Subject, b.Text)
	}
	link := linkRE.FindString(b.Text)
	if !strings.HasPrefix(link, e.url+"/subscribe/confirm?token=") || !strings.Contains(b.HTML, link) {
		t.Fatalf("confirmation link %q (HTML has it: %v)", link, strings.Contains(b.HTML, link))
	}
	if subs, _ := e.subs.ConfirmedSubscribers(context.Background(), "breach-2026"); len(subs) != 0 {
		t.Fatal("subscribed before confirming")
	}

	// GET (what a mail scanner does) only shows a button.
	resp, body = e.get(strings.TrimPrefix(link, e.url))
	if resp.StatusCode != 200 || !strings.Contains(body, "Confirm subscription</button>") {
		t.Fatalf("confirm page: %d", resp.StatusCode)
	}
	if subs, _ := e.subs.ConfirmedSubscribers(context.Background(), "breach-2026"); len(subs) != 0 {
		t.Fatal("a GET confirmed the subscription")
	}
	tok := strings.TrimPrefix(link, e.url+"/subscribe/confirm?token=")
	resp, body = e.post("/subscribe/confirm", url.Values{"token": {tok}})
	if resp.StatusCode != 200 || !strings.Contains(body, "You are subscribed") {
		t.Fatalf("confirm: %d %.300s", resp.StatusCode, body)
	}
	subs, _ := e.subs.ConfirmedSubscribers(context.Background(), "breach-2026")
	if len(subs) != 1 {
		t.Fatalf("confirmed subscribers = %d", len(subs))
	}

	// The fan-out engine builds the headers for every email.
	un, err := e.srv.Unsubscribe(subs[0])
	if err != nil {
		t.Fatal(err)
	}
	if un.Headers["List-Unsubscribe"] != "<"+un.URL+">" || un.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" ||
		!strings.HasPrefix(un.URL, e.url+"/unsubscribe?token=") {
		t.Fatalf("unsubscribe = %+v", un)
	}
	// GET shows a button and changes nothing.
	if resp, body := e.get(strings.TrimPrefix(un.URL, e.url)); resp.StatusCode != 200 || !strings.Contains(body, "Unsubscribe</button>") {
		t.Fatalf("unsubscribe page: %d", resp.StatusCode)
	}
	// RFC 8058: a mail provider's server POSTs to the URL, no cookie, no origin.
	req, _ := http.NewRequest("POST", un.URL, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("one-click unsubscribe: %d", r.StatusCode)
	}
	if subs, _ := e.subs.ConfirmedSubscribers(context.Background(), "breach-2026"); len(subs) != 0 {
		t.Fatal("still subscribed after one-click unsubscribe")
	}
	// Again: still fine (idempotent).
	if r, _ := e.post(strings.TrimPrefix(un.URL, e.url), url.Values{"List-Unsubscribe": {"One-Click"}}); r.StatusCode != 200 {
		t.Fatalf("second unsubscribe: %d", r.StatusCode)
	}
}

func TestSubscribingAgainRevealsNothingAndSendsNoMailOnceConfirmed(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	sub, _ := e.subs.AddSubscriber(context.Background(), "bob@example.com", "", e.clock.Now())
	e.subs.ConfirmSubscriber(context.Background(), sub.ID, e.clock.Now())
	_, fresh := e.post("/subscribe", url.Values{"email": {"new@example.com"}})
	_, again := e.post("/subscribe", url.Values{"email": {"bob@example.com"}})
	if !strings.Contains(again, "Check your inbox") || strings.Count(fresh, "Check your inbox") != strings.Count(again, "Check your inbox") {
		t.Fatal("the answer differs for an address that is already subscribed")
	}
	if n := len(e.mail.sent()); n != 1 {
		t.Fatalf("%d mails sent, want 1 (none to the confirmed address)", n)
	}
}

func TestSubscribeRefusesInvalidEmailsWithAClearMessage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SubscribeBurst = 100 })
	e.seed()
	tests := []struct{ email, want string }{
		{"", "Enter your email address."},
		{"not-an-email", "Enter an email address like name@example.com."},
		{"a@b", "Enter an email address like name@example.com."},
		{"Alice <alice@example.com>", "Enter an email address like name@example.com."},
		{"alice@example.com, bob@example.com", "Enter an email address like name@example.com."},
		{"alice@exa mple.com", "Enter an email address like name@example.com."},
		{"<script>@x.com", "Enter an email address like name@example.com."},
		{strings.Repeat("a", 250) + "@x.com", "That email address is too long."},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			resp, body := e.post("/subscribe", url.Values{"email": {tt.email}})
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tt.want) || !strings.Contains(body, `aria-invalid="true"`) {
				t.Fatalf("%d, want 400 with %q: %.400s", resp.StatusCode, tt.want, body)
			}
			if strings.Contains(body, "<script>@") {
				t.Fatal("the typed address is echoed unescaped")
			}
		})
	}
	if resp, body := e.post("/subscribe", url.Values{"email": {"a@example.com"}, "incident": {"no-such"}}); resp.StatusCode != 400 || !strings.Contains(body, "no incident") {
		t.Fatalf("unknown incident: %d", resp.StatusCode)
	}
	if n := len(e.mail.sent()); n != 0 {
		t.Fatalf("%d mails sent for invalid requests", n)
	}
}

func TestSubscribeRefusesCrossSiteForms(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for _, hdr := range [][]string{
		{"Origin", "https://evil.test", "Sec-Fetch-Site", ""},
		{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.test"},
	} {
		resp, body := e.post("/subscribe", url.Values{"email": {"a@example.com"}}, hdr...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "another website") {
			t.Fatalf("%v: %d", hdr, resp.StatusCode)
		}
	}
	if n := len(e.mail.sent()); n != 0 {
		t.Fatalf("cross-site forms sent %d mails", n)
	}
}

func TestSubscribeFloodIsAnswered429WithBoundedMemory(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SubscribeBurst = 3 })
	e.seed()
	codes := map[int]int{}
	for i := range 50 {
		resp, _ := e.post("/subscribe", url.Values{"email": {fmt.Sprintf("u%d@example.com", i)}})
		codes[resp.StatusCode]++
	}
	if codes[200] != 3 || codes[429] != 47 {
		t.Fatalf("flood outcomes %v, want 3 accepted and 47 answered 429", codes)
	}
	// The bucket refills with time.
	e.clock.Advance(time.Minute)
	if resp, _ := e.post("/subscribe", url.Values{"email": {"later@example.com"}}); resp.StatusCode != 200 {
		t.Fatalf("after a minute: %d", resp.StatusCode)
	}

	// Many addresses: the visitor map never exceeds its bound, and when it is
	// full of active addresses newcomers are refused.
	l := newLimiter(2, time.Minute, 100)
	now := t0
	refused := 0
	for i := range 10000 {
		if !l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now) {
			refused++
		}
		if l.size() > 100 {
			t.Fatalf("limiter grew to %d addresses", l.size())
		}
	}
	if refused != 9900 {
		t.Fatalf("refused %d newcomers, want 9900", refused)
	}
	// Once the buckets have refilled, the old addresses are forgotten.
	if !l.allow("192.0.2.1", now.Add(3*time.Minute)) {
		t.Fatal("a newcomer is refused although every tracked address is idle")
	}
}

func TestTokensAreSignedTypedAndExpire(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok := signToken(secret, purposeConfirm, 42, t0.Add(time.Hour))
	if id, err := verifyToken(secret, purposeConfirm, tok, t0); err != nil || id != 42 {
		t.Fatalf("valid token: %d %v", id, err)
	}
	tests := []struct {
		name string
		tok  string
		p    tokenPurpose
		now  time.Time
		want error
	}{
		{"expired", tok, purposeConfirm, t0.Add(2 * time.Hour), errTokenExpired},
		{"wrong purpose", tok, purposeUnsubscribe, t0, errTokenInvalid},
		{"other secret", signToken([]byte("another secret of 32 bytes......"), purposeConfirm, 42, t0.Add(time.Hour)), purposeConfirm, t0, errTokenInvalid},
		{"tampered", tok[:len(tok)-2] + "AA", purposeConfirm, t0, errTokenInvalid},
		{"truncated", tok[:10], purposeConfirm, t0, errTokenInvalid},
		{"garbage", "!!!", purposeConfirm, t0, errTokenInvalid},
		{"empty", "", purposeConfirm, t0, errTokenInvalid},
		{"huge", strings.Repeat("A", 5000), purposeConfirm, t0, errTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := verifyToken(secret, tt.p, tt.tok, tt.now); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}

	e := newEnv(t, nil)
	e.seed()
	exp := signToken(e.srv.cfg.Secret, purposeConfirm, 1, e.clock.Now().Add(-time.Second))
	if resp, body := e.get("/subscribe/confirm?token=" + exp); resp.StatusCode != http.StatusGone || !strings.Contains(body, "expired") {
		t.Fatalf("expired confirm link: %d", resp.StatusCode)
	}
	if resp, _ := e.post("/unsubscribe?token=bogus", url.Values{"List-Unsubscribe": {"One-Click"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bogus unsubscribe: %d", resp.StatusCode)
	}
	// An unsubscribe link minted for a deleted subscriber unsubscribes nobody
	// else: ids are never reused.
	if _, err := UnsubscribeLink("not a url", e.srv.cfg.Secret, 1, t0, time.Hour); err == nil {
		t.Fatal("UnsubscribeLink accepted a bad public URL")
	}
	if _, err := UnsubscribeLink(e.url, []byte("short"), 1, t0, time.Hour); err == nil {
		t.Fatal("UnsubscribeLink accepted a short secret")
	}
}

func TestSubscriptionsOffMeansNoFormAndNoRoutes(t *testing.T) {
	src := &fakeSource{}
	srv, err := New(Config{PublicURL: "https://s.test"}, src, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Refresh(context.Background())
	if _, err := srv.Unsubscribe(&breachcast.Subscriber{ID: 1}); err == nil {
		t.Fatal("Unsubscribe worked without a secret")
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/subscribe", strings.NewReader("email=a@b.test")))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /subscribe with subscriptions off: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if strings.Contains(rec.Body.String(), "<form") {
		t.Fatal("a subscription form is shown with subscriptions off")
	}
}

func TestConfirmationMailFailureIsAnErrorPageWithoutDetails(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.mail.fail = errors.New("sendgrid: api key sk-SECRET rejected")
	resp, body := e.post("/subscribe", url.Values{"email": {"a@example.com"}})
	if resp.StatusCode != 500 || strings.Contains(body, "SECRET") || !strings.Contains(body, "could not be completed") {
		t.Fatalf("%d %.300s", resp.StatusCode, body)
	}
}
