package fanout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/fanout"
	"github.com/breachcast/breachcast/store"
)

// mailer is a channels.Mailer whose behaviour each test sets.
type mailer struct {
	mu      sync.Mutex
	got     map[string]int // address -> times sent
	batches []*channels.EmailBatch
	fail    func(b *channels.EmailBatch, n int) error // n: 1-based request number
	calls   int
	latency time.Duration // the provider's answer time
}

func (m *mailer) SendBatch(ctx context.Context, b *channels.EmailBatch) (*channels.BatchReceipt, error) {
	if m.latency > 0 {
		time.Sleep(m.latency) // stands in for the provider's round trip
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		if err := m.fail(b, m.calls); err != nil {
			return nil, err
		}
	}
	if m.got == nil {
		m.got = map[string]int{}
	}
	for _, r := range b.Recipients {
		m.got[r.Email]++
	}
	m.batches = append(m.batches, b)
	return &channels.BatchReceipt{ProviderID: fmt.Sprintf("sg-%d", m.calls)}, nil
}

func (m *mailer) sent() (total, distinct, dup int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.got {
		total += n
		distinct++
		if n > 1 {
			dup++
		}
	}
	return
}

// publisher is a channels.Publisher recording posts, with settable failures.
type publisher struct {
	name  string
	mu    sync.Mutex
	posts []channels.Post
	fail  func(p *channels.Post, n int) error
	calls int
}

func (p *publisher) Name() string { return p.name }
func (p *publisher) Publish(ctx context.Context, post *channels.Post) (*channels.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil {
		if err := p.fail(post, p.calls); err != nil {
			return nil, err
		}
	}
	p.posts = append(p.posts, *post)
	id := fmt.Sprintf("%d", 1000+len(p.posts))
	return &channels.Receipt{ExternalID: id, URL: "https://x.com/acme/status/" + id}, nil
}

func (p *publisher) made() []channels.Post {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]channels.Post(nil), p.posts...)
}

type tmpl struct{ Subject, HTML, Text string }

func (t tmpl) Content() (string, string, string) { return t.Subject, t.HTML, t.Text }
func (t tmpl) Substitutions(r *breachcast.Recipient, _ map[string]string) map[string]string {
	return map[string]string{"%name%": r.Name}
}

func decode(b []byte) (fanout.EmailTemplate, error) {
	var t tmpl
	return t, json.Unmarshal(b, &t)
}

type rig struct {
	db   *store.DB
	mail *mailer
	x    *publisher
	fb   *publisher
	cfg  fanout.Config
}

func newRig(t *testing.T, recipients int) *rig {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	i := 0
	if _, err := db.ImportRecipients(context.Background(), "", "t", func() (*breachcast.Recipient, error) {
		if i == recipients {
			return nil, nil
		}
		i++
		return &breachcast.Recipient{Email: fmt.Sprintf("c%d@example.com", i), Name: fmt.Sprintf("C%d", i)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return &rig{db: db, mail: &mailer{}, x: &publisher{name: "twitter"}, fb: &publisher{name: "facebook"},
		cfg: fanout.Config{
			Lease: 2 * time.Second, Idle: 5 * time.Millisecond, PauseCheck: 20 * time.Millisecond,
			BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			Channels: map[string]fanout.ChannelConfig{
				"email": {Concurrency: 4, BatchSize: 100, MaxAttempts: 3},
			},
			Email:       fanout.EmailIdentity{FromEmail: "security@acme.example", FromName: "Acme Security", InboundDomain: "reply.acme.example"},
			IncidentURL: func(slug string) string { return "https://status.acme.example/incidents/" + slug },
			DecodeEmail: decode,
		}}
}

func (r *rig) publish(t *testing.T, slug string, status breachcast.Status, channels ...string) *store.PublishResult {
	t.Helper()
	n := &breachcast.Notice{Incident: slug, Title: "Unauthorized access", Status: status, Severity: "major",
		Audience: "all", Channels: channels, Body: string(status), Source: slug + ".md"}
	email, _ := json.Marshal(tmpl{Subject: "[" + string(status) + "] Unauthorized access", HTML: "<p>Hi %name%</p>", Text: "Hi %name%"})
	res, err := r.db.Publish(context.Background(), &store.Publication{Notice: n, Email: email, MessageIDDomain: "acme.example",
		Posts: map[string][]string{"twitter": {"1/3 first", "2/3 second", "3/3 third"}, "facebook": {"the post"}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// start runs an engine until the test ends or stop is called.
func (r *rig) start(t *testing.T) (stop func()) {
	t.Helper()
	e, err := fanout.New(r.db, r.mail, map[string]channels.Publisher{"twitter": r.x, "facebook": r.fb}, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func progress(t *testing.T, db *store.DB, updateID int64, ch string) *store.ChannelProgress {
	t.Helper()
	ps, err := db.Progress(context.Background(), updateID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Channel == ch {
			return p
		}
	}
	t.Fatalf("no %s job", ch)
	return nil
}

func finished(t *testing.T, db *store.DB, updateID int64) func() bool {
	return func() bool {
		n, err := db.UnfinishedJobs(context.Background(), updateID)
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	}
}

func TestEveryRecipientGetsTheNoticeExactlyOnceAcrossConcurrentWorkers(t *testing.T) {
	r := newRig(t, 2345)
	res := r.publish(t, "db-leak", breachcast.Investigating, "email")
	r.start(t)
	eventually(t, "fan-out to finish", finished(t, r.db, res.Update.ID))
	total, distinct, dup := r.mail.sent()
	if total != 2345 || distinct != 2345 || dup != 0 {
		t.Fatalf("sent %d to %d addresses, %d duplicated", total, distinct, dup)
	}
	p := progress(t, r.db, res.Update.ID, "email")
	if p.Sent != 2345 || p.JobState != "done" {
		t.Fatalf("%+v", p)
	}
	b := r.mail.batches[0]
	if len(b.Recipients) > 100 || b.ReplyTo != "reply+"+res.Update.ReplyToken+"@reply.acme.example" ||
		b.Subject != "[investigating] Unauthorized access" || b.FromEmail != "security@acme.example" {
		t.Fatalf("batch %+v", b)
	}
	rc := b.Recipients[0]
	if rc.MessageID == "" || rc.Substitutions["%name%"] == "" || rc.InReplyTo != "" {
		t.Fatalf("recipient %+v", rc)
	}
	for k, v := range rc.CustomArgs {
		if strings.Contains(v, "@") || strings.Contains(v, "example") {
			t.Fatalf("custom arg %s=%s carries personal data", k, v)
		}
	}
}

func TestLaterUpdatesCarryThreadHeadersToEachRecipientsFirstNotice(t *testing.T) {
	r := newRig(t, 10)
	first := r.publish(t, "db-leak", breachcast.Investigating, "email")
	second := r.publish(t, "db-leak", breachcast.Identified, "email")
	r.start(t)
	eventually(t, "both updates", func() bool { return finished(t, r.db, first.Update.ID)() && finished(t, r.db, second.Update.ID)() })
	firstIDs := map[string]string{}
	for _, b := range r.mail.batches {
		if strings.Contains(b.Subject, "investigating") {
			for _, rc := range b.Recipients {
				firstIDs[rc.Email] = rc.MessageID
			}
		}
	}
	for _, b := range r.mail.batches {
		if !strings.Contains(b.Subject, "identified") {
			continue
		}
		for _, rc := range b.Recipients {
			if rc.InReplyTo != firstIDs[rc.Email] || len(rc.References) != 1 || rc.References[0] != firstIDs[rc.Email] {
				t.Fatalf("%s: In-Reply-To %q References %q, want %q", rc.Email, rc.InReplyTo, rc.References, firstIDs[rc.Email])
			}
		}
	}
}

func TestARateLimitedEmailWaitsForTheResetWhileOtherChannelsGoOn(t *testing.T) {
	r := newRig(t, 300)
	r.cfg.Channels["email"] = fanout.ChannelConfig{Concurrency: 1, BatchSize: 100, MaxAttempts: 3}
	const reset = 500 * time.Millisecond
	var limitedAt time.Time
	var later []time.Time
	r.mail.fail = func(b *channels.EmailBatch, n int) error {
		if n == 1 {
			limitedAt = time.Now()
			return &channels.Error{Channel: "email", Op: "mail/send", Status: 429, RetryAfter: reset}
		}
		later = append(later, time.Now())
		return nil
	}
	var lastPost time.Time
	r.x.fail = func(*channels.Post, int) error { lastPost = time.Now(); return nil }
	res := r.publish(t, "db-leak", breachcast.Investigating, "email", "twitter")
	r.start(t)
	eventually(t, "everything", finished(t, r.db, res.Update.ID))
	r.mail.mu.Lock()
	for _, at := range later {
		if at.Sub(limitedAt) < reset {
			t.Errorf("email sent %v after a 429 asking for %v", at.Sub(limitedAt), reset)
		}
	}
	r.mail.mu.Unlock()
	r.x.mu.Lock()
	posted := lastPost
	r.x.mu.Unlock()
	if posted.Sub(limitedAt) >= reset {
		t.Fatalf("the thread waited for email's rate limit: last post %v after the 429", posted.Sub(limitedAt))
	}
	if total, _, dup := r.mail.sent(); total != 300 || dup != 0 {
		t.Fatalf("total %d dup %d", total, dup)
	}
}

func TestAPermanentErrorFailsTheBatchAndIsReportedNotRetried(t *testing.T) {
	r := newRig(t, 50)
	r.mail.fail = func(*channels.EmailBatch, int) error {
		return &channels.Error{Channel: "email", Op: "mail/send", Status: 400, Message: "The from address does not match a verified Sender Identity", Permanent: true}
	}
	res := r.publish(t, "db-leak", breachcast.Investigating, "email")
	r.start(t)
	eventually(t, "the job to end", finished(t, r.db, res.Update.ID))
	p := progress(t, r.db, res.Update.ID, "email")
	if p.JobState != "failed" || p.Failed != 50 || !strings.Contains(p.LastError, "verified Sender Identity") {
		t.Fatalf("%+v", p)
	}
	if r.mail.calls != 1 {
		t.Fatalf("%d calls: a permanent error was retried", r.mail.calls)
	}
}

func TestTransientErrorsAreRetriedWithBackoffThenGivenUp(t *testing.T) {
	r := newRig(t, 10)
	r.mail.fail = func(*channels.EmailBatch, int) error {
		return &channels.Error{Channel: "email", Op: "mail/send", Status: http.StatusBadGateway}
	}
	res := r.publish(t, "db-leak", breachcast.Investigating, "email")
	r.start(t)
	eventually(t, "the job to end", finished(t, r.db, res.Update.ID))
	if r.mail.calls != 3 {
		t.Fatalf("%d attempts, want MaxAttempts=3", r.mail.calls)
	}
	if p := progress(t, r.db, res.Update.ID, "email"); p.Failed != 10 {
		t.Fatalf("%+v", p)
	}
}

func TestTheKillSwitchStopsSendingWithinASecondAndResumeContinuesWhereItStopped(t *testing.T) {
	r := newRig(t, 3000)
	r.cfg.Channels["email"] = fanout.ChannelConfig{Concurrency: 2, BatchSize: 50, MaxAttempts: 3}
	r.mail.latency = 20 * time.Millisecond // 60 batches over 2 workers: ~600 ms of sending
	gate := make(chan struct{})
	var gateOnce sync.Once
	r.mail.fail = func(b *channels.EmailBatch, n int) error {
		if n == 5 {
			gateOnce.Do(func() { close(gate) })
		}
		return nil
	}
	res := r.publish(t, "db-leak", breachcast.Investigating, "email")
	r.start(t)
	<-gate
	// Another process flips the switch.
	other, err := store.Open(context.Background(), r.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.SetPause(context.Background(), true, "comms", "wrong audience"); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now()
	var lastSend time.Time
	r.mail.mu.Lock()
	r.mail.fail = func(*channels.EmailBatch, int) error { lastSend = time.Now(); return nil }
	r.mail.mu.Unlock()
	// Let the engine run on for a while; nothing may be sent a second after the pause.
	<-time.After(1500 * time.Millisecond)
	r.mail.mu.Lock()
	stoppedAfter := lastSend.Sub(pausedAt)
	sentWhilePaused := r.mail.calls
	r.mail.mu.Unlock()
	if stoppedAfter > time.Second {
		t.Fatalf("a batch was sent %v after the pause", stoppedAfter)
	}
	if total, _, _ := r.mail.sent(); total >= 3000 {
		t.Fatal("everything was sent despite the pause")
	}
	if _, err := other.SetPause(context.Background(), false, "comms", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rest after resume", finished(t, r.db, res.Update.ID))
	batches, err := r.db.Batches(context.Background(), res.Update.ID, "email", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if b.Attempts != 1 {
			t.Fatalf("batch %d took %d attempts: a pause must not count as a try", b.ID, b.Attempts)
		}
	}
	total, distinct, dup := r.mail.sent()
	if total != 3000 || distinct != 3000 || dup != 0 {
		t.Fatalf("after resume: %d sent to %d, %d twice (calls while paused: %d)", total, distinct, dup, sentWhilePaused)
	}
}

func TestACleanShutdownLeavesNothingInFlight(t *testing.T) {
	r := newRig(t, 2000)
	r.cfg.Channels["email"] = fanout.ChannelConfig{Concurrency: 4, BatchSize: 50, MaxAttempts: 3}
	started := make(chan struct{})
	var once sync.Once
	r.mail.fail = func(*channels.EmailBatch, int) error { once.Do(func() { close(started) }); return nil }
	res := r.publish(t, "db-leak", breachcast.Investigating, "email")
	stop := r.start(t)
	<-started
	stop()
	p := progress(t, r.db, res.Update.ID, "email")
	if p.Inflight != 0 {
		t.Fatalf("%d recipients left in flight after a clean stop: %+v", p.Inflight, p)
	}
	total, _, _ := r.mail.sent()
	if p.Sent != total {
		t.Fatalf("ledger says %d sent, provider got %d", p.Sent, total)
	}
	r.start(t)
	eventually(t, "a restart to finish", finished(t, r.db, res.Update.ID))
	if total, distinct, dup := r.mail.sent(); total != 2000 || distinct != 2000 || dup != 0 {
		t.Fatalf("%d %d %d", total, distinct, dup)
	}
}

func TestAThreadIsChainedAndLaterUpdatesContinueIt(t *testing.T) {
	r := newRig(t, 0)
	first := r.publish(t, "db-leak", breachcast.Investigating, "twitter", "facebook")
	second := r.publish(t, "db-leak", breachcast.Identified, "twitter", "facebook")
	r.start(t)
	eventually(t, "both threads", func() bool { return finished(t, r.db, first.Update.ID)() && finished(t, r.db, second.Update.ID)() })
	posts := r.x.made()
	if len(posts) != 6 {
		t.Fatalf("%d posts", len(posts))
	}
	wantParents := []string{"", "1001", "1002", "1003", "1004", "1005"}
	for i, p := range posts {
		if p.Parent != wantParents[i] {
			t.Errorf("post %d parent %q, want %q", i+1, p.Parent, wantParents[i])
		}
		if i > 0 && p.Root != "1001" {
			t.Errorf("post %d root %q", i+1, p.Root)
		}
		if p.Link != "https://status.acme.example/incidents/db-leak" {
			t.Errorf("link %q", p.Link)
		}
	}
	fb := r.fb.made()
	if len(fb) != 2 || fb[0].Root != "" || fb[1].Root != "1001" {
		t.Fatalf("facebook %+v", fb)
	}
	stored, _ := r.db.Posts(context.Background(), second.Update.ID, "twitter")
	if stored[0].ParentID != "1003" || stored[0].ExternalID != "1004" || stored[0].URL == "" {
		t.Fatalf("ledger %+v", stored[0])
	}
}

func TestAFailureMidThreadResumesFromTheFailedPostWithoutRepeatingOne(t *testing.T) {
	r := newRig(t, 0)
	r.x.fail = func(p *channels.Post, n int) error {
		if n == 2 {
			return &channels.Error{Channel: "twitter", Op: "POST /2/tweets", Status: 503}
		}
		return nil
	}
	res := r.publish(t, "db-leak", breachcast.Investigating, "twitter")
	r.start(t)
	eventually(t, "the thread", finished(t, r.db, res.Update.ID))
	posts := r.x.made()
	if len(posts) != 3 || posts[0].Text != "1/3 first" || posts[1].Text != "2/3 second" || posts[1].Parent != "1001" || posts[2].Parent != "1002" {
		t.Fatalf("%+v", posts)
	}
	if r.x.calls != 4 {
		t.Fatalf("%d calls, want 3 posts + 1 failed try", r.x.calls)
	}
}

func TestADuplicateContentRefusalIsReportedNotRetried(t *testing.T) {
	r := newRig(t, 0)
	r.x.fail = func(p *channels.Post, n int) error {
		if n == 1 {
			return &channels.Error{Channel: "twitter", Op: "POST /2/tweets", Status: 403, Code: "duplicate",
				Message: "You are not allowed to create a Tweet with duplicate content.", Permanent: true}
		}
		return nil
	}
	res := r.publish(t, "db-leak", breachcast.Investigating, "twitter")
	r.start(t)
	eventually(t, "the job to end", finished(t, r.db, res.Update.ID))
	p := progress(t, r.db, res.Update.ID, "twitter")
	if p.JobState != "failed" || !strings.Contains(p.LastError, "duplicate content") || r.x.calls != 1 {
		t.Fatalf("%+v, %d calls", p, r.x.calls)
	}
}

func TestARateLimitAnHourAwayHoldsOnlyThatChannel(t *testing.T) {
	r := newRig(t, 20)
	r.x.fail = func(*channels.Post, int) error {
		return &channels.Error{Channel: "twitter", Op: "POST /2/tweets", Status: 429, RetryAfter: time.Hour}
	}
	res := r.publish(t, "db-leak", breachcast.Investigating, "email", "twitter", "status")
	r.start(t)
	eventually(t, "email and status done, twitter told to wait", func() bool {
		return progress(t, r.db, res.Update.ID, "email").JobState == "done" && progress(t, r.db, res.Update.ID, "status").JobState == "done" &&
			progress(t, r.db, res.Update.ID, "twitter").LastError != ""
	})
	p := progress(t, r.db, res.Update.ID, "twitter")
	if p.JobState != "running" || time.Until(p.NextAt) < 59*time.Minute || !strings.Contains(p.LastError, "429") {
		t.Fatalf("twitter %+v", p)
	}
}

func TestAStatusJobPutsTheUpdateUpAndTellsThePage(t *testing.T) {
	r := newRig(t, 0)
	got := make(chan int64, 1)
	r.cfg.OnPublic = func(id int64) { got <- id }
	res := r.publish(t, "db-leak", breachcast.Investigating, "status")
	r.start(t)
	select {
	case id := <-got:
		if id != res.Update.ID {
			t.Fatalf("told about update %d", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("status page never told")
	}
}

func TestNewRefusesEmailWithoutADecoder(t *testing.T) {
	_, err := fanout.New(nil, &mailer{}, nil, fanout.Config{})
	if err == nil || !strings.Contains(err.Error(), "DecodeEmail") {
		t.Fatalf("got %v", err)
	}
}
