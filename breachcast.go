// Package breachcast holds the domain of the breach broadcaster: incidents and
// their numbered updates, the notices they are written from, the customers who
// receive them, the delivery ledger, and the replies that come back.
//
// It has no dependencies beyond the standard library. Adapters live in their own
// packages (store, templates, channels/..., status) and meet only in
// cmd/breachcast.
package breachcast

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Status is the state of an incident as announced by an update.
type Status string

// The four statuses of an incident, in the order an incident usually moves
// through them (Atlassian Statuspage uses the same words).
const (
	Investigating Status = "investigating"
	Identified    Status = "identified"
	Monitoring    Status = "monitoring"
	Resolved      Status = "resolved"
)

// Statuses lists every valid status in lifecycle order.
var Statuses = []Status{Investigating, Identified, Monitoring, Resolved}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// Title is the status as a human headline word ("Investigating").
func (s Status) Title() string {
	if s == "" {
		return ""
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

// Severity is the impact of an incident. The values are Statuspage's impact
// levels so the compatible API can pass them through unchanged.
type Severity string

// Severities, from least to most severe.
const (
	SeverityNone     Severity = "none"
	SeverityMinor    Severity = "minor"
	SeverityMajor    Severity = "major"
	SeverityCritical Severity = "critical"
)

// Severities lists every valid severity, least severe first.
var Severities = []Severity{SeverityNone, SeverityMinor, SeverityMajor, SeverityCritical}

// Valid reports whether s is one of Severities.
func (s Severity) Valid() bool { return slices.Contains(Severities, s) }

// The channels a notice can go out on.
const (
	ChannelEmail    = "email"
	ChannelTwitter  = "twitter"
	ChannelFacebook = "facebook"
	ChannelStatus   = "status"
)

// Channels lists every channel name in the order they are shown.
var Channels = []string{ChannelEmail, ChannelTwitter, ChannelFacebook, ChannelStatus}

// AudienceAll is the audience that reaches every imported recipient.
const AudienceAll = "all"

// Notice is one markdown file written by the comms lead, parsed and
// validated but not yet published.
type Notice struct {
	Incident string   // slug shared by every update of one incident
	Title    string   // headline
	Status   Status   // investigating | identified | monitoring | resolved
	Severity Severity // none | minor | major | critical
	Audience string   // AudienceAll or a segment name
	Channels []string // subset of Channels, in canonical order
	Summary  string   // optional short text for social posts
	Body     string   // markdown body, front matter removed
	Source   string   // file name the notice came from, for messages
}

// HasChannel reports whether the notice goes out on channel c.
func (n *Notice) HasChannel(c string) bool { return slices.Contains(n.Channels, c) }

// Incident is the story that a sequence of updates tells.
type Incident struct {
	ID         int64
	Slug       string
	Title      string // title of the latest update
	Status     Status // status of the latest update
	Severity   Severity
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ResolvedAt time.Time // zero while the incident is open
	Updates    []*Update // filled by queries that return a timeline, oldest first
}

// Open reports whether the incident is not yet resolved.
func (i *Incident) Open() bool { return i.Status != Resolved }

// Update is one published notice of an incident. Updates are immutable and
// numbered from 1 within their incident.
type Update struct {
	ID          int64
	IncidentID  int64
	Incident    string // slug
	Seq         int    // 1, 2, 3... within the incident
	Title       string
	Status      Status
	Severity    Severity
	Audience    string
	Channels    []string
	Summary     string
	Body        string // markdown
	ReplyToken  string // opaque token in the reply+TOKEN@ inbound address
	Source      string
	PublishedAt time.Time
	PublishedBy string
}

// Notice returns the notice the update was published from.
func (u *Update) Notice() *Notice {
	return &Notice{
		Incident: u.Incident, Title: u.Title, Status: u.Status, Severity: u.Severity,
		Audience: u.Audience, Channels: slices.Clone(u.Channels), Summary: u.Summary,
		Body: u.Body, Source: u.Source,
	}
}

// Recipient is an affected customer, imported from CSV.
type Recipient struct {
	ID     int64
	Email  string
	Name   string
	Locale string
	Attrs  map[string]string // custom CSV columns, for templates
}

// DeliveryState is where one (update, channel, recipient) entry of the
// delivery ledger stands.
type DeliveryState string

// Delivery states. Inflight means handed to a worker whose send has not been
// confirmed; after a crash those are the only ones that may be sent twice.
const (
	Queued   DeliveryState = "queued"
	Inflight DeliveryState = "inflight"
	Sent     DeliveryState = "sent"
	Failed   DeliveryState = "failed"
)

// Subscriber is an opt-in subscription to status page updates by email,
// kept apart from the affected recipients who get the breach notice itself.
type Subscriber struct {
	ID          int64
	Email       string // validated and lower-cased
	Incident    string // incident slug, or "" for every incident
	CreatedAt   time.Time
	ConfirmedAt time.Time // zero until the address owner confirms (double opt-in)
}

// Confirmed reports whether the subscriber completed the double opt-in.
func (s *Subscriber) Confirmed() bool { return !s.ConfirmedAt.IsZero() }

// ReplyAction says what happened to a reply at the provider.
type ReplyAction string

// Reply actions. Providers report edits and removals of comments; the stored
// copy follows them.
const (
	ReplyAdded   ReplyAction = "add"
	ReplyEdited  ReplyAction = "edited"
	ReplyRemoved ReplyAction = "remove"
	ReplyHidden  ReplyAction = "hide"
	ReplyShown   ReplyAction = "unhide"
)

// Reply is an answer from a customer on any channel.
type Reply struct {
	Channel    string      // email | twitter | facebook
	ExternalID string      // provider id of the reply; unique per channel
	Action     ReplyAction // add unless the provider reports an edit or removal
	AuthorID   string
	AuthorName string
	Text       string
	InReplyTo  string    // provider id of the post or comment this answers
	RootID     string    // provider id of our post the conversation hangs under
	CreatedAt  time.Time // as reported by the provider
	EventTime  time.Time // when the provider says the action happened; older edits never overwrite newer ones
	Raw        []byte    // provider payload, kept for support

	// Filled by whoever matches the reply to our posts (the channel when it
	// knows, else the sink).
	IncidentID int64
	UpdateID   int64
}

// ErrorCode classifies an Error for callers and for the HTTP layer.
type ErrorCode string

// Error codes.
const (
	EINVALID      ErrorCode = "invalid"
	ENOTFOUND     ErrorCode = "not_found"
	ECONFLICT     ErrorCode = "conflict"
	EUNAUTHORIZED ErrorCode = "unauthorized"
	EINTERNAL     ErrorCode = "internal"
)

// Error is an application error with a code and a message fit to show a user.
type Error struct {
	Code    ErrorCode
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCodeOf returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the message of an
// *Error, or "internal error" for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
