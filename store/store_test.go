package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/internal/testclock"
	"github.com/breachcast/breachcast/store"
)

// clock is the tests' settable clock.
type clock = testclock.Clock

func open(t *testing.T) (*store.DB, *clock) {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "breachcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := testclock.New(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	db.Now = c.Now
	return db, c
}

func importN(t *testing.T, db *store.DB, segment string, from, n int) {
	t.Helper()
	i := from
	_, err := db.ImportRecipients(context.Background(), segment, "test", func() (*breachcast.Recipient, error) {
		if i >= from+n {
			return nil, nil
		}
		i++
		return &breachcast.Recipient{Email: fmt.Sprintf("user%d@example.com", i), Name: fmt.Sprintf("User %d", i),
			Attrs: map[string]string{"plan": "pro"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func notice(slug string, status breachcast.Status, channels ...string) *breachcast.Notice {
	return &breachcast.Notice{Incident: slug, Title: "Unauthorized access", Status: status, Severity: breachcast.SeverityMajor,
		Audience: breachcast.AudienceAll, Channels: channels, Body: "We found " + string(status) + ".", Source: slug + ".md"}
}

func publish(t *testing.T, db *store.DB, n *breachcast.Notice) *store.PublishResult {
	t.Helper()
	p := &store.Publication{Notice: n, SourceHash: n.Body, Actor: "test", Email: []byte(`{"subject":"s"}`),
		Posts: map[string][]string{"twitter": {"1/2 a", "2/2 b"}, "facebook": {"fb"}}, MessageIDDomain: "example.com"}
	res, err := db.Publish(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestOpenAppliesMigrationsOnceAndKeepsTheFilePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "bc.db")
	for range 2 {
		db, err := store.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL().QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("migrations: %d, %v", n, err)
		}
		db.Close()
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("database file mode %v: readable by others", fi.Mode().Perm())
	}
}

func TestOpenRefusesPostgresUntilItExistsAndHidesThePassword(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://bc:hunter2@db.example.com/bc")
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("got %v", err)
	}
}

func TestPublishWritesTheUpdateJobsAndLedgerTogether(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 25)
	res := publish(t, db, notice("db-leak", breachcast.Investigating, "email", "twitter", "facebook", "status"))
	if res.Update.Seq != 1 || res.Recipients != 25 || len(res.Jobs) != 4 {
		t.Fatalf("result %+v", res)
	}
	if len(res.Update.ReplyToken) < 20 {
		t.Fatalf("reply token %q too short to be unguessable", res.Update.ReplyToken)
	}
	progress, err := db.Progress(context.Background(), res.Update.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{"email": {25, 25}, "twitter": {2, 2}, "facebook": {1, 1}, "status": {1, 1}}
	for _, p := range progress {
		if w := want[p.Channel]; p.Total != w[0] || p.Queued != w[1] || p.JobState != "queued" {
			t.Errorf("%s: %+v, want total/queued %v", p.Channel, p, w)
		}
	}
}

func TestLaterUpdatesThreadEachRecipientToTheirFirstNotice(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 3)
	first := publish(t, db, notice("db-leak", breachcast.Investigating, "email"))
	importN(t, db, "", 3, 1) // a customer found affected later
	second := publish(t, db, notice("db-leak", breachcast.Identified, "email"))
	if second.Update.Seq != 2 {
		t.Fatalf("seq %d", second.Update.Seq)
	}
	b1 := claimAll(t, db, "w1", 10)
	firstIDs := map[string]string{}
	for _, b := range b1 {
		for _, r := range b.Recipients {
			if b.UpdateID == first.Update.ID {
				if r.ThreadRef != "" {
					t.Errorf("first notice to %s has a thread ref %q", r.Email, r.ThreadRef)
				}
				firstIDs[r.Email] = r.MessageID
			}
		}
	}
	for _, b := range b1 {
		if b.UpdateID != second.Update.ID {
			continue
		}
		for _, r := range b.Recipients {
			if r.ThreadRef != firstIDs[r.Email] {
				t.Errorf("%s: thread ref %q, want first notice %q", r.Email, r.ThreadRef, firstIDs[r.Email])
			}
			if r.MessageID == firstIDs[r.Email] || !strings.HasSuffix(r.MessageID, "@example.com>") {
				t.Errorf("%s: message id %q", r.Email, r.MessageID)
			}
		}
	}
}

func claimAll(t *testing.T, db *store.DB, owner string, size int) []*store.Batch {
	t.Helper()
	var out []*store.Batch
	for {
		b, err := db.ClaimBatch(context.Background(), "email", owner, size, time.Minute)
		if errors.Is(err, store.ErrNoWork) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := db.MarkBatchSent(context.Background(), b, owner, "sg-1"); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestPublishRefusesTheSameFileTwiceAndUnknownAudiences(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 1)
	n := notice("db-leak", breachcast.Investigating, "email")
	publish(t, db, n)
	_, err := db.Publish(context.Background(), &store.Publication{Notice: n, SourceHash: n.Body, Email: []byte("{}")})
	if breachcast.ErrorCodeOf(err) != breachcast.ECONFLICT || !strings.Contains(err.Error(), "identical to update 1") {
		t.Fatalf("republish: %v", err)
	}
	n2 := notice("other", breachcast.Investigating, "email")
	n2.Audience = "enterprise"
	_, err = db.Publish(context.Background(), &store.Publication{Notice: n2, Email: []byte("{}")})
	if breachcast.ErrorCodeOf(err) != breachcast.EINVALID || !strings.Contains(err.Error(), `no segment named "enterprise"`) {
		t.Fatalf("unknown segment: %v", err)
	}
	incidents, _ := db.Incidents(context.Background())
	if len(incidents) != 1 {
		t.Fatalf("a refused publish left %d incidents", len(incidents))
	}
}

func TestPublishRefusesEmailToAnEmptyAudience(t *testing.T) {
	db, _ := open(t)
	_, err := db.Publish(context.Background(), &store.Publication{Notice: notice("x", breachcast.Investigating, "email"), Email: []byte("{}")})
	if breachcast.ErrorCodeOf(err) != breachcast.EINVALID || !strings.Contains(err.Error(), "no recipients") {
		t.Fatalf("got %v", err)
	}
}

func TestPublishRefusesAStaleRendering(t *testing.T) {
	db, _ := open(t)
	publish(t, db, notice("x", breachcast.Investigating, "status"))
	n := notice("x", breachcast.Identified, "status")
	_, err := db.Publish(context.Background(), &store.Publication{Notice: n, Seq: 1})
	if breachcast.ErrorCodeOf(err) != breachcast.ECONFLICT {
		t.Fatalf("got %v", err)
	}
}

func TestPublishedUpdatesAndTheAuditLogCannotBeRewritten(t *testing.T) {
	db, _ := open(t)
	publish(t, db, notice("x", breachcast.Investigating, "status"))
	for _, q := range []string{
		`UPDATE updates SET body = 'nothing happened'`,
		`DELETE FROM updates`,
		`UPDATE audit SET actor = 'someone else'`,
		`DELETE FROM audit`,
	} {
		if _, err := db.SQL().Exec(q); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
}

func TestSegmentsLimitTheAudience(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 10)
	importN(t, db, "eu", 5, 3)
	if n, _ := db.RecipientCount(context.Background(), "eu"); n != 3 {
		t.Fatalf("eu has %d", n)
	}
	n := notice("x", breachcast.Investigating, "email")
	n.Audience = "eu"
	res := publish(t, db, n)
	if res.Recipients != 3 {
		t.Fatalf("queued %d, want 3", res.Recipients)
	}
}

func TestImportUpsertsByAddressIgnoringCase(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 5)
	rs := []*breachcast.Recipient{{Email: "USER1@example.com", Name: "Renamed"}, {Email: "new@example.com"}}
	res, err := db.ImportRecipients(context.Background(), "", "t", func() (*breachcast.Recipient, error) {
		if len(rs) == 0 {
			return nil, nil
		}
		r := rs[0]
		rs = rs[1:]
		return r, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 1 || res.Updated != 1 {
		t.Fatalf("%+v", res)
	}
	r, err := db.RecipientByEmail(context.Background(), "user1@EXAMPLE.com")
	if err != nil || r.Name != "Renamed" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestAnImportThatFailsPartWayImportsNothing(t *testing.T) {
	db, _ := open(t)
	i := 0
	_, err := db.ImportRecipients(context.Background(), "s", "t", func() (*breachcast.Recipient, error) {
		i++
		if i == 1000 {
			return nil, errors.New("disk on fire")
		}
		return &breachcast.Recipient{Email: fmt.Sprintf("u%d@example.com", i)}, nil
	})
	if err == nil {
		t.Fatal("no error")
	}
	if n, _ := db.RecipientCount(context.Background(), "all"); n != 0 {
		t.Fatalf("%d recipients left behind", n)
	}
}

func TestBatchesCoverEveryRecipientOnceAndFinishTheJob(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 2500)
	res := publish(t, db, notice("x", breachcast.Investigating, "email"))
	batches := claimAll(t, db, "w", 1000)
	if len(batches) != 3 {
		t.Fatalf("%d batches", len(batches))
	}
	seen := map[string]bool{}
	for _, b := range batches {
		for _, r := range b.Recipients {
			if seen[r.Email] {
				t.Fatalf("%s twice", r.Email)
			}
			seen[r.Email] = true
			if r.Attrs["plan"] != "pro" {
				t.Fatalf("attrs lost: %+v", r.Recipient)
			}
		}
	}
	if len(seen) != 2500 {
		t.Fatalf("%d recipients", len(seen))
	}
	p, _ := db.Progress(context.Background(), res.Update.ID)
	if p[0].JobState != "done" || p[0].Sent != 2500 || p[0].Queued != 0 {
		t.Fatalf("%+v", p[0])
	}
}

func TestTheKillSwitchStopsClaimsInEveryProcess(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 10)
	publish(t, db, notice("x", breachcast.Investigating, "email", "twitter"))
	// A second handle on the same file stands in for another process.
	other, err := store.Open(context.Background(), db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if changed, err := other.SetPause(context.Background(), true, "alice", "wrong audience"); err != nil || !changed {
		t.Fatal(changed, err)
	}
	if _, err := db.ClaimBatch(context.Background(), "email", "w", 5, time.Minute); !errors.Is(err, store.ErrPaused) {
		t.Fatalf("email claim while paused: %v", err)
	}
	if _, err := db.ClaimJob(context.Background(), "twitter", "w", time.Minute); !errors.Is(err, store.ErrPaused) {
		t.Fatalf("twitter claim while paused: %v", err)
	}
	st, _ := db.Pause(context.Background())
	if !st.Paused || st.By != "alice" || st.Reason != "wrong audience" {
		t.Fatalf("%+v", st)
	}
	if _, err := other.SetPause(context.Background(), false, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimBatch(context.Background(), "email", "w", 5, time.Minute); err != nil {
		t.Fatalf("claim after resume: %v", err)
	}
	log, _ := db.Audit(context.Background(), 10)
	if log[0].Action != "resume" || log[1].Action != "pause" {
		t.Fatalf("audit %+v", log[:2])
	}
}

func TestABatchWhoseWorkerVanishedIsResentAsTheSameBatchAndNamed(t *testing.T) {
	db, c := open(t)
	importN(t, db, "", 0, 30)
	res := publish(t, db, notice("x", breachcast.Investigating, "email"))
	lost, err := db.ClaimBatch(context.Background(), "email", "dead-worker", 10, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Before the lease runs out, the batch is nobody else's.
	b, err := db.ClaimBatch(context.Background(), "email", "w2", 10, 30*time.Second)
	if err != nil || b.ID == lost.ID || b.Recovered {
		t.Fatalf("%+v %v", b, err)
	}
	db.MarkBatchSent(context.Background(), b, "w2", "x")
	c.Advance(31 * time.Second)
	again, err := db.ClaimBatch(context.Background(), "email", "w2", 10, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != lost.ID || !again.Recovered || again.Attempts != 2 || len(again.Recipients) != 10 {
		t.Fatalf("got %+v, want batch %d recovered", again, lost.ID)
	}
	// The vanished worker cannot report on a batch it no longer holds.
	if err := db.MarkBatchSent(context.Background(), lost, "dead-worker", "late"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("late report: %v", err)
	}
	if err := db.MarkBatchSent(context.Background(), again, "w2", "x"); err != nil {
		t.Fatal(err)
	}
	named, _ := db.Batches(context.Background(), res.Update.ID, "email", true)
	if len(named) != 1 || named[0].ID != lost.ID || named[0].Recovered != 1 {
		t.Fatalf("ledger names %+v", named)
	}
	p, _ := db.Progress(context.Background(), res.Update.ID)
	if p[0].Recovered != 10 {
		t.Fatalf("progress %+v", p[0])
	}
}

func TestRenewedLeasesAreNotTakenOver(t *testing.T) {
	db, c := open(t)
	importN(t, db, "", 0, 10)
	publish(t, db, notice("x", breachcast.Investigating, "email"))
	b, _ := db.ClaimBatch(context.Background(), "email", "slow", 10, 30*time.Second)
	c.Advance(20 * time.Second)
	if err := db.RenewLeases(context.Background(), "slow", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(20 * time.Second)
	if _, err := db.ClaimBatch(context.Background(), "email", "other", 10, 30*time.Second); !errors.Is(err, store.ErrNoWork) {
		t.Fatalf("a renewed batch was taken over: %v", err)
	}
	if err := db.MarkBatchSent(context.Background(), b, "slow", "x"); err != nil {
		t.Fatal(err)
	}
}

func TestARateLimitedBatchHoldsItsJobButNotOtherChannels(t *testing.T) {
	db, c := open(t)
	importN(t, db, "", 0, 20)
	res := publish(t, db, notice("x", breachcast.Investigating, "email", "twitter"))
	b, _ := db.ClaimBatch(context.Background(), "email", "w", 10, time.Minute)
	reset := c.Now().Add(time.Hour)
	if err := db.RetryBatch(context.Background(), b, "w", reset, "HTTP 429", true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimBatch(context.Background(), "email", "w", 10, time.Minute); !errors.Is(err, store.ErrNoWork) {
		t.Fatalf("email went on during the rate limit: %v", err)
	}
	if _, err := db.ClaimJob(context.Background(), "twitter", "w", time.Minute); err != nil {
		t.Fatalf("twitter was held up by email: %v", err)
	}
	p, _ := db.Progress(context.Background(), res.Update.ID)
	if p[0].Queued != 20 || !p[0].NextAt.Equal(reset) || p[0].LastError != "HTTP 429" {
		t.Fatalf("%+v", p[0])
	}
	c.Advance(time.Hour)
	again, err := db.ClaimBatch(context.Background(), "email", "w", 10, time.Minute)
	if err != nil || again.ID != b.ID || again.Recovered {
		t.Fatalf("%+v %v", again, err)
	}
}

func TestAFailedBatchMarksItsRecipientsFailedWithTheReason(t *testing.T) {
	db, _ := open(t)
	importN(t, db, "", 0, 5)
	res := publish(t, db, notice("x", breachcast.Investigating, "email"))
	b, _ := db.ClaimBatch(context.Background(), "email", "w", 10, time.Minute)
	if err := db.FailBatch(context.Background(), b, "w", "email: mail/send: HTTP 400: bad from"); err != nil {
		t.Fatal(err)
	}
	db.ClaimBatch(context.Background(), "email", "w", 10, time.Minute) // drains the job
	var missing []string
	db.Missing(context.Background(), res.Update.ID, "email", 0, func(email, state, reason string) error {
		missing = append(missing, email+" "+state+" "+reason)
		return nil
	})
	if len(missing) != 5 || !strings.Contains(missing[0], "failed email: mail/send: HTTP 400") {
		t.Fatalf("%q", missing)
	}
	p, _ := db.Progress(context.Background(), res.Update.ID)
	if p[0].JobState != "failed" || p[0].Failed != 5 {
		t.Fatalf("%+v", p[0])
	}
}

func TestSocialJobsContinueTheIncidentThreadInOrder(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	publish(t, db, notice("x", breachcast.Investigating, "twitter"))
	second := publish(t, db, notice("x", breachcast.Identified, "twitter"))
	j1, err := db.ClaimJob(ctx, "twitter", "w", time.Minute)
	if err != nil || j1.Seq != 1 || j1.Parent != "" || j1.Root != "" || len(j1.Posts) != 2 {
		t.Fatalf("%+v %v", j1, err)
	}
	// The second update waits for the first's thread.
	if _, err := db.ClaimJob(ctx, "twitter", "w2", time.Minute); !errors.Is(err, store.ErrNoWork) {
		t.Fatalf("second update claimed before the first finished: %v", err)
	}
	db.RecordPost(ctx, j1.Posts[0].ID, "100", "https://x.com/a/status/100", "")
	db.RecordPost(ctx, j1.Posts[1].ID, "101", "https://x.com/a/status/101", "100")
	if err := db.FinishJob(ctx, j1, "w", ""); err != nil {
		t.Fatal(err)
	}
	j2, err := db.ClaimJob(ctx, "twitter", "w", time.Minute)
	if err != nil || j2.UpdateID != second.Update.ID || j2.Parent != "101" || j2.Root != "100" {
		t.Fatalf("%+v %v", j2, err)
	}
}

func TestAStatusJobPutsTheUpdateOnThePage(t *testing.T) {
	db, _ := open(t)
	res := publish(t, db, notice("x", breachcast.Investigating, "status"))
	j, err := db.ClaimJob(context.Background(), "status", "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MarkPublic(context.Background(), j, "w"); err != nil {
		t.Fatal(err)
	}
	p, _ := db.Progress(context.Background(), res.Update.ID)
	if p[0].Sent != 1 || p[0].JobState != "done" {
		t.Fatalf("%+v", p[0])
	}
}

func TestCursorsSurviveReopening(t *testing.T) {
	db, _ := open(t)
	if err := db.SetCursor(context.Background(), "twitter", `{"since":"5"}`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	again, err := store.Open(context.Background(), db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if v, _ := again.Cursor(context.Background(), "twitter"); v != `{"since":"5"}` {
		t.Fatalf("cursor %q", v)
	}
}

func TestSubscribersGetTheStatusStreamUnlessTheyGetTheNoticeItself(t *testing.T) {
	db, c := open(t)
	ctx := context.Background()
	importN(t, db, "", 0, 2) // user1, user2 are affected
	add := func(email, incident string, confirm bool) {
		s, err := db.AddSubscriber(ctx, email, incident, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		if confirm {
			if err := db.ConfirmSubscriber(ctx, s.ID, c.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("watcher@example.org", "", true)
	add("follower@example.org", "db-leak", true)
	add("other@example.org", "other-incident", true)
	add("lazy@example.org", "", false)
	add("user1@example.com", "", true) // affected: gets the notice, not the stream
	n := notice("db-leak", breachcast.Investigating, "email", "status")
	res, err := db.Publish(ctx, &store.Publication{Notice: n, Email: []byte("{}"), SubscriberEmail: []byte("{}"), MessageIDDomain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Subscribers != 2 {
		t.Fatalf("queued %d subscriber mails, want 2", res.Subscribers)
	}
	b, err := db.ClaimBatch(ctx, store.ChannelSubscribers, "w", 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range b.Recipients {
		got = append(got, r.Email)
		if !strings.Contains(r.MessageID, ".s") {
			t.Errorf("subscriber message id %q", r.MessageID)
		}
	}
	if strings.Join(got, ",") != "watcher@example.org,follower@example.org" {
		t.Fatalf("stream goes to %v", got)
	}
	// An unsubscribe after the publish stops the mail.
	all, _ := db.ConfirmedSubscribers(ctx, "db-leak")
	if len(all) != 3 {
		t.Fatalf("confirmed followers of db-leak: %d", len(all))
	}
}

func TestThePublicTimelineShowsOnlyUpdatesOnTheStatusPage(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	importN(t, db, "", 0, 1)
	publish(t, db, notice("db-leak", breachcast.Investigating, "status"))
	publish(t, db, notice("db-leak", breachcast.Identified, "email")) // email only
	if v, _ := db.PublicVersion(ctx); v != 0 {
		t.Fatalf("version %d before anything went up", v)
	}
	j, err := db.ClaimJob(ctx, "status", "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	db.MarkPublic(ctx, j, "w")
	v, _ := db.PublicVersion(ctx)
	incs, err := db.PublicIncidents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != j.UpdateID || len(incs) != 1 || len(incs[0].Updates) != 1 || incs[0].Status != breachcast.Investigating ||
		incs[0].Updates[0].ReplyToken != "" {
		t.Fatalf("version %d, %+v", v, incs)
	}
}

func TestReleasedWorkIsNotCountedAsAnAttemptAndKeepsItsError(t *testing.T) {
	db, c := open(t)
	ctx := context.Background()
	importN(t, db, "", 0, 10)
	publish(t, db, notice("x", breachcast.Investigating, "email", "twitter"))
	b, _ := db.ClaimBatch(ctx, "email", "w", 10, time.Minute)
	if err := db.RetryBatch(ctx, b, "w", c.Now(), "HTTP 503", false); err != nil {
		t.Fatal(err)
	}
	b, _ = db.ClaimBatch(ctx, "email", "w", 10, time.Minute) // attempt 2
	if err := db.ReleaseBatch(ctx, b, "w"); err != nil {     // paused before sending
		t.Fatal(err)
	}
	again, err := db.ClaimBatch(ctx, "email", "w", 10, time.Minute)
	if err != nil || again.ID != b.ID || again.Attempts != 2 || again.Recovered {
		t.Fatalf("after a release: %+v %v, want the same batch at attempt 2", again, err)
	}
	if p, _ := db.Progress(ctx, b.UpdateID); p[0].LastError != "HTTP 503" {
		t.Fatalf("the release lost the last error: %+v", p[0])
	}
	j, _ := db.ClaimJob(ctx, "twitter", "w", time.Minute)
	if err := db.ReleaseJob(ctx, j, "w"); err != nil {
		t.Fatal(err)
	}
	j2, err := db.ClaimJob(ctx, "twitter", "w", time.Minute)
	if err != nil || j2.ID != j.ID || j2.Attempts != 1 {
		t.Fatalf("after a release: %+v %v, want attempt 1", j2, err)
	}
}
