// Package conformance finds the shared conformance data (official OpenAPI
// specs, real webhook payloads, signature vectors, real reply emails) and
// validates requests against the specs. Tests and emulators use it; the data
// itself is never copied into this repository.
package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Spec files, relative to the conformance directory.
const (
	SendGridMailSpec = "sendgrid/openapi/tsg_mail_v3.patched-custom_args.json"
	XSpec            = "twitter/x-api-v2.openapi.v2.167.json"
)

// Dir returns the conformance directory: $BREACHCAST_CONFORMANCE_DIR, or the
// first shared/conformance found walking up from the working directory. It
// returns "" when there is none.
func Dir() string {
	if d := os.Getenv("BREACHCAST_CONFORMANCE_DIR"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "conformance")
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Path returns the path of rel inside the conformance directory, skipping
// the test with a clear message when the directory is absent (a checkout
// without the shared data).
func Path(t testing.TB, rel string) string {
	t.Helper()
	d := Dir()
	if d == "" {
		t.Skip("conformance data not found: set BREACHCAST_CONFORMANCE_DIR or check out ../shared/conformance")
	}
	return filepath.Join(d, rel)
}

// Validator checks HTTP requests against one OpenAPI document.
type Validator struct {
	router routers.Router
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*Validator{}
)

// Load returns a validator for the spec at path. Loaded specs are cached.
func Load(path string) (*Validator, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if v, ok := cache[path]; ok {
		return v, nil
	}
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load openapi spec %s: %w", path, err)
	}
	// Match on paths only: emulators listen on loopback, not on the spec's host.
	doc.Servers = nil
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi spec %s: %w", path, err)
	}
	v := &Validator{router: r}
	cache[path] = v
	return v, nil
}

// MustLoad loads the spec rel (relative to the conformance directory) for a
// test, skipping when the data is absent and failing when it does not load.
func MustLoad(t testing.TB, rel string) *Validator {
	t.Helper()
	v, err := Load(Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ErrNoOperation is returned for a request the spec has no operation for.
var ErrNoOperation = errors.New("no operation in the spec matches the request")

// ValidateRequest checks method, path, parameters and body of r against the
// spec. body is the raw request body (r.Body is not read).
func (v *Validator) ValidateRequest(r *http.Request, body []byte) error {
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		return fmt.Errorf("%s %s: %w: %v", r.Method, r.URL.Path, ErrNoOperation, err)
	}
	rc := r.Clone(context.Background())
	rc.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.RequestValidationInput{
		Request:    rc,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			// Credentials are the emulator's business (it answers 401 as the
			// provider does); the spec check is about shape.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s does not conform to the spec: %w", r.Method, r.URL.Path, err)
	}
	return nil
}

// RequestValidator returns the spec rel's request check for an emulator's
// Validator option. Where the conformance data is absent it logs that and
// returns nil (no check), so end-to-end tests still run; a spec that is
// there but does not load fails the test.
func RequestValidator(t testing.TB, rel string) func(*http.Request, []byte) error {
	t.Helper()
	if Dir() == "" {
		t.Logf("conformance data not found: requests are not checked against %s", rel)
		return nil
	}
	return MustLoad(t, rel).ValidateRequest
}

// OptionalPath is Path without the skip: "" where the data is absent.
func OptionalPath(t testing.TB, rel string) string {
	t.Helper()
	d := Dir()
	if d == "" {
		t.Logf("conformance data not found: %s not used", rel)
		return ""
	}
	return filepath.Join(d, rel)
}
