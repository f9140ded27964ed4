package email

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/breachcast/breachcast/channels"
)

// Names of the readiness checks.
const (
	CheckAPIKey   = "api key"
	CheckMailSend = "mail send permission"
	CheckSandbox  = "sandbox mode"
)

// ScopeMailSend is the scope a key needs to send email.
const ScopeMailSend = "mail.send"

const newKeyAdvice = "create a new key with Mail Send permission (SendGrid: Settings > API Keys) and configure it"

// Check asks SendGrid which scopes the key has (GET /v3/scopes, which any
// valid key may call) and reports, in plain words, whether the key is
// accepted and whether it may send mail. In sandbox mode it says so, since
// nothing will be delivered.
func (c *Client) Check(ctx context.Context) []channels.Check {
	checks := c.checkKey(ctx)
	if c.sandbox {
		checks = append(checks, channels.Check{Channel: Name, Name: CheckSandbox, OK: true,
			Detail: "sandbox mode is on: SendGrid validates every email and delivers none; turn it off for a real notice"})
	}
	return checks
}

func (c *Client) checkKey(ctx context.Context) []channels.Check {
	fail := func(detail string) []channels.Check {
		return []channels.Check{{Channel: Name, Name: CheckAPIKey, OK: false, Detail: detail}}
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v3/scopes", nil)
	if err != nil {
		return fail("cannot build the request: " + c.scrub(err.Error()))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fail("cannot reach SendGrid at " + c.base + ": " + c.transportError(ctx, "GET /v3/scopes", err).Message +
			"; check the network and the base URL")
	}
	defer closeBody(resp)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fail("SendGrid rejected the API key: " + newKeyAdvice)
	case resp.StatusCode == http.StatusForbidden:
		return fail("SendGrid refused to list the key's permissions (HTTP 403): " + newKeyAdvice)
	case resp.StatusCode != http.StatusOK:
		e := c.statusError("GET /v3/scopes", resp)
		return fail("SendGrid answered the check with HTTP " + strconv.Itoa(resp.StatusCode) + ": " + e.Message +
			"; try again in a minute")
	}
	var body struct {
		Scopes []string `json:"scopes"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil || json.Unmarshal(raw, &body) != nil || body.Scopes == nil {
		return fail("SendGrid's answer to the check is not the expected JSON (" +
			c.describe(resp.Header.Get("Content-Type"), raw) + "); check the base URL")
	}
	key := channels.Check{Channel: Name, Name: CheckAPIKey, OK: true, Detail: "SendGrid accepted the API key"}
	send := channels.Check{Channel: Name, Name: CheckMailSend, OK: true, Detail: "the key may send mail (mail.send)"}
	if !slices.Contains(body.Scopes, ScopeMailSend) {
		send.OK = false
		send.Detail = "the API key lacks Mail Send permission (scope mail.send): give it Mail Send access in SendGrid (Settings > API Keys), or " + newKeyAdvice
	}
	return []channels.Check{key, send}
}
