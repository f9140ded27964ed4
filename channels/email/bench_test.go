package email_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/channels/email"
	"github.com/breachcast/breachcast/emulators/sgemu"
)

// BenchmarkSendBatch1000 measures one full batch through the client and the
// emulator over loopback.
func BenchmarkSendBatch1000(b *testing.B) {
	emu := sgemu.New(sgemu.Options{Keys: map[string][]string{testKey: nil}})
	ts := httptest.NewServer(emu)
	defer ts.Close()
	c, err := email.New(email.Config{APIKey: testKey, BaseURL: ts.URL})
	if err != nil {
		b.Fatal(err)
	}
	bt := batch(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		emu.Reset() // the same addresses again
		if _, err := c.SendBatch(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendAMillionAt100msLatency sends 1,000,000 recipients in 1000
// batches from 100 concurrent senders to an emulator that takes 100 ms per
// request, as the fan-out benchmark does, and reports the wall time and the
// peak heap.
func BenchmarkSendAMillionAt100msLatency(b *testing.B) {
	const batches, size, senders = 1000, 1000, 100
	for range b.N {
		emu := sgemu.New(sgemu.Options{Keys: map[string][]string{testKey: nil}})
		emu.SetLatency(100 * time.Millisecond)
		ts := httptest.NewServer(emu)
		c, err := email.New(email.Config{APIKey: testKey, BaseURL: ts.URL})
		if err != nil {
			b.Fatal(err)
		}
		var (
			next     atomic.Int64
			peakHeap atomic.Uint64
			wg       sync.WaitGroup
			stop     = make(chan struct{})
		)
		go func() { // sample the heap while sending
			var ms runtime.MemStats
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > peakHeap.Load() {
						peakHeap.Store(ms.HeapAlloc)
					}
				}
			}
		}()
		began := time.Now()
		for range senders {
			wg.Go(func() {
				for {
					n := int(next.Add(1)) - 1
					if n >= batches {
						return
					}
					bt := batch(size)
					for j := range bt.Recipients {
						bt.Recipients[j].Email = fmt.Sprintf("b%d-r%d@example.com", n, j)
					}
					if _, err := c.SendBatch(context.Background(), bt); err != nil {
						var e *channels.Error
						b.Error(err, e)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(began)
		close(stop)
		ts.Close()
		if emu.Total() != batches*size {
			b.Fatalf("delivered %d, want %d", emu.Total(), batches*size)
		}
		b.ReportMetric(elapsed.Seconds(), "s-wall")
		b.ReportMetric(float64(peakHeap.Load())/(1<<20), "MiB-peak-heap")
		b.ReportMetric(float64(batches*size)/elapsed.Seconds(), "recipients/s")
	}
}
