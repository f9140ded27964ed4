package status

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Export writes the whole public site as static files under dir, for any
// static host (nginx, S3, a CDN bucket) away from the breached
// infrastructure:
//
//	index.html                       the current status
//	history/index.html               every incident
//	incidents/{slug}/index.html      one incident's timeline
//	history.atom, history.rss        the feeds
//	api/v2/*.json                    the Statuspage-compatible API
//	static/app.{hash}.css|js|svg     fingerprinted assets (cache forever)
//	404.html                         the not-found page
//
// How links stay valid: every link is an absolute path under PublicURL's
// path ("/incidents/{slug}/", "/static/app.1a2b3c4d5e.css"), and page links
// end in "/" so each resolves to a directory's index.html, which every static
// host serves without configuration. Serve dir at PublicURL. The exported
// pages have no live channel and no subscription form (a static host has no
// server); everything else is the same as the live site.
func (s *Server) Export(ctx context.Context, dir string) error {
	if dir == "" {
		return fmt.Errorf("export: no directory given")
	}
	v, err := s.src.PublicVersion(ctx)
	if err != nil {
		return fmt.Errorf("export: public version: %w", err)
	}
	incs, err := s.src.PublicIncidents(ctx)
	if err != nil {
		return fmt.Errorf("export: public incidents: %w", err)
	}
	s.buildMu.Lock()
	sn, err := s.build(incs, v, renderOpts{static: true})
	s.buildMu.Unlock()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	files := map[string][]byte{"404.html": sn.notFound.body}
	for p, r := range sn.res {
		if f := exportFile(p); f != "" {
			files[f] = r.body
		}
	}
	for _, f := range s.assets.files {
		files[f] = s.assets.byPath["/"+f].body
	}
	for f, b := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		full := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := writeFileAtomic(full, b); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return nil
}

// exportFile maps a served path to its file, or "" for aliases.
func exportFile(p string) string {
	switch {
	case p == "/":
		return "index.html"
	case strings.HasSuffix(p, "/"):
		return strings.TrimPrefix(p, "/") + "index.html"
	case p == "/index.html" || p == "/history" || strings.HasPrefix(p, "/incidents/"):
		return "" // the same page as its "/"-terminated twin
	default:
		return strings.TrimPrefix(p, "/")
	}
}

// writeFileAtomic replaces path with b so a host serving dir during an export
// never serves a half-written file.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
