package recipients_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/breachcast/breachcast/recipients"
)

// writeMillion writes n realistic rows: address, name, locale and two
// attributes.
func writeMillion(b *testing.B, n int) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "customers.csv")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "email,name,locale,plan,Signup Date")
	locales := []string{"en", "en-GB", "de", "fr-CA", "pt_BR", ""}
	plans := []string{"free", "pro", "team", "enterprise"}
	for i := range n {
		fmt.Fprintf(w, "customer.%07d@example%d.com,\"Customer %d, Jr\",%s,%s,2024-%02d-%02d\n",
			i, i%97, i, locales[i%len(locales)], plans[i%len(plans)], i%12+1, i%28+1)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkCheckAndImportMillion measures a million-row file end to end:
// the check pass, then the second pass streamed into SQLite through
// store.ImportRecipients. The target is under 30 s on two cores.
func BenchmarkCheckAndImportMillion(b *testing.B) {
	const n = 1_000_000
	path := writeMillion(b, n)
	for range b.N {
		db := openStore(b)
		start := time.Now()
		rep, err := recipients.Check(path)
		if err != nil {
			b.Fatal(err)
		}
		checked := time.Since(start)
		if !rep.OK() || rep.Rows != n {
			b.Fatalf("rows %d valid %d: %v", rep.Rows, rep.Valid, rep.Problems)
		}
		rd, err := rep.Open(false)
		if err != nil {
			b.Fatal(err)
		}
		res, err := db.ImportRecipients(context.Background(), "", "bench", rd.Next)
		if err != nil {
			b.Fatal(err)
		}
		rd.Close()
		total := time.Since(start)
		if res.Inserted != n {
			b.Fatalf("inserted %d", res.Inserted)
		}
		b.ReportMetric(checked.Seconds(), "check-s")
		b.ReportMetric((total - checked).Seconds(), "import-s")
		b.ReportMetric(total.Seconds(), "total-s")
		b.ReportMetric(n/total.Seconds(), "rows/s")
	}
}

// BenchmarkCheck measures the check pass alone, per row.
func BenchmarkCheck(b *testing.B) {
	const n = 200_000
	path := writeMillion(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := recipients.Check(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}

// BenchmarkRead measures the second pass alone (building recipients), per
// row.
func BenchmarkRead(b *testing.B) {
	const n = 200_000
	rep, err := recipients.Check(writeMillion(b, n))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rd, err := rep.Open(false)
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, err := rd.Next()
			if err != nil {
				b.Fatal(err)
			}
			if r == nil {
				break
			}
		}
		rd.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}
