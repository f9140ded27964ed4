// Package templates renders one notice for every channel: a responsive HTML
// email with a text/plain part, an X thread, a Facebook post and a safe HTML
// fragment for the status page.
//
// The markdown body is rendered with goldmark and GFM (tables,
// strikethrough, autolinks, task lists). Raw HTML in a notice is never
// passed through, links with schemes other than http, https, mailto and tel
// are dropped (their text stays), and images become links labelled with
// their alt text, so no remote asset is ever loaded.
//
// # Templates
//
// The default templates are embedded; Options.Dir, when set, may hold files
// of the same names that replace them (any other *.tmpl file there is an
// error, to catch typos):
//
//	email_subject.txt.tmpl  text/template: the subject line
//	email.html.tmpl         html/template: the HTML email
//	email.txt.tmpl          text/template: the text/plain part
//	twitter.txt.tmpl        text/template: the text split into the X thread
//	facebook.txt.tmpl       text/template: the Facebook post
//
// Every template sees a Data. Templates are parsed and executed against a
// sample at New, so a broken override fails at start with its file and
// line.
//
// # Recipients
//
// The email is rendered once per update, not per recipient. Recipient fields
// ({{.Recipient.Name}}, {{.Recipient.AttrOr "plan" "free"}}, see Recipient),
// in the templates and in the notice body, become substitution tokens that
// the sender fills per recipient with Rendering.Substitutions (SendGrid
// personalizations[].substitutions); Apply does the same locally.
//
// On the other channels recipient fields render as empty strings. Since
// {{.Recipient.Email}} is empty exactly there, a body can keep a greeting out
// of public posts:
//
//	{{if .Recipient.Email}}Hi {{.Recipient.NameOr "there"}},{{end}}
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/yuin/goldmark"

	"github.com/breachcast/breachcast"
)

//go:embed defaults/*.tmpl
var defaults embed.FS

// Template file names.
const (
	FileEmailSubject = "email_subject.txt.tmpl"
	FileEmailHTML    = "email.html.tmpl"
	FileEmailText    = "email.txt.tmpl"
	FileTwitter      = "twitter.txt.tmpl"
	FileFacebook     = "facebook.txt.tmpl"
)

// Files lists every template file name.
var Files = []string{FileEmailSubject, FileEmailHTML, FileEmailText, FileTwitter, FileFacebook}

// Limits of the rendered channels.
const (
	MaxFacebook = 63206 // characters of a Facebook post
	EmailWidth  = 72    // column the text/plain part is wrapped at
)

// Options configures a Renderer.
type Options struct {
	Dir       string // directory of override templates; "" for the embedded defaults
	Company   string // company name shown in messages, "Acme Inc."
	PublicURL string // status page base URL, https://status.example.com
}

// Renderer renders notices. It is safe for concurrent use.
type Renderer struct {
	opts     Options
	subject  *template.Template
	html     *htmltemplate.Template
	text     *template.Template
	twitter  *template.Template
	facebook *template.Template
	emailMD  goldmark.Markdown
	statusMD goldmark.Markdown
}

// Context is what a rendering needs beyond the notice.
type Context struct {
	Seq          int       // update number within the incident (1 = first notice); 0 means 1
	PublishedAt  time.Time // when the update is published
	IncidentURL  string    // the incident's status page; "" for PublicURL + "/incidents/" + slug
	Previous     *breachcast.Update
	Subscription bool // email for opt-in status subscribers: adds an unsubscribe footer
}

// Email is the rendered email; it may hold substitution tokens.
type Email struct {
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text"`
}

// Rendering is a notice rendered for its channels; channels the notice does
// not go out on stay empty. `breachcast preview --json` prints it.
type Rendering struct {
	Email    Email    `json:"email"`
	Twitter  []string `json:"twitter"`  // thread post texts, first to last
	Facebook string   `json:"facebook"` // plain text
	Status   string   `json:"status"`   // safe HTML fragment for the status page

	tokens []tokenRef // distinct tokens of Email, found once at Render
}

// Data is what every template sees.
type Data struct {
	Company     string
	PublicURL   string
	Incident    string // slug
	Title       string
	Status      breachcast.Status // {{.Status}} "identified", {{.Status.Title}} "Identified"
	Severity    breachcast.Severity
	Summary     string
	Seq         int
	PublishedAt time.Time
	IncidentURL string
	Previous    *breachcast.Update // nil for the first update
	// Body is the body as plain text: wrapped at 72 columns in the email
	// text part, unwrapped for the social channels.
	Body string
	// Email only.
	BodyHTML       htmltemplate.HTML // the body as inline-styled HTML
	Preheader      string            // inbox preview text
	StatusColor    htmltemplate.CSS  // badge background colour of the status
	Font           htmltemplate.CSS  // font-family list for inline styles
	Subscription   bool
	Recipient      Recipient // substitution tokens in emails; empty strings elsewhere
	UnsubscribeURL string    // token for the per-recipient unsubscribe link
}

// statusColors are badge colours with white text at 4.5:1 contrast or more.
var statusColors = map[breachcast.Status]htmltemplate.CSS{
	breachcast.Investigating: "#b91c1c",
	breachcast.Identified:    "#b45309",
	breachcast.Monitoring:    "#1d4ed8",
	breachcast.Resolved:      "#15803d",
}

var funcs = template.FuncMap{
	"wrap": func(width int, s string) string { return wrap(s, width) },
	"underline": func(s, c string) string {
		return strings.Repeat(c, max(1, displayWidth(s)))
	},
	"upper": strings.ToUpper,
}

// New loads and checks the templates.
func New(o Options) (*Renderer, error) {
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("templates: public URL %q must be an absolute http(s) URL", o.PublicURL)
		}
		o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	}
	if strings.TrimSpace(o.Company) == "" {
		return nil, errors.New("templates: company name is required")
	}
	src, err := load(o.Dir)
	if err != nil {
		return nil, err
	}
	r := &Renderer{opts: o, emailMD: newMarkdown(true), statusMD: newMarkdown(false)}
	for _, name := range []string{FileEmailSubject, FileEmailText, FileTwitter, FileFacebook} {
		t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src[name].text)
		if err != nil {
			return nil, fmt.Errorf("templates: %s: %w", src[name].path, err)
		}
		switch name {
		case FileEmailSubject:
			r.subject = t
		case FileEmailText:
			r.text = t
		case FileTwitter:
			r.twitter = t
		case FileFacebook:
			r.facebook = t
		}
	}
	r.html, err = htmltemplate.New(FileEmailHTML).Funcs(htmltemplate.FuncMap(funcs)).Option("missingkey=error").Parse(src[FileEmailHTML].text)
	if err != nil {
		return nil, fmt.Errorf("templates: %s: %w", src[FileEmailHTML].path, err)
	}
	if err := r.selfTest(src); err != nil {
		return nil, err
	}
	return r, nil
}

type source struct{ path, text string }

// load reads the embedded defaults, then the overrides in dir.
func load(dir string) (map[string]source, error) {
	src := map[string]source{}
	for _, name := range Files {
		b, err := defaults.ReadFile("defaults/" + name)
		if err != nil {
			return nil, fmt.Errorf("templates: embedded %s: %w", name, err)
		}
		src[name] = source{path: name + " (embedded)", text: string(b)}
	}
	if dir == "" {
		return src, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("templates: override directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".tmpl") {
			continue
		}
		p := filepath.Join(dir, name)
		if !slices.Contains(Files, name) {
			return nil, fmt.Errorf("templates: %s: unknown template file (known: %s)", p, strings.Join(Files, ", "))
		}
		b, err := fs.ReadFile(os.DirFS(dir), name)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("templates: %s: not valid UTF-8", p)
		}
		src[name] = source{path: p, text: string(b)}
	}
	return src, nil
}

// selfTest renders a sample notice with every template, as first notice and
// as an update with a previous status, so a template that refers to a
// missing field fails now rather than on the day of a breach.
func (r *Renderer) selfTest(src map[string]source) error {
	n := &breachcast.Notice{
		Incident: "sample", Title: "Sample notice", Status: breachcast.Identified,
		Severity: breachcast.SeverityMajor, Audience: breachcast.AudienceAll,
		Channels: slices.Clone(breachcast.Channels),
		Body:     "Sample body with a [link](https://example.com).",
	}
	prev := &breachcast.Update{Seq: 1, Status: breachcast.Investigating, Title: "Sample"}
	for _, c := range []Context{
		{Seq: 1, IncidentURL: "https://status.example.com/incidents/sample"},
		{Seq: 2, Previous: prev, Subscription: true, IncidentURL: "https://status.example.com/incidents/sample"},
	} {
		for _, s := range []string{"", "A one-line summary."} {
			n.Summary = s
			if _, err := r.Render(n, c); err != nil {
				var tl *ThreadTooLongError
				if errors.As(err, &tl) {
					return fmt.Errorf("templates: %s: the sample thread takes %d posts", src[FileTwitter].path, tl.Posts)
				}
				return fmt.Errorf("templates: %w", err)
			}
		}
	}
	return nil
}

func (r *Renderer) data(n *breachcast.Notice, c Context) Data {
	return Data{
		Company: r.opts.Company, PublicURL: r.opts.PublicURL,
		Incident: n.Incident, Title: n.Title, Status: n.Status, Severity: n.Severity, Summary: n.Summary,
		Seq: c.Seq, PublishedAt: c.PublishedAt, IncidentURL: c.IncidentURL, Previous: c.Previous,
		StatusColor: statusColor(n.Status), Font: fontFamily, Subscription: c.Subscription,
	}
}

func statusColor(s breachcast.Status) htmltemplate.CSS {
	if c, ok := statusColors[s]; ok {
		return c
	}
	return "#374151"
}

// Render renders n for the channels it lists.
func (r *Renderer) Render(n *breachcast.Notice, c Context) (*Rendering, error) {
	if n == nil {
		return nil, errors.New("render: no notice")
	}
	if c.Seq <= 0 {
		c.Seq = 1
	}
	if c.IncidentURL == "" {
		if r.opts.PublicURL == "" {
			return nil, errors.New("render: no incident URL: set the public URL or Context.IncidentURL")
		}
		c.IncidentURL = r.opts.PublicURL + "/incidents/" + url.PathEscape(n.Incident)
	}
	out := &Rendering{}
	if n.HasChannel(breachcast.ChannelEmail) {
		if err := r.renderEmail(n, c, out); err != nil {
			return nil, fmt.Errorf("render email: %w", err)
		}
	}
	if n.HasChannel(breachcast.ChannelTwitter) || n.HasChannel(breachcast.ChannelFacebook) || n.HasChannel(breachcast.ChannelStatus) {
		body, err := execBody(n.Body, ctxNone)
		if err != nil {
			return nil, fmt.Errorf("render body: %w", err)
		}
		src := []byte(body)
		doc := parseMarkdown(r.statusMD, src)
		d := r.data(n, c)
		d.Body = (&plain{src: src, social: true}).render(doc)
		if n.HasChannel(breachcast.ChannelStatus) {
			if out.Status, err = renderHTML(r.statusMD, src, doc); err != nil {
				return nil, fmt.Errorf("render status: %w", err)
			}
		}
		if n.HasChannel(breachcast.ChannelTwitter) {
			text, err := execute(r.twitter, d)
			if err != nil {
				return nil, fmt.Errorf("render twitter: %w", err)
			}
			if out.Twitter, err = splitThread(text, c.IncidentURL); err != nil {
				return nil, fmt.Errorf("render twitter: %w", err)
			}
		}
		if n.HasChannel(breachcast.ChannelFacebook) {
			if out.Facebook, err = execute(r.facebook, d); err != nil {
				return nil, fmt.Errorf("render facebook: %w", err)
			}
			out.Facebook = strings.TrimSpace(out.Facebook)
			if l := utf8.RuneCountInString(out.Facebook); l > MaxFacebook {
				return nil, fmt.Errorf("render facebook: the post is %d characters; Facebook allows %d", l, MaxFacebook)
			}
		}
	}
	return out, nil
}

func (r *Renderer) renderEmail(n *breachcast.Notice, c Context, out *Rendering) error {
	body, err := execBody(n.Body, ctxBody)
	if err != nil {
		return fmt.Errorf("body: %w", err)
	}
	src := []byte(body)
	doc := parseMarkdown(r.emailMD, src)
	bodyHTML, err := renderHTML(r.emailMD, src, doc)
	if err != nil {
		return err
	}
	bodyText := (&plain{src: src, width: EmailWidth, underline: true}).render(doc)

	d := r.data(n, c)
	d.Preheader = n.Summary
	if d.Preheader == "" {
		d.Preheader = truncateWords((&plain{src: src}).render(doc), 140)
	}

	preheader := d.Preheader
	d.Recipient = Recipient{ctxText}
	d.Body = retoken(bodyText, ctxText)
	d.Preheader = retoken(preheader, ctxText)
	d.UnsubscribeURL = extraToken(ctxText, ExtraUnsubscribeURL)
	subject, err := execute(r.subject, d)
	if err != nil {
		return err
	}
	out.Email.Subject = strings.Join(strings.Fields(subject), " ")
	text, err := execute(r.text, d)
	if err != nil {
		return err
	}
	out.Email.Text = strings.TrimSpace(text) + "\n"

	d.Recipient = Recipient{ctxHTML}
	d.Body = retoken(bodyText, ctxHTML)
	d.Preheader = retoken(preheader, ctxHTML)
	d.BodyHTML = htmltemplate.HTML(retoken(bodyHTML, ctxHTML))
	d.UnsubscribeURL = extraToken(ctxHTML, ExtraUnsubscribeURL)
	var b bytes.Buffer
	if err := r.html.Execute(&b, d); err != nil {
		return err
	}
	out.Email.HTML = b.String()
	out.tokens = scanTokens(out.Email.Subject, out.Email.HTML, out.Email.Text)
	return nil
}

func execute(t *template.Template, d Data) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// StatusHTML renders just the status page fragment of n: the body as safe
// HTML, headings demoted below the page's own h1 and h2. Recipient fields
// render as empty strings.
func (r *Renderer) StatusHTML(n *breachcast.Notice) (string, error) {
	body, err := execBody(n.Body, ctxNone)
	if err != nil {
		return "", fmt.Errorf("render status: %w", err)
	}
	src := []byte(body)
	return renderHTML(r.statusMD, src, parseMarkdown(r.statusMD, src))
}
