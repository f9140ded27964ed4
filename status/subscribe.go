package status

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Subscription tokens are signed, not stored: purpose, subscriber id and
// expiry, with an HMAC-SHA256 (truncated to 128 bits) under the server
// secret. They cannot be guessed or altered, they expire, and deleting the
// subscriber voids them because ids are never reused.

type tokenPurpose byte

const (
	purposeConfirm     tokenPurpose = 'c'
	purposeUnsubscribe tokenPurpose = 'u'
)

var (
	errTokenInvalid = errors.New("this link is not valid: it may have been cut short when copied")
	errTokenExpired = errors.New("this link has expired")
)

func signToken(secret []byte, p tokenPurpose, id int64, expires time.Time) string {
	payload := make([]byte, 0, 1+2*binary.MaxVarintLen64)
	payload = append(payload, byte(p))
	payload = binary.AppendVarint(payload, id)
	payload = binary.AppendVarint(payload, expires.Unix())
	mac := hmac.New(sha256.New, secret)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(append(payload, mac.Sum(nil)[:16]...))
}

func verifyToken(secret []byte, p tokenPurpose, tok string, now time.Time) (int64, error) {
	if len(tok) > 128 {
		return 0, errTokenInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 1+2+16 {
		return 0, errTokenInvalid
	}
	payload, sum := raw[:len(raw)-16], raw[len(raw)-16:]
	mac := hmac.New(sha256.New, secret)
	mac.Write(payload)
	if !hmac.Equal(sum, mac.Sum(nil)[:16]) || tokenPurpose(payload[0]) != p {
		return 0, errTokenInvalid
	}
	rest := payload[1:]
	id, n := binary.Varint(rest)
	if n <= 0 {
		return 0, errTokenInvalid
	}
	exp, m := binary.Varint(rest[n:])
	if m <= 0 || n+m != len(rest) {
		return 0, errTokenInvalid
	}
	if now.After(time.Unix(exp, 0)) {
		return 0, errTokenExpired
	}
	return id, nil
}

// Unsubscribe is what an email to a subscriber needs for one-click
// unsubscribe (RFC 8058): the link for the body, and the two headers.
type Unsubscribe struct {
	URL     string            // https://status.example.com/unsubscribe?token=...
	Headers map[string]string // List-Unsubscribe and List-Unsubscribe-Post
}

// UnsubscribeLink builds the unsubscribe link and headers for subscriber id
// of the status page at publicURL, signed with secret and valid for ttl from
// now. The fan-out engine calls it (or Server.Unsubscribe) for every email it
// sends to a confirmed subscriber.
func UnsubscribeLink(publicURL string, secret []byte, id int64, now time.Time, ttl time.Duration) (Unsubscribe, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Unsubscribe{}, fmt.Errorf("unsubscribe link: public URL %q must be an absolute http or https URL", publicURL)
	}
	if len(secret) < 32 {
		return Unsubscribe{}, errors.New("unsubscribe link: the secret must be at least 32 bytes")
	}
	link := u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/") + "/unsubscribe?token=" +
		signToken(secret, purposeUnsubscribe, id, now.Add(ttl))
	return Unsubscribe{
		URL: link,
		Headers: map[string]string{
			"List-Unsubscribe":      "<" + link + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
	}, nil
}

// Unsubscribe returns the one-click unsubscribe link and headers for a
// confirmed subscriber, valid for the configured UnsubscribeTTL.
func (s *Server) Unsubscribe(sub *breachcast.Subscriber) (Unsubscribe, error) {
	if len(s.cfg.Secret) < 32 {
		return Unsubscribe{}, errors.New("unsubscribe link: subscriptions are not configured")
	}
	return UnsubscribeLink(s.cfg.PublicURL, s.cfg.Secret, sub.ID, s.cfg.Now(), s.cfg.UnsubscribeTTL)
}

// validEmail checks an address typed into the form and returns it
// normalised, or a message saying what is wrong.
func validEmail(in string) (string, error) {
	e := strings.TrimSpace(in)
	switch {
	case e == "":
		return "", errors.New("Enter your email address.")
	case len(e) > 254:
		return "", errors.New("That email address is too long.")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "", errors.New("Enter an email address like name@example.com.")
	}
	local, domain, _ := strings.Cut(e, "@")
	if local == "" || len(local) > 64 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", errors.New("Enter an email address like name@example.com.")
	}
	return strings.ToLower(e), nil
}

// maxFormBody bounds subscription form bodies.
const maxFormBody = 4 << 10

func (s *Server) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	if !s.limiter.allow(s.cfg.ClientAddr(r), s.cfg.Now()) {
		w.Header().Set("Retry-After", "60")
		s.message(w, http.StatusTooManyRequests, &messageView{
			Heading: "Too many requests", Error: true,
			Text: "Too many subscription requests came from your network. Please wait a minute and try again.",
		})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.message(w, http.StatusBadRequest, &messageView{Heading: "Form not understood", Error: true, Text: "The form could not be read. Please try again from the status page."})
		return
	}
	incident := r.PostFormValue("incident")
	sn := s.current()
	if incident != "" && (sn == nil || sn.bySlug[incident] == nil) {
		s.message(w, http.StatusBadRequest, &messageView{Heading: "Unknown incident", Error: true, Text: "There is no incident by that name to subscribe to."})
		return
	}
	email, err := validEmail(r.PostFormValue("email"))
	if err != nil {
		s.subscribeForm(w, http.StatusBadRequest, &formView{Email: r.PostFormValue("email"), Incident: incident, Error: err.Error()})
		return
	}
	ctx := r.Context()
	now := s.cfg.Now()
	sub, err := s.subs.AddSubscriber(ctx, email, incident, now)
	if err != nil {
		s.internal(w, "add subscriber", err)
		return
	}
	// Say the same thing whether or not the address was already
	// subscribed, so the form does not reveal who follows the page.
	if !sub.Confirmed() {
		if err := s.sendConfirmation(ctx, sub, now); err != nil {
			s.internal(w, "send confirmation", err)
			return
		}
	}
	s.message(w, http.StatusOK, &messageView{
		Heading: "Check your inbox",
		Text:    "We sent a confirmation link to that address. Open it to start receiving updates; nothing is sent until you confirm.",
		Link:    s.base + "/", LinkText: "Back to the status page",
	})
}

// subscribeForm shows the form again with what was wrong.
func (s *Server) subscribeForm(w http.ResponseWriter, status int, f *formView) {
	d := pageData{Site: s.site(renderOpts{}), Title: "Subscribe · " + s.cfg.PageName, Form: f, NoLive: true}
	var b bytes.Buffer
	if err := s.pages.byName["subscribe"].ExecuteTemplate(&b, "layout", d); err != nil {
		s.internal(w, "render subscribe page", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", cacheNone)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error("status: "+what, "err", err)
	s.message(w, http.StatusInternalServerError, &messageView{
		Heading: "Something went wrong", Error: true, Text: "Your request could not be completed. Please try again later.",
	})
}

var confirmMail = template.Must(template.New("confirm").Parse(`You asked to receive {{.Scope}} from {{.Page}}.

Confirm your subscription here (the link works for {{.Hours}} hours):
{{.Link}}

If you did not ask for this, ignore this email: nothing will be sent to you.
`))

func (s *Server) sendConfirmation(ctx context.Context, sub *breachcast.Subscriber, now time.Time) error {
	link := s.origin + s.base + "/subscribe/confirm?token=" + signToken(s.cfg.Secret, purposeConfirm, sub.ID, now.Add(s.cfg.ConfirmTTL))
	scope := "status updates about every incident"
	if sub.Incident != "" {
		title := sub.Incident
		if sn := s.current(); sn != nil && sn.bySlug[sub.Incident] != nil {
			title = sn.bySlug[sub.Incident].Title
		}
		scope = "status updates about “" + title + "”"
	}
	var text bytes.Buffer
	if err := confirmMail.Execute(&text, map[string]any{
		"Scope": scope, "Page": s.cfg.PageName, "Link": link, "Hours": int(s.cfg.ConfirmTTL.Hours()),
	}); err != nil {
		return fmt.Errorf("render confirmation: %w", err)
	}
	var html bytes.Buffer
	if err := s.pages.byName["message"].ExecuteTemplate(&html, "confirm-email", map[string]any{
		"Scope": scope, "Page": s.cfg.PageName, "Link": link, "Hours": int(s.cfg.ConfirmTTL.Hours()),
	}); err != nil {
		return fmt.Errorf("render confirmation: %w", err)
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	_, err := s.mail.SendBatch(ctx, &channels.EmailBatch{
		Key:        fmt.Sprintf("subscribe-confirm-%d", sub.ID),
		FromEmail:  s.cfg.MailFrom,
		FromName:   s.cfg.MailFromName,
		Subject:    "Confirm your subscription to " + s.cfg.PageName,
		HTML:       html.String(),
		Text:       text.String(),
		Categories: []string{"status-subscribe-confirm"},
		Recipients: []channels.EmailRecipient{{
			Email:     sub.Email,
			MessageID: fmt.Sprintf("<confirm-%d-%x@%s>", sub.ID, nonce, hostOnly(s.host)),
		}},
	})
	if err != nil {
		return fmt.Errorf("send confirmation: %w", err)
	}
	return nil
}

// tokenFrom reads the token from the query or the form.
func tokenFrom(w http.ResponseWriter, r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		return r.PostFormValue("token")
	}
	return ""
}

func (s *Server) tokenProblem(w http.ResponseWriter, err error, what string) {
	m := &messageView{Heading: "Link not valid", Error: true, Text: err.Error() + "."}
	status := http.StatusBadRequest
	if errors.Is(err, errTokenExpired) {
		m.Heading = "Link expired"
		status = http.StatusGone
		m.Text = "This " + what + " link has expired. "
		if what == "confirmation" {
			m.Text += "Subscribe again from the status page to get a new one."
		} else {
			m.Text += "Use the link in a more recent email, or reply to it and ask to be removed."
		}
	}
	m.Link, m.LinkText = s.base+"/", "Back to the status page"
	s.message(w, status, m)
}

func (s *Server) serveConfirmPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if _, err := verifyToken(s.cfg.Secret, purposeConfirm, tok, s.cfg.Now()); err != nil {
		s.tokenProblem(w, err, "confirmation")
		return
	}
	// A button, not an action on GET: mail scanners follow links.
	s.message(w, http.StatusOK, &messageView{
		Heading: "Confirm your subscription", Text: "Press the button to start receiving status updates by email.",
		Action: s.base + "/subscribe/confirm", Button: "Confirm subscription", Fields: map[string]string{"token": tok},
	})
}

func (s *Server) serveConfirm(w http.ResponseWriter, r *http.Request) {
	id, err := verifyToken(s.cfg.Secret, purposeConfirm, tokenFrom(w, r), s.cfg.Now())
	if err != nil {
		s.tokenProblem(w, err, "confirmation")
		return
	}
	sub, err := s.subs.Subscriber(r.Context(), id)
	if breachcast.ErrorCodeOf(err) == breachcast.ENOTFOUND {
		s.message(w, http.StatusNotFound, &messageView{Heading: "Subscription not found", Error: true,
			Text: "This subscription was removed. Subscribe again from the status page.", Link: s.base + "/", LinkText: "Back to the status page"})
		return
	}
	if err != nil {
		s.internal(w, "find subscriber", err)
		return
	}
	if err := s.subs.ConfirmSubscriber(r.Context(), id, s.cfg.Now()); err != nil {
		s.internal(w, "confirm subscriber", err)
		return
	}
	un, err := s.Unsubscribe(sub)
	if err != nil {
		s.internal(w, "unsubscribe link", err)
		return
	}
	s.message(w, http.StatusOK, &messageView{
		Heading: "You are subscribed", Text: "You will receive status updates by email. Every email has a link to unsubscribe in one click.",
		Link: un.URL, LinkText: "Unsubscribe",
	})
}

func (s *Server) serveUnsubscribePage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if _, err := verifyToken(s.cfg.Secret, purposeUnsubscribe, tok, s.cfg.Now()); err != nil {
		s.tokenProblem(w, err, "unsubscribe")
		return
	}
	s.message(w, http.StatusOK, &messageView{
		Heading: "Unsubscribe", Text: "Press the button to stop receiving status updates by email.",
		Action: s.base + "/unsubscribe", Button: "Unsubscribe",
		Fields: map[string]string{"token": tok, "List-Unsubscribe": "One-Click"},
	})
}

// serveUnsubscribe handles both the page's button and RFC 8058 one-click
// POSTs (body List-Unsubscribe=One-Click, token in the URL).
func (s *Server) serveUnsubscribe(w http.ResponseWriter, r *http.Request) {
	id, err := verifyToken(s.cfg.Secret, purposeUnsubscribe, tokenFrom(w, r), s.cfg.Now())
	if err != nil {
		s.tokenProblem(w, err, "unsubscribe")
		return
	}
	if err := s.subs.Unsubscribe(r.Context(), id); err != nil {
		s.internal(w, "unsubscribe", err)
		return
	}
	s.message(w, http.StatusOK, &messageView{
		Heading: "You are unsubscribed", Text: "You will not receive further status updates by email.",
		Link: s.base + "/", LinkText: "Back to the status page",
	})
}

// limiter is a per-address token bucket with a bounded number of tracked
// addresses: a flood from many addresses cannot grow it without limit; when
// it is full of active addresses, newcomers are refused.
type limiter struct {
	mu       sync.Mutex
	burst    float64
	every    time.Duration
	max      int
	visitors map[string]*bucket
	swept    time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(burst int, every time.Duration, max int) *limiter {
	return &limiter{burst: float64(burst), every: every, max: max, visitors: map[string]*bucket{}}
}

func (l *limiter) allow(addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.visitors[addr]
	if !ok {
		if len(l.visitors) >= l.max {
			l.sweep(now)
			if len(l.visitors) >= l.max {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.visitors[addr] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.burst, b.tokens+float64(el)/float64(l.every))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets addresses whose bucket has refilled (they are as good as
// new), at most once a second so a flood cannot make every call O(n).
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Second {
		return
	}
	l.swept = now
	full := time.Duration(l.burst * float64(l.every))
	for a, b := range l.visitors {
		if now.Sub(b.last) >= full {
			delete(l.visitors, a)
		}
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.visitors)
}
