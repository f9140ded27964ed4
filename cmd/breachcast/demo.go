package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/emulators/fbemu"
	"github.com/breachcast/breachcast/emulators/sgemu"
	"github.com/breachcast/breachcast/emulators/xemu"
	"github.com/breachcast/breachcast/store"
)

//go:embed demo/*.md
var demoNotices embed.FS

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "rehearse a breach end to end on this machine: nothing reaches a customer",
		usage:   "[--addr HOST:PORT] [--dir DIR] [--recipients N] [--follow-up DURATION]",
		help: `
Starts everything locally: a fresh SQLite database, in-process emulators of
SendGrid, X and Facebook on loopback (they speak the providers' real request and
response shapes, and answer with their errors and rate limits when told to), a
sample list of customers, the status page, and the workers. Then it publishes a
sample breach notice to every channel, shows where to look, prints customer
replies as they come in, and publishes the follow-up update after a while so you
can watch the status page change in front of you.

Rehearsal is a feature: drill your breach announcement end to end, with your
own notices and templates, without touching a customer. The demo writes a
config file for its emulators, so in another terminal you can run any command
against it (publish your own notice, pause, status) while it runs.

Options:
  --addr HOST:PORT       status page address (default 127.0.0.1:8080; :0 picks a free port)
  --dir DIR              keep the demo's database, config and notices in DIR
                         (default: a new temporary directory)
  --recipients N         sample customers to import (default 250)
  --follow-up DURATION   publish the "identified" update after this long (default 40s; 0 = never)`,
		run: runDemo,
	}
}

// demoEnv is a running rehearsal environment: emulators, config and data.
type demoEnv struct {
	dir    string
	sg     *sgemu.Server
	x      *xemu.Server
	fb     *fbemu.Server
	sgURL  string
	xURL   string
	fbURL  string
	config string // path of the written config file
}

func (d *demoEnv) close() {
	d.sg.Close()
	d.x.Close()
	d.fb.Close()
}

func runDemo(ctx context.Context, a *app, args []string) error {
	fs := flags("demo")
	addr := fs.String("addr", "127.0.0.1:8080", "")
	dir := fs.String("dir", "", "")
	n := fs.Int("recipients", 250, "")
	followUp := fs.Duration("follow-up", 40*time.Second, "")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *n < 1 || *n > 1_000_000 {
		return usagef("--recipients: %d is outside 1..1000000", *n)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil && *addr == "127.0.0.1:8080" {
		// The default port is taken: any free one will do for a rehearsal.
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	publicURL := "http://" + ln.Addr().String()

	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "breachcast-demo-"); err != nil {
			ln.Close()
			return err
		}
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		ln.Close()
		return err
	}
	env, err := startDemoEnv(*dir, publicURL)
	if err != nil {
		ln.Close()
		return err
	}
	defer env.close()

	cfg, err := loadConfig(env.config, func(string) string { return "" })
	if err != nil {
		ln.Close()
		return err
	}
	a.cfg, a.log = cfg, newLogger(a.stderr, "warn")
	s := &system{cfg: cfg, log: a.log}
	if s.db, err = store.Open(ctx, cfg.DB); err != nil {
		ln.Close()
		return err
	}
	defer s.db.Close()
	if err := s.wireChannels(); err != nil {
		ln.Close()
		return err
	}
	if err := importSampleCustomers(ctx, s.db, *n); err != nil {
		ln.Close()
		return err
	}

	out := &lockedWriter{w: a.stdout}
	var seen sync.Map
	srv, err := s.start(ctx, ln, serveOptions{
		onReply: func(r *breachcast.Reply) {
			if _, dup := seen.LoadOrStore(r.Channel+"/"+r.ExternalID, true); dup && r.Action == breachcast.ReplyAdded {
				return
			}
			fmt.Fprintf(out, "  reply on %-8s from %s: %s\n", r.Channel, r.AuthorName, oneLine(r.Text, 100))
		},
		pollEvery: func(found bool) time.Duration { return 3 * time.Second },
	})
	if err != nil {
		ln.Close()
		return err
	}
	env.fb.SetWebhookURL(publicURL + "/webhooks/facebook")
	drillLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	drill := &http.Server{Handler: env.drillHandler(), ReadHeaderTimeout: 5 * time.Second}
	go drill.Serve(drillLn)
	defer drill.Close()
	drillURL := "http://" + drillLn.Addr().String()

	fmt.Fprintf(out, `
breachcast demo: a rehearsal. Nothing leaves this machine.

  Status page      %s/
  Emails sent      %s/   (the SendGrid emulator's inbox)
  X API emulator   %s    Facebook Graph emulator  %s
  Data             %s

In another terminal, everything works against this rehearsal:
  export BREACHCAST_CONFIG=%s
  breachcast status %s
  breachcast pause          # the kill switch; then: breachcast resume
  breachcast publish %s

Drill provider failures while it runs (then watch retries, waits and the status output):
  curl -X POST '%s/sendgrid?ratelimit=5&window=1m'   # or ?fail=3&status=503, ?latency=2s
  curl -X POST '%s/x?ratelimit=1h'                    # or ?fail=2&status=503
  curl -X POST '%s/facebook?expire-token=1'           # or ?fail=2, ?ratelimit=3&regain=10m
  curl -X POST '%s/clear'

`, publicURL, env.sgURL, env.xURL, env.fbURL, env.dir, env.config, "acme-2026-11-customer-data",
		filepath.Join(env.dir, "3-resolved.md"), drillURL, drillURL, drillURL, drillURL)

	if err := demoPublish(ctx, a, s, filepath.Join(env.dir, "1-investigating.md"), out); err != nil {
		return err
	}
	fmt.Fprintln(out, "Customer replies appear below as they arrive. Ctrl-C stops the demo.")
	if *followUp > 0 {
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(*followUp):
			}
			fmt.Fprintf(out, "\nPublishing the follow-up update: watch the status page change without a reload.\n")
			if err := demoPublish(ctx, a, s, filepath.Join(env.dir, "2-identified.md"), out); err != nil && ctx.Err() == nil {
				fmt.Fprintf(out, "follow-up: %v\n", err)
			}
		}()
	}
	err = srv.wait()
	fmt.Fprintf(out, "\nDemo stopped. Its data stays in %s\n", env.dir)
	return err
}

// startDemoEnv starts the three emulators and writes the notices and a config
// file pointing at them into dir.
func startDemoEnv(dir, publicURL string) (*demoEnv, error) {
	d := &demoEnv{dir: dir}
	d.sg = sgemu.New(sgemu.Options{KeepMessages: 2000})
	d.x = xemu.New(xemu.Options{AutoReply: true, AutoReplyDelay: 4 * time.Second})
	d.fb = fbemu.New(fbemu.Options{AutoReply: true, AutoReplyDelay: 5 * time.Second, PageName: "Acme"})
	var err error
	if d.sgURL, err = d.sg.Start(); err == nil {
		if d.xURL, err = d.x.Start(); err == nil {
			d.fbURL, err = d.fb.Start()
		}
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("start emulators: %w", err)
	}
	entries, err := demoNotices.ReadDir("demo")
	if err != nil {
		d.close()
		return nil, err
	}
	for _, e := range entries {
		b, _ := demoNotices.ReadFile("demo/" + e.Name())
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			d.close()
			return nil, err
		}
	}
	cfg := map[string]any{
		"db":         filepath.Join(dir, "breachcast.db"),
		"public_url": publicURL,
		"company":    "Acme",
		"actor":      "demo",
		"http":       map[string]any{"addr": strings.TrimPrefix(publicURL, "http://")},
		"sendgrid": map[string]any{"api_key": "SG.rehearsal-key", "base_url": d.sgURL, "from_email": "security@acme.example",
			"from_name": "Acme Security", "inbound_domain": "reply.acme.example"},
		"x": map[string]any{"base_url": d.xURL, "consumer_key": xemu.DefaultConsumerKey, "consumer_secret": xemu.DefaultConsumerSecret,
			"access_token": xemu.DefaultAccessToken, "access_secret": xemu.DefaultAccessSecret},
		"facebook": map[string]any{"base_url": d.fbURL, "app_id": fbemu.DefaultAppID, "app_secret": fbemu.DefaultAppSecret,
			"page_id": fbemu.DefaultPageID, "page_token": fbemu.DefaultPageToken, "verify_token": "rehearsal-verify-token"},
		"status": map[string]any{"components": []string{"Website", "API", "Customer accounts"}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		d.close()
		return nil, err
	}
	d.config = filepath.Join(dir, "breachcast.yaml")
	header := "# breachcast demo: points at this rehearsal's local emulators; the credentials are the emulators' own.\n"
	if err := os.WriteFile(d.config, append([]byte(header), b...), 0o600); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

var (
	demoFirst = []string{"Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken", "Radia",
		"Tim", "Hedy", "John", "Katherine", "Edsger", "Shafi", "Donald", "Anita", "Whitfield", "Sophie"}
	demoLast = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Ritchie", "Allen", "Thompson",
		"Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Johnson", "Dijkstra", "Goldwasser", "Knuth", "Borg", "Diffie", "Wilson"}
	demoPlans   = []string{"starter", "team", "business", "enterprise"}
	demoLocales = []string{"en", "en-GB", "de", "fr", "ja"}
)

// importSampleCustomers imports n made-up customers on example.com, a fifth
// of them also in the "enterprise" segment.
func importSampleCustomers(ctx context.Context, db *store.DB, n int) error {
	if have, err := db.RecipientCount(ctx, breachcast.AudienceAll); err != nil || have >= n {
		return err
	}
	person := func(i int) *breachcast.Recipient {
		first, last := demoFirst[i%len(demoFirst)], demoLast[(i/len(demoFirst))%len(demoLast)]
		return &breachcast.Recipient{
			Email:  fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(strings.ReplaceAll(last, "-", "")), i),
			Name:   first + " " + last,
			Locale: demoLocales[i%len(demoLocales)],
			Attrs:  map[string]string{"plan": demoPlans[i%len(demoPlans)], "customer_id": fmt.Sprintf("C%06d", i)},
		}
	}
	all := func(step int) func() (*breachcast.Recipient, error) {
		i := 0
		return func() (*breachcast.Recipient, error) {
			if i >= n {
				return nil, nil
			}
			r := person(i)
			i += step
			return r, nil
		}
	}
	if _, err := db.ImportRecipients(ctx, "", "demo", all(1)); err != nil {
		return err
	}
	_, err := db.ImportRecipients(ctx, "enterprise", "demo", all(5))
	return err
}

// demoPublish publishes one notice the way 'breachcast publish --detach'
// does; the running server delivers it.
func demoPublish(ctx context.Context, a *app, s *system, path string, out *lockedWriter) error {
	n, src, err := readNotice(path)
	if err != nil {
		return err
	}
	p, err := s.prepare(ctx, n, src, "demo")
	if err != nil {
		return err
	}
	res, err := s.db.Publish(ctx, p.pub)
	if err != nil {
		var be *breachcast.Error
		if errors.As(err, &be) && be.Code == breachcast.ECONFLICT {
			fmt.Fprintf(out, "%s\n", be.Message)
			return nil
		}
		return err
	}
	fmt.Fprintf(out, "Published update %d (%s) of %s: %s\n", res.Update.Seq, n.Status, n.Incident, queuedSummary(res))
	go demoReport(ctx, s, res.Update, out)
	return nil
}

// demoReport prints what went out once an update is delivered.
func demoReport(ctx context.Context, s *system, u *breachcast.Update, out *lockedWriter) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left, err := s.db.UnfinishedJobs(ctx, u.ID)
		if err != nil || left > 0 {
			continue
		}
		ps, _ := s.db.Progress(ctx, u.ID)
		posts, _ := s.db.Posts(ctx, u.ID, "")
		var b strings.Builder
		fmt.Fprintf(&b, "Update %d delivered:\n", u.Seq)
		for _, p := range ps {
			fmt.Fprintf(&b, "  %-11s %s sent, %s failed\n", p.Channel, commas(p.Sent), commas(p.Failed))
		}
		for _, p := range posts {
			fmt.Fprintf(&b, "  %-11s post %d: %s\n", p.Channel, p.Seq, oneLine(p.Text, 90))
		}
		fmt.Fprint(out, b.String())
		return
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	return shorten(s, n)
}

// lockedWriter serialises writes from the demo's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
