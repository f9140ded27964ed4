package templates_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/templates"
)

func TestRenderOnlyListedChannels(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "buffer")
	n.Channels = []string{breachcast.ChannelStatus}
	out, err := r.Render(n, templates.Context{PublishedAt: published})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status == "" {
		t.Error("status fragment is empty")
	}
	if out.Email != (templates.Email{}) || out.Twitter != nil || out.Facebook != "" {
		t.Errorf("unlisted channels rendered: %+v", out)
	}
}

func TestThreadTooLongOnlyMattersForX(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "buffer")
	n.Body = strings.Repeat("This paragraph is long enough to need its own post on X, and there are far too many of them for a thread. ", 80)
	_, err := r.Render(n, templates.Context{})
	var tl *templates.ThreadTooLongError
	if !errors.As(err, &tl) || tl.Posts <= templates.MaxThread {
		t.Fatalf("err = %v, want ThreadTooLongError with more than %d posts", err, templates.MaxThread)
	}
	n.Channels = []string{breachcast.ChannelEmail, breachcast.ChannelFacebook, breachcast.ChannelStatus}
	if _, err := r.Render(n, templates.Context{}); err != nil {
		t.Errorf("without X: %v", err)
	}
	n.Summary = "A short summary for social posts."
	n.Channels = breachcast.Channels
	out, err := r.Render(n, templates.Context{})
	if err != nil {
		t.Fatalf("with a summary: %v", err)
	}
	if len(out.Twitter) != 1 || !strings.HasPrefix(out.Twitter[0], n.Summary) {
		t.Errorf("thread = %q, want the summary in one post", out.Twitter)
	}
}

func TestThreadShape(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "cjk")
	first, err := r.Render(n, templates.Context{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	link := "https://status.example.com/incidents/2024-06-login-incident"
	if !strings.Contains(first.Twitter[0], link) {
		t.Errorf("first post lacks the status link: %q", first.Twitter[0])
	}
	for i, p := range first.Twitter {
		if templates.XLength(p) > 280 {
			t.Errorf("post %d is %d", i+1, templates.XLength(p))
		}
		if i > 0 && strings.Contains(p, link) {
			t.Errorf("post %d repeats the link", i+1)
		}
	}
	if strings.HasPrefix(first.Twitter[0], "Update") {
		t.Errorf("first update has the update prefix: %q", first.Twitter[0])
	}
	later, err := r.Render(n, templates.Context{Seq: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(later.Twitter[0], "Update (investigating): ") {
		t.Errorf("later update starts %q", later.Twitter[0])
	}
}

func TestXLength(t *testing.T) {
	if got := templates.XLength("Hi https://status.example.com/incidents/a-very-long-slug 🔐"); got != 3+23+1+2 {
		t.Errorf("XLength = %d, want 29", got)
	}
}

func TestSubstitutions(t *testing.T) {
	r := newRenderer(t)
	out, err := r.Render(loadNotice(t, "buffer"), templates.Context{PublishedAt: published})
	if err != nil {
		t.Fatal(err)
	}
	rec := &breachcast.Recipient{Email: "ann@example.com", Name: "Ann <& Bob>", Attrs: map[string]string{"Plan": "pro\r\nBcc: x"}}
	subs := out.Substitutions(rec, nil)
	// buffer.md uses NameOr "there" and AttrOr "plan" "free", in HTML and text.
	if toks := out.Tokens(); len(toks) != 4 || len(subs) != 4 {
		t.Errorf("tokens = %q", toks)
	}
	for _, tok := range out.Tokens() {
		if _, ok := subs[tok]; !ok {
			t.Errorf("no substitution for %s", tok)
		}
	}
	if len(subs) != 4 {
		t.Errorf("got %d substitutions, want 4 (name and plan, HTML and text): %v", len(subs), subs)
	}
	html := templates.Apply(out.Email.HTML, subs)
	text := templates.Apply(out.Email.Text, subs)
	if !strings.Contains(html, "Hi Ann &lt;&amp; Bob&gt;,") {
		t.Error("HTML part lacks the escaped name")
	}
	if !strings.Contains(text, "Hi Ann <& Bob>,") {
		t.Error("text part lacks the name as is")
	}
	if !strings.Contains(text, "Your pro  Bcc: x plan") {
		t.Errorf("attribute not found case-insensitively or control characters kept:\n%s", text)
	}
	for _, s := range []string{html, text, templates.Apply(out.Email.Subject, subs)} {
		if strings.Contains(s, "BCTK") {
			t.Errorf("a token survived substitution: %q", s[strings.Index(s, "BCTK"):][:40])
		}
	}

	defaults := out.Substitutions(&breachcast.Recipient{Email: "x@example.com"}, nil)
	text = templates.Apply(out.Email.Text, defaults)
	if !strings.Contains(text, "Hi there,") || !strings.Contains(text, "Your free plan") {
		t.Errorf("defaults not applied:\n%s", text)
	}

	long := out.Substitutions(&breachcast.Recipient{Name: strings.Repeat("é", 1000)}, nil)
	for k, v := range long {
		if len(v) > templates.MaxSubstitution*6 || (strings.Contains(k, "BCTKt") && len(v) > templates.MaxSubstitution) {
			t.Errorf("value of %d bytes not capped", len(v))
		}
	}
}

func TestSubstitutionsOnlyPresentTokens(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "hostile")
	out, err := r.Render(n, templates.Context{})
	if err != nil {
		t.Fatal(err)
	}
	if subs := out.Substitutions(&breachcast.Recipient{Name: "Ann"}, map[string]string{"unsubscribe_url": "https://x"}); len(subs) != 0 {
		t.Errorf("a notice without recipient fields got substitutions %v", subs)
	}
}

func TestSubscriptionFooter(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "table")
	out, err := r.Render(n, templates.Context{Subscription: true})
	if err != nil {
		t.Fatal(err)
	}
	subs := out.Substitutions(nil, map[string]string{templates.ExtraUnsubscribeURL: "https://status.example.com/unsubscribe?t=a&b=c"})
	html := templates.Apply(out.Email.HTML, subs)
	text := templates.Apply(out.Email.Text, subs)
	if !strings.Contains(html, `href="https://status.example.com/unsubscribe?t=a&amp;b=c"`) {
		t.Error("HTML lacks the escaped unsubscribe link")
	}
	if !strings.Contains(text, "Unsubscribe: https://status.example.com/unsubscribe?t=a&b=c") {
		t.Error("text lacks the unsubscribe link")
	}
	plain, err := r.Render(n, templates.Context{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.Email.HTML, "nsubscribe") || strings.Contains(plain.Email.Text, "nsubscribe") {
		t.Error("breach notice (not a subscription) has an unsubscribe link")
	}
}

func TestSubstitutionsFromDecodedRendering(t *testing.T) {
	r := newRenderer(t)
	out, err := r.Render(loadNotice(t, "buffer"), templates.Context{})
	if err != nil {
		t.Fatal(err)
	}
	// A Rendering rebuilt from its JSON fields still finds its tokens.
	copied := &templates.Rendering{Email: out.Email}
	rec := &breachcast.Recipient{Name: "Ann"}
	a, b := out.Substitutions(rec, nil), copied.Substitutions(rec, nil)
	if len(a) != len(b) {
		t.Fatalf("got %v and %v", a, b)
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s = %q and %q", k, v, b[k])
		}
	}
}

func TestApply(t *testing.T) {
	got := templates.Apply("a KEY b KEYLONG c", map[string]string{"KEY": "1", "KEYLONG": "2"})
	if got != "a 1 b 2 c" {
		t.Errorf("Apply = %q", got)
	}
	if templates.Apply("x", nil) != "x" {
		t.Error("Apply with no substitutions changed the text")
	}
}

// walk calls f for every element node under n.
func walk(n *html.Node, f func(*html.Node)) {
	if n.Type == html.ElementNode {
		f(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func TestEmailHTMLIsSelfContained(t *testing.T) {
	r := newRenderer(t)
	for _, g := range goldenNotices {
		t.Run(g.name, func(t *testing.T) {
			out, err := r.Render(loadNotice(t, g.name), g.ctx)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := html.Parse(strings.NewReader(out.Email.HTML))
			if err != nil {
				t.Fatal(err)
			}
			var body *html.Node
			walk(doc, func(n *html.Node) {
				if n.Data == "body" {
					body = n
				}
			})
			if body == nil {
				t.Fatal("no body")
			}
			walk(body, func(n *html.Node) {
				switch n.Data {
				case "img", "script", "style", "link", "iframe", "object", "embed", "form", "input", "video", "audio":
					t.Errorf("email has a <%s>", n.Data)
				case "br", "tbody":
					return
				}
				if _, ok := attr(n, "style"); !ok {
					t.Errorf("<%s> has no style attribute", n.Data)
				}
				if _, ok := attr(n, "src"); ok {
					t.Errorf("<%s> loads a remote asset", n.Data)
				}
			})
			for _, want := range []string{"max-width:600px", "display:none", "role=\"presentation\"", "Reply to this email to reach our security team", "Acme Inc.", "Follow this incident"} {
				if !strings.Contains(out.Email.HTML, want) {
					t.Errorf("email HTML lacks %q", want)
				}
			}
			if !strings.HasPrefix(out.Email.HTML, "<!DOCTYPE html>") {
				t.Error("email HTML is not a complete document")
			}
		})
	}
}

func TestEmailBadgeAndSubject(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "cjk")
	out, err := r.Render(n, templates.Context{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Email.Subject != "[Investigating] 不正ログインの発生について" {
		t.Errorf("subject = %q", out.Email.Subject)
	}
	if !regexp.MustCompile(`background-color:#b91c1c;[^>]*>Investigating</td>`).MatchString(out.Email.HTML) {
		t.Error("no red Investigating badge with text")
	}
}

var linkSchemes = regexp.MustCompile(`(?i)^(https?:|mailto:|tel:|BCTK)`)

func TestHostileNoticeIsInert(t *testing.T) {
	r := newRenderer(t)
	out, err := r.Render(loadNotice(t, "hostile"), templates.Context{})
	if err != nil {
		t.Fatal(err)
	}
	status, err := r.StatusHTML(loadNotice(t, "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"email": out.Email.HTML, "status": out.Status, "status only": status} {
		doc, err := html.Parse(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		walk(doc, func(n *html.Node) {
			switch n.Data {
			case "script", "style", "iframe", "img", "object", "embed", "form", "input", "div":
				if !(name == "email" && n.Data == "div") { // the email's own preheader
					t.Errorf("%s: <%s> element", name, n.Data)
				}
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: event handler %s on <%s>", name, a.Key, n.Data)
				}
				if a.Key == "href" && !linkSchemes.MatchString(a.Val) {
					t.Errorf("%s: link to %q", name, a.Val)
				}
			}
		})
	}
	for name, s := range map[string]string{"text": out.Email.Text, "twitter": strings.Join(out.Twitter, "\n"), "facebook": out.Facebook} {
		for _, bad := range []string{`alert("block")`, "onmouseover", "onerror", "javascript:alert('link')", "data:text/html", "vbscript:", "<iframe", "display:none", "jav&#x61;script"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

func TestStatusHTML(t *testing.T) {
	r := newRenderer(t)
	n := &breachcast.Notice{Body: "# One\n\n## Two\n\n##### Five\n\nHi {{.Recipient.NameOr \"there\"}}, see [x](https://x.example)."}
	got, err := r.StatusHTML(n)
	if err != nil {
		t.Fatal(err)
	}
	want := "<h3>One</h3>\n<h4>Two</h4>\n<h6>Five</h6>\n<p>Hi , see <a href=\"https://x.example\">x</a>.</p>\n"
	if got != want {
		t.Errorf("StatusHTML =\n%s\nwant\n%s", got, want)
	}
}

func TestFacebookLimit(t *testing.T) {
	r := newRenderer(t)
	n := loadNotice(t, "table")
	n.Channels = []string{breachcast.ChannelFacebook}
	n.Body = strings.Repeat("Word ", 13000)
	_, err := r.Render(n, templates.Context{})
	if err == nil || !strings.Contains(err.Error(), "63206") {
		t.Errorf("err = %v, want the Facebook limit", err)
	}
}

func TestNewOptions(t *testing.T) {
	if _, err := templates.New(templates.Options{PublicURL: "https://s.example.com"}); err == nil {
		t.Error("no company accepted")
	}
	if _, err := templates.New(templates.Options{Company: "A", PublicURL: "javascript:alert(1)"}); err == nil {
		t.Error("non-http public URL accepted")
	}
	r, err := templates.New(templates.Options{Company: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(loadNotice(t, "buffer"), templates.Context{}); err == nil {
		t.Error("rendered without any incident URL")
	}
	out, err := r.Render(loadNotice(t, "buffer"), templates.Context{IncidentURL: "https://elsewhere.example/i/1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Facebook, "https://elsewhere.example/i/1") {
		t.Error("Context.IncidentURL not used")
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOverrideTemplates(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		templates.FileEmailSubject: `SECURITY: {{.Title}} ({{.Status}})`,
		templates.FileFacebook:     "{{.Company}} — {{.Title}}\n{{.IncidentURL}}",
		"README.md":                "not a template, ignored",
	})
	r, err := templates.New(templates.Options{Dir: dir, Company: "Acme Inc.", PublicURL: "https://status.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Render(loadNotice(t, "table"), templates.Context{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Email.Subject != "SECURITY: Payroll export exposed to the wrong accounts (monitoring)" {
		t.Errorf("subject = %q", out.Email.Subject)
	}
	if out.Facebook != "Acme Inc. — Payroll export exposed to the wrong accounts\nhttps://status.example.com/incidents/2024-05-payroll-export" {
		t.Errorf("facebook = %q", out.Facebook)
	}
	if !strings.Contains(out.Email.Text, "What data was exposed") {
		t.Error("default text template not kept")
	}
}

func TestBrokenOverride(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"parse error", map[string]string{templates.FileEmailHTML: "<p>\n{{if .Title}}\n</p>"},
			[]string{templates.FileEmailHTML, ":3", "unexpected EOF"}},
		{"unknown field", map[string]string{templates.FileEmailText: "line one\n{{.Titel}}\n"},
			[]string{templates.FileEmailText, ":2:", "Titel"}},
		{"unknown function", map[string]string{templates.FileTwitter: "{{shout .Title}}"},
			[]string{templates.FileTwitter, `"shout" not defined`}},
		{"unknown file", map[string]string{"emial.html.tmpl": "x"},
			[]string{"emial.html.tmpl", "unknown template file", templates.FileEmailHTML}},
		{"thread template too long", map[string]string{templates.FileTwitter: `{{range 400}}{{$.Title}} words words words. {{end}}`},
			[]string{templates.FileTwitter, "posts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := templates.New(templates.Options{Dir: dir, Company: "A", PublicURL: "https://s.example.com"})
			if err == nil {
				t.Fatal("New accepted a broken override")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := templates.New(templates.Options{Dir: filepath.Join(t.TempDir(), "missing"), Company: "A"}); err == nil {
		t.Error("missing override directory accepted")
	}
}

func TestFilesAreDocumented(t *testing.T) {
	src, err := os.ReadFile("templates.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range templates.Files {
		if !strings.Contains(string(src), "//\t"+f) {
			t.Errorf("%s is not listed in the package documentation", f)
		}
	}
	if !slices.Contains(templates.Files, templates.FileEmailHTML) {
		t.Error("Files lacks the HTML email")
	}
}

func TestCheckBody(t *testing.T) {
	if err := templates.CheckBody(`Hi {{.Recipient.NameOr "there"}} {{.Recipient.Attr "plan"}}`); err != nil {
		t.Error(err)
	}
	if err := templates.CheckBody(`{{.Recipient.Phone}}`); err == nil {
		t.Error("unknown recipient field accepted")
	}
	if err := templates.CheckBody(`{{range 100000000}}xxxxxxxxxx{{end}}`); err == nil {
		t.Error("unbounded body output accepted")
	}
	if err := templates.CheckBody("text BCTKhNKTCB"); err == nil {
		t.Error("reserved token accepted in a body")
	}
}

func BenchmarkRender(b *testing.B) {
	r := newRenderer(b)
	n := loadNotice(b, "buffer")
	c := templates.Context{Seq: 2, PublishedAt: published}
	for b.Loop() {
		if _, err := r.Render(n, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatusHTML(b *testing.B) {
	r := newRenderer(b)
	n := loadNotice(b, "buffer")
	for b.Loop() {
		if _, err := r.StatusHTML(n); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubstitutions(b *testing.B) {
	r := newRenderer(b)
	out, err := r.Render(loadNotice(b, "buffer"), templates.Context{})
	if err != nil {
		b.Fatal(err)
	}
	rec := &breachcast.Recipient{Email: "ann@example.com", Name: "Ann", Attrs: map[string]string{"plan": "pro"}}
	for b.Loop() {
		out.Substitutions(rec, nil)
	}
}
