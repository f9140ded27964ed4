package fbemu

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Delivery is one webhook POST the emulator made.
type Delivery struct {
	URL       string
	Body      []byte
	Signature string // X-Hub-Signature-256 sent
	Status    int    // last HTTP status, 0 when no response came
	Err       string // last transport error
	Attempts  int
}

// hookQueue delivers webhook bodies in order on one goroutine.
type hookQueue struct {
	mu         sync.Mutex
	items      [][]byte
	pending    int
	idle       chan struct{} // closed while nothing is pending
	wake       chan struct{}
	started    bool
	deliveries []Delivery
}

func (q *hookQueue) init() {
	q.idle = make(chan struct{})
	close(q.idle)
	q.wake = make(chan struct{}, 1)
}

// SetWebhookURL sets (or, with "", clears) the callback that receives Page
// webhooks.
func (s *Server) SetWebhookURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL = u
}

// Deliveries returns every webhook delivery made so far (the latest 10000).
func (s *Server) Deliveries() []Delivery {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	out := make([]Delivery, len(s.hooks.deliveries))
	for i, d := range s.hooks.deliveries {
		d.Body = bytes.Clone(d.Body)
		out[i] = d
	}
	return out
}

// FlushWebhooks waits until every queued webhook has been delivered (or has
// failed every attempt), or ctx ends.
func (s *Server) FlushWebhooks(ctx context.Context) error {
	for {
		s.hooks.mu.Lock()
		pending, idle := s.hooks.pending, s.hooks.idle
		s.hooks.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("fbemu: flush webhooks: %w", ctx.Err())
		}
	}
}

// enqueue queues a webhook body when a callback URL is configured.
func (s *Server) enqueue(body []byte) {
	s.mu.Lock()
	target := s.webhookURL
	s.mu.Unlock()
	if body == nil || target == "" || s.opts.AppSecret == "" {
		return
	}
	select {
	case <-s.stop:
		return
	default:
	}
	q := &s.hooks
	q.mu.Lock()
	if q.pending == 0 {
		q.idle = make(chan struct{})
	}
	q.pending++
	q.items = append(q.items, body)
	if !q.started {
		q.started = true
		s.wg.Add(1)
		go s.deliverLoop()
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (s *Server) deliverLoop() {
	defer s.wg.Done()
	q := &s.hooks
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-s.stop:
				q.mu.Lock()
				if q.pending > 0 {
					q.items, q.pending = nil, 0
					close(q.idle)
				}
				q.mu.Unlock()
				return
			}
		}
		body := q.items[0]
		q.items = q.items[1:]
		q.mu.Unlock()

		d := s.deliver(body)

		q.mu.Lock()
		if len(q.deliveries) >= maxRecorded {
			q.deliveries = slices.Delete(q.deliveries, 0, len(q.deliveries)-maxRecorded+1)
		}
		q.deliveries = append(q.deliveries, d)
		q.pending--
		if q.pending == 0 {
			close(q.idle)
		}
		q.mu.Unlock()
	}
}

// Sign returns the X-Hub-Signature-256 value Facebook sends for body.
func Sign(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (s *Server) deliver(body []byte) Delivery {
	s.mu.Lock()
	target := s.webhookURL
	s.mu.Unlock()
	d := Delivery{URL: target, Body: body, Signature: Sign(s.opts.AppSecret, body)}
	legacy := hmac.New(sha1.New, []byte(s.opts.AppSecret))
	legacy.Write(body)
	for d.Attempts < 3 {
		select {
		case <-s.stop:
			return d
		default:
		}
		d.Attempts++
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			d.Err = err.Error()
			return d
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "facebookexternalua")
		req.Header.Set("X-Hub-Signature-256", d.Signature)
		req.Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(legacy.Sum(nil)))
		resp, err := s.opts.HTTPClient.Do(req)
		if err == nil {
			resp.Body.Close()
			d.Status, d.Err = resp.StatusCode, ""
			if resp.StatusCode == http.StatusOK {
				return d
			}
		} else {
			d.Status, d.Err = 0, err.Error()
		}
		// Facebook retries failed deliveries; so does the emulator, briefly.
		t := time.NewTimer(time.Duration(d.Attempts) * 200 * time.Millisecond)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return d
		}
	}
	s.log.Warn("fbemu: webhook delivery failed", "url", target, "status", d.Status, "err", d.Err)
	return d
}

// webhookBody renders a Page webhook with one feed change, escaping
// non-ASCII as \uXXXX the way Facebook does (the signature covers those
// exact bytes).
func (s *Server) webhookBody(value map[string]any) []byte {
	body := map[string]any{
		"object": "page",
		"entry": []any{map[string]any{
			"id":      s.opts.PageID,
			"time":    s.now().Unix(),
			"changes": []any{map[string]any{"field": "feed", "value": value}},
		}},
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil
	}
	return escapeNonASCII(b)
}

func escapeNonASCII(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r < 0x80:
			out.WriteByte(b[0])
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[n:]
	}
	return out.Bytes()
}

// postEvent is the webhook for a change to a Page post. s.mu held.
func (s *Server) postEvent(p *post, verb string) []byte {
	v := map[string]any{"item": "status", "verb": verb, "post_id": p.id, "from": p.from,
		"published": 1, "created_time": p.created.Unix()}
	if verb != "remove" {
		v["message"] = p.message
	}
	return s.webhookBody(v)
}

// commentEvent is the webhook for a change to a comment. s.mu held.
func (s *Server) commentEvent(c *comment, verb string) []byte {
	v := map[string]any{"item": "comment", "verb": verb, "comment_id": c.id, "post_id": c.postID,
		"parent_id": c.parentID, "from": c.from, "created_time": c.created.Unix()}
	if verb != "remove" {
		v["message"] = c.message
	}
	return s.webhookBody(v)
}

// customer returns a stable customer identity for a display name.
func customer(name string) actor {
	h := fnv.New64a()
	h.Write([]byte(name))
	return actor{ID: "10" + strconv.FormatUint(h.Sum64()%1e13+1e12, 10), Name: name}
}

// AddComment makes a customer named authorName comment text on postID, or
// reply to the comment parentID under it. It returns the comment id and, when
// a webhook URL is set, queues the signed "add" webhook.
func (s *Server) AddComment(postID, parentID, authorName, text string) (string, error) {
	if authorName == "" || text == "" {
		return "", errors.New("fbemu: a comment needs an author and a text")
	}
	target := postID
	if parentID != "" {
		s.mu.Lock()
		pc := s.comments[parentID]
		s.mu.Unlock()
		if pc == nil || pc.postID != postID {
			return "", fmt.Errorf("fbemu: comment %s is not under post %s", parentID, postID)
		}
		target = parentID
	}
	c, ev, gerr := s.addComment(target, customer(authorName), text)
	if gerr != nil {
		return "", fmt.Errorf("fbemu: add comment: %s", gerr.Message)
	}
	s.enqueue(ev)
	return c.id, nil
}

// EditComment changes a comment's text and queues the "edited" webhook.
func (s *Server) EditComment(commentID, text string) error {
	s.mu.Lock()
	c := s.comments[commentID]
	if c == nil || c.removed {
		s.mu.Unlock()
		return fmt.Errorf("fbemu: no comment %s", commentID)
	}
	c.message = text
	ev := s.commentEvent(c, "edited")
	s.mu.Unlock()
	s.enqueue(ev)
	return nil
}

// RemoveComment removes a comment (its author deleted it) and queues the
// "remove" webhook.
func (s *Server) RemoveComment(commentID string) error {
	s.mu.Lock()
	c := s.comments[commentID]
	if c == nil || c.removed {
		s.mu.Unlock()
		return fmt.Errorf("fbemu: no comment %s", commentID)
	}
	c.removed = true
	ev := s.commentEvent(c, "remove")
	s.mu.Unlock()
	s.enqueue(ev)
	return nil
}

// autoReplies are the customer comments the demo shows under each post.
var autoReplies = []struct {
	author, text string
	reply        bool // a reply to the first comment
}{
	{"Dana Whitfield", "Was my card data part of this? I used the same password elsewhere.", false},
	{"Marco Ruiz", "Thanks for telling us quickly instead of hiding it.", false},
	{"Priya Natarajan", "Same question here. Should we reset passwords now or wait for the next update?", true},
}

// scheduleAutoReplies makes the auto replies arrive one after another,
// AutoReplyDelay apart, each scheduled when the one before has been made.
func (s *Server) scheduleAutoReplies(postID string) {
	var first string
	var step func(i int)
	step = func(i int) {
		if i >= len(autoReplies) {
			return
		}
		t := time.AfterFunc(s.opts.AutoReplyDelay, func() {
			select {
			case <-s.stop:
				return
			default:
			}
			ar := autoReplies[i]
			parent := ""
			if ar.reply {
				parent = first
			}
			id, err := s.AddComment(postID, parent, ar.author, ar.text)
			if err != nil {
				s.log.Debug("fbemu: auto reply skipped", "post_id", postID, "err", err)
				return
			}
			if first == "" {
				first = id
			}
			step(i + 1)
		})
		s.mu.Lock()
		s.timers = append(s.timers, t)
		s.mu.Unlock()
	}
	step(0)
}
