package inbox_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels/facebook"
	"github.com/breachcast/breachcast/emulators/fbemu"
	"github.com/breachcast/breachcast/inbox"
	"github.com/breachcast/breachcast/internal/conformance"
	"github.com/breachcast/breachcast/store"
)

const (
	fbAppID     = "700000000000007"
	fbAppSecret = "fb-app-secret-SECRETSECRET"
	fbPageID    = "555000555"
	fbPageToken = "EAAINBOXPAGETOKENSECRET"
	fbVerify    = "verify-inbox"
)

var (
	specOnce sync.Once
	spec     *fbemu.Spec
	specErr  error
)

// fbEnv is the Graph emulator sending its signed webhooks to the real
// Facebook webhook handler, which feeds the real inbox on real SQLite.
type fbEnv struct {
	clk    *clock
	db     *store.DB
	emu    *fbemu.Server
	client *facebook.Client
	hook   *httptest.Server
	logs   *logBuffer

	mu    sync.Mutex
	heard []string
}

func newFacebook(t *testing.T) *fbEnv {
	t.Helper()
	if dir := conformance.OptionalPath(t, "facebook/graph_api_specs"); dir != "" {
		specOnce.Do(func() { spec, specErr = fbemu.LoadSpec(dir) })
		if specErr != nil {
			t.Fatal(specErr)
		}
	}
	e := &fbEnv{clk: newClock(), logs: &logBuffer{}}
	e.db = openDB(t, e.clk)
	e.emu = fbemu.New(fbemu.Options{AppID: fbAppID, AppSecret: fbAppSecret, PageID: fbPageID, PageName: "Acme Support",
		PageToken: fbPageToken, Spec: spec, Now: e.clk.Now})
	u, err := e.emu.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.emu.Close)
	e.client, err = facebook.New(facebook.Config{BaseURL: u, AppID: fbAppID, AppSecret: fbAppSecret, PageID: fbPageID,
		PageToken: fbPageToken, VerifyToken: fbVerify, Now: e.clk.Now, HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Logger: newLogger(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	sink := &inbox.Sink{Store: e.db, Logger: newLogger(e.logs), OnReply: func(r *breachcast.Reply) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.heard = append(e.heard, string(r.Action)+" "+r.ExternalID)
	}}
	e.hook = httptest.NewServer(e.client.Webhook(sink))
	t.Cleanup(e.hook.Close)
	e.emu.SetWebhookURL(e.hook.URL)
	t.Cleanup(func() {
		if w := e.logs.String(); strings.Contains(w, fbPageToken) || strings.Contains(w, fbAppSecret) {
			t.Error("a secret reached the logs")
		}
	})
	return e
}

// flush waits until the emulator's webhooks are delivered and checks they
// were accepted.
func (e *fbEnv) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.emu.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.emu.Deliveries() {
		if d.Status != http.StatusOK {
			t.Fatalf("webhook delivery answered %d (%s) after %d attempts", d.Status, d.Err, d.Attempts)
		}
	}
}

// commentDeliveries are the webhooks about comments the emulator sent (it
// also announces our own posts).
func (e *fbEnv) commentDeliveries() []fbemu.Delivery {
	var out []fbemu.Delivery
	for _, d := range e.emu.Deliveries() {
		if bytes.Contains(d.Body, []byte(`"item":"comment"`)) {
			out = append(out, d)
		}
	}
	return out
}

func (e *fbEnv) takeHeard() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.heard
	e.heard = nil
	return out
}

// post sends body to the webhook with a signature header ("" for none).
func (e *fbEnv) post(t *testing.T, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.hook.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *fbEnv) reply(t *testing.T, id string) *breachcast.Reply {
	t.Helper()
	r, err := e.db.Reply(context.Background(), "facebook", id)
	if err != nil {
		t.Fatalf("comment %s: %v", id, err)
	}
	return r
}

func (e *fbEnv) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.SQL().QueryRow(`SELECT count(*) FROM replies`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFacebookCommentsArriveByWebhookAndFollowEditsAndRemovals(t *testing.T) {
	e := newFacebook(t)
	u1 := publishOn(t, e.db, e.client, "db-leak", breachcast.Investigating, "We are investigating unauthorized access.")
	e.clk.Advance(time.Hour)
	u2 := publishOn(t, e.db, e.client, "db-leak", breachcast.Identified, "We found the cause.")
	p1, p2 := postIDs(t, e.db, u1, "facebook")[0], postIDs(t, e.db, u2, "facebook")[0]

	e.clk.Advance(time.Minute)
	c1, err := e.emu.AddComment(p1, "", "Dana Whitfield", "Is my card safe?")
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := e.emu.AddComment(p2, "", "Marco Ruiz", "Thanks for telling us.")
	c3, _ := e.emu.AddComment(p1, c1, "Priya Natarajan", "Same question — and my password?")
	e.flush(t)

	if got := e.reply(t, c1); got.UpdateID != u1.ID || got.IncidentID != u1.IncidentID || got.Text != "Is my card safe?" ||
		got.AuthorName != "Dana Whitfield" || got.RootID != p1 || got.Action != breachcast.ReplyAdded || len(got.Raw) == 0 {
		t.Errorf("comment on the first post: %+v", got)
	}
	if got := e.reply(t, c2); got.UpdateID != u2.ID {
		t.Errorf("comment on the update's post filed under update %d, want %d", got.UpdateID, u2.ID)
	}
	if got := e.reply(t, c3); got.UpdateID != u1.ID || got.InReplyTo != c1 || got.Text != "Same question — and my password?" {
		t.Errorf("reply to a comment: %+v", got)
	}
	if got := e.takeHeard(); len(got) != 3 {
		t.Errorf("hook heard %v", got)
	}

	e.clk.Advance(2 * time.Second)
	if err := e.emu.EditComment(c1, "Is my credit card safe?"); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Second)
	if err := e.emu.RemoveComment(c2); err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	if got := e.reply(t, c1); got.Text != "Is my credit card safe?" || got.Action != breachcast.ReplyEdited {
		t.Errorf("after the edit: %+v", got)
	}
	if got := e.reply(t, c2); got.Action != breachcast.ReplyRemoved || got.Text != "Thanks for telling us." {
		t.Errorf("after the removal (text kept for support): %+v", got)
	}
	if got := strings.Join(e.takeHeard(), ","); got != "edited "+c1+",remove "+c2 {
		t.Errorf("hook heard %s", got)
	}
	replies, err := e.db.Replies(context.Background(), "db-leak")
	if err != nil || len(replies) != 3 {
		t.Fatalf("replies of the incident: %d, %v", len(replies), err)
	}
}

func TestReplayedWebhooksChangeNothing(t *testing.T) {
	e := newFacebook(t)
	u := publishOn(t, e.db, e.client, "db-leak", breachcast.Investigating, "We are investigating.")
	post := postIDs(t, e.db, u, "facebook")[0]
	c, _ := e.emu.AddComment(post, "", "Dana Whitfield", "v1")
	e.clk.Advance(2 * time.Second)
	_ = e.emu.EditComment(c, "v2")
	e.clk.Advance(2 * time.Second)
	_ = e.emu.EditComment(c, "v3")
	e.flush(t)
	deliveries := e.commentDeliveries()
	if len(deliveries) != 3 {
		t.Fatalf("%d deliveries", len(deliveries))
	}
	e.takeHeard()
	before := *e.reply(t, c)
	if before.Text != "v3" {
		t.Fatalf("stored %q", before.Text)
	}

	// Facebook redelivers, in any order: the add, the older edit, all.
	for _, i := range []int{1, 0, 2, 1} {
		if st := e.post(t, deliveries[i].Body, deliveries[i].Signature); st != http.StatusOK {
			t.Fatalf("replay %d answered %d", i, st)
		}
	}
	after := *e.reply(t, c)
	if after.Text != "v3" || !after.EventTime.Equal(before.EventTime) || e.count(t) != 1 {
		t.Errorf("replays changed the stored copy: text %q, event time %v (was %v), %d rows", after.Text, after.EventTime, before.EventTime, e.count(t))
	}
	if got := e.takeHeard(); len(got) != 0 {
		t.Errorf("replays were announced: %v", got)
	}
}

func TestForgedWebhooksStoreNothing(t *testing.T) {
	e := newFacebook(t)
	u := publishOn(t, e.db, e.client, "db-leak", breachcast.Investigating, "We are investigating.")
	post := postIDs(t, e.db, u, "facebook")[0]
	c, _ := e.emu.AddComment(post, "", "Dana Whitfield", "Is my card safe?")
	e.flush(t)
	genuine := e.commentDeliveries()[0]
	e.takeHeard()

	newComment := bytes.ReplaceAll(genuine.Body, []byte(c), []byte(c+"9"))
	edited := bytes.Replace(genuine.Body, []byte(`"verb":"add"`), []byte(`"verb":"edited"`), 1)
	edited = bytes.Replace(edited, []byte("Is my card safe?"), []byte("Click http://evil.example to reset"), 1)
	if bytes.Equal(newComment, genuine.Body) || bytes.Equal(edited, genuine.Body) {
		t.Fatal("the forgeries are not different from the genuine body")
	}
	for name, f := range map[string]struct {
		body []byte
		sig  string
	}{
		"unsigned":                         {newComment, ""},
		"signed with another secret":       {newComment, fbemu.Sign("not-the-app-secret", newComment)},
		"a genuine signature, new body":    {newComment, genuine.Signature},
		"an edit under a stolen signature": {edited, genuine.Signature},
		"a malformed signature":            {newComment, "sha256=zz"},
		"the legacy sha1 header value":     {newComment, "sha1=" + strings.Repeat("0", 40)},
	} {
		if st := e.post(t, f.body, f.sig); st != http.StatusForbidden {
			t.Errorf("%s: answered %d, want 403", name, st)
		}
	}
	if n := e.count(t); n != 1 {
		t.Errorf("%d replies stored, want only the genuine one", n)
	}
	if got := e.reply(t, c); got.Text != "Is my card safe?" || got.Action != breachcast.ReplyAdded {
		t.Errorf("a forged edit changed the stored copy: %+v", got)
	}
	if got := e.takeHeard(); len(got) != 0 {
		t.Errorf("forgeries were announced: %v", got)
	}
}
