package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/inbox"
	"github.com/breachcast/breachcast/status"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the delivery workers, the live status page and the webhooks",
		usage:   "",
		help: `
Runs everything that must keep running during an incident:
  - the fan-out workers, which pick up every unfinished delivery (after a crash,
    a pause or a publish --detach) and deliver it;
  - the public status page on http.addr (BREACHCAST_HTTP_ADDR): pages, live
    updates, feeds, the Statuspage-compatible API and subscriptions;
  - the Facebook webhook at /webhooks/facebook (when facebook.verify_token is
    set; otherwise Page comments are polled) and the collection of X replies;
  - /healthz for load balancers.
Several serve processes may share one database: work is leased, never done twice.
Stop with Ctrl-C or SIGTERM: sends under way finish and are recorded.`,
		run: func(ctx context.Context, a *app, args []string) error {
			if pos, err := parse(flags("serve"), args); err != nil {
				return err
			} else if len(pos) > 0 {
				return usagef("unexpected argument %q", pos[0])
			}
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			ln, err := net.Listen("tcp", s.cfg.HTTP.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s (http.addr): %w", s.cfg.HTTP.Addr, err)
			}
			srv, err := s.start(ctx, ln, serveOptions{})
			if err != nil {
				ln.Close()
				return err
			}
			fmt.Fprintf(a.stdout, "breachcast serving the status page at %s (listening on %s)\n", s.cfg.PublicURL, ln.Addr())
			return srv.wait()
		},
	}
}

// serveOptions adjust a server for the demo.
type serveOptions struct {
	onReply   func(*breachcast.Reply)
	onPublic  func(updateID int64)
	pollEvery func(foundNew bool) time.Duration // overrides the X poll interval
}

// server is a running serve: the engine, the status page, the webhooks and
// the pollers.
type server struct {
	status *status.Server
	http   *http.Server
	done   chan struct{}
	err    error
}

func (s *system) statusServer(ctx context.Context) (*status.Server, error) {
	c := s.cfg
	secret := []byte(c.Status.SecretKey)
	if len(secret) == 0 {
		var err error
		if secret, err = s.db.SigningKey(ctx, "status"); err != nil {
			return nil, err
		}
	} else if len(secret) < 32 {
		return nil, errors.New("status.secret_key: must be at least 32 characters")
	}
	loc, err := time.LoadLocation(c.Status.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("status.time_zone: %w", err)
	}
	var mailer channels.Mailer
	var subs status.Subscribers
	if s.mailer != nil && c.SendGrid.FromEmail != "" {
		mailer, subs = s.mailer, s.db
	}
	var render status.RenderFunc
	if r, err := s.render(); err == nil {
		render = r.StatusHTML
	}
	company := c.Company
	if company == "" {
		company = "breachcast"
	}
	return status.New(status.Config{
		PublicURL: c.PublicURL, Company: company, PageName: c.Status.Title, Components: c.Status.Components,
		MaxConnections: c.Status.MaxConnections, MaxPerAddress: c.Status.MaxPerAddress,
		AllowedOrigins: c.Status.AllowedOrigins, Secret: secret, TimeZone: loc,
		MailFrom: c.SendGrid.FromEmail, MailFromName: c.SendGrid.FromName,
	}, s.db, subs, mailer, render, s.log)
}

// start wires and starts everything serve runs, on ln.
func (s *system) start(ctx context.Context, ln net.Listener, o serveOptions) (*server, error) {
	st, err := s.statusServer(ctx)
	if err != nil {
		return nil, err
	}
	onPublic := func(id int64) {
		if err := st.Refresh(context.WithoutCancel(ctx)); err != nil {
			s.log.Error("refresh status page", "err", err)
		}
		if o.onPublic != nil {
			o.onPublic(id)
		}
	}
	eng, err := s.engine(ctx, onPublic)
	if err != nil {
		return nil, err
	}
	sink := &inbox.Sink{Store: s.db, OnReply: o.onReply, Logger: s.log}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	webhooks := s.fb != nil && s.cfg.Facebook.VerifyToken != ""
	if webhooks {
		mux.Handle("/webhooks/facebook", s.fb.Webhook(sink))
	}
	mux.Handle("/", st.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: nil}

	srv := &server{status: st, http: hs, done: make(chan struct{})}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := st.Run(runCtx); err != nil && runCtx.Err() == nil {
			s.log.Error("status page", "err", err)
		}
	})
	wg.Go(func() { eng.Run(runCtx) })
	if s.x != nil {
		next := s.x.NextPoll
		if o.pollEvery != nil {
			next = o.pollEvery
		}
		wg.Go(func() {
			inbox.RunPoller(runCtx, inbox.PollerConfig{Channel: breachcast.ChannelTwitter, Poller: s.x,
				Store: s.db, Sink: sink, Next: next, Logger: s.log})
		})
	}
	if s.fb != nil && !webhooks {
		next := func(found bool) time.Duration { return time.Minute }
		if o.pollEvery != nil {
			next = o.pollEvery
		}
		wg.Go(func() {
			inbox.RunPoller(runCtx, inbox.PollerConfig{Channel: breachcast.ChannelFacebook, Poller: s.fb,
				Store: s.db, Sink: sink, Next: next, Logger: s.log})
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	go func() {
		select {
		case <-ctx.Done():
		case err := <-serveErr:
			if !errors.Is(err, http.ErrServerClosed) {
				srv.err = fmt.Errorf("http server: %w", err)
			}
		}
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = hs.Shutdown(sctx)
		scancel()
		_ = st.Close()
		cancel()
		wg.Wait()
		close(srv.done)
	}()
	return srv, nil
}

func (srv *server) wait() error {
	<-srv.done
	return srv.err
}

// subscriptionSecret is the key of unsubscribe links, shared by every
// process on the store.
func (s *system) subscriptionSecret(ctx context.Context) ([]byte, error) {
	if k := []byte(s.cfg.Status.SecretKey); len(k) > 0 {
		return k, nil
	}
	return s.db.SigningKey(ctx, "status")
}

func runExport(ctx context.Context, a *app, dir string) error {
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	st, err := s.statusServer(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Refresh(ctx); err != nil {
		return err
	}
	if err := st.Export(ctx, dir); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Wrote the public status site to %s: serve it from any static host (nginx, S3, a CDN).\n", dir)
	return nil
}
