package conformance_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/breachcast/breachcast/internal/conformance"
)

func request(t *testing.T, method, path, body string) (*http.Request, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, "http://127.0.0.1:1"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer test")
	return r, []byte(body)
}

func TestSendGridSpecAcceptsAMinimalMailSendAndRefusesOneWithoutFrom(t *testing.T) {
	v := conformance.MustLoad(t, conformance.SendGridMailSpec)
	good := `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"security@example.com"},` +
		`"subject":"s","content":[{"type":"text/plain","value":"x"}],"custom_args":{"bc_update":"1"}}`
	if err := v.ValidateRequest(request(t, "POST", "/v3/mail/send", good)); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	bad := `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"subject":"s","content":[{"type":"text/plain","value":"x"}]}`
	err := v.ValidateRequest(request(t, "POST", "/v3/mail/send", bad))
	if err == nil || !strings.Contains(err.Error(), "from") {
		t.Fatalf("request without from: got %v, want an error naming from", err)
	}
}

func TestXSpecRefusesUnknownPropertiesAndUnknownPaths(t *testing.T) {
	v := conformance.MustLoad(t, conformance.XSpec)
	if err := v.ValidateRequest(request(t, "POST", "/2/tweets", `{"text":"hello"}`)); err != nil {
		t.Fatalf("valid post refused: %v", err)
	}
	if err := v.ValidateRequest(request(t, "POST", "/2/tweets", `{"text":"hello","bogus":1}`)); err == nil {
		t.Fatal("post with an unknown property accepted")
	}
	if err := v.ValidateRequest(request(t, "POST", "/1.1/statuses/update.json", `{}`)); !errors.Is(err, conformance.ErrNoOperation) {
		t.Fatalf("v1.1 path: got %v, want ErrNoOperation", err)
	}
}
