package sgemu

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

type faultKind int

const (
	faultStatus  faultKind = iota + 1 // answer a status with SendGrid's error body
	faultGarbage                      // answer 200 with a body that is not JSON
	faultHang                         // answer nothing until the client gives up
	faultClose                        // close the connection without answering
)

type fault struct {
	kind   faultKind
	status int
	left   int
}

// SetLatency makes every API request wait d before it is handled (0 turns
// it off). A waiting request holds no lock and has not read its body yet,
// so many can wait at once; one whose client gives up stops waiting.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(max(d, 0))) }

// FailNext answers the next n API requests with status and the error body
// SendGrid sends with it (a 429 also carries the rate-limit headers).
// Faults queue up: they are served in the order they were set.
func (s *Server) FailNext(n, status int) { s.queue(fault{kind: faultStatus, status: status, left: n}) }

// GarbageNext answers the next n API requests "200 OK" with a body that is
// neither JSON nor anything SendGrid would send, and no X-Message-Id.
func (s *Server) GarbageNext(n int) { s.queue(fault{kind: faultGarbage, left: n}) }

// HangNext leaves the next n API requests unanswered until their client
// gives up (or the emulator closes). They are not processed.
func (s *Server) HangNext(n int) { s.queue(fault{kind: faultHang, left: n}) }

// CloseNext closes the connection of the next n API requests without
// answering. They are not processed.
func (s *Server) CloseNext(n int) { s.queue(fault{kind: faultClose, left: n}) }

// ClearFaults drops every queued fault, the latency and the rate limit.
func (s *Server) ClearFaults() {
	s.SetLatency(0)
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.faults = nil
	s.rl = rateLimit{}
}

func (s *Server) queue(f fault) {
	if f.left <= 0 {
		return
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.faults = append(s.faults, f)
}

func (s *Server) takeFault() (fault, bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if len(s.faults) == 0 {
		return fault{}, false
	}
	f := s.faults[0]
	s.faults[0].left--
	if s.faults[0].left <= 0 {
		s.faults = s.faults[1:]
	}
	return f, true
}

// garbage is what a broken proxy might answer: not JSON, not SendGrid.
const garbage = "<html><body>\x00\x01\xfe upstream said: %%%garbage%%%"

func (s *Server) inject(w http.ResponseWriter, r *http.Request, f fault) {
	switch f.kind {
	case faultStatus:
		if f.status == http.StatusTooManyRequests {
			s.rateHeaders(w, 0)
		}
		writeErrors(w, f.status, statusError(f.status))
	case faultGarbage:
		drain(r)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, garbage) //nolint:errcheck // the client may be gone
	case faultHang:
		// Reading the body to its end lets the server notice when the client
		// hangs up, which cancels r.Context().
		drain(r)
		s.waitGone(r.Context())
		panic(http.ErrAbortHandler)
	case faultClose:
		drain(r)
		panic(http.ErrAbortHandler) // net/http closes the connection, answering nothing
	}
}

// drain discards the request body without keeping it.
func drain(r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, MaxBodyBytes)) //nolint:errcheck // best effort
}

// statusError is SendGrid's error for an HTTP status (the wording of the
// examples in SendGrid's mail API spec and rate-limit docs).
func statusError(status int) apiError {
	msg := map[int]string{
		400: "Bad Request",
		401: "authorization required",
		403: "access forbidden",
		404: "not found",
		405: "method not allowed",
		413: "content too large",
		429: "too many requests",
		500: "internal server error",
		502: "bad gateway",
		503: "service unavailable",
		504: "gateway timeout",
	}[status]
	if msg == "" {
		msg = http.StatusText(status)
	}
	return apiError{Message: msg}
}

// rateLimit is a fixed window of limit requests.
type rateLimit struct {
	limit  int
	window time.Duration
	start  time.Time
	used   int
}

// SetRateLimit allows n API requests per window and answers the rest 429
// with X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (epoch
// seconds), as SendGrid does. Windows follow Options.Now; the first starts
// with the next request. n <= 0 turns the limit off.
func (s *Server) SetRateLimit(n int, window time.Duration) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if n <= 0 || window <= 0 {
		s.rl = rateLimit{}
		return
	}
	s.rl = rateLimit{limit: n, window: window}
}

// rateLimit counts the request against the window, sets the rate-limit
// headers and reports whether the request may go on.
func (s *Server) rateLimit(w http.ResponseWriter) bool {
	now := s.now()
	s.fmu.Lock()
	rl := &s.rl
	if rl.limit == 0 {
		s.fmu.Unlock()
		return true
	}
	if rl.start.IsZero() || now.Before(rl.start) || !now.Before(rl.start.Add(rl.window)) {
		rl.start, rl.used = now, 0
	}
	rl.used++
	ok := rl.used <= rl.limit
	remaining := max(rl.limit-rl.used, 0)
	s.fmu.Unlock()
	s.rateHeaders(w, remaining)
	return ok
}

// rateHeaders writes the rate-limit headers of the current window.
func (s *Server) rateHeaders(w http.ResponseWriter, remaining int) {
	s.fmu.Lock()
	limit, reset := s.rl.limit, s.rl.start.Add(s.rl.window)
	s.fmu.Unlock()
	if limit == 0 {
		// No configured limit (an injected 429): say "one second".
		limit, reset = 1, s.now().Add(time.Second)
	}
	// Epoch seconds, rounded up so the reset is never in the past.
	secs := reset.Unix()
	if reset.Nanosecond() > 0 {
		secs++
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(secs, 10))
}
