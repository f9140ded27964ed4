package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/breachcast/breachcast/emulators/fbemu"
	"github.com/breachcast/breachcast/emulators/xemu"
)

// drillHandler lets a rehearsal inject provider failures into the demo's
// emulators while it runs, so a team can drill what happens when SendGrid
// rate-limits, X goes down or the Facebook token expires mid-incident:
//
//	POST /sendgrid?fail=N&status=503    the next N mail/send requests fail
//	POST /sendgrid?ratelimit=N&window=1m at most N requests per window, then 429
//	POST /sendgrid?latency=500ms         every answer takes this long
//	POST /x?fail=N&status=503            the next N posts fail
//	POST /x?ratelimit=1h                 posting is rate limited until 1h from now
//	POST /facebook?fail=N                the next N Graph calls fail (transient)
//	POST /facebook?ratelimit=N&regain=10m the next N Graph calls hit the rate limit
//	POST /facebook?expire-token=1        the Page token expires
//	POST /clear                          every emulator behaves again
func (d *demoEnv) drillHandler() http.Handler {
	mux := http.NewServeMux()
	num := func(r *http.Request, key string, def int) (int, error) {
		v := r.URL.Query().Get(key)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %q is not a count", key, v)
		}
		return n, nil
	}
	// fail reads fail=N&status=S (default one request, HTTP 503).
	fail := func(r *http.Request) (n, status int, err error) {
		if n, err = num(r, "fail", 1); err == nil {
			status, err = num(r, "status", 503)
		}
		return n, status, err
	}
	dur := func(r *http.Request, key string) (time.Duration, error) {
		v := r.URL.Query().Get(key)
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%s: %q is not a duration (write e.g. 30s)", key, v)
		}
		return d, nil
	}
	handle := func(pattern string, fn func(r *http.Request) (string, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			msg, err := fn(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintln(w, msg)
		})
	}
	handle("POST /sendgrid", func(r *http.Request) (string, error) {
		q := r.URL.Query()
		switch {
		case q.Has("fail"):
			n, status, err := fail(r)
			if err != nil {
				return "", err
			}
			d.sg.FailNext(n, status)
			return fmt.Sprintf("SendGrid: the next %d requests answer HTTP %d", n, status), nil
		case q.Has("ratelimit"):
			n, err := num(r, "ratelimit", 1)
			if err != nil {
				return "", err
			}
			window, err := dur(r, "window")
			if err != nil {
				return "", err
			}
			d.sg.SetRateLimit(n, window)
			return fmt.Sprintf("SendGrid: %d requests per %s, then 429", n, window), nil
		case q.Has("latency"):
			l, err := dur(r, "latency")
			if err != nil {
				return "", err
			}
			d.sg.SetLatency(l)
			return fmt.Sprintf("SendGrid: every answer takes %s", l), nil
		}
		return "", fmt.Errorf("want fail=N, ratelimit=N&window=D or latency=D")
	})
	handle("POST /x", func(r *http.Request) (string, error) {
		q := r.URL.Query()
		switch {
		case q.Has("fail"):
			n, status, err := fail(r)
			if err != nil {
				return "", err
			}
			d.x.FailNextOn(xemu.EndpointCreate, n, status)
			return fmt.Sprintf("X: the next %d posts answer HTTP %d", n, status), nil
		case q.Has("ratelimit"):
			until, err := dur(r, "ratelimit")
			if err != nil {
				return "", err
			}
			d.x.ForceRateLimit(xemu.EndpointCreate, time.Now().Add(until))
			return fmt.Sprintf("X: posting is rate limited for %s", until), nil
		}
		return "", fmt.Errorf("want fail=N or ratelimit=D")
	})
	handle("POST /facebook", func(r *http.Request) (string, error) {
		q := r.URL.Query()
		switch {
		case q.Has("expire-token"):
			d.fb.ExpireToken()
			return "Facebook: the Page token has expired", nil
		case q.Has("ratelimit"):
			n, err := num(r, "ratelimit", 1)
			if err != nil {
				return "", err
			}
			regain, err := dur(r, "regain")
			if err != nil {
				return "", err
			}
			d.fb.RateLimitNext(n, 32, regain)
			return fmt.Sprintf("Facebook: the next %d calls hit the Page rate limit for %s", n, regain), nil
		case q.Has("fail"):
			n, err := num(r, "fail", 1)
			if err != nil {
				return "", err
			}
			d.fb.FailNext(n, fbemu.GraphError{HTTPStatus: 500, Code: 2, Type: "OAuthException",
				Message: "An unexpected error has occurred. Please retry your request later.", Transient: true})
			return fmt.Sprintf("Facebook: the next %d calls fail (transient)", n), nil
		}
		return "", fmt.Errorf("want fail=N, ratelimit=N&regain=D or expire-token=1")
	})
	handle("POST /clear", func(r *http.Request) (string, error) {
		d.sg.ClearFaults()
		d.x.ClearFaults()
		d.fb.SetTokenExpiry(time.Time{})
		return "every emulator behaves again", nil
	})
	return mux
}
