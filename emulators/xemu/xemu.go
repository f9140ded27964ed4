// Package xemu is an in-process X (Twitter) API v2 emulator on loopback. It
// speaks the wire shapes of the endpoints breachcast uses (POST and DELETE
// /2/tweets, GET /2/tweets/:id, GET /2/tweets/search/recent, GET
// /2/users/:id/mentions, GET /2/users/me), verifies OAuth 1.0a HMAC-SHA1
// signatures for real, applies X's rules with X's own error bodies (280
// weighted characters, duplicate content, max_results bounds, replies to
// missing posts), keeps per-endpoint rate-limit windows with the
// x-rate-limit-* headers, and injects faults on demand.
//
// Customers are simulated with AddReply and AddMention; with
// Options.AutoReply a few customers answer our posts by themselves, for
// "breachcast demo". Tests point channels/twitter at it and set
// Options.Validator to the official OpenAPI validator, so every request is
// also checked against the spec.
package xemu

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Endpoint names, used for rate limits, faults and the request log.
const (
	EndpointCreate   = "POST /2/tweets"
	EndpointDelete   = "DELETE /2/tweets/:id"
	EndpointTweet    = "GET /2/tweets/:id"
	EndpointSearch   = "GET /2/tweets/search/recent"
	EndpointMentions = "GET /2/users/:id/mentions"
	EndpointMe       = "GET /2/users/me"
)

// Access levels an app's OAuth 1.0a tokens can have, as X reports them in
// the x-access-level header.
const (
	AccessRead        = "read"
	AccessReadWrite   = "read-write"
	AccessReadWriteDM = "read-write-directmessages"
)

// Demo credentials and account, used for the Options left empty.
const (
	DefaultConsumerKey    = "xemu-consumer-key"
	DefaultConsumerSecret = "xemu-consumer-secret"
	DefaultAccessToken    = "1500000000000000001-xemuaccesstoken"
	DefaultAccessSecret   = "xemu-access-secret"
	DefaultUserID         = "1500000000000000001"
	DefaultUsername       = "acme_status"
	DefaultName           = "Acme Status"
)

// MaxBodyBytes bounds a request body; larger ones are answered 413.
const MaxBodyBytes = 1 << 20

// keepLog bounds the request and validation logs of a long-running demo.
const keepLog = 1000

// Limit is one endpoint's rate limit: Requests per Window.
type Limit struct {
	Requests int
	Window   time.Duration
}

// DefaultLimits are the per-user limits X sends for the emulated endpoints
// (the values of the recorded tweepy exchanges where there is one), each
// per 15-minute window.
var DefaultLimits = map[string]Limit{
	EndpointCreate:   {200, 15 * time.Minute},
	EndpointDelete:   {50, 15 * time.Minute},
	EndpointTweet:    {300, 15 * time.Minute},
	EndpointSearch:   {450, 15 * time.Minute},
	EndpointMentions: {450, 15 * time.Minute},
	EndpointMe:       {75, 15 * time.Minute},
}

// Options configures a Server. Empty credentials and account fields take
// the Default* values.
type Options struct {
	// The app's consumer key and secret and the account's access token and
	// secret that requests must be signed with.
	ConsumerKey, ConsumerSecret, AccessToken, AccessSecret string

	// Our account: the one the access token belongs to.
	UserID, Username, Name string

	// AccessLevel is the app permission reported in x-access-level;
	// AccessRead makes every write answer 403. Default AccessReadWrite.
	AccessLevel string

	// Validator, when set, checks every authenticated request (with its raw
	// body) before it is handled; a failure is answered 400 and recorded
	// (ValidationErrors).
	Validator func(r *http.Request, body []byte) error

	// Now is the emulated clock: rate-limit windows, post times and ids, the
	// seven days of recent search, duplicate detection. Default time.Now.
	Now func() time.Time

	// Limits overrides DefaultLimits per endpoint.
	Limits map[string]Limit

	// MaxClockSkew is how far an oauth_timestamp may be from the wall clock
	// (clients sign with the wall clock, so this is not Now). Default 5
	// minutes; negative turns the check off.
	MaxClockSkew time.Duration

	// AutoReply makes customers answer our posts by themselves, a few
	// AutoReplyDelay apart (default 3 s), with realistic questions.
	AutoReply      bool
	AutoReplyDelay time.Duration
}

// Request is one entry of the request log.
type Request struct {
	Method   string
	Path     string
	Query    string // raw query
	Endpoint string // one of the Endpoint* names, "" for an unknown route
	Status   int
}

// Server is the emulator. It is an http.Handler; Start serves it on
// 127.0.0.1. All methods are safe for concurrent use.
type Server struct {
	opts Options
	now  func() time.Time
	mux  *http.ServeMux

	mu          sync.Mutex
	posts       []*post // in id order
	byID        map[string]*post
	users       map[string]*user // by id
	byName      map[string]*user // by lower-case username
	lastID      int64
	lastUserID  int64
	windows     map[string]*window
	limits      map[string]Limit
	accessLevel string
	expired     bool
	latency     time.Duration
	faults      []fault
	nonces      map[string]time.Time
	requests    []Request
	invalid     []error
	autoNext    int
	timers      map[*time.Timer]struct{} // pending automatic replies
	closed      bool
	changed     chan struct{} // closed and replaced when a post is made

	srv *http.Server
	ln  net.Listener
}

// New returns an emulator with the given options. Call Start to serve it,
// or use it as an http.Handler.
func New(o Options) *Server {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.ConsumerKey, DefaultConsumerKey)
	def(&o.ConsumerSecret, DefaultConsumerSecret)
	def(&o.AccessToken, DefaultAccessToken)
	def(&o.AccessSecret, DefaultAccessSecret)
	def(&o.UserID, DefaultUserID)
	def(&o.Username, DefaultUsername)
	def(&o.Name, DefaultName)
	def(&o.AccessLevel, AccessReadWrite)
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = 5 * time.Minute
	}
	if o.AutoReplyDelay <= 0 {
		o.AutoReplyDelay = 3 * time.Second
	}
	s := &Server{
		opts:        o,
		now:         o.Now,
		byID:        map[string]*post{},
		users:       map[string]*user{},
		byName:      map[string]*user{},
		windows:     map[string]*window{},
		limits:      map[string]Limit{},
		accessLevel: o.AccessLevel,
		nonces:      map[string]time.Time{},
		lastUserID:  1600000000000000000,
		changed:     make(chan struct{}),
		timers:      map[*time.Timer]struct{}{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	for ep, l := range DefaultLimits {
		s.limits[ep] = l
	}
	for ep, l := range o.Limits {
		s.limits[ep] = l
	}
	me := &user{ID: o.UserID, Username: o.Username, Name: o.Name}
	s.users[me.ID] = me
	s.byName[lower(me.Username)] = me

	s.mux = http.NewServeMux()
	s.route("POST /2/tweets", EndpointCreate, true, s.createTweet)
	s.route("DELETE /2/tweets/{id}", EndpointDelete, true, s.deleteTweet)
	s.route("GET /2/tweets/{id}", EndpointTweet, false, s.getTweet)
	s.route("GET /2/tweets/search/recent", EndpointSearch, false, s.searchRecent)
	s.route("GET /2/users/{id}/mentions", EndpointMentions, false, s.mentions)
	s.route("GET /2/users/me", EndpointMe, false, s.usersMe)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.log(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: http.StatusNotFound})
		writeJSON(w, http.StatusNotFound, map[string]any{
			"errors": []map[string]any{{"message": "Sorry, that page does not exist", "code": 34}},
		})
	})
	return s
}

// Start serves the emulator on 127.0.0.1 on a free port and returns its base
// URL ("http://127.0.0.1:PORT").
func (s *Server) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	srv := s.srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops serving and cancels pending automatic replies.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Requests returns the request log (the latest 1000 requests), oldest
// first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ValidationErrors returns the Validator failures seen so far (the latest
// 1000).
func (s *Server) ValidationErrors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.invalid...)
}

func (s *Server) log(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	if len(s.requests) > keepLog {
		s.requests = s.requests[len(s.requests)-keepLog:]
	}
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status written.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

type handler func(w http.ResponseWriter, r *http.Request, body []byte)

// route registers h behind the checks every X endpoint makes, in X's order:
// authentication, the app's permission, the rate limit, then the request.
func (s *Server) route(pattern, endpoint string, write bool, h handler) {
	s.mux.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		defer func() {
			s.log(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Endpoint: endpoint, Status: w.status})
		}()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeProblem(w, http.StatusRequestEntityTooLarge, "Payload Too Large", "Request body is too large.")
				return
			}
			return
		}
		if !s.wait(r.Context()) {
			return
		}
		if err := s.authenticate(r, body); err != nil {
			writeProblem(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return
		}
		s.mu.Lock()
		expired := s.expired
		s.mu.Unlock()
		if expired {
			writeProblem(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return
		}
		if f, ok := s.takeFault(endpoint); ok {
			if s.serveFault(w, r, f) {
				return
			}
		}
		limited := s.rateLimit(w.Header(), endpoint)
		s.mu.Lock()
		level := s.accessLevel
		s.mu.Unlock()
		w.Header().Set("x-access-level", level)
		if limited {
			writeProblem(w, http.StatusTooManyRequests, "Too Many Requests", "Too Many Requests")
			return
		}
		if s.opts.Validator != nil {
			if err := s.opts.Validator(r, body); err != nil {
				s.mu.Lock()
				s.invalid = append(s.invalid, err)
				if len(s.invalid) > keepLog {
					s.invalid = s.invalid[len(s.invalid)-keepLog:]
				}
				s.mu.Unlock()
				writeInvalid(w, "", nil, err.Error())
				return
			}
		}
		if write && level == AccessRead {
			writeJSON(w, http.StatusForbidden, problem{
				Title:  "Unsupported Authentication",
				Detail: "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.",
				Type:   problemBase + "oauth1-permissions",
				Status: http.StatusForbidden,
			})
			return
		}
		h(w, r, body)
	})
}

// wait applies the injected latency; it reports false when the client gave
// up (or the server closed) first.
func (s *Server) wait(ctx context.Context) bool {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// window is one endpoint's current rate-limit window.
type window struct {
	start time.Time
	used  int
}

// rateLimit counts the request against endpoint's window, sets the
// x-rate-limit-* headers and reports whether the window was already used up.
func (s *Server) rateLimit(h http.Header, endpoint string) (limited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim, ok := s.limits[endpoint]
	if !ok || lim.Requests <= 0 || lim.Window <= 0 {
		return false
	}
	now := s.now()
	win := s.windows[endpoint]
	if win == nil || !now.Before(win.start.Add(lim.Window)) {
		win = &window{start: now}
		s.windows[endpoint] = win
	}
	if win.used >= lim.Requests {
		limited = true
	} else {
		win.used++
	}
	h.Set("x-rate-limit-limit", strconv.Itoa(lim.Requests))
	h.Set("x-rate-limit-remaining", strconv.Itoa(max(lim.Requests-win.used, 0)))
	h.Set("x-rate-limit-reset", strconv.FormatInt(win.start.Add(lim.Window).Unix(), 10))
	return limited
}

// SetLimit changes endpoint's rate limit and starts a fresh window.
func (s *Server) SetLimit(endpoint string, l Limit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits[endpoint] = l
	delete(s.windows, endpoint)
}

// ForceRateLimit uses up endpoint's window so that it answers 429 until
// reset (by the emulated clock), with x-rate-limit-reset saying so.
func (s *Server) ForceRateLimit(endpoint string, reset time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim, ok := s.limits[endpoint]
	if !ok || lim.Requests <= 0 || lim.Window <= 0 {
		lim = Limit{Requests: 1, Window: 15 * time.Minute}
		s.limits[endpoint] = lim
	}
	s.windows[endpoint] = &window{start: reset.Add(-lim.Window), used: lim.Requests}
}

// SetAccessLevel changes the app permission (AccessRead makes writes
// answer 403 as X does for a read-only app).
func (s *Server) SetAccessLevel(level string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessLevel = level
}

// SetTokenExpired makes every request answer 401, as X does once the access
// token is revoked, until called with false.
func (s *Server) SetTokenExpired(expired bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired = expired
}

// SetLatency makes every request wait d before it is handled (0 turns it
// off). A client that gives up stops the wait.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = max(d, 0)
}

type faultKind int

const (
	faultStatus  faultKind = iota + 1 // answer a status with X's body for it
	faultGarbage                      // answer 200 with a body that is not JSON
)

type fault struct {
	kind     faultKind
	endpoint string // "" for any
	status   int
	left     int
}

// FailNext answers the next n requests, to any endpoint, with status and
// the body X sends with it. Faults are served in the order they were set.
func (s *Server) FailNext(n, status int) { s.queue(fault{kind: faultStatus, status: status, left: n}) }

// FailNextOn is FailNext for requests to one endpoint only.
func (s *Server) FailNextOn(endpoint string, n, status int) {
	s.queue(fault{kind: faultStatus, endpoint: endpoint, status: status, left: n})
}

// GarbageNext answers the next n requests to endpoint ("" for any) "200 OK"
// with a body that is not JSON, as a broken proxy might. They are not
// processed.
func (s *Server) GarbageNext(endpoint string, n int) {
	s.queue(fault{kind: faultGarbage, endpoint: endpoint, left: n})
}

// ClearFaults drops queued faults and latency and restores the token and
// the access level.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.latency = 0
	s.expired = false
	s.accessLevel = s.opts.AccessLevel
}

func (s *Server) queue(f fault) {
	if f.left <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

func (s *Server) takeFault(endpoint string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.faults {
		f := &s.faults[i]
		if f.endpoint != "" && f.endpoint != endpoint {
			continue
		}
		got := *f
		f.left--
		if f.left <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return got, true
	}
	return fault{}, false
}

// garbage is what a broken proxy might answer: not JSON, not X.
const garbage = "<html><body>\x00\x01\xfe upstream said: %%%garbage%%%"

func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f fault) bool {
	switch f.kind {
	case faultGarbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, garbage)
		return true
	case faultStatus:
		title := http.StatusText(f.status)
		if title == "" {
			title = "Error"
		}
		if f.status == http.StatusTooManyRequests {
			s.mu.Lock()
			reset := s.now().Add(15 * time.Minute).Unix()
			s.mu.Unlock()
			w.Header().Set("x-rate-limit-remaining", "0")
			w.Header().Set("x-rate-limit-reset", strconv.FormatInt(reset, 10))
		}
		writeProblem(w, f.status, title, title)
		return true
	}
	return false
}
