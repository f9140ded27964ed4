package templates

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/util"
	"golang.org/x/text/width"
)

// plain renders a markdown tree as plain text by walking it: paragraphs
// wrapped, headings underlined, lists as "- " and "1. ", links as
// "text <url>", code blocks indented, tables as aligned rows, quotes with
// "> ". Raw HTML is left out.
type plain struct {
	src       []byte
	width     int  // wrap column; 0 keeps paragraphs on one line
	underline bool // underline headings with = and -
	social    bool // links as "text (url)", for posts
}

func (p *plain) render(doc ast.Node) string {
	return strings.Trim(p.blocks(doc, p.width), "\n")
}

// blocks renders the block children of parent, separated by blank lines
// (single newlines inside a tight list item).
func (p *plain) blocks(parent ast.Node, w int) string {
	sep := "\n\n"
	if li, ok := parent.(*ast.ListItem); ok {
		if l, ok := li.Parent().(*ast.List); ok && l.IsTight {
			sep = "\n"
		}
	}
	var parts []string
	for c := parent.FirstChild(); c != nil; c = c.NextSibling() {
		if s := p.block(c, w); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, sep)
}

func (p *plain) block(n ast.Node, w int) string {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock:
		return wrap(p.inline(n), w)
	case *ast.Heading:
		t := strings.TrimSpace(p.inline(n))
		if !p.underline || t == "" {
			return t
		}
		c := "-"
		if n.Level == 1 {
			c = "="
		}
		return t + "\n" + strings.Repeat(c, max(1, displayWidth(t)))
	case *ast.ThematicBreak:
		return "----------"
	case *ast.CodeBlock, *ast.FencedCodeBlock:
		var b strings.Builder
		lines := n.Lines()
		for i := range lines.Len() {
			seg := lines.At(i)
			b.Write(seg.Value(p.src))
		}
		return prefixLines(strings.TrimRight(b.String(), "\n"), "    ", "")
	case *ast.Blockquote:
		return prefixLines(p.blocks(n, narrower(w, 2)), "> ", ">")
	case *ast.List:
		var items []string
		num := n.Start
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			marker := "- "
			if n.IsOrdered() {
				marker = fmt.Sprintf("%d. ", num)
				num++
			}
			inner := p.blocks(c, narrower(w, len(marker)))
			lines := strings.Split(inner, "\n")
			for i := range lines {
				switch {
				case i == 0:
					lines[i] = marker + lines[i]
				case lines[i] != "":
					lines[i] = strings.Repeat(" ", len(marker)) + lines[i]
				}
			}
			items = append(items, strings.Join(lines, "\n"))
		}
		if n.IsTight {
			return strings.Join(items, "\n")
		}
		return strings.Join(items, "\n\n")
	case *east.Table:
		return p.table(n)
	case *ast.HTMLBlock:
		return ""
	}
	return p.blocks(n, w)
}

func narrower(w, by int) int {
	if w <= 0 {
		return 0
	}
	return max(w-by, 20)
}

// table renders rows with columns padded to a common width, the header
// underlined with dashes.
func (p *plain) table(t *east.Table) string {
	var rows [][]string
	for r := t.FirstChild(); r != nil; r = r.NextSibling() {
		var cells []string
		for c := r.FirstChild(); c != nil; c = c.NextSibling() {
			cells = append(cells, strings.TrimSpace(p.inline(c)))
		}
		rows = append(rows, cells)
	}
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	widths := make([]int, cols)
	for i := range widths {
		widths[i] = 3
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	align := make([]east.Alignment, cols)
	copy(align, t.Alignments)
	line := func(cells []string) string {
		var b strings.Builder
		for i := range cols {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := widths[i] - displayWidth(c)
			if i > 0 {
				b.WriteString("  ")
			}
			switch align[i] {
			case east.AlignRight:
				b.WriteString(strings.Repeat(" ", pad) + c)
			case east.AlignCenter:
				b.WriteString(strings.Repeat(" ", pad/2) + c + strings.Repeat(" ", pad-pad/2))
			default:
				b.WriteString(c + strings.Repeat(" ", pad))
			}
		}
		return strings.TrimRight(b.String(), " ")
	}
	var out []string
	for i, r := range rows {
		out = append(out, line(r))
		if i == 0 {
			dashes := make([]string, cols)
			for j := range dashes {
				dashes[j] = strings.Repeat("-", widths[j])
			}
			out = append(out, strings.Join(dashes, "  "))
		}
	}
	return strings.Join(out, "\n")
}

// inline renders the inline children of n as one string; soft line breaks
// become spaces and hard ones newlines.
func (p *plain) inline(n ast.Node) string {
	var b strings.Builder
	p.inlines(n, &b)
	return b.String()
}

func (p *plain) inlines(n ast.Node, b *strings.Builder) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.Write(unescape(c.Segment.Value(p.src)))
			switch {
			case c.HardLineBreak():
				b.WriteString("\n")
			case c.SoftLineBreak():
				b.WriteString(" ")
			}
		case *ast.String:
			if c.IsCode() {
				b.Write(c.Value)
			} else {
				b.Write(unescape(c.Value))
			}
		case *ast.CodeSpan:
			for t := c.FirstChild(); t != nil; t = t.NextSibling() {
				if tx, ok := t.(*ast.Text); ok {
					b.WriteString(strings.ReplaceAll(string(tx.Segment.Value(p.src)), "\n", " "))
				} else if s, ok := t.(*ast.String); ok {
					b.Write(s.Value)
				}
			}
		case *ast.Link:
			p.link(b, p.inline(c), string(unescape(c.Destination)))
		case *ast.Image: // the sanitizer turns images into links; kept for safety
			p.link(b, p.inline(c), string(unescape(c.Destination)))
		case *ast.AutoLink:
			b.Write(c.Label(p.src))
		case *ast.RawHTML:
		case *east.Strikethrough:
			b.WriteString("~~" + p.inline(c) + "~~")
		case *east.TaskCheckBox:
			if c.IsChecked {
				b.WriteString("[x] ")
			} else {
				b.WriteString("[ ] ")
			}
		default:
			p.inlines(c, b)
		}
	}
}

func (p *plain) link(b *strings.Builder, label, dest string) {
	label = strings.TrimSpace(label)
	switch {
	case dest == "" || label == dest || "mailto:"+label == dest || "tel:"+label == dest:
		b.WriteString(label)
	case label == "":
		b.WriteString(dest)
	case p.social:
		b.WriteString(label + " (" + dest + ")")
	default:
		b.WriteString(label + " <" + dest + ">")
	}
}

// unescape resolves backslash escapes and character references as the HTML
// renderer does.
func unescape(v []byte) []byte {
	v = util.UnescapePunctuations(v)
	v = util.ResolveNumericReferences(v)
	return util.ResolveEntityNames(v)
}

// prefixLines puts prefix before every line of s, or blank before empty lines.
func prefixLines(s, prefix, blank string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = blank
		} else {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// displayWidth is the number of terminal columns s takes: East Asian wide
// characters take two, combining marks none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	if unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200D || r == 0xFE0F {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// wrap wraps each line of s at w columns, breaking at spaces and between
// wide (CJK) characters, never inside a word, URL or token. w <= 0 keeps s.
func wrap(s string, w int) string {
	if w <= 0 {
		return s
	}
	lines := strings.Split(s, "\n")
	var out []string
	for _, l := range lines {
		out = append(out, wrapLine(l, w)...)
	}
	return strings.Join(out, "\n")
}

type piece struct {
	text  string
	space bool // a space separates it from the previous piece
}

func wrapLine(line string, w int) []string {
	var pieces []piece
	for _, word := range strings.Fields(line) {
		first := true
		for _, part := range splitWide(word) {
			pieces = append(pieces, piece{part, first})
			first = false
		}
	}
	if len(pieces) == 0 {
		return []string{""}
	}
	var out []string
	var cur strings.Builder
	curW := 0
	for _, pc := range pieces {
		pw := displayWidth(pc.text)
		add := pw
		if pc.space && curW > 0 {
			add++
		}
		if curW > 0 && curW+add > w {
			out = append(out, cur.String())
			cur.Reset()
			curW = 0
			add = pw
		}
		if pc.space && curW > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(pc.text)
		curW += add
	}
	return append(out, cur.String())
}

// splitWide splits a word before and after each wide character, keeping
// closing punctuation with what it follows (no line starts with "。").
func splitWide(word string) []string {
	hasWide := false
	for _, r := range word {
		if runeWidth(r) == 2 {
			hasWide = true
			break
		}
	}
	if !hasWide {
		return []string{word}
	}
	var parts []string
	start := 0
	prevWide := false
	for i, r := range word {
		wide := runeWidth(r) == 2
		if i > start && (wide || prevWide) && !noBreakBefore(r) {
			parts = append(parts, word[start:i])
			start = i
		}
		prevWide = wide
	}
	return append(parts, word[start:])
}

func noBreakBefore(r rune) bool {
	return strings.ContainsRune("、。，．！？：；）」』】〕〉》ー・!?.,:;)]}%", r) || unicode.Is(unicode.Mn, r)
}

// truncateWords returns at most about n characters of s, cut at a space.
func truncateWords(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut := 0
	count := 0
	for i, r := range s {
		if count >= n {
			break
		}
		if r == ' ' {
			cut = i
		}
		count++
	}
	if cut == 0 { // no space (CJK): cut at n characters, outside any ASCII word
		count = 0
		for i := range s {
			if count == n {
				cut = i
				break
			}
			count++
		}
		for cut < len(s) && isWordByte(s[cut]) {
			cut++
		}
		if cut >= len(s) {
			return s
		}
	}
	return s[:cut] + "…"
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
