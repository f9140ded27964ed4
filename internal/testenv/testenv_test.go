package testenv

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestChromiumIsAvailableAndStarts(t *testing.T) {
	p := Chromium(t)
	out, err := exec.Command(p, "--version").Output()
	if err != nil || !strings.Contains(strings.ToLower(string(out)), "chrom") {
		t.Fatalf("%s --version: %q %v", p, out, err)
	}
	ctx := Browser(t)
	ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ua, "HeadlessChrome") {
		t.Fatalf("user agent %q: not headless", ua)
	}
}

func TestAllocatorOptionsUseAFreshProfile(t *testing.T) {
	a := AllocatorOptions(t, "/bin/true")
	b := AllocatorOptions(t, "/bin/true")
	if len(a) != len(b) || len(a) < 10 {
		t.Fatalf("%d and %d options", len(a), len(b))
	}
}
