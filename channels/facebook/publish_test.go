package facebook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/fbemu"
)

func TestNewRejectsIncompleteOrUnsafeConfig(t *testing.T) {
	good := Config{AppID: "1", AppSecret: "s", PageID: "42", PageToken: "t"}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no page id", func(c *Config) { c.PageID = "" }, "page id"},
		{"no token", func(c *Config) { c.PageToken = "" }, "page token"},
		{"no app secret", func(c *Config) { c.AppSecret = "" }, "app secret"},
		{"no app id", func(c *Config) { c.AppID = "" }, "app id"},
		{"page id with a path", func(c *Config) { c.PageID = "42/../me" }, "not a numeric Facebook Page id"},
		{"unknown mode", func(c *Config) { c.Mode = "thread" }, `mode "thread"`},
		{"unknown retract mode", func(c *Config) { c.RetractMode = "burn" }, `retract mode "burn"`},
		{"base url not http", func(c *Config) { c.BaseURL = "ftp://graph.example" }, "base url"},
		{"base url with credentials", func(c *Config) { c.BaseURL = "https://u:p@graph.example/" }, "base url"},
		{"base url with query", func(c *Config) { c.BaseURL = "https://graph.example/?access_token=x" }, "base url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: err = %v, want one naming %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Fatalf("New(good) = %v", err)
	}
}

func TestPublishFirstPostIsAPagePostWithTheStatusLink(t *testing.T) {
	e := newEnv(t, nil, nil)
	rcpt, err := e.client.Publish(context.Background(), &channels.Post{
		Key: "u1-facebook", Text: "We are investigating unauthorised access to customer accounts.",
		Link: "https://status.acme.test/incidents/db-leak",
	})
	if err != nil {
		t.Fatal(err)
	}
	posts := e.emu.Posts()
	if len(posts) != 1 {
		t.Fatalf("posts on the page = %d, want 1", len(posts))
	}
	p := posts[0]
	if rcpt.ExternalID != p.ID || rcpt.URL != "https://www.facebook.com/"+p.ID {
		t.Errorf("receipt = %+v, want id %s and its facebook.com URL", rcpt, p.ID)
	}
	if p.Message != "We are investigating unauthorised access to customer accounts." || p.Link != "https://status.acme.test/incidents/db-leak" {
		t.Errorf("post = %+v", p)
	}
	r := e.lastRequest(t)
	if r.Method != "POST" || r.Path != "/"+GraphVersion+"/"+testPageID+"/feed" {
		t.Errorf("request = %s %s, want POST /%s/%s/feed", r.Method, r.Path, GraphVersion, testPageID)
	}
	if r.Params.Get("appsecret_proof") == "" {
		t.Error("no appsecret_proof sent")
	}
	if len(r.Unknown) != 0 {
		t.Errorf("parameters unknown to Meta's spec: %v", r.Unknown)
	}
	e.assertNoSecretsLeaked(t)
}

func TestPublishLaterUpdateInPostModeIsANewPostNamingTheFirst(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	first, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Investigating.", Link: "https://status.acme.test/i/1"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(26 * time.Hour) // the update comes the next day
	second, err := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "We have identified the cause.", Link: "https://status.acme.test/i/1", Root: first.ExternalID})
	if err != nil {
		t.Fatal(err)
	}
	if second.ExternalID == first.ExternalID {
		t.Fatal("the update reused the first post")
	}
	posts := e.emu.Posts()
	if len(posts) != 2 {
		t.Fatalf("posts = %d, want 2", len(posts))
	}
	want := "Update to our notice of 24 Nov: https://www.facebook.com/" + first.ExternalID + "\n\nWe have identified the cause."
	if posts[1].Message != want {
		t.Errorf("update text =\n%q\nwant\n%q", posts[1].Message, want)
	}
	if posts[1].Link != "https://status.acme.test/i/1" {
		t.Errorf("update link = %q", posts[1].Link)
	}
	e.assertNoSecretsLeaked(t)
}

func TestPublishLaterUpdateInPostModeSurvivesAnUnreadableFirstPost(t *testing.T) {
	e := newEnv(t, nil, nil)
	_, err := e.client.Publish(context.Background(), &channels.Post{Key: "u2", Text: "Resolved.", Root: testPageID + "_999"})
	if err != nil {
		t.Fatal(err)
	}
	got := e.emu.Posts()[0].Message
	if !strings.HasPrefix(got, "Update to our earlier notice: https://www.facebook.com/"+testPageID+"_999\n\n") {
		t.Errorf("update text = %q", got)
	}
}

func TestPublishLaterUpdateInCommentModeIsACommentOnTheFirstPost(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Mode = ModeComment }, nil)
	ctx := context.Background()
	first, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Investigating.", Link: "https://status.acme.test/i/1"})
	if err != nil {
		t.Fatal(err)
	}
	upd, err := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "Identified.", Link: "https://status.acme.test/i/1", Root: first.ExternalID})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.emu.Posts()); n != 1 {
		t.Errorf("posts = %d, want only the first", n)
	}
	cs := e.emu.Comments(first.ExternalID)
	if len(cs) != 1 {
		t.Fatalf("comments under the first post = %d, want 1", len(cs))
	}
	c := cs[0]
	if c.ID != upd.ExternalID || c.AuthorID != testPageID || c.Message != "Identified.\n\nhttps://status.acme.test/i/1" {
		t.Errorf("comment = %+v, receipt = %+v", c, upd)
	}
	if upd.URL != "https://www.facebook.com/"+first.ExternalID+"?comment_id="+upd.ExternalID {
		t.Errorf("receipt URL = %q", upd.URL)
	}
	r := e.lastRequest(t)
	if r.Path != "/"+GraphVersion+"/"+first.ExternalID+"/comments" || len(r.Unknown) != 0 {
		t.Errorf("request = %s %s (unknown params %v)", r.Method, r.Path, r.Unknown)
	}
	e.assertNoSecretsLeaked(t)
}

func TestPublishRefusesBadPostsWithoutCallingFacebook(t *testing.T) {
	e := newEnv(t, nil, nil)
	tests := []struct {
		name string
		post *channels.Post
		want string
	}{
		{"nil", nil, "no post"},
		{"empty", &channels.Post{Key: "k"}, "no text and no link"},
		{"bad link", &channels.Post{Key: "k", Text: "x", Link: "javascript:alert(1)"}, "not an http(s) URL"},
		{"root with a path", &channels.Post{Key: "k", Text: "x", Root: "1_2/../../me"}, "not a Facebook post id"},
		{"too long", &channels.Post{Key: "k", Text: strings.Repeat("é", MaxPostChars+1)}, "Facebook allows 63206"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.Publish(context.Background(), tt.post)
			ce := asChannelError(t, err)
			if !ce.Permanent || ce.Code != CodeInvalid || !strings.Contains(ce.Error(), tt.want) {
				t.Errorf("err = %v (permanent %v, code %q), want a permanent invalid error naming %q", ce, ce.Permanent, ce.Code, tt.want)
			}
		})
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d requests reached Facebook", n)
	}
}

func TestPublishCommentTooLongIsRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Mode = ModeComment }, nil)
	_, err := e.client.Publish(context.Background(), &channels.Post{Key: "k", Text: strings.Repeat("a", MaxCommentChars+1), Root: "1_2"})
	if ce := asChannelError(t, err); !ce.Permanent || !strings.Contains(ce.Message, "Facebook allows 8000") {
		t.Errorf("err = %v", err)
	}
}

func TestPublishRetriedAfterALostAnswerReturnsThePostAlreadyMade(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	p := &channels.Post{Key: "u1", Text: "Investigating.", Link: "https://status.acme.test/i/1"}
	first, err := e.client.Publish(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// The engine did not see the answer and sends the same post again:
	// Graph answers 506 and Publish finds the post already there.
	again, err := e.client.Publish(ctx, p)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again.ExternalID != first.ExternalID {
		t.Errorf("retry receipt = %s, want the existing %s", again.ExternalID, first.ExternalID)
	}
	if n := len(e.emu.Posts()); n != 1 {
		t.Errorf("posts = %d, want 1", n)
	}
}

func TestPublishDuplicateThatCannotBeFoundIsPermanent(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.emu.FailNext(1, fbemu.GraphError{HTTPStatus: 400, Code: 506, Type: "OAuthException", Message: "(#506) Duplicate status message"})
	_, err := e.client.Publish(context.Background(), &channels.Post{Key: "u1", Text: "Investigating."})
	ce := asChannelError(t, err)
	if !ce.Permanent || ce.Code != CodeDuplicate || ce.Status != 400 {
		t.Errorf("err = %v (permanent %v, code %q, status %d)", ce, ce.Permanent, ce.Code, ce.Status)
	}
}

func TestRetractHidesByDefault(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	r, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Posted by mistake."})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.Retract(ctx, r.ExternalID); err != nil {
		t.Fatal(err)
	}
	p := e.emu.Posts()[0]
	if !p.Hidden || p.Deleted {
		t.Errorf("post = %+v, want hidden and not deleted", p)
	}
	last := e.lastRequest(t)
	if last.Method != "POST" || last.Params.Get("is_hidden") != "true" || len(last.Unknown) != 0 {
		t.Errorf("retract request = %s %v", last.Method, last.Params)
	}
	e.assertNoSecretsLeaked(t)
}

func TestRetractDeletesInDeleteMode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetractMode = RetractDelete }, nil)
	ctx := context.Background()
	r, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Posted by mistake."})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.Retract(ctx, r.ExternalID); err != nil {
		t.Fatal(err)
	}
	if p := e.emu.Posts()[0]; !p.Deleted {
		t.Errorf("post = %+v, want deleted", p)
	}
	if last := e.lastRequest(t); last.Method != "DELETE" {
		t.Errorf("retract request method = %s, want DELETE", last.Method)
	}
	// Retracting again (a retried job) succeeds: the post is gone either way.
	if err := e.client.Retract(ctx, r.ExternalID); err != nil {
		t.Errorf("second retract: %v", err)
	}
	if err := e.client.Retract(ctx, "me/feed"); err == nil || !strings.Contains(err.Error(), "not a Facebook post or comment id") {
		t.Errorf("retract of a path: %v", err)
	}
	e.assertNoSecretsLeaked(t)
}

func TestTransportRefusesATokenInTheURL(t *testing.T) {
	reached := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	defer srv.Close()
	tr := &transport{base: http.DefaultTransport, tokens: []string{testPageToken}}
	for _, u := range []string{
		srv.URL + "/v21.0/me?access_token=anything",
		srv.URL + "/v21.0/debug_token?input_token=anything",
		srv.URL + "/v21.0/me?x=" + testPageToken,
		srv.URL + "/v21.0/" + testPageToken,
	} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := tr.RoundTrip(req); err != errTokenInURL {
			t.Errorf("%s: err = %v, want errTokenInURL", u, err)
		}
	}
	if reached {
		t.Error("a request with a token in its URL reached the server")
	}
}
