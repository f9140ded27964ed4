package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Poller defaults.
const (
	DefaultLookback        = 7 * 24 * time.Hour // X's recent search reaches back seven days
	DefaultErrorBackoff    = 30 * time.Second
	DefaultMaxErrorBackoff = 15 * time.Minute
	DefaultPollMin         = 30 * time.Second
	DefaultPollMax         = 15 * time.Minute

	// minWait keeps the loop from spinning whatever Next returns.
	minWait = time.Second
)

// PollerStore is what RunPoller needs: store.(*DB) implements it.
type PollerStore interface {
	Store
	// Watches lists the published posts of channel to fetch replies for,
	// per update, for incidents open or updated since.
	Watches(ctx context.Context, channel string, since time.Time) ([]channels.Watch, error)
	// Cursor returns a stored cursor, "" when there is none.
	Cursor(ctx context.Context, name string) (string, error)
	// SetCursor stores a cursor.
	SetCursor(ctx context.Context, name, value string) error
}

// PollerConfig configures RunPoller. Channel, Poller and Store are
// required.
type PollerConfig struct {
	Channel string          // breachcast.ChannelTwitter, or ChannelFacebook when its webhook is not set up
	Poller  channels.Poller // the channel's client
	Store   PollerStore

	// Sink receives every reply; default a Sink on Store. Set it to an
	// *inbox.Sink with OnReply to see replies as they arrive.
	Sink channels.Sink

	// Next says how long to wait after a poll that found new replies or
	// not; X's client exports NextPoll for this (its backoff, read budget
	// and rate limits). Default: DefaultPollMin, doubling while nothing new
	// arrives, up to DefaultPollMax.
	Next func(foundNew bool) time.Duration

	// CursorName names the stored cursor; default "poll:" + Channel.
	CursorName string

	// Lookback: incidents resolved longer ago than this are no longer
	// watched; default DefaultLookback.
	Lookback time.Duration

	// ErrorBackoff is the wait after a failed round, doubled per further
	// failure up to MaxErrorBackoff; a provider's Retry-After is honoured
	// when longer. Defaults DefaultErrorBackoff and DefaultMaxErrorBackoff.
	ErrorBackoff, MaxErrorBackoff time.Duration

	// Now and Sleep are the clock; defaults time.Now and a timer that ends
	// early with ctx's error.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	// Logger receives a line per round with replies, and every error with
	// its context; default slog.Default().
	Logger *slog.Logger
}

func (p PollerConfig) withDefaults() (PollerConfig, error) {
	switch {
	case p.Channel == "":
		return p, breachcast.Errorf(breachcast.EINVALID, "inbox poller: no channel named")
	case p.Poller == nil:
		return p, breachcast.Errorf(breachcast.EINVALID, "inbox poller: no poller for %s", p.Channel)
	case p.Store == nil:
		return p, breachcast.Errorf(breachcast.EINVALID, "inbox poller: no store for %s", p.Channel)
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Sink == nil {
		p.Sink = &Sink{Store: p.Store, Logger: p.Logger}
	}
	if p.Next == nil {
		b := &backoff{min: DefaultPollMin, max: DefaultPollMax}
		p.Next = b.next
	}
	if p.CursorName == "" {
		p.CursorName = "poll:" + p.Channel
	}
	if p.Lookback <= 0 {
		p.Lookback = DefaultLookback
	}
	if p.ErrorBackoff <= 0 {
		p.ErrorBackoff = DefaultErrorBackoff
	}
	if p.MaxErrorBackoff <= 0 {
		p.MaxErrorBackoff = DefaultMaxErrorBackoff
	}
	p.MaxErrorBackoff = max(p.MaxErrorBackoff, p.ErrorBackoff)
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	return p, nil
}

// backoff is the default polling interval: min after news, doubling up to
// max while there is none.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next(foundNew bool) time.Duration {
	if foundNew || b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RunPoller polls p.Channel until ctx ends, and then returns ctx's error;
// it returns at once, with an invalid-input error, when p is incomplete.
//
// Each round reads the watches and the stored cursor, polls, hands every
// reply to the sink and only then stores the new cursor: if a reply cannot
// be stored the cursor stays where it was and the next round reads the
// replies again (the sink is idempotent). When the poll itself fails part
// way, the replies it read and the cursor covering exactly them are stored
// like any others. Then it waits p.Next(foundNew), longer after errors
// (ErrorBackoff doubling per consecutive failure, at least the provider's
// Retry-After, the longest backoff for a permanent error), never less than
// a second.
func RunPoller(ctx context.Context, p PollerConfig) error {
	p, err := p.withDefaults()
	if err != nil {
		return err
	}
	failures := 0
	for {
		n, err := pollOnce(ctx, &p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := p.Next(n > 0)
		if err != nil {
			failures++
			wait = max(wait, errorWait(&p, failures, err))
			p.Logger.Error("inbox: poll round failed", "channel", p.Channel, "cursor", p.CursorName, "stored", n,
				"failures", failures, "retry_in", wait, "err", err)
		} else {
			failures = 0
		}
		wait = max(wait, minWait)
		if err := p.Sleep(ctx, wait); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("inbox poller %s: sleep: %w", p.Channel, err)
		}
	}
}

// errorWait is how long to wait after the failures-th failure in a row.
func errorWait(p *PollerConfig, failures int, err error) time.Duration {
	d := p.ErrorBackoff
	for i := 1; i < failures && d < p.MaxErrorBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxErrorBackoff)
	var ce *channels.Error
	if errors.As(err, &ce) {
		if ce.Permanent {
			d = p.MaxErrorBackoff // the same request will fail again: someone must act
		}
		d = max(d, ce.RetryAfter)
	}
	return d
}

// PollOnce runs one round of RunPoller: poll p.Channel once, store the
// replies, then the cursor. It returns how many replies were handed to the
// sink.
func PollOnce(ctx context.Context, p PollerConfig) (int, error) {
	p, err := p.withDefaults()
	if err != nil {
		return 0, err
	}
	return pollOnce(ctx, &p)
}

func pollOnce(ctx context.Context, p *PollerConfig) (int, error) {
	watches, err := p.Store.Watches(ctx, p.Channel, p.Now().Add(-p.Lookback))
	if err != nil {
		return 0, fmt.Errorf("read watches: %w", err)
	}
	cursor, err := p.Store.Cursor(ctx, p.CursorName)
	if err != nil {
		return 0, fmt.Errorf("read cursor: %w", err)
	}
	replies, next, pollErr := p.Poller.Poll(ctx, watches, cursor)
	for i, r := range replies {
		if err := p.Sink.Ingest(ctx, r); err != nil {
			if breachcast.ErrorCodeOf(err) == breachcast.EINVALID {
				// It can never be stored; holding the cursor for it would
				// stop the channel's replies for good.
				p.Logger.Warn("inbox: unusable reply skipped", "channel", p.Channel, "err", err)
				continue
			}
			// The cursor stays: the next round reads these replies again.
			return i, fmt.Errorf("store %s reply %s: %w", p.Channel, r.ExternalID, err)
		}
	}
	if next != cursor {
		if err := p.Store.SetCursor(ctx, p.CursorName, next); err != nil {
			return len(replies), fmt.Errorf("store cursor: %w", err)
		}
	}
	if pollErr != nil {
		return len(replies), fmt.Errorf("poll: %w", pollErr)
	}
	if len(replies) > 0 {
		p.Logger.Info("inbox: replies fetched", "channel", p.Channel, "replies", len(replies), "watches", len(watches))
	}
	return len(replies), nil
}
