package status

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web/static web/templates
var webFS embed.FS

// assets are the fingerprinted static files (CSS, JS, icon): their names
// carry a hash of their content, so they can be cached for a year.
type assets struct {
	byPath map[string]*resource // "/static/app.1a2b3c4d.css" -> resource
	url    map[string]string    // "app.css" -> base + "/static/app.1a2b3c4d.css"
	files  map[string]string    // "app.css" -> "static/app.1a2b3c4d.css" (for Export)
}

func loadAssets(base string) (*assets, error) {
	a := &assets{byPath: map[string]*resource{}, url: map[string]string{}, files: map[string]string{}}
	entries, err := fs.ReadDir(webFS, "web/static")
	if err != nil {
		return nil, fmt.Errorf("status: read assets: %w", err)
	}
	for _, e := range entries {
		b, err := webFS.ReadFile("web/static/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("status: read asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(e.Name())
		name := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:5]) + ext
		ctype := mime.TypeByExtension(ext)
		switch ext { // not every system's mime table knows these
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		p := "/static/" + name
		a.byPath[p] = newResource(http.StatusOK, ctype, cacheImmutable, b, time.Time{})
		a.url[e.Name()] = base + p
		a.files[e.Name()] = "static/" + name
	}
	for _, need := range []string{"app.css", "app.js", "icon.svg"} {
		if a.url[need] == "" {
			return nil, fmt.Errorf("status: asset %s is missing", need)
		}
	}
	return a, nil
}

// pages are the parsed page templates, each a clone of the layout.
type pages struct {
	byName map[string]*template.Template
}

var pageNames = []string{"index", "incident", "history", "message", "subscribe"}

func loadPages() (*pages, error) {
	layout, err := template.New("layout.html").ParseFS(webFS, "web/templates/layout.html", "web/templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("status: parse layout: %w", err)
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range pageNames {
		t, err := template.Must(layout.Clone()).ParseFS(webFS, "web/templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("status: parse page %s: %w", n, err)
		}
		p.byName[n] = t
	}
	return p, nil
}
