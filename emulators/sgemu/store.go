package sgemu

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// Message is one email as a recipient would get it: SendGrid's
// substitutions applied, personalization values over message-level ones.
type Message struct {
	ID         int64  // emulator sequence number, for /messages/{id}
	To         string // the recipient's address
	Name       string // the recipient's name, if given
	From       string
	FromName   string
	ReplyTo    string
	Subject    string
	HTML       string
	Text       string
	Headers    map[string]string // message headers merged with the personalization's
	CustomArgs map[string]string // message custom_args merged with the personalization's
	Categories []string
	XMessageID string // the X-Message-Id the request was answered with
	At         time.Time
}

// shared is what the personalizations of one request have in common. Kept
// entries point at it, so one request's body is stored once however many of
// its recipients are kept, and nothing else of the request is retained.
type shared struct {
	from       address
	replyTo    string
	subject    string
	html, text string
	headers    map[string]string
	customArgs map[string]string
	categories []string
	xmid       string
	at         time.Time
}

// entry is a kept message, rendered only when somebody looks at it: the
// emulator may record a million recipients and is looked at a few times.
type entry struct {
	id     int64
	to     address
	p      *personalization
	shared *shared
}

// record counts every recipient of an accepted request and keeps the last
// ones for inspection.
func (s *Server) record(m *mailSend, xmid string) {
	sh := &shared{
		headers:    m.Headers,
		customArgs: m.CustomArgs,
		categories: m.Categories,
		xmid:       xmid,
		at:         s.now(),
	}
	if m.From != nil {
		sh.from = *m.From
	}
	if m.ReplyTo != nil {
		sh.replyTo = m.ReplyTo.Email
	}
	if m.Subject != nil {
		sh.subject = *m.Subject
	}
	for _, c := range m.Content {
		switch strings.ToLower(c.Type) {
		case "text/plain":
			sh.text = c.Value
		case "text/html":
			sh.html = c.Value
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	for _, p := range m.Personalizations {
		for _, list := range [][]address{p.To, p.CC, p.BCC} {
			for _, a := range list {
				s.counts[strings.ToLower(a.Email)]++
				s.total++
				s.seq++
				if len(s.ring) == 0 {
					continue
				}
				s.ring[s.ringNext] = entry{id: s.seq, to: a, p: p, shared: sh}
				s.ringNext = (s.ringNext + 1) % len(s.ring)
				s.ringLen = min(s.ringLen+1, len(s.ring))
			}
		}
	}
}

// Count returns how many messages addr was sent (case-insensitive).
func (s *Server) Count(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[strings.ToLower(addr)]
}

// Counts returns a copy of the message count of every address, keyed by
// lower-cased address.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Total returns how many messages were sent, over all addresses.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Requests returns how many mail/send requests were accepted (202).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Reset forgets every recorded message, count and conformance failure.
// Faults stay as they are.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
	s.total, s.requests, s.ringNext, s.ringLen = 0, 0, 0, 0
	clear(s.ring)
	s.nonconform = nil
}

// kept returns the kept entries, oldest first.
func (s *Server) kept() []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]entry, 0, s.ringLen)
	start := (s.ringNext - s.ringLen + len(s.ring)) % max(len(s.ring), 1)
	for i := range s.ringLen {
		out = append(out, s.ring[(start+i)%len(s.ring)])
	}
	return out
}

// Messages returns the kept messages sent to addr (case-insensitive),
// oldest first. Only the most recent Options.KeepMessages messages of the
// whole run are kept.
func (s *Server) Messages(addr string) []Message {
	var out []Message
	for _, e := range s.kept() {
		if strings.EqualFold(e.to.Email, addr) {
			out = append(out, e.render())
		}
	}
	return out
}

// Recent returns up to n kept messages, newest first.
func (s *Server) Recent(n int) []Message {
	es := s.kept()
	out := make([]Message, 0, min(n, len(es)))
	for i := len(es) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, es[i].render())
	}
	return out
}

// find returns the kept message with the given id.
func (s *Server) find(id int64) (Message, bool) {
	for _, e := range s.kept() {
		if e.id == id {
			return e.render(), true
		}
	}
	return Message{}, false
}

// render builds the message the recipient of e gets.
func (e entry) render() Message {
	sh, p := e.shared, e.p
	sub := substituter(p.Substitutions)
	m := Message{
		ID:         e.id,
		To:         e.to.Email,
		Name:       e.to.Name,
		From:       sh.from.Email,
		FromName:   sh.from.Name,
		ReplyTo:    sub(sh.replyTo),
		Subject:    sh.subject,
		HTML:       sub(sh.html),
		Text:       sub(sh.text),
		Headers:    merge(sh.headers, p.Headers),
		CustomArgs: merge(sh.customArgs, p.CustomArgs),
		Categories: slices.Clone(sh.categories),
		XMessageID: sh.xmid,
		At:         sh.at,
	}
	if p.From != nil {
		m.From, m.FromName = p.From.Email, p.From.Name
	}
	if p.Subject != nil {
		m.Subject = *p.Subject
	}
	m.Subject = sub(m.Subject)
	return m
}

func merge(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

// substituter replaces every substitution key wherever it occurs, in one
// pass (a value is never substituted again), longest key first where keys
// overlap.
func substituter(subs map[string]string) func(string) string {
	if len(subs) == 0 {
		return func(s string) string { return s }
	}
	keys := slices.Collect(maps.Keys(subs))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		if k != "" {
			pairs = append(pairs, k, subs[k])
		}
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}
