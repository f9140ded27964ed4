package email_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/channels/email"
	"github.com/breachcast/breachcast/emulators/sgemu"
	"github.com/breachcast/breachcast/internal/conformance"
	"github.com/breachcast/breachcast/internal/testclock"
)

// testKey looks like a real key so that a leak would be recognisable.
const testKey = "SG.k3yID-abcdefghij.S3cr3tPartThatMustNeverLeak-0123456789"

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// emulator starts a SendGrid emulator that checks every mail/send request
// against SendGrid's official OpenAPI spec; the test fails if one does not
// conform.
func emulator(t *testing.T, o sgemu.Options) (*sgemu.Server, string) {
	t.Helper()
	o.Validator = conformance.RequestValidator(t, conformance.SendGridMailSpec)
	if o.Keys == nil {
		o.Keys = map[string][]string{testKey: nil}
	}
	emu := sgemu.New(o)
	ts := httptest.NewServer(emu)
	t.Cleanup(func() {
		emu.Close()
		ts.Close()
		for _, err := range emu.ConformanceFailures() {
			t.Errorf("request does not conform to SendGrid's spec: %v", err)
		}
	})
	return emu, ts.URL
}

func client(t *testing.T, c email.Config) *email.Client {
	t.Helper()
	if c.APIKey == "" {
		c.APIKey = testKey
	}
	cl, err := email.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// batch is a realistic batch of n recipients for update 12 of an incident.
func batch(n int) *channels.EmailBatch {
	b := &channels.EmailBatch{
		Key:        "u12-b1",
		FromEmail:  "security@example.com",
		FromName:   "Example Security",
		ReplyTo:    "reply+t0k3n@in.example.com",
		Subject:    "[-name-] Security incident: update 2",
		HTML:       "<p>Dear -name-,</p><p>We found the cause.</p>",
		Text:       "Dear -name-,\n\nWe found the cause.",
		Categories: []string{"breachcast", "incident-7"},
		CustomArgs: map[string]string{"bc_update": "12"},
	}
	for i := range n {
		b.Recipients = append(b.Recipients, channels.EmailRecipient{
			Email:         fmt.Sprintf("user%d@example.com", i),
			Name:          fmt.Sprintf("User %d", i),
			MessageID:     fmt.Sprintf("<u12.r%d@breachcast.example>", i),
			InReplyTo:     fmt.Sprintf("<u11.r%d@breachcast.example>", i),
			References:    []string{fmt.Sprintf("<u11.r%d@breachcast.example>", i), fmt.Sprintf("<u10.r%d@breachcast.example>", i)},
			Substitutions: map[string]string{"-name-": fmt.Sprintf("User %d", i)},
			CustomArgs:    map[string]string{"bc_delivery": fmt.Sprint(1000 + i)},
			Headers:       map[string]string{"List-Unsubscribe": "<mailto:unsubscribe@example.com>"},
		})
	}
	return b
}

// providerError asserts err is a *channels.Error of the email channel.
func providerError(t *testing.T, err error) *channels.Error {
	t.Helper()
	var e *channels.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *channels.Error", err, err)
	}
	if e.Channel != "email" || e.Op != "mail/send" {
		t.Errorf("channel %q op %q, want email and mail/send", e.Channel, e.Op)
	}
	return e
}

// noKey asserts the API key appears in no rendering of v.
func noKey(t *testing.T, what string, v any) {
	t.Helper()
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(f, v)
		if strings.Contains(s, testKey) || strings.Contains(s, "S3cr3tPart") {
			t.Errorf("%s formatted with %s shows the API key: %s", what, f, s)
		}
	}
	if e, ok := v.(error); ok {
		for err := e; err != nil; err = errors.Unwrap(err) {
			if strings.Contains(err.Error(), "S3cr3tPart") {
				t.Errorf("%s wraps an error that shows the API key: %s", what, err)
			}
		}
	}
}

func TestNewRefusesAConfigItCannotUse(t *testing.T) {
	tests := []struct {
		name string
		cfg  email.Config
		want string
	}{
		{"no key", email.Config{}, "API key is empty"},
		{"a blank key", email.Config{APIKey: "  "}, "API key is empty"},
		{"a key with a line break", email.Config{APIKey: testKey + "\n"}, "spaces or control characters"},
		{"a relative URL", email.Config{APIKey: testKey, BaseURL: "api.sendgrid.com"}, "not an absolute http(s) URL"},
		{"another scheme", email.Config{APIKey: testKey, BaseURL: "ftp://api.sendgrid.com"}, "not an absolute http(s) URL"},
		{"credentials in the URL", email.Config{APIKey: testKey, BaseURL: "https://user:pw@api.sendgrid.com"}, "must not carry credentials"},
		{"a query", email.Config{APIKey: testKey, BaseURL: "https://api.sendgrid.com/?key=x"}, "query or fragment"},
		{"an unparsable URL", email.Config{APIKey: testKey, BaseURL: "http://[::1"}, "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := email.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error saying %q", c, err, tt.want)
			}
			noKey(t, "error", err)
		})
	}
	c, err := email.New(email.Config{APIKey: testKey})
	if err != nil || !strings.Contains(c.String(), email.DefaultBaseURL) {
		t.Errorf("default base URL: %v, %v", c, err)
	}
}

func TestClientAndConfigNeverShowTheKey(t *testing.T) {
	cfg := email.Config{APIKey: testKey, BaseURL: "https://api.sendgrid.com"}
	c := client(t, cfg)
	noKey(t, "Config", cfg)
	noKey(t, "Client", c)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("configured", "config", cfg, "client", c)
	if strings.Contains(buf.String(), "S3cr3tPart") || !strings.Contains(buf.String(), "api.sendgrid.com") {
		t.Errorf("slog output: %s", buf.String())
	}
}

func TestSendBatchDeliversEveryRecipientAsSendGridWould(t *testing.T) {
	emu, base := emulator(t, sgemu.Options{})
	c := client(t, email.Config{BaseURL: base})
	rcpt, err := c.SendBatch(context.Background(), batch(3))
	if err != nil {
		t.Fatal(err)
	}
	if rcpt.ProviderID == "" {
		t.Fatal("no provider id in the receipt")
	}
	if emu.Requests() != 1 || emu.Total() != 3 {
		t.Errorf("requests %d, messages %d: want one request for 3 recipients", emu.Requests(), emu.Total())
	}
	for i := range 3 {
		got := emu.Messages(fmt.Sprintf("user%d@example.com", i))
		if len(got) != 1 {
			t.Fatalf("user%d got %d messages, want 1", i, len(got))
		}
		m := got[0]
		name := fmt.Sprintf("User %d", i)
		if m.Subject != "["+name+"] Security incident: update 2" || m.Text != "Dear "+name+",\n\nWe found the cause." ||
			m.HTML != "<p>Dear "+name+",</p><p>We found the cause.</p>" {
			t.Errorf("user%d rendered %q / %q / %q", i, m.Subject, m.Text, m.HTML)
		}
		if m.Name != name || m.From != "security@example.com" || m.FromName != "Example Security" || m.ReplyTo != "reply+t0k3n@in.example.com" {
			t.Errorf("user%d addresses: %+v", i, m)
		}
		wantHeaders := map[string]string{
			"Message-ID":       fmt.Sprintf("<u12.r%d@breachcast.example>", i),
			"In-Reply-To":      fmt.Sprintf("<u11.r%d@breachcast.example>", i),
			"References":       fmt.Sprintf("<u11.r%d@breachcast.example> <u10.r%d@breachcast.example>", i, i),
			"List-Unsubscribe": "<mailto:unsubscribe@example.com>",
		}
		if fmt.Sprint(m.Headers) != fmt.Sprint(wantHeaders) {
			t.Errorf("user%d headers %v, want %v", i, m.Headers, wantHeaders)
		}
		wantArgs := map[string]string{"bc_update": "12", "bc_delivery": fmt.Sprint(1000 + i)}
		if fmt.Sprint(m.CustomArgs) != fmt.Sprint(wantArgs) {
			t.Errorf("user%d custom args %v, want %v", i, m.CustomArgs, wantArgs)
		}
		if m.XMessageID != rcpt.ProviderID || strings.Join(m.Categories, ",") != "breachcast,incident-7" {
			t.Errorf("user%d x-message-id %q (receipt %q), categories %v", i, m.XMessageID, rcpt.ProviderID, m.Categories)
		}
	}
}

func TestSendBatchTakesAFullBatchOf1000(t *testing.T) {
	emu, base := emulator(t, sgemu.Options{})
	if _, err := client(t, email.Config{BaseURL: base}).SendBatch(context.Background(), batch(email.MaxRecipients)); err != nil {
		t.Fatal(err)
	}
	if emu.Total() != 1000 || emu.Count("user999@example.com") != 1 {
		t.Errorf("total %d, last recipient count %d", emu.Total(), emu.Count("user999@example.com"))
	}
}

// capture answers like SendGrid and keeps the last request.
type capture struct {
	mu   sync.Mutex
	req  *http.Request
	body []byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.req, c.body = r, b
	c.mu.Unlock()
	w.Header().Set("X-Message-Id", "captured-id")
	w.WriteHeader(http.StatusAccepted)
}

func TestSendBatchSpeaksSendGridsWireFormat(t *testing.T) {
	spec := conformance.MustLoad(t, conformance.SendGridMailSpec)
	for _, sandbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("sandbox=%t", sandbox), func(t *testing.T) {
			cp := &capture{}
			ts := httptest.NewServer(cp)
			defer ts.Close()
			c := client(t, email.Config{BaseURL: ts.URL + "/", SandboxMode: sandbox})
			rcpt, err := c.SendBatch(context.Background(), batch(2))
			if err != nil {
				t.Fatal(err)
			}
			if rcpt.ProviderID != "captured-id" {
				t.Errorf("provider id %q, want the X-Message-Id", rcpt.ProviderID)
			}
			r := cp.req
			if r.Method != "POST" || r.URL.Path != "/v3/mail/send" {
				t.Errorf("%s %s, want POST /v3/mail/send", r.Method, r.URL.Path)
			}
			if r.Header.Get("Authorization") != "Bearer "+testKey || r.Header.Get("Content-Type") != "application/json" ||
				r.Header.Get("User-Agent") != email.UserAgent {
				t.Errorf("headers %v", r.Header)
			}
			if r.URL.RawQuery != "" {
				t.Errorf("query %q: nothing goes in the URL", r.URL.RawQuery)
			}
			if err := spec.ValidateRequest(r, cp.body); err != nil {
				t.Errorf("request does not conform: %v", err)
			}
			var got struct {
				Personalizations []struct {
					To []struct {
						Email, Name string
					}
					Headers       map[string]string
					Substitutions map[string]string
					CustomArgs    map[string]string `json:"custom_args"`
				}
				From         struct{ Email, Name string }
				ReplyTo      struct{ Email, Name string } `json:"reply_to"`
				Content      []struct{ Type, Value string }
				Categories   []string
				CustomArgs   map[string]string `json:"custom_args"`
				MailSettings *struct {
					SandboxMode struct{ Enable bool } `json:"sandbox_mode"`
				} `json:"mail_settings"`
			}
			if err := json.Unmarshal(cp.body, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Personalizations) != 2 || len(got.Personalizations[1].To) != 1 ||
				got.Personalizations[1].To[0].Email != "user1@example.com" || got.Personalizations[1].To[0].Name != "User 1" {
				t.Errorf("personalizations %+v: want one per recipient with email and name", got.Personalizations)
			}
			p := got.Personalizations[0]
			if p.Headers["References"] != "<u11.r0@breachcast.example> <u10.r0@breachcast.example>" ||
				p.Substitutions["-name-"] != "User 0" || p.CustomArgs["bc_delivery"] != "1000" {
				t.Errorf("personalization 0: %+v", p)
			}
			if len(got.Content) != 2 || got.Content[0].Type != "text/plain" || got.Content[1].Type != "text/html" {
				t.Errorf("content %+v: want text/plain then text/html", got.Content)
			}
			if got.ReplyTo.Email != "reply+t0k3n@in.example.com" || got.CustomArgs["bc_update"] != "12" || len(got.Categories) != 2 {
				t.Errorf("reply_to %+v, custom_args %v, categories %v", got.ReplyTo, got.CustomArgs, got.Categories)
			}
			if sandbox != (got.MailSettings != nil && got.MailSettings.SandboxMode.Enable) {
				t.Errorf("mail_settings %+v with sandbox %t", got.MailSettings, sandbox)
			}
		})
	}
}

func TestSandboxModeIsAcceptedButDeliversNothing(t *testing.T) {
	emu, base := emulator(t, sgemu.Options{})
	c := client(t, email.Config{BaseURL: base, SandboxMode: true})
	if _, err := c.SendBatch(context.Background(), batch(2)); err != nil {
		t.Fatal(err)
	}
	if emu.Total() != 0 {
		t.Errorf("sandbox delivered %d messages", emu.Total())
	}
}

func TestSendBatchRefusesImpossibleBatchesWithoutSendingThem(t *testing.T) {
	tests := []struct {
		name   string
		change func(b *channels.EmailBatch) *channels.EmailBatch
		want   string
	}{
		{"no batch", func(*channels.EmailBatch) *channels.EmailBatch { return nil }, "no batch"},
		{"no recipients", func(b *channels.EmailBatch) *channels.EmailBatch { b.Recipients = nil; return b }, "batch u12-b1 has no recipients"},
		{"1001 recipients", func(*channels.EmailBatch) *channels.EmailBatch { return batch(1001) }, "has 1001 recipients; SendGrid takes at most 1000"},
		{"an address twice, differently cased", func(b *channels.EmailBatch) *channels.EmailBatch {
			b.Recipients[2].Email = "USER0@Example.com"
			return b
		}, "recipient 2 of batch u12-b1 repeats the address of recipient 0"},
		{"a recipient without address", func(b *channels.EmailBatch) *channels.EmailBatch { b.Recipients[1].Email = " "; return b }, "recipient 1 of batch u12-b1 has no email address"},
		{"no from", func(b *channels.EmailBatch) *channels.EmailBatch { b.FromEmail = ""; return b }, "has no from address"},
		{"no subject", func(b *channels.EmailBatch) *channels.EmailBatch { b.Subject = ""; return b }, "has no subject"},
		{"no body", func(b *channels.EmailBatch) *channels.EmailBatch { b.HTML, b.Text = "", ""; return b }, "has no body"},
		{"eleven categories", func(b *channels.EmailBatch) *channels.EmailBatch {
			b.Categories = strings.Split("a b c d e f g h i j k", " ")
			return b
		}, "has 11 categories; SendGrid allows 10"},
		{"a reserved header", func(b *channels.EmailBatch) *channels.EmailBatch {
			b.Recipients[0].Headers = map[string]string{"Reply-To": "x@example.com"}
			return b
		}, "header Reply-To is reserved"},
		{"a line break in a header", func(b *channels.EmailBatch) *channels.EmailBatch {
			b.Recipients[1].MessageID = "<x@example.com>\r\nBcc: everyone@example.com"
			return b
		}, "header Message-ID has a line break"},
		{"a header name with a colon", func(b *channels.EmailBatch) *channels.EmailBatch {
			b.Recipients[0].Headers = map[string]string{"X-A: b": "c"}
			return b
		}, "is not printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, base := emulator(t, sgemu.Options{})
			c := client(t, email.Config{BaseURL: base})
			rcpt, err := c.SendBatch(context.Background(), tt.change(batch(3)))
			if err == nil {
				t.Fatalf("sent, receipt %+v", rcpt)
			}
			e := providerError(t, err)
			if !e.Permanent || e.Status != 0 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q (permanent %t, status %d), want a permanent one saying %q", err, e.Permanent, e.Status, tt.want)
			}
			if strings.Contains(err.Error(), "@example.com") {
				t.Errorf("error %q names a customer address", err)
			}
			if emu.Received() != 0 {
				t.Errorf("%d requests reached SendGrid", emu.Received())
			}
		})
	}
}

// rawServer accepts connections and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				// Read the request head and body so the client is not cut off mid-write.
				br := bufio.NewReader(conn)
				if req, err := http.ReadRequest(br); err == nil {
					io.Copy(io.Discard, req.Body)
				}
				serve(conn)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestSendBatchSaysWhetherAndWhenToRetryEveryFailure(t *testing.T) {
	clk := testclock.New(epoch)
	type setup struct {
		base   string
		client *http.Client
		ctx    context.Context
		batch  *channels.EmailBatch
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T) setup
		status     int
		permanent  bool
		retryAfter time.Duration
		want       string
	}{
		{"a key SendGrid does not know", func(t *testing.T) setup {
			_, base := emulator(t, sgemu.Options{Keys: map[string][]string{"SG.other": nil}})
			return setup{base: base}
		}, 401, true, 0, "SendGrid rejected the API key: The provided authorization grant is invalid, expired, or revoked"},
		{"a key without mail.send", func(t *testing.T) setup {
			_, base := emulator(t, sgemu.Options{Keys: map[string][]string{testKey: {"alerts.read"}}})
			return setup{base: base}
		}, 403, true, 0, "access forbidden (the API key needs the mail.send scope"},
		{"SendGrid refuses the email", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 400)
			return setup{base: base}
		}, 400, true, 0, "SendGrid refused the email: Bad Request"},
		{"SendGrid's validation refuses the email", func(t *testing.T) setup {
			_, base := emulator(t, sgemu.Options{})
			b := batch(2)
			b.CustomArgs["bc_note"] = strings.Repeat("n", 6000)
			b.Recipients[1].CustomArgs["bc_more"] = strings.Repeat("m", 6000)
			return setup{base: base, batch: b}
		}, 400, true, 0, "SendGrid refused the email: The combined size of both global and personalization custom arguments " +
			"may not exceed 10,000 bytes per personalization. (field personalizations.1.custom_args) see http://sendgrid.com/docs/"},
		{"a batch too large", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 413)
			return setup{base: base}
		}, 413, true, 0, "too large for SendGrid (30 MB at most): content too large"},
		{"rate limited", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{Now: clk.Now})
			emu.SetRateLimit(1, time.Minute)
			// The window's one request.
			if _, err := client(t, email.Config{BaseURL: base}).SendBatch(context.Background(), batch(1)); err != nil {
				t.Fatal(err)
			}
			return setup{base: base}
		}, 429, false, time.Minute, "rate limit was reached: too many requests (retry after 1m0s)"},
		{"a server error", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 500)
			return setup{base: base}
		}, 500, false, 0, "SendGrid had a server error: internal server error"},
		{"SendGrid unavailable", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 503)
			return setup{base: base}
		}, 503, false, 0, "server error: service unavailable"},
		{"a proxy's HTML error page", func(t *testing.T) setup {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
			}))
			t.Cleanup(ts.Close)
			return setup{base: ts.URL}
		}, 502, false, 0, `server error: the answer is not JSON, text/html: "<html><body><h1>502 Bad Gateway`},
		{"a garbage answer", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.GarbageNext(1)
			return setup{base: base}
		}, 200, false, 0, "the answer is not SendGrid's: no X-Message-Id (the answer is not JSON, text/html"},
		{"an answer that is not HTTP", func(t *testing.T) setup {
			return setup{base: rawServer(t, func(c net.Conn) { io.WriteString(c, "\x00\x01garbage garbage\r\n\r\n") })}
		}, 0, false, 0, "answered with something that is not HTTP"},
		{"a connection reset", func(t *testing.T) setup {
			return setup{base: rawServer(t, func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) })}
		}, 0, false, 0, "the connection to SendGrid was reset before it answered"},
		{"a connection closed without an answer", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.CloseNext(1)
			return setup{base: base}
		}, 0, false, 0, "SendGrid closed the connection without answering"},
		{"a server that hangs until the caller's deadline", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.HangNext(1)
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			t.Cleanup(cancel)
			return setup{base: base, ctx: ctx}
		}, 0, false, 0, "no answer from SendGrid before the deadline"},
		{"a server that hangs past the client's timeout", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.HangNext(1)
			hc := email.NewHTTPClient()
			hc.Timeout = 150 * time.Millisecond
			return setup{base: base, client: hc}
		}, 0, false, 0, "SendGrid did not answer in time (timeout)"},
		{"nothing listening", func(t *testing.T) setup {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			base := "http://" + ln.Addr().String()
			ln.Close()
			return setup{base: base}
		}, 0, false, 0, "SendGrid refused the connection: is the base URL right?"},
		{"JSON that is not SendGrid's", func(t *testing.T) setup {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"message":"maintenance"}`)
			}))
			t.Cleanup(ts.Close)
			return setup{base: ts.URL}
		}, 503, false, 0, `server error: the answer is JSON but not SendGrid's, application/json: "{\"message\":\"maintenance\"}"`},
		{"a redirect", func(t *testing.T) setup {
			ts := httptest.NewServer(http.RedirectHandler("https://elsewhere.example/v3/mail/send", http.StatusTemporaryRedirect))
			t.Cleanup(ts.Close)
			return setup{base: ts.URL}
		}, 307, true, 0, "SendGrid answered with a redirect: check the base URL"},
		{"an unexpected client error", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 404)
			return setup{base: base}
		}, 404, true, 0, "unexpected answer from SendGrid: not found"},
		{"a conflict worth retrying", func(t *testing.T) setup {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 409)
			return setup{base: base}
		}, 409, false, 0, "unexpected answer from SendGrid: Conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			if s.ctx == nil {
				s.ctx = context.Background()
			}
			if s.batch == nil {
				s.batch = batch(2)
			}
			c := client(t, email.Config{BaseURL: s.base, HTTPClient: s.client, Now: clk.Now})
			rcpt, err := c.SendBatch(s.ctx, s.batch)
			if err == nil {
				t.Fatalf("no error, receipt %+v", rcpt)
			}
			e := providerError(t, err)
			if e.Status != tt.status || e.Permanent != tt.permanent || e.RetryAfter != tt.retryAfter {
				t.Errorf("status %d permanent %t retry after %v; want %d %t %v", e.Status, e.Permanent, e.RetryAfter,
					tt.status, tt.permanent, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
			if perm, after := channels.Classify(err); perm != tt.permanent || after != tt.retryAfter {
				t.Errorf("Classify = %t, %v", perm, after)
			}
			noKey(t, "error", err)
		})
	}
}

func TestAProviderEchoingTheKeyDoesNotLeakIt(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{
			{"message": "bad key " + r.Header.Get("Authorization"), "field": "authorization"},
		}})
	}))
	defer ts.Close()
	_, err := client(t, email.Config{BaseURL: ts.URL}).SendBatch(context.Background(), batch(1))
	if err == nil || !strings.Contains(err.Error(), "bad key Bearer (redacted) (field authorization)") {
		t.Errorf("error %v", err)
	}
	noKey(t, "error", err)
}

func TestSendBatchIsSafeForManyConcurrentSenders(t *testing.T) {
	emu, base := emulator(t, sgemu.Options{KeepMessages: 10})
	emu.SetLatency(2 * time.Millisecond)
	c := client(t, email.Config{BaseURL: base})
	const senders, batches, size = 24, 4, 25
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids = map[string]bool{}
	)
	for g := range senders {
		wg.Go(func() {
			for i := range batches {
				b := batch(size)
				for j := range b.Recipients {
					b.Recipients[j].Email = fmt.Sprintf("s%d-b%d-r%d@example.com", g, i, j)
				}
				rcpt, err := c.SendBatch(context.Background(), b)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[rcpt.ProviderID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if emu.Requests() != senders*batches || emu.Total() != senders*batches*size || len(ids) != senders*batches {
		t.Errorf("requests %d, messages %d, distinct receipts %d; want %d, %d, %d",
			emu.Requests(), emu.Total(), len(ids), senders*batches, senders*batches*size, senders*batches)
	}
	for addr, n := range emu.Counts() {
		if n != 1 {
			t.Errorf("%s got %d messages", addr, n)
		}
	}
}

func TestCheckSaysInPlainWordsWhetherTheKeyCanSend(t *testing.T) {
	type line struct {
		name string
		ok   bool
		says string
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		sandbox bool
		want    []line
	}{
		{"a key that may send", func(t *testing.T) string {
			_, base := emulator(t, sgemu.Options{})
			return base
		}, false, []line{{email.CheckAPIKey, true, "accepted"}, {email.CheckMailSend, true, "mail.send"}}},
		{"a key without Mail Send permission", func(t *testing.T) string {
			_, base := emulator(t, sgemu.Options{Keys: map[string][]string{testKey: {"alerts.read", "stats.read"}}})
			return base
		}, false, []line{{email.CheckAPIKey, true, "accepted"}, {email.CheckMailSend, false, "lacks Mail Send permission"}}},
		{"a key SendGrid does not know", func(t *testing.T) string {
			_, base := emulator(t, sgemu.Options{Keys: map[string][]string{"SG.other": nil}})
			return base
		}, false, []line{{email.CheckAPIKey, false, "SendGrid rejected the API key: create a new key with Mail Send permission"}}},
		{"SendGrid down", func(t *testing.T) string {
			emu, base := emulator(t, sgemu.Options{})
			emu.FailNext(1, 503)
			return base
		}, false, []line{{email.CheckAPIKey, false, "HTTP 503: SendGrid had a server error: service unavailable; try again"}}},
		{"a garbage answer", func(t *testing.T) string {
			emu, base := emulator(t, sgemu.Options{})
			emu.GarbageNext(1)
			return base
		}, false, []line{{email.CheckAPIKey, false, "not the expected JSON"}}},
		{"nothing listening", func(t *testing.T) string {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			ln.Close()
			return "http://" + ln.Addr().String()
		}, false, []line{{email.CheckAPIKey, false, "cannot reach SendGrid at http://127.0.0.1:"}}},
		{"sandbox mode", func(t *testing.T) string {
			_, base := emulator(t, sgemu.Options{})
			return base
		}, true, []line{{email.CheckAPIKey, true, ""}, {email.CheckMailSend, true, ""}, {email.CheckSandbox, true, "delivers none"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, email.Config{BaseURL: tt.setup(t), SandboxMode: tt.sandbox})
			got := c.Check(context.Background())
			if len(got) != len(tt.want) {
				t.Fatalf("checks %+v, want %d lines", got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Channel != "email" || g.Name != w.name || g.OK != w.ok || !strings.Contains(g.Detail, w.says) {
					t.Errorf("check %d = %+v, want %s ok=%t saying %q", i, g, w.name, w.ok, w.says)
				}
				noKey(t, "check", g)
			}
		})
	}
}

// The client meets the channel contract.
var (
	_ channels.Mailer  = (*email.Client)(nil)
	_ channels.Checker = (*email.Client)(nil)
)
