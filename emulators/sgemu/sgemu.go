// Package sgemu is an in-process SendGrid v3 emulator on loopback. It speaks
// the real wire shapes of POST /v3/mail/send and GET /v3/scopes, applies
// SendGrid's validation rules with SendGrid's own error messages, records
// what each recipient would have received (counts for every address, full
// rendered messages for the most recent ones), injects faults on demand, and
// serves a small read-only HTML inbox so a rehearsal ("breachcast demo") can
// show the emails customers would get.
//
// Tests point channels/email at it and set Options.Validator to the official
// OpenAPI validator, so every request is also checked against the spec.
package sgemu

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultKeepMessages is how many rendered messages are kept for inspection
// when Options.KeepMessages is 0.
const DefaultKeepMessages = 1000

// MaxBodyBytes is SendGrid's limit on a mail/send request: 30 MB, larger
// bodies are answered 413.
const MaxBodyBytes = 30 << 20

// ScopeMailSend is the scope (Mail Send permission) a key needs for
// POST /v3/mail/send.
const ScopeMailSend = "mail.send"

// DefaultScopes are the scopes of a key configured with nil scopes.
var DefaultScopes = []string{ScopeMailSend}

// Options configure a Server. The zero value accepts any non-empty key.
type Options struct {
	// Keys maps each accepted API key to its scopes. A nil scope list means
	// DefaultScopes; an empty non-nil list means no scope at all. When Keys is
	// empty, any non-empty bearer key is accepted with DefaultScopes (handy
	// for a rehearsal that has no real key).
	Keys map[string][]string

	// Validator, when set, checks every authenticated POST /v3/mail/send
	// (the operation SendGrid's mail spec describes) before the emulator's
	// own rules; tests set it to the OpenAPI validator. A request it refuses
	// is answered 400 in SendGrid's error shape and recorded; see
	// ConformanceFailures.
	Validator func(r *http.Request, body []byte) error

	// KeepMessages is how many fully rendered messages (one per recipient)
	// are kept for Messages, Recent and the inbox: 0 means
	// DefaultKeepMessages, a negative value keeps none. Counts are kept for
	// every address regardless.
	KeepMessages int

	// Now is the clock for message timestamps and rate-limit windows;
	// time.Now when nil.
	Now func() time.Time
}

// Server is the emulator. It is an http.Handler; Start serves it on a
// loopback port. All methods are safe for concurrent use.
type Server struct {
	keys     map[string][]string
	anyKey   bool
	validate func(*http.Request, []byte) error
	now      func() time.Time
	mux      *http.ServeMux

	done      chan struct{}
	closeOnce sync.Once
	startMu   sync.Mutex
	srv       *http.Server

	latency  atomic.Int64 // nanoseconds added to every API request
	received atomic.Int64 // API requests that reached the emulator

	fmu    sync.Mutex // guards faults and rl
	faults []fault
	rl     rateLimit

	mu         sync.Mutex // guards everything below
	counts     map[string]int
	total      int
	requests   int
	ring       []entry
	ringNext   int
	ringLen    int
	seq        int64
	nonconform []error
}

// New returns an emulator configured by o. It does not listen until Start;
// it can also be mounted with httptest.NewServer(s).
func New(o Options) *Server {
	s := &Server{
		keys:     make(map[string][]string, len(o.Keys)),
		anyKey:   len(o.Keys) == 0,
		validate: o.Validator,
		now:      o.Now,
		done:     make(chan struct{}),
		counts:   make(map[string]int),
	}
	for k, scopes := range o.Keys {
		if scopes == nil {
			scopes = DefaultScopes
		}
		s.keys[k] = slices.Clone(scopes)
	}
	if s.now == nil {
		s.now = time.Now
	}
	keep := o.KeepMessages
	if keep == 0 {
		keep = DefaultKeepMessages
	}
	if keep > 0 {
		s.ring = make([]entry, keep)
	}
	s.mux = http.NewServeMux()
	s.mux.Handle("POST /v3/mail/send", s.api(s.mailSend))
	s.mux.Handle("/v3/mail/send", s.api(func(w http.ResponseWriter, r *http.Request, _ []string) {
		writeErrors(w, http.StatusMethodNotAllowed, apiError{Message: "method not allowed"})
	}))
	s.mux.Handle("GET /v3/scopes", s.api(s.scopes))
	s.mux.Handle("/v3/", s.api(func(w http.ResponseWriter, r *http.Request, _ []string) {
		writeErrors(w, http.StatusNotFound, apiError{Message: "not found"})
	}))
	s.mux.HandleFunc("GET /{$}", s.inbox)
	s.mux.HandleFunc("GET /messages/{id}", s.message)
	return s
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Start listens on 127.0.0.1 on a free port and serves the emulator there.
// It returns the base URL ("http://127.0.0.1:PORT").
func (s *Server) Start() (string, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.srv != nil {
		return "", errors.New("sgemu: already started")
	}
	select {
	case <-s.done:
		return "", errors.New("sgemu: closed")
	default:
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Aborted connections are an injected fault, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go s.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed on Close
	return "http://" + ln.Addr().String(), nil
}

// Close releases requests held by an injected hang and stops the listener
// opened by Start. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.startMu.Lock()
		defer s.startMu.Unlock()
		if s.srv != nil {
			err = s.srv.Close()
		}
	})
	return err
}

// apiHandler answers an authenticated API request; scopes are the key's.
type apiHandler func(w http.ResponseWriter, r *http.Request, scopes []string)

// api wraps an API endpoint with what every SendGrid v3 request goes
// through: injected latency and faults, the bearer key check and the rate
// limit.
func (s *Server) api(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.received.Add(1)
		// Sleep before reading the body: a sleeping request then holds no
		// memory beyond its goroutine and no lock, so a benchmark can keep
		// thousands in flight.
		if d := time.Duration(s.latency.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				panic(http.ErrAbortHandler) // the client is gone
			case <-s.done:
				t.Stop()
				panic(http.ErrAbortHandler) // closing: drop the connection, answer nothing
			}
		}
		if f, ok := s.takeFault(); ok {
			s.inject(w, r, f)
			return
		}
		scopes, ok := s.authorize(r)
		if !ok {
			msg := "The provided authorization grant is invalid, expired, or revoked"
			if r.Header.Get("Authorization") == "" {
				msg = "authorization required"
			}
			writeErrors(w, http.StatusUnauthorized, apiError{Message: msg})
			return
		}
		if !s.rateLimit(w) {
			writeErrors(w, http.StatusTooManyRequests, apiError{Message: "too many requests"})
			return
		}
		h(w, r, scopes)
	})
}

// authorize returns the scopes of the request's bearer key.
func (s *Server) authorize(r *http.Request) ([]string, bool) {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return nil, false
	}
	key := h[len(prefix):]
	if s.anyKey {
		return DefaultScopes, true
	}
	scopes, ok := s.keys[key]
	return scopes, ok
}

// scopes answers GET /v3/scopes: the scopes of the calling key.
func (s *Server) scopes(w http.ResponseWriter, r *http.Request, scopes []string) {
	if scopes == nil {
		scopes = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		Scopes []string `json:"scopes"`
	}{scopes})
}

// Received returns how many API requests reached the emulator, whatever
// their answer.
func (s *Server) Received() int { return int(s.received.Load()) }

// ConformanceFailures returns the errors of every request Options.Validator
// refused, oldest first.
func (s *Server) ConformanceFailures() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.nonconform)
}

func (s *Server) addNonconformance(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonconform = append(s.nonconform, err)
}

// waitGone blocks until the client gives up on r or the emulator closes.
func (s *Server) waitGone(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.done:
	}
}
