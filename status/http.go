package status

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Security headers on every response. The CSP allows same-origin files only:
// the page's CSS and JS are fingerprinted files, never inline, and 'self'
// covers ws: and wss: to the same host.
const csp = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// Handler returns the HTTP handler of the whole public site, rooted at
// PublicURL's path.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", s.serveLive)
	mux.HandleFunc("GET /live/sse", s.serveSSE)
	mux.HandleFunc("GET /live/since", s.serveSince)
	mux.HandleFunc("GET /static/{file}", s.serveAsset)
	if s.subs != nil {
		csrf := http.NewCrossOriginProtection()
		for o := range s.origins {
			csrf.AddTrustedOrigin(o)
		}
		csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.message(w, http.StatusForbidden, &messageView{
				Heading: "Request refused", Error: true,
				Text: "This form was sent from another website, so it was refused. Please use the form on this status page.",
			})
		}))
		mux.Handle("POST /subscribe", csrf.Handler(http.HandlerFunc(s.serveSubscribe)))
		mux.HandleFunc("GET /subscribe/confirm", s.serveConfirmPage)
		mux.Handle("POST /subscribe/confirm", csrf.Handler(http.HandlerFunc(s.serveConfirm)))
		// One-click unsubscribe (RFC 8058) is posted by mail providers'
		// servers; the signed token is the authority, so no origin check.
		mux.HandleFunc("GET /unsubscribe", s.serveUnsubscribePage)
		mux.HandleFunc("POST /unsubscribe", s.serveUnsubscribe)
	}
	mux.HandleFunc("GET /", s.servePage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
	var h http.Handler = mux
	if s.base != "" {
		h = http.StripPrefix(s.base, h)
	}
	return securityHeaders(h)
}

// servePage answers every public page, feed and API document from the
// current snapshot, and a 404 page for anything else.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	sn := s.current()
	if sn == nil {
		w.Header().Set("Retry-After", "5")
		s.message(w, http.StatusServiceUnavailable, &messageView{
			Heading: "Status is loading", Text: "The status page is starting. Please try again in a few seconds.", Error: true,
		})
		return
	}
	if res, ok := sn.res[r.URL.Path]; ok {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			// Public data without credentials: status widgets on other
			// sites read it from the browser, as they do from Statuspage.
			w.Header().Set("Access-Control-Allow-Origin", "*")
		}
		res.serve(w, r)
		return
	}
	sn.notFound.serve(w, r)
}

func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request) {
	if res, ok := s.assets.byPath[r.URL.Path]; ok {
		res.serve(w, r)
		return
	}
	s.servePage(w, r) // the 404 page
}

// message renders a one-off message page (not cached).
func (s *Server) message(w http.ResponseWriter, status int, m *messageView) {
	d := pageData{Site: s.site(renderOpts{}), Title: m.Heading + " · " + s.cfg.PageName, Message: m, NoLive: true}
	if sn := s.current(); sn != nil {
		d.LastID = sn.lastID
	}
	var b bytes.Buffer
	if err := s.pages.byName["message"].ExecuteTemplate(&b, "layout", d); err != nil {
		s.log.Error("status: render message page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", cacheNone)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// peerAddr is the IP of the TCP peer.
func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// originAllowed reports whether a browser Origin header may use the live
// channel. Non-browser clients send none and are allowed: there is no
// cookie or credential to abuse, only public data.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	return s.origins[strings.ToLower(o)]
}

// sinceParam reads the last update id a viewer has from a query parameter
// (or, for SSE, Last-Event-ID).
func sinceParam(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("the last update id %q is not a non-negative integer", truncate(v, 40))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (s *Server) limitError(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "10")
	w.Header().Set("Cache-Control", cacheNone)
	switch {
	case errors.Is(err, errAddrCap):
		http.Error(w, err.Error(), http.StatusTooManyRequests)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

var upgraderPool sync.Pool

// upgrader keeps per-connection buffers small: a 256-byte read buffer (the
// net/http 4 KiB reader is dropped), and write buffers from a shared pool,
// only ever used for unprepared messages.
var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   256,
	WriteBufferSize:  1024,
	WriteBufferPool:  &upgraderPool,
	CheckOrigin:      func(*http.Request) bool { return true }, // checked before the upgrade
}

func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	if s.current() == nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "status is loading", http.StatusServiceUnavailable)
		return
	}
	since, err := sinceParam(r.URL.Query().Get("since"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "this address takes a websocket connection; use /live/sse or /live/since otherwise", http.StatusBadRequest)
		return
	}
	if !s.originAllowed(r) {
		http.Error(w, "websocket connections from this origin are not allowed", http.StatusForbidden)
		return
	}
	addr := s.cfg.ClientAddr(r)
	if err := s.hub.reserve(addr); err != nil {
		s.limitError(w, err)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.hub.release(addr) // the upgrader has answered
		return
	}
	s.hub.attach(conn, addr, since)
}

// serveSSE is the live channel for networks that block websockets.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	if s.current() == nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "status is loading", http.StatusServiceUnavailable)
		return
	}
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("since")
	}
	since, err := sinceParam(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.originAllowed(r) {
		http.Error(w, "event streams for this origin are not allowed", http.StatusForbidden)
		return
	}
	rc := http.NewResponseController(w)
	addr := s.cfg.ClientAddr(r)
	if err := s.hub.reserve(addr); err != nil {
		s.limitError(w, err)
		return
	}
	c := s.hub.addSSE(addr, since)
	defer s.hub.removeSSE(c)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", cacheNone)
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 3000\n\n")) {
		return
	}
	heartbeat := time.NewTicker(25 * time.Second)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		case _, open := <-c.notify:
			if !open {
				return
			}
			msgs, ok := s.hub.takeSSE(c)
			if !ok {
				return
			}
			var b bytes.Buffer
			for _, m := range msgs {
				fmt.Fprintf(&b, "id: %d\nevent: incident\ndata: %s\n\n", m.id, m.json)
			}
			if b.Len() > 0 && !write(b.Bytes()) {
				return
			}
		}
	}
}

// serveSince is the polling fallback: the messages newer than ?id=. It
// answers from the state last broadcast, which may be a moment newer than
// the pages.
func (s *Server) serveSince(w http.ResponseWriter, r *http.Request) {
	if s.current() == nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "status is loading", http.StatusServiceUnavailable)
		return
	}
	since, err := sinceParam(r.URL.Query().Get("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	msgs, last := s.hub.catchUp(since)
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"last_id":%d,"messages":[`, last)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.json)
	}
	b.WriteString("]}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=2")
	w.Write(b.Bytes())
}
