package recipients_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/recipients"
	"github.com/breachcast/breachcast/store"
)

// write puts content in a file of a fresh temporary directory.
func write(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "customers.csv")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func check(t *testing.T, content string) *recipients.Report {
	t.Helper()
	rep, err := recipients.Check(write(t, content))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

// readAll reads every recipient of an open Reader.
func readAll(t *testing.T, rd *recipients.Reader) []*breachcast.Recipient {
	t.Helper()
	defer rd.Close()
	var out []*breachcast.Recipient
	for {
		r, err := rd.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if r == nil {
			return out
		}
		out = append(out, r)
	}
}

func problems(rep *recipients.Report) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestEveryKindOfBadRowIsReportedWithItsSpreadsheetRow(t *testing.T) {
	long := strings.Repeat("x", recipients.MaxValueBytes+1)
	tests := []struct {
		name string
		csv  string
		want string
	}{
		{"invalid address", "email,name\nann@example.com,Ann\nbob@@example.com,Bob\n",
			`row 3: email: "bob@@example.com" is not a valid email address`},
		{"address without a dot in the domain", "email\nann@localhost\n",
			`row 2: email: "ann@localhost" is not a valid email address`},
		{"address with a display name", "email\nAnn <ann@example.com>\n",
			`row 2: email: "Ann <ann@example.com>" is not a valid email address`},
		{"duplicate in another case", "email,name\nann@example.com,Ann\nbob@example.com,Bob\nANN@Example.com,Ann again\n",
			`row 4: email: "ANN@Example.com" is a duplicate: row 2 has the same address`},
		{"empty address", "email,name\n,Nobody\n",
			`row 2: email: is empty; every row needs an address`},
		{"too few values", "email,name,locale\nann@example.com,Ann,en\nbob@example.com,Bob\n",
			`row 3: has 2 values, the header has 3 columns`},
		{"too many values", "email,name\nann@example.com,Ann,extra\n",
			`row 2: has 3 values, the header has 2 columns`},
		{"invalid UTF-8", "email,name\nann@example.com,Ann \xff\xfe\n",
			`row 2: name: is not UTF-8 text; save the file as "CSV UTF-8"`},
		{"not a language tag", "email,locale\nann@example.com,en\nbob@example.com,english\n",
			`row 3: locale: "english" is not a language tag such as en, en-GB or pt-BR`},
		{"overlong value", "email,plan\nann@example.com," + long + "\n",
			`row 2: plan: is 1025 bytes long; at most 1024 are accepted`},
		{"stray quote", "email,name\nann@example.com,Ann \"the\" Admin\n",
			`row 2: a " in an unquoted value near character 21 of the line (quote the whole value and double the ")`},
		{"quote in the first value", "email,name\n\"ann\"x@example.com,Ann\nbob@example.com,Bob\n",
			`row 2: a quoted value is not closed properly (a stray "?)`},
		{"quote never closed", "email,name\nann@example.com,Ann\nbob@example.com,\"Bob\n",
			`row 3: a quoted value is not closed properly (a stray "?)`},
		{"control character", "email,name\nann@example.com,Ann\x07\n",
			`row 2: name: "Ann\a" contains control characters`},
		{"value under no header", "email,name,\nann@example.com,Ann,\nbob@example.com,Bob,oops\n",
			`row 3: column 3 has a value, "oops", but no header`},
		{"row counted past quoted line breaks and blank lines",
			"email,note\nann@example.com,\"two\nlines\"\n\nbob@@example.com,x\n",
			`row 4: email: "bob@@example.com" is not a valid email address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := check(t, tt.csv)
			if got := problems(rep); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
			if rep.OK() || rep.Invalid() != 1 {
				t.Errorf("rows %d, valid %d: want exactly one invalid row", rep.Rows, rep.Valid)
			}
		})
	}
}

func TestARowWithSeveralProblemsListsEach(t *testing.T) {
	rep := check(t, "email,locale\nnot-an-address,klingon-ish\n")
	want := []string{
		`row 2: email: "not-an-address" is not a valid email address`,
		`row 2: locale: "klingon-ish" is not a language tag such as en, en-GB or pt-BR`,
	}
	if got := problems(rep); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if rep.Rows != 1 || rep.Valid != 0 {
		t.Errorf("rows %d valid %d", rep.Rows, rep.Valid)
	}
}

func TestTheReportListsTheFirstProblemsAndCountsTheRest(t *testing.T) {
	var b strings.Builder
	b.WriteString("email\n")
	for i := range 30 {
		fmt.Fprintf(&b, "bad%d\n", i)
	}
	b.WriteString("good@example.com\n")
	rep, err := recipients.Options{MaxProblems: 5}.Check(write(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 5 || rep.MoreProblems != 25 || rep.Rows != 31 || rep.Valid != 1 {
		t.Fatalf("problems %d, more %d, rows %d, valid %d", len(rep.Problems), rep.MoreProblems, rep.Rows, rep.Valid)
	}
	if rep.Problems[4].Row != 6 {
		t.Errorf("fifth problem on row %d, want 6", rep.Problems[4].Row)
	}
	s := rep.String()
	for _, want := range []string{"31 rows, 1 valid, 30 with problems", `row 2: email: "bad0" is not a valid email address`, "... and 25 more problems"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func TestFilesThatAreNotRecipientListsAreRefusedWithAClearError(t *testing.T) {
	manyColumns := "email"
	for i := range recipients.MaxColumns {
		manyColumns += fmt.Sprintf(",c%d", i)
	}
	tests := []struct {
		name, content, want string
	}{
		{"no email column", "name,locale\nAnn,en\n", "the header row has no email column (found: name, locale)"},
		{"empty file", "", "is empty"},
		{"only a byte order mark and blank lines", "\ufeff\r\n\r\n", "is empty"},
		{"binary", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file (it holds binary data)"},
		{"excel workbook", "PK\x03\x04\x14\x00\x06\x00", "looks like an Excel workbook (.xlsx)"},
		{"UTF-16", "\xff\xfee\x00m\x00a\x00i\x00l\x00", "is UTF-16 text"},
		{"old Mac line ends", "email,name\rann@example.com,Ann\r", "ends its lines with a lone carriage return"},
		{"too many columns", manyColumns + "\n", "the header has 51 columns; at most 50 are accepted"},
		{"header that is no name", "email,2FA enabled\n", `the header of column 2, "2FA enabled", does not make an attribute name (it became "2_fa_enabled"`},
		{"two headers with one name", "email,Plan,plan\n", `columns 2 ("Plan") and 3 ("plan") are both "plan"`},
		{"header of punctuation only", "email,???\n", `the header of column 2, "???", has no letters or digits`},
		{"unclosed quote running away", "email,note\nann@example.com,\"" + strings.Repeat("a,b\n", recipients.MaxRecordBytes/2),
			"row 2 runs over 256 KiB (an unclosed quote?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := recipients.Check(write(t, tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
				t.Errorf("code %q, want invalid", breachcast.ErrorCodeOf(err))
			}
			if !strings.Contains(err.Error(), "customers.csv") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := recipients.Check(filepath.Join(t.TempDir(), "missing.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := recipients.Check(t.TempDir()); breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
		t.Errorf("a directory: %v", err)
	}
}

func TestBOMCRLFSemicolonsAndQuotedFieldsAreRead(t *testing.T) {
	content := "\ufeffE-mail;Full Name;Locale;Plan Name;Notes\r\n" +
		"ann@example.com;\"Doe; Ann\";en_us;pro;\"said \"\"hi\"\"\r\non two lines\"\r\n" +
		"  bob@example.com ; Bob ;;;\r\n"
	rep := check(t, content)
	if !rep.OK() || rep.Rows != 2 || rep.Delimiter != ';' {
		t.Fatalf("report %+v\n%s", rep, rep)
	}
	if want := []string{"email", "full_name", "locale", "plan_name", "notes"}; !reflect.DeepEqual(rep.Columns, want) {
		t.Errorf("columns %q, want %q", rep.Columns, want)
	}
	if want := []string{"full_name", "plan_name", "notes"}; !reflect.DeepEqual(rep.Attrs, want) {
		t.Errorf("attrs %q, want %q", rep.Attrs, want)
	}
	rd, err := rep.Open(false)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, rd)
	want := []*breachcast.Recipient{
		{Email: "ann@example.com", Locale: "en-US",
			Attrs: map[string]string{"full_name": "Doe; Ann", "plan_name": "pro", "notes": "said \"hi\"\non two lines"}},
		{Email: "bob@example.com", Attrs: map[string]string{"full_name": "Bob"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", dump(got), dump(want))
	}
}

func TestCommaAndTabSeparatedFilesAndNameColumns(t *testing.T) {
	for sep, content := range map[rune]string{
		',':  "email,name,locale,plan\nann@example.com,Ann,pt-br,\"pro, yearly\"\n",
		'\t': "email\tname\tlocale\tplan\nann@example.com\tAnn\tpt-br\t\"pro, yearly\"\n",
	} {
		rep := check(t, content)
		if rep.Delimiter != sep {
			t.Errorf("delimiter %q, want %q", rep.Delimiter, sep)
		}
		rd, err := rep.Open(false)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, rd)
		want := []*breachcast.Recipient{{Email: "ann@example.com", Name: "Ann", Locale: "pt-BR", Attrs: map[string]string{"plan": "pro, yearly"}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("separator %q: got %s, want %s", sep, dump(got), dump(want))
		}
	}
}

func dump(rs []*breachcast.Recipient) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%+v\n", *r)
	}
	return b.String()
}

func TestStandardInputIsSpooledReadTwiceAndRemoved(t *testing.T) {
	dir := t.TempDir()
	o := recipients.Options{Stdin: strings.NewReader("email,name\nann@example.com,Ann\nbad,Bob\n"), TempDir: dir}
	rd, err := o.Open("-", true)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Report().File != "standard input" || rd.Report().Rows != 2 {
		t.Fatalf("report %+v", rd.Report())
	}
	spooled, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(spooled) != 1 {
		t.Fatalf("spooled files %v", spooled)
	}
	if fi, err := os.Stat(spooled[0]); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("spooled copy %v, %v: want private to its owner", fi.Mode(), err)
	}
	got := readAll(t, rd) // closes
	if len(got) != 1 || got[0].Email != "ann@example.com" {
		t.Fatalf("got %s", dump(got))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("spooled copy left behind: %v", left)
	}

	// A refused file removes its copy at once.
	o.Stdin = strings.NewReader("name\nAnn\n")
	if _, err := o.Open("-", false); err == nil || !strings.Contains(err.Error(), "standard input: the header row has no email column") {
		t.Fatalf("got %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("spooled copy left behind: %v", left)
	}
}

func TestAFileWithBadRowsIsRefusedUnlessSkipped(t *testing.T) {
	path := write(t, "email,name\nann@example.com,Ann\nbob@@example.com,Bob\ncara@example.com,Cara\n")
	_, err := recipients.Open(path, false)
	var pe *recipients.ProblemsError
	if !errors.As(err, &pe) || breachcast.ErrorCodeOf(err) != breachcast.EINVALID {
		t.Fatalf("got %v, want a *ProblemsError with code invalid", err)
	}
	if want := "customers.csv: 1 of 3 rows have problems; nothing was imported"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	if pe.Report.Problems[0].Row != 3 {
		t.Errorf("report %+v", pe.Report.Problems)
	}
	rd, err := recipients.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, r := range readAll(t, rd) {
		emails = append(emails, r.Email)
	}
	if want := []string{"ann@example.com", "cara@example.com"}; !reflect.DeepEqual(emails, want) {
		t.Fatalf("got %q, want %q", emails, want)
	}
}

func TestAHeaderOnlyFileHasNothingToImport(t *testing.T) {
	rep := check(t, "email,name\n,\n")
	if rep.Rows != 0 || !rep.OK() {
		t.Fatalf("rows %d: an all-empty row is not a row", rep.Rows)
	}
	if _, err := rep.Open(true); err == nil || !strings.Contains(err.Error(), "no recipient rows to import") {
		t.Fatalf("got %v", err)
	}
}

func TestAFileChangedAfterTheCheckIsNotImported(t *testing.T) {
	path := write(t, "email\nann@example.com\nbob@example.com\n")
	rep, err := recipients.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("email\nann@example.com\nnot valid\nmore@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Open(false); breachcast.ErrorCodeOf(err) != breachcast.ECONFLICT {
		t.Fatalf("got %v, want a conflict", err)
	}

	// Same size and time, different rows: caught while reading.
	path = write(t, "email\nann@example.com\nbob@example.com\n")
	rep, err = recipients.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte("email\nann@example.com\nbob@example,com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Time{}, fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	rd, err := rep.Open(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if r, err := rd.Next(); err != nil || r.Email != "ann@example.com" {
		t.Fatalf("first row %v, %v", r, err)
	}
	if _, err := rd.Next(); breachcast.ErrorCodeOf(err) != breachcast.ECONFLICT {
		t.Fatalf("changed row: %v", err)
	}
}

func TestEmailAddresses(t *testing.T) {
	valid := []string{
		"ann@example.com", "Ann.Lee+breach@mail.example.co.uk", "o'brien@example.ie", "x@a.io",
		"a!#$%&'*+-/=?^_`{|}~@example.com", "ünïcode@example.com", "ann@bücher.example", "ann@xn--bcher-kva.example",
		strings.Repeat("a", 64) + "@example.com",
	}
	invalid := []string{
		"", "ann", "@example.com", "ann@", "ann@localhost", "ann@@example.com", "ann@example..com", "ann@.example.com",
		"ann@example.com.", ".ann@example.com", "ann.@example.com", "an..n@example.com", "ann @example.com",
		"ann@exa mple.com", "Ann <ann@example.com>", "<ann@example.com>", `"ann"@example.com`, `"a b"@example.com`,
		"ann@[192.0.2.1]", "ann@192.0.2.1", "ann@-example.com", "ann@example-.com", "ann@exa_mple.com",
		"ann@example.com\n", "ann,bob@example.com", strings.Repeat("a", 65) + "@example.com",
		"a@" + strings.Repeat("b", 64) + ".com", "a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "com",
		"ann\u00a0lee@example.com",
	}
	for _, s := range valid {
		if !recipients.ValidEmail(s) {
			t.Errorf("ValidEmail(%q) = false, want true", s)
		}
	}
	for _, s := range invalid {
		if recipients.ValidEmail(s) {
			t.Errorf("ValidEmail(%q) = true, want false", s)
		}
	}
}

func TestHeadersBecomeSnakeCaseAttributeNames(t *testing.T) {
	tests := map[string]string{
		"plan": "plan", "Plan": "plan", " First Name ": "first_name", "firstName": "first_name", "CustomerID": "customer_id",
		"HTTPServer": "http_server", "plan-tier": "plan_tier", "Plan (2024)": "plan_2024", "E-mail": "e_mail",
		"account__id": "account_id", "\ufeffemail": "email", "Prénom": "prénom",
	}
	for in, want := range tests {
		if got := recipients.NormalizeHeader(in); got != want {
			t.Errorf("NormalizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
	for name, want := range map[string]bool{"plan": true, "plan_2": true, "p": true, "2fa": false, "prénom": false,
		"_x": false, "": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false} {
		if got := recipients.ValidAttrName(name); got != want {
			t.Errorf("ValidAttrName(%q) = %v", name, got)
		}
	}
}

func openStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSkippedRowsAreNotImportedAndAttributesReachTheStore(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	path := write(t, "email,name,locale,plan,Signup Date\n"+
		"ann@example.com,Ann,en-GB,pro,2024-01-02\n"+
		"bob@@example.com,Bob,en,free,\n"+
		"cara@example.com,Cara,,,\n"+
		"ANN@example.com,Ann twice,en,free,\n")

	if _, err := recipients.Open(path, false); err == nil {
		t.Fatal("a file with bad rows was opened without --skip-invalid")
	}
	if n, _ := db.RecipientCount(ctx, breachcast.AudienceAll); n != 0 {
		t.Fatalf("%d recipients stored from a refused file", n)
	}

	rd, err := recipients.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	res, err := db.ImportRecipients(ctx, "eu-customers", "test", rd.Next)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 2 || rd.Count() != 2 {
		t.Fatalf("inserted %d, read %d; want exactly the 2 valid rows", res.Inserted, rd.Count())
	}
	if n, _ := db.RecipientCount(ctx, "eu-customers"); n != 2 {
		t.Errorf("segment has %d", n)
	}
	ann, err := db.RecipientByEmail(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if ann.Name != "Ann" || ann.Locale != "en-GB" || !reflect.DeepEqual(ann.Attrs, map[string]string{"plan": "pro", "signup_date": "2024-01-02"}) {
		t.Errorf("stored %+v: the first copy of the address, with its attributes", *ann)
	}
	for _, missing := range []string{"bob@@example.com"} {
		if _, err := db.RecipientByEmail(ctx, missing); breachcast.ErrorCodeOf(err) != breachcast.ENOTFOUND {
			t.Errorf("%s: %v", missing, err)
		}
	}
}

// FuzzCheckAndRead feeds arbitrary files through both passes: neither may
// panic, and the second pass returns exactly the rows the first found
// valid.
func FuzzCheckAndRead(f *testing.F) {
	for _, seed := range []string{
		"email,name\nann@example.com,Ann\n",
		"\ufeffemail;locale\r\nann@example.com;en_GB\r\n\"bob\"@x.com;x\r\n",
		"email,note\nann@example.com,\"two\nlines\"\n\n,\nbob@@example.com,\"x\"y\n",
		"email\n\"ann@example.com\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.csv")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := recipients.Check(p)
		if err != nil {
			return
		}
		if rep.Valid > rep.Rows || rep.Valid < 0 {
			t.Fatalf("rows %d valid %d", rep.Rows, rep.Valid)
		}
		for _, pr := range rep.Problems {
			if pr.Row < 2 {
				t.Fatalf("problem on row %d: %s", pr.Row, pr)
			}
		}
		rd, err := rep.Open(true)
		if err != nil {
			if rep.Valid == 0 {
				return
			}
			t.Fatal(err)
		}
		defer rd.Close()
		n := 0
		for {
			r, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				break
			}
			if !recipients.ValidEmail(r.Email) {
				t.Fatalf("read an invalid address %q", r.Email)
			}
			n++
		}
		if n != rep.Valid {
			t.Fatalf("read %d, checked %d valid", n, rep.Valid)
		}
	})
}
