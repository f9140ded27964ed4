package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTheDemoRehearsesABreachEndToEnd runs `breachcast demo` as a user would
// and follows what it prints: the status page shows the incident, the
// emulated SendGrid inbox holds the emails, replies arrive from X and
// Facebook, the follow-up update goes out, and provider failures can be
// drilled.
func TestTheDemoRehearsesABreachEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--addr", "127.0.0.1:0", "--dir", dir, "--recipients", "40", "--follow-up", "3s"},
			strings.NewReader(""), &out, &errb, func(string) string { return "" })
	}()
	field := func(label string) string {
		m := regexp.MustCompile(label + `\s+(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
		if m == nil {
			return ""
		}
		return m[1]
	}
	eventually(t, "the demo to print where to look", 30*time.Second, func() bool { return field("Status page") != "" })
	status, inbox := field("Status page"), field("Emails sent")
	eventually(t, "the notice on the status page", 30*time.Second, func() bool {
		code, body := get(t, status+"/incidents/acme-2026-11-customer-data")
		return code == 200 && strings.Contains(body, "Unauthorized access to customer account data")
	})
	eventually(t, "the emails in the emulated inbox", 30*time.Second, func() bool {
		_, body := get(t, inbox+"/")
		return strings.Contains(body, "example.com")
	})
	eventually(t, "replies from X and Facebook and the follow-up", 60*time.Second, func() bool {
		s := out.String()
		return strings.Contains(s, "reply on twitter") && strings.Contains(s, "reply on facebook") &&
			strings.Contains(s, "Published update 2 (identified)")
	})
	eventually(t, "the follow-up on the page", 30*time.Second, func() bool {
		_, body := get(t, status+"/")
		return strings.Contains(body, "Identified")
	})
	drill := regexp.MustCompile(`curl -X POST '(http://127\.0\.0\.1:\d+)/clear'`).FindStringSubmatch(out.String())
	if drill == nil {
		t.Fatalf("no drill address printed:\n%s", out.String())
	}
	resp, err := http.Post(drill[1]+"/sendgrid?fail=2&status=503", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("drill: HTTP %d", resp.StatusCode)
	}
	if resp, err := http.Post(drill[1]+"/sendgrid?fail=lots", "", nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("a bad drill was not refused: %v %v", resp, err)
	}

	// Another terminal works against the running rehearsal.
	getenv := func(k string) string {
		if k == "BREACHCAST_CONFIG" {
			return dir + "/breachcast.yaml"
		}
		return ""
	}
	var st, sterr syncBuffer
	if code := run(context.Background(), []string{"status", "acme-2026-11-customer-data"}, strings.NewReader(""), &st, &sterr, getenv); code != 0 {
		t.Fatalf("status against the demo: %d %s", code, sterr.String())
	}
	if !strings.Contains(st.String(), "twitter post 1/") || !strings.Contains(st.String(), "facebook post 1/1") {
		t.Fatalf("status against the demo:\n%s", st.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exited %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop on Ctrl-C")
	}
}
