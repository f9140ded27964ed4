package xemu

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// authenticate checks the OAuth 1.0a Authorization header of r: the
// consumer key and token it names, a fresh timestamp, a nonce not seen
// before, and the HMAC-SHA1 signature recomputed per RFC 5849 section 3.4
// over the method, the base URI, the query parameters, the form body
// parameters (for application/x-www-form-urlencoded bodies only; JSON bodies
// are not signed) and the oauth_* parameters.
func (s *Server) authenticate(r *http.Request, body []byte) error {
	params, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	for _, k := range []string{"oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_signature"} {
		if params[k] == "" {
			return fmt.Errorf("oauth: missing %s", k)
		}
	}
	if params["oauth_signature_method"] != "HMAC-SHA1" {
		return errors.New("oauth: signature method is not HMAC-SHA1")
	}
	if v, ok := params["oauth_version"]; ok && v != "1.0" {
		return errors.New("oauth: version is not 1.0")
	}
	if !equal(params["oauth_consumer_key"], s.opts.ConsumerKey) || !equal(params["oauth_token"], s.opts.AccessToken) {
		return errors.New("oauth: unknown consumer key or token")
	}
	ts, err := strconv.ParseInt(params["oauth_timestamp"], 10, 64)
	if err != nil {
		return errors.New("oauth: timestamp is not a number")
	}
	wall := time.Now()
	if skew := s.opts.MaxClockSkew; skew > 0 {
		if d := wall.Sub(time.Unix(ts, 0)); d > skew || d < -skew {
			return errors.New("oauth: timestamp out of bounds")
		}
	}

	var form url.Values
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		form, err = url.ParseQuery(string(body))
		if err != nil {
			return fmt.Errorf("oauth: form body: %w", err)
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := signatureBase(r.Method, scheme, r.Host, r.URL.EscapedPath(), r.URL.Query(), form, params)
	want := sign(base, s.opts.ConsumerSecret, s.opts.AccessSecret)
	if !equal(params["oauth_signature"], want) {
		return errors.New("oauth: signature does not match")
	}

	// A nonce is good once per timestamp; remember it as long as the
	// timestamp would still be accepted.
	key := params["oauth_nonce"] + "|" + params["oauth_timestamp"]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.nonces[key]; seen {
		return errors.New("oauth: nonce used before")
	}
	if len(s.nonces) > 10000 {
		for k, t := range s.nonces {
			if wall.Sub(t) > 2*max(s.opts.MaxClockSkew, time.Minute) {
				delete(s.nonces, k)
			}
		}
	}
	s.nonces[key] = wall
	return nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// parseAuthorization reads `OAuth k="v", ...` into its decoded parameters.
func parseAuthorization(h string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		return nil, errors.New("oauth: no OAuth Authorization header")
	}
	params := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, errors.New("oauth: malformed Authorization header")
		}
		key, err1 := url.PathUnescape(k)
		val, err2 := url.PathUnescape(v[1 : len(v)-1])
		if err1 != nil || err2 != nil {
			return nil, errors.New("oauth: malformed Authorization header")
		}
		if _, dup := params[key]; dup {
			return nil, errors.New("oauth: repeated parameter in Authorization header")
		}
		params[key] = val
	}
	return params, nil
}

// signatureBase builds the RFC 5849 section 3.4.1 signature base string.
// escapedPath is the path as sent; oauth holds the decoded Authorization
// parameters (oauth_signature and realm are left out here).
func signatureBase(method, scheme, host, escapedPath string, query, form url.Values, oauth map[string]string) string {
	type pair struct{ k, v string }
	var pairs []pair
	add := func(vals url.Values) {
		for k, vs := range vals {
			for _, v := range vs {
				pairs = append(pairs, pair{percentEncode(k), percentEncode(v)})
			}
		}
	}
	add(query)
	add(form)
	for k, v := range oauth {
		if k == "oauth_signature" || k == "realm" {
			continue
		}
		pairs = append(pairs, pair{percentEncode(k), percentEncode(v)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	norm := make([]string, len(pairs))
	for i, p := range pairs {
		norm[i] = p.k + "=" + p.v
	}

	scheme = strings.ToLower(scheme)
	host = strings.ToLower(host)
	if h, port, ok := strings.Cut(host, ":"); ok && (scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		host = h
	}
	if escapedPath == "" {
		escapedPath = "/"
	}
	uri := scheme + "://" + host + escapedPath
	return strings.ToUpper(method) + "&" + percentEncode(uri) + "&" + percentEncode(strings.Join(norm, "&"))
}

// sign is HMAC-SHA1 keyed with the encoded consumer and token secrets.
func sign(base, consumerSecret, tokenSecret string) string {
	mac := hmac.New(sha1.New, []byte(percentEncode(consumerSecret)+"&"+percentEncode(tokenSecret)))
	mac.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// percentEncode is RFC 3986 section 2.1 encoding of everything but the
// unreserved characters, as RFC 5849 section 3.6 requires.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
