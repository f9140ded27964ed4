package templates_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/notice"
	"github.com/breachcast/breachcast/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var published = time.Date(2024, 3, 14, 15, 9, 26, 0, time.UTC)

func newRenderer(t testing.TB) *templates.Renderer {
	t.Helper()
	r, err := templates.New(templates.Options{Company: "Acme Inc.", PublicURL: "https://status.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func loadNotice(t testing.TB, name string) *breachcast.Notice {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name+".md"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := notice.Parse(name+".md", src)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./templates -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run go test ./templates -update and review the diff)\n--- got ---\n%s", path, got)
	}
}

// The golden notices: a breach notice in Buffer's 2013 style, a table, a
// Japanese notice, emoji with long URLs, and hostile HTML.
var goldenNotices = []struct {
	name string
	ctx  templates.Context
}{
	{"buffer", templates.Context{Seq: 2, PublishedAt: published, Previous: &breachcast.Update{Seq: 1, Status: breachcast.Investigating}}},
	{"table", templates.Context{Seq: 3, PublishedAt: published, Subscription: true}},
	{"cjk", templates.Context{Seq: 1, PublishedAt: published}},
	{"emoji", templates.Context{Seq: 4, PublishedAt: published}},
	{"hostile", templates.Context{Seq: 1, PublishedAt: published}},
}

func TestGolden(t *testing.T) {
	r := newRenderer(t)
	for _, g := range goldenNotices {
		t.Run(g.name, func(t *testing.T) {
			out, err := r.Render(loadNotice(t, g.name), g.ctx)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, g.name+".email.subject", out.Email.Subject+"\n")
			golden(t, g.name+".email.html", out.Email.HTML)
			golden(t, g.name+".email.txt", out.Email.Text)
			golden(t, g.name+".twitter", strings.Join(out.Twitter, "\n\n~~~~ next post ~~~~\n\n")+"\n")
			golden(t, g.name+".facebook", out.Facebook+"\n")
			golden(t, g.name+".status.html", out.Status)
		})
	}
}
