// Package xtext counts text the way X (Twitter) does, following the
// twitter-text v3 configuration: the text is NFC-normalised; code points in
// 0-4351, 8192-8205, 8208-8223 and 8242-8247 weigh 1 and everything else 2;
// every URL weighs 23 whatever its length; every emoji, including ZWJ
// sequences, skin tones, flags, keycaps and tag sequences, weighs 2.
//
// It has no knowledge of threads or notices; the templates package splits
// threads with it and the notice package checks summaries with it.
package xtext

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"
)

// Limits of a post, per twitter-text v3.
const (
	MaxPost   = 280 // weighted length of one post
	URLLength = 23  // weighted length of any URL (t.co wrapping)
)

// Length returns the weighted length of s as X counts it.
func Length(s string) int {
	s = norm.NFC.String(s)
	urls := URLs(s)
	n, i := 0, 0
	for i < len(s) {
		if len(urls) > 0 && urls[0][0] == i {
			n += URLLength
			i = urls[0][1]
			urls = urls[1:]
			continue
		}
		if e := emojiAt(s[i:]); e > 0 {
			n += 2
			i += e
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n += weight(r)
		i += size
	}
	return n
}

// weight is the twitter-text v3 weight of one code point (scaled from 100/200
// to 1/2).
func weight(r rune) int {
	switch {
	case r >= 0 && r <= 4351,
		r >= 8192 && r <= 8205,
		r >= 8208 && r <= 8223,
		r >= 8242 && r <= 8247:
		return 1
	}
	return 2
}

// URLs returns the byte ranges [start, end) of the URLs X would link in s,
// in order: http and https URLs with a valid host, and bare ASCII domains
// with a known top-level domain (example.com/path). s should be NFC already
// for the ranges to match what Length counts.
func URLs(s string) [][2]int {
	var out [][2]int
	prev := rune(-1) // rune before i; -1 at the start
	for i := 0; i < len(s); {
		if boundaryBefore(prev) {
			if end := urlAt(s, i, prev); end > i {
				out = append(out, [2]int{i, end})
				prev, _ = utf8.DecodeLastRuneInString(s[:end])
				i = end
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		prev = r
		i += size
	}
	return out
}

// boundaryBefore reports whether a URL may start after rune p: not glued to a
// word, a mention, a cashtag, a hashtag or the inside of another address.
func boundaryBefore(p rune) bool {
	if p < 0 {
		return true
	}
	if unicode.IsLetter(p) || unicode.IsDigit(p) || unicode.IsMark(p) {
		return false
	}
	switch p {
	case '@', '＠', '$', '#', '＃', '.', '-', '_', '/', ':', '%', '&', '=', '+', '~':
		return false
	}
	return true
}

// urlAt returns the end of the URL starting at s[i], or i when none does.
func urlAt(s string, i int, prev rune) int {
	rest := s[i:]
	scheme := 0
	switch {
	case hasPrefixFold(rest, "https://"):
		scheme = len("https://")
	case hasPrefixFold(rest, "http://"):
		scheme = len("http://")
	}
	if scheme > 0 {
		end := hostEnd(s, i+scheme, true)
		if end < 0 {
			return i
		}
		return pathEnd(s, end)
	}
	c := s[i]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
		return i
	}
	end := hostEnd(s, i, false)
	if end < 0 {
		return i
	}
	// An address like name@example.com is not a link to example.com.
	if end < len(s) && s[end] == '@' {
		return i
	}
	return pathEnd(s, end)
}

// hostEnd parses [userinfo@]host[:port] from s[i:] and returns where it
// ends, or -1 when it is not a valid host. Bare (schemeless) hosts must be
// ASCII domains with a known top-level domain.
func hostEnd(s string, i int, scheme bool) int {
	if scheme {
		// Skip userinfo when an @ comes before the end of the authority.
		for j := i; j < len(s); j++ {
			c := s[j]
			if c == '@' {
				if j > i {
					i = j + 1
				}
				break
			}
			if c == '/' || c == '?' || c == '#' || c <= ' ' || !userinfoByte(c) {
				break
			}
		}
		if i < len(s) && s[i] == '[' { // IPv6 literal
			j := strings.IndexByte(s[i:], ']')
			if j < 3 {
				return -1
			}
			for _, c := range s[i+1 : i+j] {
				if !(c == ':' || c == '.' || isHex(c)) {
					return -1
				}
			}
			return portEnd(s, i+j+1)
		}
	}
	j := i
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if !hostRune(r, scheme) {
			break
		}
		j += size
	}
	host := strings.TrimRight(s[i:j], ".")
	j = i + len(host)
	if host == "" {
		return -1
	}
	if scheme && isIPv4(host) {
		return portEnd(s, j)
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return -1
	}
	for k, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return -1
		}
		// Underscores are tolerated in subdomains only.
		if k >= len(labels)-2 && strings.Contains(l, "_") {
			return -1
		}
		a, err := idna.Punycode.ToASCII(strings.ReplaceAll(l, "_", "a"))
		if err != nil || len(a) > 63 {
			return -1
		}
	}
	tld, err := idna.Punycode.ToASCII(strings.ToLower(labels[len(labels)-1]))
	if err != nil {
		return -1
	}
	if _, icann := publicsuffix.PublicSuffix(tld); !icann && !strings.HasPrefix(tld, "xn--") {
		return -1
	}
	if strings.IndexFunc(tld, func(r rune) bool { return r >= '0' && r <= '9' }) >= 0 && !strings.HasPrefix(tld, "xn--") {
		return -1
	}
	return portEnd(s, j)
}

// hostRune reports whether r may appear in a host name. Hosts after a scheme
// may be internationalised (http://☃.net); bare hosts must be ASCII.
func hostRune(r rune, scheme bool) bool {
	if r < utf8.RuneSelf {
		return r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	if !scheme || r == utf8.RuneError || r >= 0x2000 && r <= 0x206F || r >= 0x3000 && r <= 0x303F || r >= 0xFF00 && r <= 0xFF65 {
		return false
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || unicode.IsSymbol(r)
}

func portEnd(s string, i int) int {
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j > i+1 && j-i-1 <= 5 {
			return j
		}
	}
	return i
}

// pathEnd extends a URL whose host ends at i over its path, query and
// fragment, then drops trailing punctuation that belongs to the sentence.
func pathEnd(s string, i int) int {
	if i >= len(s) || (s[i] != '/' && s[i] != '?' && s[i] != '#') {
		return i
	}
	j := i
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if r <= ' ' || unicode.IsSpace(r) || r == '"' || r == '<' || r == '>' || r == '`' ||
			r == '{' || r == '}' || r == '|' || r == '\\' || r == '^' ||
			r >= 0x3000 && r <= 0x303F || r >= 0xFF00 && r <= 0xFFEF || r == utf8.RuneError ||
			r >= 0x2000 && r <= 0x206F {
			break
		}
		j += size
	}
	for j > i {
		c := s[j-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
			j--
			continue
		case ')', ']':
			open := byte('(')
			if c == ']' {
				open = '['
			}
			if strings.Count(s[i:j], string(c)) > strings.Count(s[i:j], string(open)) {
				j--
				continue
			}
		}
		break
	}
	return j
}

func userinfoByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-._~!$&'()*+,;=:%", c) >= 0
}

func isHex(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'
}

func isIPv4(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 {
			return false
		}
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
			n = n*10 + int(c-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
