package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/emulators/xemu"
	"github.com/breachcast/breachcast/store"
)

func (r *rig) db(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), r.env["BREACHCAST_DB"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRepliesFromXAndFacebookLandWithTheirIncidentAndUpdate(t *testing.T) {
	r := newRig(t)
	r.env["BREACHCAST_X_POLL_MIN"] = "100ms"
	r.env["BREACHCAST_X_POLL_MAX"] = "200ms"
	srv := r.serve(t)
	r.fb.SetWebhookURL(srv.url + "/webhooks/facebook")
	r.must("publish", r.write("n.md", noticeText("db-leak", "investigating", "twitter, facebook, status", breachBody)))
	thread := r.x.Posts()
	if id := r.x.AddReply(thread[len(thread)-1].ID, "worried_cust", "@acme_status Do I need to change my password?"); id == "" {
		t.Fatal("the emulator refused the reply")
	}
	page := r.fb.Posts()
	if _, err := r.fb.AddComment(page[0].ID, "", "Jane Customer", "Was my card data exposed?"); err != nil {
		t.Fatal(err)
	}
	db := r.db(t)
	var replies []*breachcast.Reply
	eventually(t, "both replies to be stored", 20*time.Second, func() bool {
		var err error
		replies, err = db.Replies(context.Background(), "db-leak")
		return err == nil && len(replies) == 2
	})
	u, _ := db.LatestUpdate(context.Background(), "db-leak")
	byChannel := map[string]*breachcast.Reply{}
	for _, rp := range replies {
		byChannel[rp.Channel] = rp
		if rp.UpdateID != u.ID || rp.IncidentID != u.IncidentID {
			t.Errorf("%s reply filed under update %d, want %d", rp.Channel, rp.UpdateID, u.ID)
		}
	}
	if x := byChannel["twitter"]; x == nil || !strings.Contains(x.Text, "change my password") || !strings.Contains(x.AuthorName, "worried_cust") {
		t.Fatalf("X reply: %+v", x)
	}
	if fb := byChannel["facebook"]; fb == nil || fb.Text != "Was my card data exposed?" || fb.AuthorName != "Jane Customer" {
		t.Fatalf("Facebook comment: %+v", fb)
	}
	listed := r.must("replies", "db-leak")
	if !strings.Contains(listed, "change my password") || !strings.Contains(listed, "Was my card data exposed?") {
		t.Fatalf("breachcast replies:\n%s", listed)
	}
	// A forged webhook stores nothing.
	resp, err := http.Post(srv.url+"/webhooks/facebook", "application/json",
		strings.NewReader(`{"object":"page","entry":[{"id":"1","time":1,"changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"999_1","post_id":"`+page[0].ID+`","message":"forged"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged webhook: HTTP %d", resp.StatusCode)
	}
	if again, _ := db.Replies(context.Background(), "db-leak"); len(again) != 2 {
		t.Fatalf("a forged webhook was stored: %d replies", len(again))
	}
}

func TestAFailureMidThreadResumesWithoutADuplicatePost(t *testing.T) {
	r := newRig(t)
	// X allows one post per second: the second post of the thread is
	// answered 429 with a reset a second away, and the thread goes on from it.
	r.x.SetLimit(xemu.EndpointCreate, xemu.Limit{Requests: 1, Window: time.Second})
	body := strings.Repeat("We are still working through the logs and will tell you more as soon as we know it. ", 6)
	out := r.must("publish", r.write("n.md", noticeText("db-leak", "investigating", "twitter", body)))
	if !strings.Contains(out, "Delivered") {
		t.Fatalf("%s", out)
	}
	posts := r.x.Posts()
	if len(posts) < 2 {
		t.Fatalf("thread of %d posts: the test needs a longer body", len(posts))
	}
	seen := map[string]bool{}
	for i, p := range posts {
		if seen[p.Text] {
			t.Fatalf("post %d made twice: %q", i+1, p.Text)
		}
		seen[p.Text] = true
		if i > 0 && p.InReplyToID != posts[i-1].ID {
			t.Fatalf("post %d is not chained", i+1)
		}
	}
	st := r.status("db-leak")
	if c := st.Updates[0].Channels[0]; c.Sent != len(posts) || c.State != "done" {
		t.Fatalf("%+v", c)
	}
}

func TestAnExpiredFacebookTokenFailsThatChannelByNameAndNotTheOthers(t *testing.T) {
	r := newRig(t)
	r.customers(5)
	r.fb.ExpireToken()
	_, errb, code := r.cli("publish", r.write("n.md", noticeText("db-leak", "investigating", "email, facebook, status", breachBody)))
	if code != 1 || !strings.Contains(errb, "facebook") || !strings.Contains(strings.ToLower(errb), "token") {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if r.sg.Total() != 5 {
		t.Fatalf("email was held up by Facebook: %d sent", r.sg.Total())
	}
	out, _, code := r.cli("channels", "check")
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "facebook") {
		t.Fatalf("channels check with an expired token: exit %d\n%s", code, out)
	}
}

func TestChannelsCheckSaysEveryChannelIsReady(t *testing.T) {
	r := newRig(t)
	out := r.must("channels", "check")
	for _, ch := range []string{"email", "twitter", "facebook"} {
		if !strings.Contains(out, ch) {
			t.Fatalf("check does not mention %s:\n%s", ch, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Fatalf("a healthy setup fails the check:\n%s", out)
	}
	r.x.SetAccessLevel("read")
	out, _, code := r.cli("channels", "check")
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "twitter") {
		t.Fatalf("read-only X app: exit %d\n%s", code, out)
	}
}

func TestRetractTakesAnUpdatesPostsDown(t *testing.T) {
	r := newRig(t)
	r.must("publish", r.write("n.md", noticeText("db-leak", "investigating", "twitter, facebook", breachBody)))
	out := r.must("retract", "db-leak", "--update", "1")
	if strings.Count(out, "retracted") != len(r.x.Posts())+1 {
		t.Fatalf("%s", out)
	}
	for _, p := range r.x.Posts() {
		if !p.Deleted {
			t.Fatalf("X post %s still up", p.ID)
		}
	}
	if p := r.fb.Posts()[0]; !p.Hidden {
		t.Fatalf("Facebook post still visible: %+v", p)
	}
	if audit := r.must("audit"); !strings.Contains(audit, "retract") {
		t.Fatalf("audit: %s", audit)
	}
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+`)

func TestSubscribersConfirmGetLaterUpdatesWithOneClickUnsubscribe(t *testing.T) {
	r := newRig(t)
	r.customers(3)
	srv := r.serve(t)
	r.must("publish", r.write("1.md", noticeText("db-leak", "investigating", "email, status", breachBody)))
	eventually(t, "the incident on the page", 10*time.Second, func() bool {
		code, body := get(t, srv.url+"/incidents/db-leak")
		return code == 200 && strings.Contains(body, "Unauthorized")
	})
	resp, err := http.PostForm(srv.url+"/subscribe", url.Values{"email": {"Watcher@Example.org"}, "incident": {"db-leak"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("subscribe: HTTP %d", resp.StatusCode)
	}
	confirm := r.sg.Messages("watcher@example.org")
	if len(confirm) != 1 {
		t.Fatalf("%d confirmation mails", len(confirm))
	}
	var link string
	for _, l := range linkRE.FindAllString(confirm[0].Text, -1) {
		if strings.Contains(l, "/subscribe/confirm") {
			link = l
		}
	}
	u, err := url.Parse(link)
	if err != nil || link == "" {
		t.Fatalf("no confirmation link in %q", confirm[0].Text)
	}
	resp, err = http.PostForm(srv.url+"/subscribe/confirm", url.Values{"token": {u.Query().Get("token")}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("confirm: HTTP %d", resp.StatusCode)
	}

	r.must("publish", r.write("2.md", noticeText("db-leak", "identified", "email, status", "We know how it happened.")))
	mails := r.sg.Messages("watcher@example.org")
	if len(mails) != 2 {
		t.Fatalf("subscriber got %d mails, want the confirmation and the update", len(mails))
	}
	m := mails[1]
	if m.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" || !strings.Contains(m.Headers["List-Unsubscribe"], "/unsubscribe") {
		t.Fatalf("update to a subscriber lacks one-click unsubscribe: %+v", m.Headers)
	}
	if got := r.sg.Count("customer1@example.com"); got != 2 {
		t.Fatalf("an affected customer got %d mails, want the two notices", got)
	}
	unsub := strings.Trim(m.Headers["List-Unsubscribe"], "<>")
	resp, err = http.Post(unsub, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click unsubscribe: HTTP %d", resp.StatusCode)
	}
	r.must("publish", r.write("3.md", noticeText("db-leak", "resolved", "email, status", "It is over.")))
	if n := len(r.sg.Messages("watcher@example.org")); n != 2 {
		t.Fatalf("an unsubscribed subscriber still got mail (%d)", n)
	}
}
