package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/channels/email"
	"github.com/breachcast/breachcast/channels/facebook"
	"github.com/breachcast/breachcast/channels/twitter"
	"github.com/breachcast/breachcast/fanout"
	"github.com/breachcast/breachcast/notice"
	"github.com/breachcast/breachcast/status"
	"github.com/breachcast/breachcast/store"
	"github.com/breachcast/breachcast/templates"
)

// system is the wired application: the store, the renderer and the
// configured channels. Everything concrete meets here and nowhere else.
type system struct {
	cfg      *Config
	log      *slog.Logger
	db       *store.DB
	renderer *templates.Renderer
	mailer   *email.Client
	x        *twitter.Client
	fb       *facebook.Client
}

// openStore opens just the database.
func (a *app) openStore(ctx context.Context) (*store.DB, *Config, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, nil, err
	}
	return db, cfg, nil
}

// open wires the whole system from the configuration.
func (a *app) open(ctx context.Context) (*system, error) {
	db, cfg, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	s := &system{cfg: cfg, log: a.log, db: db}
	if err := s.wireChannels(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *system) close() { s.db.Close() }

func (s *system) wireChannels() error {
	c := s.cfg
	var err error
	if c.emailEnabled() {
		s.mailer, err = email.New(email.Config{APIKey: string(c.SendGrid.APIKey), BaseURL: c.SendGrid.BaseURL,
			SandboxMode: c.SendGrid.Sandbox})
		if err != nil {
			return fmt.Errorf("email channel: %w", err)
		}
	}
	if c.xEnabled() {
		s.x, err = twitter.New(twitter.Config{BaseURL: c.X.BaseURL, ConsumerKey: string(c.X.ConsumerKey),
			ConsumerSecret: string(c.X.ConsumerSecret), AccessToken: string(c.X.AccessToken),
			AccessSecret: string(c.X.AccessSecret), UserID: c.X.UserID, Username: c.X.Username,
			ReadBudgetPerHour: c.X.ReadBudgetPerHour, PollMin: time.Duration(c.X.PollMin), PollMax: time.Duration(c.X.PollMax),
			Logger: s.log})
		if err != nil {
			return fmt.Errorf("X channel: %w", err)
		}
	}
	if c.facebookEnabled() {
		s.fb, err = facebook.New(facebook.Config{BaseURL: c.Facebook.BaseURL, AppID: c.Facebook.AppID,
			AppSecret: string(c.Facebook.AppSecret), PageID: c.Facebook.PageID, PageToken: string(c.Facebook.PageToken),
			VerifyToken: string(c.Facebook.VerifyToken), Mode: c.Facebook.Mode, RetractMode: c.Facebook.RetractMode,
			Logger: s.log})
		if err != nil {
			return fmt.Errorf("facebook channel: %w", err)
		}
	}
	return nil
}

// render returns the renderer, built on first use (it needs the company).
func (s *system) render() (*templates.Renderer, error) {
	if s.renderer != nil {
		return s.renderer, nil
	}
	if s.cfg.Company == "" {
		return nil, errors.New("company is not set: set company in the config or BREACHCAST_COMPANY (it appears in every notice)")
	}
	r, err := templates.New(templates.Options{Dir: s.cfg.Templates.Dir, Company: s.cfg.Company, PublicURL: s.cfg.PublicURL})
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	s.renderer = r
	return r, nil
}

func (s *system) publishers() map[string]channels.Publisher {
	p := map[string]channels.Publisher{}
	if s.x != nil {
		p[breachcast.ChannelTwitter] = s.x
	}
	if s.fb != nil {
		p[breachcast.ChannelFacebook] = s.fb
	}
	return p
}

func (s *system) incidentURL(slug string) string {
	return strings.TrimRight(s.cfg.PublicURL, "/") + "/incidents/" + url.PathEscape(slug)
}

// engine builds the fan-out engine for the configured channels.
func (s *system) engine(ctx context.Context, onPublic func(int64)) (*fanout.Engine, error) {
	c := s.cfg
	var mailer channels.Mailer
	var unsubscribe func(int64) (string, map[string]string, error)
	if s.mailer != nil {
		mailer = s.mailer
		secret, err := s.subscriptionSecret(ctx)
		if err != nil {
			return nil, err
		}
		unsubscribe = func(id int64) (string, map[string]string, error) {
			u, err := status.UnsubscribeLink(c.PublicURL, secret, id, time.Now(), unsubscribeTTL)
			return u.URL, u.Headers, err
		}
	}
	return fanout.New(s.db, mailer, s.publishers(), fanout.Config{
		Lease: time.Duration(c.Worker.Lease),
		Channels: map[string]fanout.ChannelConfig{
			breachcast.ChannelEmail: {Concurrency: c.SendGrid.Concurrency, Rate: c.SendGrid.Rate,
				BatchSize: c.SendGrid.BatchSize, MaxAttempts: c.Worker.MaxAttempts},
			breachcast.ChannelTwitter:  {Rate: c.X.Rate, MaxAttempts: c.Worker.MaxAttempts},
			breachcast.ChannelFacebook: {Rate: c.Facebook.Rate, MaxAttempts: c.Worker.MaxAttempts},
		},
		Email:       fanout.EmailIdentity{FromEmail: c.SendGrid.FromEmail, FromName: c.SendGrid.FromName, InboundDomain: c.SendGrid.InboundDomain},
		IncidentURL: s.incidentURL,
		DecodeEmail: decodeEmail,
		OnPublic:    onPublic,
		Unsubscribe: unsubscribe,
		Logger:      s.log,
	})
}

// emailTemplate adapts a stored rendering to the fan-out engine.
type emailTemplate struct{ r *templates.Rendering }

func (t emailTemplate) Content() (string, string, string) {
	return t.r.Email.Subject, t.r.Email.HTML, t.r.Email.Text
}

func (t emailTemplate) Substitutions(r *breachcast.Recipient, extra map[string]string) map[string]string {
	return t.r.Substitutions(r, extra)
}

func decodeEmail(b []byte) (fanout.EmailTemplate, error) {
	var r templates.Rendering
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return emailTemplate{&r}, nil
}

// prepared is a notice parsed, checked against the configuration and
// rendered for the update number it will get.
type prepared struct {
	notice    *breachcast.Notice
	previous  *breachcast.Update // nil for the first update of an incident
	seq       int
	rendering *templates.Rendering
	pub       *store.Publication
}

// readNotice reads and parses a notice file.
func readNotice(path string) (*breachcast.Notice, []byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("notice: %w", err)
	}
	if fi.IsDir() {
		return nil, nil, fmt.Errorf("notice: %s is a directory, not a markdown file", path)
	}
	if fi.Size() > notice.MaxBody*4 {
		// Refuse before reading a huge file into memory; notice.Parse says
		// the same for anything it reads.
		return nil, nil, fmt.Errorf("%s: file is %.1f MB; a notice body may be at most %d KiB", filepath.Base(path),
			float64(fi.Size())/1e6, notice.MaxBody>>10)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("notice: %w", err)
	}
	n, err := notice.Parse(filepath.Base(path), src)
	if err != nil {
		return nil, nil, err
	}
	return n, src, nil
}

// prepare renders a notice for publishing.
func (s *system) prepare(ctx context.Context, n *breachcast.Notice, src []byte, actor string) (*prepared, error) {
	if err := s.checkChannels(n); err != nil {
		return nil, err
	}
	r, err := s.render()
	if err != nil {
		return nil, err
	}
	p := &prepared{notice: n, seq: 1}
	prev, err := s.db.LatestUpdate(ctx, n.Incident)
	switch {
	case err == nil:
		p.previous, p.seq = prev, prev.Seq+1
	case breachcast.ErrorCodeOf(err) != breachcast.ENOTFOUND:
		return nil, err
	}
	p.rendering, err = r.Render(n, templates.Context{Seq: p.seq, PublishedAt: time.Now(), IncidentURL: s.incidentURL(n.Incident),
		Previous: p.previous})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Source, err)
	}
	sum := sha256.Sum256(src)
	p.pub = &store.Publication{Notice: n, SourceHash: hex.EncodeToString(sum[:]), Actor: actor, Seq: p.seq,
		Posts: map[string][]string{}, MessageIDDomain: s.messageIDDomain()}
	if n.HasChannel(breachcast.ChannelEmail) {
		only := *p.rendering
		only.Twitter, only.Facebook, only.Status = nil, "", ""
		if p.pub.Email, err = json.Marshal(&only); err != nil {
			return nil, fmt.Errorf("encode email rendering: %w", err)
		}
	}
	if n.HasChannel(breachcast.ChannelStatus) && s.mailer != nil {
		// Opt-in status subscribers get the update by email too, with an
		// unsubscribe footer; the store sends it only if there are any.
		sub := *n
		sub.Channels = []string{breachcast.ChannelEmail}
		sr, err := r.Render(&sub, templates.Context{Seq: p.seq, PublishedAt: time.Now(), IncidentURL: s.incidentURL(n.Incident),
			Previous: p.previous, Subscription: true})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Source, err)
		}
		if p.pub.SubscriberEmail, err = json.Marshal(sr); err != nil {
			return nil, fmt.Errorf("encode subscriber rendering: %w", err)
		}
	}
	if n.HasChannel(breachcast.ChannelTwitter) {
		p.pub.Posts[breachcast.ChannelTwitter] = p.rendering.Twitter
	}
	if n.HasChannel(breachcast.ChannelFacebook) {
		p.pub.Posts[breachcast.ChannelFacebook] = []string{p.rendering.Facebook}
	}
	return p, nil
}

// checkChannels refuses a notice for a channel that is not set up, naming
// the settings it needs.
func (s *system) checkChannels(n *breachcast.Notice) error {
	var missing []string
	for _, ch := range n.Channels {
		switch {
		case ch == breachcast.ChannelEmail && s.mailer == nil:
			missing = append(missing, "email (set sendgrid.api_key / BREACHCAST_SENDGRID_API_KEY)")
		case ch == breachcast.ChannelEmail && s.cfg.SendGrid.FromEmail == "":
			missing = append(missing, "email (set sendgrid.from_email / BREACHCAST_SENDGRID_FROM_EMAIL)")
		case ch == breachcast.ChannelTwitter && s.x == nil:
			missing = append(missing, "twitter (set the x.* credentials / BREACHCAST_X_CONSUMER_KEY ...)")
		case ch == breachcast.ChannelFacebook && s.fb == nil:
			missing = append(missing, "facebook (set facebook.page_token, app_id, app_secret, page_id)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: channels: not configured: %s; configure them or remove them from the notice's channels",
			n.Source, strings.Join(missing, "; "))
	}
	return nil
}

func (s *system) messageIDDomain() string {
	if i := strings.LastIndexByte(s.cfg.SendGrid.FromEmail, '@'); i >= 0 {
		return s.cfg.SendGrid.FromEmail[i+1:]
	}
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "breachcast.invalid"
}

// unsubscribeTTL is how long the unsubscribe link of a subscriber's email
// works (the status page's own default).
const unsubscribeTTL = 365 * 24 * time.Hour
