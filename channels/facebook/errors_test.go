package facebook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/fbemu"
	"github.com/breachcast/breachcast/internal/conformance"
)

// rawGraph serves body with status for every request, like Graph answering
// an error.
func rawGraph(t *testing.T, status int, header http.Header, body []byte) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, AppID: testAppID, AppSecret: testAppSecret, PageID: testPageID,
		PageToken: testPageToken, Now: func() time.Time { return day }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGraphErrorFixturesMapToAnExpiredTokenError(t *testing.T) {
	for _, name := range []string{"exampleError.json", "exampleErrorNew.json"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(conformance.Path(t, "facebook/graph_responses_restfb/"+name))
			if err != nil {
				t.Fatal(err)
			}
			c := rawGraph(t, http.StatusBadRequest, nil, body)
			_, err = c.Publish(context.Background(), &channels.Post{Key: "u1", Text: "hello"})
			ce := asChannelError(t, err)
			if !ce.Permanent || ce.Code != CodeToken || ce.Status != 400 || ce.Op != "POST /{page-id}/feed" {
				t.Errorf("err = %v (permanent %v, code %q, status %d, op %q)", ce, ce.Permanent, ce.Code, ce.Status, ce.Op)
			}
			for _, want := range []string{"facebook", "Page access token", "renew the Page token", "Graph error 190/460", "Message describing the error"} {
				if !strings.Contains(ce.Error(), want) {
					t.Errorf("error %q does not say %q", ce.Error(), want)
				}
			}
			if strings.Contains(name, "New") && !strings.Contains(ce.Error(), "EJplcsCHuLu") {
				t.Errorf("error %q lacks the fbtrace_id", ce.Error())
			}
			if strings.Contains(ce.Error(), testPageToken) || strings.Contains(ce.Error(), testAppSecret) {
				t.Errorf("error leaks a secret: %v", ce)
			}
		})
	}
}

func TestGraphErrorsMapToRetryDecisions(t *testing.T) {
	tests := []struct {
		name      string
		inject    func(*fbemu.Server)
		code      string
		permanent bool
		retry     time.Duration
		says      string
	}{
		{"missing publish permission", func(s *fbemu.Server) { s.FailNext(1, fbemu.ErrPermission) },
			CodePermission, true, 0, "lacks the pages_read_engagement and pages_manage_posts permissions"},
		{"permission not named by Graph", func(s *fbemu.Server) {
			s.FailNext(1, fbemu.GraphError{HTTPStatus: 403, Code: 10, Type: "OAuthException", Message: "(#10) Permission denied"})
		}, CodePermission, true, 0, "lacks the pages_manage_posts permission"},
		{"permission revoked for real", func(s *fbemu.Server) { s.SetPermissions("pages_read_engagement") },
			CodePermission, true, 0, "pages_manage_posts"},
		{"duplicate", func(s *fbemu.Server) {
			s.FailNext(1, fbemu.GraphError{HTTPStatus: 400, Code: 506, Type: "OAuthException", Message: "(#506) Duplicate status message"})
			s.FailNext(1, fbemu.ErrTransient) // the search for the existing post fails too
		}, CodeDuplicate, true, 0, "duplicate"},
		{"app rate limit", func(s *fbemu.Server) { s.RateLimitNext(1, 4, 7*time.Minute) }, CodeRateLimit, false, 7 * time.Minute, "throttling"},
		{"user rate limit", func(s *fbemu.Server) { s.RateLimitNext(1, 17, 2*time.Minute) }, CodeRateLimit, false, 2 * time.Minute, "(#17)"},
		{"page rate limit", func(s *fbemu.Server) { s.RateLimitNext(1, 32, 30*time.Minute) }, CodeRateLimit, false, 30 * time.Minute, "(#32)"},
		{"custom rate limit", func(s *fbemu.Server) { s.RateLimitNext(1, 613, time.Minute) }, CodeRateLimit, false, time.Minute, "(#613)"},
		{"page business use case limit", func(s *fbemu.Server) { s.RateLimitNext(1, 80001, 12*time.Minute) }, CodeRateLimit, false, 12 * time.Minute, "(#80001)"},
		{"service error", func(s *fbemu.Server) { s.FailNext(1, fbemu.ErrTransient) }, CodeTransient, false, 0, "temporary"},
		{"unknown error", func(s *fbemu.Server) { s.FailNext(1, fbemu.ErrUnknown) }, CodeTransient, false, 0, "Graph error 1"},
		{"expired token", func(s *fbemu.Server) { s.ExpireToken() }, CodeToken, true, 0, "Graph error 190/463"},
		{"bad parameter", func(s *fbemu.Server) {
			s.FailNext(1, fbemu.GraphError{HTTPStatus: 400, Code: 100, Type: "OAuthException", Message: "(#100) Invalid parameter"})
		}, CodeInvalid, true, 0, "rejected"},
		{"policy block", func(s *fbemu.Server) {
			s.FailNext(1, fbemu.GraphError{HTTPStatus: 400, Code: 368, Type: "OAuthException", Message: "It looks like you were misusing this feature"})
		}, CodeBlocked, true, 0, "Support Inbox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			tt.inject(e.emu)
			_, err := e.client.Publish(context.Background(), &channels.Post{Key: "u1", Text: "hello"})
			ce := asChannelError(t, err)
			if ce.Code != tt.code || ce.Permanent != tt.permanent || ce.RetryAfter != tt.retry {
				t.Errorf("got code %q permanent %v retry %v, want %q %v %v (%v)", ce.Code, ce.Permanent, ce.RetryAfter, tt.code, tt.permanent, tt.retry, ce)
			}
			if !strings.Contains(ce.Error(), tt.says) {
				t.Errorf("error %q does not say %q", ce.Error(), tt.says)
			}
			permanent, after := channels.Classify(err)
			if permanent != tt.permanent || after != tt.retry {
				t.Errorf("Classify = %v, %v", permanent, after)
			}
			e.assertNoSecretsLeaked(t)
		})
	}
}

func TestRateLimitWaitReadsEveryUsageHeader(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"business use case", map[string]string{"X-Business-Use-Case-Usage": `{"123":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":9}]}`}, 9 * time.Minute},
		{"largest of several", map[string]string{
			"X-Business-Use-Case-Usage": `{"1":[{"estimated_time_to_regain_access":3}],"2":[{"estimated_time_to_regain_access":11}]}`,
			"X-App-Usage":               `{"call_count":100,"estimated_time_to_regain_access":5}`,
		}, 11 * time.Minute},
		{"page usage", map[string]string{"X-Page-Usage": `{"call_count":100,"estimated_time_to_regain_access":4}`}, 4 * time.Minute},
		{"retry-after", map[string]string{"Retry-After": "90"}, 90 * time.Second},
		{"nothing usable", map[string]string{"X-App-Usage": `{"call_count":100}`}, defaultRateLimitWait},
		{"garbage", map[string]string{"X-Business-Use-Case-Usage": `not json`}, defaultRateLimitWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := rateLimitWait(h, day); got != tt.want {
				t.Errorf("rateLimitWait = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAnswerThatIsNotGraphIsClassifiedByStatus(t *testing.T) {
	c := rawGraph(t, http.StatusBadGateway, http.Header{"Retry-After": {"30"}}, []byte("<html>502 Bad Gateway</html>"))
	_, err := c.Publish(context.Background(), &channels.Post{Key: "u1", Text: "hello"})
	ce := asChannelError(t, err)
	if ce.Permanent || ce.Status != 502 || ce.RetryAfter != 30*time.Second {
		t.Errorf("err = %v (permanent %v, status %d, retry %v), want transient 502 after 30s", ce, ce.Permanent, ce.Status, ce.RetryAfter)
	}
}

func TestUnreachableGraphIsTransientAndLeaksNothing(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	c, err := New(Config{BaseURL: base, AppID: testAppID, AppSecret: testAppSecret, PageID: testPageID, PageToken: testPageToken})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(context.Background(), &channels.Post{Key: "u1", Text: "hello"})
	ce := asChannelError(t, err)
	if ce.Permanent || ce.Status != 0 {
		t.Errorf("err = %v, want transient with no status", ce)
	}
	if strings.Contains(err.Error(), testPageToken) || strings.Contains(err.Error(), testAppSecret) {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestSlowGraphTimesOutAsTransient(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} }, nil)
	e.emu.SetLatency(2 * time.Second)
	_, err := e.client.Publish(context.Background(), &channels.Post{Key: "u1", Text: "hello"})
	if permanent, _ := channels.Classify(err); err == nil || permanent {
		t.Errorf("err = %v, want a transient error", err)
	}
}
