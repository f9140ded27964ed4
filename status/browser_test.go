package status

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/internal/testenv"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// cspProbe records Content-Security-Policy violations in the page. DevTools
// injects it, so the CSP does not apply to the probe itself.
const cspProbe = `window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});`

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func pollJS(t *testing.T, ctx context.Context, what, expr string, within time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func TestInABrowser(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	ctx := testenv.Browser(t)

	var mu sync.Mutex
	var console []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, string(m.Type)+": "+m.Text)
			mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/")); err != nil {
		t.Fatal(err)
	}
	pollJS(t, ctx, "the websocket to open", `document.body.getAttribute('data-live-state') === 'open'`, 5*time.Second)
	evalJS[bool](t, ctx, `window.__notReloaded = true`)

	t.Run("a published update appears without reload", func(t *testing.T) {
		e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Monitoring, breachcast.SeverityCritical, "A fix is deployed.", t0.Add(2*time.Hour))
		start := time.Now()
		e.refresh()
		pollJS(t, ctx, "the update in the card",
			`document.getElementById('incident-breach-2026').textContent.includes('A fix is deployed.')`, 3*time.Second)
		if d := time.Since(start); d > time.Second {
			t.Errorf("the update took %v to appear", d)
		}
		if !evalJS[bool](t, ctx, `window.__notReloaded === true`) {
			t.Fatal("the page reloaded")
		}
		if got := evalJS[string](t, ctx, `document.getElementById('live-status').textContent`); !strings.Contains(got, "Updated just now") {
			t.Errorf("aria-live region says %q", got)
		}
		if got := evalJS[string](t, ctx, `document.getElementById('incident-breach-2026').querySelector('.badge').textContent`); got != "Monitoring" {
			t.Errorf("badge = %q", got)
		}

		e.src.publish("phishing", "Phishing emails in our name", breachcast.Investigating, breachcast.SeverityMinor, "Do not click.", t0.Add(3*time.Hour))
		e.refresh()
		pollJS(t, ctx, "a new incident's card", `!!document.querySelector('#open-incidents > #incident-phishing')`, 3*time.Second)
		if first := evalJS[string](t, ctx, `document.querySelector('#open-incidents > article').id`); first != "incident-phishing" {
			t.Errorf("the new incident is not first: %s", first)
		}
	})

	t.Run("reconnects after the server drops the socket and catches up", func(t *testing.T) {
		e.srv.hub.refuse.Store(true)
		e.srv.hub.closeAll()
		pollJS(t, ctx, "the page to notice the drop", `document.body.getAttribute('data-live-state') === 'closed'`, 5*time.Second)
		// Published while the page is disconnected: only catch-up can bring it.
		e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Resolved, breachcast.SeverityCritical, "All clear.", t0.Add(4*time.Hour))
		e.refresh()
		e.srv.hub.refuse.Store(false)
		pollJS(t, ctx, "the missed update", `document.getElementById('incident-breach-2026').textContent.includes('All clear.')`, 15*time.Second)
		pollJS(t, ctx, "the websocket to reopen", `document.body.getAttribute('data-live-state') === 'open'`, 5*time.Second)
		if !evalJS[bool](t, ctx, `window.__notReloaded === true`) {
			t.Fatal("the page reloaded")
		}
		if n := evalJS[int](t, ctx, `document.querySelectorAll('#incident-breach-2026 .timeline > li').length`); n != 5 {
			t.Errorf("timeline has %d entries, want 5", n)
		}
	})

	t.Run("a card that missed an update fetches itself whole", func(t *testing.T) {
		// As if an update had been lost: the card claims an older newest id.
		evalJS[bool](t, ctx, `document.getElementById('incident-breach-2026').setAttribute('data-id', '3') || true`)
		evalJS[bool](t, ctx, `document.querySelector('#incident-breach-2026 .timeline > li').remove() || true`)
		e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Resolved, breachcast.SeverityCritical, "Post-mortem published.", t0.Add(5*time.Hour))
		e.refresh()
		pollJS(t, ctx, "the refetched card", `document.getElementById('incident-breach-2026').textContent.includes('Post-mortem published.')`, 3*time.Second)
		if n := evalJS[int](t, ctx, `document.querySelectorAll('#incident-breach-2026 .timeline > li').length`); n != 6 {
			t.Errorf("after refetching, the timeline has %d entries, want 6", n)
		}
	})

	t.Run("without JavaScript the whole timeline is there", func(t *testing.T) {
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		if _, err := chromedp.Call(tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tab, chromedp.Navigate(e.url+"/incidents/breach-2026/")); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"We are investigating unauthorised access.", "We found the cause.", "Email addresses were exposed.", "A fix is deployed.", "All clear.", "Status changed from Monitoring to Resolved"} {
			if !strings.Contains(text, want) {
				t.Errorf("without JavaScript the page lacks %q", want)
			}
		}
		if state, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.getAttribute('data-live-state') || ''`)); state != "" {
			t.Errorf("scripts ran although disabled (live state %q)", state)
		}
	})

	t.Run("the Content-Security-Policy holds", func(t *testing.T) {
		for _, p := range []string{"/history/", "/incidents/phishing/", "/nope"} {
			if err := chromedp.Do(ctx, chromedp.Navigate(e.url+p)); err != nil {
				t.Fatal(err)
			}
			if v := evalJS[[]string](t, ctx, `window.__csp`); len(v) != 0 {
				t.Errorf("%s: CSP violations %v", p, v)
			}
		}
		mu.Lock()
		for _, m := range console {
			if strings.Contains(m, "Content Security Policy") {
				t.Errorf("console: %s", m)
			}
		}
		mu.Unlock()
		// The probe works: an inline script is refused and reported.
		evalJS[bool](t, ctx, `(function(){var s=document.createElement('script');s.textContent='window.__inline=1';document.body.appendChild(s);return true})()`)
		pollJS(t, ctx, "the probe to see an inline script refused", `window.__csp.length > 0`, 3*time.Second)
		if evalJS[bool](t, ctx, `window.__inline === 1`) {
			t.Fatal("an inline script ran despite the CSP")
		}
		// And the console listener would have seen a violation above.
		waitFor(t, "the console to report the refused script", 3*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range console {
				if strings.Contains(m, "Content Security Policy") {
					return true
				}
			}
			return false
		})
	})
}
