package recipients

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/breachcast/breachcast"
)

// Limits on what a recipient file may hold. They bound the memory one
// import can take, whatever the file.
const (
	MaxFileBytes   = 4 << 30   // a file, or standard input
	MaxValueBytes  = 1 << 10   // one value (cell)
	MaxColumns     = 50        // columns in the header
	MaxRecordBytes = 256 << 10 // one row as written in the file, quotes and all
	MaxAttrName    = 64        // length of an attribute name after normalisation
)

// bufSize is the read buffer; the header line must fit in it.
const bufSize = 64 << 10

var errRecordTooLong = errors.New("record too long")

// budgetReader stops a csv.Reader that would read a single record past its
// budget: an unclosed quote would otherwise pull the rest of the file into
// one field in memory.
type budgetReader struct {
	r      io.Reader
	read   int64 // bytes handed out
	budget int64 // may read up to here
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.read >= b.budget {
		return 0, errRecordTooLong
	}
	if left := b.budget - b.read; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// source is one pass over the file: its header is read and its records
// come one by one with their spreadsheet row numbers.
type source struct {
	f      *os.File
	budget *budgetReader
	csv    *csv.Reader
	skip   int64 // bytes before the CSV text (the BOM)
	comma  rune

	header []string // raw header cells

	// Rows as a spreadsheet numbers them: csv counts physical lines, so
	// newlines inside quoted values are taken off again.
	extraLines int
	row        int
	index      int // 0-based index of the data record (all-empty rows excluded)
}

// open opens name (a path; the display name is used in messages) and
// reads the header. Errors are *breachcast.Error with code invalid when the
// file is not a recipient CSV.
func openSource(path, display string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", display, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", display, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, breachcast.Errorf(breachcast.EINVALID, "%s is not a regular file", display)
	}
	if fi.Size() > MaxFileBytes {
		f.Close()
		return nil, breachcast.Errorf(breachcast.EINVALID, "%s is %d bytes, more than the %d a recipient file may have; split it",
			display, fi.Size(), int64(MaxFileBytes))
	}
	s := &source{f: f}
	if err := s.start(display); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *source) close() error { return s.f.Close() }

func (s *source) start(display string) error {
	s.budget = &budgetReader{r: s.f, budget: MaxRecordBytes + bufSize}
	br := bufio.NewReaderSize(s.budget, bufSize)
	head, err := br.Peek(bufSize)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("read %s: %w", display, err)
	}
	if err := sniffText(head, display); err != nil {
		return err
	}
	if bytes.HasPrefix(head, utf8BOM) {
		s.skip = int64(len(utf8BOM))
		head = head[len(utf8BOM):]
		_, _ = br.Discard(len(utf8BOM))
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return breachcast.Errorf(breachcast.EINVALID, "%s is empty: a recipient file needs a header row (email, name, locale, ...) and one row per recipient", display)
	}
	line := head
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else if len(head) == bufSize {
		return breachcast.Errorf(breachcast.EINVALID, "%s: the header row is longer than %d KiB; is this a CSV file?", display, bufSize>>10)
	}
	if bytes.IndexByte(bytes.TrimSuffix(line, []byte("\r")), '\r') >= 0 {
		return breachcast.Errorf(breachcast.EINVALID, "%s ends its lines with a lone carriage return (old Mac style); save it as \"CSV UTF-8\"", display)
	}
	s.comma = sniffDelimiter(line)
	s.csv = csv.NewReader(br)
	s.csv.Comma = s.comma
	s.csv.FieldsPerRecord = -1
	s.csv.ReuseRecord = true
	rec, err := s.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return breachcast.Errorf(breachcast.EINVALID, "%s: row 1 (the header): %s", display, parseErrorText(pe))
		}
		return fmt.Errorf("read %s: %w", display, err)
	}
	s.header = append([]string(nil), rec...)
	s.row = 1
	s.noteExtraLines(rec)
	return nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// sniffText refuses what is plainly not a CSV text file, with a message
// that says what it looks like instead.
func sniffText(head []byte, display string) error {
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return breachcast.Errorf(breachcast.EINVALID, "%s is UTF-16 text; save it as \"CSV UTF-8\"", display)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return breachcast.Errorf(breachcast.EINVALID, "%s looks like an Excel workbook (.xlsx), not a CSV file; save it as \"CSV UTF-8\"", display)
	case bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return breachcast.Errorf(breachcast.EINVALID, "%s looks like an old Excel workbook (.xls), not a CSV file; save it as \"CSV UTF-8\"", display)
	case bytes.HasPrefix(head, []byte{0x1F, 0x8B}):
		return breachcast.Errorf(breachcast.EINVALID, "%s is gzip-compressed; decompress it first", display)
	case bytes.IndexByte(head, 0) >= 0:
		return breachcast.Errorf(breachcast.EINVALID, "%s is not a CSV text file (it holds binary data)", display)
	}
	// Mostly invalid UTF-8 at the start: a binary file or another encoding.
	if n := len(head); n >= 64 {
		bad := 0
		for i := 0; i < n; {
			r, size := utf8.DecodeRune(head[i:])
			if r == utf8.RuneError && size == 1 && n-i >= utf8.UTFMax {
				bad++
			}
			i += size
		}
		if bad*10 > n {
			return breachcast.Errorf(breachcast.EINVALID, "%s is not UTF-8 CSV text; save it as \"CSV UTF-8\"", display)
		}
	}
	return nil
}

// sniffDelimiter picks the separator of the header line: the most frequent
// of comma, semicolon and tab outside quotes; comma when there is none.
func sniffDelimiter(line []byte) rune {
	var commas, semis, tabs int
	quoted := false
	for _, c := range line {
		switch c {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				commas++
			}
		case ';':
			if !quoted {
				semis++
			}
		case '\t':
			if !quoted {
				tabs++
			}
		}
	}
	switch {
	case semis > commas && semis >= tabs:
		return ';'
	case tabs > commas && tabs > semis:
		return '\t'
	}
	return ','
}

// next returns the next data record, skipping rows whose cells are all
// empty. perr is a row-level parse problem (the record is then partial);
// err is io.EOF at the end or a fatal error.
func (s *source) next() (rec []string, perr *csv.ParseError, err error) {
	for {
		start := s.csv.InputOffset()
		s.budget.budget = s.skip + start + MaxRecordBytes + bufSize
		rec, err = s.csv.Read()
		if errors.Is(err, errRecordTooLong) {
			return nil, nil, &tooLongError{row: s.row + 1}
		}
		var line int
		if err != nil {
			if !errors.As(err, &perr) {
				return nil, nil, err
			}
			line = perr.StartLine
		} else {
			line, _ = s.csv.FieldPos(0) // only valid for a whole record
		}
		s.row = line - s.extraLines
		s.noteExtraLines(rec)
		if perr == nil && allEmpty(rec) {
			continue
		}
		s.index++
		return rec, perr, nil
	}
}

type tooLongError struct{ row int }

func (e *tooLongError) Error() string {
	return fmt.Sprintf("row %d runs over %d KiB (an unclosed quote?)", e.row, MaxRecordBytes>>10)
}

func (s *source) noteExtraLines(rec []string) {
	for _, v := range rec {
		if len(v) > 0 {
			s.extraLines += countNewlines(v)
		}
	}
}

func countNewlines(v string) int { return strings.Count(v, "\n") }

func allEmpty(rec []string) bool {
	for _, v := range rec {
		for i := 0; i < len(v); i++ {
			if v[i] != ' ' && v[i] != '\t' {
				return false
			}
		}
	}
	return true
}

func parseErrorText(pe *csv.ParseError) string {
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return fmt.Sprintf("a \" in an unquoted value near character %d of the line (quote the whole value and double the \")", pe.Column)
	case errors.Is(pe.Err, csv.ErrQuote):
		return "a quoted value is not closed properly (a stray \"?)"
	}
	return pe.Err.Error()
}

// spool copies r into a new private temporary file in dir and returns its
// path, so that standard input can be read twice.
func spool(r io.Reader, dir string) (string, error) {
	f, err := os.CreateTemp(dir, "breachcast-recipients-*.csv")
	if err != nil {
		return "", fmt.Errorf("spool standard input: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, MaxFileBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > MaxFileBytes {
		err = breachcast.Errorf(breachcast.EINVALID, "standard input is more than the %d bytes a recipient file may have; split it", int64(MaxFileBytes))
	}
	if err != nil {
		os.Remove(f.Name())
		if breachcast.ErrorCodeOf(err) == breachcast.EINVALID {
			return "", err
		}
		return "", fmt.Errorf("spool standard input: %w", err)
	}
	return f.Name(), nil
}
