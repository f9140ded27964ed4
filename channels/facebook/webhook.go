package facebook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// MaxWebhookBody is the largest webhook body read. Page webhooks batch a few
// changes and are a few kilobytes.
const MaxWebhookBody = 1 << 20

// maxChallenge bounds the echoed hub.challenge (Facebook sends a number).
const maxChallenge = 256

// Webhook returns the Page webhook endpoint. GET answers Facebook's
// subscription handshake when the verify token matches. POST verifies
// X-Hub-Signature-256 over the raw body with the app secret, then hands every
// comment change (added, edited, removed, hidden, shown) to sink as a
// breachcast.Reply; the Page's own comments, posts and reactions are
// acknowledged and ignored. Nothing reaches the sink from a request that is
// unsigned, wrongly signed, too large or malformed. Replays need no state
// here: the sink is idempotent per comment and ignores older edits.
func (c *Client) Webhook(sink channels.Sink) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			c.handshake(w, r)
		case http.MethodPost:
			c.receive(w, r, sink)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// handshake answers the GET Facebook sends when the webhook is subscribed.
func (c *Client) handshake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	challenge := q.Get("hub.challenge")
	if c.cfg.VerifyToken == "" || q.Get("hub.mode") != "subscribe" || !equalSecret(q.Get("hub.verify_token"), c.cfg.VerifyToken) ||
		challenge == "" || len(challenge) > maxChallenge {
		c.log.Warn("webhook handshake refused", "remote", r.RemoteAddr, "mode", q.Get("hub.mode"))
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	c.log.Info("webhook handshake accepted")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, challenge)
}

// equalSecret compares in time independent of where the strings differ and
// of their lengths.
func equalSecret(got, want string) bool {
	g, h := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], h[:]) == 1
}

// VerifySignature reports whether header (an X-Hub-Signature-256 value,
// "sha256=<hex>") is the HMAC-SHA256 of body keyed by appSecret. body must be
// the raw bytes received: Facebook signs them with non-ASCII escaped as
// \uXXXX, so re-encoded JSON does not verify.
func VerifySignature(appSecret string, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(hexSig) != sha256.Size*2 {
		return false
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return hmac.Equal(sig, m.Sum(nil))
}

func (c *Client) receive(w http.ResponseWriter, r *http.Request, sink channels.Sink) {
	if r.ContentLength > MaxWebhookBody {
		c.log.Warn("webhook refused: body too large", "remote", r.RemoteAddr, "bytes", r.ContentLength)
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.log.Warn("webhook refused: body too large", "remote", r.RemoteAddr)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "could not read body", http.StatusBadRequest)
		return
	}
	if !VerifySignature(c.cfg.AppSecret, body, r.Header.Get("X-Hub-Signature-256")) {
		reason := "signature does not match"
		if r.Header.Get("X-Hub-Signature-256") == "" {
			reason = "unsigned"
		}
		c.log.Warn("webhook refused", "reason", reason, "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	replies, err := c.parseWebhook(body)
	if err != nil {
		c.log.Warn("webhook refused: not a Page webhook", "err", err)
		http.Error(w, "body is not a Page webhook: "+err.Error(), http.StatusBadRequest)
		return
	}
	for _, rep := range replies {
		if err := sink.Ingest(r.Context(), rep); err != nil {
			// Facebook redelivers on failure; the sink is idempotent, so
			// replies already stored from this batch are not doubled.
			c.log.Error("webhook: store reply", "comment_id", rep.ExternalID, "err", err)
			http.Error(w, "could not store reply", http.StatusInternalServerError)
			return
		}
		c.log.Info("webhook: reply received", "comment_id", rep.ExternalID, "action", string(rep.Action), "post_id", rep.RootID)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

type webhookPayload struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      flexID            `json:"id"`
		Time    graphTime         `json:"time"`
		Changes []json.RawMessage `json:"changes"`
	} `json:"entry"`
}

type webhookChange struct {
	Field string `json:"field"`
	Value struct {
		Item      string `json:"item"`
		Verb      string `json:"verb"`
		CommentID flexID `json:"comment_id"`
		PostID    flexID `json:"post_id"`
		ParentID  flexID `json:"parent_id"`
		From      *struct {
			ID   flexID `json:"id"`
			Name string `json:"name"`
		} `json:"from"`
		SenderID    flexID    `json:"sender_id"`
		SenderName  string    `json:"sender_name"`
		Message     string    `json:"message"`
		CreatedTime graphTime `json:"created_time"`
	} `json:"value"`
}

var verbs = map[string]breachcast.ReplyAction{
	"add":    breachcast.ReplyAdded,
	"edited": breachcast.ReplyEdited,
	"edit":   breachcast.ReplyEdited,
	"remove": breachcast.ReplyRemoved,
	"hide":   breachcast.ReplyHidden,
	"unhide": breachcast.ReplyShown,
}

// parseWebhook reads a Page webhook body into replies. It fails only when
// the body is not JSON of the webhook's shape; a single change it cannot
// read is skipped with a warning, since the body came signed from Facebook
// and refusing it would only make Facebook resend it.
func (c *Client) parseWebhook(body []byte) ([]*breachcast.Reply, error) {
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	if p.Object != "page" {
		c.log.Debug("webhook: ignored object", "object", p.Object)
		return nil, nil
	}
	var out []*breachcast.Reply
	for _, e := range p.Entry {
		for _, raw := range e.Changes {
			var ch webhookChange
			if err := json.Unmarshal(raw, &ch); err != nil {
				c.log.Warn("webhook: unreadable change skipped", "page_id", string(e.ID), "err", err)
				continue
			}
			v := ch.Value
			if ch.Field != "feed" && ch.Field != "mention" {
				c.log.Debug("webhook: ignored field", "field", ch.Field)
				continue
			}
			if v.Item != "comment" {
				c.log.Debug("webhook: ignored change", "field", ch.Field, "item", v.Item, "verb", v.Verb, "post_id", string(v.PostID))
				continue
			}
			action, ok := verbs[v.Verb]
			if !ok {
				c.log.Debug("webhook: ignored comment verb", "verb", v.Verb, "comment_id", string(v.CommentID))
				continue
			}
			if v.CommentID == "" {
				c.log.Warn("webhook: comment change without comment_id skipped", "post_id", string(v.PostID))
				continue
			}
			rep := &breachcast.Reply{
				Channel:    Name,
				ExternalID: string(v.CommentID),
				Action:     action,
				AuthorID:   string(v.SenderID),
				AuthorName: v.SenderName,
				Text:       v.Message,
				InReplyTo:  string(v.ParentID),
				RootID:     string(v.PostID),
				CreatedAt:  v.CreatedTime.Time,
				EventTime:  e.Time.Time,
				Raw:        bytes.Clone(raw),
			}
			if v.From != nil {
				rep.AuthorID, rep.AuthorName = string(v.From.ID), v.From.Name
			}
			if rep.InReplyTo == "" {
				rep.InReplyTo = rep.RootID
			}
			if rep.EventTime.IsZero() {
				rep.EventTime = rep.CreatedAt
			}
			if rep.AuthorID != "" && rep.AuthorID == c.cfg.PageID {
				c.log.Debug("webhook: the page's own comment ignored", "comment_id", rep.ExternalID)
				continue
			}
			out = append(out, rep)
		}
	}
	return out, nil
}
