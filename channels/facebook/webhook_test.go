package facebook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/internal/conformance"
)

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhookClient is a Client for webhook tests; no Graph calls are made.
func webhookClient(t *testing.T, secret, pageID string) (*Client, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	c, err := New(Config{
		AppID: testAppID, AppSecret: secret, PageID: pageID, PageToken: testPageToken, VerifyToken: testVerify,
		BaseURL: "http://127.0.0.1:1/", Logger: newTestLogger(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func TestSignatureVectorsThroughTheRealHandler(t *testing.T) {
	dir := conformance.Path(t, "facebook")
	raw, err := os.ReadFile(filepath.Join(dir, "x_hub_signature_256_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors struct {
		Cases []struct {
			Name          string `json:"name"`
			Secret        string `json:"secret"`
			PayloadInline string `json:"payload_inline"`
			PayloadFile   string `json:"payload_file"`
			HeaderValue   string `json:"header_value"`
			ExpectValid   bool   `json:"expect_valid"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors.Cases) < 5 {
		t.Fatalf("only %d vectors", len(vectors.Cases))
	}
	for _, v := range vectors.Cases {
		t.Run(v.Name, func(t *testing.T) {
			body := []byte(v.PayloadInline)
			if v.PayloadFile != "" {
				if body, err = os.ReadFile(filepath.Join(dir, v.PayloadFile)); err != nil {
					t.Fatal(err)
				}
			}
			if got := VerifySignature(v.Secret, body, v.HeaderValue); got != v.ExpectValid {
				t.Errorf("VerifySignature = %v, want %v", got, v.ExpectValid)
			}
			c, _ := webhookClient(t, v.Secret, testPageID)
			sink := newSink()
			w := post(c.Webhook(sink), body, v.HeaderValue)
			want := http.StatusForbidden
			if v.ExpectValid {
				want = http.StatusOK
				if !json.Valid(body) {
					want = http.StatusBadRequest // signed, but not a webhook body
				}
			}
			if w.Code != want {
				t.Fatalf("status = %d, want %d (%s)", w.Code, want, w.Body)
			}
			stored, _ := sink.count()
			if want != http.StatusOK {
				if stored != 0 {
					t.Errorf("%d replies stored from a refused request", stored)
				}
				return
			}
			r, ok := sink.get("901097836652708_903438993085259")
			if !ok || stored != 1 {
				t.Fatalf("stored %d replies, want the one comment", stored)
			}
			if strings.Contains(v.Name, "unicode") && r.Text != "Café — déjà vu 😀" {
				t.Errorf("text = %q, want the unescaped unicode", r.Text)
			}
		})
	}
}

// want is what one fixture must hand to the sink; nil means nothing.
type want struct {
	id, parent, post, authorID, author, text string
	action                                   breachcast.ReplyAction
	created, event                           int64
}

// fixtureWants covers every file in webhooks_restfb. The page in these
// fixtures is 1234567890321; the client under test runs for another page, so
// comments "from" that page count as customers here.
var fixtureWants = map[string]*want{
	"feed-comment-add-211.json":           {"901097836652708_903438993085259", "1234567890321_901097836652708", "1234567890321_901097836652708", "1234567890321", "Tester", "and the next one", breachcast.ReplyAdded, 1449135003, 1449135003},
	"feed-comment-add-25.json":            {"901097836652708_903438993085259", "1234567890321_901097836652708", "1234567890321_901097836652708", "1234567890321", "Tester", "and the next one", breachcast.ReplyAdded, 1449135003, 1449135003},
	"feed-comment-add-with-photo.json":    {"901097836652708_903438993085259", "1234567890321_901097836652708", "1234567890321_901097836652708", "1234567890321", "Tester", "and the next one", breachcast.ReplyAdded, 1449135003, 1449135003},
	"feed-comment-add-with-video.json":    {"901097836652708_903438993085259", "1234567890321_901097836652708", "1234567890321_901097836652708", "1234567890321", "Tester", "and the next one", breachcast.ReplyAdded, 1449135003, 1449135003},
	"feed-comment-edited-25.json":         {"900728623356296_900744590021366", "1234567890321_900728623356296", "1234567890321_900728623356296", "1234567890321", "Tester", "Let's see the Webhooks in action :D", breachcast.ReplyEdited, 1448555737, 1448555737},
	"feed-comment-edited-with-photo.json": {"900728623356296_900744590021366", "1234567890321_900728623356296", "1234567890321_900728623356296", "1234567890321", "Tester", "Let's see the Webhooks in action :D", breachcast.ReplyEdited, 1448555737, 1448555737},
	"feed-comment-edited-with-video.json": {"900728623356296_900744590021366", "1234567890321_900728623356296", "1234567890321_900728623356296", "1234567890321", "Tester", "Let's see the Webhooks in action :D", breachcast.ReplyEdited, 1448555737, 1448555737},
	"feed-comment-hide.json":              {"900728623356296_900744590021366", "1234567890321_901097836652708", "1234567890321_901097836652708", "1234567890321", "Tester", "and the next one", breachcast.ReplyHidden, 1467894562, 1467894562},
	"feed-comment-unhide.json":            {"900728623356296_900744590021366", "1234567890321_901097836652708", "1234567890321_901097836652708", "1234567890321", "Tester", "and the next one", breachcast.ReplyShown, 1467894562, 1467894562},
	"feed-comment-remove-25.json":         {"905578656204626_905579239537901", "1234567890321_905578656204626", "1234567890321_905578656204626", "1234567890321", "John Doe", "", breachcast.ReplyRemoved, 0, 1452107182},
	// A comment that mentions the page: no parent, no author in the payload.
	"mention-comment-add.json": {"7363534231324_3754798971271444", "1234567890321_7363534231324", "1234567890321_7363534231324", "", "", "Just a test message", breachcast.ReplyAdded, 1614340862, 1614340868},

	// Posts, statuses and reactions are acknowledged and ignored.
	"feed-post-add-25.json": nil, "feed-post-edit.json": nil, "feed-post-hide.json": nil,
	"feed-post-remove-25.json": nil, "feed-post-unhide.json": nil,
	"feed-reaction-add-comment.json": nil, "feed-reaction-add-reply.json": nil, "feed-reaction-add.json": nil,
	"feed-reaction-edit.json": nil, "feed-reaction-remove.json": nil,
	"feed-status-add-25.json": nil, "feed-status-add-photos.json": nil, "feed-status-edited-25.json": nil,
	"feed-status-edited-photos.json": nil, "feed-status-hide-25.json": nil, "feed-status-unhide.json": nil,
	"mention-post-add-real.json": nil, "mention-post-add.json": nil,
}

func readFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	dir := conformance.Path(t, "facebook/webhooks_restfb")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	for name := range out {
		if _, ok := fixtureWants[name]; !ok {
			t.Errorf("fixture %s has no expectation: add one", name)
		}
	}
	for name := range fixtureWants {
		if _, ok := out[name]; !ok {
			t.Errorf("expected fixture %s is missing", name)
		}
	}
	return out
}

func unixOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

func TestEveryWebhookFixtureThroughTheRealEndpoint(t *testing.T) {
	fixtures := readFixtures(t)
	if len(fixtures) != 29 {
		t.Errorf("fixtures = %d, want 29", len(fixtures))
	}
	c, logs := webhookClient(t, testAppSecret, testPageID)
	for name, body := range fixtures {
		t.Run(name, func(t *testing.T) {
			sink := newSink()
			h := c.Webhook(sink)
			if w := post(h, body, sign(testAppSecret, body)); w.Code != http.StatusOK {
				t.Fatalf("status = %d (%s)", w.Code, w.Body)
			}
			stored, ingests := sink.count()
			wt := fixtureWants[name]
			if wt == nil {
				if stored != 0 {
					t.Fatalf("stored %d replies from a change that is not a comment", stored)
				}
				return
			}
			if stored != 1 || ingests != 1 {
				t.Fatalf("stored %d (ingested %d), want 1", stored, ingests)
			}
			r, ok := sink.get(wt.id)
			if !ok {
				t.Fatalf("comment %s not stored", wt.id)
			}
			got := want{r.ExternalID, r.InReplyTo, r.RootID, r.AuthorID, r.AuthorName, r.Text, r.Action, 0, 0}
			exp := *wt
			exp.created, exp.event = 0, 0
			if got != exp {
				t.Errorf("reply =\n%+v\nwant\n%+v", got, exp)
			}
			if r.Channel != Name || !r.CreatedAt.Equal(unixOrZero(wt.created)) || !r.EventTime.Equal(unixOrZero(wt.event)) {
				t.Errorf("channel %q created %v event %v, want %v %v", r.Channel, r.CreatedAt, r.EventTime, unixOrZero(wt.created), unixOrZero(wt.event))
			}
			var change struct {
				Field string `json:"field"`
				Value struct {
					CommentID string `json:"comment_id"`
				} `json:"value"`
			}
			if err := json.Unmarshal(r.Raw, &change); err != nil || change.Value.CommentID != wt.id || change.Field == "" {
				t.Errorf("Raw is not the change JSON: %s (%v)", r.Raw, err)
			}

			// A replay of the same delivery changes nothing in the store.
			before, _ := sink.get(wt.id)
			if w := post(h, body, sign(testAppSecret, body)); w.Code != http.StatusOK {
				t.Fatalf("replay status = %d", w.Code)
			}
			after, _ := sink.get(wt.id)
			if n, _ := sink.count(); n != 1 || !reflect.DeepEqual(before, after) {
				t.Errorf("replay changed the store: %d replies, %+v -> %+v", n, before, after)
			}
		})
	}
	if !strings.Contains(logs.String(), "ignored change") || !strings.Contains(logs.String(), "item=reaction") {
		t.Errorf("ignored changes are not logged at debug level:\n%s", logs)
	}
}

func TestReplayingEveryFixtureTwiceStoresTheSameThing(t *testing.T) {
	fixtures := readFixtures(t)
	names := make([]string, 0, len(fixtures))
	for n := range fixtures {
		names = append(names, n)
	}
	slices.Sort(names)
	c, _ := webhookClient(t, testAppSecret, testPageID)
	sink := newSink()
	h := c.Webhook(sink)
	deliver := func() {
		for _, n := range names {
			if w := post(h, fixtures[n], sign(testAppSecret, fixtures[n])); w.Code != http.StatusOK {
				t.Fatalf("%s: status %d", n, w.Code)
			}
		}
	}
	deliver()
	first := snapshot(sink)
	if len(first) != 4 {
		t.Errorf("distinct comments = %d, want 4", len(first))
	}
	deliver()
	if again := snapshot(sink); !reflect.DeepEqual(first, again) {
		t.Errorf("replay changed the store")
	}
}

func snapshot(s *memSink) map[string]breachcast.Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]breachcast.Reply{}
	for k, v := range s.byID {
		out[k] = v
	}
	return out
}

func TestThePagesOwnCommentsAreNotReplies(t *testing.T) {
	fixtures := readFixtures(t)
	// Run as the fixtures' own page: its "Tester" comments are ours.
	c, logs := webhookClient(t, testAppSecret, "1234567890321")
	sink := newSink()
	for _, name := range []string{"feed-comment-add-211.json", "feed-comment-add-25.json", "feed-comment-edited-25.json", "feed-comment-remove-25.json"} {
		if w := post(c.Webhook(sink), fixtures[name], sign(testAppSecret, fixtures[name])); w.Code != http.StatusOK {
			t.Fatalf("%s: status %d", name, w.Code)
		}
	}
	if n, _ := sink.count(); n != 0 {
		t.Errorf("stored %d of the page's own comments", n)
	}
	if !strings.Contains(logs.String(), "own comment") {
		t.Errorf("skipping is not logged:\n%s", logs)
	}
	// A customer's comment (no author: a mention) still comes through.
	if w := post(c.Webhook(sink), fixtures["mention-comment-add.json"], sign(testAppSecret, fixtures["mention-comment-add.json"])); w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
	if n, _ := sink.count(); n != 1 {
		t.Errorf("stored %d, want the mention", n)
	}
}

func TestWebhookRefusesWhatFacebookDidNotSign(t *testing.T) {
	body, err := os.ReadFile(conformance.Path(t, "facebook/webhooks_restfb/feed-comment-add-211.json"))
	if err != nil {
		t.Fatal(err)
	}
	sha1Sig := func() string {
		m := hmac.New(sha1.New, []byte(testAppSecret))
		m.Write(body)
		return "sha1=" + hex.EncodeToString(m.Sum(nil))
	}()
	good := sign(testAppSecret, body)
	tampered := bytes.Replace(body, []byte("and the next one"), []byte("and the next two"), 1)
	tests := []struct {
		name string
		body []byte
		sig  string
		code int
	}{
		{"unsigned", body, "", http.StatusForbidden},
		{"forged with another secret", body, sign("not-the-app-secret", body), http.StatusForbidden},
		{"body changed after signing", tampered, good, http.StatusForbidden},
		{"legacy sha1 only", body, sha1Sig, http.StatusForbidden},
		{"not hex", body, "sha256=" + strings.Repeat("zz", 32), http.StatusForbidden},
		{"truncated", body, good[:len(good)-2], http.StatusForbidden},
		{"no scheme", body, strings.TrimPrefix(good, "sha256="), http.StatusForbidden},
		{"signed but not JSON", []byte("not json at all"), sign(testAppSecret, []byte("not json at all")), http.StatusBadRequest},
		{"signed JSON of the wrong shape", []byte(`{"object":"page","entry":"nope"}`), sign(testAppSecret, []byte(`{"object":"page","entry":"nope"}`)), http.StatusBadRequest},
		{"upper-case hex is still the signature", body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := webhookClient(t, testAppSecret, testPageID)
			sink := newSink()
			w := post(c.Webhook(sink), tt.body, tt.sig)
			if w.Code != tt.code {
				t.Fatalf("status = %d, want %d", w.Code, tt.code)
			}
			n, _ := sink.count()
			if tt.code != http.StatusOK && n != 0 {
				t.Errorf("stored %d replies from a refused request", n)
			}
			if tt.code == http.StatusOK && n != 1 {
				t.Errorf("stored %d replies, want 1", n)
			}
			if strings.Contains(logs.String(), testAppSecret) {
				t.Error("the app secret reached the logs")
			}
		})
	}
}

func TestWebhookRefusesTenMegabytes(t *testing.T) {
	pad := strings.Repeat("x", 10<<20)
	body := []byte(`{"object":"page","entry":[],"pad":"` + pad + `"}`)
	sig := sign(testAppSecret, body) // validly signed: size alone refuses it
	for _, known := range []bool{true, false} {
		name := map[bool]string{true: "with Content-Length", false: "chunked"}[known]
		t.Run(name, func(t *testing.T) {
			c, _ := webhookClient(t, testAppSecret, testPageID)
			sink := newSink()
			r := httptest.NewRequest(http.MethodPost, "/webhooks/facebook", bytes.NewReader(body))
			if !known {
				r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body)))
				r.ContentLength = -1
			}
			r.Header.Set("X-Hub-Signature-256", sig)
			w := httptest.NewRecorder()
			c.Webhook(sink).ServeHTTP(w, r)
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("status = %d, want 413", w.Code)
			}
			if n, _ := sink.count(); n != 0 {
				t.Errorf("stored %d", n)
			}
		})
	}
}

func TestWebhookAsksForRedeliveryWhenTheSinkFails(t *testing.T) {
	body, err := os.ReadFile(conformance.Path(t, "facebook/webhooks_restfb/feed-comment-add-25.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := webhookClient(t, testAppSecret, testPageID)
	sink := newSink()
	sink.fail = errors.New("database is locked")
	if w := post(c.Webhook(sink), body, sign(testAppSecret, body)); w.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500 so Facebook retries", w.Code)
	}
}

func TestWebhookHandshake(t *testing.T) {
	tests := []struct {
		name, verify, query string
		code                int
		body                string
	}{
		{"right token", testVerify, "hub.mode=subscribe&hub.verify_token=" + testVerify + "&hub.challenge=1158201444", 200, "1158201444"},
		{"wrong token", testVerify, "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444", 403, ""},
		{"token prefix", testVerify, "hub.mode=subscribe&hub.verify_token=verify&hub.challenge=1", 403, ""},
		{"wrong mode", testVerify, "hub.mode=unsubscribe&hub.verify_token=" + testVerify + "&hub.challenge=1", 403, ""},
		{"no challenge", testVerify, "hub.mode=subscribe&hub.verify_token=" + testVerify, 403, ""},
		{"no verify token configured", "", "hub.mode=subscribe&hub.verify_token=&hub.challenge=1", 403, ""},
		{"huge challenge", testVerify, "hub.mode=subscribe&hub.verify_token=" + testVerify + "&hub.challenge=" + strings.Repeat("9", 1000), 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{AppID: "1", AppSecret: "s", PageID: "42", PageToken: "t", VerifyToken: tt.verify, Logger: newTestLogger(&bytes.Buffer{})})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			c.Webhook(newSink()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/webhooks/facebook?"+tt.query, nil))
			if w.Code != tt.code {
				t.Fatalf("status = %d, want %d", w.Code, tt.code)
			}
			if tt.code == 200 {
				if w.Body.String() != tt.body || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
					t.Errorf("answer = %q (%s), want the challenge as text/plain", w.Body, w.Header().Get("Content-Type"))
				}
			}
		})
	}
}

func TestWebhookRejectsOtherMethods(t *testing.T) {
	c, _ := webhookClient(t, testAppSecret, testPageID)
	w := httptest.NewRecorder()
	c.Webhook(newSink()).ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/webhooks/facebook", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("status = %d", w.Code)
	}
}

// TestCustomerCommentsArriveByWebhookFromTheEmulator runs the whole loop:
// the emulator signs and posts Page webhooks as Facebook does, the real
// endpoint verifies them and the sink gets the customer's comment, its edit
// and its removal, but not the Page's own update comment.
func TestCustomerCommentsArriveByWebhookFromTheEmulator(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Mode = ModeComment }, nil)
	sink := newSink()
	srv := httptest.NewServer(e.client.Webhook(sink))
	defer srv.Close()
	e.emu.SetWebhookURL(srv.URL)
	ctx := context.Background()

	first, err := e.client.Publish(ctx, &channels.Post{Key: "u1", Text: "Investigating.", Link: "https://status.acme.test/i/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Publish(ctx, &channels.Post{Key: "u2", Text: "Identified.", Root: first.ExternalID}); err != nil {
		t.Fatal(err)
	}
	c1, err := e.emu.AddComment(first.ExternalID, "", "Zoë Ångström", "Was my card data part of this? 😟")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	c2, err := e.emu.AddComment(first.ExternalID, c1, "Marco Ruiz", "Same question.")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if err := e.emu.EditComment(c1, "Was my card data part of this?"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if err := e.emu.RemoveComment(c2); err != nil {
		t.Fatal(err)
	}
	flush, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.emu.FlushWebhooks(flush); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.emu.Deliveries() {
		if d.Status != http.StatusOK {
			t.Errorf("delivery answered %d: %s", d.Status, d.Body)
		}
	}
	if n := len(e.emu.Deliveries()); n != 6 { // 1 post, our comment, 2 customer comments, edit, remove
		t.Errorf("deliveries = %d, want 6", n)
	}
	if n, _ := sink.count(); n != 2 {
		t.Fatalf("stored %d replies, want the 2 customer comments", n)
	}
	r1, _ := sink.get(c1)
	if r1.Action != breachcast.ReplyEdited || r1.Text != "Was my card data part of this?" || r1.AuthorName != "Zoë Ångström" ||
		r1.RootID != first.ExternalID || r1.InReplyTo != first.ExternalID || !r1.EventTime.Equal(day.Add(2*time.Minute)) || !r1.CreatedAt.Equal(day) {
		t.Errorf("first comment = %+v", r1)
	}
	r2, _ := sink.get(c2)
	if r2.Action != breachcast.ReplyRemoved || r2.InReplyTo != c1 || r2.RootID != first.ExternalID {
		t.Errorf("reply = %+v", r2)
	}
	e.assertNoSecretsLeaked(t)
}

func BenchmarkWebhookVerifyAndParse(b *testing.B) {
	body, err := os.ReadFile(conformance.Path(b, "facebook/webhooks_restfb/feed-comment-add-211.json"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{AppID: "1", AppSecret: testAppSecret, PageID: testPageID, PageToken: "t",
		Logger: newTestLogger(&bytes.Buffer{})})
	if err != nil {
		b.Fatal(err)
	}
	h := c.Webhook(newSink())
	sig := sign(testAppSecret, body)
	b.ReportAllocs()
	for b.Loop() {
		if w := post(h, body, sig); w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
