package channels_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
)

func TestRetryAfterReadsEveryProvidersSpelling(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	epoch := func(d time.Duration) string { return fmt.Sprint(now.Add(d).Unix()) }
	for _, tc := range []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"nothing", http.Header{}, 0},
		{"Retry-After seconds", http.Header{"Retry-After": {"120"}}, 120 * time.Second},
		{"Retry-After date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"SendGrid reset", http.Header{"X-Ratelimit-Reset": {epoch(time.Hour)}}, time.Hour},
		{"X reset (lower case on the wire)", http.Header{http.CanonicalHeaderKey("x-rate-limit-reset"): {epoch(15 * time.Minute)}}, 15 * time.Minute},
		{"reset in the past", http.Header{"X-Ratelimit-Reset": {epoch(-time.Minute)}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}, "X-Ratelimit-Reset": {"never"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := channels.RetryAfter(tc.header, now); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStatusPermanentRetriesTimeoutsConflictsAndRateLimitsOnly(t *testing.T) {
	for status, want := range map[int]bool{200: false, 400: true, 401: true, 403: true, 404: true, 408: false, 409: false,
		413: true, 429: false, 500: false, 503: false} {
		if got := channels.StatusPermanent(status); got != want {
			t.Errorf("%d: permanent=%v, want %v", status, got, want)
		}
	}
}

func TestClassifyRetriesWhatIsNotAProviderError(t *testing.T) {
	perm, after := channels.Classify(fmt.Errorf("send: %w", &channels.Error{Permanent: true}))
	if !perm || after != 0 {
		t.Fatal("wrapped permanent error not recognised")
	}
	perm, after = channels.Classify(&channels.Error{Status: 429, RetryAfter: time.Minute})
	if perm || after != time.Minute {
		t.Fatal("rate limit not recognised")
	}
	if perm, _ := channels.Classify(errors.New("connection reset by peer")); perm {
		t.Fatal("a network error was treated as permanent")
	}
}

func TestErrorSaysChannelOperationStatusAndWait(t *testing.T) {
	err := &channels.Error{Channel: "twitter", Op: "POST /2/tweets", Status: 429, Message: "Too Many Requests", RetryAfter: 90 * time.Second}
	if got, want := err.Error(), "twitter: POST /2/tweets: HTTP 429: Too Many Requests (retry after 1m30s)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
