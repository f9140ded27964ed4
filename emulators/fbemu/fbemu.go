// Package fbemu is an in-process emulator of the part of the Facebook Graph
// API that breachcast uses: Page feed posts, comments, hiding and deleting,
// the Page node, /me and /debug_token. It listens on loopback, checks tokens
// and appsecret_proof as Graph does, answers real Graph error objects, checks
// posted parameters against Meta's spec, records every request (and where its
// token came from, so tests can prove a token never travelled in a URL),
// injects faults at runtime, and sends signed Page webhooks for customer
// comments like Facebook does.
package fbemu

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for Options left empty.
const (
	DefaultAppID     = "100000000000042"
	DefaultAppSecret = "emulator-app-secret"
	DefaultPageID    = "100000000000001"
	DefaultPageName  = "Breachcast Demo"
	DefaultPageToken = "EAAemulatorPageToken"
)

// DefaultPermissions are the permissions granted when Options.Permissions is
// nil: everything breachcast needs to post, moderate and read comments.
var DefaultPermissions = []string{
	"pages_show_list", "pages_read_engagement", "pages_manage_posts",
	"pages_manage_engagement", "pages_read_user_content",
}

// Options configure a Server.
type Options struct {
	AppID     string
	AppSecret string // signs webhooks and keys appsecret_proof
	PageID    string
	PageName  string
	PageToken string

	TokenExpiry      time.Time // zero: the token never expires
	DataAccessExpiry time.Time // zero: 90 days after creation
	Permissions      []string  // granted scopes; nil means DefaultPermissions
	AllowNoProof     bool      // accept calls without appsecret_proof (the app setting "Require App Secret" off)

	// Spec is Meta's Graph API spec, from LoadSpec. When set, posted
	// parameters and requested fields are checked against it; when nil,
	// only what the emulator implements is accepted.
	Spec *Spec

	// WebhookURL receives signed Page webhooks for every comment and post
	// change, when AppSecret is set too. It can be set later with
	// SetWebhookURL.
	WebhookURL string

	// AutoReply makes a few customer comments arrive on each new Page post,
	// AutoReplyDelay apart (default 2s), for the demo.
	AutoReply      bool
	AutoReplyDelay time.Duration

	Now        func() time.Time
	Logger     *slog.Logger
	HTTPClient *http.Client // for webhook deliveries
}

// Request is one API request the emulator received.
type Request struct {
	Method      string     // effective method, after a POST "method" override
	Path        string     // URL path, version included
	URL         string     // the request URI exactly as received
	TokenSource string     // "header", "query", "form" or "" when no token came
	TokenKind   string     // "page", "app" (the "id|secret" app token), "other", or ""
	Params      url.Values // query and form parameters; token values redacted
	Unknown     []string   // parameters the spec does not know for the endpoint
	Status      int
	ErrorCode   int // Graph error code answered, 0 on success
}

// GraphError is an error object the emulator answers with.
type GraphError struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string
	Message    string
	Transient  bool
	header     http.Header
}

// Error returns the Graph message.
func (e *GraphError) Error() string { return e.Message }

// Canned errors for fault injection.
var (
	// ErrTransient is Graph's "please retry" service error (code 2).
	ErrTransient = GraphError{HTTPStatus: 500, Code: 2, Type: "OAuthException", Message: "An unexpected error has occurred. Please retry your request later.", Transient: true}
	// ErrUnknown is Graph's unknown error (code 1).
	ErrUnknown = GraphError{HTTPStatus: 500, Code: 1, Type: "OAuthException", Message: "An unknown error has occurred."}
	// ErrPermission is a missing publish permission (code 200).
	ErrPermission = GraphError{HTTPStatus: 403, Code: 200, Type: "OAuthException", Message: "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts permission"}
)

// Server is the emulator. It is an http.Handler; Start serves it on
// 127.0.0.1.
type Server struct {
	opts Options
	now  func() time.Time
	log  *slog.Logger
	spec *Spec

	mu          sync.Mutex
	nextID      int64
	nextSeq     int64
	posts       map[string]*post
	postOrder   []*post
	comments    map[string]*comment
	requests    []Request
	tokenExpiry time.Time
	dataExpiry  time.Time
	issuedAt    time.Time
	perms       []string
	latency     time.Duration
	failNext    []GraphError
	failPath    map[string][]GraphError
	webhookURL  string
	traces      int64

	hooks hookQueue

	stop      chan struct{}
	closeOnce sync.Once
	timers    []*time.Timer
	srv       *http.Server
	url       string
	wg        sync.WaitGroup
}

type actor struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type post struct {
	id, num  string
	message  string
	link     string
	from     actor
	created  time.Time
	updated  time.Time
	hidden   bool
	deleted  bool
	unpublsh bool
}

type comment struct {
	id       string
	postID   string
	parentID string // the post for a top-level comment, else the comment replied to
	seq      int64
	from     actor
	message  string
	created  time.Time
	hidden   bool
	removed  bool
}

// New returns an emulator; Start serves it.
func New(o Options) *Server {
	if o.AppID == "" {
		o.AppID = DefaultAppID
	}
	if o.AppSecret == "" {
		o.AppSecret = DefaultAppSecret
	}
	if o.PageID == "" {
		o.PageID = DefaultPageID
	}
	if o.PageName == "" {
		o.PageName = DefaultPageName
	}
	if o.PageToken == "" {
		o.PageToken = DefaultPageToken
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.AutoReplyDelay <= 0 {
		o.AutoReplyDelay = 2 * time.Second
	}
	s := &Server{
		opts:        o,
		now:         o.Now,
		log:         o.Logger,
		nextID:      1000000000,
		posts:       map[string]*post{},
		comments:    map[string]*comment{},
		tokenExpiry: o.TokenExpiry,
		dataExpiry:  o.DataAccessExpiry,
		issuedAt:    o.Now(),
		perms:       slices.Clone(o.Permissions),
		webhookURL:  o.WebhookURL,
		stop:        make(chan struct{}),
	}
	if s.perms == nil {
		s.perms = slices.Clone(DefaultPermissions)
	}
	if s.dataExpiry.IsZero() {
		s.dataExpiry = s.issuedAt.Add(90 * 24 * time.Hour)
	}
	s.spec = o.Spec
	s.hooks.init()
	return s
}

// Start serves the emulator on 127.0.0.1 at a free port and returns its base
// URL (with a trailing slash, as the Graph client wants it).
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.url != "" {
		return s.url, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("fbemu: listen: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	s.url = "http://" + ln.Addr().String() + "/"
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("fbemu: serve", "err", err)
		}
	}()
	return s.url, nil
}

// URL returns the base URL after Start, else "".
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close stops the server, the auto-reply timers and webhook delivery.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		for _, t := range s.timers {
			t.Stop()
		}
		srv := s.srv
		s.mu.Unlock()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
		}
		s.wg.Wait()
	})
}

// AppsecretProof returns the appsecret_proof Graph expects for token: the
// hex HMAC-SHA256 of the token keyed by the app secret.
func AppsecretProof(appSecret, token string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// --- recording and inspection -------------------------------------------

// Requests returns a copy of every request received so far (the latest
// 10000).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Params = cloneValues(r.Params)
		r.Unknown = slices.Clone(r.Unknown)
		out[i] = r
	}
	return out
}

// Post is a snapshot of a Page post.
type Post struct {
	ID, Message, Link string
	Created           time.Time
	Hidden, Deleted   bool
}

// Comment is a snapshot of a comment.
type Comment struct {
	ID, PostID, ParentID string
	AuthorID, AuthorName string
	Message              string
	Created              time.Time
	Hidden, Removed      bool
}

// Posts returns every Page post made, oldest first, deleted ones included.
func (s *Server) Posts() []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Post
	for _, p := range s.postOrder {
		out = append(out, Post{ID: p.id, Message: p.message, Link: p.link, Created: p.created, Hidden: p.hidden, Deleted: p.deleted})
	}
	return out
}

// Comments returns every comment under postID (replies included), oldest
// first, removed ones included.
func (s *Server) Comments(postID string) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*comment
	for _, c := range s.comments {
		if c.postID == postID {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, b *comment) int { return int(a.seq - b.seq) })
	var out []Comment
	for _, c := range cs {
		out = append(out, Comment{ID: c.id, PostID: c.postID, ParentID: c.parentID, AuthorID: c.from.ID,
			AuthorName: c.from.Name, Message: c.message, Created: c.created, Hidden: c.hidden, Removed: c.removed})
	}
	return out
}

// --- fault injection ----------------------------------------------------

// SetLatency delays every response by d (0 turns it off).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n requests fail with e.
func (s *Server) FailNext(n int, e GraphError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, e)
	}
}

// FailPath makes the next n requests to path (without the version, as
// "{post-id}/comments") fail with e; other paths are unaffected.
func (s *Server) FailPath(path string, n int, e GraphError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPath == nil {
		s.failPath = map[string][]GraphError{}
	}
	p := strings.Trim(path, "/")
	for range n {
		s.failPath[p] = append(s.failPath[p], e)
	}
}

// RateLimitNext makes the next n requests fail with rate-limit error code
// (4 app, 17 user, 32 page, 613 custom, 80001 page business use case), with
// X-App-Usage and X-Business-Use-Case-Usage headers saying access returns in
// regain (rounded up to whole minutes, as Graph reports it).
func (s *Server) RateLimitNext(n, code int, regain time.Duration) {
	mins := int((regain + time.Minute - 1) / time.Minute)
	msg := map[int]string{
		4:     "(#4) Application request limit reached",
		17:    "(#17) User request limit reached",
		32:    "(#32) Page request limit reached",
		613:   "(#613) Calls to this api have exceeded the rate limit.",
		80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
	}[code]
	if msg == "" {
		msg = fmt.Sprintf("(#%d) Request limit reached", code)
	}
	h := http.Header{}
	h.Set("X-App-Usage", `{"call_count":100,"total_cputime":37,"total_time":41}`)
	buc, _ := json.Marshal(map[string][]map[string]any{s.opts.PageID: {{
		"type": "pages", "call_count": 100, "total_cputime": 37, "total_time": 41,
		"estimated_time_to_regain_access": mins,
	}}})
	h.Set("X-Business-Use-Case-Usage", string(buc))
	e := GraphError{HTTPStatus: 400, Code: code, Type: "OAuthException", Message: msg, header: h}
	if code == 80001 || code == 32 {
		e.HTTPStatus = 403
	}
	s.FailNext(n, e)
}

// ExpireToken makes the Page token expired from now on.
func (s *Server) ExpireToken() { s.SetTokenExpiry(s.now().Add(-time.Second)) }

// SetTokenExpiry sets when the Page token expires (zero: never).
func (s *Server) SetTokenExpiry(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenExpiry = t
}

// SetPermissions replaces the scopes granted to the Page token.
func (s *Server) SetPermissions(perms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perms = slices.Clone(perms)
}

// --- HTTP -----------------------------------------------------------------

var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// reqCtx is one request being served.
type reqCtx struct {
	r      *http.Request
	method string
	params url.Values
	token  string
	source string
	base   string // scheme://host/version/ for paging links
	rec    *Request
}

func (rc *reqCtx) get(name string) string { return rc.params.Get(name) }

// ServeHTTP answers one Graph API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	lat := s.latency
	s.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.stop:
			t.Stop()
		}
	}

	rec := &Request{Method: r.Method, Path: r.URL.Path, URL: r.RequestURI}
	body, gerr := s.serve(r, rec)
	status := http.StatusOK
	if gerr != nil {
		status = gerr.HTTPStatus
		rec.ErrorCode = gerr.Code
		for k, v := range gerr.header {
			w.Header()[k] = v
		}
		if gerr.Type == "OAuthException" && gerr.Code == 190 {
			w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+strings.ReplaceAll(gerr.Message, `"`, `'`)+`"`)
		}
		body = s.errorBody(gerr)
	}
	rec.Status = status
	s.mu.Lock()
	if len(s.requests) >= maxRecorded {
		s.requests = slices.Delete(s.requests, 0, len(s.requests)-maxRecorded+1)
	}
	s.requests = append(s.requests, *rec)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Facebook-API-Version", "v21.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) errorBody(e *GraphError) any {
	s.mu.Lock()
	s.traces++
	trace := "AemuTrace" + strconv.FormatInt(s.traces, 36)
	s.mu.Unlock()
	obj := map[string]any{"message": e.Message, "type": e.Type, "code": e.Code, "fbtrace_id": trace}
	if e.Subcode != 0 {
		obj["error_subcode"] = e.Subcode
	}
	if e.Transient {
		obj["is_transient"] = true
	}
	return map[string]any{"error": obj}
}

func gerr(status, code int, typ, format string, args ...any) *GraphError {
	return &GraphError{HTTPStatus: status, Code: code, Type: typ, Message: fmt.Sprintf(format, args...)}
}

func badParam(format string, args ...any) *GraphError {
	return gerr(400, 100, "OAuthException", "(#100) "+format, args...)
}

func (s *Server) serve(r *http.Request, rec *Request) (any, *GraphError) {
	r.Body = http.MaxBytesReader(nil, r.Body, 4<<20)
	if err := r.ParseMultipartForm(4 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return nil, badParam("Could not read the request body: %v", err)
	}
	params := url.Values{}
	for k, v := range r.Form {
		params[k] = v
	}
	rc := &reqCtx{r: r, method: r.Method, params: params, rec: rec}
	if r.Method == http.MethodPost {
		switch m := strings.ToUpper(params.Get("method")); m {
		case "GET", "DELETE", "POST":
			rc.method = m
		case "":
		default:
			return nil, badParam("Unsupported method override %q", params.Get("method"))
		}
	}
	rec.Method = rc.method

	// Where did the token come from? Recorded so tests can assert it never
	// travelled in a URL.
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, _ := strings.Cut(a, " ")
		if strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth") {
			rc.token, rc.source = strings.TrimSpace(tok), "header"
		}
	}
	if rc.token == "" {
		if t := r.URL.Query().Get("access_token"); t != "" {
			rc.token, rc.source = t, "query"
		} else if t := r.PostForm.Get("access_token"); t != "" {
			rc.token, rc.source = t, "form"
		}
	}
	rec.TokenSource = rc.source
	switch {
	case rc.token == "":
	case hmac.Equal([]byte(rc.token), []byte(s.opts.PageToken)):
		rec.TokenKind = "page"
	case hmac.Equal([]byte(rc.token), []byte(s.opts.AppID+"|"+s.opts.AppSecret)):
		rec.TokenKind = "app"
	default:
		rec.TokenKind = "other"
	}
	rec.Params = redact(params)

	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	version := "v21.0"
	if len(segs) > 0 && versionRE.MatchString(segs[0]) {
		version, segs = segs[0], segs[1:]
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	rc.base = scheme + "://" + r.Host + "/" + version + "/"

	s.mu.Lock()
	var injected *GraphError
	if p := strings.Join(segs, "/"); len(s.failPath[p]) > 0 {
		e := s.failPath[p][0]
		s.failPath[p] = s.failPath[p][1:]
		injected = &e
	} else if len(s.failNext) > 0 {
		e := s.failNext[0]
		s.failNext = s.failNext[1:]
		injected = &e
	}
	s.mu.Unlock()
	if injected != nil {
		return nil, injected
	}

	if len(segs) == 0 || segs[0] == "" || len(segs) > 2 {
		return nil, badParam("Unknown path components: %s", r.URL.Path)
	}
	if segs[0] == "debug_token" && len(segs) == 1 {
		return s.debugToken(rc)
	}
	if e := s.authenticate(rc); e != nil {
		return nil, e
	}
	id := segs[0]
	if id == "me" {
		id = s.opts.PageID
	}
	if len(segs) == 1 {
		return s.node(rc, id)
	}
	return s.edge(rc, id, segs[1])
}

func (s *Server) authenticate(rc *reqCtx) *GraphError {
	if rc.token == "" {
		return gerr(400, 104, "OAuthException", "An access token is required to request this resource.")
	}
	if !hmac.Equal([]byte(rc.token), []byte(s.opts.PageToken)) {
		return gerr(400, 190, "OAuthException", "Invalid OAuth access token - Cannot parse access token")
	}
	if !s.opts.AllowNoProof {
		proof := rc.get("appsecret_proof")
		if proof == "" {
			return gerr(400, 100, "GraphMethodException", "API calls from the server require an appsecret_proof argument")
		}
		if !hmac.Equal([]byte(proof), []byte(AppsecretProof(s.opts.AppSecret, rc.token))) {
			return gerr(400, 100, "GraphMethodException", "Invalid appsecret_proof provided in the API argument")
		}
	}
	s.mu.Lock()
	exp := s.tokenExpiry
	s.mu.Unlock()
	if now := s.now(); !exp.IsZero() && !now.Before(exp) {
		e := gerr(400, 190, "OAuthException", "Error validating access token: Session has expired on %s. The current time is %s.",
			exp.UTC().Format("Monday, 02-Jan-06 15:04:05 MST"), now.UTC().Format("Monday, 02-Jan-06 15:04:05 MST"))
		e.Subcode = 463
		return e
	}
	return nil
}

func (s *Server) hasPerm(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.perms, p)
}

// checkParams answers error 100 for a parameter the endpoint does not take,
// and records it.
func (s *Server) checkParams(rc *reqCtx, endpoint string) *GraphError {
	var unknown []string
	for k := range rc.params {
		if k == "input_token" && strings.HasPrefix(endpoint, "debug_token") {
			continue
		}
		if !s.spec.paramAllowed(endpoint, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	rc.rec.Unknown = unknown
	return badParam("Param %s is not a valid parameter for this endpoint", strings.Join(unknown, ", "))
}

// fieldsFor parses the fields parameter and checks every name exists on node.
func (s *Server) fieldsFor(rc *reqCtx, node string, dflt []string) ([]string, *GraphError) {
	f := rc.get("fields")
	if f == "" {
		return dflt, nil
	}
	var out []string
	depth, start := 0, 0
	flush := func(end int) *GraphError {
		name := strings.TrimSpace(f[start:end])
		if i := strings.IndexAny(name, "{.("); i >= 0 {
			name = name[:i]
		}
		if name == "" {
			return nil
		}
		if !s.spec.fieldKnown(node, name) {
			return badParam("Tried accessing nonexisting field (%s) on node type (%s)", name, node)
		}
		out = append(out, name)
		return nil
	}
	for i, ch := range f {
		switch ch {
		case '{', '(':
			depth++
		case '}', ')':
			depth--
		case ',':
			if depth == 0 {
				if e := flush(i); e != nil {
					return nil, e
				}
				start = i + 1
			}
		}
	}
	if e := flush(len(f)); e != nil {
		return nil, e
	}
	return out, nil
}

func redact(v url.Values) url.Values {
	out := cloneValues(v)
	for _, k := range []string{"access_token", "input_token", "appsecret_proof"} {
		if _, ok := out[k]; ok {
			out[k] = []string{"<redacted>"}
		}
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// maxRecorded bounds the requests and deliveries kept for inspection, so a
// long demo does not grow without limit.
const maxRecorded = 10000

// graphTime is Graph's timestamp format.
const graphTime = "2006-01-02T15:04:05-0700"
