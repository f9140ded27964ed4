package facebook

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// errTokenInURL is returned instead of sending a request that would carry an
// access token in its URL, where proxies, server logs and error messages
// would keep it.
var errTokenInURL = errors.New("refusing to send an access token in a URL")

// exchange receives the status and headers of the response to one Graph
// call. The Graph client library hides both, and the error mapping needs
// them (HTTP status, rate-limit headers). It travels in the request context,
// so concurrent calls never share one.
type exchange struct {
	status int
	header http.Header
}

type exchangeKey struct{}

// minSecretLen is the shortest token or secret looked for inside URLs.
const minSecretLen = 12

func withExchange(ctx context.Context) (context.Context, *exchange) {
	x := &exchange{}
	return context.WithValue(ctx, exchangeKey{}, x), x
}

// transport guards and observes every request the Graph client makes: it
// refuses any URL holding a token (the token goes in the Authorization
// header only) and records the response status and headers for the call.
type transport struct {
	base   http.RoundTripper
	tokens []string // secrets that must never appear in a URL
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.leaks(req.URL) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errTokenInURL
	}
	resp, err := t.base.RoundTrip(req)
	if x, ok := req.Context().Value(exchangeKey{}).(*exchange); ok && resp != nil {
		x.status = resp.StatusCode
		x.header = resp.Header.Clone()
	}
	return resp, err
}

func (t *transport) leaks(u *url.URL) bool {
	q := u.Query()
	if q.Has("access_token") || q.Has("input_token") {
		return true
	}
	raw, _ := url.PathUnescape(u.String())
	for _, s := range t.tokens {
		// Real tokens and secrets are long; a short test value would match
		// innocent URLs.
		if len(s) >= minSecretLen && (strings.Contains(u.String(), s) || strings.Contains(raw, s)) {
			return true
		}
	}
	return false
}
