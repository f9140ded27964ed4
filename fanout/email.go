package fanout

import (
	"context"
	"fmt"
	"strconv"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/store"
)

// emailWorker sends batches of one email channel: the breach notice
// (email) or the opt-in subscription stream (subscribers).
func (e *Engine) emailWorker(ctx context.Context, ch string, c ChannelConfig) {
	claim := func(ctx context.Context) (*store.Batch, error) {
		return e.store.ClaimBatch(ctx, ch, e.cfg.Owner, c.BatchSize, e.cfg.Lease)
	}
	workLoop(ctx, e, ch+" batch", claim, func(b *store.Batch) {
		if b.Recovered {
			e.log.Warn("re-sending a batch that was in flight when its worker stopped; its recipients may get this email twice",
				"batch", b.ID, "update", b.UpdateID, "recipients", len(b.Recipients), "attempt", b.Attempts)
		}
		e.sendBatch(ctx, b, c)
	})
}

// sendBatch sends one claimed batch and records the outcome. Once claimed,
// a batch is finished even if ctx is cancelled meanwhile (shutdown), so a
// clean stop leaves nothing in flight; only the kill switch, checked right
// before the send, puts it back unsent.
func (e *Engine) sendBatch(ctx context.Context, b *store.Batch, c ChannelConfig) {
	bg := context.WithoutCancel(ctx)
	// Both email streams share the provider account, and so its rate limit.
	if wait := e.limits[breachcast.ChannelEmail].reserve(); wait > 0 {
		e.cfg.Sleep(ctx, wait)
	}
	if e.paused.Load() || ctx.Err() != nil {
		// Not sent: hand it back as it was, to go out on resume or restart.
		if err := e.store.ReleaseBatch(bg, b, e.cfg.Owner); err != nil {
			e.log.Error("release batch", "batch", b.ID, "err", err)
		}
		return
	}
	batch, err := e.buildBatch(bg, b)
	if err != nil {
		e.log.Error("build email batch", "batch", b.ID, "err", err)
		if err := e.store.FailBatch(bg, b, e.cfg.Owner, err.Error()); err != nil {
			e.log.Error("fail batch", "batch", b.ID, "err", err)
		}
		return
	}
	sctx, cancel := context.WithTimeout(bg, e.cfg.SendTimeout)
	receipt, err := e.mailer.SendBatch(sctx, batch)
	cancel()
	if err == nil {
		if err := e.store.MarkBatchSent(bg, b, e.cfg.Owner, receipt.ProviderID); err != nil {
			e.log.Error("record sent batch", "batch", b.ID, "err", err)
		}
		return
	}
	delay, retry, held := e.retryDelay(err, b.Attempts, c.MaxAttempts)
	if !retry {
		e.log.Error("email batch failed", "batch", b.ID, "update", b.UpdateID, "recipients", len(b.Recipients),
			"attempts", b.Attempts, "err", err)
		if err := e.store.FailBatch(bg, b, e.cfg.Owner, err.Error()); err != nil {
			e.log.Error("fail batch", "batch", b.ID, "err", err)
		}
		return
	}
	e.log.Warn("email batch will be retried", "batch", b.ID, "in", delay.Round(100_000_000), "rate_limited", held, "err", err)
	if err := e.store.RetryBatch(bg, b, e.cfg.Owner, e.cfg.Now().Add(delay), err.Error(), held); err != nil {
		e.log.Error("schedule retry", "batch", b.ID, "err", err)
	}
}

func (e *Engine) emailTemplate(ctx context.Context, updateID int64, channel string) (EmailTemplate, error) {
	key := fmt.Sprintf("%d/%s", updateID, channel)
	if t, ok := e.emails.Load(key); ok {
		return t.(EmailTemplate), nil
	}
	content, err := e.store.Rendering(ctx, updateID, channel)
	if err != nil {
		return nil, err
	}
	t, err := e.cfg.DecodeEmail(content)
	if err != nil {
		return nil, fmt.Errorf("decode email rendering of update %d: %w", updateID, err)
	}
	e.emails.Store(key, t)
	return t, nil
}

// buildBatch turns a claimed batch into the provider request: the update's
// one rendering, and per recipient its Message-ID, thread headers and
// substitutions. custom_args carry opaque ids only.
func (e *Engine) buildBatch(ctx context.Context, b *store.Batch) (*channels.EmailBatch, error) {
	u, err := e.update(ctx, b.UpdateID)
	if err != nil {
		return nil, err
	}
	t, err := e.emailTemplate(ctx, b.UpdateID, b.Channel)
	if err != nil {
		return nil, err
	}
	subject, html, text := t.Content()
	id := e.cfg.Email
	replyTo := ""
	if id.InboundDomain != "" {
		replyTo = "reply+" + u.ReplyToken + "@" + id.InboundDomain
	}
	out := &channels.EmailBatch{
		Key:        fmt.Sprintf("u%d-b%d", b.UpdateID, b.ID),
		FromEmail:  id.FromEmail,
		FromName:   id.FromName,
		ReplyTo:    replyTo,
		Subject:    subject,
		HTML:       html,
		Text:       text,
		Categories: []string{"breachcast", "breach-notice"},
		CustomArgs: map[string]string{"bc_update": strconv.FormatInt(b.UpdateID, 10), "bc_batch": strconv.FormatInt(b.ID, 10)},
		Recipients: make([]channels.EmailRecipient, 0, len(b.Recipients)),
	}
	subscribers := b.Channel == store.ChannelSubscribers
	if subscribers {
		out.Categories = []string{"breachcast", "status-subscription"}
		out.Key = fmt.Sprintf("u%d-s%d", b.UpdateID, b.ID)
	}
	for i := range b.Recipients {
		r := &b.Recipients[i]
		er := channels.EmailRecipient{
			Email:      r.Email,
			Name:       r.Name,
			MessageID:  r.MessageID,
			CustomArgs: map[string]string{"bc_recipient": strconv.FormatInt(r.ID, 10)},
		}
		var extra map[string]string
		if subscribers {
			url, headers, err := e.cfg.Unsubscribe(r.ID)
			if err != nil {
				return nil, fmt.Errorf("unsubscribe link for subscriber %d: %w", r.ID, err)
			}
			extra = map[string]string{"unsubscribe_url": url}
			er.Headers = headers
			er.CustomArgs = map[string]string{"bc_subscriber": strconv.FormatInt(r.ID, 10)}
		}
		er.Substitutions = t.Substitutions(&r.Recipient, extra)
		if r.ThreadRef != "" {
			er.InReplyTo = r.ThreadRef
			er.References = []string{r.ThreadRef}
		}
		out.Recipients = append(out.Recipients, er)
	}
	return out, nil
}
