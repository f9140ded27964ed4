package recipients

import (
	"fmt"
	"io"

	"github.com/breachcast/breachcast"
)

// Reader is the second pass over a checked file: it returns the valid rows
// as recipients, one at a time, without holding the file in memory. It is
// not safe for concurrent use.
type Reader struct {
	rep        *Report
	src        *source
	c          *checker
	n          int
	done       bool
	ownsReport bool
}

// Open starts the second pass over the checked file. A file with bad rows is
// refused with a *ProblemsError unless skipInvalid, and one with no valid
// row at all with an invalid-input error.
func (r *Report) Open(skipInvalid bool) (*Reader, error) {
	if r.layout == nil || r.path == "" {
		return nil, fmt.Errorf("recipients: open %s: the report is closed or incomplete", r.File)
	}
	if !r.OK() && !skipInvalid {
		return nil, &ProblemsError{Report: r}
	}
	if r.Valid == 0 {
		return nil, breachcast.Errorf(breachcast.EINVALID, "%s: no recipient rows to import", r.File)
	}
	src, err := openSource(r.path, r.File)
	if err != nil {
		return nil, err
	}
	if fi, err := src.f.Stat(); err != nil || fi.Size() != r.size || !fi.ModTime().Equal(r.modTime) {
		src.close()
		return nil, changedError(r.File)
	}
	return &Reader{rep: r, src: src, c: newChecker(r.layout)}, nil
}

func changedError(file string) error {
	return breachcast.Errorf(breachcast.ECONFLICT, "%s changed after it was checked; run the import again", file)
}

// Report is the check of the file being read.
func (rd *Reader) Report() *Report { return rd.rep }

// Count is how many recipients Next has returned so far.
func (rd *Reader) Count() int { return rd.n }

// Next returns the next valid recipient, or nil, nil at the end: the
// signature store.(*DB).ImportRecipients reads from. Attrs holds the
// non-empty attribute cells; the locale is in canonical form ("en-US").
// Should the file have changed since it was checked, Next fails rather than
// import rows that were never checked.
func (rd *Reader) Next() (*breachcast.Recipient, error) {
	if rd.done {
		return nil, nil
	}
	for {
		rec, perr, err := rd.src.next()
		if err == io.EOF {
			rd.done = true
			if rd.src.index != rd.rep.Rows || rd.n != rd.rep.Valid {
				return nil, changedError(rd.rep.File)
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rd.rep.File, err)
		}
		if rd.rep.invalid.has(rd.src.index - 1) {
			continue
		}
		if perr != nil || !rd.c.cells(rec, nil) {
			return nil, changedError(rd.rep.File)
		}
		rd.n++
		return rd.build(rec), nil
	}
}

func (rd *Reader) build(rec []string) *breachcast.Recipient {
	r := &breachcast.Recipient{}
	for i, raw := range rec {
		v := trimSpace(raw)
		if v == "" {
			continue
		}
		col := &rd.rep.layout.cols[i]
		switch col.kind {
		case colEmail:
			r.Email = v
		case colName:
			r.Name = v
		case colLocale:
			r.Locale, _ = rd.c.locale(v)
		case colAttr:
			if r.Attrs == nil {
				r.Attrs = make(map[string]string, len(rd.rep.Attrs))
			}
			r.Attrs[col.key] = v
		}
	}
	return r
}

// Close ends the pass; a Reader made by the package Open also removes any
// spooled standard input.
func (rd *Reader) Close() error {
	err := rd.src.close()
	if rd.ownsReport {
		if cerr := rd.rep.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
