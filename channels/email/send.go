package email

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/breachcast/breachcast/channels"
)

// OpSend is the operation named in send errors.
const OpSend = "mail/send"

// MaxRecipients is SendGrid's limit of personalizations (here: recipients)
// per mail/send request.
const MaxRecipients = 1000

// maxCategories is SendGrid's limit of categories per email.
const maxCategories = 10

// reservedHeaders cannot be set per recipient; SendGrid refuses the whole
// request when one is.
var reservedHeaders = []string{
	"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
	"content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}

// SendBatch sends b as one SendGrid request, one personalization per
// recipient. SendGrid accepts or refuses the batch as a whole. A batch that
// cannot be valid (no recipients, more than MaxRecipients, an address twice,
// a missing from, subject or body, a bad header) is refused with a permanent
// error before anything is sent. Every error is a *channels.Error.
func (c *Client) SendBatch(ctx context.Context, b *channels.EmailBatch) (*channels.BatchReceipt, error) {
	body, err := c.build(b)
	if err != nil {
		return nil, &channels.Error{Channel: Name, Op: OpSend, Permanent: true,
			Message: "refused before sending: " + err.Error(), Err: err}
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v3/mail/send", body)
	if err != nil {
		return nil, &channels.Error{Channel: Name, Op: OpSend, Permanent: true,
			Message: "cannot build the request: " + c.scrub(err.Error())}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, OpSend, err)
	}
	defer closeBody(resp)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// SendGrid answers 202 with the id of the send; in sandbox mode it
		// answers 200 and may have none. A 2xx without the id is not
		// SendGrid's answer (a proxy, a captive portal): nothing says the
		// batch went out, so it is retried.
		if id := resp.Header.Get("X-Message-Id"); id != "" || c.sandbox {
			return &channels.BatchReceipt{ProviderID: id}, nil
		}
		return nil, &channels.Error{Channel: Name, Op: OpSend, Status: resp.StatusCode,
			Message: "the answer is not SendGrid's: no X-Message-Id (" + c.describeBody(resp) + ")"}
	}
	return nil, c.statusError(OpSend, resp)
}

// build validates b and returns the mail/send body.
func (c *Client) build(b *channels.EmailBatch) ([]byte, error) {
	if b == nil {
		return nil, errors.New("no batch")
	}
	name := "batch"
	if b.Key != "" {
		name = "batch " + b.Key
	}
	switch n := len(b.Recipients); {
	case n == 0:
		return nil, fmt.Errorf("%s has no recipients", name)
	case n > MaxRecipients:
		return nil, fmt.Errorf("%s has %d recipients; SendGrid takes at most %d per request", name, n, MaxRecipients)
	}
	switch {
	case strings.TrimSpace(b.FromEmail) == "":
		return nil, fmt.Errorf("%s has no from address", name)
	case b.Subject == "":
		return nil, fmt.Errorf("%s has no subject", name)
	case b.Text == "" && b.HTML == "":
		return nil, fmt.Errorf("%s has no body: neither text nor HTML", name)
	case len(b.Categories) > maxCategories:
		return nil, fmt.Errorf("%s has %d categories; SendGrid allows %d", name, len(b.Categories), maxCategories)
	}

	m := mail.NewV3Mail()
	m.SetFrom(mail.NewEmail(b.FromName, b.FromEmail))
	if b.ReplyTo != "" {
		m.SetReplyTo(mail.NewEmail("", b.ReplyTo))
	}
	m.Subject = b.Subject
	// SendGrid wants text/plain first, then text/html.
	if b.Text != "" {
		m.AddContent(mail.NewContent("text/plain", b.Text))
	}
	if b.HTML != "" {
		m.AddContent(mail.NewContent("text/html", b.HTML))
	}
	m.AddCategories(b.Categories...)
	for k, v := range b.CustomArgs {
		m.SetCustomArg(k, v)
	}
	if c.sandbox {
		m.SetMailSettings(mail.NewMailSettings().SetSandboxMode(mail.NewSetting(true)))
	}

	// Positions by lower-cased address: SendGrid refuses a request that
	// names an address twice, whatever its case. Errors name positions, not
	// addresses, so no customer address ends up in a log.
	seen := make(map[string]int, len(b.Recipients))
	for i, r := range b.Recipients {
		who := "recipient " + strconv.Itoa(i) + " of " + name
		addr := strings.TrimSpace(r.Email)
		if addr == "" {
			return nil, fmt.Errorf("%s has no email address", who)
		}
		key := strings.ToLower(addr)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s repeats the address of recipient %d (addresses are compared case-insensitively)", who, j)
		}
		seen[key] = i

		p := mail.NewPersonalization()
		p.AddTos(mail.NewEmail(r.Name, addr))
		for k, v := range r.Headers {
			if err := checkHeader(k, v); err != nil {
				return nil, fmt.Errorf("%s: %w", who, err)
			}
			p.SetHeader(k, v)
		}
		for _, h := range [][2]string{
			{"Message-ID", r.MessageID},
			{"In-Reply-To", r.InReplyTo},
			{"References", strings.Join(r.References, " ")},
		} {
			if h[1] == "" {
				continue
			}
			if err := checkHeader(h[0], h[1]); err != nil {
				return nil, fmt.Errorf("%s: %w", who, err)
			}
			p.SetHeader(h[0], h[1])
		}
		for k, v := range r.Substitutions {
			p.SetSubstitution(k, v)
		}
		for k, v := range r.CustomArgs {
			p.SetCustomArg(k, v)
		}
		m.AddPersonalizations(p)
	}
	body := mail.GetRequestBody(m)
	if body == nil {
		return nil, fmt.Errorf("%s does not encode as JSON", name)
	}
	return body, nil
}

// checkHeader refuses what SendGrid would refuse and what would let a value
// smuggle in a header of its own.
func checkHeader(k, v string) error {
	switch {
	case k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r > '~' || r == ':' }):
		return fmt.Errorf("header name %q is not printable ASCII without spaces or colons", k)
	case slices.Contains(reservedHeaders, strings.ToLower(k)):
		return fmt.Errorf("header %s is reserved: SendGrid sets it itself", k)
	case strings.ContainsAny(v, "\r\n"):
		return fmt.Errorf("header %s has a line break in its value", k)
	}
	return nil
}
