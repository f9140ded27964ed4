// Package testenv provides what tests need from the machine: a Chromium for
// chromedp browser tests, installed from Debian on demand when the tests run
// as root, and the launch flags every browser test uses.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// aptLock serialises apt-get between test processes (go test runs packages
// in parallel) and engineers sharing the machine.
const aptLock = "/tmp/breachcast-apt.lock"

var (
	installMu  sync.Mutex
	installErr error
	installed  bool
)

// findChromium returns the first Chromium found, or "".
func findChromium() string {
	if p := os.Getenv("BREACHCAST_CHROMIUM"); p != "" {
		return p
	}
	if isExecutable(ChromiumPath) {
		return ChromiumPath
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Chromium returns the path of a Chromium binary. When none is installed and
// the test runs as root, it installs Debian's chromium package with apt-get
// (under a file lock, once per process); otherwise it fails the test with a
// message saying what to install.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := findChromium(); p != "" {
		return p
	}
	installMu.Lock()
	defer installMu.Unlock()
	if !installed && installErr == nil {
		installErr = installChromium(t)
		installed = installErr == nil
	}
	if installErr != nil {
		t.Fatalf("chromium is needed for browser tests and could not be installed: %v "+
			"(as root: apt-get install chromium; or set BREACHCAST_CHROMIUM to a Chromium binary)", installErr)
	}
	p := findChromium()
	if p == "" {
		t.Fatalf("apt-get installed chromium but no binary is at %s", ChromiumPath)
	}
	return p
}

type installError string

func (e installError) Error() string { return string(e) }

func installChromium(t testing.TB) error {
	if os.Geteuid() != 0 {
		return installError("not running as root, so apt-get cannot be used")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return installError("apt-get is not available on this machine")
	}
	f, err := os.OpenFile(aptLock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if findChromium() != "" { // another process installed it while we waited
		return nil
	}
	t.Logf("installing Debian's chromium package for browser tests (once)")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"apt-get", "update", "-qq"},
		{"apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"},
	} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			tail := out
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return installError(filepath.Base(args[0]) + " " + args[1] + " failed: " + err.Error() + ": " + string(tail))
		}
	}
	return nil
}

// AllocatorOptions are the launch options of every browser test: headless,
// no sandbox (containers), no GPU, no QUIC, no first-run or background
// traffic, and a fresh profile in a temporary directory.
func AllocatorOptions(t testing.TB, chromium string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
}

// Browser starts a headless Chromium for the test and returns a context of
// its first tab. The browser is closed when the test ends.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := Chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), AllocatorOptions(t, path)...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser and its first tab
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}
