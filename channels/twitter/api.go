package twitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/breachcast/breachcast/channels"
)

// maxAnswer bounds an answer body; a full search page with its includes is
// well under 1 MB.
const maxAnswer = 4 << 20

// call is one request to X.
type call struct {
	op     string // Op* name: errors and rate-limit key
	method string
	path   string
	query  url.Values
	body   any // JSON body, nil for none
}

// rateState is what X last said about one endpoint's rate-limit window.
type rateState struct {
	remaining int
	reset     time.Time
}

// do sends one signed request and decodes a 2xx answer into out. Every
// failure is a *channels.Error that says whether to retry and when. It
// waits for no one: when X said the endpoint's window is used up and the
// reset is still ahead, it returns a retryable error at once, without
// calling X. The answer's headers are returned whenever there was an answer.
func (c *Client) do(ctx context.Context, cl call, out any) (http.Header, error) {
	if wait := c.rateWait(cl.op); wait > 0 {
		return nil, &channels.Error{Channel: Name, Op: cl.op, Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("X's rate limit for this endpoint is used up until %s; not calling X before then",
				c.now().Add(wait).UTC().Format(time.TimeOnly+" UTC"))}
	}
	u := *c.base
	u.Path += cl.path
	u.RawQuery = cl.query.Encode()
	var body io.Reader
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return nil, &channels.Error{Channel: Name, Op: cl.op, Code: CodeInvalid, Permanent: true, Message: "encode request", Err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, &channels.Error{Channel: Name, Op: cl.op, Code: CodeInvalid, Permanent: true, Message: "build request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "breachcast")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &channels.Error{Channel: Name, Op: cl.op, Code: CodeUnavailable, Message: "no answer from X: " + noAnswer(err), Err: err}
	}
	defer resp.Body.Close()
	c.noteRate(cl.op, resp.Header)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return resp.Header, &channels.Error{Channel: Name, Op: cl.op, Status: resp.StatusCode, Code: CodeUnavailable,
			Message: "X's answer broke off: " + noAnswer(err), Err: err}
	}
	if len(raw) > maxAnswer {
		return resp.Header, &channels.Error{Channel: Name, Op: cl.op, Status: resp.StatusCode, Code: CodeBadAnswer,
			Message: fmt.Sprintf("X's answer is larger than %d bytes", maxAnswer)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, c.statusError(cl.op, resp, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.Header, &channels.Error{Channel: Name, Op: cl.op, Status: resp.StatusCode, Code: CodeBadAnswer,
				Message: "X's answer is not the JSON it should be (" + snippet(raw) + ")", Err: err}
		}
	}
	return resp.Header, nil
}

// noAnswer words a transport error; the URL it may hold carries no secret
// (credentials travel in the Authorization header only).
func noAnswer(err error) string {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return err.Error()
}

// rateWait is how long to wait before calling op again: until the reset X
// announced, when it said nothing remains.
func (c *Client) rateWait(op string) time.Duration {
	c.mu.Lock()
	st, ok := c.limits[op]
	c.mu.Unlock()
	if !ok || st.remaining > 0 {
		return 0
	}
	return untilReset(st.reset, c.now())
}

func untilReset(reset, now time.Time) time.Duration {
	d := reset.Sub(now)
	if d <= 0 {
		return 0
	}
	// Round up to whole seconds: a reset "in 0.3 s" is not "now".
	if r := d.Truncate(time.Second); r < d {
		return r + time.Second
	}
	return d
}

// noteRate keeps the rate-limit state X reports for op: the 15-minute
// window (x-rate-limit-*) and the daily caps on posting
// (x-user-limit-24hour-*, x-app-limit-24hour-*). The tightest one counts.
func (c *Client) noteRate(op string, h http.Header) {
	var st rateState
	seen := false
	for _, prefix := range []string{"x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"} {
		rem, err := strconv.Atoi(strings.TrimSpace(h.Get(prefix + "-remaining")))
		if err != nil {
			continue
		}
		epoch, _ := strconv.ParseInt(strings.TrimSpace(h.Get(prefix+"-reset")), 10, 64)
		w := rateState{remaining: rem, reset: time.Unix(epoch, 0)}
		switch {
		case !seen:
			st = w
		case w.remaining <= 0 && (st.remaining > 0 || w.reset.After(st.reset)):
			st = w // the used-up window that resets last
		case w.remaining > 0 && st.remaining > 0 && w.remaining < st.remaining:
			st = w
		}
		seen = true
	}
	if !seen {
		return
	}
	c.mu.Lock()
	c.limits[op] = st
	c.mu.Unlock()
}

// apiError is the union of X's error bodies: the problem object
// (title/detail/type/status) and the errors array of v2 (message or
// detail, parameters) and of v1.1 (code, message).
type apiError struct {
	Title  string     `json:"title"`
	Detail string     `json:"detail"`
	Type   string     `json:"type"`
	Reason string     `json:"reason"`
	Errors []apiIssue `json:"errors"`
}

type apiIssue struct {
	Message    string              `json:"message"`
	Title      string              `json:"title"`
	Detail     string              `json:"detail"`
	Type       string              `json:"type"`
	Code       int                 `json:"code"`
	Parameters map[string][]string `json:"parameters"`
}

func (i apiIssue) words() string {
	s := i.Message
	if s == "" {
		s = i.Detail
	}
	if s == "" {
		s = i.Title
	}
	if s != "" && i.Code != 0 {
		s += " (code " + strconv.Itoa(i.Code) + ")"
	}
	return s
}

// words is X's explanation, made readable: the specific issues first, the
// general detail when there are none.
func (a apiError) words(status int) string {
	var parts []string
	for _, i := range a.Errors {
		if w := i.words(); w != "" && len(parts) < 3 {
			parts = append(parts, w)
		}
	}
	if len(parts) == 0 && a.Detail != "" {
		parts = append(parts, a.Detail)
	}
	if len(parts) == 0 && a.Title != "" {
		parts = append(parts, a.Title)
	}
	if len(parts) == 0 {
		parts = append(parts, http.StatusText(status))
	}
	return clip(strings.Join(parts, "; "), 400)
}

func (a apiError) hasType(suffix string) bool {
	if strings.HasSuffix(a.Type, "/problems/"+suffix) {
		return true
	}
	for _, i := range a.Errors {
		if strings.HasSuffix(i.Type, "/problems/"+suffix) {
			return true
		}
	}
	return false
}

func (a apiError) mentions(s string) bool {
	if strings.Contains(a.Detail, s) {
		return true
	}
	for _, i := range a.Errors {
		if strings.Contains(i.Message, s) || strings.Contains(i.Detail, s) {
			return true
		}
	}
	return false
}

// statusError turns a non-2xx answer into a *channels.Error.
func (c *Client) statusError(op string, resp *http.Response, raw []byte) *channels.Error {
	status := resp.StatusCode
	var a apiError
	if json.Unmarshal(raw, &a) != nil {
		a = apiError{Detail: http.StatusText(status) + " (" + snippet(raw) + ")"}
	}
	words := a.words(status)
	e := &channels.Error{Channel: Name, Op: op, Status: status, Permanent: channels.StatusPermanent(status), Message: words}
	switch {
	case status == http.StatusUnauthorized:
		e.Code = CodeUnauthorized
		e.Message = "X rejected the credentials (" + words + "): the access token may have been revoked or regenerated, " +
			"or the consumer keys are wrong; create a new access token and secret for the posting account in the X developer portal " +
			"and update the twitter credentials"
	case status == http.StatusForbidden && a.mentions("duplicate content"):
		e.Code = CodeDuplicate
		e.Message = "X refused a duplicate post (" + words + "): the same text was posted recently; it is not retried"
	case status == http.StatusForbidden && a.hasType("oauth1-permissions"):
		e.Code = CodeReadOnly
		e.Message = "X refused to post because the app has Read-only permission (" + words + "): set the app's User authentication " +
			"settings to \"Read and write\" in the X developer portal, then regenerate the access token and secret"
	case status == http.StatusForbidden && (a.hasType("client-forbidden") || a.Reason == "client-not-enrolled" || a.hasIssueCode(453)):
		e.Code = CodeNoAccess
		e.Message = "X refused the request because the app's API access level does not include this endpoint (" + words + "): " +
			"attach the app to a project with a plan that allows it in the X developer portal"
	case status == http.StatusForbidden && a.mentions("deleted or not visible"):
		e.Code = CodeParentGone
		e.Message = "X refused the reply because the post it answers was deleted or is not visible (" + words + ")"
	case status == http.StatusForbidden:
		e.Code = CodeForbidden
	case status == http.StatusTooManyRequests:
		e.Code = CodeRateLimited
		e.RetryAfter = c.retryAfter(resp.Header)
		e.Message = "X rate limit reached (" + words + ")"
		// Hold further calls too, even when X sent no remaining count.
		c.mu.Lock()
		c.limits[op] = rateState{remaining: 0, reset: c.now().Add(e.RetryAfter)}
		c.mu.Unlock()
	case status == http.StatusNotFound:
		e.Code = CodeNotFound
	case status >= 300 && status < 400:
		e.Code = CodeRedirect
		e.Permanent = true
		e.Message = fmt.Sprintf("X answered with a redirect (HTTP %d); check the base URL %s", status, c.baseText)
	case status >= 500:
		e.Code = CodeUnavailable
		e.RetryAfter = channels.RetryAfter(resp.Header, c.now())
	case status == http.StatusBadRequest:
		e.Code = CodeInvalid
	default:
		e.Code = CodeInvalid
	}
	return e
}

func (a apiError) hasIssueCode(code int) bool {
	for _, i := range a.Errors {
		if i.Code == code {
			return true
		}
	}
	return false
}

// minRateWait is the wait after a 429 that names no reset.
const minRateWait = time.Minute

// retryAfter reads a 429: Retry-After if X sent one, the 15-minute
// window's reset, or a daily cap's reset when that cap is what ran out,
// whichever is latest (a reset an hour away means an hour).
func (c *Client) retryAfter(h http.Header) time.Duration {
	now := c.now()
	wait := channels.RetryAfter(h, now)
	// channels.RetryAfter reads X-RateLimit-Reset (SendGrid's spelling);
	// X's is x-rate-limit-reset, a different header.
	for _, prefix := range []string{"x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"} {
		if prefix != "x-rate-limit" && strings.TrimSpace(h.Get(prefix+"-remaining")) != "0" {
			continue
		}
		if epoch, err := strconv.ParseInt(strings.TrimSpace(h.Get(prefix+"-reset")), 10, 64); err == nil {
			wait = max(wait, untilReset(time.Unix(epoch, 0), now))
		}
	}
	if wait <= 0 {
		wait = minRateWait
	}
	return wait
}

// snippet shows the start of an unexpected body, printable characters only.
func snippet(raw []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, string(raw))
	if s == "" {
		return "empty body"
	}
	return clip(s, 80)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
