package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/breachcast/breachcast/emulators/sgemu"
)

// BenchmarkFanOutMillion publishes one update to 1,000,000 recipients with
// the real binary against the SendGrid emulator answering every request after
// 100 ms, and reports recipients accepted per second, the publisher's peak
// RSS and the number of requests. Targets: all accepted within 60 s, peak RSS
// at most 500 MB. Run it with
//
//	go test -run XXX -bench FanOutMillion -benchtime 1x ./cmd/breachcast
func BenchmarkFanOutMillion(b *testing.B) {
	const n = 1_000_000
	bin := binary(b)
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		sg := sgemu.New(sgemu.Options{KeepMessages: -1})
		url, err := sg.Start()
		if err != nil {
			b.Fatal(err)
		}
		sg.SetLatency(100 * time.Millisecond)
		env := []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
			"BREACHCAST_DB=" + filepath.Join(dir, "bc.db"),
			"BREACHCAST_COMPANY=Acme", "BREACHCAST_PUBLIC_URL=https://status.acme.example",
			"BREACHCAST_SENDGRID_API_KEY=SG.bench", "BREACHCAST_SENDGRID_BASE_URL=" + url,
			"BREACHCAST_SENDGRID_FROM_EMAIL=security@acme.example", "BREACHCAST_SENDGRID_CONCURRENCY=16",
			"BREACHCAST_LOG_LEVEL=warn",
		}
		csv := filepath.Join(dir, "customers.csv")
		f, err := os.Create(csv)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		fmt.Fprintln(w, "email,name,locale,plan")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "customer%07d@example.com,Customer %d,en,pro\n", i, i)
		}
		w.Flush()
		f.Close()
		imp := exec.Command(bin, "recipients", "import", csv)
		imp.Env = env
		start := time.Now()
		if out, err := imp.CombinedOutput(); err != nil {
			b.Fatalf("import: %v\n%s", err, out)
		}
		importSecs := time.Since(start).Seconds()
		notice := filepath.Join(dir, "n.md")
		os.WriteFile(notice, []byte(noticeText("db-leak", "investigating", "email", breachBody)), 0o600)

		b.StartTimer()
		pub := exec.Command(bin, "publish", notice)
		pub.Env = env
		start = time.Now()
		out, err := pub.CombinedOutput()
		secs := time.Since(start).Seconds()
		b.StopTimer()
		if err != nil {
			b.Fatalf("publish: %v\n%s", err, out)
		}
		if sg.Total() != n {
			b.Fatalf("emulator accepted %d of %d", sg.Total(), n)
		}
		rss := pub.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
		b.ReportMetric(float64(n)/secs, "recipients/s")
		b.ReportMetric(secs, "fanout-s")
		b.ReportMetric(float64(rss)/1024, "peak-RSS-MB")
		b.ReportMetric(float64(sg.Requests()), "requests")
		b.ReportMetric(importSecs, "import-1M-s")
		sg.Close()
	}
}
