package channels

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter reads how long a provider asks us to wait from its response
// headers: Retry-After (seconds or an HTTP date), then the epoch-seconds reset
// of a rate-limit window (X-RateLimit-Reset as SendGrid sends it,
// x-rate-limit-reset as X sends it). It returns 0 when the headers say
// nothing usable. now is injected so tests need no clock.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return positive(t.Sub(now))
		}
	}
	// SendGrid spells it X-RateLimit-Reset, X x-rate-limit-reset (which Go
	// canonicalises to X-Rate-Limit-Reset): two different headers.
	for _, name := range []string{"X-RateLimit-Reset", "X-Rate-Limit-Reset"} {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if epoch, err := strconv.ParseInt(v, 10, 64); err == nil && epoch > 0 {
				return positive(time.Unix(epoch, 0).Sub(now))
			}
		}
	}
	return 0
}

func positive(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	// Round up to whole seconds so a reset "in 0.3 s" is not read as "now".
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}

// StatusPermanent reports whether an HTTP status means the same request can
// never succeed: every 4xx but 408 (timeout), 409 (transient conflict) and
// 429 (rate limited).
func StatusPermanent(status int) bool {
	if status < 400 || status >= 500 {
		return false
	}
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return false
	}
	return true
}

// Classify tells the fan-out engine what to do with a send error: retry
// (after at least the returned delay, 0 meaning "use your backoff") or give up.
// Errors that are not *Error (network failures, timeouts) are retried.
func Classify(err error) (permanent bool, retryAfter time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Permanent, e.RetryAfter
	}
	return false, 0
}
