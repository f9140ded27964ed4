package xemu

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,15}$`)

// AddUser registers a customer account and returns its id. A username that
// exists keeps its id (and takes name, when given). Usernames are 1 to 15
// letters, digits or underscores; others give "".
func (s *Server) AddUser(username, name string) string {
	username = strings.TrimPrefix(username, "@")
	if !usernamePattern.MatchString(username) {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userLocked(username, name).ID
}

func (s *Server) userLocked(username, name string) *user {
	if u := s.byName[lower(username)]; u != nil {
		if name != "" {
			u.Name = name
		}
		return u
	}
	if name == "" {
		name = username
	}
	s.lastUserID++
	u := &user{ID: strconv.FormatInt(s.lastUserID, 10), Username: username, Name: name}
	s.users[u.ID] = u
	s.byName[lower(username)] = u
	return u
}

// AddReply posts text as the customer authorUsername (registered on first
// use) in answer to the post inReplyTo, in that post's conversation, and
// returns the new post's id. Like X, the text starts with the @username of
// the author answered. It returns "" when inReplyTo does not exist or was
// deleted, or the username is not valid.
func (s *Server) AddReply(inReplyTo, authorUsername, text string) string {
	authorUsername = strings.TrimPrefix(authorUsername, "@")
	if !usernamePattern.MatchString(authorUsername) {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addReplyLocked(inReplyTo, authorUsername, "", text)
}

func (s *Server) addReplyLocked(inReplyTo, username, name, text string) string {
	parent := s.byID[inReplyTo]
	if parent == nil || parent.Deleted {
		return ""
	}
	author := s.userLocked(username, name)
	if at := "@" + parent.AuthorUsername; parent.AuthorID != author.ID && !strings.HasPrefix(lower(text), lower(at)) {
		text = at + " " + text
	}
	return s.newPostLocked(text, author, parent).ID
}

// AddMention posts text as the customer authorUsername (registered on first
// use), a new top-level post that mentions our account (its @username is
// put in front when the text does not contain it), and returns its id, or
// "" for an invalid username.
func (s *Server) AddMention(authorUsername, text string) string {
	authorUsername = strings.TrimPrefix(authorUsername, "@")
	if !usernamePattern.MatchString(authorUsername) {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	author := s.userLocked(authorUsername, "")
	if at := "@" + s.opts.Username; !strings.Contains(lower(text), lower(at)) {
		text = at + " " + text
	}
	return s.newPostLocked(text, author, nil).ID
}

// cannedReplies are what customers ask after a breach notice.
var cannedReplies = []struct{ username, name, text string }{
	{"dana_kim", "Dana Kim", "Do I need to change my password?"},
	{"marco_rossi", "Marco Rossi", "Was my credit card exposed? I paid for an order last week."},
	{"priya_s", "Priya S.", "Thanks for the heads-up. Is two-factor authentication enough to stay safe?"},
	{"tom_hughes", "Tom Hughes", "When will you know which accounts were affected?"},
	{"jules_b", "Jules Bernard", "I got a strange login email yesterday. Is that related to this?"},
	{"sam_ortiz", "Sam Ortiz", "Will you email everyone who was affected, or should I contact support?"},
}

// autoReplyLocked schedules customer answers to our post p when
// Options.AutoReply is on: two to the first post of a thread, one to each
// later post, AutoReplyDelay apart.
func (s *Server) autoReplyLocked(p *post) {
	if !s.opts.AutoReply || s.closed || p.AuthorID != s.opts.UserID {
		return
	}
	n := 1
	if p.InReplyToID == "" {
		n = 2
	}
	for k := 1; k <= n; k++ {
		c := cannedReplies[s.autoNext%len(cannedReplies)]
		s.autoNext++
		id := p.ID
		// The callback cannot run before t is set: it needs s.mu, held here.
		var t *time.Timer
		t = time.AfterFunc(time.Duration(k)*s.opts.AutoReplyDelay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.timers, t)
			if !s.closed {
				s.addReplyLocked(id, c.username, c.name, c.text)
			}
		})
		s.timers[t] = struct{}{}
	}
}
