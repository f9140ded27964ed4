package recipients

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Limits of an address (RFC 5321): 254 bytes in all, 64 before the @.
const (
	maxAddress = 254
	maxLocal   = 64
	maxLabel   = 63
	maxLocale  = 35
)

// ValidEmail reports whether s is an address breachcast will send to: a
// bare address as net/mail reads it, byte for byte (no display name, no
// angle brackets, no quotes it would strip), with no spaces, at most 254
// bytes, at most 64 before the @, and a host name with a dot after it
// (letters, digits and inner hyphens; no address literals).
func ValidEmail(s string) bool {
	if len(s) == 0 || len(s) > maxAddress {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at > maxLocal || !validDomain(s[at+1:]) {
		return false
	}
	if fastLocal(s[:at]) {
		return true // a plain dot-atom, which net/mail reads back unchanged
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// atext are the ASCII characters RFC 5322 allows in a dot-atom besides
// letters and digits.
const atext = "!#$%&'*+-/=?^_`{|}~"

var atextTable = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for i := 0; i < len(atext); i++ {
		t[atext[i]] = true
	}
	return t
}()

// fastLocal reports whether local is an ASCII dot-atom: the common case,
// decided without net/mail.
func fastLocal(local string) bool {
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' {
		return false
	}
	prevDot := false
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '.' {
			if prevDot {
				return false
			}
			prevDot = true
			continue
		}
		prevDot = false
		if !atextTable[c] {
			return false
		}
	}
	return true
}

// validDomain accepts a host name with at least two labels: each 1 to 63
// bytes of letters, digits, hyphens (not first or last) or non-ASCII
// letters (an internationalised name), and a top-level label that is not
// all digits.
func validDomain(d string) bool {
	if len(d) < 3 || strings.IndexByte(d, '.') < 0 {
		return false
	}
	labels := 0
	for d != "" {
		label := d
		if i := strings.IndexByte(d, '.'); i >= 0 {
			label, d = d[:i], d[i+1:]
			if d == "" {
				return false // trailing dot
			}
		} else {
			d = ""
		}
		if label == "" || len(label) > maxLabel || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		digits := true
		for i := 0; i < len(label); {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				digits = false
				i++
			case c >= '0' && c <= '9':
				i++
			case c >= utf8.RuneSelf:
				r, size := utf8.DecodeRuneInString(label[i:])
				if r == utf8.RuneError || !isLetterish(r) {
					return false
				}
				digits = false
				i += size
			default:
				return false
			}
		}
		labels++
		if d == "" && digits {
			return false // a numeric top-level label: an IP address, not a host name
		}
	}
	return labels >= 2
}

// isLetterish excludes the non-ASCII spaces and punctuation that cannot be
// part of an internationalised domain label.
func isLetterish(r rune) bool {
	switch {
	case r == '\u00a0', r == '\u3000', r >= '\u2000' && r <= '\u206f', r == '\ufeff':
		return false
	}
	return r > 0x7f
}

// normalizeLocale returns the canonical form of a BCP 47 language tag
// ("en_us" becomes "en-US"), or ok false when s is not one.
func normalizeLocale(s string) (string, bool) {
	if len(s) > maxLocale {
		return "", false
	}
	t, err := language.Parse(s)
	if err != nil {
		return "", false
	}
	return t.String(), true
}

// NormalizeHeader turns a column header into the attribute name templates
// use with {{.Recipient.Attr "name"}}: lower-case snake_case ("First Name"
// and "firstName" become "first_name"). The result is a valid name only
// when ValidAttrName accepts it.
func NormalizeHeader(h string) string {
	h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
	var b strings.Builder
	b.Grow(len(h) + 4)
	rs := []rune(h)
	pendingSep := false
	for i, r := range rs {
		isUpper := r >= 'A' && r <= 'Z'
		isLower := r >= 'a' && r <= 'z'
		isDigit := r >= '0' && r <= '9'
		if !isUpper && !isLower && !isDigit {
			if r > 0x7f && !isSeparatorRune(r) {
				// Kept (lower-cased) so that the validation names it.
				if pendingSep && b.Len() > 0 {
					b.WriteByte('_')
				}
				pendingSep = false
				b.WriteString(strings.ToLower(string(r)))
				continue
			}
			pendingSep = true
			continue
		}
		if isUpper && i > 0 && b.Len() > 0 {
			prev := rs[i-1]
			prevLowerOrDigit := prev >= 'a' && prev <= 'z' || prev >= '0' && prev <= '9'
			nextLower := i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z'
			prevUpper := prev >= 'A' && prev <= 'Z'
			if prevLowerOrDigit || prevUpper && nextLower {
				pendingSep = true
			}
		}
		if pendingSep && b.Len() > 0 {
			b.WriteByte('_')
		}
		pendingSep = false
		if isUpper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isSeparatorRune(r rune) bool {
	return r == '\u00a0' || r == '\u3000' || r >= '\u2000' && r <= '\u206f' || r == '\ufeff'
}

// ValidAttrName reports whether name can be an attribute name: a lower-case
// ASCII letter, then up to 63 lower-case letters, digits and underscores.
func ValidAttrName(name string) bool {
	if name == "" || len(name) > MaxAttrName || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// hasControl reports whether v holds a control character other than tab,
// line feed and carriage return (which quoted values may hold).
func hasControl(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return true
		}
	}
	return false
}

// trimSpace trims ASCII spaces and tabs around a cell without allocating.
func trimSpace(v string) string {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}
