// Package status is the public status page: server-rendered HTML that works
// without JavaScript, a live channel (websocket, Server-Sent Events and
// polling) that pushes every newly published update to open pages, Atom and
// RSS feeds, an Atlassian Statuspage-compatible JSON API, and email
// subscriptions with double opt-in and one-click unsubscribe.
//
// Everything public is rendered once per publish into an immutable snapshot
// (with a pre-gzipped copy of every body) that is swapped in atomically and
// served from memory, so a crowd costs no database reads and no rendering.
// Export writes the same site as static files for hosting away from the
// breached infrastructure.
//
// Routes, below PublicURL's path:
//
//	GET  /  /history/  /incidents/{slug}/    pages (also without the trailing slash)
//	GET  /history.atom  /history.rss         feeds
//	GET  /api/v2/{summary,status,components,incidents,incidents/unresolved}.json
//	GET  /static/{name}.{hash}.{css,js,svg}  assets, cacheable for a year
//	GET  /live?since=ID                      websocket: catch-up, then every new update
//	GET  /live/sse  (Last-Event-ID or ?since=ID)  the same as Server-Sent Events
//	GET  /live/since?id=ID                   the same, polled
//	POST /subscribe, GET|POST /subscribe/confirm, GET|POST /unsubscribe
package status

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Source is where the status page reads what has been published.
type Source interface {
	// PublicIncidents returns every incident with at least one update
	// published on the status channel, most recently updated first; each
	// Incident.Updates holds only its status-channel updates, oldest first.
	PublicIncidents(ctx context.Context) ([]*breachcast.Incident, error)
	// PublicVersion changes whenever PublicIncidents would return something
	// new (for example the id of the newest public update). It must be cheap:
	// it is polled a few times a second.
	PublicVersion(ctx context.Context) (int64, error)
}

// Subscribers stores email subscriptions. IDs must never be reused (a
// deleted subscriber's old links must not unsubscribe a new one), so a SQL
// implementation uses an AUTOINCREMENT key.
type Subscribers interface {
	// AddSubscriber records an unconfirmed subscription of email (already
	// validated and lower-cased) to incident ("" for all). Adding an
	// (email, incident) pair that exists returns the existing subscriber
	// unchanged, confirmed or not.
	AddSubscriber(ctx context.Context, email, incident string, now time.Time) (*breachcast.Subscriber, error)
	// Subscriber returns the subscriber with id, or an error with code
	// breachcast.ENOTFOUND.
	Subscriber(ctx context.Context, id int64) (*breachcast.Subscriber, error)
	// ConfirmSubscriber marks the subscriber confirmed at now. Confirming
	// twice keeps the first time; an unknown id is breachcast.ENOTFOUND.
	ConfirmSubscriber(ctx context.Context, id int64, now time.Time) error
	// Unsubscribe deletes the subscriber. Deleting an unknown id is not an
	// error, so a repeated one-click unsubscribe succeeds.
	Unsubscribe(ctx context.Context, id int64) error
	// ConfirmedSubscribers lists the confirmed subscribers who follow
	// incident: those subscribed to it and those subscribed to everything.
	ConfirmedSubscribers(ctx context.Context, incident string) ([]*breachcast.Subscriber, error)
}

// RenderFunc renders the body of a notice as a safe HTML fragment (the
// templates package's Renderer.StatusHTML). Its output is trusted: it must
// already be sanitised.
type RenderFunc func(n *breachcast.Notice) (string, error)

// Config configures a Server. Only PublicURL is required; Secret is required
// when subscriptions are enabled.
type Config struct {
	// PublicURL is the absolute URL the page is served at, such as
	// https://status.example.com or https://example.com/status/. Links,
	// feeds and the websocket origin check are derived from it; a path
	// prefix is stripped by the Handler.
	PublicURL string
	// Company names the organisation ("Acme"); default "breachcast".
	Company string
	// PageName is the page title; default Company + " Status".
	PageName string
	// Components are the systems shown on the page and in the API; default
	// one component named after Company. An open incident marks every
	// component according to its severity.
	Components []string
	// MaxConnections caps live viewers (websocket and SSE) in total;
	// beyond it the answer is 503. Default 20000.
	MaxConnections int
	// MaxPerAddress caps live viewers per client address; beyond it the
	// answer is 429. Default 32.
	MaxPerAddress int
	// ClientAddr names the client a request comes from, for the
	// per-address limits. Default: the IP of the TCP peer. Behind a trusted
	// reverse proxy or CDN, return the address it reports instead.
	ClientAddr func(r *http.Request) string
	// AllowedOrigins are further origins ("https://www.example.com") whose
	// pages may open the websocket and post the forms.
	AllowedOrigins []string
	// Secret signs subscription tokens; at least 32 bytes.
	Secret []byte
	// TimeZone shows times on the pages; default UTC.
	TimeZone *time.Location
	// Now is the clock; default time.Now.
	Now func() time.Time
	// PollInterval is how often Run polls Source.PublicVersion; default 250ms.
	PollInterval time.Duration

	// MailFrom and MailFromName are the sender of confirmation emails.
	MailFrom     string
	MailFromName string
	// ConfirmTTL is how long a confirmation link works; default 48h.
	ConfirmTTL time.Duration
	// UnsubscribeTTL is how long an unsubscribe link works; default one year.
	UnsubscribeTTL time.Duration
	// SubscribeBurst and SubscribeEvery shape the per-address token bucket
	// of the subscribe form: SubscribeBurst requests at once, then one per
	// SubscribeEvery. Defaults 5 and one minute.
	SubscribeBurst int
	SubscribeEvery time.Duration
	// MaxVisitors bounds the rate limiter's memory (addresses tracked);
	// when full, new addresses are answered 429. Default 10000.
	MaxVisitors int

	// QueueSize is the per-viewer send queue; a viewer whose queue is full
	// is dropped (it reconnects and catches up). Default 8.
	QueueSize int
	// WriteTimeout bounds one write to a viewer; default 2s.
	WriteTimeout time.Duration
	// PingInterval is how often idle viewers are pinged; default 30s. A
	// viewer silent for twice that is dropped.
	PingInterval time.Duration
	// Shards is the number of writer goroutines for live viewers; default 16.
	Shards int
}

func (c *Config) setDefaults() error {
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("status: public URL %q must be an absolute http or https URL", c.PublicURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("status: public URL %q must not have a query or fragment", c.PublicURL)
	}
	if c.Company == "" {
		c.Company = "breachcast"
	}
	if c.PageName == "" {
		c.PageName = c.Company + " Status"
	}
	if len(c.Components) == 0 {
		c.Components = []string{c.Company}
	}
	seen := map[string]bool{}
	for _, n := range c.Components {
		if strings.TrimSpace(n) == "" {
			return errors.New("status: a component name is empty")
		}
		if seen[n] {
			return fmt.Errorf("status: component %q is listed twice", n)
		}
		seen[n] = true
	}
	for _, o := range c.AllowedOrigins {
		ou, err := url.Parse(o)
		if err != nil || ou.Scheme == "" || ou.Host == "" || (ou.Path != "" && ou.Path != "/") {
			return fmt.Errorf("status: allowed origin %q must look like https://host[:port]", o)
		}
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.MaxConnections, 20000)
	def(&c.MaxPerAddress, 32)
	def(&c.SubscribeBurst, 5)
	def(&c.MaxVisitors, 10000)
	def(&c.QueueSize, 8)
	def(&c.Shards, 16)
	defd(&c.PollInterval, 250*time.Millisecond)
	defd(&c.ConfirmTTL, 48*time.Hour)
	defd(&c.UnsubscribeTTL, 365*24*time.Hour)
	defd(&c.SubscribeEvery, time.Minute)
	defd(&c.WriteTimeout, 2*time.Second)
	defd(&c.PingInterval, 30*time.Second)
	if c.TimeZone == nil {
		c.TimeZone = time.UTC
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClientAddr == nil {
		c.ClientAddr = peerAddr
	}
	return nil
}

// Server serves the status page. Create it with New, mount Handler, and run
// Run (or call Refresh after each in-process publish).
type Server struct {
	cfg    Config
	src    Source
	subs   Subscribers
	mail   channels.Mailer
	render RenderFunc
	log    *slog.Logger

	origin  string // scheme://host of PublicURL
	host    string // host of PublicURL
	base    string // path prefix of PublicURL without the trailing slash ("" at the root)
	started time.Time

	pages   *pages
	assets  *assets
	hub     *hub
	limiter *limiter
	origins map[string]bool // allowed origins, PublicURL's included

	snap    atomic.Pointer[snapshot]
	buildMu sync.Mutex
	live    *snapshot               // last state broadcast to live viewers; guarded by buildMu
	bodies  map[int64]template.HTML // rendered update bodies; updates are immutable
	bodyKey map[int64]string        // body text each cached fragment was rendered from

	handler http.Handler
}

// New checks cfg and returns a Server. subs and mail may both be nil to turn
// subscriptions off; render may be nil, in which case update bodies are shown
// as escaped text. The first snapshot is loaded by Run or Refresh; until then
// pages answer 503.
func New(cfg Config, src Source, subs Subscribers, mail channels.Mailer, render RenderFunc, logger *slog.Logger) (*Server, error) {
	if src == nil {
		return nil, errors.New("status: a source is required")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if (subs == nil) != (mail == nil) {
		return nil, errors.New("status: subscriptions need both a subscriber store and a mailer")
	}
	if subs != nil {
		if len(cfg.Secret) < 32 {
			return nil, errors.New("status: subscriptions need a secret of at least 32 bytes")
		}
		if cfg.MailFrom == "" {
			return nil, errors.New("status: subscriptions need a sender address (MailFrom)")
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, _ := url.Parse(cfg.PublicURL)
	s := &Server{
		cfg: cfg, src: src, subs: subs, mail: mail, render: render, log: logger,
		origin:  u.Scheme + "://" + u.Host,
		host:    u.Host,
		base:    strings.TrimSuffix(u.Path, "/"),
		started: cfg.Now().UTC().Truncate(time.Second),
		bodies:  map[int64]template.HTML{},
		bodyKey: map[int64]string{},
		origins: map[string]bool{},
	}
	s.origins[strings.ToLower(s.origin)] = true
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	var err error
	if s.assets, err = loadAssets(s.base); err != nil {
		return nil, err
	}
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	s.hub = newHub(hubConfig{
		maxConns: cfg.MaxConnections, maxPerAddr: cfg.MaxPerAddress, queue: cfg.QueueSize,
		writeTimeout: cfg.WriteTimeout, ping: cfg.PingInterval, shards: cfg.Shards, log: logger,
	})
	s.limiter = newLimiter(cfg.SubscribeBurst, cfg.SubscribeEvery, cfg.MaxVisitors)
	s.handler = s.routes()
	return s, nil
}

// Run loads the page, then polls Source.PublicVersion every PollInterval and
// re-renders and pushes new updates whenever it changes, until ctx ends. A
// failing source is logged and the last good snapshot stays served. Run also
// keeps the live viewers pinged. It returns ctx's error.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	failing := false
	for {
		err := s.refreshIfChanged(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Error("status: refresh failed; serving the last snapshot", "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("status: refresh recovered")
			failing = false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Server) refreshIfChanged(ctx context.Context) error {
	v, err := s.src.PublicVersion(ctx)
	if err != nil {
		return fmt.Errorf("public version: %w", err)
	}
	if cur := s.snap.Load(); cur != nil && cur.version == v {
		return nil
	}
	return s.rebuild(ctx, v)
}

// Close disconnects every live viewer and stops the hub's writers. The
// Handler must not be used afterwards.
func (s *Server) Close() error {
	s.hub.stop()
	return nil
}

// Refresh re-reads the source now, re-renders the site and pushes any new
// updates to live viewers. Call it right after an in-process publish; Run
// catches publishes from other processes.
func (s *Server) Refresh(ctx context.Context) error {
	v, err := s.src.PublicVersion(ctx)
	if err != nil {
		return fmt.Errorf("status: public version: %w", err)
	}
	return s.rebuild(ctx, v)
}

// rebuild renders a snapshot at version v, swaps it in and broadcasts the
// incidents that gained updates. A snapshot already at v is kept: an
// in-process publish calls Refresh while Run's poll may see the same new
// version, and the site must be rendered once per publish, not twice.
func (s *Server) rebuild(ctx context.Context, v int64) error {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	if cur := s.snap.Load(); cur != nil && cur.version == v {
		return nil
	}
	incs, err := s.src.PublicIncidents(ctx)
	if err != nil {
		return fmt.Errorf("status: public incidents: %w", err)
	}
	// Live viewers first: the pages, feeds and API (and their gzip) are
	// rendered after the broadcast, so they do not delay it.
	next, err := s.buildLive(incs, v, renderOpts{})
	if err != nil {
		return err
	}
	msgs, err := s.newMessages(s.live, next)
	if err != nil {
		return err
	}
	s.hub.publish(next.msgs, msgs)
	s.live = next
	if err := s.buildPages(next, renderOpts{}); err != nil {
		return err
	}
	s.snap.Store(next)
	return nil
}

// Viewers returns the number of live viewers (websocket and Server-Sent
// Events) connected now.
func (s *Server) Viewers() int { return s.hub.count() }

// current returns the served snapshot, or nil before the first load.
func (s *Server) current() *snapshot { return s.snap.Load() }
