package notice

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/breachcast/breachcast"
)

const good = `---
incident: 2024-03-db-access
title: Unauthorized access to customer data
status: investigating
---
We are investigating unauthorized access to our database.
`

func TestParseDefaults(t *testing.T) {
	n, err := Parse("incident-1.md", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := breachcast.Notice{
		Incident: "2024-03-db-access",
		Title:    "Unauthorized access to customer data",
		Status:   breachcast.Investigating,
		Severity: breachcast.SeverityMajor,
		Audience: breachcast.AudienceAll,
		Channels: []string{"email", "twitter", "facebook", "status"},
		Body:     "We are investigating unauthorized access to our database.",
		Source:   "incident-1.md",
	}
	if n.Incident != want.Incident || n.Title != want.Title || n.Status != want.Status ||
		n.Severity != want.Severity || n.Audience != want.Audience || !slices.Equal(n.Channels, want.Channels) ||
		n.Body != want.Body || n.Source != want.Source || n.Summary != "" {
		t.Errorf("Parse =\n%+v\nwant\n%+v", *n, want)
	}
}

func TestParseAllFields(t *testing.T) {
	src := "\xEF\xBB\xBF---\r\n" +
		"incident: db-2\r\n" +
		"title: \"Passwords reset\"\r\n" +
		"status: resolved\r\n" +
		"severity: critical\r\n" +
		"audience: eu_customers\r\n" +
		"channels: [status, email]\r\n" +
		"summary: >\r\n" +
		"  We reset every password.\r\n" +
		"  Sign in again to choose a new one.\r\n" +
		"---\r\n" +
		"\r\n" +
		"    indented code stays indented\r\n" +
		"\r\n" +
		"Body text.\r\n\r\n"
	n, err := Parse("n.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if n.Severity != breachcast.SeverityCritical || n.Audience != "eu_customers" || n.Status != breachcast.Resolved {
		t.Errorf("got %+v", *n)
	}
	if !slices.Equal(n.Channels, []string{"email", "status"}) {
		t.Errorf("channels = %v, want canonical order [email status]", n.Channels)
	}
	if n.Summary != "We reset every password. Sign in again to choose a new one." {
		t.Errorf("summary = %q", n.Summary)
	}
	if n.Body != "    indented code stays indented\n\nBody text." {
		t.Errorf("body = %q, want CRLF normalised and blank lines trimmed", n.Body)
	}
}

func TestParseChannelsForms(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"twitter, email", []string{"email", "twitter"}},
		{"[facebook]", []string{"facebook"}},
		{"\n  - status\n  - twitter", []string{"twitter", "status"}},
		{"", []string{"email", "twitter", "facebook", "status"}},
	}
	for _, tt := range tests {
		src := "---\nincident: a\ntitle: t\nstatus: identified\nchannels: " + tt.value + "\n---\nbody\n"
		n, err := Parse("c.md", []byte(src))
		if err != nil {
			t.Errorf("channels %q: %v", tt.value, err)
			continue
		}
		if !slices.Equal(n.Channels, tt.want) {
			t.Errorf("channels %q = %v, want %v", tt.value, n.Channels, tt.want)
		}
	}
}

// Each case is one broken notice and the exact messages it must produce.
func TestParseErrors(t *testing.T) {
	fm := func(lines ...string) string {
		return "---\n" + strings.Join(lines, "\n") + "\n---\nBody.\n"
	}
	base := []string{"incident: db", "title: T", "status: investigating"}
	with := func(extra ...string) string { return fm(append(slices.Clone(base), extra...)...) }
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"misspelt status", fm("incident: db", "title: T", "status: investigatng"),
			[]string{`incident-1.md:4: status: "investigatng" is not a status (want investigating, identified, monitoring or resolved)`}},
		{"missing required fields", fm("severity: minor"),
			[]string{
				`incident-1.md:1: incident: is required: a slug naming the incident, like "2024-03-db-access"`,
				`incident-1.md:1: title: is required`,
				`incident-1.md:1: status: is required (investigating, identified, monitoring or resolved)`,
			}},
		{"bad slug", fm("incident: DB Leak", "title: T", "status: resolved"),
			[]string{`incident-1.md:2: incident: "DB Leak" is not a valid slug (use lowercase letters, digits and single hyphens, like "2024-03-db-access")`}},
		{"slug with double hyphen", fm("incident: db--leak", "title: T", "status: resolved"),
			[]string{`incident-1.md:2: incident: "db--leak" is not a valid slug (use lowercase letters, digits and single hyphens, like "2024-03-db-access")`}},
		{"slug too long", fm("incident: "+strings.Repeat("a", 65), "title: T", "status: resolved"),
			[]string{`incident-1.md:2: incident: is 65 characters; at most 64`}},
		{"title too long", fm("incident: db", "title: "+strings.Repeat("é", 201), "status: resolved"),
			[]string{`incident-1.md:3: title: is 201 characters; at most 200`}},
		{"title on two lines", fm("incident: db", "title: |", "  one", "  two", "status: resolved"),
			[]string{`incident-1.md:3: title: must be one line`}},
		{"empty title", fm("incident: db", `title: "  "`, "status: resolved"),
			[]string{`incident-1.md:3: title: is empty`}},
		{"title as a list", fm("incident: db", "title: [a, b]", "status: resolved"),
			[]string{`incident-1.md:3: title: must be text, not a list`}},
		{"bad severity", with("severity: huge"),
			[]string{`incident-1.md:5: severity: "huge" is not a severity (want none, minor, major or critical)`}},
		{"bad audience", with("audience: Everyone!"),
			[]string{`incident-1.md:5: audience: "Everyone!" is not a segment name ("all", or lowercase letters, digits, _ and -, at most 64)`}},
		{"unknown channel", with("channels: email, fax"),
			[]string{`incident-1.md:5: channels: "fax" is not a channel (want email, twitter, facebook or status)`}},
		{"duplicate channel in a list", with("channels:", "  - email", "  - twitter", "  - email"),
			[]string{`incident-1.md:8: channels: "email" is listed twice`}},
		{"empty channel list", with("channels: []"),
			[]string{`incident-1.md:5: channels: no channel listed; leave the field out to use all four`}},
		{"channels as a mapping", with("channels: {email: true}"),
			[]string{`incident-1.md:5: channels: must be a list or a comma-separated string, not a mapping`}},
		{"unknown field with a suggestion", with("chanels: email"),
			[]string{`incident-1.md:5: unknown field "chanels" (did you mean "channels"?)`}},
		{"unknown field without a suggestion", with("priority: high"),
			[]string{`incident-1.md:5: unknown field "priority" (fields are incident, title, status, severity, audience, channels, summary)`}},
		{"field twice", with("title: Again"),
			[]string{`incident-1.md:5: title: appears twice (first on line 3)`}},
		{"summary of two paragraphs", with("summary: |", "  one", "", "  two"),
			[]string{`incident-1.md:5: summary: must be one paragraph`}},
		{"summary too long for a post", with("summary: " + strings.Repeat("word ", 60)),
			[]string{`incident-1.md:5: summary: is 299 X characters; at most 252 fit in one post with the status page link`}},
		{"summary too long in CJK", with("summary: " + strings.Repeat("漢", 127)),
			[]string{`incident-1.md:5: summary: is 254 X characters; at most 252 fit in one post with the status page link`}},
		{"several problems in line order", fm("title: T", "status: nope", "incident: X", "colour: red"),
			[]string{
				`incident-1.md:3: status: "nope" is not a status (want investigating, identified, monitoring or resolved)`,
				`incident-1.md:4: incident: "X" is not a valid slug (use lowercase letters, digits and single hyphens, like "2024-03-db-access")`,
				`incident-1.md:5: unknown field "colour" (fields are incident, title, status, severity, audience, channels, summary)`,
			}},
		{"broken YAML", fm("incident: db", "title: [unclosed", "status: resolved"),
			[]string{`incident-1.md:3: invalid YAML front matter: did not find expected ',' or ']'`}},
		{"YAML mapping inside a value", fm("incident: db", "title: a: b", "status: resolved"),
			[]string{`incident-1.md:3: invalid YAML front matter: mapping values are not allowed in this context`}},
		{"YAML that is not a mapping", fm("- a", "- b"),
			[]string{`incident-1.md:2: front matter must be fields like "title: ...", not a list`}},
		{"missing front matter", "# Title\n\nBody\n",
			[]string{`incident-1.md:1: missing front matter: the file must start with a line "---", then the fields, then another "---"`}},
		{"unclosed front matter", "---\nincident: db\ntitle: T\n\nBody\n",
			[]string{`incident-1.md:1: front matter is not closed: add a line "---" between the fields and the body`}},
		{"empty body", fm(base...)[:len(fm(base...))-len("Body.\n")] + "\n  \n\t\n",
			[]string{`incident-1.md:5: body: is empty; write the notice below the front matter`}},
		{"invalid UTF-8", "---\nincident: db\ntitle: caf\xe9\nstatus: resolved\n---\nBody\n",
			[]string{`incident-1.md:3: invalid UTF-8 (byte 0xE9); save the file as UTF-8`}},
		{"NUL byte", "---\nincident: db\ntitle: T\nstatus: resolved\n---\nBody\n\nmore\x00\n",
			[]string{`incident-1.md:8: contains a NUL byte; a notice is UTF-8 text`}},
		{"5 MB of markdown", with() + strings.Repeat("A long line of markdown text.\n", 5_000_000/30),
			[]string{`incident-1.md: file is 5.0 MB; a notice body may be at most 512 KiB`}},
		{"body just over the limit", with() + strings.Repeat("x", MaxBody),
			[]string{`incident-1.md:6: body: is 512.0 KiB; at most 512 KiB`}},
		{"misspelt recipient field", with() + "Hello\n\nDear {{.Recipient.Nmae}},\n",
			[]string{`incident-1.md:9: body: template: at <.Recipient.Nmae>: can't evaluate field Nmae in type templates.Recipient`}},
		{"broken body template", with() + "Dear {{.Recipient.Name}\n",
			[]string{`incident-1.md:7: body: template: bad character U+007D '}' (to write "{{" literally, use {{"{{"}})`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse("incident-1.md", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want errors:\n%s", n, strings.Join(tt.want, "\n"))
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want notice.Errors", err)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestErrorsUnwrap(t *testing.T) {
	_, err := Parse("n.md", []byte("---\nincident: db\ntitle: T\nstatus: nope\n---\nBody\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	if e.File != "n.md" || e.Line != 4 || e.Field != "status" || !strings.Contains(e.Msg, `"nope"`) {
		t.Errorf("got %+v", *e)
	}
	if code := breachcast.ErrorCodeOf(err); code != breachcast.EINVALID {
		t.Errorf("ErrorCodeOf = %q, want invalid", code)
	}
	if msg := breachcast.ErrorMessage(err); msg != err.Error() {
		t.Errorf("ErrorMessage = %q", msg)
	}
}

func TestParseBodyAtTheLimit(t *testing.T) {
	body := strings.Repeat("x", MaxBody)
	n, err := Parse("n.md", []byte(good+body))
	if err == nil {
		t.Fatalf("body of %d bytes plus a line was accepted", len(n.Body))
	}
	src := "---\nincident: db\ntitle: T\nstatus: resolved\n---\n" + body
	if _, err := Parse("n.md", []byte(src)); err != nil {
		t.Errorf("body of exactly %d bytes: %v", MaxBody, err)
	}
}

func TestParseSummaryAtTheLimit(t *testing.T) {
	s := strings.Repeat("a", MaxSummary-23-1) + " https://example.com/a/very/long/path/that/counts/as/twenty-three"
	src := "---\nincident: db\ntitle: T\nstatus: resolved\nsummary: " + s + "\n---\nBody\n"
	n, err := Parse("n.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if n.Summary != s {
		t.Errorf("summary = %q", n.Summary)
	}
}

func TestParseBodyTemplateIsKept(t *testing.T) {
	src := good + "\nYour plan: {{.Recipient.AttrOr \"plan\" \"free\"}}\n"
	n, err := Parse("n.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(n.Body, `{{.Recipient.AttrOr "plan" "free"}}`) {
		t.Errorf("body = %q", n.Body)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("---\nchannels: [a, [b]]\n---\nx"))
	f.Fuzz(func(t *testing.T, src []byte) {
		n, err := Parse("f.md", src)
		if (n == nil) == (err == nil) {
			t.Fatalf("Parse returned notice %v and error %v", n, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T has no *Error", err)
			}
		}
	})
}
