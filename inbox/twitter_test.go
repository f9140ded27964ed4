package inbox_test

import (
	"context"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels/twitter"
	"github.com/breachcast/breachcast/emulators/xemu"
	"github.com/breachcast/breachcast/inbox"
	"github.com/breachcast/breachcast/internal/conformance"
)

// xEnv is the X emulator on loopback, checking every request against X's
// official spec, and the credentials of its clients.
type xEnv struct {
	t    *testing.T
	clk  *clock
	emu  *xemu.Server
	url  string
	logs *logBuffer
}

const (
	xConsumerKey    = "ck-inbox-1f2e"
	xConsumerSecret = "cs-SECRET-inbox-77"
	xAccessToken    = "1500000000000000001-at-inbox"
	xAccessSecret   = "as-SECRET-inbox-99"
)

func newX(t *testing.T, clk *clock) *xEnv {
	t.Helper()
	emu := xemu.New(xemu.Options{ConsumerKey: xConsumerKey, ConsumerSecret: xConsumerSecret, AccessToken: xAccessToken,
		AccessSecret: xAccessSecret, Validator: conformance.RequestValidator(t, conformance.XSpec), Now: clk.Now})
	u, err := emu.Start()
	if err != nil {
		t.Fatal(err)
	}
	x := &xEnv{t: t, clk: clk, emu: emu, url: u, logs: &logBuffer{}}
	t.Cleanup(func() {
		_ = emu.Close()
		for _, err := range emu.ValidationErrors() {
			t.Errorf("request does not conform to the X spec: %v", err)
		}
		for _, s := range []string{xConsumerSecret, xAccessSecret, xAccessToken} {
			if strings.Contains(x.logs.String(), s) {
				t.Errorf("a credential reached the logs")
			}
		}
	})
	return x
}

// client is a new X client, as after a restart.
func (x *xEnv) client() *twitter.Client {
	x.t.Helper()
	c, err := twitter.New(twitter.Config{BaseURL: x.url, ConsumerKey: xConsumerKey, ConsumerSecret: xConsumerSecret,
		AccessToken: xAccessToken, AccessSecret: xAccessSecret, Now: x.clk.Now, Logger: newLogger(x.logs)})
	if err != nil {
		x.t.Fatal(err)
	}
	return c
}

// reads returns the timeline requests (search and mentions) made so far.
func (x *xEnv) reads() []xemu.Request {
	var out []xemu.Request
	for _, r := range x.emu.Requests() {
		if r.Endpoint == xemu.EndpointSearch || r.Endpoint == xemu.EndpointMentions {
			out = append(out, r)
		}
	}
	return out
}

func storedIDs(t *testing.T, replies []*breachcast.Reply) []string {
	t.Helper()
	var out []string
	for _, r := range replies {
		out = append(out, r.ExternalID)
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestXRepliesAreStoredUnderTheirIncidentAndUpdate(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	x := newX(t, clk)
	pub := x.client()
	u1 := publishOn(t, db, pub, "db-leak", breachcast.Investigating, "1/2 We are investigating unauthorized access.", "2/2 More soon.")
	clk.Advance(time.Hour)
	u2 := publishOn(t, db, pub, "db-leak", breachcast.Identified, "Update: we found the cause.")
	first, second := postIDs(t, db, u1, "twitter"), postIDs(t, db, u2, "twitter")
	if p, _ := x.emu.Lookup(second[0]); p.InReplyToID != first[1] || p.ConversationID != first[0] {
		t.Fatalf("the update did not continue the thread: %+v", p)
	}

	clk.Advance(time.Minute)
	toFirst := x.emu.AddReply(first[0], "dana_kim", "Do I need to change my password?")
	toUpdate := x.emu.AddReply(second[0], "marco_rossi", "Thanks for the update")
	nested := x.emu.AddReply(toFirst, "priya_s", "same question")
	mention := x.emu.AddMention("tom_hughes", "were you breached?")

	var heard []string
	sink := &inbox.Sink{Store: db, OnReply: func(r *breachcast.Reply) { heard = append(heard, r.ExternalID) }, Logger: newLogger(x.logs)}
	c := x.client()
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: c, Store: db, Sink: sink, Next: c.NextPoll, Now: clk.Now,
		Logger: newLogger(x.logs)})
	if d := r.round(); d != twitter.DefaultPollMin {
		t.Errorf("asked to wait %v after a round with news, want %v", d, twitter.DefaultPollMin)
	}

	replies, err := db.Replies(context.Background(), "db-leak")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := storedIDs(t, replies), sorted(toFirst, toUpdate, nested); !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	byID := map[string]*breachcast.Reply{}
	for _, rp := range replies {
		byID[rp.ExternalID] = rp
	}
	if rp := byID[toFirst]; rp.UpdateID != u1.ID || rp.IncidentID != u1.IncidentID || rp.AuthorName != "Dana Kim (@dana_kim)" && rp.AuthorName != "dana_kim (@dana_kim)" ||
		!strings.HasSuffix(rp.Text, "Do I need to change my password?") || rp.InReplyTo != first[0] || rp.RootID != first[0] || len(rp.Raw) == 0 {
		t.Errorf("reply to the first notice: %+v", rp)
	}
	if rp := byID[toUpdate]; rp.UpdateID != u2.ID {
		t.Errorf("reply to the update filed under update %d, want %d", rp.UpdateID, u2.ID)
	}
	if rp := byID[nested]; rp.IncidentID != u1.IncidentID || rp.InReplyTo != toFirst {
		t.Errorf("reply to a reply: %+v", rp)
	}
	m, err := db.Reply(context.Background(), "twitter", mention)
	if err != nil || m.IncidentID != 0 {
		t.Errorf("a mention outside our threads: %+v, %v", m, err)
	}
	if len(heard) != 4 {
		t.Errorf("the hook heard %v, want the 4 new posts", heard)
	}

	// Nothing new: nothing re-read, nothing announced, a longer wait.
	heard = nil
	r.next()
	if d := r.round(); d != 2*twitter.DefaultPollMin {
		t.Errorf("asked to wait %v after a quiet round", d)
	}
	if len(heard) != 0 {
		t.Errorf("a quiet round announced %v", heard)
	}
}

func TestARestartNeitherMissesNorRereadsReplies(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	x := newX(t, clk)
	u := publishOn(t, db, x.client(), "db-leak", breachcast.Investigating, "We are investigating.")
	root := postIDs(t, db, u, "twitter")[0]
	a1 := x.emu.AddReply(root, "dana_kim", "first question")
	a2 := x.emu.AddMention("marco_rossi", "hello?")

	sink := &countingSink{inner: &inbox.Sink{Store: db}}
	c := x.client()
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: c, Store: db, Sink: sink, Next: c.NextPoll, Now: clk.Now,
		Logger: newLogger(x.logs)})
	r.round()
	r.stop()
	if got := sorted(sink.take()...); !reflect.DeepEqual(got, sorted(a1, a2)) {
		t.Fatalf("first run read %v", got)
	}
	readsBefore := len(x.reads())

	// While breachcast is down, more replies arrive.
	clk.Advance(10 * time.Minute)
	b1 := x.emu.AddReply(a1, "priya_s", "second question")
	b2 := x.emu.AddMention("jules_b", "still waiting")
	b3 := x.emu.AddReply(root, "sam_ortiz", "third question")

	c2 := x.client()
	r2 := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: c2, Store: db, Sink: sink, Next: c2.NextPoll, Now: clk.Now,
		Logger: newLogger(x.logs)})
	r2.round()
	if got := sorted(sink.take()...); !reflect.DeepEqual(got, sorted(b1, b2, b3)) {
		t.Fatalf("after the restart the poller read %v, want exactly the three new ones", got)
	}
	reads := x.reads()[readsBefore:]
	if len(reads) != 2 {
		t.Errorf("%d timeline requests after the restart, want one search and one mentions read", len(reads))
	}
	for _, rq := range reads {
		q, _ := url.ParseQuery(rq.Query)
		want := a1 // the newest post of the conversation read before
		if rq.Endpoint == xemu.EndpointMentions {
			want = a2
		}
		if q.Get("since_id") != want {
			t.Errorf("%s read from since_id %q, want %q: the stored cursor was not used", rq.Endpoint, q.Get("since_id"), want)
		}
	}
	r2.next()
	r2.round()
	if got := sink.take(); len(got) != 0 {
		t.Errorf("a third round re-read %v", got)
	}
	all, _ := db.Replies(context.Background(), "db-leak")
	if got := storedIDs(t, all); !reflect.DeepEqual(got, sorted(a1, b1, b3)) {
		t.Errorf("stored under the incident %v", got)
	}
}

func TestAnXOutageMidPollKeepsWhatWasReadAndMissesNothing(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	x := newX(t, clk)
	u := publishOn(t, db, x.client(), "db-leak", breachcast.Investigating, "We are investigating.")
	root := postIDs(t, db, u, "twitter")[0]
	a := x.emu.AddReply(root, "dana_kim", "question")
	m := x.emu.AddMention("marco_rossi", "hello?")
	x.emu.FailNextOn(xemu.EndpointMentions, 1, 503)

	sink := &countingSink{inner: &inbox.Sink{Store: db}}
	c := x.client()
	logs := &logBuffer{}
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: c, Store: db, Sink: sink, Next: c.NextPoll, Now: clk.Now,
		Logger: newLogger(logs)})
	if d := r.round(); d < inbox.DefaultErrorBackoff {
		t.Errorf("waited %v after an outage", d)
	}
	if got := sink.take(); !reflect.DeepEqual(got, []string{a}) {
		t.Fatalf("read %v before the outage, want the conversation reply", got)
	}
	if !strings.Contains(logs.String(), "inbox: poll round failed") || !strings.Contains(logs.String(), "503") {
		t.Errorf("the outage was not logged:\n%s", logs)
	}
	r.next()
	r.round()
	if got := sink.take(); !reflect.DeepEqual(got, []string{m}) {
		t.Fatalf("after the outage read %v, want only the mention", got)
	}
}
