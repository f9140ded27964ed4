package fbemu

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast/internal/conformance"
)

var t0 = time.Date(2025, 11, 24, 9, 0, 0, 0, time.UTC)

const (
	appSecret = "emu-test-secret"
	pageToken = "EAAEMUTESTTOKEN"
	pageID    = "4242"
)

func loadSpec(t *testing.T) *Spec {
	t.Helper()
	spec, err := LoadSpec(conformance.Path(t, "facebook/graph_api_specs"))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// optionalSpec is Meta's spec where the shared conformance data is there,
// nil (only implemented parameters accepted) where it is not.
func optionalSpec(t *testing.T) *Spec {
	t.Helper()
	dir := conformance.OptionalPath(t, "facebook/graph_api_specs")
	if dir == "" {
		return nil
	}
	spec, err := LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func start(t *testing.T, mod func(*Options)) (*Server, string) {
	t.Helper()
	o := Options{AppID: "77", AppSecret: appSecret, PageID: pageID, PageName: "Acme", PageToken: pageToken,
		Now: func() time.Time { return t0 }, Spec: optionalSpec(t)}
	if mod != nil {
		mod(&o)
	}
	s := New(o)
	u, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, u + "v21.0/"
}

// call makes a Graph request the way a well-behaved client does: token in
// the Authorization header, appsecret_proof in the query (GET) or form.
func call(t *testing.T, method, u string, params url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	if params == nil {
		params = url.Values{}
	}
	params.Set("appsecret_proof", AppsecretProof(appSecret, pageToken))
	return raw(t, method, u, params, "Bearer "+pageToken)
}

func raw(t *testing.T, method, u string, params url.Values, auth string) (int, map[string]any, http.Header) {
	t.Helper()
	var req *http.Request
	var err error
	if method == http.MethodGet || method == http.MethodDelete {
		req, err = http.NewRequest(method, u+"?"+params.Encode(), nil)
	} else {
		req, err = http.NewRequest(method, u, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer is not JSON: %s", b)
	}
	return resp.StatusCode, body, resp.Header
}

func graphErr(t *testing.T, body map[string]any) (code, subcode int, msg string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", body)
	}
	for _, k := range []string{"message", "type", "code", "fbtrace_id"} {
		if _, ok := e[k]; !ok {
			t.Errorf("error object lacks %q: %v", k, e)
		}
	}
	sub, _ := e["error_subcode"].(float64)
	return int(e["code"].(float64)), int(sub), e["message"].(string)
}

func TestTokenAndProofRules(t *testing.T) {
	s, u := start(t, nil)
	proof := AppsecretProof(appSecret, pageToken)
	tests := []struct {
		name    string
		params  url.Values
		auth    string
		status  int
		code    int
		subcode int
		source  string
	}{
		{"bearer header", url.Values{"appsecret_proof": {proof}}, "Bearer " + pageToken, 200, 0, 0, "header"},
		{"OAuth header", url.Values{"appsecret_proof": {proof}}, "OAuth " + pageToken, 200, 0, 0, "header"},
		{"token in the query", url.Values{"appsecret_proof": {proof}, "access_token": {pageToken}}, "", 200, 0, 0, "query"},
		{"no token", url.Values{"appsecret_proof": {proof}}, "", 400, 104, 0, ""},
		{"wrong token", url.Values{"appsecret_proof": {proof}}, "Bearer nope", 400, 190, 0, "header"},
		{"no proof", nil, "Bearer " + pageToken, 400, 100, 0, "header"},
		{"wrong proof", url.Values{"appsecret_proof": {AppsecretProof("other", pageToken)}}, "Bearer " + pageToken, 400, 100, 0, "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.params == nil {
				tt.params = url.Values{}
			}
			status, body, _ := raw(t, "GET", u+"me", tt.params, tt.auth)
			if status != tt.status {
				t.Fatalf("status = %d, want %d (%v)", status, tt.status, body)
			}
			if tt.code != 0 {
				if code, sub, _ := graphErr(t, body); code != tt.code || sub != tt.subcode {
					t.Errorf("error %d/%d, want %d/%d", code, sub, tt.code, tt.subcode)
				}
			} else if body["id"] != pageID || body["name"] != "Acme" {
				t.Errorf("/me = %v", body)
			}
			reqs := s.Requests()
			if got := reqs[len(reqs)-1].TokenSource; got != tt.source {
				t.Errorf("recorded token source %q, want %q", got, tt.source)
			}
			if v := reqs[len(reqs)-1].Params.Get("access_token"); v != "" && v != "<redacted>" {
				t.Errorf("recorded token value %q", v)
			}
		})
	}

	// The token in a POST form is recorded as such.
	form := url.Values{"appsecret_proof": {proof}, "access_token": {pageToken}, "message": {"hi"}}
	if status, body, _ := raw(t, "POST", u+pageID+"/feed", form, ""); status != 200 {
		t.Fatalf("form token: %d %v", status, body)
	}
	reqs := s.Requests()
	if got := reqs[len(reqs)-1]; got.TokenSource != "form" || strings.Contains(got.URL, pageToken) {
		t.Errorf("form token recorded as %+v", got)
	}
}

func TestExpiredTokenIs190With463(t *testing.T) {
	s, u := start(t, nil)
	s.ExpireToken()
	status, body, h := call(t, "GET", u+pageID, nil)
	code, sub, msg := graphErr(t, body)
	if status != 400 || code != 190 || sub != 463 || !strings.Contains(msg, "Session has expired") {
		t.Errorf("got %d %d/%d %q", status, code, sub, msg)
	}
	if !strings.HasPrefix(h.Get("WWW-Authenticate"), `OAuth "Facebook Platform" "invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q", h.Get("WWW-Authenticate"))
	}
}

func TestPostedParametersAreCheckedAgainstMetasSpec(t *testing.T) {
	spec := loadSpec(t) // this test is about Meta's spec: it needs it
	s, u := start(t, func(o *Options) { o.Spec = spec })
	status, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"hi"}, "mesage": {"typo"}})
	code, _, msg := graphErr(t, body)
	if status != 400 || code != 100 || !strings.Contains(msg, "mesage") {
		t.Errorf("unknown param: %d %d %q", status, code, msg)
	}
	reqs := s.Requests()
	if got := reqs[len(reqs)-1].Unknown; !slices.Equal(got, []string{"mesage"}) {
		t.Errorf("recorded unknown = %v", got)
	}
	// A parameter the spec knows but the emulator does not act on is accepted.
	if status, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"hi"}, "scheduled_publish_time": {"0"}}); status != 200 {
		t.Errorf("spec parameter refused: %v", body)
	}
	// Comments take "message", not "text" (that is Comment's reply edge).
	p := s.Posts()[0].ID
	if status, _, _ := call(t, "POST", u+p+"/comments", url.Values{"text": {"hi"}}); status != 400 {
		t.Errorf("PagePost comments accepted text: %d", status)
	}
	// Unknown fields are Graph's "nonexisting field" error.
	status, body, _ = call(t, "GET", u+pageID, url.Values{"fields": {"name,nonsense"}})
	if code, _, msg := graphErr(t, body); status != 400 || code != 100 || !strings.Contains(msg, "nonexisting field (nonsense) on node type (Page)") {
		t.Errorf("unknown field: %d %q", status, msg)
	}
}

func TestWithoutTheSpecOnlyImplementedParametersPass(t *testing.T) {
	_, u := start(t, func(o *Options) { o.Spec = nil })
	if status, _, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"hi"}, "link": {"https://x.test/"}}); status != 200 {
		t.Errorf("implemented params refused: %d", status)
	}
	if status, _, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"hi 2"}, "scheduled_publish_time": {"0"}}); status != 400 {
		t.Errorf("unimplemented param accepted without the spec: %d", status)
	}
}

func TestBuiltinParametersAndFieldsExistInMetasSpec(t *testing.T) {
	spec, err := LoadSpec(conformance.Path(t, "facebook/graph_api_specs"))
	if err != nil {
		t.Fatal(err)
	}
	for ep, names := range builtinParams {
		specNames, ok := spec.Params(ep)
		if !ok {
			t.Errorf("the spec has no endpoint %q", ep)
			continue
		}
		for _, n := range names {
			if !slices.Contains(specNames, n) {
				t.Errorf("%s: %q is not in Meta's spec", ep, n)
			}
		}
	}
	for node, fields := range builtinFields {
		for _, f := range fields {
			if !slices.Contains(spec.Fields(node), f) {
				t.Errorf("%s field %q is not in Meta's spec", node, f)
			}
		}
	}
	if ps, _ := spec.Params(epPageFeedPost); len(ps) < 50 || !slices.Contains(ps, "message") || !slices.Contains(ps, "link") {
		t.Errorf("Page POST feed params look wrong: %d", len(ps))
	}
	if _, err := LoadSpec(t.TempDir()); err == nil {
		t.Error("LoadSpec of an empty folder did not fail")
	}
}

func TestFeedPostsDuplicatesAndPermissions(t *testing.T) {
	s, u := start(t, nil)
	status, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"Investigating"}, "link": {"https://status.test/"}})
	id, _ := body["id"].(string)
	if status != 200 || !strings.HasPrefix(id, pageID+"_") {
		t.Fatalf("create = %d %v", status, body)
	}
	status, body, _ = call(t, "POST", u+pageID+"/feed", url.Values{"message": {"Investigating"}, "link": {"https://status.test/"}})
	if code, _, msg := graphErr(t, body); status != 400 || code != 506 || msg != "(#506) Duplicate status message" {
		t.Errorf("duplicate = %d %d %q", status, code, msg)
	}
	status, body, _ = call(t, "POST", u+pageID+"/feed", url.Values{})
	if code, _, _ := graphErr(t, body); status != 400 || code != 100 {
		t.Errorf("empty post = %d %d", status, code)
	}
	status, body, _ = call(t, "POST", u+pageID+"/feed", url.Values{"message": {"x"}, "link": {"javascript:alert(1)"}})
	if code, _, _ := graphErr(t, body); status != 400 || code != 100 {
		t.Errorf("bad link = %d %d", status, code)
	}
	status, body, _ = call(t, "GET", u+id, url.Values{"fields": {"created_time,message,permalink_url"}})
	if status != 200 || body["created_time"] != "2025-11-24T09:00:00+0000" || body["message"] != "Investigating" || body["id"] != id {
		t.Errorf("GET post = %v", body)
	}

	s.SetPermissions("pages_read_engagement")
	status, body, _ = call(t, "POST", u+pageID+"/feed", url.Values{"message": {"another"}})
	if code, _, msg := graphErr(t, body); status != 403 || code != 200 || !strings.Contains(msg, "pages_manage_posts") {
		t.Errorf("no publish permission = %d %d %q", status, code, msg)
	}
	s.SetPermissions()
	status, body, _ = call(t, "GET", u+id+"/comments", nil)
	if code, _, msg := graphErr(t, body); status != 403 || code != 10 || !strings.Contains(msg, "pages_read_engagement") {
		t.Errorf("no read permission = %d %d %q", status, code, msg)
	}
}

func TestHideDeleteAndMethodOverride(t *testing.T) {
	s, u := start(t, nil)
	_, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"oops"}})
	id := body["id"].(string)
	if status, body, _ := call(t, "POST", u+id, url.Values{"is_hidden": {"true"}}); status != 200 || body["success"] != true {
		t.Fatalf("hide = %d %v", status, body)
	}
	if p := s.Posts()[0]; !p.Hidden {
		t.Error("not hidden")
	}
	if status, _, _ := call(t, "POST", u+id, url.Values{"is_hidden": {"maybe"}}); status != 400 {
		t.Errorf("is_hidden=maybe accepted: %d", status)
	}
	// POST with method=DELETE is how the Graph client deletes.
	if status, body, _ := call(t, "POST", u+id, url.Values{"method": {"DELETE"}}); status != 200 || body["success"] != true {
		t.Fatalf("delete = %d %v", status, body)
	}
	reqs := s.Requests()
	if reqs[len(reqs)-1].Method != "DELETE" {
		t.Errorf("recorded method %q", reqs[len(reqs)-1].Method)
	}
	status, body, _ := call(t, "DELETE", u+id, nil)
	if code, sub, _ := graphErr(t, body); status != 400 || code != 100 || sub != 33 {
		t.Errorf("second delete = %d %d/%d", status, code, sub)
	}
	if p := s.Posts()[0]; !p.Deleted {
		t.Error("not deleted")
	}
}

func TestCommentPagingFollowsGraphCursors(t *testing.T) {
	s, u := start(t, nil)
	_, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"post"}})
	post := body["id"].(string)
	var ids []string
	for i := range 5 {
		id, err := s.AddComment(post, "", "Customer", "c"+string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	reply, err := s.AddComment(post, ids[0], "Other", "a reply")
	if err != nil {
		t.Fatal(err)
	}
	// A reply to a reply hangs under the top-level comment, as on Facebook.
	nested, _ := s.AddComment(post, reply, "Third", "deeper")
	for _, c := range s.Comments(post) {
		if c.ID == nested && c.ParentID != ids[0] {
			t.Errorf("nested reply parent = %s, want %s", c.ParentID, ids[0])
		}
	}

	list := func(params url.Values) (ids []string, paging map[string]any) {
		t.Helper()
		status, body, _ := call(t, "GET", u+post+"/comments", params)
		if status != 200 {
			t.Fatalf("list = %d %v", status, body)
		}
		for _, d := range body["data"].([]any) {
			ids = append(ids, d.(map[string]any)["id"].(string))
		}
		paging, _ = body["paging"].(map[string]any)
		return ids, paging
	}
	cursor := func(p map[string]any, which string) string {
		return p["cursors"].(map[string]any)[which].(string)
	}

	got, paging := list(url.Values{"limit": {"2"}})
	if !slices.Equal(got, ids[:2]) || paging["next"] == nil || paging["previous"] != nil {
		t.Fatalf("page 1 = %v %v", got, paging)
	}
	next, err := url.Parse(paging["next"].(string))
	if err != nil || next.Query().Get("after") != cursor(paging, "after") || next.Query().Get("limit") != "2" ||
		strings.Contains(next.String(), pageToken) {
		t.Errorf("next link = %v", paging["next"])
	}
	got, paging = list(url.Values{"limit": {"2"}, "after": {cursor(paging, "after")}})
	if !slices.Equal(got, ids[2:4]) || paging["previous"] == nil {
		t.Fatalf("page 2 = %v", got)
	}
	got, paging = list(url.Values{"limit": {"2"}, "after": {cursor(paging, "after")}})
	if !slices.Equal(got, ids[4:5]) || paging["next"] != nil {
		t.Fatalf("page 3 = %v %v", got, paging)
	}
	last := cursor(paging, "after")
	if got, paging = list(url.Values{"after": {last}}); len(got) != 0 || paging != nil {
		t.Errorf("after the end = %v %v", got, paging)
	}
	got, _ = list(url.Values{"limit": {"2"}, "before": {last}})
	if !slices.Equal(got, ids[2:4]) {
		t.Errorf("before = %v, want %v", got, ids[2:4])
	}
	got, _ = list(url.Values{"order": {"reverse_chronological"}, "limit": {"3"}})
	if !slices.Equal(got, []string{ids[4], ids[3], ids[2]}) {
		t.Errorf("reverse = %v", got)
	}
	if got, _ = list(url.Values{"filter": {"stream"}}); len(got) != 7 {
		t.Errorf("stream = %d comments, want all 7 with replies", len(got))
	}
	if got, _ = list(url.Values{"filter": {"toplevel"}}); len(got) != 5 {
		t.Errorf("toplevel = %d, want 5", len(got))
	}
	status, body, _ := call(t, "GET", u+post+"/comments", url.Values{"after": {"garbage"}})
	if code, _, _ := graphErr(t, body); status != 400 || code != 100 {
		t.Errorf("bad cursor = %d %d", status, code)
	}
	// Replies carry their parent.
	status, body, _ = call(t, "GET", u+reply, url.Values{"fields": {"id,parent,from,message"}})
	if parent, _ := body["parent"].(map[string]any); status != 200 || parent["id"] != ids[0] {
		t.Errorf("reply node = %v", body)
	}
}

func TestFaultInjection(t *testing.T) {
	s, u := start(t, nil)
	s.FailNext(2, ErrTransient)
	for range 2 {
		status, body, _ := call(t, "GET", u+"me", nil)
		if code, _, _ := graphErr(t, body); status != 500 || code != 2 || body["error"].(map[string]any)["is_transient"] != true {
			t.Errorf("injected = %d %v", status, body)
		}
	}
	if status, _, _ := call(t, "GET", u+"me", nil); status != 200 {
		t.Errorf("third call = %d, want the fault spent", status)
	}

	s.RateLimitNext(1, 4, 90*time.Second)
	status, body, h := call(t, "GET", u+"me", nil)
	if code, _, _ := graphErr(t, body); status != 400 || code != 4 {
		t.Errorf("rate limit = %d %d", status, code)
	}
	if !strings.Contains(h.Get("X-App-Usage"), `"call_count":100`) ||
		!strings.Contains(h.Get("X-Business-Use-Case-Usage"), `"estimated_time_to_regain_access":2`) {
		t.Errorf("usage headers = %v", h)
	}

	s.FailPath(pageID+"/feed", 1, ErrUnknown)
	if status, _, _ := call(t, "GET", u+"me", nil); status != 200 {
		t.Errorf("another path failed: %d", status)
	}
	if status, _, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"x"}}); status != 500 {
		t.Errorf("targeted path = %d, want 500", status)
	}

	s.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"me", nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("latency did not delay the answer")
	}
	s.SetLatency(0)
}

func TestDebugToken(t *testing.T) {
	exp := t0.Add(10 * 24 * time.Hour)
	s, u := start(t, func(o *Options) { o.TokenExpiry = exp })
	// As breachcast asks: POST with method=GET, token in the body.
	status, body, _ := call(t, "POST", u+"debug_token", url.Values{"method": {"GET"}, "input_token": {pageToken}})
	data, _ := body["data"].(map[string]any)
	if status != 200 || data["is_valid"] != true || data["type"] != "PAGE" || data["profile_id"] != pageID ||
		data["expires_at"] != float64(exp.Unix()) || data["app_id"] != "77" {
		t.Fatalf("debug_token = %d %v", status, body)
	}
	if scopes, _ := data["scopes"].([]any); len(scopes) != len(DefaultPermissions) {
		t.Errorf("scopes = %v", data["scopes"])
	}
	// With the app token "id|secret" and a token that is not the page's.
	status, body, _ = raw(t, "GET", u+"debug_token", url.Values{"input_token": {"bogus"}}, "Bearer 77|"+appSecret)
	data, _ = body["data"].(map[string]any)
	if status != 200 || data["is_valid"] != false || data["error"] == nil {
		t.Errorf("bogus input = %d %v", status, body)
	}
	reqs := s.Requests()
	if r := reqs[len(reqs)-1]; r.Params.Get("input_token") != "<redacted>" || r.TokenKind != "app" || reqs[0].TokenKind != "page" {
		t.Errorf("recorded %+v", r)
	}
}

func TestCustomerCommentsAreSignedWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var sigs []string
	fails := 1 // the first delivery fails once, as endpoints sometimes do
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if strings.ContainsFunc(string(b), func(r rune) bool { return r > 0x7f }) {
			t.Errorf("webhook body has raw non-ASCII: %s", b)
		}
		if r.Header.Get("X-Hub-Signature-256") != Sign(appSecret, b) || !strings.HasPrefix(r.Header.Get("X-Hub-Signature"), "sha1=") {
			t.Errorf("bad signature headers %v", r.Header)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("not JSON: %s", b)
		}
		got = append(got, m)
		sigs = append(sigs, r.Header.Get("X-Hub-Signature-256"))
	}))
	defer hook.Close()
	s, u := start(t, func(o *Options) { o.WebhookURL = hook.URL })
	_, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"We were breached"}})
	post := body["id"].(string)
	c, err := s.AddComment(post, "", "Zoë", "Café? 😀")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EditComment(c, "edited"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveComment(c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddComment(post, "nope", "X", "y"); err == nil {
		t.Error("comment under an unknown parent accepted")
	}
	if err := s.EditComment("nope", "x"); err == nil {
		t.Error("edit of an unknown comment accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("webhooks = %d, want post add + comment add, edited, remove", len(got))
	}
	if d := s.Deliveries(); d[0].Attempts != 2 || d[0].Status != 200 {
		t.Errorf("first delivery = %+v, want a retry that succeeded", d[0])
	}
	value := func(i int) map[string]any {
		entry := got[i]["entry"].([]any)[0].(map[string]any)
		if got[i]["object"] != "page" || entry["id"] != pageID || entry["time"] != float64(t0.Unix()) {
			t.Errorf("webhook %d envelope = %v", i, got[i])
		}
		ch := entry["changes"].([]any)[0].(map[string]any)
		if ch["field"] != "feed" {
			t.Errorf("field = %v", ch["field"])
		}
		return ch["value"].(map[string]any)
	}
	if v := value(0); v["item"] != "status" || v["verb"] != "add" || v["post_id"] != post {
		t.Errorf("post webhook = %v", v)
	}
	v := value(1)
	from := v["from"].(map[string]any)
	if v["item"] != "comment" || v["verb"] != "add" || v["comment_id"] != c || v["post_id"] != post || v["parent_id"] != post ||
		v["message"] != "Café? 😀" || from["name"] != "Zoë" || from["id"] == "" || v["created_time"] != float64(t0.Unix()) {
		t.Errorf("comment webhook = %v", v)
	}
	if v := value(2); v["verb"] != "edited" || v["message"] != "edited" {
		t.Errorf("edit webhook = %v", v)
	}
	if v := value(3); v["verb"] != "remove" || v["message"] != nil {
		t.Errorf("remove webhook = %v", v)
	}
}

func TestAutoReplyBringsCustomerCommentsToNewPosts(t *testing.T) {
	arrived := make(chan struct{}, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), `"item":"comment"`) {
			arrived <- struct{}{}
		}
	}))
	defer hook.Close()
	s, u := start(t, func(o *Options) { o.AutoReply = true; o.AutoReplyDelay = time.Millisecond; o.WebhookURL = hook.URL })
	_, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"We were breached"}})
	post := body["id"].(string)
	timeout := time.After(5 * time.Second)
	for range autoReplies {
		select {
		case <-arrived:
		case <-timeout:
			t.Fatalf("auto replies = %d after 5s", len(s.Comments(post)))
		}
	}
	cs := s.Comments(post)
	if len(cs) != len(autoReplies) {
		t.Fatalf("comments = %d", len(cs))
	}
	var replies int
	for _, c := range cs {
		if c.AuthorID == pageID || c.Message == "" {
			t.Errorf("auto reply = %+v", c)
		}
		if c.ParentID != post {
			replies++
		}
	}
	if replies != 1 {
		t.Errorf("threaded auto replies = %d, want 1", replies)
	}
}

func TestPageNodeAndUnknownObjects(t *testing.T) {
	_, u := start(t, nil)
	status, body, _ := call(t, "GET", u+pageID, url.Values{"fields": {"id,name,link,fan_count"}})
	if status != 200 || body["name"] != "Acme" || body["link"] != "https://www.facebook.com/"+pageID || body["fan_count"] == nil {
		t.Errorf("page = %v", body)
	}
	status, body, _ = call(t, "GET", u+"123_456", nil)
	if code, sub, msg := graphErr(t, body); status != 400 || code != 100 || sub != 33 || !strings.Contains(msg, "does not exist") {
		t.Errorf("unknown object = %d %d/%d", status, code, sub)
	}
	status, _, _ = call(t, "GET", u+"a/b/c", nil)
	if status != 400 {
		t.Errorf("deep path = %d", status)
	}
}

func TestCommentsThroughTheAPI(t *testing.T) {
	var mu sync.Mutex
	var verbs []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Entry []struct {
				Changes []struct {
					Value struct{ Item, Verb string }
				}
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		defer mu.Unlock()
		v := m.Entry[0].Changes[0].Value
		verbs = append(verbs, v.Item+":"+v.Verb)
	}))
	defer hook.Close()
	s, u := start(t, nil)
	s.SetWebhookURL(hook.URL)
	_, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {"post"}})
	post := body["id"].(string)

	status, body, _ := call(t, "POST", u+post+"/comments", url.Values{"message": {"Update: identified"}})
	ours, _ := body["id"].(string)
	if status != 200 || ours == "" {
		t.Fatalf("page comment = %d %v", status, body)
	}
	status, body, _ = call(t, "POST", u+ours+"/comments", url.Values{"message": {"a reply to our comment"}})
	if status != 200 {
		t.Fatalf("reply = %d %v", status, body)
	}
	reply := body["id"].(string)
	cs := s.Comments(post)
	if len(cs) != 2 || cs[0].AuthorID != pageID || cs[1].ParentID != ours {
		t.Errorf("comments = %+v", cs)
	}
	status, body, _ = call(t, "GET", u+ours, url.Values{"fields": {"id,message,from,comment_count,can_hide"}})
	if status != 200 || body["message"] != "Update: identified" || body["comment_count"] != float64(1) || body["can_hide"] != false {
		t.Errorf("GET comment = %v", body)
	}
	for _, p := range []url.Values{{"message": {""}}, {"message": {strings.Repeat("x", maxCommentChars+1)}}} {
		if status, _, _ := call(t, "POST", u+post+"/comments", p); status != 400 {
			t.Errorf("bad comment accepted: %d", status)
		}
	}
	if status, _, _ := call(t, "POST", u+reply, url.Values{"is_hidden": {"true"}}); status != 200 || !s.Comments(post)[1].Hidden {
		t.Errorf("hide comment = %d", status)
	}
	if status, _, _ := call(t, "POST", u+reply, url.Values{"message": {"edited"}}); status != 200 || s.Comments(post)[1].Message != "edited" {
		t.Errorf("edit comment = %d", status)
	}
	if status, _, _ := call(t, "DELETE", u+reply, nil); status != 200 || !s.Comments(post)[1].Removed {
		t.Errorf("delete comment = %d", status)
	}
	if status, _, _ := call(t, "GET", u+reply, nil); status != 400 {
		t.Errorf("GET removed comment = %d", status)
	}
	s.SetPermissions("pages_read_engagement", "pages_manage_posts")
	status, body, _ = call(t, "POST", u+post+"/comments", url.Values{"message": {"x"}})
	if code, _, msg := graphErr(t, body); status != 403 || code != 200 || !strings.Contains(msg, "pages_manage_engagement") {
		t.Errorf("no engagement permission = %d %d %q", status, code, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"status:add", "comment:add", "comment:add", "comment:hide", "comment:edited", "comment:remove"}
	if !slices.Equal(verbs, want) {
		t.Errorf("webhooks = %v, want %v", verbs, want)
	}
}

func TestPageFeedListsLatestPostsFirst(t *testing.T) {
	_, u := start(t, nil)
	var ids []string
	for _, m := range []string{"one", "two", "three"} {
		_, body, _ := call(t, "POST", u+pageID+"/feed", url.Values{"message": {m}})
		ids = append(ids, body["id"].(string))
	}
	call(t, "POST", u+ids[1], url.Values{"is_hidden": {"true"}})
	feed := func(params url.Values) []string {
		t.Helper()
		status, body, _ := call(t, "GET", u+pageID+"/feed", params)
		if status != 200 {
			t.Fatalf("feed = %d %v", status, body)
		}
		var out []string
		for _, d := range body["data"].([]any) {
			out = append(out, d.(map[string]any)["message"].(string))
		}
		return out
	}
	if got := feed(url.Values{"fields": {"id,message"}}); !slices.Equal(got, []string{"three", "one"}) {
		t.Errorf("feed = %v", got)
	}
	if got := feed(url.Values{"fields": {"id,message"}, "include_hidden": {"true"}, "limit": {"2"}}); !slices.Equal(got, []string{"three", "two"}) {
		t.Errorf("feed with hidden = %v", got)
	}
}
