package email

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/breachcast/breachcast/channels"
)

// maxAnswerBytes bounds how much of an answer is read: SendGrid's error
// bodies are small, and a hostile or broken server must not make us buffer
// an arbitrary amount.
const maxAnswerBytes = 64 << 10

// maxListedErrors is how many of SendGrid's errors a message lists.
const maxListedErrors = 5

// sgErrors is SendGrid's error body.
type sgErrors struct {
	Errors []struct {
		Message string `json:"message"`
		Field   any    `json:"field"` // string or null
		Help    any    `json:"help"`  // a URL, an object or null
	} `json:"errors"`
}

// statusError turns a non-2xx answer into a *channels.Error that says
// whether and when to retry.
func (c *Client) statusError(op string, resp *http.Response) *channels.Error {
	s := resp.StatusCode
	e := &channels.Error{Channel: Name, Op: op, Status: s}
	detail := c.readErrors(resp)
	switch {
	case s == http.StatusUnauthorized:
		e.Permanent = true
		e.Message = "SendGrid rejected the API key" + colon(detail)
	case s == http.StatusForbidden:
		e.Permanent = true
		e.Message = "SendGrid forbade the send" + colon(detail) +
			" (the API key needs the mail.send scope, Mail Send permission, and the from address must be a verified sender)"
	case s == http.StatusBadRequest:
		e.Permanent = true
		e.Message = "SendGrid refused the email" + colon(detail)
	case s == http.StatusRequestEntityTooLarge:
		e.Permanent = true
		e.Message = "the request is too large for SendGrid (30 MB at most)" + colon(detail)
	case s == http.StatusTooManyRequests:
		e.RetryAfter = channels.RetryAfter(resp.Header, c.now())
		e.Message = "SendGrid's rate limit was reached" + colon(detail)
	case s >= 500:
		e.Message = "SendGrid had a server error" + colon(detail)
	case s >= 300 && s < 400:
		// Not followed: SendGrid does not redirect API calls.
		e.Permanent = true
		e.Message = "SendGrid answered with a redirect: check the base URL"
	default:
		e.Permanent = channels.StatusPermanent(s)
		e.Message = "unexpected answer from SendGrid" + colon(detail)
	}
	return e
}

func colon(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// readErrors reads SendGrid's error body and makes it one readable line:
// "message (field x); message (field y)". An answer that is not SendGrid's
// JSON is described instead.
func (c *Client) readErrors(resp *http.Response) string {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil && len(raw) == 0 {
		return "the answer broke off: " + c.scrub(err.Error())
	}
	var body sgErrors
	if json.Unmarshal(raw, &body) != nil || body.Errors == nil {
		if len(strings.TrimSpace(string(raw))) == 0 {
			return ""
		}
		return c.describe(resp.Header.Get("Content-Type"), raw)
	}
	var parts []string
	for i, e := range body.Errors {
		if i == maxListedErrors {
			parts = append(parts, fmt.Sprintf("and %d more", len(body.Errors)-i))
			break
		}
		p := strings.TrimSpace(e.Message)
		if p == "" {
			p = "(no message)"
		}
		if f, ok := e.Field.(string); ok && f != "" && f != "null" {
			p += " (field " + f + ")"
		}
		if h, ok := e.Help.(string); ok && strings.HasPrefix(h, "http") {
			p += " see " + h
		}
		parts = append(parts, p)
	}
	return c.scrub(clip(strings.Join(parts, "; "), 2000))
}

// describeBody reads a body that should have been something else and says
// what it was.
func (c *Client) describeBody(resp *http.Response) string {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if len(strings.TrimSpace(string(raw))) == 0 {
		return "and an empty body"
	}
	return c.describe(resp.Header.Get("Content-Type"), raw)
}

// describe says what a body that is not SendGrid's JSON looked like,
// quoted and clipped so no control character reaches a log.
func (c *Client) describe(contentType string, raw []byte) string {
	kind := "not JSON"
	if json.Valid(raw) {
		kind = "JSON but not SendGrid's"
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		kind += ", " + mt
	}
	return c.scrub(fmt.Sprintf("the answer is %s: %s", kind, strconv.Quote(clip(string(raw), 120))))
}

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// transportError describes a request that got no HTTP answer. All of these
// are retried: the batch may or may not have reached SendGrid.
func (c *Client) transportError(ctx context.Context, op string, err error) *channels.Error {
	e := &channels.Error{Channel: Name, Op: op, Err: err}
	var (
		ne      net.Error
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		e.Message = "the send was canceled before SendGrid answered"
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		e.Message = "no answer from SendGrid before the deadline (it hung or was slow)"
	case errors.As(err, &ne) && ne.Timeout():
		e.Message = "SendGrid did not answer in time (timeout)"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		e.Message = "SendGrid closed the connection without answering"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		e.Message = "the connection to SendGrid was reset before it answered"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Message = "SendGrid refused the connection: is the base URL right?"
	case errors.As(err, &dnsErr):
		e.Message = "cannot look up the SendGrid host " + dnsErr.Name
	case errors.As(err, &certErr):
		e.Message = "SendGrid's TLS certificate did not verify: " + c.scrub(certErr.Err.Error())
	case strings.Contains(err.Error(), "malformed HTTP"):
		e.Message = "SendGrid answered with something that is not HTTP (garbage)"
	default:
		e.Message = "the request to SendGrid failed: " + c.scrub(err.Error())
	}
	return e
}

// scrub removes the API key from s, in case a server or a library echoes it.
func (c *Client) scrub(s string) string {
	if len(c.key) < 4 {
		return s
	}
	return strings.ReplaceAll(s, c.key, "(redacted)")
}

// closeBody drains a little of the body, so the connection can be reused,
// and closes it.
func closeBody(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes)) //nolint:errcheck // best effort
	resp.Body.Close()
}
