package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/store"
)

// BenchmarkImportAndPublishMillion measures the store's share of a
// million-recipient breach: importing the list, writing the ledger in the
// publish transaction, and claiming and completing every batch.
func BenchmarkImportAndPublishMillion(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		ctx := context.Background()
		db, err := store.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		i := 0
		if _, err := db.ImportRecipients(ctx, "", "bench", func() (*breachcast.Recipient, error) {
			if i == n {
				return nil, nil
			}
			i++
			return &breachcast.Recipient{Email: fmt.Sprintf("customer%07d@example.com", i), Name: "Customer",
				Attrs: map[string]string{"plan": "pro"}}, nil
		}); err != nil {
			b.Fatal(err)
		}
		imported := time.Since(start)
		start = time.Now()
		nt := &breachcast.Notice{Incident: "x", Title: "t", Status: breachcast.Investigating, Severity: "major",
			Audience: "all", Channels: []string{"email"}, Body: "b"}
		if _, err := db.Publish(ctx, &store.Publication{Notice: nt, Email: []byte("{}"), MessageIDDomain: "example.com"}); err != nil {
			b.Fatal(err)
		}
		published := time.Since(start)
		start = time.Now()
		batches := 0
		for {
			bt, err := db.ClaimBatch(ctx, "email", "w", 1000, time.Minute)
			if errors.Is(err, store.ErrNoWork) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			if err := db.MarkBatchSent(ctx, bt, "w", "id"); err != nil {
				b.Fatal(err)
			}
			batches++
		}
		drained := time.Since(start)
		b.ReportMetric(imported.Seconds(), "import-s")
		b.ReportMetric(published.Seconds(), "publish-s")
		b.ReportMetric(drained.Seconds(), "claim+mark-s")
		b.ReportMetric(float64(batches), "batches")
		db.Close()
	}
}
