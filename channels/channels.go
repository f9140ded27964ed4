// Package channels holds the one contract every provider adapter meets: how a
// rendered notice goes out (Mailer for per-recipient email, Publisher for
// posts), how replies come back (Receiver for pushed webhooks, Poller for
// fetched ones, both feeding a Sink), and one error type that tells the
// fan-out engine whether and when to retry.
//
// Adapters live in sub-packages (channels/email, channels/twitter,
// channels/facebook); the fan-out engine and the server only see these
// interfaces.
package channels

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/breachcast/breachcast"
)

// EmailBatch is one provider request's worth of the same email to many
// recipients. Subject, HTML and Text may hold substitution tokens that the
// provider replaces per recipient from EmailRecipient.Substitutions.
type EmailBatch struct {
	Key        string // stable id of the batch ("u12-b34"), for logs and provider categories
	FromEmail  string
	FromName   string
	ReplyTo    string // per-update inbound address, reply+TOKEN@inbound-domain
	Subject    string
	HTML       string
	Text       string
	Categories []string
	CustomArgs map[string]string // batch-wide opaque ids only, never personal data
	Recipients []EmailRecipient
}

// EmailRecipient is one personalization of an EmailBatch.
type EmailRecipient struct {
	Email         string
	Name          string
	MessageID     string            // "<...@domain>", unique per recipient and update
	InReplyTo     string            // Message-ID of this recipient's first notice of the incident, if any
	References    []string          // Message-IDs of earlier notices of the incident
	Substitutions map[string]string // token -> value, see templates.Tokens
	CustomArgs    map[string]string // opaque ids only (delivery id), never personal data
	Headers       map[string]string // further headers (List-Unsubscribe, ...)
}

// BatchReceipt is what the provider said when it accepted a batch.
type BatchReceipt struct {
	ProviderID string // SendGrid's X-Message-Id
}

// Mailer sends an email batch. A batch is accepted or refused as a whole.
type Mailer interface {
	SendBatch(ctx context.Context, b *EmailBatch) (*BatchReceipt, error)
}

// Post is one social post: one element of an X thread, or a Facebook Page post
// or comment.
type Post struct {
	Key    string // stable id ("u12-twitter-3"), for logs
	Text   string
	Link   string // status page link, when the channel attaches it separately
	Parent string // provider id this post replies to or continues; "" for a new top-level post
	Root   string // provider id of the incident's first post on this channel; "" for the first
}

// Receipt identifies a post made at the provider.
type Receipt struct {
	ExternalID string
	URL        string
}

// Publisher makes posts on one social channel.
type Publisher interface {
	Name() string
	Publish(ctx context.Context, p *Post) (*Receipt, error)
}

// Retracter takes a post down (deletes or hides it). Publishers that can
// retract implement it.
type Retracter interface {
	Retract(ctx context.Context, externalID string) error
}

// Sink stores replies. It is idempotent per (channel, external id): ingesting
// the same reply twice stores it once; edits and removals update the copy.
type Sink interface {
	Ingest(ctx context.Context, r *breachcast.Reply) error
}

// Receiver is a channel whose replies are pushed to us by webhook.
type Receiver interface {
	Webhook(sink Sink) http.Handler
}

// Watch names one published update whose replies a Poller should fetch.
type Watch struct {
	IncidentID int64
	UpdateID   int64
	Root       string   // provider id of the incident's first post (X conversation id)
	Posts      []string // provider ids of this update's posts
}

// Poller is a channel whose replies must be fetched. The cursor is opaque to
// the caller, who stores it and passes it back so a restart neither misses
// nor re-reads replies.
type Poller interface {
	Poll(ctx context.Context, watch []Watch, cursor string) (replies []*breachcast.Reply, next string, err error)
}

// Check is one line of a readiness report.
type Check struct {
	Channel string
	Name    string // what was checked ("api key", "write access", "token expiry")
	OK      bool
	Detail  string // plain words: what is wrong and what to do, or what was found
}

// Checker runs a live readiness check against the provider.
type Checker interface {
	Check(ctx context.Context) []Check
}

// Error is a provider failure. It says which channel and operation failed,
// what the provider answered, and whether and when to try again.
type Error struct {
	Channel    string
	Op         string // "mail/send", "POST /2/tweets", ...
	Status     int    // HTTP status, 0 when no response arrived
	Code       string // provider error code, if any
	Message    string // provider's words, made readable
	Permanent  bool   // retrying the same request cannot succeed
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	s := e.Channel + ": " + e.Op
	if e.Status != 0 {
		s += ": HTTP " + strconv.Itoa(e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	} else if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.RetryAfter > 0 {
		s += " (retry after " + e.RetryAfter.Round(time.Second).String() + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }
