package status

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestExportWritesAStaticSiteWhoseLinksAllResolve(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	dir := t.TempDir()
	if err := e.srv.Export(context.Background(), dir); err != nil {
		t.Fatalf("Export: %v", err)
	}
	for _, f := range []string{
		"index.html", "history/index.html", "incidents/breach-2026/index.html", "incidents/db-outage/index.html",
		"history.atom", "history.rss", "404.html",
		"api/v2/summary.json", "api/v2/status.json", "api/v2/incidents.json", "api/v2/incidents/unresolved.json", "api/v2/components.json",
	} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("export lacks %s (%v)", f, err)
		}
	}
	// Serve the directory the way any static host does and follow every link.
	static := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer static.Close()
	index, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(index), "data-live") || strings.Contains(string(index), "<form") {
		t.Error("the static export has a live channel or a form, which a static host cannot serve")
	}
	if !strings.Contains(string(index), "Email addresses were exposed.") {
		t.Error("the static index lacks the timeline")
	}
	seen := map[string]bool{}
	var walk func(page string)
	linkRE := regexp.MustCompile(`(?:href|src)="(/[^"#?]*)"`)
	walk = func(page string) {
		if seen[page] {
			return
		}
		seen[page] = true
		resp, err := http.Get(static.URL + page)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("exported link %s answers %d", page, resp.StatusCode)
			return
		}
		if strings.HasSuffix(page, "/") {
			for _, m := range linkRE.FindAllStringSubmatch(string(b), -1) {
				walk(m[1])
			}
		}
	}
	walk("/")
	if len(seen) < 10 {
		t.Fatalf("only %d links followed", len(seen))
	}
	// Exporting again over the same directory works (atomic replace).
	if err := e.srv.Export(context.Background(), dir); err != nil {
		t.Fatalf("second Export: %v", err)
	}
	if err := e.srv.Export(context.Background(), ""); err == nil {
		t.Fatal("Export with no directory succeeded")
	}
}
