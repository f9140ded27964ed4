package facebook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/fbemu"
)

func TestPollReadsNewCommentsOnceAcrossARestart(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	first, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Investigating."})
	if err != nil {
		t.Fatal(err)
	}
	// 130 comments: more than one Graph page of 100.
	var ids []string
	for i := range 130 {
		id, err := e.emu.AddComment(first.ExternalID, "", fmt.Sprintf("Customer %d", i), fmt.Sprintf("question %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		e.clock.Advance(time.Second)
	}
	watch := []channels.Watch{{IncidentID: 7, UpdateID: 70, Posts: []string{first.ExternalID}}}

	got, cursor, err := e.client.Poll(ctx, watch, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 130 {
		t.Fatalf("first poll = %d replies, want 130", len(got))
	}
	for i, r := range got {
		if r.ExternalID != ids[i] || r.Text != fmt.Sprintf("question %d", i) || r.AuthorName != fmt.Sprintf("Customer %d", i) ||
			r.Channel != Name || r.Action != breachcast.ReplyAdded || r.RootID != first.ExternalID || r.InReplyTo != first.ExternalID ||
			r.IncidentID != 7 || r.UpdateID != 70 || !r.CreatedAt.Equal(day.Add(time.Duration(i)*time.Second)) || r.AuthorID == "" {
			t.Fatalf("reply %d = %+v", i, r)
		}
		if !json.Valid(r.Raw) {
			t.Fatalf("reply %d Raw is not JSON", i)
		}
	}

	// More comments arrive while breachcast is down; one is a reply.
	late1, _ := e.emu.AddComment(first.ExternalID, "", "Dana", "any news?")
	late2, _ := e.emu.AddComment(first.ExternalID, ids[3], "Eli", "+1 to that")

	restarted := e.newClient(t, nil)
	got, cursor2, err := restarted.Poll(ctx, watch, cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ExternalID != late1 || got[1].ExternalID != late2 {
		t.Fatalf("after restart = %v, want only the two new comments", replyIDs(got))
	}
	if got[1].InReplyTo != ids[3] || got[1].RootID != first.ExternalID {
		t.Errorf("reply to a comment = %+v", got[1])
	}

	// Nothing new: nothing returned, and the cursor still points at the end.
	got, cursor3, err := restarted.Poll(ctx, watch, cursor2)
	if err != nil || len(got) != 0 {
		t.Fatalf("idle poll = %v, %v", replyIDs(got), err)
	}
	late3, _ := e.emu.AddComment(first.ExternalID, "", "Fay", "thanks")
	got, _, err = restarted.Poll(ctx, watch, cursor3)
	if err != nil || len(got) != 1 || got[0].ExternalID != late3 {
		t.Fatalf("poll after idle = %v, %v", replyIDs(got), err)
	}
	for _, r := range e.emu.Requests() {
		if strings.HasSuffix(r.Path, "/comments") && r.Method == "GET" && len(r.Unknown) != 0 {
			t.Errorf("poll sent parameters unknown to Meta's spec: %v", r.Unknown)
		}
	}
	e.assertNoSecretsLeaked(t)
}

func replyIDs(rs []*breachcast.Reply) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ExternalID)
	}
	return out
}

func TestPollInCommentModeReadsTheRootAndSkipsOurOwnComments(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Mode = ModeComment }, nil)
	ctx := context.Background()
	first, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Investigating."})
	if err != nil {
		t.Fatal(err)
	}
	upd, err := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "Identified.", Root: first.ExternalID})
	if err != nil {
		t.Fatal(err)
	}
	onFirst, _ := e.emu.AddComment(first.ExternalID, "", "Ann", "what happened?")
	onUpdate, _ := e.emu.AddComment(first.ExternalID, upd.ExternalID, "Ben", "is it fixed?")
	watches := []channels.Watch{
		{IncidentID: 1, UpdateID: 10, Root: first.ExternalID, Posts: []string{first.ExternalID}},
		{IncidentID: 1, UpdateID: 11, Root: first.ExternalID, Posts: []string{upd.ExternalID}},
	}
	got, _, err := e.client.Poll(ctx, watches, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("replies = %v, want the two customer comments only", replyIDs(got))
	}
	if got[0].ExternalID != onFirst || got[0].UpdateID != 10 || got[1].ExternalID != onUpdate || got[1].UpdateID != 11 || got[1].InReplyTo != upd.ExternalID {
		t.Errorf("replies = %+v / %+v", got[0], got[1])
	}
	n := 0
	for _, r := range e.emu.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, "/comments") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("comment lists read = %d, want 1 (the root)", n)
	}
}

func TestPollInPostModeReadsEveryUpdatePost(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	first, _ := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Investigating."})
	second, err := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "Identified.", Root: first.ExternalID})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := e.emu.AddComment(first.ExternalID, "", "Ann", "on the first")
	b, _ := e.emu.AddComment(second.ExternalID, "", "Ben", "on the second")
	watches := []channels.Watch{
		{IncidentID: 1, UpdateID: 10, Root: first.ExternalID, Posts: []string{first.ExternalID}},
		{IncidentID: 1, UpdateID: 11, Root: first.ExternalID, Posts: []string{second.ExternalID}},
	}
	got, _, err := e.client.Poll(ctx, watches, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ExternalID != a || got[0].UpdateID != 10 || got[1].ExternalID != b || got[1].UpdateID != 11 || got[1].RootID != second.ExternalID {
		t.Errorf("replies = %+v", got)
	}
}

func TestPollSkipsAPostThatIsGone(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetractMode = RetractDelete }, nil)
	ctx := context.Background()
	gone, _ := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Oops."})
	kept, _ := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "Investigating."})
	c, _ := e.emu.AddComment(kept.ExternalID, "", "Ann", "hello")
	if err := e.client.Retract(ctx, gone.ExternalID); err != nil {
		t.Fatal(err)
	}
	got, _, err := e.client.Poll(ctx, []channels.Watch{{Posts: []string{gone.ExternalID, kept.ExternalID}}}, "")
	if err != nil || len(got) != 1 || got[0].ExternalID != c {
		t.Errorf("poll = %v, %v", replyIDs(got), err)
	}
}

func TestPollFailureKeepsWhatWasRead(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	p1, _ := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "one"})
	p2, _ := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "two"})
	c1, _ := e.emu.AddComment(p1.ExternalID, "", "Ann", "first")
	c2, _ := e.emu.AddComment(p2.ExternalID, "", "Ben", "second")
	watches := []channels.Watch{{Posts: []string{p1.ExternalID, p2.ExternalID}}}

	// Throttled at once: nothing read, and the cursor still starts at zero.
	e.emu.RateLimitNext(1, 32, 5*time.Minute)
	got, cur, err := e.client.Poll(ctx, watches, "")
	if ce := asChannelError(t, err); ce.Code != CodeRateLimit || ce.RetryAfter != 5*time.Minute || len(got) != 0 {
		t.Fatalf("throttled poll = %v, %v", replyIDs(got), err)
	}
	got, cur, err = e.client.Poll(ctx, watches, cur)
	if err != nil || len(got) != 2 || got[0].ExternalID != c1 || got[1].ExternalID != c2 {
		t.Fatalf("retry = %v, %v", replyIDs(got), err)
	}

	// Throttled on the second post: what was read of the first is returned
	// and its cursor kept; the second post's cursor is unchanged.
	c3, _ := e.emu.AddComment(p1.ExternalID, "", "Cy", "third")
	c4, _ := e.emu.AddComment(p2.ExternalID, "", "Di", "fourth")
	e.emu.FailPath(p2.ExternalID+"/comments", 1, fbemu.ErrTransient)
	got, cur2, err := e.client.Poll(ctx, watches, cur)
	if err == nil || len(got) != 1 || got[0].ExternalID != c3 {
		t.Fatalf("partial poll = %v, %v", replyIDs(got), err)
	}
	if !strings.Contains(err.Error(), p2.ExternalID) {
		t.Errorf("error %q does not name the post", err)
	}
	got, _, err = e.client.Poll(ctx, watches, cur2)
	if err != nil || len(got) != 1 || got[0].ExternalID != c4 {
		t.Fatalf("resumed poll = %v, %v (c3 must not come again)", replyIDs(got), err)
	}
}

func TestPollRefusesABadCursorOrWatch(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	for _, cur := range []string{"not base64!", "eyJ2Ijo5fQ", strings.Repeat("A", maxCursorBytes+1)} {
		_, _, err := e.client.Poll(ctx, nil, cur)
		if breachcast.ErrorCodeOf(err) != breachcast.EINVALID || !strings.Contains(err.Error(), "cursor") {
			t.Errorf("cursor %.20q: err = %v, want an invalid-cursor error", cur, err)
		}
	}
	_, _, err := e.client.Poll(ctx, []channels.Watch{{Posts: []string{"1_2/../me"}}}, "")
	if breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
		t.Errorf("bad post id: err = %v", err)
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d requests made with bad input", n)
	}
}
