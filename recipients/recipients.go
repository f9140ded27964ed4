// Package recipients reads the affected customers from a CSV file:
// `breachcast recipients import FILE.csv [--segment NAME] [--skip-invalid]`.
//
// The file is read twice from disk and never held in memory whole. Check
// reads it once and reports every row that cannot be imported, with the row
// number a spreadsheet shows (the header is row 1): a bad address, a
// duplicate, a wrong number of values, text that is not UTF-8, a locale that
// is not a language tag, a value over 1 KiB. A Reader then reads it again and
// hands the valid rows, one at a time, to store.(*DB).ImportRecipients.
// Nothing is imported from a file with bad rows unless the caller asks to
// skip them.
//
// Columns: email (required), name and locale (optional), and any others,
// kept as attributes for templates ({{.Recipient.Attr "plan"}}) under their
// header names in lower-case snake_case. Comma, semicolon and tab separated
// files, a UTF-8 byte order mark, CRLF line ends and quoted values are
// accepted; standard input ("-") is spooled to a temporary file first.
package recipients

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/breachcast/breachcast"
)

// DefaultMaxProblems is how many problems a Report lists by default; the
// rest are counted in MoreProblems.
const DefaultMaxProblems = 20

// Problem is one reason a row cannot be imported.
type Problem struct {
	Row     int    // as a spreadsheet numbers it; the header is row 1
	Column  string // attribute name of the column ("email", "plan"), "" for the whole row
	Message string
}

// String is the problem as a user reads it:
// `row 17: email: "bob@@example.com" is not a valid email address`.
func (p Problem) String() string {
	if p.Column == "" {
		return fmt.Sprintf("row %d: %s", p.Row, p.Message)
	}
	return fmt.Sprintf("row %d: %s: %s", p.Row, p.Column, p.Message)
}

// Report is what Check found in a file.
type Report struct {
	File         string    // the file as named to the user ("standard input" for "-")
	Rows         int       // data rows, not counting the header and rows whose cells are all empty
	Valid        int       // rows that can be imported
	Problems     []Problem // the first problems found, in file order
	MoreProblems int       // problems found beyond those listed
	Columns      []string  // the named columns, normalised, in file order
	Attrs        []string  // the columns kept as attributes (all but email, name and locale)
	Delimiter    rune      // ',', ';' or '\t', sniffed from the header

	path    string // what is read: the file, or the spooled copy of standard input
	temp    bool   // path is a spooled copy that Close removes
	size    int64
	modTime time.Time
	layout  *layout
	invalid bitset // data record indexes (0-based) that cannot be imported
}

// OK reports whether every row can be imported.
func (r *Report) OK() bool { return r.Valid == r.Rows }

// Invalid is the number of rows that cannot be imported.
func (r *Report) Invalid() int { return r.Rows - r.Valid }

// String summarises the report for a terminal: the counts, then each
// listed problem on its own line.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rows, %d valid", r.File, r.Rows, r.Valid)
	if n := r.Invalid(); n > 0 {
		fmt.Fprintf(&b, ", %d with problems", n)
	}
	if len(r.Attrs) > 0 {
		fmt.Fprintf(&b, "; attributes: %s", strings.Join(r.Attrs, ", "))
	}
	b.WriteByte('\n')
	for _, p := range r.Problems {
		b.WriteString("  ")
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	if r.MoreProblems > 0 {
		fmt.Fprintf(&b, "  ... and %d more problems\n", r.MoreProblems)
	}
	return b.String()
}

// Close removes the spooled copy of standard input, if any. A Report of a
// regular file needs no Close, but it does no harm.
func (r *Report) Close() error {
	if !r.temp || r.path == "" {
		return nil
	}
	err := os.Remove(r.path)
	r.path = ""
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spooled standard input: %w", err)
	}
	return nil
}

// ProblemsError is returned when a file with bad rows is opened without
// skipping them. It unwraps to a *breachcast.Error with code invalid.
type ProblemsError struct {
	Report *Report
}

// Error says how many rows have problems and what to do about them.
func (e *ProblemsError) Error() string {
	return fmt.Sprintf("%s: %d of %d rows have problems; nothing was imported (fix them, or import only the valid rows with --skip-invalid)",
		e.Report.File, e.Report.Invalid(), e.Report.Rows)
}

// Unwrap makes the error an invalid-input error for breachcast.ErrorCodeOf.
func (e *ProblemsError) Unwrap() error {
	return &breachcast.Error{Code: breachcast.EINVALID, Message: e.Error()}
}

// Options tune Check and Open; the zero value gives the defaults.
type Options struct {
	// MaxProblems is how many problems the Report lists (default
	// DefaultMaxProblems); the rest are counted.
	MaxProblems int
	// Stdin is read for the path "-"; default os.Stdin.
	Stdin io.Reader
	// TempDir receives the spooled copy of standard input; default
	// os.TempDir().
	TempDir string
}

// Check reads the file at path ("-" for standard input) once and reports
// what can be imported. Errors are for files that cannot be read as a
// recipient list at all (missing email column, empty, binary, not UTF-8,
// unreadable header); they are *breachcast.Error with code invalid except
// for I/O failures.
func Check(path string) (*Report, error) { return Options{}.Check(path) }

// Open checks the file at path and returns a Reader of its valid rows. Bad
// rows are refused with a *ProblemsError unless skipInvalid. The Reader owns
// any spooled standard input and removes it on Close.
func Open(path string, skipInvalid bool) (*Reader, error) { return Options{}.Open(path, skipInvalid) }

// Open is the package Open with these options.
func (o Options) Open(path string, skipInvalid bool) (*Reader, error) {
	rep, err := o.Check(path)
	if err != nil {
		return nil, err
	}
	rd, err := rep.Open(skipInvalid)
	if err != nil {
		rep.Close()
		return nil, err
	}
	rd.ownsReport = true
	return rd, nil
}

// Check is the package Check with these options.
func (o Options) Check(path string) (*Report, error) {
	if o.MaxProblems <= 0 {
		o.MaxProblems = DefaultMaxProblems
	}
	rep := &Report{File: path, path: path}
	if path == "" {
		return nil, breachcast.Errorf(breachcast.EINVALID, "no recipient file given")
	}
	if path == "-" {
		in := o.Stdin
		if in == nil {
			in = os.Stdin
		}
		p, err := spool(in, o.TempDir)
		if err != nil {
			return nil, err
		}
		rep.File, rep.path, rep.temp = "standard input", p, true
	}
	if err := rep.check(o.MaxProblems); err != nil {
		rep.Close()
		return nil, err
	}
	return rep, nil
}

func (rep *Report) check(maxProblems int) error {
	src, err := openSource(rep.path, rep.File)
	if err != nil {
		return err
	}
	defer src.close()
	if fi, err := src.f.Stat(); err == nil {
		rep.size, rep.modTime = fi.Size(), fi.ModTime()
	}
	l, err := parseHeader(src.header, rep.File)
	if err != nil {
		return err
	}
	rep.layout, rep.Delimiter = l, src.comma
	for _, c := range l.cols {
		if c.kind != colIgnored {
			rep.Columns = append(rep.Columns, c.key)
		}
		if c.kind == colAttr {
			rep.Attrs = append(rep.Attrs, c.key)
		}
	}

	c := newChecker(l)
	row := 0
	emit := func(column, message string) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, Problem{Row: row, Column: column, Message: message})
		} else {
			rep.MoreProblems++
		}
	}
	for {
		rec, perr, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var tl *tooLongError
			if errors.As(err, &tl) {
				return breachcast.Errorf(breachcast.EINVALID, "%s: %s", rep.File, tl.Error())
			}
			return fmt.Errorf("read %s: %w", rep.File, err)
		}
		row = src.row
		rep.Rows++
		ok := false
		if perr != nil {
			emit("", parseErrorText(perr))
		} else {
			ok = c.check(rec, row, emit)
		}
		if ok {
			rep.Valid++
		} else {
			rep.invalid.set(src.index - 1)
		}
	}
	return nil
}

// colKind says what a column holds.
type colKind uint8

const (
	colAttr colKind = iota
	colEmail
	colName
	colLocale
	colIgnored // no header: its cells must be empty
)

type column struct {
	kind  colKind
	key   string // normalised name; for colIgnored "column N"
	title string // the header as written
}

// layout is the meaning of each column, from the header.
type layout struct {
	cols  []column
	email int
}

// emailAliases are other headers taken as the email column.
var emailAliases = map[string]bool{"email": true, "e_mail": true, "email_address": true}

func parseHeader(raw []string, file string) (*layout, error) {
	if len(raw) > MaxColumns {
		return nil, breachcast.Errorf(breachcast.EINVALID, "%s: the header has %d columns; at most %d are accepted", file, len(raw), MaxColumns)
	}
	l := &layout{email: -1}
	seen := map[string]int{}
	for i, title := range raw {
		n := i + 1
		if !utf8.ValidString(title) {
			return nil, breachcast.Errorf(breachcast.EINVALID, "%s: the header of column %d is not UTF-8 text; save the file as \"CSV UTF-8\"", file, n)
		}
		key := NormalizeHeader(title)
		c := column{kind: colAttr, key: key, title: strings.TrimSpace(title)}
		switch {
		case key == "":
			if strings.TrimSpace(strings.TrimPrefix(title, "\ufeff")) != "" {
				return nil, breachcast.Errorf(breachcast.EINVALID,
					"%s: the header of column %d, %q, has no letters or digits to make an attribute name of", file, n, clip(title))
			}
			c.kind, c.key = colIgnored, "column "+strconv.Itoa(n)
		case emailAliases[key]:
			c.kind, c.key = colEmail, "email"
		case key == "name":
			c.kind = colName
		case key == "locale":
			c.kind = colLocale
		case !ValidAttrName(key):
			return nil, breachcast.Errorf(breachcast.EINVALID,
				"%s: the header of column %d, %q, does not make an attribute name (it became %q; names are a letter a-z, then letters a-z, digits and _, at most %d)",
				file, n, clip(title), clip(key), MaxAttrName)
		}
		if c.kind != colIgnored {
			if prev, dup := seen[c.key]; dup {
				return nil, breachcast.Errorf(breachcast.EINVALID, "%s: columns %d (%q) and %d (%q) are both %q",
					file, prev, clip(raw[prev-1]), n, clip(title), c.key)
			}
			seen[c.key] = n
		}
		if c.kind == colEmail {
			l.email = i
		}
		l.cols = append(l.cols, c)
	}
	if l.email < 0 {
		return nil, breachcast.Errorf(breachcast.EINVALID,
			"%s: the header row has no email column (found: %s); the first row must name the columns, e.g. email,name,locale",
			file, clip(strings.Join(raw, ", ")))
	}
	return l, nil
}

// clip shortens a value for a message.
func clip(v string) string {
	const max = 60
	if len(v) <= max {
		return v
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}

// checker validates rows. Only fully valid rows take part in duplicate
// detection, so that with --skip-invalid the first valid copy of an
// address is the one imported.
type checker struct {
	l       *layout
	locales map[string]string // raw -> canonical, a small cache: locales repeat
	seeds   [2]maphash.Seed
	seen    map[[2]uint64]int32 // lower-cased address hash -> row of its first valid occurrence
	lower   []byte
}

const maxLocaleCache = 1024

func newChecker(l *layout) *checker {
	return &checker{l: l, locales: map[string]string{}, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		seen: map[[2]uint64]int32{}}
}

// locale returns the canonical locale or ok false.
func (c *checker) locale(v string) (string, bool) {
	if t, ok := c.locales[v]; ok {
		return t, t != ""
	}
	t, ok := normalizeLocale(v)
	if len(c.locales) < maxLocaleCache {
		c.locales[strings.Clone(v)] = t
	}
	return t, ok
}

// cells validates the cells of rec, calling emit for each problem when emit
// is not nil, and reports whether the row is valid apart from duplicates.
func (c *checker) cells(rec []string, emit func(column, message string)) bool {
	l := c.l
	if len(rec) != len(l.cols) {
		if emit != nil {
			emit("", fmt.Sprintf("has %d values, the header has %d columns", len(rec), len(l.cols)))
		}
		return false
	}
	ok := true
	for i, raw := range rec {
		col := &l.cols[i]
		v := trimSpace(raw)
		if v == "" {
			if col.kind == colEmail {
				ok = false
				if emit != nil {
					emit(col.key, "is empty; every row needs an address")
				}
			}
			continue
		}
		if col.kind == colIgnored {
			ok = false
			if emit != nil {
				emit("", fmt.Sprintf("%s has a value, %q, but no header", col.key, clip(v)))
			}
			continue
		}
		if !cleanText(v) {
			ok = false
			if emit != nil {
				if !utf8.ValidString(v) {
					emit(col.key, "is not UTF-8 text; save the file as \"CSV UTF-8\"")
				} else {
					emit(col.key, fmt.Sprintf("%q contains control characters", clip(v)))
				}
			}
			continue
		}
		if len(v) > MaxValueBytes {
			ok = false
			if emit != nil {
				emit(col.key, fmt.Sprintf("is %d bytes long; at most %d are accepted", len(v), MaxValueBytes))
			}
			continue
		}
		switch col.kind {
		case colEmail:
			if !ValidEmail(v) {
				ok = false
				if emit != nil {
					emit(col.key, fmt.Sprintf("%q is not a valid email address", clip(v)))
				}
			}
		case colLocale:
			if _, good := c.locale(v); !good {
				ok = false
				if emit != nil {
					emit(col.key, fmt.Sprintf("%q is not a language tag such as en, en-GB or pt-BR", clip(v)))
				}
			}
		}
	}
	return ok
}

// check validates a row, duplicates included.
func (c *checker) check(rec []string, row int, emit func(column, message string)) bool {
	if !c.cells(rec, emit) {
		return false
	}
	email := trimSpace(rec[c.l.email])
	key := c.key(email)
	if first, dup := c.seen[key]; dup {
		emit("email", fmt.Sprintf("%q is a duplicate: row %d has the same address", clip(email), first))
		return false
	}
	c.seen[key] = int32(row)
	return true
}

// key hashes the lower-cased address with two seeds: 128 bits, so that
// telling a million addresses apart needs no copy of them.
func (c *checker) key(email string) [2]uint64 {
	c.lower = c.lower[:0]
	ascii := true
	for i := 0; i < len(email); i++ {
		b := email[i]
		if b >= utf8.RuneSelf {
			ascii = false
			break
		}
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		c.lower = append(c.lower, b)
	}
	if !ascii {
		c.lower = append(c.lower[:0], strings.ToLower(email)...)
	}
	return [2]uint64{maphash.Bytes(c.seeds[0], c.lower), maphash.Bytes(c.seeds[1], c.lower)}
}

// cleanText reports whether v is UTF-8 without control characters (tab and
// line breaks allowed).
func cleanText(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b >= utf8.RuneSelf {
			return utf8.ValidString(v[i:]) && !hasControl(v[i:]) && !hasC1(v[i:])
		}
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' || b == 0x7f {
			return false
		}
	}
	return true
}

// hasC1 reports whether v holds a C1 control character (U+0080-U+009F).
func hasC1(v string) bool {
	for _, r := range v {
		if r >= 0x80 && r <= 0x9f {
			return true
		}
	}
	return false
}

// bitset is a growable set of small non-negative integers.
type bitset []uint64

func (b *bitset) set(i int) {
	w := i / 64
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (uint(i) % 64)
}

func (b bitset) has(i int) bool {
	w := i / 64
	return w < len(b) && b[w]&(1<<(uint(i)%64)) != 0
}
