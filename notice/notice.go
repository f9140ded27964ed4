// Package notice parses and validates a notice file: YAML front matter
// between two "---" lines, then the markdown body.
//
//	---
//	incident: 2024-03-db-access
//	title: Unauthorized access to customer data
//	status: investigating
//	severity: critical          # none | minor | major (default) | critical
//	audience: all               # default; or a segment name
//	channels: email, twitter    # default: all four
//	summary: One paragraph for social posts.
//	---
//	Markdown body…
//
// Every problem is reported with the file name, the line and the field, and
// all problems of a file are reported at once.
package notice

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/templates"
	"github.com/breachcast/breachcast/templates/xtext"
)

// Limits of a notice.
const (
	MaxBody        = 512 << 10 // bytes of markdown body
	MaxFrontMatter = 64 << 10  // bytes of front matter
	MaxTitle       = 200       // characters of title
	MaxIncident    = 64        // characters of incident slug
	// MaxSummary is the weighted X length a summary may have: a post is 280,
	// less a newline and 23 for the status page link, less 4 for a " 1/2"
	// marker should the update prefix push it into a second post.
	MaxSummary = xtext.MaxPost - (1 + xtext.URLLength) - 4
)

var (
	slugRE     = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
	audienceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	fields     = []string{"incident", "title", "status", "severity", "audience", "channels", "summary"}
)

// Error is one problem in a notice file.
type Error struct {
	File  string // file name as given to Parse
	Line  int    // 1-based line in the file, 0 when the problem is the whole file
	Field string // front matter field, "body", or "" for the file
	Msg   string
}

// Error formats the problem as "file:line: field: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a notice file, in line order. Its
// message has one line per problem. errors.As finds each *Error in it, and
// breachcast.ErrorCodeOf reports it as EINVALID.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each *Error, then a breachcast.Error with code EINVALID
// and the whole message, so the HTTP layer maps a bad notice to 400.
func (es Errors) Unwrap() []error {
	out := make([]error, 0, len(es)+1)
	for _, e := range es {
		out = append(out, e)
	}
	return append(out, &breachcast.Error{Code: breachcast.EINVALID, Message: es.Error()})
}

// parser collects the problems of one file.
type parser struct {
	file string
	errs Errors
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) result(n *breachcast.Notice) (*breachcast.Notice, error) {
	if len(p.errs) == 0 {
		return n, nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
	return nil, p.errs
}

// Parse parses and validates the notice file src; name is used in messages
// and kept as Notice.Source. On failure the error is an Errors.
func Parse(name string, src []byte) (*breachcast.Notice, error) {
	p := &parser{file: name}
	if len(src) > MaxBody+MaxFrontMatter {
		p.errorf(0, "", "file is %s; a notice body may be at most %s", size(len(src)), size(MaxBody))
		return p.result(nil)
	}
	src = bytes.TrimPrefix(src, []byte("\xEF\xBB\xBF"))
	if i := bytes.IndexByte(src, 0); i >= 0 {
		p.errorf(lineAt(src, i), "", "contains a NUL byte; a notice is UTF-8 text")
		return p.result(nil)
	}
	if !utf8.Valid(src) {
		i := 0
		for i < len(src) {
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		p.errorf(lineAt(src, i), "", "invalid UTF-8 (byte 0x%02X); save the file as UTF-8", src[i])
		return p.result(nil)
	}
	text := strings.ReplaceAll(string(src), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")

	lines := strings.SplitAfter(text, "\n")
	if len(lines) == 0 || strings.TrimRight(lines[0], " \t\n") != "---" {
		p.errorf(1, "", "missing front matter: the file must start with a line \"---\", then the fields, then another \"---\"")
		return p.result(nil)
	}
	end := -1
	for i := 1; i < len(lines); i++ {
		if l := strings.TrimRight(lines[i], " \t\n"); l == "---" || l == "..." {
			end = i
			break
		}
	}
	if end < 0 {
		p.errorf(1, "", "front matter is not closed: add a line \"---\" between the fields and the body")
		return p.result(nil)
	}
	front := strings.Join(lines[1:end], "")
	if len(front) > MaxFrontMatter {
		p.errorf(2, "", "front matter is %s; at most %s", size(len(front)), size(MaxFrontMatter))
		return p.result(nil)
	}
	n := &breachcast.Notice{Source: name}
	p.frontMatter(n, front)

	bodyLine := end + 2 // first line after the closing ---
	body := strings.Join(lines[end+1:], "")
	for { // drop leading blank lines, keeping the indentation of the first text
		i := strings.IndexByte(body, '\n')
		if i < 0 || strings.TrimSpace(body[:i]) != "" {
			break
		}
		body = body[i+1:]
		bodyLine++
	}
	body = strings.TrimRight(body, " \t\n")
	switch {
	case strings.TrimSpace(body) == "":
		p.errorf(end+1, "body", "is empty; write the notice below the front matter")
	case len(body) > MaxBody:
		p.errorf(bodyLine, "body", "is %s; at most %s", size(len(body)), size(MaxBody))
	default:
		p.checkBodyTemplate(body, bodyLine)
	}
	n.Body = body
	return p.result(n)
}

// frontMatter decodes and validates the fields into n.
func (p *parser) frontMatter(n *breachcast.Notice, front string) {
	const offset = 1 // front matter starts on line 2 of the file
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(front), &doc); err != nil {
		line, msg := yamlError(err)
		if line > 0 {
			line += offset
		}
		p.errorf(line, "", "invalid YAML front matter: %s", msg)
		return
	}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	if root != nil && root.Kind != yaml.MappingNode {
		p.errorf(root.Line+offset, "", "front matter must be fields like \"title: ...\", not a %s", kindName(root))
		return
	}
	seen := map[string]*yaml.Node{}
	if root != nil {
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], root.Content[i+1]
			key := k.Value
			switch {
			case !slices.Contains(fields, key):
				if s := suggest(key); s != "" {
					p.errorf(k.Line+offset, "", "unknown field %q (did you mean %q?)", key, s)
				} else {
					p.errorf(k.Line+offset, "", "unknown field %q (fields are %s)", key, strings.Join(fields, ", "))
				}
			case seen[key] != nil:
				p.errorf(k.Line+offset, key, "appears twice (first on line %d)", seen[key].Line+offset)
			default:
				seen[key] = v
			}
		}
	}
	line := func(f string) int { return seen[f].Line + offset }

	// scalar returns the string value of field f, "" when absent or null.
	scalar := func(f string) (string, bool) {
		v := seen[f]
		if v == nil || v.Tag == "!!null" {
			return "", false
		}
		if v.Kind != yaml.ScalarNode {
			p.errorf(line(f), f, "must be text, not a %s", kindName(v))
			return "", false
		}
		return v.Value, true
	}

	if s, ok := scalar("incident"); !ok {
		p.requiredf("incident", seen, `is required: a slug naming the incident, like "2024-03-db-access"`)
	} else if len(s) > MaxIncident {
		p.errorf(line("incident"), "incident", "is %d characters; at most %d", utf8.RuneCountInString(s), MaxIncident)
	} else if !slugRE.MatchString(s) {
		p.errorf(line("incident"), "incident", "%q is not a valid slug (use lowercase letters, digits and single hyphens, like \"2024-03-db-access\")", s)
	} else {
		n.Incident = s
	}

	if s, ok := scalar("title"); !ok || strings.TrimSpace(s) == "" {
		if !ok {
			p.requiredf("title", seen, "is required")
		} else {
			p.errorf(line("title"), "title", "is empty")
		}
	} else if s = strings.TrimSpace(s); strings.ContainsAny(s, "\n\t\v\f") {
		p.errorf(line("title"), "title", "must be one line")
	} else if c := utf8.RuneCountInString(s); c > MaxTitle {
		p.errorf(line("title"), "title", "is %d characters; at most %d", c, MaxTitle)
	} else {
		n.Title = s
	}

	if s, ok := scalar("status"); !ok {
		p.requiredf("status", seen, "is required (%s)", oneOf(breachcast.Statuses))
	} else if st := breachcast.Status(s); !st.Valid() {
		p.errorf(line("status"), "status", "%q is not a status (want %s)", s, oneOf(breachcast.Statuses))
	} else {
		n.Status = st
	}

	n.Severity = breachcast.SeverityMajor
	if s, ok := scalar("severity"); ok {
		if sv := breachcast.Severity(s); sv.Valid() {
			n.Severity = sv
		} else {
			p.errorf(line("severity"), "severity", "%q is not a severity (want %s)", s, oneOf(breachcast.Severities))
		}
	}

	n.Audience = breachcast.AudienceAll
	if s, ok := scalar("audience"); ok {
		if s == breachcast.AudienceAll || audienceRE.MatchString(s) {
			n.Audience = s
		} else {
			p.errorf(line("audience"), "audience", "%q is not a segment name (%q, or lowercase letters, digits, _ and -, at most 64)", s, breachcast.AudienceAll)
		}
	}

	n.Channels = slices.Clone(breachcast.Channels)
	if v := seen["channels"]; v != nil && v.Tag != "!!null" {
		n.Channels = p.channels(v, v.Line+offset)
	}

	if s, ok := scalar("summary"); ok {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			p.errorf(line("summary"), "summary", "is empty; leave it out to post the title and body")
		case strings.Contains(s, "\n\n"):
			p.errorf(line("summary"), "summary", "must be one paragraph")
		default:
			if l := xtext.Length(s); l > MaxSummary {
				p.errorf(line("summary"), "summary", "is %d X characters; at most %d fit in one post with the status page link", l, MaxSummary)
			} else {
				n.Summary = s
			}
		}
	}
}

func (p *parser) requiredf(field string, seen map[string]*yaml.Node, format string, args ...any) {
	line := 1
	if v := seen[field]; v != nil {
		if v.Kind != yaml.ScalarNode {
			return // already reported as the wrong kind
		}
		line = v.Line + 1
	}
	p.errorf(line, field, format, args...)
}

// channels reads a list or a comma-separated string of channel names.
func (p *parser) channels(v *yaml.Node, line int) []string {
	type item struct {
		name string
		line int
	}
	var items []item
	switch v.Kind {
	case yaml.ScalarNode:
		for _, s := range strings.Split(v.Value, ",") {
			items = append(items, item{strings.TrimSpace(s), line})
		}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			if c.Kind != yaml.ScalarNode {
				p.errorf(c.Line+1, "channels", "each channel must be a name, not a %s", kindName(c))
				continue
			}
			items = append(items, item{strings.TrimSpace(c.Value), c.Line + 1})
		}
	default:
		p.errorf(line, "channels", "must be a list or a comma-separated string, not a %s", kindName(v))
		return nil
	}
	set := map[string]bool{}
	bad := false
	for _, it := range items {
		switch {
		case it.name == "":
			p.errorf(it.line, "channels", "empty channel name")
			bad = true
		case !slices.Contains(breachcast.Channels, it.name):
			p.errorf(it.line, "channels", "%q is not a channel (want %s)", it.name, oneOf(breachcast.Channels))
			bad = true
		case set[it.name]:
			p.errorf(it.line, "channels", "%q is listed twice", it.name)
			bad = true
		default:
			set[it.name] = true
		}
	}
	if len(items) == 0 {
		p.errorf(line, "channels", "no channel listed; leave the field out to use all four")
	}
	if bad {
		return nil
	}
	var out []string
	for _, c := range breachcast.Channels {
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}

// checkBodyTemplate checks the body as the text/template the email
// renderer executes, so a stray "{{" or a misspelt recipient field is
// reported with its line now rather than at send time.
func (p *parser) checkBodyTemplate(body string, firstLine int) {
	err := templates.CheckBody(body)
	if err == nil {
		return
	}
	msg := err.Error()
	line := firstLine
	if m := tmplErrRE.FindStringSubmatch(msg); m != nil {
		l, _ := strconv.Atoi(m[1])
		line = firstLine + l - 1
		msg = m[2]
	}
	if rest, ok := strings.CutPrefix(msg, `executing "body" `); ok {
		p.errorf(line, "body", "template: %s", rest)
		return
	}
	p.errorf(line, "body", "template: %s (to write \"{{\" literally, use {{\"{{\"}})", msg)
}

var tmplErrRE = regexp.MustCompile(`^template: body:(\d+):(?:\d+:)? ?(.*)$`)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError extracts the line and the message of a yaml.v3 error.
func yamlError(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		l, _ := strconv.Atoi(m[1])
		// yaml.v3 reports parser errors with a 0-based line and scanner
		// errors with a 1-based one; these messages are the parser's.
		for _, p := range []string{"did not find expected key", "did not find expected node", "did not find expected ','", "did not find expected '-'", "did not find expected <"} {
			if strings.HasPrefix(m[2], p) {
				l++
				break
			}
		}
		return l, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "scalar"
}

// oneOf formats values as "a, b, c or d".
func oneOf[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// suggest returns the known field closest to key, or "" if none is close.
func suggest(key string) string {
	best, bestD := "", 3
	for _, f := range fields {
		if d := distance(strings.ToLower(key), f); d < bestD {
			best, bestD = f, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance of a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// lineAt returns the 1-based line of byte offset i in src.
func lineAt(src []byte, i int) int { return bytes.Count(src[:i], []byte("\n")) + 1 }

// size formats a byte count for people: "512 KiB", "5.0 MB".
func size(n int) string {
	switch {
	case n >= 1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1000:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
