package templates

import (
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/breachcast/breachcast"
)

// Substitution tokens.
//
// The email is rendered once per update; recipient fields become tokens that
// the mail provider replaces per recipient (SendGrid personalizations[]
// .substitutions). A token is ASCII letters and digits only, so markdown,
// html/template escaping, URL escaping and line wrapping leave it alone:
//
//	BCTK <context> <field> <payload> KTCB
//
// context is h (HTML: the value is HTML-escaped), t (plain text) or b (the
// notice body, rewritten to h or t once the body is rendered); field is N
// name, E email, L locale, O name with default, A attribute, D attribute with
// default, X a value the sender supplies (unsubscribe_url); payload is the
// hex of the attribute or extra key, then Z and the hex of the default.
// Tokens are self-describing, so Substitutions needs only the rendered text.
const (
	tokenPrefix = "BCTK"
	tokenSuffix = "KTCB"
)

var tokenRE = regexp.MustCompile(`BCTK([htb])([NELOADX])([0-9a-f]*(?:Z[0-9a-f]*)?)KTCB`)

// Token contexts.
const (
	ctxNone = 0   // no recipient: every field renders as ""
	ctxHTML = 'h' // value HTML-escaped
	ctxText = 't' // value as is
	ctxBody = 'b' // notice body; becomes h or t after markdown rendering
)

// MaxSubstitution is the longest value, in bytes, a substitution may carry;
// longer values are cut at a character boundary. SendGrid allows 10,000
// bytes of substitutions per personalization.
const MaxSubstitution = 500

// ExtraUnsubscribeURL is the key of the per-recipient unsubscribe link in the
// extra map given to Substitutions; the subscription footer uses it.
const ExtraUnsubscribeURL = "unsubscribe_url"

// Recipient is what templates and notice bodies see as .Recipient:
//
//	{{.Recipient.Name}} {{.Recipient.Email}} {{.Recipient.Locale}}
//	{{.Recipient.NameOr "there"}}
//	{{.Recipient.Attr "plan"}} {{.Recipient.AttrOr "plan" "free"}}
//
// In emails each renders as a substitution token; on other channels, as "".
type Recipient struct{ ctx byte }

func (r Recipient) token(field byte, payload string) string {
	if r.ctx == ctxNone {
		return ""
	}
	return tokenPrefix + string(r.ctx) + string(field) + payload + tokenSuffix
}

// Name is the recipient's name, "" when unknown.
func (r Recipient) Name() string { return r.token('N', "") }

// NameOr is the recipient's name, or def when unknown.
func (r Recipient) NameOr(def string) string {
	if r.ctx == ctxNone {
		return ""
	}
	return r.token('O', "Z"+hex.EncodeToString([]byte(def)))
}

// Email is the recipient's address.
func (r Recipient) Email() string { return r.token('E', "") }

// Locale is the recipient's locale ("en-GB"), "" when unknown.
func (r Recipient) Locale() string { return r.token('L', "") }

// Attr is the recipient's custom CSV column key, "" when absent.
func (r Recipient) Attr(key string) string { return r.token('A', hex.EncodeToString([]byte(key))) }

// AttrOr is the recipient's custom CSV column key, or def when absent or empty.
func (r Recipient) AttrOr(key, def string) string {
	return r.token('D', hex.EncodeToString([]byte(key))+"Z"+hex.EncodeToString([]byte(def)))
}

// extraToken is a token for a value the sender supplies per recipient.
func extraToken(ctx byte, key string) string {
	return Recipient{ctx}.token('X', hex.EncodeToString([]byte(key)))
}

// retoken rewrites body tokens to the given context.
func retoken(s string, ctx byte) string {
	return strings.ReplaceAll(s, tokenPrefix+string(ctxBody), tokenPrefix+string(ctx))
}

// tokenRef is one distinct token of a rendering.
type tokenRef struct {
	token      string
	ctx, field byte
	key, def   string
}

func scanTokens(texts ...string) []tokenRef {
	var refs []tokenRef
	seen := map[string]bool{}
	for _, s := range texts {
		for _, m := range tokenRE.FindAllStringSubmatch(s, -1) {
			if seen[m[0]] {
				continue
			}
			seen[m[0]] = true
			key, def, _ := strings.Cut(m[3], "Z")
			k, err1 := hex.DecodeString(key)
			d, err2 := hex.DecodeString(def)
			if err1 != nil || err2 != nil {
				continue
			}
			refs = append(refs, tokenRef{token: m[0], ctx: m[1][0], field: m[2][0], key: string(k), def: string(d)})
		}
	}
	return refs
}

// Substitutions returns the per-recipient values of the tokens present in
// this rendering's email: HTML-escaped for HTML tokens, with defaults applied
// and control characters replaced by spaces. extra carries values the sender
// knows per recipient, at least ExtraUnsubscribeURL for subscription emails.
// A rendering made by Render answers without rescanning its text.
func (r *Rendering) Substitutions(rec *breachcast.Recipient, extra map[string]string) map[string]string {
	refs := r.tokens
	if refs == nil {
		refs = scanTokens(r.Email.Subject, r.Email.HTML, r.Email.Text)
	}
	if rec == nil {
		rec = &breachcast.Recipient{}
	}
	subs := make(map[string]string, len(refs))
	for _, t := range refs {
		var v string
		switch t.field {
		case 'N':
			v = rec.Name
		case 'O':
			v = rec.Name
			if strings.TrimSpace(v) == "" {
				v = t.def
			}
		case 'E':
			v = rec.Email
		case 'L':
			v = rec.Locale
		case 'A', 'D':
			v = attr(rec.Attrs, t.key)
			if t.field == 'D' && strings.TrimSpace(v) == "" {
				v = t.def
			}
		case 'X':
			v = extra[t.key]
		}
		v = clean(v)
		if t.ctx == ctxHTML {
			v = html.EscapeString(v)
		}
		subs[t.token] = v
	}
	return subs
}

// Tokens returns the distinct substitution tokens present in the email, in
// order of first appearance (subject, HTML, text).
func (r *Rendering) Tokens() []string {
	refs := r.tokens
	if refs == nil {
		refs = scanTokens(r.Email.Subject, r.Email.HTML, r.Email.Text)
	}
	out := make([]string, len(refs))
	for i, t := range refs {
		out[i] = t.token
	}
	return out
}

// attr looks key up exactly, then ignoring case (CSV headers vary).
func attr(attrs map[string]string, key string) string {
	if v, ok := attrs[key]; ok {
		return v
	}
	for k, v := range attrs {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// clean makes a recipient value safe to put in a header or a line of text:
// control characters become spaces and the value is cut to MaxSubstitution.
func clean(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, v)
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) > MaxSubstitution {
		cut := MaxSubstitution
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	return strings.TrimSpace(v)
}

// Apply replaces every occurrence of each key of subs in s, as SendGrid does
// with substitutions. Preview and the SendGrid emulator use it.
func Apply(s string, subs map[string]string) string {
	if len(subs) == 0 {
		return s
	}
	keys := make([]string, 0, len(subs))
	for k := range subs {
		if k != "" {
			keys = append(keys, k)
		}
	}
	// Longest first, so a key that contains another wins.
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		pairs = append(pairs, k, subs[k])
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// bodyData is what a notice body sees when executed as a template.
type bodyData struct {
	Recipient Recipient
}

// maxBodyOutput bounds what a body template may produce ({{range 1e9}}).
const maxBodyOutput = 2 << 20

var errBodyTooLong = errors.New("output exceeds 2 MiB")

type limitWriter struct {
	w strings.Builder
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.w.Len()+len(p) > maxBodyOutput {
		return 0, errBodyTooLong
	}
	return l.w.Write(p)
}

// execBody runs the notice body as a text/template with .Recipient in the
// given token context. Errors name the body's own lines ("body:3:5: ...").
func execBody(body string, ctx byte) (string, error) {
	if !strings.Contains(body, "{{") {
		return body, nil
	}
	t, err := template.New("body").Option("missingkey=error").Parse(body)
	if err != nil {
		return "", err
	}
	var w limitWriter
	if err := t.Execute(io.Writer(&w), bodyData{Recipient{ctx}}); err != nil {
		return "", err
	}
	return w.w.String(), nil
}

// CheckBody reports whether a notice body is a valid template: it must parse
// and may use only .Recipient (Name, NameOr, Email, Locale, Attr, AttrOr).
// The error names the line within the body as "template: body:LINE: ...".
func CheckBody(body string) error {
	if strings.Contains(body, tokenPrefix) && tokenRE.MatchString(body) {
		return fmt.Errorf("template: body:%d: contains a reserved substitution token", 1+strings.Count(body[:tokenRE.FindStringIndex(body)[0]], "\n"))
	}
	_, err := execBody(body, ctxBody)
	return err
}
