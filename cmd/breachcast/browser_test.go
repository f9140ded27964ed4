package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/breachcast/breachcast/internal/testenv"
)

// TestAnOpenStatusPageShowsAnUpdatePublishedByAnotherProcess is the whole
// path a customer sees: `breachcast serve` holds the page open in a real
// browser, the comms lead runs `breachcast publish` separately (another
// store handle, as another process would), and the update appears in the
// page without a reload within a second or so.
func TestAnOpenStatusPageShowsAnUpdatePublishedByAnotherProcess(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t)
	r.must("publish", r.write("1.md", noticeText("db-leak", "investigating", "status", breachBody)))
	eventually(t, "the first notice on the page", 10*time.Second, func() bool {
		code, body := get(t, srv.url+"/")
		return code == 200 && strings.Contains(body, "We cut off the access within the hour")
	})

	ctx := testenv.Browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/")); err != nil {
		t.Fatal(err)
	}
	poll := func(what, expr string, within time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	poll("the live connection", `document.body.getAttribute('data-live-state') === 'open'`, 10*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}

	notice := r.write("2.md", noticeText("db-leak", "identified", "status", "The leaked support credential is revoked."))
	start := time.Now()
	published := make(chan string, 1)
	go func() { _, errb, _ := r.cli("publish", notice); published <- errb }()
	poll("the update in the open page", `document.body.textContent.includes('The leaked support credential is revoked.')`, 10*time.Second)
	t.Logf("update visible %v after publish started", time.Since(start).Round(time.Millisecond))
	if errb := <-published; errb != "" {
		t.Fatalf("publish: %s", errb)
	}
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded === true`))
	if err != nil || !ok {
		t.Fatalf("the page reloaded (%v)", err)
	}
}
