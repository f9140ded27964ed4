package inbox_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/inbox"
)

// scriptedPoller answers each Poll with the next scripted result and
// records the cursor it was given.
type scriptedPoller struct {
	mu      sync.Mutex
	results []pollResult
	cursors []string
	watches [][]channels.Watch
}

type pollResult struct {
	replies []*breachcast.Reply
	next    string
	err     error
}

func (p *scriptedPoller) Poll(_ context.Context, w []channels.Watch, cursor string) ([]*breachcast.Reply, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cursors = append(p.cursors, cursor)
	p.watches = append(p.watches, w)
	if len(p.results) == 0 {
		return nil, cursor, nil
	}
	r := p.results[0]
	p.results = p.results[1:]
	return r.replies, r.next, r.err
}

func (p *scriptedPoller) seenCursors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cursors...)
}

func tweet(id string) *breachcast.Reply {
	return &breachcast.Reply{Channel: "twitter", ExternalID: id, Text: "reply " + id, InReplyTo: "1", RootID: "1"}
}

func TestRunPollerRefusesAnIncompleteConfig(t *testing.T) {
	db := openDB(t, newClock())
	for name, cfg := range map[string]inbox.PollerConfig{
		"no channel": {Poller: &scriptedPoller{}, Store: db},
		"no poller":  {Channel: "twitter", Store: db},
		"no store":   {Channel: "twitter", Poller: &scriptedPoller{}},
	} {
		err := inbox.RunPoller(context.Background(), cfg)
		if breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestTheCursorIsStoredOnlyAfterEveryReplyIs(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	p := &scriptedPoller{results: []pollResult{
		{replies: []*breachcast.Reply{tweet("10"), tweet("11")}, next: "after-11"},
		{replies: []*breachcast.Reply{tweet("10"), tweet("11")}, next: "after-11"}, // the same page, read again
	}}
	failing := true
	sink := &countingSink{inner: &inbox.Sink{Store: db}, fail: func(r *breachcast.Reply) error {
		if failing && r.ExternalID == "11" {
			return errors.New("disk full")
		}
		return nil
	}}
	logs := &logBuffer{}
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: p, Store: db, Sink: sink, Now: clk.Now,
		Next: func(bool) time.Duration { return time.Minute }, Logger: newLogger(logs)})

	if d := r.round(); d != time.Minute {
		t.Errorf("waited %v after a failed round, want the longer of Next and the error backoff", d)
	}
	if c, _ := db.Cursor(context.Background(), "poll:twitter"); c != "" {
		t.Fatalf("cursor %q stored although reply 11 was not", c)
	}
	if !strings.Contains(logs.String(), "store twitter reply 11") || !strings.Contains(logs.String(), "disk full") {
		t.Errorf("the failure was not logged with its context:\n%s", logs)
	}
	failing = false
	r.next()
	r.round()
	if c, _ := db.Cursor(context.Background(), "poll:twitter"); c != "after-11" {
		t.Fatalf("cursor %q after the replies were stored", c)
	}
	if got := p.seenCursors(); !reflect.DeepEqual(got, []string{"", ""}) {
		t.Errorf("cursors given to Poll %q: the second round must read from where the first began", got)
	}
	for _, id := range []string{"10", "11"} {
		if _, err := db.Reply(context.Background(), "twitter", id); err != nil {
			t.Errorf("reply %s: %v", id, err)
		}
	}
	r.next()
	r.round()
	if got := p.seenCursors(); got[2] != "after-11" {
		t.Errorf("third poll from %q", got[2])
	}
}

func TestRepliesReadBeforeAPollFailedAreKeptWithTheirCursor(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	outage := &channels.Error{Channel: "twitter", Op: "GET /2/users/:id/mentions", Status: 503, Message: "Service Unavailable"}
	p := &scriptedPoller{results: []pollResult{{replies: []*breachcast.Reply{tweet("20")}, next: "after-20", err: outage}}}
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: p, Store: db, Now: clk.Now,
		Next: func(bool) time.Duration { return time.Second }, Logger: newLogger(&logBuffer{})})
	r.round()
	if _, err := db.Reply(context.Background(), "twitter", "20"); err != nil {
		t.Errorf("reply read before the failure: %v", err)
	}
	if c, _ := db.Cursor(context.Background(), "poll:twitter"); c != "after-20" {
		t.Errorf("cursor %q", c)
	}
}

func TestFailuresBackOffAndASuccessResetsTheBackoff(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	plain := errors.New("connection refused")
	p := &scriptedPoller{results: []pollResult{
		{err: plain},
		{err: plain},
		{err: plain},
		{err: &channels.Error{Channel: "twitter", Op: "search", Status: 429, RetryAfter: 20 * time.Minute}},
		{err: &channels.Error{Channel: "twitter", Op: "poll", Code: "invalid_cursor", Permanent: true}},
		{replies: []*breachcast.Reply{tweet("30")}, next: "after-30"},
		{err: plain},
		{next: "after-30"},
	}}
	var asked []bool
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: p, Store: db, Now: clk.Now, Logger: newLogger(&logBuffer{}),
		Next: func(found bool) time.Duration { asked = append(asked, found); return 10 * time.Second }})
	want := []time.Duration{
		30 * time.Second, time.Minute, 2 * time.Minute, // doubling
		20 * time.Minute, // X said when its window resets
		15 * time.Minute, // a permanent error waits the longest
		10 * time.Second, // success: Next decides
		30 * time.Second, // a new failure starts from the beginning
		10 * time.Second,
	}
	var got []time.Duration
	for i := range want {
		if i > 0 {
			r.next()
		}
		got = append(got, r.round())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("waits %v\nwant  %v", got, want)
	}
	if wantAsked := []bool{false, false, false, false, false, true, false, false}; !reflect.DeepEqual(asked, wantAsked) {
		t.Errorf("Next asked with %v, want %v", asked, wantAsked)
	}
}

func TestThePollerNeverSpins(t *testing.T) {
	db := openDB(t, newClock())
	r := startPoller(t, inbox.PollerConfig{Channel: "twitter", Poller: &scriptedPoller{}, Store: db,
		Next: func(bool) time.Duration { return 0 }, Logger: newLogger(&logBuffer{})})
	if d := r.round(); d != time.Second {
		t.Fatalf("waited %v after Next said 0", d)
	}
}

func TestAReplyThatCanNeverBeStoredDoesNotHoldTheCursor(t *testing.T) {
	db := openDB(t, newClock())
	bad := &breachcast.Reply{Channel: "twitter", ExternalID: "", Text: "no id"}
	p := &scriptedPoller{results: []pollResult{{replies: []*breachcast.Reply{bad, tweet("40")}, next: "after-40"}}}
	logs := &logBuffer{}
	n, err := inbox.PollOnce(context.Background(), inbox.PollerConfig{Channel: "twitter", Poller: p, Store: db, Logger: newLogger(logs)})
	if err != nil || n != 2 {
		t.Fatalf("PollOnce: %d, %v", n, err)
	}
	if c, _ := db.Cursor(context.Background(), "poll:twitter"); c != "after-40" {
		t.Errorf("cursor %q", c)
	}
	if _, err := db.Reply(context.Background(), "twitter", "40"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "unusable reply skipped") {
		t.Errorf("the skipped reply was not logged:\n%s", logs)
	}
}

func TestThePollerWatchesOpenAndRecentIncidents(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	x := newX(t, clk)
	old := publishOn(t, db, x.client(), "old", breachcast.Resolved, "It is over.")
	clk.Advance(8 * 24 * time.Hour)
	open := publishOn(t, db, x.client(), "open", breachcast.Investigating, "We are looking.")
	p := &scriptedPoller{}
	if _, err := inbox.PollOnce(context.Background(), inbox.PollerConfig{Channel: "twitter", Poller: p, Store: db, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	if len(p.watches) != 1 || len(p.watches[0]) != 1 || p.watches[0][0].UpdateID != open.ID {
		t.Fatalf("watched %+v; want only the open incident (not update %d)", p.watches, old.ID)
	}
	if _, err := inbox.PollOnce(context.Background(), inbox.PollerConfig{Channel: "twitter", Poller: p, Store: db, Now: clk.Now,
		Lookback: 9 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if len(p.watches[1]) != 2 {
		t.Fatalf("with a longer lookback watched %+v", p.watches[1])
	}
}
