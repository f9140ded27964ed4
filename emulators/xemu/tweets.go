package xemu

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Post is one post as the emulator holds it.
type Post struct {
	ID              string
	Text            string
	AuthorID        string
	AuthorUsername  string
	ConversationID  string // id of the first post of the thread
	InReplyToID     string // post this one answers, "" for a top-level post
	InReplyToUserID string
	CreatedAt       time.Time
	Deleted         bool
}

type post struct {
	Post
	num int64 // numeric id, for ordering
}

type user struct {
	ID, Username, Name string
}

// twepoch is X's snowflake epoch (2010-11-04T01:42:54.657Z) in Unix ms.
const twepoch = 1288834974657

// recentWindow is how far back recent search reaches.
const recentWindow = 7 * 24 * time.Hour

// duplicateWindow is how long X refuses the same text from the same
// account again.
const duplicateWindow = 24 * time.Hour

// IDTime returns the time encoded in a snowflake id (ms precision), and
// false when id is not a number.
func IDTime(id string) (time.Time, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(n>>22 + twepoch), true
}

// newPostLocked stores a post with a fresh snowflake-like id: the emulated
// time in ms since X's epoch, shifted left 22 bits, kept strictly
// increasing.
func (s *Server) newPostLocked(text string, author *user, parent *post) *post {
	now := s.now()
	id := max((now.UnixMilli()-twepoch)<<22, s.lastID+1)
	s.lastID = id
	p := &post{num: id, Post: Post{
		ID:             strconv.FormatInt(id, 10),
		Text:           text,
		AuthorID:       author.ID,
		AuthorUsername: author.Username,
		CreatedAt:      now.UTC().Truncate(time.Millisecond),
	}}
	p.ConversationID = p.ID
	if parent != nil {
		p.ConversationID = parent.ConversationID
		p.InReplyToID = parent.ID
		p.InReplyToUserID = parent.AuthorID
	}
	s.posts = append(s.posts, p)
	s.byID[p.ID] = p
	close(s.changed)
	s.changed = make(chan struct{})
	return p
}

// Changed returns a channel that is closed when the next post is made (by
// us or a customer), so tests and the demo can wait without polling.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Posts returns every post made so far, ours and customers', deleted ones
// included, oldest first.
func (s *Server) Posts() []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Post, len(s.posts))
	for i, p := range s.posts {
		out[i] = p.Post
	}
	return out
}

// Lookup returns the post with the given id.
func (s *Server) Lookup(id string) (Post, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[id]
	if !ok {
		return Post{}, false
	}
	return p.Post, true
}

func (s *Server) me() *user { return s.users[s.opts.UserID] }

// createTweet is POST /2/tweets.
func (s *Server) createTweet(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Text  *string `json:"text"`
		Reply *struct {
			InReplyToTweetID string `json:"in_reply_to_tweet_id"`
		} `json:"reply"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeInvalid(w, "", nil, "The request body is not valid JSON for this emulator: "+err.Error())
		return
	}
	if req.Text == nil || strings.TrimSpace(*req.Text) == "" {
		writeInvalid(w, "text", []string{""}, "Post text is required when no media is attached.")
		return
	}
	text := *req.Text
	if WeightedLength(text) > MaxWeightedLength {
		writeInvalid(w, "text", nil, "Your Tweet text is too long. For more information on how Twitter determines text length see https://github.com/twitter/twitter-text.")
		return
	}

	s.mu.Lock()
	me := s.me()
	var parent *post
	if req.Reply != nil {
		parent = s.byID[req.Reply.InReplyToTweetID]
		if parent == nil || parent.Deleted {
			s.mu.Unlock()
			writeProblem(w, http.StatusForbidden, "Forbidden", "You attempted to reply to a Tweet that is deleted or not visible to you.")
			return
		}
	}
	now := s.now()
	for _, p := range slices.Backward(s.posts) {
		if now.Sub(p.CreatedAt) > duplicateWindow {
			break
		}
		if p.AuthorID == me.ID && !p.Deleted && p.Text == text {
			s.mu.Unlock()
			writeProblem(w, http.StatusForbidden, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
			return
		}
	}
	p := s.newPostLocked(text, me, parent)
	s.autoReplyLocked(p)
	s.mu.Unlock()

	w.Header().Set("Location", "http://"+r.Host+"/2/tweets/"+p.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"data": map[string]string{"id": p.ID, "text": escapeText(p.Text)}})
}

// deleteTweet is DELETE /2/tweets/:id.
func (s *Server) deleteTweet(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	s.mu.Lock()
	p := s.byID[id]
	switch {
	case p == nil || p.Deleted:
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{
			"errors": []any{notFound("tweet", "id", id)},
			"title":  "Not Found Error", "detail": "Could not find tweet with id: [" + id + "].",
			"type": problemBase + "resource-not-found", "status": http.StatusNotFound,
		})
		return
	case p.AuthorID != s.opts.UserID:
		s.mu.Unlock()
		writeProblem(w, http.StatusForbidden, "Forbidden", "You are not allowed to delete a Tweet you did not author.")
		return
	}
	p.Deleted = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]bool{"deleted": true}})
}

// getTweet is GET /2/tweets/:id.
func (s *Server) getTweet(w http.ResponseWriter, r *http.Request, _ []byte) {
	f, ok := parseFields(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byID[id]
	if p == nil || p.Deleted {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []any{notFound("tweet", "id", id)}})
		return
	}
	out := map[string]any{"data": s.renderLocked(p, f)}
	if inc := s.includesLocked([]*post{p}, f); inc != nil {
		out["includes"] = inc
	}
	writeJSON(w, http.StatusOK, out)
}

// usersMe is GET /2/users/me.
func (s *Server) usersMe(w http.ResponseWriter, _ *http.Request, _ []byte) {
	s.mu.Lock()
	me := *s.me()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": renderUser(&me)})
}

// searchRecent is GET /2/tweets/search/recent.
func (s *Server) searchRecent(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	query := q.Get("query")
	if query == "" {
		writeInvalid(w, "query", []string{""}, "The `query` query parameter can not be empty")
		return
	}
	match, err := parseQuery(query)
	if err != nil {
		writeInvalid(w, "query", []string{query}, err.Error())
		return
	}
	s.list(w, r, "next_token", 10, func(p *post) bool { return match(s, p) }, true)
}

// mentions is GET /2/users/:id/mentions.
func (s *Server) mentions(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	s.mu.Lock()
	u := s.users[id]
	s.mu.Unlock()
	if u == nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []any{notFound("user", "id", id)}})
		return
	}
	at := regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_])@` + regexp.QuoteMeta(u.Username) + `($|[^A-Za-z0-9_])`)
	s.list(w, r, "pagination_token", 5, func(p *post) bool {
		return p.AuthorID != u.ID && (p.InReplyToUserID == u.ID || at.MatchString(p.Text))
	}, false)
}

// list answers a reverse-chronological timeline of the posts that match,
// with since_id, until_id, max_results (between minResults and 100),
// pagination and the field and expansion parameters. recent limits it to
// the last seven days, as recent search does.
func (s *Server) list(w http.ResponseWriter, r *http.Request, tokenParam string, minResults int, match func(*post) bool, recent bool) {
	f, ok := parseFields(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	maxResults := 10
	if v := q.Get("max_results"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < minResults || n > 100 {
			writeInvalid(w, "max_results", []string{v}, fmt.Sprintf("The `max_results` query parameter value [%s] is not between %d and 100", v, minResults))
			return
		}
		maxResults = n
	}
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	oldest := now.Add(-recentWindow)
	idParam := func(name string) (int64, bool) {
		v := q.Get(name)
		if v == "" {
			return 0, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			writeInvalid(w, name, []string{v}, fmt.Sprintf("The `%s` query parameter value [%s] is not a valid id", name, v))
			return 0, false
		}
		if t, _ := IDTime(v); recent && t.Before(oldest) {
			writeInvalid(w, name, []string{v}, fmt.Sprintf("Invalid '%s':'%s'. '%s' must be a tweet id created after %s.", name, v, name, oldest.UTC().Format("2006-01-02T15:04Z")))
			return 0, false
		}
		return n, true
	}
	since, ok := idParam("since_id")
	if !ok {
		return
	}
	until, ok := idParam("until_id")
	if !ok {
		return
	}
	var startTime time.Time
	if v := q.Get("start_time"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || recent && t.Before(oldest) {
			writeInvalid(w, "start_time", []string{v}, fmt.Sprintf("Invalid 'start_time':'%s'. 'start_time' must be on or after %s", v, oldest.UTC().Format("2006-01-02T15:04Z")))
			return
		}
		startTime = t
	}
	// The pagination token carries the id below which the next page starts.
	if tok := q.Get(tokenParam); tok != "" {
		raw, err := tokenEncoding.DecodeString(strings.ToUpper(tok))
		n, perr := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || perr != nil || n <= 0 {
			writeInvalid(w, tokenParam, []string{tok}, fmt.Sprintf("The `%s` query parameter value [%s] is not valid", tokenParam, tok))
			return
		}
		if until == 0 || n < until {
			until = n
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var page []*post
	more := false
	for _, p := range slices.Backward(s.posts) {
		if p.Deleted || !match(p) || p.num <= since || until != 0 && p.num >= until {
			continue
		}
		if recent && p.CreatedAt.Before(oldest) || !startTime.IsZero() && p.CreatedAt.Before(startTime) {
			break // posts are in time order
		}
		if len(page) == maxResults {
			more = true
			break
		}
		page = append(page, p)
	}
	meta := map[string]any{"result_count": len(page)}
	out := map[string]any{"meta": meta}
	if len(page) > 0 {
		data := make([]any, len(page))
		for i, p := range page {
			data[i] = s.renderLocked(p, f)
		}
		out["data"] = data
		meta["newest_id"] = page[0].ID
		meta["oldest_id"] = page[len(page)-1].ID
		if more {
			meta["next_token"] = strings.ToLower(tokenEncoding.EncodeToString([]byte(page[len(page)-1].ID)))
		}
		if inc := s.includesLocked(page, f); inc != nil {
			out["includes"] = inc
		}
	}
	writeJSON(w, http.StatusOK, out)
}

var tokenEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// parseQuery understands the search operators breachcast and a person
// testing by hand use: conversation_id:, from:, to:, @mentions, is:reply,
// -is:retweet and plain words (all of them must match).
func parseQuery(q string) (func(*Server, *post) bool, error) {
	var preds []func(*Server, *post) bool
	for tok := range strings.FieldsSeq(q) {
		op, val, isOp := strings.Cut(tok, ":")
		if !isOp {
			word := strings.ToLower(strings.Trim(tok, `"`))
			preds = append(preds, func(_ *Server, p *post) bool { return strings.Contains(strings.ToLower(p.Text), word) })
			continue
		}
		if val == "" {
			return nil, fmt.Errorf("There were errors processing your request: Missing value for operator '%s'", op)
		}
		switch op {
		case "conversation_id":
			preds = append(preds, func(_ *Server, p *post) bool { return p.ConversationID == val })
		case "from":
			name := lower(strings.TrimPrefix(val, "@"))
			preds = append(preds, func(_ *Server, p *post) bool { return lower(p.AuthorUsername) == name })
		case "to":
			name := lower(strings.TrimPrefix(val, "@"))
			preds = append(preds, func(s *Server, p *post) bool {
				u := s.users[p.InReplyToUserID]
				return u != nil && lower(u.Username) == name
			})
		case "is":
			if val != "reply" {
				return nil, fmt.Errorf("There were errors processing your request: Reference to invalid operator 'is:%s'", val)
			}
			preds = append(preds, func(_ *Server, p *post) bool { return p.InReplyToID != "" })
		case "-is":
			// Retweets are not emulated, so "-is:retweet" excludes nothing.
			if val != "retweet" {
				return nil, fmt.Errorf("There were errors processing your request: Reference to invalid operator 'is:%s'", val)
			}
		default:
			return nil, fmt.Errorf("There were errors processing your request: Reference to invalid field '%s'", op)
		}
	}
	return func(s *Server, p *post) bool {
		for _, pred := range preds {
			if !pred(s, p) {
				return false
			}
		}
		return true
	}, nil
}

// The fields and expansions X accepts (the emulator fills in the ones it
// models and accepts the others without data).
var (
	tweetFields = []string{"attachments", "author_id", "card_uri", "context_annotations", "conversation_id", "created_at",
		"edit_controls", "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
		"non_public_metrics", "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics",
		"public_metrics", "referenced_tweets", "reply_settings", "source", "text", "withheld"}
	expansionNames = []string{"attachments.media_keys", "attachments.poll_ids", "author_id", "edit_history_tweet_ids",
		"entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "referenced_tweets.id",
		"referenced_tweets.id.author_id"}
	userFields = []string{"affiliation", "connection_status", "created_at", "description", "entities", "id", "location",
		"most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url", "profile_image_url", "protected",
		"public_metrics", "receives_your_dm", "subscription_type", "url", "username", "verified", "verified_type", "withheld"}
)

type fields struct {
	tweet, expand, user map[string]bool
}

// parseFields reads tweet.fields (or the spec's post.fields), expansions
// and user.fields, answering X's 400 for an unknown value.
func parseFields(w http.ResponseWriter, r *http.Request) (fields, bool) {
	q := r.URL.Query()
	f := fields{tweet: map[string]bool{}, expand: map[string]bool{}, user: map[string]bool{}}
	for _, spec := range []struct {
		param   string
		allowed []string
		into    map[string]bool
	}{
		{"tweet.fields", tweetFields, f.tweet},
		{"post.fields", tweetFields, f.tweet},
		{"expansions", expansionNames, f.expand},
		{"user.fields", userFields, f.user},
	} {
		if !q.Has(spec.param) {
			continue
		}
		for v := range strings.SplitSeq(q.Get(spec.param), ",") {
			if !slices.Contains(spec.allowed, v) {
				writeInvalid(w, spec.param, []string{v}, fmt.Sprintf("The `%s` query parameter value [%s] is not one of [%s]", spec.param, v, strings.Join(spec.allowed, ",")))
				return f, false
			}
			spec.into[v] = true
		}
	}
	return f, true
}

type refJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type tweetJSON struct {
	ID               string    `json:"id"`
	Text             string    `json:"text"`
	EditHistory      []string  `json:"edit_history_tweet_ids"`
	AuthorID         string    `json:"author_id,omitempty"`
	ConversationID   string    `json:"conversation_id,omitempty"`
	CreatedAt        string    `json:"created_at,omitempty"`
	InReplyToUserID  string    `json:"in_reply_to_user_id,omitempty"`
	ReferencedTweets []refJSON `json:"referenced_tweets,omitempty"`
}

// renderLocked is p as X shows it, with the requested fields. Like X, it
// escapes &, < and > in the text.
func (s *Server) renderLocked(p *post, f fields) tweetJSON {
	t := tweetJSON{ID: p.ID, Text: escapeText(p.Text), EditHistory: []string{p.ID}}
	if f.tweet["author_id"] {
		t.AuthorID = p.AuthorID
	}
	if f.tweet["conversation_id"] {
		t.ConversationID = p.ConversationID
	}
	if f.tweet["created_at"] {
		t.CreatedAt = p.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if f.tweet["in_reply_to_user_id"] {
		t.InReplyToUserID = p.InReplyToUserID
	}
	if f.tweet["referenced_tweets"] && p.InReplyToID != "" {
		t.ReferencedTweets = []refJSON{{Type: "replied_to", ID: p.InReplyToID}}
	}
	return t
}

func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// includesLocked is the includes object for the expansions asked for.
func (s *Server) includesLocked(posts []*post, f fields) map[string]any {
	var users []map[string]string
	seen := map[string]bool{}
	addUser := func(id string) {
		if u := s.users[id]; u != nil && !seen[id] {
			seen[id] = true
			users = append(users, renderUser(u))
		}
	}
	for _, p := range posts {
		if f.expand["author_id"] {
			addUser(p.AuthorID)
		}
		if f.expand["in_reply_to_user_id"] && p.InReplyToUserID != "" {
			addUser(p.InReplyToUserID)
		}
	}
	if len(users) == 0 {
		return nil
	}
	return map[string]any{"users": users}
}

func renderUser(u *user) map[string]string {
	return map[string]string{"id": u.ID, "name": u.Name, "username": u.Username}
}

func lower(s string) string { return strings.ToLower(s) }

// problemBase prefixes X's problem types.
const problemBase = "https://api.x.com/2/problems/"

// problem is X's RFC 7807 style error body.
type problem struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Type   string `json:"type"`
	Status int    `json:"status,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	writeJSON(w, status, problem{Title: title, Detail: detail, Type: "about:blank", Status: status})
}

// writeInvalid answers X's 400 "Invalid Request" body, naming the parameter
// when there is one.
func writeInvalid(w http.ResponseWriter, param string, values []string, message string) {
	e := map[string]any{"message": message}
	if param != "" {
		if values == nil {
			values = []string{}
		}
		e["parameters"] = map[string][]string{param: values}
	}
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"errors": []any{e},
		"title":  "Invalid Request",
		"detail": "One or more parameters to your request was invalid.",
		"type":   problemBase + "invalid-request",
	})
}

func notFound(resource, param, id string) map[string]string {
	word := map[string]string{"tweet": "tweet", "user": "user"}[resource]
	return map[string]string{
		"value": id, "detail": "Could not find " + word + " with " + param + ": [" + id + "].",
		"title": "Not Found Error", "resource_type": resource, "parameter": param, "resource_id": id,
		"type": problemBase + "resource-not-found",
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // X sends "&amp;", not "\u0026amp;"
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("api-version", "2.52")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
