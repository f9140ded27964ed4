package sgemu

import (
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
)

// inboxSize is how many recent messages the inbox page lists.
const inboxSize = 200

// The inbox pages use no remote asset and no script. Every value goes
// through html/template's escaping; an email's HTML is shown in a sandboxed
// srcdoc frame, which inherits the page's policy, so it cannot run scripts
// or fetch anything either.
const inboxCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; base-uri 'none'; form-action 'none'"

const pageStyle = `body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}
.note{color:#666}pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}iframe{width:100%;height:30em;border:1px solid #ccc}`

var inboxTmpl = template.Must(template.New("inbox").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SendGrid emulator inbox</title>
<style>` + pageStyle + `</style></head><body>
<h1>Emails your customers would get</h1>
<p class="note">SendGrid emulator: {{.Total}} messages in {{.Requests}} requests; nothing left this machine. The newest {{len .Messages}} are listed.</p>
{{if .Messages}}<table><tr><th>When</th><th>To</th><th>Subject</th></tr>
{{range .Messages}}<tr><td>{{.At.Format "15:04:05"}}</td><td>{{if .Name}}{{.Name}} {{end}}&lt;{{.To}}&gt;</td><td><a href="/messages/{{.ID}}">{{.Subject}}</a></td></tr>
{{end}}</table>{{else}}<p>No email yet.</p>{{end}}
</body></html>`))

var messageTmpl = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.M.Subject}}</title>
<style>` + pageStyle + `</style></head><body>
<p><a href="/">&larr; inbox</a></p>
<h1>{{.M.Subject}}</h1>
<table>
<tr><th>From</th><td>{{if .M.FromName}}{{.M.FromName}} {{end}}&lt;{{.M.From}}&gt;</td></tr>
<tr><th>To</th><td>{{if .M.Name}}{{.M.Name}} {{end}}&lt;{{.M.To}}&gt;</td></tr>
{{if .M.ReplyTo}}<tr><th>Reply-To</th><td>{{.M.ReplyTo}}</td></tr>{{end}}
<tr><th>Sent</th><td>{{.M.At.Format "2006-01-02 15:04:05 MST"}}</td></tr>
<tr><th>X-Message-Id</th><td>{{.M.XMessageID}}</td></tr>
{{range .Headers}}<tr><th>{{.}}</th><td>{{index $.M.Headers .}}</td></tr>{{end}}
{{if .M.Categories}}<tr><th>Categories</th><td>{{range $i, $c := .M.Categories}}{{if $i}}, {{end}}{{$c}}{{end}}</td></tr>{{end}}
{{range .Args}}<tr><th>custom_args.{{.}}</th><td>{{index $.M.CustomArgs .}}</td></tr>{{end}}
</table>
{{if .M.HTML}}<h2>HTML</h2>
<iframe sandbox="" title="HTML version" srcdoc="{{.M.HTML}}"></iframe>{{end}}
{{if .M.Text}}<h2>Plain text</h2>
<pre>{{.M.Text}}</pre>{{end}}
</body></html>`))

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", inboxCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// inbox answers GET /: the most recent messages.
func (s *Server) inbox(w http.ResponseWriter, r *http.Request) {
	data := struct {
		Total, Requests int
		Messages        []Message
	}{s.Total(), s.Requests(), s.Recent(inboxSize)}
	pageHeaders(w)
	inboxTmpl.Execute(w, data) //nolint:errcheck // the client may be gone
}

// message answers GET /messages/{id}: one kept message in full.
func (s *Server) message(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	m, ok := s.find(id)
	if err != nil || !ok {
		http.Error(w, "no such message (only the most recent ones are kept)", http.StatusNotFound)
		return
	}
	data := struct {
		M             Message
		Headers, Args []string
	}{m, slices.Sorted(maps.Keys(m.Headers)), slices.Sorted(maps.Keys(m.CustomArgs))}
	pageHeaders(w)
	messageTmpl.Execute(w, data) //nolint:errcheck // the client may be gone
}
