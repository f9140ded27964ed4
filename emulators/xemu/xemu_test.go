package xemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast/internal/conformance"
	"github.com/breachcast/breachcast/internal/testclock"
	"github.com/dghubble/oauth1"
)

// clock is the tests' settable clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }

// env is one running emulator and a correctly signing client for it.
type env struct {
	t     *testing.T
	s     *Server
	url   string
	clock *clock
	http  *http.Client
}

func start(t *testing.T, o Options) *env {
	t.Helper()
	c := newClock()
	if o.Now == nil {
		o.Now = c.Now
	}
	s := New(o)
	u, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &env{t: t, s: s, url: u, clock: c, http: signer(DefaultConsumerKey, DefaultConsumerSecret, DefaultAccessToken, DefaultAccessSecret, nil)}
}

func signer(ck, cs, at, as string, base *http.Client) *http.Client {
	ctx := context.Background()
	if base != nil {
		ctx = context.WithValue(ctx, oauth1.HTTPClient, base)
	}
	return oauth1.NewConfig(ck, cs).Client(ctx, oauth1.NewToken(at, as))
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (e *env) call(c *http.Client, method, path string, query url.Values, body any) answer {
	e.t.Helper()
	u := e.url + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (e *env) do(method, path string, query url.Values, body any) answer {
	e.t.Helper()
	return e.call(e.http, method, path, query, body)
}

func (e *env) tweet(text, parent string) string {
	e.t.Helper()
	body := map[string]any{"text": text}
	if parent != "" {
		body["reply"] = map[string]string{"in_reply_to_tweet_id": parent}
	}
	a := e.do("POST", "/2/tweets", nil, body)
	if a.status != http.StatusCreated {
		e.t.Fatalf("POST /2/tweets %q: %d %s", text, a.status, a.raw)
	}
	return a.body["data"].(map[string]any)["id"].(string)
}

func ids(a answer) []string {
	var out []string
	data, _ := a.body["data"].([]any)
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

func firstError(a answer) string {
	errs, _ := a.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	m := errs[0].(map[string]any)
	if s, ok := m["message"].(string); ok {
		return s
	}
	s, _ := m["detail"].(string)
	return s
}

func TestSignatureMatchesXDocumentationExample(t *testing.T) {
	// The worked example of X's "Creating a signature" page (with the old
	// v1 URL, as kept by dghubble/oauth1's reference tests).
	oauth := map[string]string{
		"oauth_consumer_key":     "xvz1evFS4wEEPTGEFPHBog",
		"oauth_nonce":            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
		"oauth_signature_method": "HMAC-SHA1",
		"oauth_timestamp":        "1318622958",
		"oauth_token":            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
		"oauth_version":          "1.0",
		"oauth_signature":        "ignored",
	}
	query := url.Values{"include_entities": {"true"}}
	form := url.Values{"status": {"Hello Ladies + Gentlemen, a signed OAuth request!"}}
	base := signatureBase("post", "HTTPS", "api.twitter.com:443", "/1/statuses/update.json", query, form, oauth)
	wantBase := "POST&https%3A%2F%2Fapi.twitter.com%2F1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"
	if base != wantBase {
		t.Fatalf("signature base\n got %s\nwant %s", base, wantBase)
	}
	const consumerSecret, tokenSecret = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
	if got, want := sign(base, consumerSecret, tokenSecret), "tnnArxj06cWHq44gCs1OSKk/jLY="; got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
	// The same request to the 1.1 URL, as the page shows it today.
	base11 := signatureBase("POST", "https", "api.twitter.com", "/1.1/statuses/update.json", query, form, oauth)
	if got, want := sign(base11, consumerSecret, tokenSecret), "hCtSmYh+iHYCEqBWrE7C7hYmtUk="; got != want {
		t.Errorf("1.1 signature = %s, want %s", got, want)
	}
}

func TestSignatureBaseSortsRepeatedParametersByValue(t *testing.T) {
	// RFC 5849 3.4.1.3.2: sorted by name, then by value.
	q := url.Values{"b": {"2", "1"}, "a": {"x y"}}
	got := signatureBase("GET", "http", "Example.COM:80", "/p", q, nil, map[string]string{"oauth_token": "t", "realm": "r"})
	want := "GET&http%3A%2F%2Fexample.com%2Fp&a%3Dx%2520y%26b%3D1%26b%3D2%26oauth_token%3Dt"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAuthenticationIsVerifiedLikeX(t *testing.T) {
	e := start(t, Options{})
	if a := e.do("GET", "/2/users/me", nil, nil); a.status != http.StatusOK {
		t.Fatalf("correctly signed request: %d %s", a.status, a.raw)
	}
	wrong := []struct {
		name string
		c    *http.Client
	}{
		{"wrong consumer secret", signer(DefaultConsumerKey, "nope", DefaultAccessToken, DefaultAccessSecret, nil)},
		{"wrong token secret", signer(DefaultConsumerKey, DefaultConsumerSecret, DefaultAccessToken, "nope", nil)},
		{"unknown consumer key", signer("other", DefaultConsumerSecret, DefaultAccessToken, DefaultAccessSecret, nil)},
		{"unknown token", signer(DefaultConsumerKey, DefaultConsumerSecret, "other", DefaultAccessSecret, nil)},
		{"no signature at all", http.DefaultClient},
	}
	for _, tt := range wrong {
		t.Run(tt.name, func(t *testing.T) {
			a := e.call(tt.c, "GET", "/2/users/me", nil, nil)
			if a.status != http.StatusUnauthorized || a.body["title"] != "Unauthorized" || a.body["status"] != float64(401) {
				t.Errorf("got %d %s, want X's 401 problem", a.status, a.raw)
			}
		})
	}
}

// tamper signs a request, then lets change alter it before it is sent.
type tamper struct {
	base   http.RoundTripper
	change func(*http.Request)
}

func (tt tamper) RoundTrip(r *http.Request) (*http.Response, error) {
	tt.change(r)
	return tt.base.RoundTrip(r)
}

func TestSignatureCoversQueryAndFormBody(t *testing.T) {
	e := start(t, Options{})
	tampered := func(change func(*http.Request)) *http.Client {
		return signer(DefaultConsumerKey, DefaultConsumerSecret, DefaultAccessToken, DefaultAccessSecret,
			&http.Client{Transport: tamper{http.DefaultTransport, change}})
	}

	t.Run("query changed after signing", func(t *testing.T) {
		c := tampered(func(r *http.Request) { r.URL.RawQuery = "query=conversation_id%3A2" })
		a := e.call(c, "GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:1"}}, nil)
		if a.status != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", a.status)
		}
	})
	t.Run("form body changed after signing", func(t *testing.T) {
		c := tampered(func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("text=evil"))
			r.ContentLength = 9
		})
		req, _ := http.NewRequest("POST", e.url+"/2/tweets", strings.NewReader("text=good"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", resp.StatusCode)
		}
	})
	t.Run("form body intact is authenticated (then refused as not JSON)", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.url+"/2/tweets", strings.NewReader("text=good"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("got %d, want 400", resp.StatusCode)
		}
	})
	t.Run("JSON body is not signed", func(t *testing.T) {
		c := tampered(func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"text":"changed"}`))
			r.ContentLength = 18
		})
		if a := e.call(c, "POST", "/2/tweets", nil, map[string]string{"text": "original"}); a.status != http.StatusCreated {
			t.Errorf("got %d %s, want 201", a.status, a.raw)
		}
	})
}

func TestReplayedNonceAndStaleTimestampAreRefused(t *testing.T) {
	e := start(t, Options{})
	var saved http.Header
	c := signer(DefaultConsumerKey, DefaultConsumerSecret, DefaultAccessToken, DefaultAccessSecret,
		&http.Client{Transport: tamper{http.DefaultTransport, func(r *http.Request) { saved = r.Header.Clone() }}})
	if a := e.call(c, "GET", "/2/users/me", nil, nil); a.status != http.StatusOK {
		t.Fatalf("first use: %d", a.status)
	}
	replay, _ := http.NewRequest("GET", e.url+"/2/users/me", nil)
	replay.Header = saved
	resp, err := http.DefaultClient.Do(replay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed request: %d, want 401", resp.StatusCode)
	}

	// A request signed an hour ago (a captured one, or a badly set clock).
	params, err := parseAuthorization(saved.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	params["oauth_timestamp"] = strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	params["oauth_nonce"] = "fresh"
	delete(params, "oauth_signature")
	u, _ := url.Parse(e.url + "/2/users/me")
	params["oauth_signature"] = sign(signatureBase("GET", "http", u.Host, u.Path, nil, nil, params), DefaultConsumerSecret, DefaultAccessSecret)
	var parts []string
	for k, v := range params {
		parts = append(parts, fmt.Sprintf(`%s="%s"`, percentEncode(k), percentEncode(v)))
	}
	stale, _ := http.NewRequest("GET", e.url+"/2/users/me", nil)
	stale.Header.Set("Authorization", "OAuth "+strings.Join(parts, ", "))
	resp, err = http.DefaultClient.Do(stale)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("stale timestamp: %d, want 401", resp.StatusCode)
	}
}

func TestCreateAnswersLikeTheRecordedExchange(t *testing.T) {
	e := start(t, Options{})
	var cassette struct {
		Exchanges []struct {
			Response struct {
				Status  int                 `json:"status"`
				Headers map[string][]string `json:"headers"`
				Body    map[string]any      `json:"body"`
			} `json:"response"`
		} `json:"exchanges"`
	}
	raw, err := os.ReadFile(conformance.Path(t, "twitter/tweepy_cassettes_decoded/test_client_create_and_delete_tweet.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cassette); err != nil {
		t.Fatal(err)
	}
	want := cassette.Exchanges[0].Response

	a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "Test Tweet"})
	if a.status != want.Status {
		t.Fatalf("status %d, want %d", a.status, want.Status)
	}
	for h := range want.Headers {
		if h == "api-version" {
			continue
		}
		if a.header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	data := a.body["data"].(map[string]any)
	for k := range want.Body["data"].(map[string]any) {
		if _, ok := data[k]; !ok {
			t.Errorf("data.%s missing", k)
		}
	}
	id := data["id"].(string)
	if len(id) != 19 {
		t.Errorf("id %q is not a 19-digit snowflake", id)
	}
	if got, _ := IDTime(id); !got.Equal(e.clock.Now()) {
		t.Errorf("id time %v, want the emulated now %v", got, e.clock.Now())
	}
	if a.header.Get("Location") != e.url+"/2/tweets/"+id {
		t.Errorf("Location = %q", a.header.Get("Location"))
	}
	if a.header.Get("x-rate-limit-limit") != "200" || a.header.Get("x-rate-limit-remaining") != "199" {
		t.Errorf("rate limit headers %v", a.header)
	}
}

func TestIDsIncreaseAndThreadsShareAConversation(t *testing.T) {
	e := start(t, Options{})
	root := e.tweet("1/3 We are investigating", "")
	second := e.tweet("2/3 What we know", root)
	third := e.tweet("3/3 What to do", second)
	if !(root < second && second < third) || len(root) != len(third) {
		t.Errorf("ids not increasing: %s %s %s", root, second, third)
	}
	posts := e.s.Posts()
	if len(posts) != 3 {
		t.Fatalf("%d posts", len(posts))
	}
	for _, p := range posts {
		if p.ConversationID != root || p.AuthorID != DefaultUserID {
			t.Errorf("post %s: conversation %s author %s", p.ID, p.ConversationID, p.AuthorID)
		}
	}
	if posts[2].InReplyToID != second || posts[2].InReplyToUserID != DefaultUserID {
		t.Errorf("third post replies to %s/%s", posts[2].InReplyToID, posts[2].InReplyToUserID)
	}
}

func TestTextLongerThan280WeightedCharactersIsRefused(t *testing.T) {
	e := start(t, Options{})
	tests := []struct {
		name string
		text string
		ok   bool
	}{
		{"280 latin", strings.Repeat("a", 280), true},
		{"281 latin", strings.Repeat("b", 281), false},
		{"140 CJK count double", strings.Repeat("漢", 140), true},
		{"141 CJK", strings.Repeat("字", 141), false},
		{"a long link counts 23", strings.Repeat("c", 256) + " https://status.example.com/incidents/very-long-slug-that-goes-on-and-on", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do("POST", "/2/tweets", nil, map[string]string{"text": tt.text})
			if tt.ok && a.status != http.StatusCreated {
				t.Fatalf("got %d %s, want 201", a.status, a.raw)
			}
			if !tt.ok {
				if a.status != http.StatusBadRequest || !strings.Contains(firstError(a), "Your Tweet text is too long") {
					t.Fatalf("got %d %s, want X's 400 too long", a.status, a.raw)
				}
			}
		})
	}
}

func TestWeightedLength(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"hello", 5},
		{"café", 4},
		{"日本", 4},
		{"‘quoted’ — dash…", 17}, // the ellipsis U+2026 is outside the weight-1 ranges
		{"👍", 2},
		{"👍🏽", 2},
		{"👨‍👩‍👧‍👦", 2},
		{"🇫🇷", 2},
		{"❤️", 2},
		{"1️⃣", 2},
		{"see https://example.com/a/very/long/path/indeed?x=1", 4 + 23},
	}
	for _, tt := range tests {
		if got := WeightedLength(tt.text); got != tt.want {
			t.Errorf("WeightedLength(%q) = %d, want %d", tt.text, got, tt.want)
		}
	}
}

func TestDuplicateContentIsRefusedForADay(t *testing.T) {
	e := start(t, Options{})
	e.tweet("We are investigating a security incident.", "")
	a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "We are investigating a security incident."})
	if a.status != http.StatusForbidden || a.body["detail"] != "You are not allowed to create a Tweet with duplicate content." ||
		a.body["title"] != "Forbidden" || a.body["type"] != "about:blank" {
		t.Fatalf("got %d %s, want X's duplicate content 403", a.status, a.raw)
	}
	e.clock.Advance(25 * time.Hour)
	e.tweet("We are investigating a security incident.", "")
}

func TestReplyMustAnswerAnExistingPost(t *testing.T) {
	e := start(t, Options{})
	a := e.do("POST", "/2/tweets", nil, map[string]any{"text": "orphan", "reply": map[string]string{"in_reply_to_tweet_id": "1234567890123456789"}})
	if a.status != http.StatusForbidden || !strings.Contains(a.body["detail"].(string), "deleted or not visible") {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	if len(e.s.Posts()) != 0 {
		t.Error("a post was stored")
	}
}

func TestDeleteRemovesOnlyOurOwnPosts(t *testing.T) {
	e := start(t, Options{})
	id := e.tweet("to be deleted", "")
	customer := e.s.AddReply(id, "dana_kim", "why?")

	a := e.do("DELETE", "/2/tweets/"+id, nil, nil)
	if a.status != http.StatusOK || a.body["data"].(map[string]any)["deleted"] != true {
		t.Fatalf("delete: %d %s", a.status, a.raw)
	}
	if p, _ := e.s.Lookup(id); !p.Deleted {
		t.Error("post not marked deleted")
	}
	if a := e.do("DELETE", "/2/tweets/"+id, nil, nil); a.status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", a.status)
	}
	if a := e.do("DELETE", "/2/tweets/"+customer, nil, nil); a.status != http.StatusForbidden {
		t.Errorf("deleting a customer's post: %d, want 403", a.status)
	}
	if a := e.do("GET", "/2/tweets/"+id, nil, nil); a.status != http.StatusOK || a.body["data"] != nil || !strings.Contains(firstError(a), "Could not find tweet") {
		t.Errorf("GET deleted post: %d %s", a.status, a.raw)
	}
}

var replyFields = url.Values{
	"tweet.fields": {"author_id,conversation_id,created_at,in_reply_to_user_id,referenced_tweets"},
	"expansions":   {"author_id"},
	"user.fields":  {"name,username"},
}

func withFields(v url.Values) url.Values {
	for k, vs := range replyFields {
		v[k] = vs
	}
	return v
}

func TestSearchFindsAConversationWithFieldsAndAuthors(t *testing.T) {
	e := start(t, Options{})
	root := e.tweet("1/2 incident", "")
	second := e.tweet("2/2 incident", root)
	e.clock.Advance(time.Minute)
	e.s.AddUser("dana_kim", "Dana Kim")
	r1 := e.s.AddReply(root, "dana_kim", "Do I need to change my password? <now> & then")
	r2 := e.s.AddReply(second, "marco_rossi", "Which data?")
	other := e.tweet("unrelated", "")

	a := e.do("GET", "/2/tweets/search/recent", withFields(url.Values{"query": {"conversation_id:" + root}}), nil)
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if got, want := ids(a), []string{r2, r1, second, root}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ids %v, want newest first %v (not %s)", got, want, other)
	}
	var reply map[string]any
	for _, d := range a.body["data"].([]any) {
		if d.(map[string]any)["id"] == r1 {
			reply = d.(map[string]any)
		}
	}
	if reply["text"] != "@acme_status Do I need to change my password? &lt;now&gt; &amp; then" {
		t.Errorf("text %q: want X's escaping and the reply mention", reply["text"])
	}
	if reply["conversation_id"] != root || reply["in_reply_to_user_id"] != DefaultUserID || reply["created_at"] != "2026-03-02T09:01:00.000Z" {
		t.Errorf("fields %v", reply)
	}
	refs := reply["referenced_tweets"].([]any)
	if ref := refs[0].(map[string]any); ref["type"] != "replied_to" || ref["id"] != root {
		t.Errorf("referenced_tweets %v", refs)
	}
	users := a.body["includes"].(map[string]any)["users"].([]any)
	names := map[string]string{}
	for _, u := range users {
		m := u.(map[string]any)
		names[m["username"].(string)] = m["name"].(string)
	}
	if names["dana_kim"] != "Dana Kim" || names["marco_rossi"] != "marco_rossi" || names["acme_status"] != "Acme Status" {
		t.Errorf("includes.users %v", users)
	}
	meta := a.body["meta"].(map[string]any)
	if meta["result_count"] != float64(4) || meta["newest_id"] != r2 || meta["oldest_id"] != root || meta["next_token"] != nil {
		t.Errorf("meta %v", meta)
	}

	since := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:" + root}, "since_id": {second}}, nil)
	if got := ids(since); fmt.Sprint(got) != fmt.Sprint([]string{r2, r1}) {
		t.Errorf("since_id: %v", got)
	}
	if _, ok := since.body["data"].([]any)[0].(map[string]any)["author_id"]; ok {
		t.Error("author_id sent without being asked for")
	}
	none := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:" + root}, "since_id": {r2}}, nil)
	if none.body["data"] != nil || none.body["meta"].(map[string]any)["result_count"] != float64(0) {
		t.Errorf("nothing new: %s", none.raw)
	}
}

func TestSearchPagesWithNextToken(t *testing.T) {
	e := start(t, Options{})
	root := e.tweet("root", "")
	var want []string
	for i := range 24 {
		want = append([]string{e.s.AddReply(root, fmt.Sprintf("c%d", i), "reply")}, want...)
	}
	want = append(want, root)

	var got []string
	token := ""
	pages := 0
	for {
		q := url.Values{"query": {"conversation_id:" + root}, "max_results": {"10"}}
		if token != "" {
			q.Set("next_token", token)
		}
		a := e.do("GET", "/2/tweets/search/recent", q, nil)
		if a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		pages++
		got = append(got, ids(a)...)
		token, _ = a.body["meta"].(map[string]any)["next_token"].(string)
		if token == "" {
			break
		}
	}
	if pages != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%d pages, ids %v\nwant %v", pages, got, want)
	}
	if a := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"x"}, "next_token": {"!!"}}, nil); a.status != http.StatusBadRequest {
		t.Errorf("bad token: %d", a.status)
	}
}

func TestSearchRefusesMaxResultsOutside10To100(t *testing.T) {
	e := start(t, Options{})
	for _, v := range []string{"5", "9", "101", "ten"} {
		a := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:1"}, "max_results": {v}}, nil)
		want := fmt.Sprintf("The `max_results` query parameter value [%s] is not between 10 and 100", v)
		if a.status != http.StatusBadRequest || firstError(a) != want || a.body["title"] != "Invalid Request" {
			t.Errorf("max_results=%s: %d %s", v, a.status, a.raw)
		}
	}
	for _, v := range []string{"10", "100"} {
		if a := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:1"}, "max_results": {v}}, nil); a.status != http.StatusOK {
			t.Errorf("max_results=%s: %d", v, a.status)
		}
	}
}

func TestSearchReachesBackSevenDays(t *testing.T) {
	e := start(t, Options{})
	old := e.tweet("old", "")
	e.clock.Advance(8 * 24 * time.Hour)
	e.s.AddReply(old, "late_reader", "still there?")
	a := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:" + old}}, nil)
	if got := ids(a); len(got) != 1 || got[0] == old {
		t.Errorf("ids %v: want only the new reply", got)
	}
	a = e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"conversation_id:" + old}, "since_id": {old}}, nil)
	if a.status != http.StatusBadRequest || !strings.Contains(firstError(a), "'since_id' must be a tweet id created after") {
		t.Errorf("since_id older than 7 days: %d %s", a.status, a.raw)
	}
	if a := e.do("GET", "/2/tweets/search/recent", url.Values{"query": {"bogus:1"}}, nil); a.status != http.StatusBadRequest {
		t.Errorf("unknown operator: %d", a.status)
	}
}

func TestMentionsListRepliesAndMentionsOfAUser(t *testing.T) {
	e := start(t, Options{})
	root := e.tweet("notice", "")
	reply := e.s.AddReply(root, "dana_kim", "question")
	mention := e.s.AddMention("marco_rossi", "are you hacked?")
	e.s.AddMention("jules_b", "hey @ACME_STATUS what happened")
	e.s.AddReply(reply, "priya_s", "same question") // answers Dana, mentions only her

	a := e.do("GET", "/2/users/"+DefaultUserID+"/mentions", withFields(url.Values{"max_results": {"5"}}), nil)
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	got := ids(a)
	if len(got) != 3 || got[1] != mention || got[2] != reply {
		t.Errorf("mentions %v", got)
	}
	if p, _ := e.s.Lookup(mention); p.Text != "@acme_status are you hacked?" || p.ConversationID != mention {
		t.Errorf("mention post %+v", p)
	}
	if a := e.do("GET", "/2/users/"+DefaultUserID+"/mentions", url.Values{"max_results": {"4"}}, nil); a.status != http.StatusBadRequest ||
		firstError(a) != "The `max_results` query parameter value [4] is not between 5 and 100" {
		t.Errorf("max_results=4: %d %s", a.status, a.raw)
	}
	if a := e.do("GET", "/2/users/42/mentions", nil, nil); a.status != http.StatusOK || !strings.Contains(firstError(a), "Could not find user") {
		t.Errorf("unknown user: %d %s", a.status, a.raw)
	}
}

func TestUsersMeNamesTheAccountAndAccessLevel(t *testing.T) {
	e := start(t, Options{UserID: "42", Username: "breachco", Name: "Breach Co"})
	a := e.do("GET", "/2/users/me", nil, nil)
	d := a.body["data"].(map[string]any)
	if a.status != http.StatusOK || d["id"] != "42" || d["username"] != "breachco" || d["name"] != "Breach Co" {
		t.Errorf("%d %s", a.status, a.raw)
	}
	if a.header.Get("x-access-level") != "read-write" {
		t.Errorf("x-access-level %q", a.header.Get("x-access-level"))
	}
	if a.header.Get("x-rate-limit-limit") != "75" {
		t.Errorf("x-rate-limit-limit %q", a.header.Get("x-rate-limit-limit"))
	}
}

func TestRateLimitWindows(t *testing.T) {
	e := start(t, Options{Limits: map[string]Limit{EndpointMe: {Requests: 2, Window: 15 * time.Minute}}})
	reset := strconv.FormatInt(e.clock.Now().Add(15*time.Minute).Unix(), 10)
	for i, want := range []string{"1", "0"} {
		a := e.do("GET", "/2/users/me", nil, nil)
		if a.status != http.StatusOK || a.header.Get("x-rate-limit-remaining") != want || a.header.Get("x-rate-limit-reset") != reset {
			t.Fatalf("request %d: %d remaining %s reset %s", i, a.status, a.header.Get("x-rate-limit-remaining"), a.header.Get("x-rate-limit-reset"))
		}
	}
	a := e.do("GET", "/2/users/me", nil, nil)
	if a.status != http.StatusTooManyRequests || a.body["title"] != "Too Many Requests" || a.header.Get("x-rate-limit-remaining") != "0" || a.header.Get("x-rate-limit-reset") != reset {
		t.Fatalf("over the limit: %d %s %v", a.status, a.raw, a.header)
	}
	if a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "other endpoints have their own window"}); a.status != http.StatusCreated {
		t.Errorf("POST: %d", a.status)
	}
	e.clock.Advance(15 * time.Minute)
	if a := e.do("GET", "/2/users/me", nil, nil); a.status != http.StatusOK || a.header.Get("x-rate-limit-remaining") != "1" {
		t.Errorf("new window: %d remaining %s", a.status, a.header.Get("x-rate-limit-remaining"))
	}
}

func TestForcedRateLimitHoldsUntilItsReset(t *testing.T) {
	e := start(t, Options{})
	reset := e.clock.Now().Add(time.Hour)
	e.s.ForceRateLimit(EndpointCreate, reset)
	for range 2 {
		a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "blocked"})
		if a.status != http.StatusTooManyRequests || a.header.Get("x-rate-limit-reset") != strconv.FormatInt(reset.Unix(), 10) {
			t.Fatalf("%d reset %s", a.status, a.header.Get("x-rate-limit-reset"))
		}
		e.clock.Advance(20 * time.Minute)
	}
	e.clock.Advance(20 * time.Minute)
	if a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "allowed again"}); a.status != http.StatusCreated {
		t.Errorf("after reset: %d %s", a.status, a.raw)
	}
	if len(e.s.Posts()) != 1 {
		t.Errorf("%d posts, want 1", len(e.s.Posts()))
	}
}

func TestFaults(t *testing.T) {
	e := start(t, Options{})

	e.s.FailNextOn(EndpointCreate, 2, http.StatusServiceUnavailable)
	if a := e.do("GET", "/2/users/me", nil, nil); a.status != http.StatusOK {
		t.Errorf("other endpoint hit by the fault: %d", a.status)
	}
	for range 2 {
		if a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "x"}); a.status != http.StatusServiceUnavailable || a.body["title"] != "Service Unavailable" {
			t.Errorf("fault: %d %s", a.status, a.raw)
		}
	}
	e.tweet("x", "")

	e.s.GarbageNext("", 1)
	if a := e.do("GET", "/2/users/me", nil, nil); a.status != http.StatusOK || json.Valid(a.raw) {
		t.Errorf("garbage: %d %q", a.status, a.raw)
	}

	e.s.SetAccessLevel(AccessRead)
	a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "read only"})
	if a.status != http.StatusForbidden || !strings.HasSuffix(a.body["type"].(string), "/oauth1-permissions") || a.header.Get("x-access-level") != "read" {
		t.Errorf("read-only write: %d %s", a.status, a.raw)
	}
	if a := e.do("GET", "/2/users/me", nil, nil); a.status != http.StatusOK {
		t.Errorf("read-only read: %d", a.status)
	}

	e.s.SetTokenExpired(true)
	if a := e.do("GET", "/2/users/me", nil, nil); a.status != http.StatusUnauthorized {
		t.Errorf("expired token: %d", a.status)
	}
	e.s.ClearFaults()
	if a := e.do("POST", "/2/tweets", nil, map[string]string{"text": "back to normal"}); a.status != http.StatusCreated {
		t.Errorf("after ClearFaults: %d", a.status)
	}

	e.s.SetLatency(time.Minute)
	slow := signer(DefaultConsumerKey, DefaultConsumerSecret, DefaultAccessToken, DefaultAccessSecret, nil)
	slow.Timeout = 50 * time.Millisecond
	if _, err := slow.Get(e.url + "/2/users/me"); err == nil || !isTimeout(err) {
		t.Errorf("latency: got %v, want a client timeout", err)
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func TestValidatorFailuresAreAnswered400AndRecorded(t *testing.T) {
	v := conformance.MustLoad(t, conformance.XSpec)
	e := start(t, Options{Validator: v.ValidateRequest})
	root := e.tweet("valid", "")
	if a := e.do("GET", "/2/tweets/search/recent", withFields(url.Values{"query": {"conversation_id:" + root}, "max_results": {"10"}}), nil); a.status != http.StatusOK {
		t.Fatalf("valid search: %d %s", a.status, a.raw)
	}
	if errs := e.s.ValidationErrors(); len(errs) != 0 {
		t.Fatalf("valid requests failed validation: %v", errs)
	}
	a := e.do("POST", "/2/tweets", nil, map[string]any{"text": "bad", "reply": map[string]string{"in_reply_to_tweet_id": "not-a-number"}})
	if a.status != http.StatusBadRequest {
		t.Errorf("invalid body: %d", a.status)
	}
	if errs := e.s.ValidationErrors(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "in_reply_to_tweet_id") {
		t.Errorf("recorded %v", errs)
	}
}

func TestAddReplyAndAddMention(t *testing.T) {
	e := start(t, Options{})
	root := e.tweet("root", "")
	r := e.s.AddReply(root, "@dana_kim", "Do I need to change my password?")
	rr := e.s.AddReply(r, "marco_rossi", "@dana_kim same here")
	p, _ := e.s.Lookup(rr)
	if p.ConversationID != root || p.InReplyToID != r || p.Text != "@dana_kim same here" {
		t.Errorf("reply to a reply: %+v", p)
	}
	if e.s.AddReply("999", "dana_kim", "x") != "" || e.s.AddReply(root, "not a name!", "x") != "" || e.s.AddMention("", "x") != "" {
		t.Error("invalid AddReply/AddMention gave an id")
	}
	if e.s.AddUser("dana_kim", "") != e.s.AddUser("DANA_KIM", "Dana") {
		t.Error("usernames are case-insensitive")
	}
}

func TestAutoReplyAnswersOurPosts(t *testing.T) {
	e := start(t, Options{AutoReply: true, AutoReplyDelay: 5 * time.Millisecond})
	root := e.tweet("We are investigating a security incident.", "")
	second := e.tweet("What you should do now.", root)
	deadline := time.After(5 * time.Second)
	for {
		changed := e.s.Changed()
		if len(e.s.Posts()) >= 5 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("only %d posts after 5 s", len(e.s.Posts()))
		}
	}
	answered := map[string]int{}
	for _, p := range e.s.Posts() {
		if p.AuthorID == DefaultUserID {
			continue
		}
		if p.ConversationID != root || !strings.HasPrefix(p.Text, "@acme_status ") {
			t.Errorf("auto reply %+v", p)
		}
		answered[p.InReplyToID]++
	}
	if answered[root] != 2 || answered[second] != 1 {
		t.Errorf("answers per post %v", answered)
	}
	e.s.mu.Lock()
	pending := len(e.s.timers)
	e.s.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d fired timers still held", pending)
	}

	// Closing cancels what is still scheduled.
	e.tweet("One more update.", second)
	_ = e.s.Close()
	e.s.mu.Lock()
	pending = len(e.s.timers)
	e.s.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d timers left after Close", pending)
	}
}

func TestUnknownRouteIs404(t *testing.T) {
	e := start(t, Options{})
	if a := e.do("GET", "/1.1/statuses/update.json", nil, nil); a.status != http.StatusNotFound {
		t.Errorf("%d", a.status)
	}
}

func TestGetTweetWithFieldsAndExpansions(t *testing.T) {
	e := start(t, Options{})
	root := e.tweet("root", "")
	reply := e.s.AddReply(root, "dana_kim", "a question")
	a := e.do("GET", "/2/tweets/"+reply, url.Values{"tweet.fields": {"author_id,conversation_id"}, "expansions": {"author_id,in_reply_to_user_id"}}, nil)
	d, _ := a.body["data"].(map[string]any)
	if a.status != http.StatusOK || d["id"] != reply || d["conversation_id"] != root || d["created_at"] != nil {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if users := a.body["includes"].(map[string]any)["users"].([]any); len(users) != 2 {
		t.Errorf("includes.users %v: want the author and the user answered", users)
	}
	if a := e.do("GET", "/2/tweets/"+reply, url.Values{"tweet.fields": {"author_id,mood"}}, nil); a.status != http.StatusBadRequest ||
		!strings.HasPrefix(firstError(a), "The `tweet.fields` query parameter value [mood] is not one of [") {
		t.Errorf("unknown field: %d %s", a.status, a.raw)
	}
}

func TestOversizedBodyIsRefused(t *testing.T) {
	e := start(t, Options{})
	a := e.do("POST", "/2/tweets", nil, map[string]string{"text": strings.Repeat("x", MaxBodyBytes)})
	if a.status != http.StatusRequestEntityTooLarge || len(e.s.Posts()) != 0 {
		t.Errorf("%d, %d posts", a.status, len(e.s.Posts()))
	}
}
