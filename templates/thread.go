package templates

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/breachcast/breachcast/templates/xtext"
)

// MaxThread is the most posts an X thread may have.
const MaxThread = 25

// ThreadTooLongError refuses a thread of more than MaxThread posts.
type ThreadTooLongError struct {
	Posts int // how many posts the text would take (estimated when far over)
}

// Error says how many posts the thread would take and how to fix it.
func (e *ThreadTooLongError) Error() string {
	return fmt.Sprintf("the X thread would take %d posts; at most %d (add a summary to the notice, or shorten the body)", e.Posts, MaxThread)
}

// XLength returns the length of s as X counts it (twitter-text v3): NFC,
// weighted code points, 23 per URL, 2 per emoji.
func XLength(s string) int { return xtext.Length(s) }

// unit is a piece of thread text: a paragraph, a line, a sentence or a word,
// with the finer pieces it splits into.
type unit struct {
	sep  string // separator before it when it follows another unit in a post
	text string
	kids func() []unit // nil for a single character
	// group marks a heading or lead-in with what follows: when it does not
	// fit whole it starts a new post, so a heading never ends a post.
	group bool
}

var blankLines = regexp.MustCompile(`\n[ \t]*\n\s*`)

// paragraphs splits text at blank lines. A heading or a lead-in line ("We
// have since:") is kept with the paragraph after it when they fit together.
func paragraphs(text string) []unit {
	ps := blankLines.Split(strings.TrimSpace(text), -1)
	var out []unit
	for i := 0; i < len(ps); i++ {
		j := i
		for j+1 < len(ps) && leadIn(ps[j]) {
			j++
		}
		group := ps[i : j+1]
		units := make([]unit, len(group))
		for k, p := range group {
			p = strings.TrimSpace(p)
			group[k] = p
			units[k] = unit{sep: "\n\n", text: p, kids: func() []unit { return lines(p) }}
		}
		if len(units) == 1 {
			out = append(out, units[0])
		} else {
			out = append(out, unit{sep: "\n\n", text: strings.Join(group, "\n\n"), kids: func() []unit { return units }, group: true})
		}
		i = j
	}
	return out
}

// leadIn reports whether a paragraph introduces the next one: a single short
// line that ends with a colon or without a full stop (a heading).
func leadIn(p string) bool {
	if strings.Contains(p, "\n") || strings.Contains(p, ". ") || XLength(p) > 120 {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(p)
	return last == ':' || !strings.ContainsRune(`.!?。！？…"”')）`, last)
}

func lines(p string) []unit {
	var out []unit
	for _, l := range strings.Split(p, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, unit{sep: "\n", text: l, kids: func() []unit { return sentences(l) }})
		}
	}
	return out
}

// sentences splits a line after . ! ? followed by a space, and after the
// CJK full stops 。！？.
func sentences(line string) []unit {
	var out []unit
	sep := "\n"
	start := 0
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		i += size
		cjk := strings.ContainsRune("。！？", r)
		if !cjk && !strings.ContainsRune(".!?", r) {
			continue
		}
		for i < len(line) {
			c, n := utf8.DecodeRuneInString(line[i:])
			if !strings.ContainsRune(`)]"'”’»」』）`, c) {
				break
			}
			i += n
		}
		ws := i
		for ws < len(line) && (line[ws] == ' ' || line[ws] == '\t') {
			ws++
		}
		if !cjk && ws == i && i < len(line) {
			continue // "example.com", "3.5": not the end of a sentence
		}
		s := line[start:i]
		out = append(out, unit{sep: sep, text: s, kids: func() []unit { return words(s) }})
		sep = ""
		if ws > i {
			sep = " "
		}
		start, i = ws, ws
	}
	if start < len(line) {
		s := line[start:]
		out = append(out, unit{sep: sep, text: s, kids: func() []unit { return words(s) }})
	}
	return out
}

func words(s string) []unit {
	var out []unit
	for _, w := range strings.Fields(s) {
		out = append(out, unit{sep: " ", text: w, kids: func() []unit { return chars(w) }})
	}
	return out
}

// chars splits a word longer than a post into characters, keeping combining
// marks, emoji modifiers, ZWJ sequences and flags whole.
func chars(w string) []unit {
	var out []unit
	for i := 0; i < len(w); {
		r, n := utf8.DecodeRuneInString(w[i:])
		j := i + n
		for j < len(w) {
			r2, n2 := utf8.DecodeRuneInString(w[j:])
			switch {
			case r2 == 0x200D:
				j += n2
				if j < len(w) {
					_, n3 := utf8.DecodeRuneInString(w[j:])
					j += n3
				}
				continue
			case unicode.In(r2, unicode.Mn, unicode.Me, unicode.Mc), r2 == 0xFE0F, r2 == 0xFE0E, r2 == 0x20E3,
				r2 >= 0x1F3FB && r2 <= 0x1F3FF, r2 >= 0xE0020 && r2 <= 0xE007F,
				r >= 0x1F1E6 && r <= 0x1F1FF && r2 >= 0x1F1E6 && r2 <= 0x1F1FF && j == i+n:
				j += n2
				continue
			}
			break
		}
		out = append(out, unit{text: w[i:j]})
		i = j
	}
	return out
}

// packer fills posts greedily, preferring the coarsest boundary that fits.
type packer struct {
	link   string
	digits int // width of the i/n marker reserved; 0 for a single post
	posts  []string
	cur    string
}

// fits reports whether text fits post number i with its link and marker.
func (pk *packer) fits(text string, i int) bool {
	return XLength(compose(text, pk.link, i, pk.digits, 0)) <= xtext.MaxPost
}

// compose builds post i: the text, the link on the first post, and the
// " i/n" marker (with nines as placeholder when n is 0).
func compose(text, link string, i, digits, n int) string {
	if i == 0 && link != "" {
		text += "\n" + link
	}
	if digits > 0 {
		if n == 0 {
			nines := strings.Repeat("9", digits)
			text += " " + nines + "/" + nines
		} else {
			text += " " + strconv.Itoa(i+1) + "/" + strconv.Itoa(n)
		}
	}
	return text
}

func (pk *packer) flush() {
	if pk.cur != "" {
		pk.posts = append(pk.posts, pk.cur)
		pk.cur = ""
	}
}

func (pk *packer) add(u unit) {
	i := len(pk.posts)
	if pk.cur == "" {
		if pk.fits(u.text, i) || u.kids == nil {
			pk.cur = u.text
			return
		}
	} else {
		if pk.fits(pk.cur+u.sep+u.text, i) {
			pk.cur += u.sep + u.text
			return
		}
		if pk.fits(u.text, i+1) || u.kids == nil {
			pk.flush()
			pk.cur = u.text
			return
		}
	}
	if u.group {
		pk.flush()
	}
	for k, kid := range u.kids() {
		if k == 0 {
			kid.sep = u.sep
		}
		pk.add(kid)
	}
}

// splitThread splits text into posts of at most 280 by XLength, at
// paragraph, then line, then sentence, then word boundaries. The first post
// ends with link; posts are numbered " i/n" when there are several.
func splitThread(text, link string) ([]string, error) {
	text = strings.TrimSpace(text)
	if XLength(compose(text, link, 0, 0, 0)) <= xtext.MaxPost {
		return []string{compose(text, link, 0, 0, 0)}, nil
	}
	// Far too long: say roughly how many posts rather than pack them all
	// (a 512 KiB body would take seconds).
	if l := XLength(text); l > 4*MaxThread*xtext.MaxPost {
		return nil, &ThreadTooLongError{Posts: (l + xtext.MaxPost - 7) / (xtext.MaxPost - 6)}
	}
	units := paragraphs(text)
	for digits := 1; ; digits++ {
		pk := &packer{link: link, digits: digits}
		for _, u := range units {
			pk.add(u)
		}
		pk.flush()
		n := len(pk.posts)
		if len(strconv.Itoa(n)) > digits {
			if n > MaxThread*10 {
				return nil, &ThreadTooLongError{Posts: n}
			}
			continue
		}
		if n > MaxThread {
			return nil, &ThreadTooLongError{Posts: n}
		}
		for i, p := range pk.posts {
			pk.posts[i] = compose(p, link, i, digits, n)
		}
		return pk.posts, nil
	}
}
