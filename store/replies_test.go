package store_test

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/store"
)

// postUpdate publishes an update of slug on channel and records its posts
// as made, with the given provider ids, as a fan-out worker would.
func postUpdate(t *testing.T, db *store.DB, slug string, status breachcast.Status, channel string, ids ...string) *breachcast.Update {
	t.Helper()
	ctx := context.Background()
	n := notice(slug, status, channel)
	p := &store.Publication{Notice: n, SourceHash: n.Body + channel, Actor: "test",
		Posts: map[string][]string{channel: make([]string, len(ids))}}
	for i := range ids {
		p.Posts[channel][i] = "post " + ids[i]
	}
	res, err := db.Publish(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	j, err := db.ClaimJob(ctx, channel, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if j.UpdateID != res.Update.ID || len(j.Posts) != len(ids) {
		t.Fatalf("claimed %+v", j)
	}
	for i, post := range j.Posts {
		if ids[i] == "" {
			continue // never made
		}
		if err := db.RecordPost(ctx, post.ID, ids[i], "https://example.com/"+ids[i], ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.FinishJob(ctx, j, "w", ""); err != nil {
		t.Fatal(err)
	}
	return res.Update
}

func ingest(t *testing.T, db *store.DB, r *breachcast.Reply) bool {
	t.Helper()
	changed, err := db.IngestReply(context.Background(), r)
	if err != nil {
		t.Fatalf("IngestReply %s %s: %v", r.Action, r.ExternalID, err)
	}
	return changed
}

func stored(t *testing.T, db *store.DB, channel, id string) *breachcast.Reply {
	t.Helper()
	r, err := db.Reply(context.Background(), channel, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func comment(id, action, text string, at time.Duration) *breachcast.Reply {
	return &breachcast.Reply{Channel: "facebook", ExternalID: id, Action: breachcast.ReplyAction(action), Text: text,
		AuthorID: "10", AuthorName: "Dana", InReplyTo: "p1", RootID: "p1", CreatedAt: t0, EventTime: t0.Add(at),
		Raw: []byte(`{"verb":"` + action + `"}`)}
}

func TestRepliesAreFiledUnderTheUpdateTheyAnswer(t *testing.T) {
	db, clk := open(t)
	u1 := postUpdate(t, db, "db-leak", breachcast.Investigating, "twitter", "100", "101")
	clk.Advance(time.Hour)
	u2 := postUpdate(t, db, "db-leak", breachcast.Identified, "twitter", "200")

	tests := []struct {
		name                  string
		reply                 breachcast.Reply
		wantIncident, wantUpd int64
	}{
		{"a reply to the second post of the first thread", breachcast.Reply{ExternalID: "300", InReplyTo: "101", RootID: "100"}, u1.IncidentID, u1.ID},
		{"a reply to the later update", breachcast.Reply{ExternalID: "301", InReplyTo: "200", RootID: "100"}, u2.IncidentID, u2.ID},
		{"a reply to a reply inherits its parent's update", breachcast.Reply{ExternalID: "302", InReplyTo: "301", RootID: "100"}, u2.IncidentID, u2.ID},
		{"a reply to an unknown post in our conversation", breachcast.Reply{ExternalID: "303", InReplyTo: "999", RootID: "100"}, u1.IncidentID, u1.ID},
		{"a mention about nothing we posted", breachcast.Reply{ExternalID: "304", InReplyTo: "", RootID: "304"}, 0, 0},
		{"ids the channel already knew are kept", breachcast.Reply{ExternalID: "305", InReplyTo: "101", RootID: "100", IncidentID: u2.IncidentID, UpdateID: u2.ID}, u2.IncidentID, u2.ID},
		{"an update id alone gains its incident", breachcast.Reply{ExternalID: "306", InReplyTo: "101", UpdateID: u2.ID}, u2.IncidentID, u2.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.reply
			r.Channel, r.Text, r.CreatedAt = "twitter", "is my password safe?", t0
			if !ingest(t, db, &r) {
				t.Fatal("a new reply was not stored")
			}
			if r.IncidentID != tt.wantIncident || r.UpdateID != tt.wantUpd {
				t.Errorf("reply filed under incident %d update %d, want %d %d", r.IncidentID, r.UpdateID, tt.wantIncident, tt.wantUpd)
			}
			got := stored(t, db, "twitter", r.ExternalID)
			if got.IncidentID != tt.wantIncident || got.UpdateID != tt.wantUpd {
				t.Errorf("stored under incident %d update %d", got.IncidentID, got.UpdateID)
			}
		})
	}
	// The same ids on another channel are other posts.
	fb := &breachcast.Reply{Channel: "facebook", ExternalID: "400", InReplyTo: "101", RootID: "100"}
	ingest(t, db, fb)
	if fb.IncidentID != 0 {
		t.Errorf("a facebook comment matched an X post: %+v", fb)
	}
}

func TestIngestingTheSameReplyTwiceStoresItOnce(t *testing.T) {
	db, _ := open(t)
	r := comment("c1", "add", "first!", 0)
	if !ingest(t, db, r) {
		t.Fatal("first ingest changed nothing")
	}
	again := comment("c1", "add", "first! (a replay with other text)", time.Minute)
	if ingest(t, db, again) {
		t.Fatal("a replayed add changed the stored copy")
	}
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM replies`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows, %v", n, err)
	}
	got := stored(t, db, "facebook", "c1")
	want := &breachcast.Reply{Channel: "facebook", ExternalID: "c1", Action: breachcast.ReplyAdded, AuthorID: "10",
		AuthorName: "Dana", Text: "first!", InReplyTo: "p1", RootID: "p1", CreatedAt: t0, EventTime: t0, Raw: []byte(`{"verb":"add"}`)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored\n %+v\nwant\n %+v", got, want)
	}
}

func TestOnlyANewerEditChangesTheText(t *testing.T) {
	db, _ := open(t)
	ingest(t, db, comment("c1", "add", "v1", 0))
	if !ingest(t, db, comment("c1", "edited", "v3", 3*time.Second)) {
		t.Fatal("an edit changed nothing")
	}
	if ingest(t, db, comment("c1", "edited", "v2", 2*time.Second)) {
		t.Error("an older edit arriving late changed the text")
	}
	if ingest(t, db, comment("c1", "edited", "v3", 3*time.Second)) {
		t.Error("a replayed edit reported a change")
	}
	got := stored(t, db, "facebook", "c1")
	if got.Text != "v3" || got.Action != breachcast.ReplyEdited || !got.EventTime.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("stored %+v", got)
	}
	var editedAt int64
	if err := db.SQL().QueryRow(`SELECT edited_at FROM replies WHERE external_id = 'c1'`).Scan(&editedAt); err != nil ||
		editedAt != t0.Add(3*time.Second).UnixMilli() {
		t.Errorf("edited_at %d, %v", editedAt, err)
	}
	if string(got.Raw) != `{"verb":"edited"}` {
		t.Errorf("raw %s: want the payload of the edit applied", got.Raw)
	}
}

func TestAnEditInTheSameSecondAsTheCommentIsApplied(t *testing.T) {
	// Facebook stamps webhooks to the second: a quick fix of a typo comes
	// with the time of the comment itself.
	db, _ := open(t)
	ingest(t, db, comment("c1", "add", "pasword?", 0))
	if !ingest(t, db, comment("c1", "edited", "password?", 0)) {
		t.Fatal("the edit was dropped")
	}
	if ingest(t, db, comment("c1", "edited", "pasword?", 0)) {
		t.Error("a second edit stamped with the same second overwrote the first")
	}
	if got := stored(t, db, "facebook", "c1"); got.Text != "password?" {
		t.Fatalf("text %q", got.Text)
	}
}

func TestARemovedReplyKeepsItsTextAndStaysRemoved(t *testing.T) {
	db, _ := open(t)
	ingest(t, db, comment("c1", "add", "my card was charged twice", 0))
	if !ingest(t, db, comment("c1", "remove", "", time.Minute)) {
		t.Fatal("removal changed nothing")
	}
	for _, late := range []*breachcast.Reply{
		comment("c1", "remove", "", time.Minute),
		comment("c1", "edited", "rewritten", time.Hour),
		comment("c1", "unhide", "", time.Hour),
		comment("c1", "add", "again", time.Hour),
	} {
		if ingest(t, db, late) {
			t.Errorf("%s after removal changed the stored copy", late.Action)
		}
	}
	got := stored(t, db, "facebook", "c1")
	if got.Action != breachcast.ReplyRemoved || got.Text != "my card was charged twice" || string(got.Raw) != `{"verb":"add"}` {
		t.Fatalf("stored %+v", got)
	}
}

func TestHideAndUnhideFollowTheNewestEvent(t *testing.T) {
	db, _ := open(t)
	ingest(t, db, comment("c1", "add", "spam link", 0))
	if !ingest(t, db, comment("c1", "hide", "", 2*time.Second)) {
		t.Fatal("hide changed nothing")
	}
	if got := stored(t, db, "facebook", "c1"); got.Action != breachcast.ReplyHidden {
		t.Fatalf("state %s", got.Action)
	}
	if ingest(t, db, comment("c1", "unhide", "", time.Second)) {
		t.Error("an older unhide arriving late showed the reply again")
	}
	if ingest(t, db, comment("c1", "hide", "", 2*time.Second)) {
		t.Error("a replayed hide reported a change")
	}
	if !ingest(t, db, comment("c1", "unhide", "", 3*time.Second)) {
		t.Fatal("unhide changed nothing")
	}
	if got := stored(t, db, "facebook", "c1"); got.Action != breachcast.ReplyAdded || got.Text != "spam link" {
		t.Fatalf("stored %+v", got)
	}
}

func TestEventsForAReplyNotYetStoredStoreItInThatState(t *testing.T) {
	db, _ := open(t)
	for action, want := range map[string]breachcast.ReplyAction{
		"edited": breachcast.ReplyEdited, "remove": breachcast.ReplyRemoved, "hide": breachcast.ReplyHidden, "unhide": breachcast.ReplyAdded,
	} {
		id := "c-" + action
		if !ingest(t, db, comment(id, action, "text of "+action, time.Second)) {
			t.Fatalf("%s of an unknown reply stored nothing", action)
		}
		got := stored(t, db, "facebook", id)
		if got.Action != want || got.Text != "text of "+action {
			t.Errorf("%s: stored %+v", action, got)
		}
	}
	// The add that was overtaken changes nothing.
	if ingest(t, db, comment("c-edited", "add", "original", 0)) {
		t.Error("a late add overwrote an edit")
	}
}

func TestAReplyWithoutATimeTakesTheStoreClock(t *testing.T) {
	db, clk := open(t)
	ingest(t, db, &breachcast.Reply{Channel: "email", ExternalID: "<m1@example.net>", Text: "hello"})
	if got := stored(t, db, "email", "<m1@example.net>"); !got.EventTime.Equal(clk.Now()) || !got.CreatedAt.IsZero() {
		t.Fatalf("stored %+v", got)
	}
}

func TestBadRepliesAreRefused(t *testing.T) {
	db, _ := open(t)
	for _, r := range []*breachcast.Reply{
		nil,
		{Channel: "", ExternalID: "1"},
		{Channel: "twitter", ExternalID: ""},
		{Channel: "twitter", ExternalID: "1", Action: "like"},
	} {
		if _, err := db.IngestReply(context.Background(), r); breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestEmailRepliesMatchTheNoticeTheyAnswer(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 3)
	res := publish(t, db, notice("db-leak", breachcast.Investigating, "email"))
	b, err := db.ClaimBatch(context.Background(), "email", "w", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	mid := b.Recipients[1].MessageID
	r := &breachcast.Reply{Channel: "email", ExternalID: "<reply1@mail.example.net>", InReplyTo: mid, Text: "Which data?"}
	ingest(t, db, r)
	if r.UpdateID != res.Update.ID || r.IncidentID != res.Update.IncidentID {
		t.Fatalf("reply to %s filed under %d/%d, want update %d", mid, r.IncidentID, r.UpdateID, res.Update.ID)
	}
	viaRoot := &breachcast.Reply{Channel: "email", ExternalID: "<reply2@mail.example.net>", InReplyTo: "<elsewhere@x.y>", RootID: mid}
	ingest(t, db, viaRoot)
	if viaRoot.UpdateID != res.Update.ID {
		t.Errorf("reference to our notice not matched: %+v", viaRoot)
	}
	// A made-up nonce, a recipient who was not sent this notice, or ids
	// not of our making match nothing.
	local, domain, _ := strings.Cut(mid, "@")
	parts := strings.Split(local, ".") // <bc, update, nonce, rN
	wrongNonce := strings.Join([]string{parts[0], parts[1], "aaaaaaaa", parts[3]}, ".") + "@" + domain
	notSent := strings.Join([]string{parts[0], parts[1], parts[2], "r999"}, ".") + "@" + domain
	if len(parts) != 4 || parts[3] != "r"+strconv.FormatInt(b.Recipients[1].ID, 10) {
		t.Fatalf("message id %s is not in the form this test knows", mid)
	}
	for i, id := range []string{wrongNonce, notSent, "<bc.1.abc@example.com>", "<bc.a.b.c@x>", "<bc.1.x.s2@example.com>"} {
		r := &breachcast.Reply{Channel: "email", ExternalID: "<forged" + string(rune('a'+i)) + "@x>", InReplyTo: id}
		ingest(t, db, r)
		if r.UpdateID != 0 {
			t.Errorf("%s matched update %d", id, r.UpdateID)
		}
	}
}

func TestRepliesListsAnIncidentsRepliesOldestFirst(t *testing.T) {
	db, _ := open(t)
	postUpdate(t, db, "db-leak", breachcast.Investigating, "facebook", "p1")
	postUpdate(t, db, "other", breachcast.Investigating, "facebook", "p2")
	late := comment("c2", "add", "second", 0)
	late.CreatedAt = t0.Add(time.Minute)
	ingest(t, db, late)
	ingest(t, db, comment("c1", "add", "first", 0))
	elsewhere := comment("c3", "add", "other incident", 0)
	elsewhere.InReplyTo, elsewhere.RootID = "p2", "p2"
	ingest(t, db, elsewhere)

	got, err := db.Replies(context.Background(), "db-leak")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ExternalID != "c1" || got[1].ExternalID != "c2" {
		t.Fatalf("replies %+v", got)
	}
	if none, err := db.Replies(context.Background(), "nothing-yet"); breachcast.ErrorCodeOf(err) != breachcast.ENOTFOUND || none != nil {
		t.Errorf("unknown incident: %v, %v", none, err)
	}
	postUpdate(t, db, "quiet", breachcast.Investigating, "facebook", "p3")
	if none, err := db.Replies(context.Background(), "quiet"); err != nil || none == nil || len(none) != 0 {
		t.Errorf("incident without replies: %v, %v", none, err)
	}
}

func TestWatchesArePublishedPostsOfOpenOrRecentIncidents(t *testing.T) {
	db, clk := open(t)
	ctx := context.Background()
	old1 := postUpdate(t, db, "old", breachcast.Investigating, "twitter", "10")
	postUpdate(t, db, "old", breachcast.Resolved, "twitter", "11")
	clk.Advance(10 * 24 * time.Hour)
	since := clk.Now().Add(-7 * 24 * time.Hour)

	a1 := postUpdate(t, db, "open", breachcast.Investigating, "twitter", "20", "21")
	clk.Advance(time.Hour)
	a2 := postUpdate(t, db, "open", breachcast.Identified, "twitter", "", "23") // its first post failed
	postUpdate(t, db, "open", breachcast.Monitoring, "facebook", "fb1")
	recent1 := postUpdate(t, db, "recent", breachcast.Resolved, "twitter", "30")

	got, err := db.Watches(ctx, "twitter", since)
	if err != nil {
		t.Fatal(err)
	}
	want := []channels.Watch{
		{IncidentID: a1.IncidentID, UpdateID: a1.ID, Root: "20", Posts: []string{"20", "21"}},
		{IncidentID: a2.IncidentID, UpdateID: a2.ID, Root: "20", Posts: []string{"23"}},
		{IncidentID: recent1.IncidentID, UpdateID: recent1.ID, Root: "30", Posts: []string{"30"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("watches\n %+v\nwant\n %+v", got, want)
	}

	all, err := db.Watches(ctx, "twitter", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].UpdateID != old1.ID || all[1].Root != "10" {
		t.Errorf("every incident: %+v", all)
	}
	fb, err := db.Watches(ctx, "facebook", since)
	if err != nil || len(fb) != 1 || fb[0].Root != "fb1" {
		t.Errorf("facebook watches %+v, %v", fb, err)
	}
	if none, err := db.Watches(ctx, "email", since); err != nil || len(none) != 0 {
		t.Errorf("email watches %+v, %v", none, err)
	}
}
