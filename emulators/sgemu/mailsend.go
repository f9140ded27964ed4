package sgemu

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// SendGrid's documented limits on one mail/send request.
const (
	maxPersonalizations = 1000
	maxRecipients       = 1000 // to + cc + bcc over the whole request
	maxAddressLen       = 320
	maxCategories       = 10
	maxCategoryLen      = 255
	maxArgsBytes        = 10000 // custom_args, merged, per personalization
	maxSubstBytes       = 10000 // substitutions per personalization
	maxReportedErrors   = 50
)

const helpBase = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"

// reservedHeaders may not be set through headers (SendGrid's list).
var reservedHeaders = []string{
	"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
	"content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}

// apiError is one entry of SendGrid's {"errors":[...]} body.
type apiError struct {
	Message string `json:"message"`
	Field   any    `json:"field"` // string or null
	Help    any    `json:"help"`  // string or null
}

func fieldError(field, anchor, msg string) apiError {
	return apiError{Message: msg, Field: field, Help: helpBase + anchor}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client may be gone
}

func writeErrors(w http.ResponseWriter, status int, errs ...apiError) {
	writeJSON(w, status, struct {
		Errors []apiError `json:"errors"`
	}{errs})
}

// The request body, as far as the emulator reads it. Unknown fields are
// ignored, as SendGrid ignores them.
type address struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

type personalization struct {
	To            []address         `json:"to"`
	CC            []address         `json:"cc"`
	BCC           []address         `json:"bcc"`
	From          *address          `json:"from"`
	Subject       *string           `json:"subject"`
	Headers       map[string]string `json:"headers"`
	Substitutions map[string]string `json:"substitutions"`
	CustomArgs    map[string]string `json:"custom_args"`
}

type content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type mailSend struct {
	Personalizations []*personalization `json:"personalizations"`
	From             *address           `json:"from"`
	ReplyTo          *address           `json:"reply_to"`
	Subject          *string            `json:"subject"`
	Content          []content          `json:"content"`
	TemplateID       string             `json:"template_id"`
	Headers          map[string]string  `json:"headers"`
	Categories       []string           `json:"categories"`
	CustomArgs       map[string]string  `json:"custom_args"`
	MailSettings     *struct {
		SandboxMode *struct {
			Enable bool `json:"enable"`
		} `json:"sandbox_mode"`
	} `json:"mail_settings"`
}

func (m *mailSend) sandbox() bool {
	return m.MailSettings != nil && m.MailSettings.SandboxMode != nil && m.MailSettings.SandboxMode.Enable
}

// mailSend answers POST /v3/mail/send.
func (s *Server) mailSend(w http.ResponseWriter, r *http.Request, scopes []string) {
	if !slices.Contains(scopes, ScopeMailSend) {
		drain(r)
		writeErrors(w, http.StatusForbidden, statusError(http.StatusForbidden))
		return
	}
	if r.ContentLength > MaxBodyBytes {
		writeErrors(w, http.StatusRequestEntityTooLarge, statusError(http.StatusRequestEntityTooLarge))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		panic(http.ErrAbortHandler) // the client went away mid-body
	}
	if len(body) > MaxBodyBytes {
		writeErrors(w, http.StatusRequestEntityTooLarge, statusError(http.StatusRequestEntityTooLarge))
		return
	}
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		if body, err = gunzip(body); errors.Is(err, errTooLarge) {
			writeErrors(w, http.StatusRequestEntityTooLarge, statusError(http.StatusRequestEntityTooLarge))
			return
		} else if err != nil {
			writeErrors(w, http.StatusBadRequest, apiError{Message: "Bad Request"})
			return
		}
	}
	if s.validate != nil {
		if err := s.validate(r, body); err != nil {
			s.addNonconformance(err)
			writeErrors(w, http.StatusBadRequest, apiError{Message: err.Error()})
			return
		}
	}
	var m mailSend
	if err := json.Unmarshal(body, &m); err != nil {
		writeErrors(w, http.StatusBadRequest, decodeError(err))
		return
	}
	if errs := validateMail(&m); len(errs) > 0 {
		writeErrors(w, http.StatusBadRequest, errs...)
		return
	}
	if m.sandbox() {
		// SendGrid checks a sandboxed send and delivers nothing.
		w.WriteHeader(http.StatusOK)
		return
	}
	id := newMessageID()
	s.record(&m, id)
	w.Header().Set("X-Message-Id", id)
	w.WriteHeader(http.StatusAccepted)
}

var errTooLarge = errors.New("body too large")

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBodyBytes {
		return nil, errTooLarge
	}
	return out, nil
}

// decodeError is SendGrid's answer to a body it cannot decode: a plain "Bad
// Request" for broken JSON, a typed message for a value of the wrong type.
func decodeError(err error) apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fieldError(te.Field, "message."+te.Field,
			fmt.Sprintf("Invalid type. Expected: %s, given: %s.", jsonType(te.Type), te.Value))
	}
	return apiError{Message: "Bad Request"}
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array"
	default:
		return "object"
	}
}

// newMessageID returns an id shaped like SendGrid's X-Message-Id: 22
// URL-safe base64 characters.
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validateMail applies SendGrid's semantic rules and returns its errors, in
// SendGrid's words, at most maxReportedErrors of them.
func validateMail(m *mailSend) []apiError {
	var errs []apiError
	add := func(e apiError) {
		if len(errs) < maxReportedErrors {
			errs = append(errs, e)
		}
	}

	ps := m.Personalizations
	switch {
	case len(ps) == 0:
		add(fieldError("personalizations", "-Personalizations-Errors",
			"The personalizations field is required and must have at least one personalization."))
	case len(ps) > maxPersonalizations:
		add(fieldError("personalizations", "-Personalizations-Errors", fmt.Sprintf(
			"The personalization block is limited to 1000 personalizations per API request. You have provided %d personalizations. Please consider splitting this into multiple requests and resending your request.", len(ps))))
		return errs // nothing more worth checking in such a request
	}

	recipients := 0
	for _, p := range ps {
		if p != nil {
			recipients += len(p.To) + len(p.CC) + len(p.BCC)
		}
	}
	if recipients > maxRecipients {
		add(fieldError("personalizations", "-Personalizations-Errors",
			"There is a limit of 1000 total recipients (to + cc + bcc) per request."))
		return errs
	}

	globalArgs := argsBytes(m.CustomArgs)
	seen := make(map[string]string, recipients) // lower-cased address -> field of first use
	allSubjects := len(ps) > 0
	for i, p := range ps {
		pf := "personalizations." + strconv.Itoa(i)
		if p == nil || len(p.To) == 0 {
			add(fieldError(pf+".to", "message.personalizations.to",
				"The to parameter is required for all personalization objects."))
			allSubjects = false
			continue
		}
		if p.Subject == nil {
			allSubjects = false
		} else if *p.Subject == "" {
			add(fieldError(pf+".subject", "message.personalizations.subject",
				"The subject of your email must be a string at least one character in length."))
		}
		local := make(map[string]bool, len(p.To)+len(p.CC)+len(p.BCC))
		for _, list := range []struct {
			name  string
			addrs []address
			label string
		}{{"to", p.To, "To"}, {"cc", p.CC, "CC"}, {"bcc", p.BCC, "BCC"}} {
			for j, a := range list.addrs {
				f := pf + "." + list.name + "." + strconv.Itoa(j) + ".email"
				switch {
				case len(a.Email) > maxAddressLen:
					add(fieldError(f, "message.personalizations."+list.name,
						"The "+list.label+" email exceeds the maximum total length of 320 characters"))
					continue
				case !validAddress(a.Email):
					add(fieldError(f, "-Email-Address", "Does not contain a valid address."))
					continue
				}
				key := strings.ToLower(a.Email)
				if local[key] {
					add(fieldError(pf, "message.personalizations", fmt.Sprintf(
						"Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [%s] in the %s.%s field.", a.Email, pf, list.name)))
					continue
				}
				local[key] = true
				if _, dup := seen[key]; dup {
					add(fieldError(f, "message.personalizations", fmt.Sprintf(
						"Each unique email address in the personalizations array should only be included once. You have included %s more than once.", a.Email)))
					continue
				}
				seen[key] = f
			}
		}
		if p.From != nil && !validAddress(p.From.Email) {
			add(fieldError(pf+".from.email", "message.from", "The from email does not contain a valid address."))
		}
		checkHeaders(p.Headers, pf+".headers", add)
		if n := argsBytes(p.Substitutions); n > maxSubstBytes {
			add(fieldError(pf+".substitutions", "message.personalizations.substitutions",
				"The total collective size of your substitutions may not exceed 10,000 bytes per personalization object."))
		}
		if mergedArgsBytes(globalArgs, m.CustomArgs, p.CustomArgs) > maxArgsBytes {
			add(fieldError(pf+".custom_args", "message.personalizations.custom_args",
				"The combined size of both global and personalization custom arguments may not exceed 10,000 bytes per personalization."))
		}
	}

	switch {
	case m.From == nil || m.From.Email == "":
		add(fieldError("from.email", "message.from",
			`The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.`))
	case len(m.From.Email) > maxAddressLen:
		add(fieldError("from.email", "message.from", "The From email exceeds the maximum total length of 320 characters"))
	case !validAddress(m.From.Email):
		add(fieldError("from.email", "message.from", "The from email does not contain a valid address."))
	}
	if m.ReplyTo != nil && !validAddress(m.ReplyTo.Email) {
		add(fieldError("reply_to.email", "message.reply_to",
			`The reply_to object, when used, must at least have an email parameter with a valid email address and it may also contain a name parameter. e.g. {"email": "example@example.com"} or {"email": "example@example.com", "name": "Example Recipient"}`))
	}

	hasTemplate := m.TemplateID != ""
	switch {
	case m.Subject != nil && *m.Subject == "":
		add(fieldError("subject", "message.subject",
			"The subject of your email must be a string at least one character in length."))
	case m.Subject == nil && !allSubjects && !hasTemplate:
		add(fieldError("subject", "message.subject",
			"The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."))
	}

	if len(m.Content) == 0 && !hasTemplate {
		add(fieldError("content", "message.content",
			"Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."))
	}
	for i, c := range m.Content {
		cf := "content." + strconv.Itoa(i)
		if c.Type == "" {
			add(fieldError(cf+".type", "message.content.type",
				"Your content type must be a string with length of at least one character."))
		} else if strings.ContainsAny(c.Type, ";\r\n") {
			add(fieldError(cf+".type", "message.content.type", "Cannot contain ';', or CRLF characters."))
		}
		if c.Value == "" {
			add(fieldError(cf+".value", "message.content.value",
				"The content value must be a string at least one character in length."))
		}
	}
	if !contentOrdered(m.Content) {
		add(fieldError("content", "message.content.value",
			"Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in your email: text/plain needs to be first, followed by text/html, followed by any other content."))
	}

	checkHeaders(m.Headers, "headers", add)
	checkCategories(m.Categories, add)
	return errs
}

// contentOrdered reports whether text/plain (if any) comes first and
// text/html (if any) right after it.
func contentOrdered(cs []content) bool {
	rank := func(t string) int {
		switch strings.ToLower(t) {
		case "text/plain":
			return 0
		case "text/html":
			return 1
		}
		return 2
	}
	for i := 1; i < len(cs); i++ {
		if rank(cs[i].Type) < rank(cs[i-1].Type) {
			return false
		}
	}
	return true
}

func checkHeaders(h map[string]string, field string, add func(apiError)) {
	for k := range h {
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			add(fieldError(field, "message.headers", "Header keys cannot contain non-ASCII characters or empty spaces."))
			continue
		}
		if slices.Contains(reservedHeaders, strings.ToLower(k)) {
			add(fieldError(field, "message.headers", "Header can not be one of the reserved keys."))
		}
	}
}

func checkCategories(cats []string, add func(apiError)) {
	if len(cats) > maxCategories {
		add(fieldError("categories", "message.categories", fmt.Sprintf(
			"There is a limit of 10 categories for each email that is sent. You provided %d categories.", len(cats))))
		return
	}
	for i, c := range cats {
		switch {
		case len(c) > maxCategoryLen:
			add(fieldError("categories", "message.categories", fmt.Sprintf(
				"Each category must not be longer than 255 characters. %s exceeds this limit", c)))
		case strings.IndexFunc(c, func(r rune) bool { return r > '~' }) >= 0:
			add(fieldError("categories", "message.categories", "Categories can not contain non-ASCII characters."))
		case slices.Contains(cats[:i], c):
			add(fieldError("categories", "message.categories", fmt.Sprintf(
				"The categories must be a unique list, and you have included %s more than once.", c)))
		}
	}
}

// argsBytes is the size of a string map as SendGrid counts it: keys plus
// values.
func argsBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// mergedArgsBytes is the size of global custom args overridden by a
// personalization's, without building the merged map.
func mergedArgsBytes(globalBytes int, global, own map[string]string) int {
	n := globalBytes
	for k, v := range own {
		if g, ok := global[k]; ok {
			n -= len(k) + len(g)
		}
		n += len(k) + len(v)
	}
	return n
}

// validAddress is a pragmatic version of SendGrid's address check: one @, a
// local part of 1..64 bytes, a dotted domain of at most 255 bytes, no
// spaces, controls or address punctuation.
func validAddress(a string) bool {
	if len(a) > maxAddressLen {
		return false
	}
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at > 64 || at == len(a)-1 {
		return false
	}
	local, domain := a[:at], a[at+1:]
	if len(domain) > 255 || strings.IndexByte(local, '@') >= 0 {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte(`<>()[],;:\"`, c) >= 0 {
			return false
		}
	}
	if !strings.Contains(domain, ".") || strings.Contains(domain, "..") {
		return false
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return local[0] != '.' && local[len(local)-1] != '.' && !strings.Contains(local, "..")
}
