package templates

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/breachcast/breachcast/templates/xtext"
)

func plainText(t *testing.T, md string, width int) string {
	t.Helper()
	src := []byte(md)
	doc := parseMarkdown(newMarkdown(true), src)
	return (&plain{src: src, width: width, underline: true}).render(doc)
}

func TestPlainText(t *testing.T) {
	tests := []struct {
		name, md, want string
	}{
		{"paragraph wrapped at 72",
			"We are investigating unauthorized access to a database that holds customer names and email addresses.",
			"We are investigating unauthorized access to a database that holds\ncustomer names and email addresses."},
		{"headings underlined",
			"# Top\n\n## What happened\n\n### Detail",
			"Top\n===\n\nWhat happened\n-------------\n\nDetail\n------"},
		{"lists",
			"- one\n- two\n\n3. three\n4. four",
			"- one\n- two\n\n3. three\n4. four"},
		{"nested list item wraps under its text",
			"1. Reconnect your social accounts from your dashboard, then delete any spam posts you still see.\n   - nested",
			"1. Reconnect your social accounts from your dashboard, then delete any\n   spam posts you still see.\n   - nested"},
		{"links as text <url>, bare URL once",
			"See [our FAQ](https://example.com/faq), https://example.com/a and [https://example.com/b](https://example.com/b) or <security@example.com>.",
			"See our FAQ <https://example.com/faq>, https://example.com/a and\nhttps://example.com/b or security@example.com."},
		{"image becomes a link with its alt text",
			"![diagram](https://example.com/d.png)",
			"diagram <https://example.com/d.png>"},
		{"code block indented",
			"```\nrotate --all\n  keys\n```",
			"    rotate --all\n      keys"},
		{"block quote",
			"> quoted text\n>\n> more",
			"> quoted text\n>\n> more"},
		{"table aligned",
			"| a | bb |\n|---|---:|\n| ccc | 1 |\n| d | 22 |",
			"a     bb\n---  ---\nccc    1\nd     22"},
		{"emphasis, code and strikethrough",
			"**bold** *it* `code` ~~old~~",
			"bold it code ~~old~~"},
		{"task list",
			"- [x] done\n- [ ] todo",
			"- [x] done\n- [ ] todo"},
		{"raw HTML left out",
			"<div>hidden</div>\n\ntext <b>kept</b>",
			"text kept"},
		{"escapes and entities resolved",
			`\*not emphasis\* &amp; &copy;`,
			"*not emphasis* & ©"},
		{"hard line break",
			"line one  \nline two",
			"line one\nline two"},
		{"long word is not broken",
			strings.Repeat("x", 80) + " y",
			strings.Repeat("x", 80) + "\ny"},
		{"CJK wraps between characters, never before 。",
			strings.Repeat("漢字", 18) + "。次",
			strings.Repeat("漢字", 17) + "漢\n字。次"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plainText(t, tt.md, EmailWidth); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestWrapKeepsTokensWhole(t *testing.T) {
	tok := Recipient{ctxText}.AttrOr("a-rather-long-attribute-name", "a default")
	s := strings.Repeat("word ", 12) + tok + " end"
	for _, line := range strings.Split(wrap(s, 72), "\n") {
		if strings.Contains(line, tokenPrefix) && !strings.Contains(line, tok) {
			t.Fatalf("token broken across lines: %q", line)
		}
	}
}

var markerRE = regexp.MustCompile(` (\d+)/(\d+)$`)

// threadTexts are sources for the thread properties: prose, lists, CJK,
// emoji, URLs of every length, and words longer than a post.
func threadTexts() map[string]string {
	para := "We are investigating unauthorized access to customer data. The attacker used a leaked key! Did they read passwords? No: passwords are hashed."
	return map[string]string{
		"short":           "Short notice.",
		"prose":           strings.Repeat(para+"\n\n", 6),
		"one paragraph":   strings.Repeat(para+" ", 12),
		"lists":           "Heading\n\n" + strings.Repeat("- an item that is reasonably long to fill the post with text\n", 20),
		"cjk":             strings.Repeat("平素より弊社サービスをご利用いただき、誠にありがとうございます。", 20),
		"cjk no stops":    strings.Repeat("漢", 600),
		"emoji":           strings.Repeat("We rotated keys 🔐👩\u200d💻🇫🇷 and reset sessions 👍🏽. ", 30),
		"urls":            strings.Repeat("Read https://example.com/"+strings.Repeat("long/", 60)+"path and example.org/x. ", 20),
		"long word":       "Start " + strings.Repeat("a", 700) + " end.",
		"long emoji word": strings.Repeat("👨\u200d👩\u200d👧\u200d👦", 300),
	}
}

func TestThreadProperties(t *testing.T) {
	link := "https://status.example.com/incidents/2024-03-db-access"
	for name, text := range threadTexts() {
		t.Run(name, func(t *testing.T) {
			posts, err := splitThread(text, link)
			if err != nil {
				t.Fatal(err)
			}
			var rejoined []string
			for i, p := range posts {
				if l := XLength(p); l > xtext.MaxPost {
					t.Errorf("post %d is %d by XLength: %q", i+1, l, p)
				}
				if len(posts) > 1 {
					m := markerRE.FindStringSubmatch(p)
					if m == nil || m[1] != itoa(i+1) || m[2] != itoa(len(posts)) {
						t.Errorf("post %d lacks the marker %d/%d: %q", i+1, i+1, len(posts), p)
					}
					p = markerRE.ReplaceAllString(p, "")
				} else if markerRE.MatchString(p) && !strings.HasSuffix(p, link) {
					t.Errorf("single post has a marker: %q", p)
				}
				if i == 0 {
					if !strings.HasSuffix(p, "\n"+link) {
						t.Errorf("first post does not end with the link: %q", p)
					}
					p = strings.TrimSuffix(p, "\n"+link)
				} else if strings.Contains(p, link) {
					t.Errorf("post %d repeats the link", i+1)
				}
				rejoined = append(rejoined, p)
			}
			if got, want := squash(strings.Join(rejoined, " ")), squash(text); got != want {
				t.Errorf("posts do not rejoin to the source:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestThreadNeverSplitsURLsOrWords(t *testing.T) {
	text := strings.Repeat("word https://example.com/a/very/long/path/"+strings.Repeat("x", 100)+" ", 30)
	posts, err := splitThread(text, "https://status.example.com/incidents/a")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range posts {
		p = markerRE.ReplaceAllString(p, "")
		for _, w := range strings.Fields(p) {
			if w != "word" && !strings.HasPrefix(w, "https://") {
				t.Errorf("post has a broken word %q", w)
			}
			if strings.HasPrefix(w, "https://example.com") && !strings.HasSuffix(w, strings.Repeat("x", 100)) {
				t.Errorf("URL split: %q", w)
			}
		}
	}
}

func TestThreadPrefersParagraphs(t *testing.T) {
	a := strings.Repeat("Alpha sentence here. ", 6)
	b := strings.Repeat("Beta sentence here. ", 6)
	c := strings.Repeat("Gamma sentence here. ", 6)
	posts, err := splitThread(a+"\n\n"+b+"\n\n"+c, "https://s.example.com/i/x")
	if err != nil {
		t.Fatal(err)
	}
	// a and b fit one post with the link (2 x 126 + link); c goes alone.
	if len(posts) != 2 || !strings.HasPrefix(posts[1], "Gamma") || strings.Contains(posts[0], "Gamma") {
		t.Errorf("posts = %q", posts)
	}
}

func TestThreadTooLong(t *testing.T) {
	_, err := splitThread(strings.Repeat("A sentence of text that takes room. ", 300), "https://s.example.com/i/x")
	var tl *ThreadTooLongError
	if !errors.As(err, &tl) {
		t.Fatalf("err = %v, want *ThreadTooLongError", err)
	}
	if tl.Posts <= MaxThread {
		t.Errorf("Posts = %d, want more than %d", tl.Posts, MaxThread)
	}
	if !strings.Contains(err.Error(), itoa(tl.Posts)+" posts") {
		t.Errorf("message %q does not say how many posts", err)
	}
}

func TestSafeURL(t *testing.T) {
	for _, u := range []string{"https://x.example", "http://x", "mailto:a@b.c", "tel:+441234", "/relative", "#frag", "page?x=1"} {
		if !safeURL([]byte(u)) {
			t.Errorf("safeURL(%q) = false", u)
		}
	}
	for _, u := range []string{"javascript:alert(1)", "JavaScript:x", "java\tscript:x", " javascript:x", "data:text/html,x", "vbscript:x", "jav&#x61;script:x", "file:///etc/passwd"} {
		if safeURL([]byte(u)) {
			t.Errorf("safeURL(%q) = true", u)
		}
	}
}

func squash(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func itoa(i int) string { return strconv.Itoa(i) }
