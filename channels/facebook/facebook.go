// Package facebook is the Facebook Page channel: it publishes notices as Page
// posts through the Graph API (later updates as new posts naming the first,
// or as comments under it), hides or deletes them, collects customer
// comments from signed Page webhooks or by polling, and checks that the Page
// token is fit for the day it is needed.
//
// The Page token travels only in the Authorization header, every call
// carries appsecret_proof, and neither the token nor the app secret appears
// in a URL, a log line or an error message.
package facebook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	fb "github.com/huandu/facebook/v2"

	"github.com/breachcast/breachcast/channels"
)

// Name is the channel name, used for config keys, routes and rows.
const Name = "facebook"

// GraphVersion is the Graph API version every call is pinned to.
const GraphVersion = "v21.0"

// DefaultBaseURL is the Graph API host.
const DefaultBaseURL = "https://graph.facebook.com/"

// WebURL is where posts and comments are shown to people.
const WebURL = "https://www.facebook.com/"

// Publishing modes for later updates of an incident.
const (
	ModePost    = "post"    // a new Page post that names and links the first (default)
	ModeComment = "comment" // a comment on the incident's first post
)

// Retract modes.
const (
	RetractHide   = "hide"   // hide the post from the Page (reversible; default)
	RetractDelete = "delete" // delete it
)

// Graph's limits on text length, in characters.
const (
	MaxPostChars    = 63206
	MaxCommentChars = 8000
)

// Permissions the Page token needs: to post, to read comments and to
// comment or moderate.
var Permissions = []string{"pages_manage_posts", "pages_read_engagement", "pages_manage_engagement"}

// Config configures a Client. PageID, PageToken, AppID and AppSecret are
// required.
type Config struct {
	BaseURL     string // Graph API base URL; DefaultBaseURL when empty
	AppID       string
	AppSecret   string // keys appsecret_proof and verifies webhook signatures
	PageID      string
	PageToken   string // a Page access token; sent only in the Authorization header
	VerifyToken string // answers the webhook subscription handshake; webhooks are refused without it
	Mode        string // ModePost (default) or ModeComment
	RetractMode string // RetractHide (default) or RetractDelete
	HTTPClient  *http.Client
	Now         func() time.Time
	Logger      *slog.Logger
}

// Client is the Facebook Page channel. It implements channels.Publisher,
// channels.Retracter, channels.Receiver, channels.Poller and
// channels.Checker. It is safe for concurrent use.
type Client struct {
	cfg     Config
	session *fb.Session // Page token, with appsecret_proof
	app     *fb.Session // app token "id|secret", for /debug_token only
	now     func() time.Time
	log     *slog.Logger

	mu        sync.Mutex
	rootTimes map[string]time.Time // creation time of incident first posts, for update intros
}

var (
	_ channels.Publisher = (*Client)(nil)
	_ channels.Retracter = (*Client)(nil)
	_ channels.Receiver  = (*Client)(nil)
	_ channels.Poller    = (*Client)(nil)
	_ channels.Checker   = (*Client)(nil)
)

var (
	pageIDRE   = regexp.MustCompile(`^[0-9]{1,32}$`)
	objectIDRE = regexp.MustCompile(`^[0-9]{1,32}(_[0-9]{1,32})?$`)
)

// New checks c and returns a Client.
func New(c Config) (*Client, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"page id", c.PageID}, {"page token", c.PageToken}, {"app id", c.AppID}, {"app secret", c.AppSecret},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("facebook: config is missing the %s", strings.Join(missing, ", "))
	}
	if !pageIDRE.MatchString(c.PageID) {
		return nil, fmt.Errorf("facebook: page id %q is not a numeric Facebook Page id", c.PageID)
	}
	switch c.Mode {
	case "":
		c.Mode = ModePost
	case ModePost, ModeComment:
	default:
		return nil, fmt.Errorf("facebook: mode %q is not %q or %q", c.Mode, ModePost, ModeComment)
	}
	switch c.RetractMode {
	case "":
		c.RetractMode = RetractHide
	case RetractHide, RetractDelete:
	default:
		return nil, fmt.Errorf("facebook: retract mode %q is not %q or %q", c.RetractMode, RetractHide, RetractDelete)
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("facebook: base url %q is not an http(s) URL without query or credentials", c.BaseURL)
	}
	if !strings.HasSuffix(c.BaseURL, "/") {
		c.BaseURL += "/" // the Graph client wants the trailing slash
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	if c.HTTPClient != nil {
		cp := *c.HTTPClient
		hc = &cp
		if hc.Timeout == 0 {
			hc.Timeout = 30 * time.Second
		}
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &transport{base: base, tokens: []string{c.PageToken, c.AppSecret}}

	app := fb.New(c.AppID, c.AppSecret)
	app.EnableAppsecretProof = true
	s := app.Session(c.PageToken)
	s.HttpClient = hc
	s.Version = GraphVersion
	s.BaseURL = c.BaseURL
	s.UseAuthorizationHeader()
	s.AppsecretProof() // computed once here: sessions are copied per call

	// /debug_token wants an app access token; it needs no proof.
	as := app.Session(app.AppAccessToken())
	if err := as.EnableAppsecretProof(false); err != nil {
		return nil, fmt.Errorf("facebook: %w", err)
	}
	as.HttpClient = hc
	as.Version = GraphVersion
	as.BaseURL = c.BaseURL
	as.UseAuthorizationHeader()

	return &Client{cfg: c, session: s, app: as, now: c.Now, log: c.Logger.With("channel", Name), rootTimes: map[string]time.Time{}}, nil
}

// Name returns the channel name.
func (c *Client) Name() string { return Name }

// call makes one Graph API call and maps a failure to *channels.Error. perm
// is the permission the call needs, named in the error when Graph does not.
func (c *Client) call(ctx context.Context, op, perm string, method fb.Method, path string, params fb.Params) (fb.Result, error) {
	return c.callAs(ctx, c.session, op, perm, method, path, params)
}

func (c *Client) callAs(ctx context.Context, s *fb.Session, op, perm string, method fb.Method, path string, params fb.Params) (fb.Result, error) {
	ctx, x := withExchange(ctx)
	res, err := s.WithContext(ctx).Api(path, method, params)
	if err == nil {
		return res, nil
	}
	var ge *fb.Error
	if errors.As(err, &ge) {
		return nil, graphError(op, perm, x.status, x.header, ge, c.now())
	}
	e := &channels.Error{Channel: Name, Op: op, Status: x.status, Err: err}
	switch {
	case errors.Is(err, errTokenInURL):
		e.Permanent, e.Message = true, errTokenInURL.Error()
	case ctx.Err() != nil:
		e.Message, e.Err = "gave up waiting for Facebook", ctx.Err()
	case x.status != 0:
		e.Message = "Facebook answered something that is not a Graph response"
		e.Permanent = channels.StatusPermanent(x.status)
		e.RetryAfter = channels.RetryAfter(x.header, c.now())
	default:
		e.Message = "no answer from Facebook"
	}
	return nil, e
}

// decode turns a Graph result into v through JSON.
func decode(res fb.Result, v any) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func invalid(op, format string, args ...any) error {
	return &channels.Error{Channel: Name, Op: op, Code: CodeInvalid, Permanent: true, Message: fmt.Sprintf(format, args...)}
}

// Publish makes p on the Page. The first post of an incident (p.Root == "")
// is a Page post with p.Link attached. Later updates are, in ModePost, new
// Page posts that open by naming and linking the first; in ModeComment,
// comments under the first. A retried Publish whose earlier attempt did
// reach Facebook gets Graph's duplicate error; Publish then finds the post
// already made and returns it instead of failing.
func (c *Client) Publish(ctx context.Context, p *channels.Post) (*channels.Receipt, error) {
	const op = "publish"
	if p == nil {
		return nil, invalid(op, "no post to publish")
	}
	text := strings.TrimSpace(p.Text)
	if text == "" && p.Link == "" {
		return nil, invalid(op, "post %s has no text and no link", p.Key)
	}
	if p.Link != "" {
		if u, err := url.Parse(p.Link); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, invalid(op, "post %s: link %q is not an http(s) URL", p.Key, p.Link)
		}
	}
	if p.Root == "" {
		return c.feedPost(ctx, p.Key, text, p.Link)
	}
	if !objectIDRE.MatchString(p.Root) {
		return nil, invalid(op, "post %s: root %q is not a Facebook post id", p.Key, p.Root)
	}
	if c.cfg.Mode == ModeComment {
		msg := text
		if p.Link != "" && !strings.Contains(msg, p.Link) {
			msg = strings.TrimSpace(msg + "\n\n" + p.Link)
		}
		return c.comment(ctx, p.Key, p.Root, msg)
	}
	return c.feedPost(ctx, p.Key, c.updateIntro(ctx, p.Root)+"\n\n"+text, p.Link)
}

func (c *Client) feedPost(ctx context.Context, key, msg, link string) (*channels.Receipt, error) {
	op := "POST /{page-id}/feed"
	if n := utf8.RuneCountInString(msg); n > MaxPostChars {
		return nil, invalid(op, "post %s is %d characters; Facebook allows %d", key, n, MaxPostChars)
	}
	params := fb.Params{"message": msg}
	if link != "" {
		params["link"] = link
	}
	res, err := c.call(ctx, op, "pages_manage_posts", fb.POST, "/"+c.cfg.PageID+"/feed", params)
	if err != nil {
		var ce *channels.Error
		if errors.As(err, &ce) && ce.Code == CodeDuplicate {
			if id := c.findPost(ctx, msg); id != "" {
				c.log.Info("post already on the page; an earlier attempt reached Facebook", "key", key, "post_id", id)
				return &channels.Receipt{ExternalID: id, URL: WebURL + id}, nil
			}
		}
		return nil, fmt.Errorf("post %s: %w", key, err)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := decode(res, &out); err != nil || !objectIDRE.MatchString(out.ID) {
		return nil, &channels.Error{Channel: Name, Op: op, Message: "Facebook did not return a post id", Err: err}
	}
	c.log.Info("posted to the page", "key", key, "post_id", out.ID)
	return &channels.Receipt{ExternalID: out.ID, URL: WebURL + out.ID}, nil
}

// findPost looks for msg among the Page's latest posts.
func (c *Client) findPost(ctx context.Context, msg string) string {
	res, err := c.call(ctx, "GET /{page-id}/feed", "pages_read_engagement", fb.GET, "/"+c.cfg.PageID+"/feed",
		fb.Params{"fields": "id,message,created_time", "limit": 25})
	if err != nil {
		c.log.Warn("could not look for the duplicate post", "err", err)
		return ""
	}
	var feed struct {
		Data []struct {
			ID      string `json:"id"`
			Message string `json:"message"`
		} `json:"data"`
	}
	if decode(res, &feed) != nil {
		return ""
	}
	for _, p := range feed.Data {
		if strings.TrimSpace(p.Message) == strings.TrimSpace(msg) && objectIDRE.MatchString(p.ID) {
			return p.ID
		}
	}
	return ""
}

func (c *Client) comment(ctx context.Context, key, root, msg string) (*channels.Receipt, error) {
	op := "POST /{post-id}/comments"
	if n := utf8.RuneCountInString(msg); n > MaxCommentChars {
		return nil, invalid(op, "comment %s is %d characters; Facebook allows %d", key, n, MaxCommentChars)
	}
	res, err := c.call(ctx, op, "pages_manage_engagement", fb.POST, "/"+root+"/comments", fb.Params{"message": msg})
	if err != nil {
		return nil, fmt.Errorf("comment %s: %w", key, err)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := decode(res, &out); err != nil || !objectIDRE.MatchString(out.ID) {
		return nil, &channels.Error{Channel: Name, Op: op, Message: "Facebook did not return a comment id", Err: err}
	}
	c.log.Info("commented on the incident post", "key", key, "post_id", root, "comment_id", out.ID)
	return &channels.Receipt{ExternalID: out.ID, URL: commentURL(root, out.ID)}, nil
}

func commentURL(postID, commentID string) string {
	return WebURL + postID + "?comment_id=" + url.QueryEscape(commentID)
}

// updateIntro is the opening line of a later update posted as a new post.
func (c *Client) updateIntro(ctx context.Context, root string) string {
	link := WebURL + root
	t, ok := c.rootTime(ctx, root)
	if !ok {
		return "Update to our earlier notice: " + link
	}
	now := c.now().UTC()
	day := t.UTC().Format("2 Jan")
	if t.UTC().Year() != now.Year() {
		day = t.UTC().Format("2 Jan 2006")
	}
	return "Update to our notice of " + day + ": " + link
}

// rootTime returns when the incident's first post was made, asking Graph
// once per root.
func (c *Client) rootTime(ctx context.Context, root string) (time.Time, bool) {
	c.mu.Lock()
	t, ok := c.rootTimes[root]
	c.mu.Unlock()
	if ok {
		return t, true
	}
	res, err := c.call(ctx, "GET /{post-id}", "pages_read_engagement", fb.GET, "/"+root, fb.Params{"fields": "created_time"})
	if err != nil {
		c.log.Warn("could not read the first post's date", "post_id", root, "err", err)
		return time.Time{}, false
	}
	var out struct {
		CreatedTime graphTime `json:"created_time"`
	}
	if decode(res, &out) != nil || out.CreatedTime.IsZero() {
		return time.Time{}, false
	}
	c.mu.Lock()
	c.rootTimes[root] = out.CreatedTime.Time
	c.mu.Unlock()
	return out.CreatedTime.Time, true
}

// Retract takes a post or comment down: hides it (RetractHide) or deletes it
// (RetractDelete). Retracting something already gone succeeds.
func (c *Client) Retract(ctx context.Context, externalID string) error {
	if !objectIDRE.MatchString(externalID) {
		return invalid("retract", "%q is not a Facebook post or comment id", externalID)
	}
	var err error
	if c.cfg.RetractMode == RetractDelete {
		_, err = c.call(ctx, "DELETE /{object-id}", "pages_manage_posts", fb.DELETE, "/"+externalID, nil)
	} else {
		_, err = c.call(ctx, "POST /{object-id} is_hidden", "pages_manage_posts", fb.POST, "/"+externalID, fb.Params{"is_hidden": true})
	}
	var ce *channels.Error
	if errors.As(err, &ce) && ce.Code == CodeNotFound {
		c.log.Info("retract: already gone", "object_id", externalID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("retract %s: %w", externalID, err)
	}
	c.log.Info("retracted", "object_id", externalID, "how", c.cfg.RetractMode)
	return nil
}
