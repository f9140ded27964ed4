package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMain lets the test binary act as wsload's server and client children,
// which the orchestrator starts by re-executing itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "-serve" || os.Args[1] == "-client") {
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString("wsload child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMessageID(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{`{"type":"update","id":1234,"prev":1233}`, 1234},
		{`{"type":"incident","id":7`, 7}, // cut short: only the head is read
		{`{"type":"update"}`, 0},
		{`garbage`, 0},
	}
	for _, tt := range tests {
		if got := messageID([]byte(tt.in)); got != tt.want {
			t.Errorf("messageID(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestASmallLoadRunReportsMemoryAndLatency(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-n", "60", "-per-client", "25", "-sources", "3", "-rounds", "2", "-settle", "10ms", "-timeout", "10s"}, &out, os.Stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	o := out.String()
	for _, re := range []string{
		`60 viewers connected in \S+ \(0 failed\) from 3 client processes`,
		`memory per idle viewer: -?[0-9.]+ KiB RSS`,
		`round 1 \(update \d+, .*\): 60 delivered, 0 missing: p50 \S+ p90 \S+ p99 \S+ max \S+`,
		`round 2 .*: 60 delivered, 0 missing`,
		`summary: 60 viewers, .* 60 viewers still connected`,
	} {
		if !regexp.MustCompile(re).MatchString(o) {
			t.Errorf("output lacks %s:\n%s", re, o)
		}
	}
}

func TestExportWritesTheDemoPage(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"-export", dir}, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Customer email addresses and hashed passwords exposed") {
		t.Fatal("the exported page lacks the demo incident")
	}
}

func TestBadFlags(t *testing.T) {
	if err := run([]string{"-per-client", "25000"}, os.Stdout, os.Stderr); err == nil || !strings.Contains(err.Error(), "per-client") {
		t.Fatalf("err = %v", err)
	}
}
