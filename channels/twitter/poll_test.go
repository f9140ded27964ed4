package twitter

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/xemu"
)

// thread publishes texts as one thread and returns the post ids.
func thread(t *testing.T, c *Client, parent string, texts ...string) []string {
	t.Helper()
	var ids []string
	for _, text := range texts {
		r, err := c.Publish(ctx, &channels.Post{Text: text, Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ExternalID)
		parent = r.ExternalID
	}
	return ids
}

func byID(replies []*breachcast.Reply) map[string]*breachcast.Reply {
	m := map[string]*breachcast.Reply{}
	for _, r := range replies {
		m[r.ExternalID] = r
	}
	return m
}

func replyIDs(replies []*breachcast.Reply) []string {
	var out []string
	for _, r := range replies {
		out = append(out, r.ExternalID)
	}
	slices.Sort(out)
	return out
}

func poll(t *testing.T, c *Client, watches []channels.Watch, cursor string) ([]*breachcast.Reply, string) {
	t.Helper()
	replies, next, err := c.Poll(ctx, watches, cursor)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return replies, next
}

func TestPollMapsRepliesToTheirIncidentAndUpdate(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	u1 := thread(t, c, "", "1/2 We are investigating.", "2/2 More soon.")
	h.clock.Advance(time.Minute)
	u2 := thread(t, c, u1[1], "Update: we found the cause.")
	watches := []channels.Watch{
		{IncidentID: 7, UpdateID: 70, Root: u1[0], Posts: u1},
		{IncidentID: 7, UpdateID: 71, Root: u1[0], Posts: u2},
	}

	h.clock.Advance(time.Minute)
	h.emu.AddUser("dana_kim", "Dana Kim")
	toFirst := h.emu.AddReply(u1[0], "dana_kim", "Do I need to change my password? <yes> & now?")
	toUpdate := h.emu.AddReply(u2[0], "marco_rossi", "Thanks")
	nested := h.emu.AddReply(toFirst, "priya_s", "@dana_kim same question")
	mention := h.emu.AddMention("tom_hughes", "are you breached?")

	replies, _ := poll(t, c, watches, "")
	got := byID(replies)
	if len(replies) != 4 || len(got) != 4 {
		t.Fatalf("got %v, want the 4 customer posts once each", replyIDs(replies))
	}
	r := *got[toFirst]
	want := breachcast.Reply{
		Channel: "twitter", ExternalID: toFirst, Action: breachcast.ReplyAdded, AuthorName: "Dana Kim (@dana_kim)",
		Text:      "@acme_status Do I need to change my password? <yes> & now?",
		InReplyTo: u1[0], RootID: u1[0], CreatedAt: h.clock.Now(), EventTime: h.clock.Now(), IncidentID: 7, UpdateID: 70,
	}
	want.AuthorID = r.AuthorID
	r.Raw, want.Raw = nil, nil
	if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", want) {
		t.Errorf("reply\n got %+v\nwant %+v", r, want)
	}
	if r.AuthorID == "" || r.AuthorID == xemu.DefaultUserID {
		t.Errorf("author id %q", r.AuthorID)
	}
	var raw map[string]any
	if err := json.Unmarshal(byID(replies)[toFirst].Raw, &raw); err != nil || raw["id"] != toFirst || raw["conversation_id"] != u1[0] {
		t.Errorf("raw %s: %v", byID(replies)[toFirst].Raw, err)
	}
	if r := got[toUpdate]; r.UpdateID != 71 || r.InReplyTo != u2[0] {
		t.Errorf("reply to the second update: %+v", r)
	}
	if r := got[nested]; r.UpdateID != 71 || r.IncidentID != 7 || r.InReplyTo != toFirst || r.RootID != u1[0] {
		t.Errorf("reply to a reply (filed under the latest update): %+v", r)
	}
	if r := got[mention]; r.IncidentID != 0 || r.UpdateID != 0 || r.RootID != mention || r.AuthorName != "tom_hughes (@tom_hughes)" {
		t.Errorf("mention outside the watched conversations: %+v", r)
	}
	for _, r := range replies {
		if slices.Contains(append(u1, u2...), r.ExternalID) {
			t.Errorf("our own post %s came back as a reply", r.ExternalID)
		}
	}
}

func TestPollCursorSurvivesARestart(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	first := h.client()
	root := thread(t, first, "", "We are investigating.")[0]
	watches := []channels.Watch{{IncidentID: 1, UpdateID: 1, Root: root, Posts: []string{root}}}
	a1 := h.emu.AddReply(root, "dana_kim", "first question")
	a2 := h.emu.AddMention("marco_rossi", "hello?")

	replies, cursor := poll(t, first, watches, "")
	if got := replyIDs(replies); fmt.Sprint(got) != fmt.Sprint([]string{a1, a2}) {
		t.Fatalf("first poll %v", got)
	}

	// While breachcast is down, more replies arrive.
	h.clock.Advance(10 * time.Minute)
	b1 := h.emu.AddReply(a1, "priya_s", "second question")
	b2 := h.emu.AddMention("jules_b", "still waiting")

	restarted := h.client()
	replies, cursor = poll(t, restarted, watches, cursor)
	if got := replyIDs(replies); fmt.Sprint(got) != fmt.Sprint([]string{b1, b2}) {
		t.Fatalf("after restart %v, want exactly the two new ones", got)
	}
	replies, _ = poll(t, restarted, watches, cursor)
	if len(replies) != 0 {
		t.Errorf("third poll re-read %v", replyIDs(replies))
	}
	// The restarted client asked X only for what is newer than the cursor.
	for _, r := range h.requests(xemu.EndpointSearch)[1:] {
		if q, _ := url.ParseQuery(r.Query); q.Get("since_id") == root || q.Get("since_id") == "" {
			t.Errorf("search after the first poll re-reads from the root: %s", r.Query)
		}
	}
}

func TestPollFollowsPages(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	root := thread(t, c, "", "Root")[0]
	var want []string
	for i := range 230 {
		want = append(want, h.emu.AddReply(root, fmt.Sprintf("customer%d", i), "question"))
	}
	slices.Sort(want)
	watches := []channels.Watch{{Root: root, Posts: []string{root}}}

	replies, cursor := poll(t, c, watches, "")
	if got := replyIDs(replies); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d replies, want %d", len(got), len(want))
	}
	searches := h.requests(xemu.EndpointSearch)
	if len(searches) != 3 {
		t.Fatalf("%d search requests, want 3 pages of 100", len(searches))
	}
	for i, r := range searches {
		q, _ := url.ParseQuery(r.Query)
		if q.Get("max_results") != "100" || q.Get("since_id") != root || (i > 0) != (q.Get("next_token") != "") {
			t.Errorf("page %d query %s", i, r.Query)
		}
	}
	if replies, _ := poll(t, c, watches, cursor); len(replies) != 0 {
		t.Errorf("re-read %d", len(replies))
	}
	// X bills every post read: the conversation's 230 replies (since_id
	// leaves out the root), and the mentions timeline, where the same
	// replies show up again.
	if used, _, _ := c.ReadUsage(); used != 230+230 {
		t.Errorf("read usage %d, want 460", used)
	}
}

func TestPollReadsAtMost20PagesPerTimelineAndGoesOnNextTime(t *testing.T) {
	h := newHarness(t, xemu.Options{Limits: map[string]xemu.Limit{
		xemu.EndpointSearch: {Requests: 1000, Window: 15 * time.Minute}, xemu.EndpointMentions: {Requests: 1000, Window: 15 * time.Minute},
	}})
	c := h.client()
	root := thread(t, c, "", "Root")[0]
	var want []string
	for i := range 2050 {
		want = append(want, h.emu.AddReply(root, fmt.Sprintf("c%d", i), "q"))
	}
	slices.Sort(want)
	watches := []channels.Watch{{Root: root}}
	first, cursor := poll(t, c, watches, "")
	if len(first) != 2000 || h.count(xemu.EndpointSearch) != 20 {
		t.Fatalf("first poll: %d replies in %d pages", len(first), h.count(xemu.EndpointSearch))
	}
	second, _ := poll(t, c, watches, cursor)
	if got := replyIDs(append(first, second...)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d replies over two polls, want the 2050 once each", len(got))
	}
}

func TestPollStopsAtTheReadBudgetAndResumes(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	budget := func(c *Config) { c.ReadBudgetPerHour = 25 }
	c := h.client(budget)
	root := thread(t, c, "", "Root")[0]
	var want []string
	for i := range 40 {
		want = append(want, h.emu.AddReply(root, fmt.Sprintf("customer%d", i), "question"))
	}
	slices.Sort(want)
	watches := []channels.Watch{{Root: root, Posts: []string{root}}}

	replies, cursor := poll(t, c, watches, "")
	if len(replies) != 25 {
		t.Fatalf("first hour: %d replies, want 25 (the budget)", len(replies))
	}
	if used, b, resets := c.ReadUsage(); used != 25 || b != 25 || !resets.Equal(h.clock.Now().Truncate(time.Hour).Add(time.Hour)) {
		t.Errorf("usage %d/%d resets %v", used, b, resets)
	}
	if d := c.NextPoll(true); d != time.Hour {
		t.Errorf("NextPoll after spending the budget = %v, want the hour to end", d)
	}

	// Restarted within the same hour: the budget is still spent (it is in
	// the cursor), so no post is read.
	before := h.count(xemu.EndpointSearch) + h.count(xemu.EndpointMentions)
	again, cursor2 := poll(t, h.client(budget), watches, cursor)
	if n := h.count(xemu.EndpointSearch) + h.count(xemu.EndpointMentions) - before; len(again) != 0 || n != 0 {
		t.Errorf("same hour after restart: %d replies, %d reads", len(again), n)
	}

	h.clock.Advance(time.Hour)
	later := h.client(budget)
	more, cursor3 := poll(t, later, watches, cursor2)
	all := append(replies, more...)
	if got := replyIDs(all); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after two hours %d replies (%d unique), want all 40 once", len(all), len(byID(all)))
	}
	if used, _, _ := later.ReadUsage(); used > 25 {
		t.Errorf("second hour read %d posts, over the budget", used)
	}
	h.clock.Advance(time.Hour)
	if rest, _ := poll(t, h.client(budget), watches, cursor3); len(rest) != 0 {
		t.Errorf("re-read %d", len(rest))
	}
}

func TestPollConversationsTakeTurnsUnderATightBudget(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	budget := func(c *Config) { c.ReadBudgetPerHour = 10 }
	c := h.client(budget)
	a := thread(t, c, "", "Incident A")[0]
	b := thread(t, c, "", "Incident B")[0]
	for i := range 12 {
		h.emu.AddReply(a, fmt.Sprintf("a%d", i), "about A")
		h.emu.AddReply(b, fmt.Sprintf("b%d", i), "about B")
	}
	watches := []channels.Watch{{IncidentID: 1, Root: a}, {IncidentID: 2, Root: b}}
	cursor := ""
	seen := map[int64]int{}
	for range 3 {
		var replies []*breachcast.Reply
		replies, cursor = poll(t, h.client(budget), watches, cursor)
		for _, r := range replies {
			seen[r.IncidentID]++
		}
		h.clock.Advance(time.Hour)
	}
	if seen[1] == 0 || seen[2] == 0 {
		t.Errorf("replies per incident %v: one conversation starved", seen)
	}
}

func TestPollReadsMentionsButLeavesWatchedConversationsToSearch(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	root := thread(t, c, "", "Root")[0]
	reply := h.emu.AddReply(root, "dana_kim", "in the thread, and a mention")
	replies, _ := poll(t, c, []channels.Watch{{Root: root}}, "")
	if len(replies) != 1 || replies[0].ExternalID != reply {
		t.Fatalf("%v", replyIDs(replies))
	}
	m := h.requests(xemu.EndpointMentions)
	if len(m) != 1 || !strings.HasPrefix(m[0].Path, "/2/users/"+xemu.DefaultUserID+"/") {
		t.Fatalf("mentions requests %v", m)
	}
	if q, _ := url.ParseQuery(m[0].Query); q.Get("since_id") != root {
		t.Errorf("first mentions read starts at %q, want our first watched post", q.Get("since_id"))
	}
}

func TestPollWithoutWatchesAsksNothing(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	replies, cursor := poll(t, h.client(), nil, "")
	if len(replies) != 0 || len(h.emu.Requests()) != 0 || cursor == "" {
		t.Errorf("%d replies, %d requests, cursor %q", len(replies), len(h.emu.Requests()), cursor)
	}
}

func TestPollRateLimitedReturnsWhatItHasAndWhenToComeBack(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	a := thread(t, c, "", "A")[0]
	b := thread(t, c, "", "B")[0]
	ra := h.emu.AddReply(a, "dana_kim", "about A")
	h.emu.SetLimit(xemu.EndpointSearch, xemu.Limit{Requests: 1, Window: 15 * time.Minute})
	rb := h.emu.AddReply(b, "marco_rossi", "about B")
	watches := []channels.Watch{{Root: a}, {Root: b}}

	replies, cursor, err := c.Poll(ctx, watches, "")
	e := provider(t, err)
	if e.Code != CodeRateLimited || e.Permanent || e.RetryAfter != 15*time.Minute {
		t.Fatalf("error %+v", e)
	}
	if got := replyIDs(replies); fmt.Sprint(got) != fmt.Sprint([]string{ra}) {
		t.Errorf("partial replies %v", got)
	}
	if d := c.NextPoll(true); d != 15*time.Minute {
		t.Errorf("NextPoll %v, want the window's reset", d)
	}
	h.clock.Advance(15 * time.Minute)
	h.emu.SetLimit(xemu.EndpointSearch, xemu.Limit{Requests: 10, Window: 15 * time.Minute})
	rest, _ := poll(t, c, watches, cursor)
	if got := replyIDs(rest); fmt.Sprint(got) != fmt.Sprint([]string{rb}) {
		t.Errorf("after the reset %v, want only B's reply", got)
	}
}

func TestPollBeyondSearchsSevenDays(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	root := thread(t, c, "", "An incident that stays open")[0]
	watches := []channels.Watch{{Root: root}}
	_, cursor := poll(t, c, watches, "")
	h.clock.Advance(8 * 24 * time.Hour)
	late := h.emu.AddReply(root, "late_reader", "is this fixed?")
	replies, _ := poll(t, c, watches, cursor)
	if got := replyIDs(replies); fmt.Sprint(got) != fmt.Sprint([]string{late}) {
		t.Errorf("got %v", got)
	}
	s := h.requests(xemu.EndpointSearch)
	if q, _ := url.ParseQuery(s[len(s)-1].Query); q.Get("since_id") != "" || q.Get("start_time") == "" {
		t.Errorf("search for an old conversation: %s", s[len(s)-1].Query)
	}
}

func TestPollRefusesACorruptCursor(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client()
	for _, cur := range []string{"not json", `{"v":2}`, `{"v":1,"q":{"c:abc":{}}}`, `{"v":1,"q":{"m":{"since":"12; DROP"}}}`, `{"v":1,"x":1}`} {
		_, next, err := c.Poll(ctx, []channels.Watch{{Root: "1500000000000000000"}}, cur)
		if e := provider(t, err); e.Code != CodeBadCursor || !e.Permanent || next != cur {
			t.Errorf("cursor %q: %+v next %q", cur, e, next)
		}
	}
	if len(h.emu.Requests()) != 0 {
		t.Error("requests sent with a corrupt cursor")
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for _, found := range []bool{false, false, false, false, false, false, false, true, false} {
		got = append(got, b.Next(found))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute, 30 * time.Second, time.Minute}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	custom := Backoff{Min: time.Second, Max: 3 * time.Second}
	if a, b2, c := custom.Next(false), custom.Next(false), custom.Next(false); a != time.Second || b2 != 2*time.Second || c != 3*time.Second {
		t.Errorf("custom %v %v %v", a, b2, c)
	}
}

func TestNextPollUsesTheConfiguredBounds(t *testing.T) {
	h := newHarness(t, xemu.Options{})
	c := h.client(func(c *Config) { c.PollMin, c.PollMax = 5*time.Second, 20*time.Second })
	var got []time.Duration
	for _, found := range []bool{false, false, false, false, true} {
		got = append(got, c.NextPoll(found))
	}
	if fmt.Sprint(got) != fmt.Sprint([]time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 20 * time.Second, 5 * time.Second}) {
		t.Errorf("%v", got)
	}
}
