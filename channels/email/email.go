// Package email is the SendGrid email channel: it sends rendered batches
// through SendGrid's v3 Mail Send API (one personalization per recipient) and
// checks that the configured key can send.
//
// It builds request bodies with sendgrid-go's helpers/mail types but makes
// the HTTP calls itself: sendgrid-go's client shares mutable state between
// requests (it races under concurrency, upstream issue 474) and its retry
// helper misreads X-RateLimit-Reset. Retrying is the fan-out engine's job;
// every failure is a *channels.Error that says whether and when to retry.
//
// The API key never appears in an error, a log line or a formatted Client or
// Config.
package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/breachcast/breachcast"
)

// Name is the channel name, used in errors, config keys and delivery rows.
const Name = breachcast.ChannelEmail

// DefaultBaseURL is SendGrid's global API endpoint.
const DefaultBaseURL = "https://api.sendgrid.com"

// UserAgent is sent with every request.
const UserAgent = "breachcast-email/1 (+https://github.com/breachcast/breachcast)"

// Timeouts of the default HTTP client. A mail/send of 1000 personalizations
// is about a megabyte and SendGrid answers it in well under a second; the
// overall limit only stops a request that would otherwise hang forever.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
	RequestTimeout        = 60 * time.Second
)

// Config configures a Client.
type Config struct {
	APIKey      string           // SendGrid API key with Mail Send permission; required
	BaseURL     string           // DefaultBaseURL when empty (https://api.eu.sendgrid.com for EU subusers)
	HTTPClient  *http.Client     // NewHTTPClient() when nil
	SandboxMode bool             // SendGrid validates every email and delivers none
	Now         func() time.Time // clock for Retry-After arithmetic; time.Now when nil
}

// String describes c without its API key.
func (c Config) String() string {
	return fmt.Sprintf("email.Config{APIKey:%s BaseURL:%q SandboxMode:%t}", redacted(c.APIKey), c.BaseURL, c.SandboxMode)
}

// GoString is String, so %#v does not print the key either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the key out of structured logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_key", redacted(c.APIKey)),
		slog.String("base_url", c.BaseURL), slog.Bool("sandbox_mode", c.SandboxMode))
}

func redacted(key string) string {
	if key == "" {
		return "(none)"
	}
	return "(redacted)"
}

// Client sends email batches through SendGrid. It implements
// channels.Mailer and channels.Checker and is safe for concurrent use by
// many goroutines: it holds no mutable state.
type Client struct {
	key     string
	base    string // no trailing slash
	hc      *http.Client
	sandbox bool
	now     func() time.Time
}

// New returns a Client for c. It refuses an empty or malformed API key and a
// base URL that is not an absolute http(s) URL.
func New(c Config) (*Client, error) {
	key := c.APIKey
	if strings.TrimSpace(key) == "" {
		return nil, errors.New("email: the SendGrid API key is empty: create one with Mail Send permission (Settings > API Keys)")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("email: the SendGrid API key contains spaces or control characters: paste it again without them")
	}
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return nil, fmt.Errorf("email: the SendGrid base URL %q does not parse", base)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("email: the SendGrid base URL %q is not an absolute http(s) URL", base)
	case u.User != nil:
		return nil, errors.New("email: the SendGrid base URL must not carry credentials; the key goes in APIKey")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("email: the SendGrid base URL %q must not have a query or fragment", base)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = NewHTTPClient()
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		key:     key,
		base:    strings.TrimRight(u.String(), "/"),
		hc:      hc,
		sandbox: c.SandboxMode,
		now:     now,
	}, nil
}

// NewHTTPClient returns the client New uses by default: bounded dial, TLS,
// response-header and overall timeouts; enough idle connections per host
// for many concurrent senders; redirects not followed (SendGrid does not
// redirect API calls, and a redirected POST must not carry the key
// elsewhere).
func NewHTTPClient() *http.Client {
	return &http.Client{
		Timeout: RequestTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   TLSHandshakeTimeout,
			ResponseHeaderTimeout: ResponseHeaderTimeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// String describes the client without its API key.
func (c *Client) String() string {
	return fmt.Sprintf("email.Client{BaseURL:%q SandboxMode:%t}", c.base, c.sandbox)
}

// GoString is String, so %#v does not print the key either.
func (c *Client) GoString() string { return c.String() }

// LogValue keeps the key out of structured logs.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", c.base), slog.Bool("sandbox_mode", c.sandbox))
}

// newRequest builds an authenticated request to path.
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer "+c.key)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", UserAgent)
	return r, nil
}
