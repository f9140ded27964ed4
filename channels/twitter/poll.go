package twitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Polling defaults.
const (
	DefaultPollMin = 30 * time.Second
	DefaultPollMax = 15 * time.Minute
)

// searchReach is how far back recent search goes (seven days), less a
// margin so a since_id at the edge is not refused while the request travels.
const searchReach = 7*24*time.Hour - 5*time.Minute

// The fields every timeline request asks for.
var replyFields = url.Values{
	"tweet.fields": {"author_id,conversation_id,created_at,in_reply_to_user_id,referenced_tweets"},
	"expansions":   {"author_id"},
	"user.fields":  {"name,username"},
}

// Backoff is the polling interval policy: Min after replies arrived (and at
// first), doubling while nothing new arrives, up to Max. The zero value
// uses DefaultPollMin and DefaultPollMax. It is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns how long to wait before the next poll, given whether the
// last one found new replies.
func (b *Backoff) Next(foundNew bool) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultPollMin
	}
	if hi <= 0 {
		hi = DefaultPollMax
	}
	hi = max(hi, lo)
	if foundNew || b.cur == 0 {
		b.cur = lo
	} else {
		b.cur = min(b.cur*2, hi)
	}
	return b.cur
}

// NextPoll returns how long the caller should sleep before the next Poll:
// the Backoff interval, stretched to the end of the read-budget hour when
// the budget is spent and to the reset of a used-up search or mentions
// rate-limit window.
func (c *Client) NextPoll(foundNew bool) time.Duration {
	now := c.now()
	c.mu.Lock()
	d := c.backoff.Next(foundNew)
	if c.budget > 0 {
		c.rollLocked(now)
		if c.budget-c.reads.used < minSearchResults {
			d = max(d, untilReset(c.reads.start.Add(time.Hour), now))
		}
	}
	limits := []rateState{c.limits[OpSearch], c.limits[OpMentions]}
	c.mu.Unlock()
	for _, st := range limits {
		if st.remaining <= 0 {
			d = max(d, untilReset(st.reset, now))
		}
	}
	return d
}

// The read budget is a fixed window: the clock hour (UTC). Its count
// travels in the cursor, so a restart within the hour does not reset it.
type readWindow struct {
	start time.Time
	used  int
}

func (c *Client) rollLocked(now time.Time) {
	if h := now.UTC().Truncate(time.Hour); !c.reads.start.Equal(h) {
		c.reads = readWindow{start: h}
	}
}

// readsLeft is what remains of the hour's budget, -1 when there is no cap.
func (c *Client) readsLeft() int {
	if c.budget == 0 {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rollLocked(c.now())
	return max(c.budget-c.reads.used, 0)
}

func (c *Client) spend(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rollLocked(c.now())
	c.reads.used += n
}

// ReadUsage reports the posts read in the current budget hour, the budget
// (0: no cap) and when the hour ends.
func (c *Client) ReadUsage() (used, budget int, resets time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rollLocked(c.now())
	return c.reads.used, c.budget, c.reads.start.Add(time.Hour)
}

// errBudget stops a poll when the next page could overrun the read budget.
var errBudget = errors.New("read budget spent")

const (
	minSearchResults   = 10 // X refuses fewer
	minMentionsResults = 5
	maxPages           = 20 // per timeline and poll, so one busy conversation cannot hold a poll forever
	keyMentions        = "m"
	cursorVersion      = 1
	maxCursor          = 1 << 20
)

// cursor is the poll state the caller stores. Per query (a conversation
// "c:<root>", or the mentions "m") it keeps Since, the newest id fully read;
// while a run over several pages is interrupted (read budget, error) it also
// keeps Until, the oldest id read so far, and Newest, the newest id of the
// run: the next poll reads the gap (Since, Until) first, then moves Since to
// Newest. Nothing is read twice and nothing is skipped.
type cursor struct {
	V          int                    `json:"v"`
	Q          map[string]*queryState `json:"q,omitempty"`
	Turn       int                    `json:"turn,omitempty"`
	BudgetHour int64                  `json:"bh,omitempty"`
	BudgetUsed int                    `json:"bu,omitempty"`
}

type queryState struct {
	Since  string `json:"since,omitempty"`
	Until  string `json:"until,omitempty"`
	Newest string `json:"newest,omitempty"`
}

func (st *queryState) complete() {
	st.Since = maxID(st.Since, st.Newest)
	st.Until, st.Newest = "", ""
}

func decodeCursor(s string) (*cursor, error) {
	cur := &cursor{V: cursorVersion, Q: map[string]*queryState{}}
	if s == "" {
		return cur, nil
	}
	bad := func(why string) error {
		return &channels.Error{Channel: Name, Op: "poll", Code: CodeBadCursor, Permanent: true,
			Message: "the stored X poll cursor is not valid (" + why + "); clear it to poll again from the watched posts"}
	}
	if len(s) > maxCursor {
		return nil, bad("too long")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cur); err != nil {
		return nil, bad("not the JSON this version writes")
	}
	if cur.V != cursorVersion {
		return nil, bad(fmt.Sprintf("version %d, want %d", cur.V, cursorVersion))
	}
	if cur.Q == nil {
		cur.Q = map[string]*queryState{}
	}
	for k, st := range cur.Q {
		if root, ok := strings.CutPrefix(k, "c:"); !(k == keyMentions || ok && idPattern.MatchString(root)) || st == nil {
			return nil, bad(fmt.Sprintf("unknown query %q", k))
		}
		for _, id := range []string{st.Since, st.Until, st.Newest} {
			if id != "" && !idPattern.MatchString(id) {
				return nil, bad(fmt.Sprintf("%q is not a post id", id))
			}
		}
	}
	return cur, nil
}

func (cur *cursor) encode() string {
	b, _ := json.Marshal(cur) // plain strings and ints: cannot fail
	return string(b)
}

// query is one timeline to read: a conversation (root set) or the mentions.
type query struct {
	key  string
	root string
}

// Poll fetches the replies to the watched conversations (recent search
// with conversation_id:<root>) and the posts mentioning our account (the
// mentions timeline) that are newer than the cursor, skipping our own posts
// and, in the mentions, posts of watched conversations (the conversation
// search reads those). Each reply carries the IncidentID and UpdateID of the
// watch of its conversation (the update whose posts it answers, else the
// latest update); other mentions keep them 0.
//
// The budget: with Config.ReadBudgetPerHour set, Poll stops before a page
// could overrun the hour's budget and returns what it has, a cursor that
// resumes exactly there, and a nil error; NextPoll then says to wait for
// the next hour. The conversations take turns going first, so a small
// budget does not starve the last one.
//
// A timeline reads at most 20 pages (2,000 posts) per poll; the cursor
// goes on from there next time.
//
// On an error (a *channels.Error; rate limits are retryable with
// RetryAfter) the replies read so far and a cursor covering exactly them
// are returned too: store both, or neither.
func (c *Client) Poll(ctx context.Context, watches []channels.Watch, cursorIn string) ([]*breachcast.Reply, string, error) {
	cur, err := decodeCursor(cursorIn)
	if err != nil {
		return nil, cursorIn, err
	}
	c.loadBudget(cur)

	byRoot := map[string][]channels.Watch{}
	var roots []string
	for _, w := range watches {
		if !idPattern.MatchString(w.Root) {
			if w.Root != "" {
				c.log.Warn("twitter poll: skipping a watch whose root is not an X post id", "incident_id", w.IncidentID, "update_id", w.UpdateID)
			}
			continue
		}
		if _, ok := byRoot[w.Root]; !ok {
			roots = append(roots, w.Root)
		}
		byRoot[w.Root] = append(byRoot[w.Root], w)
	}
	for k := range cur.Q {
		if root, ok := strings.CutPrefix(k, "c:"); ok && byRoot[root] == nil {
			delete(cur.Q, k)
		}
	}
	if len(roots) == 0 {
		c.saveBudget(cur)
		return nil, cur.encode(), nil
	}
	me, _, err := c.account(ctx)
	if err != nil {
		return nil, cursorIn, err
	}

	queries := make([]query, 0, len(roots)+1)
	oldestRoot := roots[0]
	for _, r := range roots {
		queries = append(queries, query{key: "c:" + r, root: r})
		if isNewer(oldestRoot, r) {
			oldestRoot = r
		}
		if cur.Q["c:"+r] == nil {
			cur.Q["c:"+r] = &queryState{Since: r} // replies are newer than the post they answer
		}
	}
	queries = append(queries, query{key: keyMentions})
	if cur.Q[keyMentions] == nil {
		// Mentions are collected from our first watched post on, not from
		// the beginning of the account.
		cur.Q[keyMentions] = &queryState{Since: oldestRoot}
	}

	first := cur.Turn % len(queries)
	cur.Turn = (first + 1) % len(queries)
	var out []*breachcast.Reply
	seen := map[string]bool{}
	var pollErr error
	for i := range queries {
		q := queries[(first+i)%len(queries)]
		err := c.runQuery(ctx, q, cur.Q[q.key], me, byRoot, seen, &out)
		if errors.Is(err, errBudget) {
			used, budget, resets := c.ReadUsage()
			c.log.Info("twitter poll stopped: hourly read budget spent", "used", used, "budget", budget, "resets", resets)
			break
		}
		if err != nil {
			pollErr = err
			break
		}
	}
	c.saveBudget(cur)
	return out, cur.encode(), pollErr
}

func (c *Client) loadBudget(cur *cursor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rollLocked(c.now())
	if cur.BudgetHour == c.reads.start.Unix() {
		c.reads.used = max(c.reads.used, cur.BudgetUsed)
	}
}

func (c *Client) saveBudget(cur *cursor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur.BudgetHour, cur.BudgetUsed = 0, 0
	if c.reads.used > 0 {
		cur.BudgetHour, cur.BudgetUsed = c.reads.start.Unix(), c.reads.used
	}
}

// timeline is one page of search or mentions.
type timeline struct {
	Data     []json.RawMessage `json:"data"`
	Includes struct {
		Users []author `json:"users"`
	} `json:"includes"`
	Meta struct {
		NextToken   string `json:"next_token"`
		ResultCount int    `json:"result_count"`
	} `json:"meta"`
	Errors []apiIssue `json:"errors"`
}

type author struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Username string `json:"username"`
}

type tweet struct {
	ID               string `json:"id"`
	Text             string `json:"text"`
	AuthorID         string `json:"author_id"`
	ConversationID   string `json:"conversation_id"`
	CreatedAt        string `json:"created_at"`
	InReplyToUserID  string `json:"in_reply_to_user_id"`
	ReferencedTweets []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"referenced_tweets"`
}

// runQuery reads one timeline from st onwards, page by page, appending new
// replies to out and advancing st after every page.
func (c *Client) runQuery(ctx context.Context, q query, st *queryState, me string, byRoot map[string][]channels.Watch, seen map[string]bool, out *[]*breachcast.Reply) error {
	search := q.root != ""
	cl := call{op: OpMentions, method: http.MethodGet, path: "/2/users/" + me + "/mentions"}
	minResults, tokenParam := minMentionsResults, "pagination_token"
	params := url.Values{}
	for k, v := range replyFields {
		params[k] = v
	}
	horizon := c.now().Add(-searchReach)
	if search {
		cl = call{op: OpSearch, method: http.MethodGet, path: "/2/tweets/search/recent"}
		minResults, tokenParam = minSearchResults, "next_token"
		params.Set("query", "conversation_id:"+q.root)
		if st.Until != "" && olderThan(st.Until, horizon) {
			st.complete() // the rest of the interrupted run is beyond search's reach now
		}
	}
	since := st.Since
	switch {
	case since == "":
	case search && olderThan(since, horizon):
		// Search refuses a since_id older than seven days; read the seven
		// days it has and drop what is not newer than since below.
		params.Set("start_time", horizon.UTC().Format(time.RFC3339))
	default:
		params.Set("since_id", since)
	}
	if st.Until != "" {
		params.Set("until_id", st.Until)
	}

	size, token := 0, ""
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return nil // st.Until holds the place: the next poll goes on from there
		}
		left := c.readsLeft()
		if left >= 0 && left < max(size, minResults) {
			return errBudget
		}
		if size == 0 {
			size = 100
			if left >= 0 {
				size = min(size, left)
			}
			params.Set("max_results", strconv.Itoa(size))
		}
		if token != "" {
			params.Set(tokenParam, token)
		}
		cl.query = params
		var page timeline
		if _, err := c.do(ctx, cl, &page); err != nil {
			return err
		}
		c.spend(len(page.Data))
		if len(page.Data) == 0 && len(page.Errors) > 0 {
			return &channels.Error{Channel: Name, Op: cl.op, Status: http.StatusOK, Code: CodeInvalid, Permanent: true,
				Message: apiError{Errors: page.Errors}.words(http.StatusOK)}
		}
		users := make(map[string]author, len(page.Includes.Users))
		for _, u := range page.Includes.Users {
			users[u.ID] = u
		}
		oldest := ""
		for _, raw := range page.Data {
			var t tweet
			if json.Unmarshal(raw, &t) != nil || !idPattern.MatchString(t.ID) {
				continue
			}
			if oldest == "" || isNewer(oldest, t.ID) {
				oldest = t.ID
			}
			st.Newest = maxID(st.Newest, t.ID)
			if t.AuthorID == me || !isNewer(t.ID, since) || seen[t.ID] {
				continue
			}
			if !search && byRoot[t.ConversationID] != nil {
				continue
			}
			seen[t.ID] = true
			*out = append(*out, toReply(t, raw, users, byRoot[t.ConversationID]))
		}
		if page.Meta.NextToken == "" || oldest == "" {
			st.complete()
			return nil
		}
		st.Until = oldest
		token = page.Meta.NextToken
	}
}

// olderThan reports whether the snowflake id was made before t.
func olderThan(id string, t time.Time) bool {
	ts, ok := idTime(id)
	return ok && ts.Before(t)
}

// idTime decodes the creation time of a snowflake id: milliseconds since
// X's epoch (2010-11-04T01:42:54.657Z) in the bits above the lowest 22.
func idTime(id string) (time.Time, bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(n>>22) + 1288834974657).UTC(), true
}

var unescapeText = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

func toReply(t tweet, raw json.RawMessage, users map[string]author, watches []channels.Watch) *breachcast.Reply {
	created, err := time.Parse(time.RFC3339Nano, t.CreatedAt)
	if err != nil {
		created, _ = idTime(t.ID)
	}
	inReplyTo := ""
	for _, ref := range t.ReferencedTweets {
		if ref.Type == "replied_to" {
			inReplyTo = ref.ID
		}
	}
	r := &breachcast.Reply{
		Channel:    Name,
		ExternalID: t.ID,
		Action:     breachcast.ReplyAdded,
		AuthorID:   t.AuthorID,
		AuthorName: authorName(users[t.AuthorID], t.AuthorID),
		Text:       unescapeText.Replace(t.Text), // X escapes &, < and > in texts
		InReplyTo:  inReplyTo,
		RootID:     t.ConversationID,
		CreatedAt:  created.UTC(),
		EventTime:  created.UTC(),
		Raw:        bytes.Clone(raw),
	}
	if w := pickWatch(watches, inReplyTo); w != nil {
		r.IncidentID, r.UpdateID = w.IncidentID, w.UpdateID
	}
	return r
}

// authorName is "Name (@username)", or what of it X sent.
func authorName(u author, id string) string {
	switch {
	case u.Username != "" && u.Name != "":
		return u.Name + " (@" + u.Username + ")"
	case u.Username != "":
		return "@" + u.Username
	case u.Name != "":
		return u.Name
	}
	return id
}

// pickWatch is the watch of the update whose posts the reply answers, else
// the latest update of the conversation.
func pickWatch(ws []channels.Watch, inReplyTo string) *channels.Watch {
	var best *channels.Watch
	for i := range ws {
		w := &ws[i]
		for _, p := range w.Posts {
			if p == inReplyTo && inReplyTo != "" {
				return w
			}
		}
		if best == nil || w.UpdateID > best.UpdateID {
			best = w
		}
	}
	return best
}
