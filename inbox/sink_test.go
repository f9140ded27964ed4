package inbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/inbox"
)

// fakeStore is a Store whose IngestReply the test scripts.
type fakeStore struct {
	ingest func(r *breachcast.Reply) (bool, error)
	got    []*breachcast.Reply
}

func (f *fakeStore) IngestReply(_ context.Context, r *breachcast.Reply) (bool, error) {
	f.got = append(f.got, r)
	if f.ingest == nil {
		return true, nil
	}
	return f.ingest(r)
}

func TestTheHookHearsOfNewRepliesAndChangesButNotOfReplays(t *testing.T) {
	clk := newClock()
	db := openDB(t, clk)
	var heard []string
	sink := &inbox.Sink{Store: db, OnReply: func(r *breachcast.Reply) { heard = append(heard, string(r.Action)+" "+r.Text) }}
	at := clk.Now()
	reply := func(action breachcast.ReplyAction, text string, after time.Duration) *breachcast.Reply {
		return &breachcast.Reply{Channel: "facebook", ExternalID: "1_2", Action: action, Text: text, CreatedAt: at, EventTime: at.Add(after)}
	}
	for _, r := range []*breachcast.Reply{
		reply("", "is my card safe?", 0),
		reply(breachcast.ReplyAdded, "is my card safe?", 0), // replay
		reply(breachcast.ReplyEdited, "is my credit card safe?", time.Second),
		reply(breachcast.ReplyEdited, "is my card safe?!", 0), // an older edit, late
		reply(breachcast.ReplyRemoved, "", 2*time.Second),
		reply(breachcast.ReplyRemoved, "", 2*time.Second), // replay
	} {
		if err := sink.Ingest(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"add is my card safe?", "edited is my credit card safe?", "remove "}
	if strings.Join(heard, "|") != strings.Join(want, "|") {
		t.Fatalf("hook heard %q, want %q", heard, want)
	}
	got, err := db.Reply(context.Background(), "facebook", "1_2")
	if err != nil || got.Text != "is my credit card safe?" || got.Action != breachcast.ReplyRemoved {
		t.Fatalf("stored %+v, %v", got, err)
	}
}

func TestRepliesTheInboxCannotStoreAreRefused(t *testing.T) {
	fs := &fakeStore{}
	sink := &inbox.Sink{Store: fs, OnReply: func(*breachcast.Reply) { t.Error("hook called for a refused reply") }}
	for name, r := range map[string]*breachcast.Reply{
		"nothing":                 nil,
		"unknown channel":         {Channel: "myspace", ExternalID: "1"},
		"the status page channel": {Channel: "status", ExternalID: "1"},
		"no id":                   {Channel: "twitter"},
		"an id with a line break": {Channel: "twitter", ExternalID: "1\r\nX-Injected: yes"},
		"an id of a megabyte":     {Channel: "twitter", ExternalID: strings.Repeat("1", 1<<20)},
		"an unknown action":       {Channel: "twitter", ExternalID: "1", Action: "like"},
	} {
		err := sink.Ingest(context.Background(), r)
		if breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
			t.Errorf("%s: got %v, want an invalid-input error", name, err)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("%s: error of %d bytes repeats the input", name, len(err.Error()))
		}
	}
	if len(fs.got) != 0 {
		t.Errorf("%d refused replies reached the store", len(fs.got))
	}
}

func TestTheInboxBoundsWhatItStores(t *testing.T) {
	fs := &fakeStore{ingest: func(r *breachcast.Reply) (bool, error) {
		r.IncidentID, r.UpdateID = 7, 70
		return true, nil
	}}
	sink := &inbox.Sink{Store: fs}
	long := strings.Repeat("é", inbox.MaxTextBytes) // two bytes each
	in := &breachcast.Reply{Channel: "email", ExternalID: "<m@x>", Text: long, AuthorName: "Ann \xff",
		InReplyTo: strings.Repeat("<", inbox.MaxIDBytes+1), RootID: "<root@x>", Raw: make([]byte, inbox.MaxRawBytes+1)}
	if err := sink.Ingest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	got := fs.got[0]
	if len(got.Text) > inbox.MaxTextBytes || !utf8.ValidString(got.Text) || !strings.HasPrefix(long, got.Text) || len(got.Text) < inbox.MaxTextBytes-1 {
		t.Errorf("text of %d bytes, valid %v", len(got.Text), utf8.ValidString(got.Text))
	}
	if got.AuthorName != "Ann \uFFFD" {
		t.Errorf("author %q", got.AuthorName)
	}
	if got.InReplyTo != "" || got.RootID != "<root@x>" {
		t.Errorf("in reply to %.20q, root %q", got.InReplyTo, got.RootID)
	}
	if got.Raw != nil {
		t.Errorf("a raw payload of %d bytes was kept", len(got.Raw))
	}
	if got.Action != breachcast.ReplyAdded {
		t.Errorf("action %q, want add by default", got.Action)
	}
	// The caller's reply is untouched but for where it was filed.
	if in.Text != long || len(in.Raw) != inbox.MaxRawBytes+1 || in.Action != "" || in.IncidentID != 7 || in.UpdateID != 70 {
		t.Errorf("the caller's reply was changed: action %q, ids %d/%d", in.Action, in.IncidentID, in.UpdateID)
	}
}

func TestAStoreFailureIsReturnedAndNotAnnounced(t *testing.T) {
	boom := errors.New("database is locked")
	sink := &inbox.Sink{Store: &fakeStore{ingest: func(*breachcast.Reply) (bool, error) { return false, boom }},
		OnReply: func(*breachcast.Reply) { t.Error("hook called for a reply that was not stored") }}
	err := sink.Ingest(context.Background(), &breachcast.Reply{Channel: "twitter", ExternalID: "1"})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if err := (&inbox.Sink{}).Ingest(context.Background(), &breachcast.Reply{Channel: "twitter", ExternalID: "1"}); err == nil {
		t.Error("a sink without a store accepted a reply")
	}
}
