package inbox_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/inbox"
	"github.com/breachcast/breachcast/internal/testclock"
	"github.com/breachcast/breachcast/store"
)

// clock is the tests' settable clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }

func openDB(t *testing.T, c *clock) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "breachcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Now = c.Now
	return db
}

// logBuffer collects log lines from concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// publishOn publishes an update of slug on channel through the store and
// makes its posts with pub, continuing the incident's thread, as the
// fan-out engine does. texts are the posts of the update.
func publishOn(t *testing.T, db *store.DB, pub channels.Publisher, slug string, status breachcast.Status, texts ...string) *breachcast.Update {
	t.Helper()
	ctx := context.Background()
	ch := pub.Name()
	n := &breachcast.Notice{Incident: slug, Title: "Unauthorized access", Status: status, Severity: breachcast.SeverityMajor,
		Audience: breachcast.AudienceAll, Channels: []string{ch}, Body: "We " + string(status) + ".", Source: slug + ".md"}
	res, err := db.Publish(ctx, &store.Publication{Notice: n, SourceHash: n.Body, Actor: "test", Posts: map[string][]string{ch: texts}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := db.ClaimJob(ctx, ch, "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if j.UpdateID != res.Update.ID {
		t.Fatalf("claimed the job of update %d, want %d", j.UpdateID, res.Update.ID)
	}
	parent, root := j.Parent, j.Root
	for _, p := range j.Posts {
		rc, err := pub.Publish(ctx, &channels.Post{Key: fmt.Sprintf("u%d-%s-%d", j.UpdateID, ch, p.Seq), Text: p.Text, Parent: parent, Root: root})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RecordPost(ctx, p.ID, rc.ExternalID, rc.URL, parent); err != nil {
			t.Fatal(err)
		}
		parent = rc.ExternalID
		if root == "" {
			root = rc.ExternalID
		}
	}
	if err := db.FinishJob(ctx, j, "w", ""); err != nil {
		t.Fatal(err)
	}
	return res.Update
}

// postIDs returns the provider ids of an update's posts on channel.
func postIDs(t *testing.T, db *store.DB, u *breachcast.Update, channel string) []string {
	t.Helper()
	posts, err := db.Posts(context.Background(), u.ID, channel)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range posts {
		out = append(out, p.ExternalID)
	}
	return out
}

// run is a RunPoller in the background whose sleeps the test steps
// through: each Sleep reports its duration and waits for next or the end.
type run struct {
	t       *testing.T
	cancel  context.CancelFunc
	waits   chan time.Duration
	proceed chan struct{}
	done    chan error
}

func startPoller(t *testing.T, cfg inbox.PollerConfig) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{t: t, cancel: cancel, waits: make(chan time.Duration), proceed: make(chan struct{}), done: make(chan error, 1)}
	cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		select {
		case r.waits <- d:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-r.proceed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() { r.done <- inbox.RunPoller(ctx, cfg) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// round waits for the poller to finish a round and returns the wait it
// asked for.
func (r *run) round() time.Duration {
	r.t.Helper()
	select {
	case d := <-r.waits:
		return d
	case err := <-r.done:
		r.t.Fatalf("RunPoller returned %v", err)
	case <-time.After(20 * time.Second):
		r.t.Fatal("the poller did not finish a round within 20s")
	}
	return 0
}

// next lets the sleeping poller go on to its next round.
func (r *run) next() {
	r.t.Helper()
	select {
	case r.proceed <- struct{}{}:
	case <-time.After(20 * time.Second):
		r.t.Fatal("the poller is not sleeping")
	}
}

// stop cancels the poller and checks that it returned the context's error.
func (r *run) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != context.Canceled {
			r.t.Errorf("RunPoller returned %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		r.t.Error("RunPoller did not return after its context ended")
	}
}

// countingSink counts what reaches the inbox and can fail on demand.
type countingSink struct {
	inner channels.Sink
	mu    sync.Mutex
	seen  []string
	fail  func(r *breachcast.Reply) error
}

func (s *countingSink) Ingest(ctx context.Context, r *breachcast.Reply) error {
	s.mu.Lock()
	fail := s.fail
	s.seen = append(s.seen, r.ExternalID)
	s.mu.Unlock()
	if fail != nil {
		if err := fail(r); err != nil {
			return err
		}
	}
	return s.inner.Ingest(ctx, r)
}

func (s *countingSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}
