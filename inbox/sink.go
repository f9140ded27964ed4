// Package inbox collects customers' replies from every channel: one Sink
// that webhooks (Facebook comments, inbound email) and pollers (X) hand
// replies to, and RunPoller, the loop that fetches the replies of channels
// that must be polled and stores them with their cursor so that a restart
// neither misses nor re-reads one.
//
// Replies are bounded and cleaned before they are stored (they come from
// the internet), stored idempotently per (channel, external id), and
// announced through an optional hook only when the stored copy changed.
package inbox

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Bounds on what one reply may bring. Longer texts are cut (a customer's
// words are never refused for length); a longer raw payload is not kept.
const (
	MaxTextBytes   = 64 << 10  // reply text
	MaxRawBytes    = 256 << 10 // provider payload kept for support
	MaxIDBytes     = 512       // provider ids (an email Message-ID is the longest)
	MaxAuthorBytes = 512       // author id and display name
)

// Store is what the Sink needs: store.(*DB) implements it. IngestReply is
// idempotent per (channel, external id), reports whether the stored copy
// changed, and sets the incident and update the reply was filed under.
type Store interface {
	IngestReply(ctx context.Context, r *breachcast.Reply) (changed bool, err error)
}

// Sink is the inbox: a channels.Sink for every channel. The zero value is
// not usable; set Store.
type Sink struct {
	Store Store

	// OnReply, when set, is called after a reply was stored or its stored
	// copy changed (an edit, a removal), with the incident and update it was
	// filed under; never for a replay that changed nothing. It runs on the
	// caller's goroutine (a webhook request, the poller) and should return
	// quickly.
	OnReply func(*breachcast.Reply)

	// Logger receives a debug line per reply, never its text; default
	// slog.Default().
	Logger *slog.Logger
}

var _ channels.Sink = (*Sink)(nil)

// Ingest checks and stores r. Errors with code invalid say what is wrong
// with the reply (no channel, no id, an unknown action); others are the
// store's. r itself is not modified, except that the incident and update
// it was filed under are set.
func (s *Sink) Ingest(ctx context.Context, r *breachcast.Reply) error {
	if s == nil || s.Store == nil {
		return fmt.Errorf("inbox: sink without a store")
	}
	c, err := clean(r)
	if err != nil {
		return err
	}
	changed, err := s.Store.IngestReply(ctx, c)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	r.IncidentID, r.UpdateID = c.IncidentID, c.UpdateID
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Debug("inbox: reply", "channel", c.Channel, "external_id", c.ExternalID, "action", string(c.Action),
		"incident_id", c.IncidentID, "update_id", c.UpdateID, "changed", changed)
	if changed && s.OnReply != nil {
		s.OnReply(c)
	}
	return nil
}

// inboundChannels are the channels replies come from.
var inboundChannels = map[string]bool{
	breachcast.ChannelEmail: true, breachcast.ChannelTwitter: true, breachcast.ChannelFacebook: true,
}

var actions = map[breachcast.ReplyAction]bool{
	breachcast.ReplyAdded: true, breachcast.ReplyEdited: true, breachcast.ReplyRemoved: true,
	breachcast.ReplyHidden: true, breachcast.ReplyShown: true,
}

// clean returns a bounded copy of r fit to store, or an invalid-input error.
func clean(r *breachcast.Reply) (*breachcast.Reply, error) {
	if r == nil {
		return nil, breachcast.Errorf(breachcast.EINVALID, "inbox: no reply")
	}
	if !inboundChannels[r.Channel] {
		return nil, breachcast.Errorf(breachcast.EINVALID, "inbox: reply from unknown channel %q", cut(r.Channel, 32))
	}
	if r.ExternalID == "" {
		return nil, breachcast.Errorf(breachcast.EINVALID, "inbox: %s reply without an id", r.Channel)
	}
	if len(r.ExternalID) > MaxIDBytes || !printable(r.ExternalID) {
		return nil, breachcast.Errorf(breachcast.EINVALID, "inbox: %s reply id is not a provider id (%d bytes)", r.Channel, len(r.ExternalID))
	}
	c := *r
	if c.Action == "" {
		c.Action = breachcast.ReplyAdded
	}
	if !actions[c.Action] {
		return nil, breachcast.Errorf(breachcast.EINVALID, "inbox: %s reply %s: unknown action %q", c.Channel, c.ExternalID, cut(string(c.Action), 32))
	}
	c.Text = cut(strings.ToValidUTF8(c.Text, "\uFFFD"), MaxTextBytes)
	c.AuthorID = cut(strings.ToValidUTF8(c.AuthorID, "\uFFFD"), MaxAuthorBytes)
	c.AuthorName = cut(strings.ToValidUTF8(c.AuthorName, "\uFFFD"), MaxAuthorBytes)
	for _, id := range []*string{&c.InReplyTo, &c.RootID} {
		if len(*id) > MaxIDBytes || !printable(*id) {
			*id = "" // not an id we could have made or match
		}
	}
	if len(c.Raw) > MaxRawBytes {
		c.Raw = nil
	}
	return &c, nil
}

// cut shortens s to at most n bytes at a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// printable reports whether s is UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return false
		}
	}
	return true
}
