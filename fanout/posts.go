package fanout

import (
	"context"
	"fmt"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/store"
)

// postWorker works one social channel. Posts of one update, and updates of
// one incident, go out strictly in order: each post replies to the one
// before, and the first post of a later update continues the incident's
// thread. The provider id of every post is stored the moment it is made, so
// a failure mid-thread resumes from the failed post and never repeats one.
func (e *Engine) postWorker(ctx context.Context, ch string, c ChannelConfig) {
	pub := e.publishers[ch]
	claim := func(ctx context.Context) (*store.Job, error) {
		return e.store.ClaimJob(ctx, ch, e.cfg.Owner, e.cfg.Lease)
	}
	workLoop(ctx, e, ch+" job", claim, func(j *store.Job) { e.runThread(ctx, pub, j, c) })
}

func (e *Engine) runThread(ctx context.Context, pub channels.Publisher, j *store.Job, c ChannelConfig) {
	bg := context.WithoutCancel(ctx)
	parent, root := j.Parent, j.Root
	link := e.cfg.IncidentURL(j.Incident)
	for _, p := range j.Posts {
		switch p.State {
		case "sent", "retracted":
			parent = p.ExternalID
			if root == "" {
				root = p.ExternalID
			}
			continue
		case "failed":
			e.finish(bg, j, fmt.Sprintf("post %d of %d failed earlier: %s", p.Seq, len(j.Posts), p.Error))
			return
		}
		if wait := e.limits[j.Channel].reserve(); wait > 0 {
			e.cfg.Sleep(ctx, wait)
		}
		if e.paused.Load() || ctx.Err() != nil {
			if err := e.store.ReleaseJob(bg, j, e.cfg.Owner); err != nil {
				e.log.Error("release job", "job", j.ID, "err", err)
			}
			return
		}
		sctx, cancel := context.WithTimeout(bg, e.cfg.SendTimeout)
		receipt, err := pub.Publish(sctx, &channels.Post{
			Key:    fmt.Sprintf("u%d-%s-%d", j.UpdateID, j.Channel, p.Seq),
			Text:   p.Text,
			Link:   link,
			Parent: parent,
			Root:   root,
		})
		cancel()
		if err != nil {
			delay, retry, held := e.retryDelay(err, j.Attempts, c.MaxAttempts)
			if !retry {
				e.log.Error("post failed", "channel", j.Channel, "update", j.UpdateID, "post", p.Seq, "err", err)
				if ferr := e.store.FailPost(bg, p.ID, err.Error()); ferr != nil {
					e.log.Error("record failed post", "err", ferr)
				}
				e.finish(bg, j, fmt.Sprintf("post %d of %d: %v", p.Seq, len(j.Posts), err))
				return
			}
			e.log.Warn("post will be retried", "channel", j.Channel, "update", j.UpdateID, "post", p.Seq,
				"in", delay.Round(100_000_000), "rate_limited", held, "err", err)
			if rerr := e.store.RetryJob(bg, j, e.cfg.Owner, e.cfg.Now().Add(delay), err.Error()); rerr != nil {
				e.log.Error("schedule retry", "job", j.ID, "err", rerr)
			}
			return
		}
		if err := e.store.RecordPost(bg, p.ID, receipt.ExternalID, receipt.URL, parent); err != nil {
			// The post exists but we could not say so: stop here rather than
			// risk posting it again; the lease runs out and the job is retried
			// from the ledger, which an operator can correct.
			e.log.Error("record post", "channel", j.Channel, "post", p.Seq, "external_id", receipt.ExternalID, "err", err)
			return
		}
		e.log.Info("posted", "channel", j.Channel, "update", j.UpdateID, "post", fmt.Sprintf("%d/%d", p.Seq, len(j.Posts)),
			"id", receipt.ExternalID)
		parent = receipt.ExternalID
		if root == "" {
			root = receipt.ExternalID
		}
	}
	e.finish(bg, j, "")
}

func (e *Engine) finish(ctx context.Context, j *store.Job, reason string) {
	if err := e.store.FinishJob(ctx, j, e.cfg.Owner, reason); err != nil {
		e.log.Error("finish job", "job", j.ID, "err", err)
	}
}

// statusWorker puts updates on the status page.
func (e *Engine) statusWorker(ctx context.Context) {
	claim := func(ctx context.Context) (*store.Job, error) {
		return e.store.ClaimJob(ctx, "status", e.cfg.Owner, e.cfg.Lease)
	}
	workLoop(ctx, e, "status job", claim, func(j *store.Job) {
		if err := e.store.MarkPublic(context.WithoutCancel(ctx), j, e.cfg.Owner); err != nil {
			e.log.Error("publish on status page", "update", j.UpdateID, "err", err)
			return
		}
		e.log.Info("on the status page", "incident", j.Incident, "update", j.Seq)
		if e.cfg.OnPublic != nil {
			e.cfg.OnPublic(j.UpdateID)
		}
	})
}
