package sgemu_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/breachcast/breachcast/emulators/sgemu"
	"github.com/breachcast/breachcast/internal/conformance"
	"github.com/breachcast/breachcast/internal/testclock"
)

const key = "SG.test-key"

func start(t *testing.T, o sgemu.Options) (*sgemu.Server, string) {
	t.Helper()
	if o.Keys == nil {
		o.Keys = map[string][]string{key: nil}
	}
	s := sgemu.New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, ts.URL
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// errors decodes SendGrid's error body.
func (a answer) errors(t *testing.T) []map[string]any {
	t.Helper()
	var body struct {
		Errors []map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(a.Body, &body); err != nil {
		t.Fatalf("error body is not SendGrid's JSON: %v: %q", err, a.Body)
	}
	return body.Errors
}

func do(t *testing.T, method, url, apiKey string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func send(t *testing.T, base string, body string) answer {
	t.Helper()
	return do(t, "POST", base+"/v3/mail/send", key, []byte(body))
}

// mailJSON is a valid mail/send body to the given addresses.
func mailJSON(to ...string) string {
	var ps []string
	for _, a := range to {
		ps = append(ps, `{"to":[{"email":"`+a+`"}]}`)
	}
	return `{"personalizations":[` + strings.Join(ps, ",") + `],"from":{"email":"security@example.com","name":"Example Security"},` +
		`"subject":"Security notice","content":[{"type":"text/plain","value":"hello"},{"type":"text/html","value":"<p>hello</p>"}]}`
}

func TestAcceptsARequestBuiltWithSendGridsOwnHelpers(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	m := mail.NewV3Mail()
	m.SetFrom(mail.NewEmail("Example Security", "security@example.com"))
	m.SetReplyTo(mail.NewEmail("", "reply+tok@in.example.com"))
	m.Subject = "We were breached, -name-"
	p := mail.NewPersonalization()
	p.AddTos(mail.NewEmail("Ada", "Ada@Example.com"))
	p.SetHeader("Message-ID", "<u1.r1@example.com>")
	p.SetSubstitution("-name-", "Ada")
	p.SetCustomArg("delivery", "42")
	m.AddPersonalizations(p)
	m.AddContent(mail.NewContent("text/plain", "Dear -name-"), mail.NewContent("text/html", "<p>Dear -name-</p>"))
	m.AddCategories("breach")
	m.SetCustomArg("update", "7")

	a := send(t, base, string(mail.GetRequestBody(m)))
	if a.Status != http.StatusAccepted {
		t.Fatalf("status %d, body %s; want 202", a.Status, a.Body)
	}
	id := a.Header.Get("X-Message-Id")
	if len(id) != 22 {
		t.Errorf("X-Message-Id %q: want 22 characters like SendGrid's", id)
	}
	if len(a.Body) != 0 {
		t.Errorf("202 body %q: SendGrid answers an empty body", a.Body)
	}
	if emu.Count("ada@example.com") != 1 || emu.Total() != 1 || emu.Requests() != 1 {
		t.Errorf("count %d total %d requests %d: want 1 each", emu.Count("ada@example.com"), emu.Total(), emu.Requests())
	}
	got := emu.Messages("ADA@example.com")
	if len(got) != 1 {
		t.Fatalf("kept %d messages for ada, want 1", len(got))
	}
	msg := got[0]
	if msg.Subject != "We were breached, Ada" || msg.Text != "Dear Ada" || msg.HTML != "<p>Dear Ada</p>" {
		t.Errorf("rendered %q / %q / %q: substitutions not applied", msg.Subject, msg.Text, msg.HTML)
	}
	if msg.To != "Ada@Example.com" || msg.Name != "Ada" || msg.From != "security@example.com" ||
		msg.FromName != "Example Security" || msg.ReplyTo != "reply+tok@in.example.com" {
		t.Errorf("addresses: %+v", msg)
	}
	if msg.Headers["Message-ID"] != "<u1.r1@example.com>" || msg.XMessageID != id {
		t.Errorf("headers %v, x-message-id %q (want %q)", msg.Headers, msg.XMessageID, id)
	}
	if msg.CustomArgs["delivery"] != "42" || msg.CustomArgs["update"] != "7" || len(msg.Categories) != 1 {
		t.Errorf("custom args %v, categories %v", msg.CustomArgs, msg.Categories)
	}
}

func TestAppliesSendGridsRulesWithSendGridsMessages(t *testing.T) {
	many := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, ",")
	}
	from := `"from":{"email":"security@example.com"}`
	body := `"subject":"s","content":[{"type":"text/plain","value":"x"}]`
	big := strings.Repeat("x", 6000)
	tests := []struct {
		name    string
		json    string
		status  int
		field   string // want this field (nil when "")
		message string // want a message containing this
	}{
		{"broken JSON", `{"personalizations":[`, 400, "", "Bad Request"},
		{"custom_args of the wrong type", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,` + body + `,"custom_args":"x"}`,
			400, "custom_args", "Invalid type. Expected: object, given: string."},
		{"no personalizations", `{` + from + `,` + body + `}`, 400, "personalizations",
			"The personalizations field is required and must have at least one personalization."},
		{"1001 personalizations", `{"personalizations":[` + many(1001, func(i int) string { return fmt.Sprintf(`{"to":[{"email":"u%d@example.com"}]}`, i) }) + `],` + from + `,` + body + `}`,
			400, "personalizations", "You have provided 1001 personalizations"},
		{"1001 recipients in one personalization", `{"personalizations":[{"to":[` + many(1001, func(i int) string { return fmt.Sprintf(`{"email":"u%d@example.com"}`, i) }) + `]}],` + from + `,` + body + `}`,
			400, "personalizations", "There is a limit of 1000 total recipients (to + cc + bcc) per request."},
		{"1000 personalizations", `{"personalizations":[` + many(1000, func(i int) string { return fmt.Sprintf(`{"to":[{"email":"u%d@example.com"}]}`, i) }) + `],` + from + `,` + body + `}`,
			202, "", ""},
		{"personalization without to", `{"personalizations":[{"subject":"x"}],` + from + `,` + body + `}`,
			400, "personalizations.0.to", "The to parameter is required for all personalization objects."},
		{"invalid recipient address", `{"personalizations":[{"to":[{"email":"not an address"}]}],` + from + `,` + body + `}`,
			400, "personalizations.0.to.0.email", "Does not contain a valid address."},
		{"recipient address over 320 characters", `{"personalizations":[{"to":[{"email":"a@` + strings.Repeat("b", 320) + `.com"}]}],` + from + `,` + body + `}`,
			400, "personalizations.0.to.0.email", "The To email exceeds the maximum total length of 320 characters"},
		{"an address in two personalizations, differently cased", `{"personalizations":[{"to":[{"email":"a@example.com"}]},{"to":[{"email":"A@Example.COM"}]}],` + from + `,` + body + `}`,
			400, "personalizations.1.to.0.email", "You have included A@Example.COM more than once."},
		{"an address in to and cc", `{"personalizations":[{"to":[{"email":"a@example.com"}],"cc":[{"email":"a@example.com"}]}],` + from + `,` + body + `}`,
			400, "personalizations.0", "We found the first duplicate instance of [a@example.com] in the personalizations.0.cc field."},
		{"no from", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + body + `}`,
			400, "from.email", "The from object must be provided for every email send."},
		{"invalid from", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"security"},` + body + `}`,
			400, "from.email", "The from email does not contain a valid address."},
		{"invalid reply_to", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"reply_to":{"email":"x"},` + body + `}`,
			400, "reply_to.email", "The reply_to object, when used, must at least have an email parameter"},
		{"no subject anywhere", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"content":[{"type":"text/plain","value":"x"}]}`,
			400, "subject", "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."},
		{"a subject in every personalization", `{"personalizations":[{"to":[{"email":"a@example.com"}],"subject":"s"}],` + from + `,"content":[{"type":"text/plain","value":"x"}]}`,
			202, "", ""},
		{"an empty subject", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"subject":"","content":[{"type":"text/plain","value":"x"}]}`,
			400, "subject", "The subject of your email must be a string at least one character in length."},
		{"no content", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"subject":"s"}`,
			400, "content", "Unless a valid template_id is provided, the content parameter is required."},
		{"a template instead of content", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"template_id":"d-123"}`,
			202, "", ""},
		{"html before plain text", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"subject":"s","content":[{"type":"text/html","value":"<p>x</p>"},{"type":"text/plain","value":"x"}]}`,
			400, "content", "text/plain needs to be first, followed by text/html"},
		{"an empty content value", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],` + from + `,"subject":"s","content":[{"type":"text/plain","value":""}]}`,
			400, "content.0.value", "The content value must be a string at least one character in length."},
		{"a reserved header", `{"personalizations":[{"to":[{"email":"a@example.com"}],"headers":{"Reply-To":"x@example.com"}}],` + from + `,` + body + `}`,
			400, "personalizations.0.headers", "Header can not be one of the reserved keys."},
		{"a header key with a space", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"headers":{"X Bad":"1"},` + from + `,` + body + `}`,
			400, "headers", "Header keys cannot contain non-ASCII characters or empty spaces."},
		{"custom_args over 10,000 bytes once merged", `{"personalizations":[{"to":[{"email":"a@example.com"}],"custom_args":{"b":"` + big + `"}}],"custom_args":{"a":"` + big + `"},` + from + `,` + body + `}`,
			400, "personalizations.0.custom_args", "may not exceed 10,000 bytes per personalization."},
		{"custom_args overriding a global key stay small", `{"personalizations":[{"to":[{"email":"a@example.com"}],"custom_args":{"a":"1"}}],"custom_args":{"a":"` + big + `"},` + from + `,` + body + `}`,
			202, "", ""},
		{"substitutions over 10,000 bytes", `{"personalizations":[{"to":[{"email":"a@example.com"}],"substitutions":{"-a-":"` + big + `","-b-":"` + big + `"}}],` + from + `,` + body + `}`,
			400, "personalizations.0.substitutions", "may not exceed 10,000 bytes per personalization object."},
		{"eleven categories", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"categories":[` + many(11, func(i int) string { return fmt.Sprintf(`"c%d"`, i) }) + `],` + from + `,` + body + `}`,
			400, "categories", "There is a limit of 10 categories for each email that is sent. You provided 11 categories."},
		{"a category twice", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"categories":["x","x"],` + from + `,` + body + `}`,
			400, "categories", "you have included x more than once."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, base := start(t, sgemu.Options{})
			a := send(t, base, tt.json)
			if a.Status != tt.status {
				t.Fatalf("status %d (body %.300s), want %d", a.Status, a.Body, tt.status)
			}
			if tt.status != 400 {
				if emu.Total() == 0 {
					t.Error("accepted but nothing recorded")
				}
				return
			}
			if emu.Total() != 0 || emu.Requests() != 0 {
				t.Errorf("refused request recorded: total %d, requests %d", emu.Total(), emu.Requests())
			}
			for _, e := range a.errors(t) {
				msg, _ := e["message"].(string)
				if !strings.Contains(msg, tt.message) {
					continue
				}
				if tt.field == "" && e["field"] != nil || tt.field != "" && e["field"] != tt.field {
					t.Errorf("field %v, want %q", e["field"], tt.field)
				}
				return
			}
			t.Errorf("no error says %q: %s", tt.message, a.Body)
		})
	}
}

func TestAnswersOver30MBWith413(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	a := send(t, base, `{"personalizations":[],"x":"`+strings.Repeat("x", sgemu.MaxBodyBytes)+`"}`)
	if a.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", a.Status)
	}
	if e := a.errors(t); len(e) != 1 || e[0]["message"] != "content too large" {
		t.Errorf("errors %v", e)
	}
	if emu.Total() != 0 {
		t.Error("an oversized request was recorded")
	}
}

func TestAcceptsAGzippedBody(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, mailJSON("a@example.com"))
	zw.Close()
	req, _ := http.NewRequest("POST", base+"/v3/mail/send", &buf)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || emu.Count("a@example.com") != 1 {
		t.Errorf("status %d, count %d: want 202 and 1", resp.StatusCode, emu.Count("a@example.com"))
	}
}

func TestChecksTheKeyAndItsScopes(t *testing.T) {
	emu, base := start(t, sgemu.Options{Keys: map[string][]string{
		key:         nil,
		"SG.alerts": {"alerts.read"},
	}})
	tests := []struct {
		name, method, path, key string
		status                  int
		message                 string
	}{
		{"no key", "POST", "/v3/mail/send", "", 401, "authorization required"},
		{"unknown key", "POST", "/v3/mail/send", "SG.nope", 401, "The provided authorization grant is invalid, expired, or revoked"},
		{"key without mail.send", "POST", "/v3/mail/send", "SG.alerts", 403, "access forbidden"},
		{"scopes without a key", "GET", "/v3/scopes", "", 401, "authorization required"},
		{"mail/send by GET", "GET", "/v3/mail/send", key, 405, "method not allowed"},
		{"an endpoint the emulator lacks", "GET", "/v3/templates", key, 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, base+tt.path, tt.key, []byte(mailJSON("a@example.com")))
			if a.Status != tt.status {
				t.Fatalf("status %d, want %d", a.Status, tt.status)
			}
			if e := a.errors(t); len(e) != 1 || e[0]["message"] != tt.message || e[0]["field"] != nil {
				t.Errorf("errors %v, want one with message %q and field null", e, tt.message)
			}
		})
	}
	if emu.Total() != 0 {
		t.Errorf("refused requests recorded %d messages", emu.Total())
	}

	for k, want := range map[string]string{key: `{"scopes":["mail.send"]}`, "SG.alerts": `{"scopes":["alerts.read"]}`} {
		a := do(t, "GET", base+"/v3/scopes", k, nil)
		if a.Status != 200 || strings.TrimSpace(string(a.Body)) != want {
			t.Errorf("scopes of %s: %d %s, want 200 %s", k, a.Status, a.Body, want)
		}
	}
}

func TestAcceptsAnyKeyWhenNoneAreConfigured(t *testing.T) {
	emu := sgemu.New(sgemu.Options{})
	ts := httptest.NewServer(emu)
	defer ts.Close()
	if a := do(t, "POST", ts.URL+"/v3/mail/send", "SG.whatever", []byte(mailJSON("a@example.com"))); a.Status != 202 {
		t.Errorf("status %d, want 202", a.Status)
	}
	if a := do(t, "POST", ts.URL+"/v3/mail/send", "", []byte(mailJSON("a@example.com"))); a.Status != 401 {
		t.Errorf("without a key: status %d, want 401", a.Status)
	}
}

func TestRendersSubstitutionsAndMergesLikeSendGrid(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	a := send(t, base, `{"personalizations":[
		{"to":[{"email":"a@example.com","name":"Ada"}],"subject":"For -name-: -name_full-",
		 "substitutions":{"-name-":"Ada","-name_full-":"Ada Lovelace","-token-":"-name-"},
		 "headers":{"X-Own":"1","X-Both":"mine"},"custom_args":{"delivery":"1","shared":"mine"}},
		{"to":[{"email":"b@example.com"}],"substitutions":{"-name-":"Bob"}}],
		"from":{"email":"security@example.com"},"reply_to":{"email":"reply+-token-@in.example.com"},
		"subject":"Hello -name-","headers":{"X-Both":"global","X-Global":"g"},"custom_args":{"shared":"global","update":"9"},
		"content":[{"type":"text/plain","value":"-name- / -name_full- / -token-"},{"type":"text/html","value":"<b>-name-</b>"}]}`)
	if a.Status != 202 {
		t.Fatalf("status %d: %s", a.Status, a.Body)
	}
	ada := emu.Messages("a@example.com")[0]
	if ada.Subject != "For Ada: Ada Lovelace" {
		t.Errorf("subject %q: the personalization's subject wins and longer keys are not cut by shorter ones", ada.Subject)
	}
	if ada.Text != "Ada / Ada Lovelace / -name-" {
		t.Errorf("text %q: a substituted value must not be substituted again", ada.Text)
	}
	if ada.ReplyTo != "reply+-name-@in.example.com" {
		t.Errorf("reply-to %q: substitutions apply to reply_to", ada.ReplyTo)
	}
	wantHeaders := map[string]string{"X-Own": "1", "X-Both": "mine", "X-Global": "g"}
	if fmt.Sprint(ada.Headers) != fmt.Sprint(wantHeaders) {
		t.Errorf("headers %v, want %v", ada.Headers, wantHeaders)
	}
	wantArgs := map[string]string{"delivery": "1", "shared": "mine", "update": "9"}
	if fmt.Sprint(ada.CustomArgs) != fmt.Sprint(wantArgs) {
		t.Errorf("custom args %v, want %v", ada.CustomArgs, wantArgs)
	}
	bob := emu.Messages("b@example.com")[0]
	if bob.Subject != "Hello Bob" || bob.HTML != "<b>Bob</b>" {
		t.Errorf("bob got %q / %q", bob.Subject, bob.HTML)
	}
}

func TestKeepsOnlyTheMostRecentMessagesButCountsEveryOne(t *testing.T) {
	emu, base := start(t, sgemu.Options{KeepMessages: 3})
	for i := range 5 {
		if a := send(t, base, mailJSON(fmt.Sprintf("u%d@example.com", i))); a.Status != 202 {
			t.Fatalf("status %d", a.Status)
		}
	}
	send(t, base, mailJSON("U4@example.com", "u5@example.com"))
	if emu.Total() != 7 || emu.Requests() != 6 || emu.Count("u4@EXAMPLE.com") != 2 {
		t.Errorf("total %d requests %d count(u4) %d: want 7, 6, 2", emu.Total(), emu.Requests(), emu.Count("u4@example.com"))
	}
	if got := emu.Messages("u0@example.com"); len(got) != 0 {
		t.Errorf("u0 still has %d kept messages, want them dropped", len(got))
	}
	var to []string
	for _, m := range emu.Recent(10) {
		to = append(to, m.To)
	}
	if want := "u5@example.com U4@example.com u4@example.com"; strings.Join(to, " ") != want {
		t.Errorf("recent %v, want newest first: %s", to, want)
	}
	if got := emu.Messages("u4@example.com"); len(got) != 2 || got[0].ID >= got[1].ID {
		t.Errorf("u4 messages %+v: want 2, oldest first", got)
	}
	counts := emu.Counts()
	if len(counts) != 6 || counts["u4@example.com"] != 2 {
		t.Errorf("counts %v", counts)
	}
	emu.Reset()
	if emu.Total() != 0 || len(emu.Recent(10)) != 0 || emu.Count("u4@example.com") != 0 {
		t.Error("Reset left records behind")
	}
}

func TestKeepsNoMessagesWhenAskedTo(t *testing.T) {
	emu, base := start(t, sgemu.Options{KeepMessages: -1})
	send(t, base, mailJSON("a@example.com"))
	if emu.Count("a@example.com") != 1 || len(emu.Recent(5)) != 0 {
		t.Errorf("count %d, kept %d: want 1 and none", emu.Count("a@example.com"), len(emu.Recent(5)))
	}
}

func TestSandboxModeValidatesButDeliversNothing(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	body := strings.TrimSuffix(mailJSON("a@example.com"), "}") + `,"mail_settings":{"sandbox_mode":{"enable":true}}}`
	a := send(t, base, body)
	if a.Status != http.StatusOK || emu.Total() != 0 {
		t.Errorf("status %d, total %d: want 200 and nothing delivered", a.Status, emu.Total())
	}
	bad := `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"mail_settings":{"sandbox_mode":{"enable":true}}}`
	if a := send(t, base, bad); a.Status != 400 {
		t.Errorf("invalid sandboxed send: status %d, want 400", a.Status)
	}
}

func TestReportsRequestsTheSpecValidatorRefuses(t *testing.T) {
	spec := conformance.MustLoad(t, conformance.SendGridMailSpec)
	emu, base := start(t, sgemu.Options{Validator: spec.ValidateRequest})

	if a := send(t, base, mailJSON("a@example.com")); a.Status != 202 {
		t.Fatalf("conforming request: status %d: %s", a.Status, a.Body)
	}
	if f := emu.ConformanceFailures(); len(f) != 0 {
		t.Fatalf("conforming request reported: %v", f)
	}
	// ip_pool_name must be 2..64 characters in the spec; the emulator's own
	// rules do not look at it, so only the validator can catch this.
	body := strings.TrimSuffix(mailJSON("b@example.com"), "}") + `,"ip_pool_name":"x"}`
	a := send(t, base, body)
	if a.Status != 400 {
		t.Fatalf("non-conforming request: status %d, want 400", a.Status)
	}
	f := emu.ConformanceFailures()
	if len(f) != 1 || !strings.Contains(f[0].Error(), "ip_pool_name") {
		t.Fatalf("conformance failures %v: want one naming ip_pool_name", f)
	}
	if e := a.errors(t); len(e) != 1 || !strings.Contains(e[0]["message"].(string), "does not conform") {
		t.Errorf("answer %s: want SendGrid's shape with the validator's words", a.Body)
	}
	if emu.Count("b@example.com") != 0 {
		t.Error("a non-conforming request was delivered")
	}
}

func TestFailNextAnswersWithSendGridsErrorsThenRecovers(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	emu.FailNext(2, 503)
	emu.FailNext(1, 429)
	for i, want := range []int{503, 503, 429, 202} {
		a := send(t, base, mailJSON(fmt.Sprintf("u%d@example.com", i)))
		if a.Status != want {
			t.Fatalf("request %d: status %d, want %d", i, a.Status, want)
		}
		switch want {
		case 503:
			if e := a.errors(t); e[0]["message"] != "service unavailable" {
				t.Errorf("503 body %s", a.Body)
			}
		case 429:
			if a.Header.Get("X-RateLimit-Reset") == "" || a.Header.Get("X-RateLimit-Remaining") != "0" {
				t.Errorf("429 without rate-limit headers: %v", a.Header)
			}
		}
	}
	if emu.Total() != 1 {
		t.Errorf("total %d: failed requests must not be delivered", emu.Total())
	}
}

func TestRateLimitsPerWindowWithSendGridsHeaders(t *testing.T) {
	clk := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	emu, base := start(t, sgemu.Options{Now: clk.Now})
	emu.SetRateLimit(2, time.Minute)
	reset := fmt.Sprint(clk.Now().Add(time.Minute).Unix())
	for i, want := range []struct {
		status    int
		remaining string
	}{{202, "1"}, {202, "0"}, {429, "0"}} {
		a := send(t, base, mailJSON(fmt.Sprintf("u%d@example.com", i)))
		if a.Status != want.status {
			t.Fatalf("request %d: status %d, want %d", i, a.Status, want.status)
		}
		h := a.Header
		if h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Remaining") != want.remaining || h.Get("X-RateLimit-Reset") != reset {
			t.Errorf("request %d: limit %q remaining %q reset %q; want 2, %s, %s", i,
				h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"), h.Get("X-RateLimit-Reset"), want.remaining, reset)
		}
		if want.status == 429 {
			if e := a.errors(t); e[0]["message"] != "too many requests" {
				t.Errorf("429 body %s", a.Body)
			}
		}
	}
	clk.Advance(time.Minute)
	if a := send(t, base, mailJSON("later@example.com")); a.Status != 202 {
		t.Errorf("after the window: status %d, want 202", a.Status)
	}
	emu.SetRateLimit(0, 0)
	for range 3 {
		if a := send(t, base, mailJSON(fmt.Sprintf("x%d@example.com", emu.Total()))); a.Status != 202 || a.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("limit off: status %d, headers %v", a.Status, a.Header)
		}
	}
}

func TestGarbageNextAnswersSomethingThatIsNotSendGrid(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	emu.GarbageNext(1)
	a := send(t, base, mailJSON("a@example.com"))
	if a.Status != 200 || json.Valid(a.Body) || a.Header.Get("X-Message-Id") != "" {
		t.Errorf("status %d, body %q, id %q: want 200, not JSON, no id", a.Status, a.Body, a.Header.Get("X-Message-Id"))
	}
	if emu.Total() != 0 {
		t.Error("garbage answer delivered the message")
	}
	if a := send(t, base, mailJSON("a@example.com")); a.Status != 202 {
		t.Errorf("next request: %d, want 202", a.Status)
	}
}

func post(ctx context.Context, base, body string) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v3/mail/send", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func TestHangNextHoldsTheRequestUntilTheClientGivesUp(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	emu.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := post(ctx, base, mailJSON("a@example.com"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung request: err %v, want the client's deadline", err)
	}
	if emu.Total() != 0 {
		t.Error("a hung request was delivered")
	}
	if err := post(context.Background(), base, mailJSON("a@example.com")); err != nil || emu.Total() != 1 {
		t.Errorf("next request: err %v, total %d", err, emu.Total())
	}
}

func TestCloseReleasesHungRequests(t *testing.T) {
	emu := sgemu.New(sgemu.Options{})
	base, err := emu.Start()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("Start listened on %s, want loopback", base)
	}
	emu.HangNext(3)
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- post(context.Background(), base, mailJSON("a@example.com")) }()
	}
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for emu.Received() < 3 {
		select {
		case <-deadline:
			t.Fatal("requests never reached the emulator")
		case <-tick.C:
		}
	}
	if err := emu.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a hung request got an answer")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close left a hung request hanging")
		}
	}
	if _, err := emu.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestCloseDropsRequestsWaitingOutTheLatency(t *testing.T) {
	// Mounted on a server of the test's own, so only the emulator's Close
	// can end the wait.
	emu, base := start(t, sgemu.Options{})
	emu.SetLatency(time.Hour)
	errs := make(chan error, 1)
	go func() { errs <- post(context.Background(), base, mailJSON("a@example.com")) }()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for emu.Received() < 1 {
		select {
		case <-deadline:
			t.Fatal("the request never reached the emulator")
		case <-tick.C:
		}
	}
	emu.Close()
	select {
	case err := <-errs:
		if err == nil {
			t.Error("a request waiting out the latency was answered at Close; want the connection dropped")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a waiting request waiting")
	}
	if emu.Total() != 0 {
		t.Error("a dropped request was delivered")
	}
}

func TestCloseNextDropsTheConnectionWithoutAnAnswer(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	emu.CloseNext(1)
	err := post(context.Background(), base, mailJSON("a@example.com"))
	if err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("err %v, want the connection closed (EOF)", err)
	}
	if emu.Total() != 0 {
		t.Error("a dropped request was delivered")
	}
	if err := post(context.Background(), base, mailJSON("a@example.com")); err != nil {
		t.Errorf("next request: %v", err)
	}
}

func TestLatencyDelaysRequestsWithoutSerializingThem(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	const latency, n = 100 * time.Millisecond, 50
	emu.SetLatency(latency)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Go(func() {
			t0 := time.Now()
			if err := post(context.Background(), base, mailJSON(fmt.Sprintf("u%d@example.com", i))); err != nil {
				t.Error(err)
			}
			if d := time.Since(t0); d < latency {
				t.Errorf("answered after %v, want at least %v", d, latency)
			}
		})
	}
	wg.Wait()
	if d := time.Since(began); d > 20*latency {
		t.Errorf("%d concurrent requests took %v: latency must not serialize them", n, d)
	}
	if emu.Total() != n {
		t.Errorf("total %d, want %d", emu.Total(), n)
	}

	// A client that gives up during the latency is not delivered.
	ctx, cancel := context.WithTimeout(context.Background(), latency/4)
	defer cancel()
	if err := post(ctx, base, mailJSON("impatient@example.com")); err == nil {
		t.Fatal("impatient client got an answer")
	}
	emu.ClearFaults()
	if err := post(context.Background(), base, mailJSON("x@example.com")); err != nil || emu.Count("impatient@example.com") != 0 {
		t.Errorf("err %v, impatient count %d", err, emu.Count("impatient@example.com"))
	}
}

func TestConcurrentSendersAreAllCounted(t *testing.T) {
	emu, base := start(t, sgemu.Options{KeepMessages: 50})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 10 {
				if a := send(t, base, mailJSON(fmt.Sprintf("g%d-%d@example.com", g, i), fmt.Sprintf("g%d-%d-b@example.com", g, i))); a.Status != 202 {
					t.Errorf("status %d", a.Status)
				}
				emu.Recent(5)
			}
		})
	}
	wg.Wait()
	if emu.Total() != 320 || emu.Requests() != 160 || len(emu.Counts()) != 320 {
		t.Errorf("total %d, requests %d, addresses %d; want 320, 160, 320", emu.Total(), emu.Requests(), len(emu.Counts()))
	}
}

func TestInboxShowsRecentMessagesEscapedAndWithoutRemoteAssets(t *testing.T) {
	emu, base := start(t, sgemu.Options{})
	evil := `<script>alert(1)</script>`
	a := send(t, base, `{"personalizations":[{"to":[{"email":"a@example.com","name":"`+`<b>Ada</b>"}]}],"from":{"email":"security@example.com"},`+
		`"subject":"Breach `+evil+`","content":[{"type":"text/plain","value":"text `+evil+`"},`+
		`{"type":"text/html","value":"<p>hi</p><img src=\"https://tracker.example/x.png\">`+evil+`"}]}`)
	if a.Status != 202 {
		t.Fatalf("status %d: %s", a.Status, a.Body)
	}
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, path := range []string{"/", fmt.Sprintf("/messages/%d", emu.Recent(1)[0].ID)} {
		resp, page := get(path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if strings.Contains(page, "<script") || strings.Contains(page, "<b>Ada") || strings.Contains(page, `src="http`) ||
			strings.Contains(page, "<link") || strings.Contains(page, "<img") {
			t.Errorf("%s: unescaped content or a remote asset:\n%s", path, page)
		}
		if !strings.Contains(page, "Breach &lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: subject missing or not escaped:\n%s", path, page)
		}
	}
	_, page := get(fmt.Sprintf("/messages/%d", emu.Recent(1)[0].ID))
	if !strings.Contains(page, `sandbox=""`) || !strings.Contains(page, `srcdoc="&lt;p&gt;hi&lt;/p&gt;`) {
		t.Errorf("HTML version not in an escaped, sandboxed frame:\n%s", page)
	}
	if !strings.Contains(page, "text &lt;script&gt;") {
		t.Errorf("text version missing:\n%s", page)
	}
	if resp, _ := get("/messages/999"); resp.StatusCode != 404 {
		t.Errorf("unknown message: %d, want 404", resp.StatusCode)
	}
	if resp, _ := get("/messages/x"); resp.StatusCode != 404 {
		t.Errorf("bad id: %d, want 404", resp.StatusCode)
	}
}
