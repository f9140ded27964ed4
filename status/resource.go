package status

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cache policies. Pages and data may be cached briefly by browsers and CDNs
// and served stale while revalidating, so a crowd hitting a CDN costs the
// origin about one request per path every few seconds; during an outage of
// the origin a CDN may keep serving the last copy for a day.
const (
	cacheLive      = "public, max-age=5, stale-while-revalidate=30, stale-if-error=86400"
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheError     = "public, max-age=5"
	cacheNone      = "no-store"
)

// resource is one immutable response body with its gzipped variant and
// validators, rendered once and served many times.
type resource struct {
	status       int
	contentType  string
	cacheControl string
	body         []byte
	gz           []byte // nil when gzip does not help
	etag         string // strong validator of body
	gzETag       string // strong validator of gz (a different representation)
	lastModified time.Time
	lastModText  string
}

func newResource(status int, contentType, cacheControl string, body []byte, mod time.Time) *resource {
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:12])
	r := &resource{
		status: status, contentType: contentType, cacheControl: cacheControl, body: body,
		etag:         `"` + tag + `"`,
		gzETag:       `"` + tag + `-gz"`,
		lastModified: mod.UTC().Truncate(time.Second),
	}
	if !mod.IsZero() {
		r.lastModText = r.lastModified.Format(http.TimeFormat)
	}
	if len(body) > 512 {
		var buf bytes.Buffer
		zw := gzipPool.Get().(*gzip.Writer)
		zw.Reset(&buf)
		zw.Write(body)
		zw.Close()
		gzipPool.Put(zw)
		if buf.Len() < len(body) {
			r.gz = buf.Bytes()
		}
	}
	return r
}

// gzipPool reuses compressors: each holds about a megabyte, and a snapshot
// compresses a dozen bodies.
var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestCompression)
	return zw
}}

// serve writes r, honouring Accept-Encoding, If-None-Match and
// If-Modified-Since. Unparseable conditional headers are ignored.
func (r *resource) serve(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Content-Type", r.contentType)
	h.Set("Cache-Control", r.cacheControl)
	body, etag := r.body, r.etag
	if r.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(req.Header.Get("Accept-Encoding")) {
			body, etag = r.gz, r.gzETag
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if r.lastModText != "" {
		h.Set("Last-Modified", r.lastModText)
	}
	if r.status == http.StatusOK && notModified(req, etag, r.lastModified, r.lastModText != "") {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(r.status)
	if req.Method != http.MethodHead {
		w.Write(body)
	}
}

// notModified applies RFC 9110's conditional GET rules: If-None-Match wins
// over If-Modified-Since; weak comparison for If-None-Match.
func notModified(req *http.Request, etag string, mod time.Time, hasMod bool) bool {
	if inm := req.Header.Values("If-None-Match"); len(inm) > 0 {
		for _, v := range inm {
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				if t == "*" || strings.TrimPrefix(t, "W/") == etag {
					return true
				}
			}
		}
		return false
	}
	if !hasMod {
		return false
	}
	ims := req.Header.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	return !mod.After(t)
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (q > 0).
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}
