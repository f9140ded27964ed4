// Package fanout delivers published updates: workers claim due work from the
// store's outbox under a lease, send it through the channels, and record the
// outcome (sent, retry at max(Retry-After, backoff), or failed). Every send
// is a row first, so a crash loses nothing: a restarted engine picks up where
// the ledger says it stopped.
//
// Each channel has its own workers, concurrency and rate limit, so a failing
// or rate-limited channel never holds up another. The kill switch in the
// store is polled by every engine, in every process, several times a second;
// no send starts while it is on.
package fanout

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/store"
)

// Store is what the engine needs from the outbox.
type Store interface {
	ClaimBatch(ctx context.Context, channel, owner string, size int, lease time.Duration) (*store.Batch, error)
	MarkBatchSent(ctx context.Context, b *store.Batch, owner, providerID string) error
	RetryBatch(ctx context.Context, b *store.Batch, owner string, next time.Time, reason string, holdJob bool) error
	FailBatch(ctx context.Context, b *store.Batch, owner, reason string) error
	ReleaseBatch(ctx context.Context, b *store.Batch, owner string) error
	ClaimJob(ctx context.Context, channel, owner string, lease time.Duration) (*store.Job, error)
	RecordPost(ctx context.Context, postID int64, externalID, url, parentID string) error
	FailPost(ctx context.Context, postID int64, reason string) error
	RetryJob(ctx context.Context, j *store.Job, owner string, next time.Time, reason string) error
	FinishJob(ctx context.Context, j *store.Job, owner, reason string) error
	ReleaseJob(ctx context.Context, j *store.Job, owner string) error
	MarkPublic(ctx context.Context, j *store.Job, owner string) error
	RenewLeases(ctx context.Context, owner string, lease time.Duration) error
	Rendering(ctx context.Context, updateID int64, channel string) ([]byte, error)
	Update(ctx context.Context, id int64) (*breachcast.Update, error)
	Pause(ctx context.Context) (*store.PauseState, error)
}

// EmailTemplate is an update's email as rendered once at publish time, with
// recipient fields left as substitution tokens.
type EmailTemplate interface {
	Content() (subject, html, text string)
	Substitutions(r *breachcast.Recipient, extra map[string]string) map[string]string
}

// DecodeEmail turns a stored email rendering back into an EmailTemplate.
type DecodeEmail func(content []byte) (EmailTemplate, error)

// ChannelConfig tunes one channel's workers.
type ChannelConfig struct {
	Concurrency int     // parallel sends (email batches); social threads are always sequential
	Rate        float64 // sends per second, 0 for unlimited
	Burst       int     // token bucket size, default 1
	BatchSize   int     // recipients per email request, at most 1000
	MaxAttempts int     // after this many tries a batch or post is failed and reported
}

// EmailIdentity is who the email comes from and where replies go.
type EmailIdentity struct {
	FromEmail     string
	FromName      string
	InboundDomain string // replies go to reply+TOKEN@InboundDomain; "" sends replies to FromEmail
}

// Config configures an Engine. Zero values get sane defaults.
type Config struct {
	Owner       string        // worker identity; default host:pid:random
	Lease       time.Duration // how long claimed work stays ours without renewal; default 30s
	Idle        time.Duration // wait when no work is due; default 250ms
	PauseCheck  time.Duration // how often the kill switch is read; default 200ms
	BackoffBase time.Duration // first retry delay; default 2s
	BackoffMax  time.Duration // longest retry delay; default 10m
	SendTimeout time.Duration // one provider call, including a graceful finish at shutdown; default 60s
	Channels    map[string]ChannelConfig
	Email       EmailIdentity
	IncidentURL func(slug string) string // status page link of an incident
	DecodeEmail DecodeEmail
	OnPublic    func(updateID int64) // called after an update went up on the status page
	// Unsubscribe gives, for an opt-in status subscriber, the one-click
	// unsubscribe link and the List-Unsubscribe headers (RFC 8058) its email
	// must carry. Without it the subscription stream is not sent.
	Unsubscribe  func(subscriberID int64) (url string, headers map[string]string, err error)
	Logger       *slog.Logger
	Now          func() time.Time
	Sleep        func(ctx context.Context, d time.Duration) // for tests; default waits on a timer
	AllowedEmpty bool                                       // run even with no channel configured (tests)
}

// Engine runs the workers of every configured channel.
type Engine struct {
	cfg        Config
	store      Store
	mailer     channels.Mailer
	publishers map[string]channels.Publisher
	log        *slog.Logger

	paused  atomic.Bool
	limits  map[string]*limiter
	updates sync.Map // update id -> *breachcast.Update
	emails  sync.Map // update id -> EmailTemplate
}

// New returns an engine. mailer may be nil when email is not configured;
// publishers maps channel names (twitter, facebook) to their adapters.
// The status channel needs no adapter.
func New(st Store, mailer channels.Mailer, publishers map[string]channels.Publisher, cfg Config) (*Engine, error) {
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = crand.Read(b)
		cfg.Owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, 30*time.Second)
	def(&cfg.Idle, 250*time.Millisecond)
	def(&cfg.PauseCheck, 200*time.Millisecond)
	def(&cfg.BackoffBase, 2*time.Second)
	def(&cfg.BackoffMax, 10*time.Minute)
	def(&cfg.SendTimeout, 60*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.IncidentURL == nil {
		cfg.IncidentURL = func(string) string { return "" }
	}
	if mailer != nil && cfg.DecodeEmail == nil {
		return nil, errors.New("fanout: email configured without a DecodeEmail")
	}
	e := &Engine{cfg: cfg, store: st, mailer: mailer, publishers: publishers, log: cfg.Logger, limits: map[string]*limiter{}}
	for _, ch := range e.channels() {
		c := e.channelConfig(ch)
		e.limits[ch] = newLimiter(c.Rate, c.Burst, cfg.Now)
	}
	return e, nil
}

// Owner is the identity under which this engine leases work.
func (e *Engine) Owner() string { return e.cfg.Owner }

func (e *Engine) channels() []string {
	out := []string{breachcast.ChannelStatus}
	if e.mailer != nil {
		out = append(out, breachcast.ChannelEmail)
		if e.cfg.Unsubscribe != nil {
			out = append(out, store.ChannelSubscribers)
		}
	}
	for _, ch := range []string{breachcast.ChannelTwitter, breachcast.ChannelFacebook} {
		if e.publishers[ch] != nil {
			out = append(out, ch)
		}
	}
	return out
}

func (e *Engine) channelConfig(ch string) ChannelConfig {
	c := e.cfg.Channels[ch]
	if c.Concurrency <= 0 {
		c.Concurrency = 1
		if ch == breachcast.ChannelEmail || ch == store.ChannelSubscribers {
			c.Concurrency = 8
		}
	}
	if c.BatchSize <= 0 || c.BatchSize > 1000 {
		c.BatchSize = 1000
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.Burst <= 0 {
		c.Burst = 1
	}
	return c
}

// Run works until ctx is cancelled. Sends under way when it is cancelled are
// finished (within SendTimeout) and recorded, so a clean shutdown leaves
// nothing in flight.
func (e *Engine) Run(ctx context.Context) error {
	e.refreshPause(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { e.watchPause(ctx) })
	wg.Go(func() { e.renewLeases(ctx) })
	for _, ch := range e.channels() {
		c := e.channelConfig(ch)
		switch ch {
		case breachcast.ChannelEmail, store.ChannelSubscribers:
			for range c.Concurrency {
				wg.Go(func() { e.emailWorker(ctx, ch, c) })
			}
		case breachcast.ChannelStatus:
			wg.Go(func() { e.statusWorker(ctx) })
		default:
			wg.Go(func() { e.postWorker(ctx, ch, c) })
		}
	}
	e.log.Info("fan-out started", "owner", e.cfg.Owner, "channels", e.channels())
	wg.Wait()
	return nil
}

// Paused reports whether this engine last saw the kill switch on.
func (e *Engine) Paused() bool { return e.paused.Load() }

func (e *Engine) watchPause(ctx context.Context) {
	for {
		e.cfg.Sleep(ctx, e.cfg.PauseCheck)
		if ctx.Err() != nil {
			return
		}
		e.refreshPause(ctx)
	}
}

func (e *Engine) refreshPause(ctx context.Context) {
	st, err := e.store.Pause(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("read kill switch", "err", err)
		}
		return
	}
	if was := e.paused.Swap(st.Paused); was != st.Paused {
		if st.Paused {
			e.log.Warn("sending paused", "by", st.By, "reason", st.Reason)
		} else {
			e.log.Info("sending resumed", "by", st.By)
		}
	}
}

func (e *Engine) renewLeases(ctx context.Context) {
	for {
		e.cfg.Sleep(ctx, e.cfg.Lease/3)
		if ctx.Err() != nil {
			return
		}
		if err := e.store.RenewLeases(context.WithoutCancel(ctx), e.cfg.Owner, e.cfg.Lease); err != nil {
			e.log.Error("renew leases", "err", err)
		}
	}
}

// backoff is exponential with jitter: a random delay in [d/2, d] where d
// doubles per attempt from BackoffBase up to BackoffMax.
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.BackoffBase
	for i := 1; i < attempt && d < e.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.BackoffMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryDelay decides when to try again after err on the given attempt: never
// (permanent, or out of attempts), or after max(Retry-After, backoff). held
// reports whether the provider asked us to wait (rate limit), in which case
// the whole job waits, not just this piece of work.
func (e *Engine) retryDelay(err error, attempt, maxAttempts int) (delay time.Duration, retry, held bool) {
	permanent, after := channels.Classify(err)
	if permanent {
		return 0, false, false
	}
	if after <= 0 && attempt >= maxAttempts {
		return 0, false, false
	}
	d := e.backoff(attempt)
	if after > d {
		d = after
	}
	return d, true, after > 0
}

func (e *Engine) update(ctx context.Context, id int64) (*breachcast.Update, error) {
	if u, ok := e.updates.Load(id); ok {
		return u.(*breachcast.Update), nil
	}
	u, err := e.store.Update(ctx, id)
	if err != nil {
		return nil, err
	}
	e.updates.Store(id, u)
	return u, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// idle waits a little before looking for work again, with jitter so that
// workers of many processes do not poll in lockstep.
func (e *Engine) idle(ctx context.Context) {
	d := e.cfg.Idle
	e.cfg.Sleep(ctx, d/2+time.Duration(rand.Int64N(int64(d)+1)))
}

// workLoop claims work with claim and hands it to work until ctx ends,
// idling while nothing is due or the kill switch is on.
func workLoop[T any](ctx context.Context, e *Engine, what string, claim func(context.Context) (T, error), work func(T)) {
	for ctx.Err() == nil {
		if e.paused.Load() {
			e.idle(ctx)
			continue
		}
		item, err := claim(ctx)
		switch {
		case errors.Is(err, store.ErrNoWork):
			e.idle(ctx)
		case errors.Is(err, store.ErrPaused):
			e.paused.Store(true)
		case err != nil:
			if ctx.Err() == nil {
				e.log.Error("claim "+what, "err", err)
				e.idle(ctx)
			}
		default:
			work(item)
		}
	}
}
