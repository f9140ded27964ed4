package twitter

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/xemu"
)

var (
	_ channels.Publisher = (*Client)(nil)
	_ channels.Retracter = (*Client)(nil)
	_ channels.Poller    = (*Client)(nil)
	_ channels.Checker   = (*Client)(nil)
)

var ctx = context.Background()

func validConfig() Config {
	return Config{ConsumerKey: testConsumerKey, ConsumerSecret: testConsumerSecret, AccessToken: testAccessToken, AccessSecret: testAccessSecret}
}

func TestNewRefusesIncompleteOrUnsafeConfig(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no consumer key", func(c *Config) { c.ConsumerKey = "" }, "missing X credentials: consumer key (API key)"},
		{"no secrets", func(c *Config) { c.ConsumerSecret, c.AccessSecret = "", " " }, "consumer secret (API key secret), access token secret"},
		{"no access token", func(c *Config) { c.AccessToken = "" }, "missing X credentials: access token"},
		{"plain http over the network", func(c *Config) { c.BaseURL = "http://api.x.com" }, "plain http to a host that is not loopback"},
		{"not a URL", func(c *Config) { c.BaseURL = "api.x.com" }, "is not an absolute http(s) URL"},
		{"credentials in the base URL", func(c *Config) { c.BaseURL = "https://u:p@api.x.com" }, "must not carry credentials"},
		{"bad username", func(c *Config) { c.Username = "acme status!" }, "is not an X username"},
		{"bad user id", func(c *Config) { c.UserID = "acme" }, "is not a numeric X user id"},
		{"negative budget", func(c *Config) { c.ReadBudgetPerHour = -1 }, "read budget per hour is -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mod(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
			if breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
				t.Errorf("code %q, want invalid", breachcast.ErrorCodeOf(err))
			}
			for _, s := range []string{testConsumerSecret, testAccessSecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
	for _, base := range []string{"", "https://api.x.com/", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2"} {
		cfg := validConfig()
		cfg.BaseURL = base
		if _, err := New(cfg); err != nil {
			t.Errorf("base %q: %v", base, err)
		}
	}
}

func TestPublishChainsAThread(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	texts := []string{"1/3 We are investigating unauthorised access.", "2/3 Passwords are hashed & salted.", "3/3 Updates: https://status.example.com/i/1"}
	var receipts []*channels.Receipt
	parent := ""
	for i, text := range texts {
		r, err := c.Publish(ctx, &channels.Post{Key: "u1-twitter-" + strconv.Itoa(i), Text: text, Parent: parent})
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		receipts = append(receipts, r)
		parent = r.ExternalID
	}
	posts := h.emu.Posts()
	if len(posts) != 3 {
		t.Fatalf("%d posts at X", len(posts))
	}
	for i, p := range posts {
		if p.Text != texts[i] || p.ID != receipts[i].ExternalID || p.ConversationID != receipts[0].ExternalID {
			t.Errorf("post %d: %+v", i, p)
		}
		wantParent := ""
		if i > 0 {
			wantParent = receipts[i-1].ExternalID
		}
		if p.InReplyToID != wantParent {
			t.Errorf("post %d answers %q, want %q", i, p.InReplyToID, wantParent)
		}
		if want := "https://x.com/" + xemu.DefaultUsername + "/status/" + p.ID; receipts[i].URL != want {
			t.Errorf("receipt URL %q, want %q", receipts[i].URL, want)
		}
	}
	if n := h.count(xemu.EndpointMe); n != 1 {
		t.Errorf("GET /2/users/me called %d times, want once (cached)", n)
	}
}

func TestPublishWithAConfiguredAccountAsksXNothingElse(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client(func(c *Config) { c.Username, c.UserID = "@acme_status", xemu.DefaultUserID })
	r, err := c.Publish(ctx, &channels.Post{Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if r.URL != "https://x.com/acme_status/status/"+r.ExternalID || h.count(xemu.EndpointMe) != 0 {
		t.Errorf("URL %s, %d users/me calls", r.URL, h.count(xemu.EndpointMe))
	}
}

func TestPublishFallsBackToTheUsernamelessLink(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	h.emu.FailNextOn(xemu.EndpointMe, 1, http.StatusServiceUnavailable)
	r, err := h.client().Publish(ctx, &channels.Post{Text: "made even though users/me failed"})
	if err != nil {
		t.Fatal(err)
	}
	if r.URL != "https://x.com/i/status/"+r.ExternalID {
		t.Errorf("URL %s", r.URL)
	}
}

// provider asserts err is a *channels.Error of the twitter channel.
func provider(t *testing.T, err error) *channels.Error {
	t.Helper()
	var e *channels.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *channels.Error", err, err)
	}
	if e.Channel != Name || e.Op == "" {
		t.Errorf("error names channel %q op %q", e.Channel, e.Op)
	}
	for _, s := range []string{testConsumerSecret, testAccessSecret, testAccessToken} {
		if strings.Contains(e.Error(), s) {
			t.Errorf("error shows a credential: %v", e)
		}
	}
	return e
}

func TestPublishErrorClasses(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(h *harness) *channels.Post
		status    int
		code      string
		permanent bool
		words     string
	}{
		{"revoked token", func(h *harness) *channels.Post {
			h.emu.SetTokenExpired(true)
			return &channels.Post{Text: "x"}
		}, 401, CodeUnauthorized, true, "X rejected the credentials"},
		{"duplicate content", func(h *harness) *channels.Post {
			h.emu.AddMention("someone", "warm up") // not ours: no duplicate
			if _, err := h.client().Publish(ctx, &channels.Post{Text: "same words"}); err != nil {
				panic(err)
			}
			return &channels.Post{Text: "same words"}
		}, 403, CodeDuplicate, true, "You are not allowed to create a Tweet with duplicate content."},
		{"read-only app", func(h *harness) *channels.Post {
			h.emu.SetAccessLevel(xemu.AccessRead)
			return &channels.Post{Text: "x"}
		}, 403, CodeReadOnly, true, "Read and write"},
		{"other 403", func(h *harness) *channels.Post {
			h.emu.FailNextOn(xemu.EndpointCreate, 1, http.StatusForbidden)
			return &channels.Post{Text: "x"}
		}, 403, CodeForbidden, true, "Forbidden"},
		{"reply to a deleted post", func(h *harness) *channels.Post {
			return &channels.Post{Text: "x", Parent: "1234567890123456789"}
		}, 403, CodeParentGone, true, "deleted or is not visible"},
		{"too long", func(h *harness) *channels.Post {
			return &channels.Post{Text: strings.Repeat("é", 281)}
		}, 400, CodeInvalid, true, "Your Tweet text is too long"},
		{"server error", func(h *harness) *channels.Post {
			h.emu.FailNextOn(xemu.EndpointCreate, 1, http.StatusInternalServerError)
			return &channels.Post{Text: "x"}
		}, 500, CodeUnavailable, false, "Internal Server Error"},
		{"overloaded", func(h *harness) *channels.Post {
			h.emu.FailNextOn(xemu.EndpointCreate, 1, http.StatusServiceUnavailable)
			return &channels.Post{Text: "x"}
		}, 503, CodeUnavailable, false, "Service Unavailable"},
		{"garbage answer", func(h *harness) *channels.Post {
			h.emu.GarbageNext(xemu.EndpointCreate, 1)
			return &channels.Post{Text: "x"}
		}, 200, CodeBadAnswer, false, "not the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, xemu.Options{})
			post := tt.setup(h)
			_, err := h.client(func(c *Config) { c.Username = "acme_status" }).Publish(ctx, post)
			e := provider(t, err)
			if e.Op != OpCreate || e.Status != tt.status || e.Code != tt.code || e.Permanent != tt.permanent || !strings.Contains(e.Message, tt.words) {
				t.Errorf("got op %q status %d code %q permanent %v message %q\nwant status %d code %q permanent %v words %q",
					e.Op, e.Status, e.Code, e.Permanent, e.Message, tt.status, tt.code, tt.permanent, tt.words)
			}
			if permanent, _ := channels.Classify(err); permanent != tt.permanent {
				t.Errorf("Classify permanent = %v", permanent)
			}
		})
	}
}

func TestPublishTimeoutIsRetryable(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	h.emu.SetLatency(time.Minute)
	c := h.client(func(c *Config) {
		c.Username = "acme_status"
		c.HTTPClient = &http.Client{Timeout: 100 * time.Millisecond}
	})
	_, err := c.Publish(ctx, &channels.Post{Text: "slow"})
	e := provider(t, err)
	if e.Status != 0 || e.Permanent || e.Code != CodeUnavailable || !strings.Contains(e.Message, "timed out") {
		t.Errorf("got %+v", e)
	}
}

func TestPublishRefusesBadInputWithoutCallingX(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client(func(c *Config) { c.Username = "acme_status" })
	for _, p := range []*channels.Post{nil, {Text: "  \n"}, {Text: "x", Parent: "12ab"}, {Text: strings.Repeat("a", MaxTextLength+1)}} {
		_, err := c.Publish(ctx, p)
		if e := provider(t, err); e.Code != CodeInvalid || !e.Permanent {
			t.Errorf("%v: %+v", p, e)
		}
	}
	if n := len(h.emu.Requests()); n != 0 {
		t.Errorf("%d requests reached X", n)
	}
}

func TestRateLimitResetAnHourAwayMeansWaitingAnHour(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client(func(c *Config) { c.Username = "acme_status" })
	h.emu.ForceRateLimit(xemu.EndpointCreate, h.clock.Now().Add(time.Hour))

	_, err := c.Publish(ctx, &channels.Post{Text: "first try"})
	e := provider(t, err)
	if e.Status != http.StatusTooManyRequests || e.Code != CodeRateLimited || e.Permanent || e.RetryAfter != time.Hour {
		t.Fatalf("429: %+v", e)
	}
	if permanent, after := channels.Classify(err); permanent || after != time.Hour {
		t.Errorf("Classify = %v, %v", permanent, after)
	}

	// Until the reset the client does not call X at all.
	h.clock.Advance(20 * time.Minute)
	_, err = c.Publish(ctx, &channels.Post{Text: "second try"})
	e = provider(t, err)
	if e.Status != 0 || e.Code != CodeRateLimited || e.RetryAfter != 40*time.Minute {
		t.Errorf("proactive wait: %+v", e)
	}
	if n := h.count(xemu.EndpointCreate); n != 1 {
		t.Errorf("%d POSTs reached X, want 1", n)
	}

	h.clock.Advance(40 * time.Minute)
	if _, err := c.Publish(ctx, &channels.Post{Text: "after the reset"}); err != nil {
		t.Fatal(err)
	}
}

func TestNoRequestIsSentWhenTheWindowIsUsedUp(t *testing.T) {
	h := newHarness(t, xemu.Options{Limits: map[string]xemu.Limit{xemu.EndpointCreate: {Requests: 2, Window: 15 * time.Minute}}})
	c := h.client(func(c *Config) { c.Username = "acme_status" })
	for i := range 2 {
		if _, err := c.Publish(ctx, &channels.Post{Text: "post " + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Publish(ctx, &channels.Post{Text: "post 2"})
	if e := provider(t, err); e.Code != CodeRateLimited || e.RetryAfter != 15*time.Minute || e.Status != 0 {
		t.Errorf("got %+v", e)
	}
	if n := h.count(xemu.EndpointCreate); n != 2 {
		t.Errorf("%d POSTs reached X, want 2", n)
	}
	h.clock.Advance(15 * time.Minute)
	if _, err := c.Publish(ctx, &channels.Post{Text: "post 2"}); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestDailyPostingCapSetsTheWait(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-rate-limit-limit", "200")
		w.Header().Set("x-rate-limit-remaining", "150")
		w.Header().Set("x-rate-limit-reset", strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10))
		w.Header().Set("x-user-limit-24hour-limit", "17")
		w.Header().Set("x-user-limit-24hour-remaining", "0")
		w.Header().Set("x-user-limit-24hour-reset", strconv.FormatInt(now.Add(5*time.Hour).Unix(), 10))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}`))
	}))
	defer srv.Close()
	cfg := validConfig()
	cfg.BaseURL, cfg.Username, cfg.Now = srv.URL, "acme", func() time.Time { return now }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(ctx, &channels.Post{Text: "x"})
	if e := provider(t, err); e.RetryAfter != 5*time.Hour {
		t.Errorf("RetryAfter %v, want the daily cap's 5h", e.RetryAfter)
	}
}

func TestErrorBodiesAreMadeReadable(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		code   string
		words  string
	}{
		{"453 client not enrolled", 403, `{"client_id":"1","detail":"When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.","registration_url":"https://developer.x.com","title":"Client Forbidden","required_enrollment":"Appropriate Level of API Access","reason":"client-not-enrolled","type":"https://api.twitter.com/2/problems/client-forbidden"}`,
			CodeNoAccess, "attached to a Project"},
		{"v1.1 style 453", 403, `{"errors":[{"message":"You currently have access to a subset of X API V2 endpoints and limited v1.1 endpoints only.","code":453}]}`,
			CodeNoAccess, "(code 453)"},
		{"invalid request with parameters", 400, `{"errors":[{"parameters":{"max_results":["5"]},"message":"The ` + "`max_results`" + ` query parameter value [5] is not between 10 and 100"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}`,
			CodeInvalid, "is not between 10 and 100"},
		{"no body", 502, ``, CodeUnavailable, "Bad Gateway"},
		{"html body", 503, "<html>\x00down</html>", CodeUnavailable, "<html>down</html>"},
		{"redirect", 301, ``, CodeRedirect, "check the base URL"},
		{"not found", 404, `{"title":"Not Found Error","detail":"Could not find tweet.","type":"https://api.x.com/2/problems/resource-not-found"}`, CodeNotFound, "Could not find tweet."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.status == 301 {
					w.Header().Set("Location", "https://elsewhere.example/")
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			cfg := validConfig()
			cfg.BaseURL, cfg.Username = srv.URL, "acme"
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Publish(ctx, &channels.Post{Text: "x"})
			e := provider(t, err)
			if e.Code != tt.code || !strings.Contains(e.Message, tt.words) || e.Status != tt.status {
				t.Errorf("got status %d code %q message %q", e.Status, e.Code, e.Message)
			}
		})
	}
}

func TestRetract(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client(func(c *Config) { c.Username = "acme_status" })
	r, err := c.Publish(ctx, &channels.Post{Text: "posted by mistake"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Retract(ctx, r.ExternalID); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.emu.Lookup(r.ExternalID); !p.Deleted {
		t.Error("post still up")
	}
	if err := c.Retract(ctx, r.ExternalID); err != nil {
		t.Errorf("retracting a post that is already gone: %v", err)
	}
	customer := h.emu.AddMention("dana_kim", "not yours to delete")
	if e := provider(t, c.Retract(ctx, customer)); e.Status != 403 || !e.Permanent || e.Op != OpDelete {
		t.Errorf("deleting a customer's post: %+v", e)
	}
	if e := provider(t, c.Retract(ctx, "../users/me")); e.Code != CodeInvalid {
		t.Errorf("bad id: %+v", e)
	}
	h.emu.FailNextOn(xemu.EndpointDelete, 1, http.StatusBadGateway)
	r2, _ := c.Publish(ctx, &channels.Post{Text: "second"})
	if e := provider(t, c.Retract(ctx, r2.ExternalID)); e.Permanent {
		t.Errorf("502 on delete is permanent: %+v", e)
	}
}

func checks(t *testing.T, cs []channels.Check) (creds, write channels.Check) {
	t.Helper()
	if len(cs) != 2 || cs[0].Name != "credentials" || cs[1].Name != "write access" {
		t.Fatalf("checks %+v", cs)
	}
	for _, c := range cs {
		if c.Channel != Name || c.Detail == "" {
			t.Errorf("check %+v", c)
		}
	}
	return cs[0], cs[1]
}

func TestCheck(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		h := newHarness(t, xemu.Options{})
		creds, write := checks(t, h.client().Check(ctx))
		if !creds.OK || !strings.Contains(creds.Detail, "@acme_status") || !write.OK || !strings.Contains(write.Detail, "read-write") {
			t.Errorf("%+v %+v", creds, write)
		}
	})
	t.Run("read-only app", func(t *testing.T) {
		h := newHarness(t, xemu.Options{AccessLevel: xemu.AccessRead})
		creds, write := checks(t, h.client().Check(ctx))
		if !creds.OK || write.OK || !strings.Contains(write.Detail, `"Read and write"`) || !strings.Contains(write.Detail, "regenerate") {
			t.Errorf("%+v %+v", creds, write)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		h := newHarness(t, xemu.Options{})
		h.emu.SetTokenExpired(true)
		creds, write := checks(t, h.client().Check(ctx))
		if creds.OK || !strings.Contains(creds.Detail, "X rejected the credentials") || write.OK || !strings.Contains(write.Detail, "not checked") {
			t.Errorf("%+v %+v", creds, write)
		}
	})
	t.Run("tokens of another account", func(t *testing.T) {
		h := newHarness(t, xemu.Options{})
		creds, _ := checks(t, h.client(func(c *Config) { c.Username = "other_brand" }).Check(ctx))
		if creds.OK || !strings.Contains(creds.Detail, "belongs to @acme_status") {
			t.Errorf("%+v", creds)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := validConfig()
		cfg.BaseURL = "http://" + addr
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		creds, write := checks(t, c.Check(ctx))
		if creds.OK || !strings.Contains(creds.Detail, "could not reach X at http://"+addr) || write.OK {
			t.Errorf("%+v %+v", creds, write)
		}
	})
}
