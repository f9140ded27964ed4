// Package twitter is the X channel: it posts notices as threads with the X
// API v2 (POST /2/tweets, signed with OAuth 1.0a user context), takes posts
// down (DELETE /2/tweets/:id), fetches customers' replies (recent search by
// conversation and the mentions timeline, with cursors and a read budget,
// since X bills every post read) and checks the credentials and the app's
// write permission.
//
// It is a small client of our own for exactly these endpoints:
// dghubble/go-twitter speaks only API v1.1, whose statuses/update X now
// answers with error 453.
package twitter

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/dghubble/oauth1"
)

// Name is the channel name, as in breachcast.ChannelTwitter.
const Name = breachcast.ChannelTwitter

// DefaultBaseURL is the X API.
const DefaultBaseURL = "https://api.x.com"

// DefaultTimeout bounds one request when Config.HTTPClient sets none.
const DefaultTimeout = 30 * time.Second

// MaxTextLength bounds a post text in characters before it is sent: X's
// longest posts (for paying accounts) are 25,000 characters; ordinary
// accounts are refused by X itself above 280 weighted characters.
const MaxTextLength = 25000

// Error codes of the *channels.Error values this package returns.
const (
	CodeUnauthorized = "unauthorized"   // 401: credentials rejected
	CodeDuplicate    = "duplicate"      // 403: same text posted recently
	CodeReadOnly     = "read_only"      // 403: the app lacks write permission
	CodeNoAccess     = "no_access"      // 403: the app's API access level lacks the endpoint (453)
	CodeParentGone   = "parent_gone"    // 403: the post replied to is deleted or invisible
	CodeForbidden    = "forbidden"      // 403: anything else
	CodeRateLimited  = "rate_limited"   // 429, or our own wait for a window X said is used up
	CodeInvalid      = "invalid"        // 400, or input refused before calling X
	CodeNotFound     = "not_found"      // 404
	CodeUnavailable  = "unavailable"    // 5xx, no answer, timeouts
	CodeBadAnswer    = "bad_answer"     // an answer that is not the JSON X sends
	CodeNotDeleted   = "not_deleted"    // DELETE answered deleted:false
	CodeRedirect     = "redirect"       // a 3xx: the base URL is wrong
	CodeBadCursor    = "invalid_cursor" // Poll was given a cursor it did not write
)

// Operation names, used in errors and as rate-limit keys.
const (
	OpCreate   = "POST /2/tweets"
	OpDelete   = "DELETE /2/tweets/:id"
	OpSearch   = "GET /2/tweets/search/recent"
	OpMentions = "GET /2/users/:id/mentions"
	OpMe       = "GET /2/users/me"
)

// Config configures a Client.
type Config struct {
	// BaseURL of the X API; default DefaultBaseURL. Plain http is accepted
	// for loopback hosts only (the emulator), never across a network.
	BaseURL string

	// OAuth 1.0a user-context credentials: the app's consumer key and
	// secret (API key and secret) and the account's access token and
	// secret.
	ConsumerKey, ConsumerSecret, AccessToken, AccessSecret string

	// UserID and Username of the account; optional, else read from
	// GET /2/users/me once and cached.
	UserID, Username string

	// HTTPClient supplies the transport and timeout (default: a clone of
	// http.DefaultTransport and DefaultTimeout). Its transport is wrapped
	// by the OAuth 1.0a signer.
	HTTPClient *http.Client

	// ReadBudgetPerHour caps the posts Poll reads per clock hour (UTC), as
	// X bills each post read; 0 means no cap.
	ReadBudgetPerHour int

	// PollMin and PollMax bound NextPoll's interval; defaults 30 s and 15 min.
	PollMin, PollMax time.Duration

	// Now is the clock; default time.Now.
	Now func() time.Time

	// Logger receives debug and warning lines, never secrets; default
	// slog.Default().
	Logger *slog.Logger
}

// Client is the X channel. It implements channels.Publisher,
// channels.Retracter, channels.Poller and channels.Checker, and is safe for
// concurrent use.
type Client struct {
	base     *url.URL
	http     *http.Client
	now      func() time.Time
	log      *slog.Logger
	budget   int
	cfgID    string
	cfgName  string
	pollMin  time.Duration
	pollMax  time.Duration
	baseText string // base URL for messages

	mu       sync.Mutex
	userID   string
	username string
	limits   map[string]rateState
	reads    readWindow
	backoff  Backoff
}

var (
	idPattern       = regexp.MustCompile(`^[0-9]{1,19}$`)
	usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,15}$`)
)

// New checks c and returns a Client. Errors are *breachcast.Error with code
// invalid and say what is missing or wrong, never a secret's value.
func New(c Config) (*Client, error) {
	var missing []string
	for _, f := range []struct{ v, name string }{
		{c.ConsumerKey, "consumer key (API key)"},
		{c.ConsumerSecret, "consumer secret (API key secret)"},
		{c.AccessToken, "access token"},
		{c.AccessSecret, "access token secret"},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, breachcast.Errorf(breachcast.EINVALID,
			"twitter: missing X credentials: %s (find them under \"Keys and tokens\" of the app in the X developer portal)",
			strings.Join(missing, ", "))
	}
	raw := c.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := checkBaseURL(raw)
	if err != nil {
		return nil, err
	}
	username := strings.TrimPrefix(c.Username, "@")
	if username != "" && !usernamePattern.MatchString(username) {
		return nil, breachcast.Errorf(breachcast.EINVALID, "twitter: username %q is not an X username (1 to 15 letters, digits or _)", c.Username)
	}
	if c.UserID != "" && !idPattern.MatchString(c.UserID) {
		return nil, breachcast.Errorf(breachcast.EINVALID, "twitter: user id %q is not a numeric X user id", c.UserID)
	}
	if c.ReadBudgetPerHour < 0 {
		return nil, breachcast.Errorf(breachcast.EINVALID, "twitter: read budget per hour is %d; use 0 for no cap or a positive number", c.ReadBudgetPerHour)
	}
	cl := &Client{
		base:     base,
		http:     signingClient(c),
		now:      c.Now,
		log:      c.Logger,
		budget:   c.ReadBudgetPerHour,
		cfgID:    c.UserID,
		cfgName:  username,
		userID:   c.UserID,
		username: username,
		pollMin:  c.PollMin,
		pollMax:  c.PollMax,
		baseText: base.String(),
		limits:   map[string]rateState{},
	}
	if cl.now == nil {
		cl.now = time.Now
	}
	if cl.log == nil {
		cl.log = slog.Default()
	}
	cl.backoff = Backoff{Min: c.PollMin, Max: c.PollMax}
	return cl, nil
}

func checkBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, breachcast.Errorf(breachcast.EINVALID, "twitter: base URL %q is not an absolute http(s) URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, breachcast.Errorf(breachcast.EINVALID, "twitter: base URL must not carry credentials, a query or a fragment")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, breachcast.Errorf(breachcast.EINVALID,
			"twitter: base URL %q uses plain http to a host that is not loopback; signed requests and customers' replies would cross the network unencrypted, use https", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// signingClient wraps the configured transport in the OAuth 1.0a signer.
// The credentials travel in the Authorization header only, never in URLs.
func signingClient(c Config) *http.Client {
	var rt http.RoundTripper
	timeout := DefaultTimeout
	if c.HTTPClient != nil {
		rt = c.HTTPClient.Transport
		if c.HTTPClient.Timeout > 0 {
			timeout = c.HTTPClient.Timeout
		}
	}
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ResponseHeaderTimeout = timeout
		rt = t
	}
	ctx := context.WithValue(context.Background(), oauth1.HTTPClient, &http.Client{Transport: rt})
	hc := oauth1.NewConfig(c.ConsumerKey, c.ConsumerSecret).Client(ctx, oauth1.NewToken(c.AccessToken, c.AccessSecret))
	hc.Timeout = timeout
	// X's API does not redirect; a redirect means a wrong base URL, and
	// following it would send signed requests elsewhere.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// Name returns "twitter".
func (c *Client) Name() string { return Name }

type createRequest struct {
	Text  string     `json:"text"`
	Reply *replySpec `json:"reply,omitempty"`
}

type replySpec struct {
	InReplyToTweetID string `json:"in_reply_to_tweet_id"`
}

// Publish posts p.Text, as a reply to p.Parent when it is set (so a thread
// is a chain of Publish calls, each with the previous post as Parent). The
// text is posted as given: X shows links inline, so p.Link is expected in
// the text already and is not added. Errors are *channels.Error; a
// duplicate (Code CodeDuplicate) and every other refusal but 429 are
// permanent.
func (c *Client) Publish(ctx context.Context, p *channels.Post) (*channels.Receipt, error) {
	if p == nil || strings.TrimSpace(p.Text) == "" {
		return nil, c.invalid(OpCreate, "the post has no text")
	}
	if n := utf8.RuneCountInString(p.Text); n > MaxTextLength {
		return nil, c.invalid(OpCreate, fmt.Sprintf("the post text is %d characters, more than X accepts (%d)", n, MaxTextLength))
	}
	req := createRequest{Text: p.Text}
	if p.Parent != "" {
		if !idPattern.MatchString(p.Parent) {
			return nil, c.invalid(OpCreate, fmt.Sprintf("parent %q is not an X post id", p.Parent))
		}
		req.Reply = &replySpec{InReplyToTweetID: p.Parent}
	}
	var out struct {
		Data struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		} `json:"data"`
	}
	if _, err := c.do(ctx, call{op: OpCreate, method: http.MethodPost, path: "/2/tweets", body: req}, &out); err != nil {
		return nil, err
	}
	if !idPattern.MatchString(out.Data.ID) {
		return nil, &channels.Error{Channel: Name, Op: OpCreate, Status: http.StatusCreated, Code: CodeBadAnswer,
			Message: "X accepted the post but its answer holds no post id"}
	}
	c.log.Debug("twitter post created", "key", p.Key, "id", out.Data.ID, "reply_to", p.Parent)
	return &channels.Receipt{ExternalID: out.Data.ID, URL: c.postURL(ctx, out.Data.ID)}, nil
}

// postURL is the public link of a post of ours. Without a known username
// it falls back to X's username-less link rather than fail a post that was
// made.
func (c *Client) postURL(ctx context.Context, id string) string {
	c.mu.Lock()
	username := c.username
	c.mu.Unlock()
	if username == "" {
		if me, _, err := c.me(ctx); err == nil {
			username = me.Data.Username
		}
	}
	if username == "" {
		return "https://x.com/i/status/" + id
	}
	return "https://x.com/" + username + "/status/" + id
}

// Retract deletes the post id. A post that is already gone (404) counts as
// retracted.
func (c *Client) Retract(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return c.invalid(OpDelete, fmt.Sprintf("%q is not an X post id", id))
	}
	var out struct {
		Data struct {
			Deleted bool `json:"deleted"`
		} `json:"data"`
	}
	_, err := c.do(ctx, call{op: OpDelete, method: http.MethodDelete, path: "/2/tweets/" + id}, &out)
	if e, ok := err.(*channels.Error); ok && e.Status == http.StatusNotFound {
		c.log.Debug("twitter post already gone", "id", id)
		return nil
	}
	if err != nil {
		return err
	}
	if !out.Data.Deleted {
		return &channels.Error{Channel: Name, Op: OpDelete, Status: http.StatusOK, Code: CodeNotDeleted, Permanent: true,
			Message: "X answered that post " + id + " was not deleted"}
	}
	return nil
}

type meResponse struct {
	Data struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"data"`
}

// account returns our user id and username, from the Config or from one
// GET /2/users/me whose answer is cached.
func (c *Client) account(ctx context.Context) (id, username string, err error) {
	c.mu.Lock()
	id, username = c.userID, c.username
	c.mu.Unlock()
	if id != "" && username != "" {
		return id, username, nil
	}
	me, _, err := c.me(ctx)
	if err != nil {
		return "", "", err
	}
	return me.Data.ID, me.Data.Username, nil
}

func (c *Client) me(ctx context.Context) (*meResponse, http.Header, error) {
	var me meResponse
	h, err := c.do(ctx, call{op: OpMe, method: http.MethodGet, path: "/2/users/me"}, &me)
	if err != nil {
		return nil, h, err
	}
	if !idPattern.MatchString(me.Data.ID) || me.Data.Username == "" {
		return nil, h, &channels.Error{Channel: Name, Op: OpMe, Status: http.StatusOK, Code: CodeBadAnswer,
			Message: "X's answer names no account"}
	}
	c.mu.Lock()
	if c.userID == "" {
		c.userID = me.Data.ID
	}
	if c.username == "" {
		c.username = me.Data.Username
	}
	c.mu.Unlock()
	return &me, h, nil
}

// Check asks X who the credentials belong to (GET /2/users/me) and, from
// the x-access-level header of that answer, whether the app may post.
func (c *Client) Check(ctx context.Context) []channels.Check {
	creds := channels.Check{Channel: Name, Name: "credentials"}
	write := channels.Check{Channel: Name, Name: "write access"}
	me, h, err := c.me(ctx)
	if err != nil {
		creds.Detail = c.describe(err)
		write.Detail = "not checked: the credentials check failed"
		if level := h.Get("x-access-level"); level != "" {
			write.OK, write.Detail = accessLevel(level)
		}
		return []channels.Check{creds, write}
	}
	d := me.Data
	creds.OK = true
	creds.Detail = fmt.Sprintf("X accepts the credentials: signed in as @%s (%s, user id %s)", d.Username, d.Name, d.ID)
	if c.cfgID != "" && c.cfgID != d.ID {
		creds.OK = false
		creds.Detail = fmt.Sprintf("the access token belongs to @%s (user id %s), but the configured user id is %s: use that account's tokens or fix the configured id", d.Username, d.ID, c.cfgID)
	} else if c.cfgName != "" && !strings.EqualFold(c.cfgName, d.Username) {
		creds.OK = false
		creds.Detail = fmt.Sprintf("the access token belongs to @%s, but the configured username is @%s: use that account's tokens or fix the configured username", d.Username, c.cfgName)
	}
	write.OK, write.Detail = accessLevel(h.Get("x-access-level"))
	return []channels.Check{creds, write}
}

// accessLevel reads X's x-access-level header: read, read-write or
// read-write-directmessages.
func accessLevel(level string) (bool, string) {
	switch level {
	case "read-write", "read-write-directmessages":
		return true, "the app may post and delete posts (access level " + level + ")"
	case "read":
		return false, "the app has Read-only permission, so every post will be refused with 403: in the X developer portal set the app's " +
			"User authentication settings to \"Read and write\", then regenerate the access token and secret and update them here " +
			"(tokens keep the permission they were created with)"
	case "":
		return false, "X did not say the app's permission (no x-access-level header); posting may be refused"
	}
	return false, fmt.Sprintf("X reports an unknown access level %q; posting may be refused", level)
}

// describe is an error in plain words for a check line.
func (c *Client) describe(err error) string {
	e, ok := err.(*channels.Error)
	if !ok {
		return err.Error()
	}
	if e.Status == 0 && e.Code == CodeUnavailable {
		return "could not reach X at " + c.baseText + ": " + e.Message
	}
	return e.Message
}

func (c *Client) invalid(op, msg string) *channels.Error {
	return &channels.Error{Channel: Name, Op: op, Code: CodeInvalid, Permanent: true, Message: msg}
}

// isNewer reports whether id a is greater than id b (both decimal ids;
// "" is less than any id).
func isNewer(a, b string) bool {
	if b == "" {
		return a != ""
	}
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	return x > y
}

func maxID(ids ...string) string {
	m := ""
	for _, id := range ids {
		if isNewer(id, m) {
			m = id
		}
	}
	return m
}
