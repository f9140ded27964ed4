package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/store"
	"github.com/breachcast/breachcast/templates"
)

func publishCommand() *command {
	return &command{
		name:    "publish",
		summary: "publish a notice and deliver it on every channel it names",
		usage:   "NOTICE.md [--detach] [--dry-run] [--yes]",
		help: `
Publishes NOTICE.md as the next update of its incident. The update, its rendered
content and one delivery job per channel (with the whole email ledger) are written
in one transaction; then the notice is delivered in the foreground with a
progress display (plain lines when the output is not a terminal) until every
channel is done. Ctrl-C stops cleanly: what was sent is recorded and
'breachcast serve' (or another publish) finishes the rest.

If a channel must wait long (a provider rate limit an hour away, or the kill
switch is on), publish says so and exits 3; 'breachcast serve' delivers it.

Options:
  --detach    only enqueue; 'breachcast serve' delivers
  --dry-run   parse, render and count the audience, publish nothing
  --yes       do not ask for confirmation on a terminal

Exit status: 0 delivered everywhere, 1 error or failed deliveries,
3 enqueued but not finished here (see 'breachcast status INCIDENT').`,
		run: runPublish,
	}
}

func runPublish(ctx context.Context, a *app, args []string) error {
	fs := flags("publish")
	detach := fs.Bool("detach", false, "")
	dry := fs.Bool("dry-run", false, "")
	yes := fs.Bool("yes", false, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one notice file")
	}
	n, src, err := readNotice(pos[0])
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	p, err := s.prepare(ctx, n, src, a.actor())
	if err != nil {
		return err
	}
	audience := 0
	if n.HasChannel(breachcast.ChannelEmail) {
		if audience, err = s.db.RecipientCount(ctx, n.Audience); err != nil {
			return fmt.Errorf("%s: audience: %w", n.Source, err)
		}
	}
	summary := publishSummary(p, audience)
	if *dry {
		fmt.Fprintf(a.stdout, "Dry run: would publish %s\n", summary)
		return nil
	}
	if !*yes && isTerminal(a.stdin) && isTerminal(a.stdout) {
		fmt.Fprintf(a.stdout, "Publish %s? [y/N] ", summary)
		line, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
			return fmt.Errorf("not published")
		}
	}
	res, err := s.db.Publish(ctx, p.pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Published update %d of %s (%s): %s\n", res.Update.Seq, n.Incident, n.Status, queuedSummary(res))
	if st, err := s.db.Pause(ctx); err == nil && st.Paused {
		return &incompleteError{fmt.Sprintf("Sending is paused (by %s: %s). Nothing goes out until 'breachcast resume'.",
			st.By, orDash(st.Reason))}
	}
	if *detach {
		fmt.Fprintln(a.stdout, "Queued; 'breachcast serve' delivers it. Follow with: breachcast status "+n.Incident)
		return nil
	}
	return deliver(ctx, a, s, res.Update)
}

func publishSummary(p *prepared, audience int) string {
	n := p.notice
	var parts []string
	for _, ch := range n.Channels {
		switch ch {
		case breachcast.ChannelEmail:
			parts = append(parts, fmt.Sprintf("email to %s recipients (%s)", commas(audience), n.Audience))
		case breachcast.ChannelTwitter:
			parts = append(parts, fmt.Sprintf("an X thread of %d posts", len(p.rendering.Twitter)))
		case breachcast.ChannelFacebook:
			parts = append(parts, "a Facebook post")
		case breachcast.ChannelStatus:
			parts = append(parts, "the status page")
		}
	}
	kind := "a new incident"
	if p.previous != nil {
		kind = fmt.Sprintf("update %d of %s (was %s)", p.seq, n.Incident, p.previous.Status)
	}
	return fmt.Sprintf("%s %q [%s] as %s: %s", n.Incident, n.Title, n.Status, kind, strings.Join(parts, ", "))
}

func queuedSummary(res *store.PublishResult) string {
	var parts []string
	for _, ch := range res.Update.Channels {
		if ch == breachcast.ChannelEmail {
			parts = append(parts, fmt.Sprintf("email to %s recipients", commas(res.Recipients)))
		} else {
			parts = append(parts, ch)
		}
	}
	return "queued " + strings.Join(parts, ", ")
}

// deliver runs the fan-out in the foreground until the update is done on
// every channel, showing progress.
func deliver(ctx context.Context, a *app, s *system, u *breachcast.Update) error {
	e, err := s.engine(ctx, nil)
	if err != nil {
		return err
	}
	ectx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { e.Run(ectx); close(done) }()
	defer func() { stop(); <-done }()

	tty := isTerminal(a.stdout)
	bar := newProgress(a.stdout, tty)
	// Look often, so a small fan-out returns at once; draw less often when
	// the output is a log rather than a terminal.
	every := 500 * time.Millisecond
	if !tty {
		every = 2 * time.Second
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var drawn time.Time
	for {
		ps, err := s.db.Progress(context.WithoutCancel(ctx), u.ID)
		if err != nil {
			return err
		}
		if time.Since(drawn) >= every {
			bar.draw(ps)
			drawn = time.Now()
		}
		verdict, msg := settle(ps, time.Now())
		switch verdict {
		case settledDone:
			bar.finish(ps)
			fmt.Fprintf(a.stdout, "Delivered update %d of %s on every channel.\n", u.Seq, u.Incident)
			return nil
		case settledFailed:
			bar.finish(ps)
			return fmt.Errorf("update %d of %s finished with failures:\n%s\nDetails: breachcast status %s --missing",
				u.Seq, u.Incident, msg, u.Incident)
		case settledWaiting:
			bar.finish(ps)
			return &incompleteError{fmt.Sprintf("%s\n'breachcast serve' will finish it; follow with: breachcast status %s", msg, u.Incident)}
		}
		if e.Paused() {
			bar.finish(ps)
			return &incompleteError{"Sending was paused. 'breachcast resume' continues exactly where it stopped."}
		}
		select {
		case <-ctx.Done():
			bar.finish(ps)
			return &incompleteError{"Stopped. What was sent is recorded; 'breachcast serve' delivers the rest."}
		case <-t.C:
		}
	}
}

type verdict int

const (
	settledNo verdict = iota
	settledDone
	settledFailed
	settledWaiting
)

// settle decides whether foreground delivery is over: everything done,
// done with failures, or left waiting long for a provider.
func settle(ps []*store.ChannelProgress, now time.Time) (verdict, string) {
	var failed, waiting []string
	open := 0
	for _, p := range ps {
		switch p.JobState {
		case "done":
			if p.Failed > 0 {
				failed = append(failed, fmt.Sprintf("  %s: %s failed: %s", p.Channel, commas(p.Failed), p.LastError))
			}
		case "failed":
			failed = append(failed, fmt.Sprintf("  %s: %s failed: %s", p.Channel, commas(max(p.Failed, 1)), p.LastError))
		default:
			open++
			if p.NextAt.Sub(now) > 30*time.Second && p.Inflight == 0 {
				waiting = append(waiting, fmt.Sprintf("%s waits until %s: %s", p.Channel, p.NextAt.Local().Format("15:04:05"), p.LastError))
			}
		}
	}
	switch {
	case open == 0 && len(failed) == 0:
		return settledDone, ""
	case open == 0:
		return settledFailed, strings.Join(failed, "\n")
	case open == len(waiting):
		return settledWaiting, strings.Join(append(waiting, failed...), "\n")
	}
	return settledNo, ""
}

func previewCommand() *command {
	return &command{
		name:    "preview",
		summary: "render a notice for every channel without publishing",
		usage:   "NOTICE.md [--channel email|twitter|facebook|status] [--json] [--recipient EMAIL]",
		help: `
Renders NOTICE.md exactly as it would go out as the next update of its incident:
the email (subject, HTML and text parts), the X thread, the Facebook post and the
status page entry. Every channel is rendered, whatever the notice's channels say.

Options:
  --channel C        show only one channel
  --json             print one JSON object: {"email":{"subject","html","text"},
                     "twitter":[posts],"facebook":"text","status":"html"}
  --recipient EMAIL  fill recipient fields from this imported recipient
                     (default: a sample recipient)`,
		run: runPreview,
	}
}

func runPreview(ctx context.Context, a *app, args []string) error {
	fs := flags("preview")
	channel := fs.String("channel", "", "")
	asJSON := fs.Bool("json", false, "")
	recipient := fs.String("recipient", "", "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one notice file")
	}
	if *channel != "" && !contains(breachcast.Channels, *channel) {
		return usagef("--channel: %q is not one of %s", *channel, strings.Join(breachcast.Channels, ", "))
	}
	n, _, err := readNotice(pos[0])
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.render()
	if err != nil {
		return err
	}
	all := *n
	all.Channels = breachcast.Channels
	if *channel != "" {
		all.Channels = []string{*channel}
	}
	seq, prev := 1, (*breachcast.Update)(nil)
	if u, err := s.db.LatestUpdate(ctx, n.Incident); err == nil {
		seq, prev = u.Seq+1, u
	}
	tctx := templates.Context{Seq: seq, PublishedAt: time.Now(), IncidentURL: s.incidentURL(n.Incident), Previous: prev}
	out, err := r.Render(&all, tctx)
	var tooLong *templates.ThreadTooLongError
	if errors.As(err, &tooLong) && *channel == "" && !n.HasChannel(breachcast.ChannelTwitter) {
		// Too long for X, but it is not going to X: show the rest.
		all.Channels = slices.DeleteFunc(slices.Clone(all.Channels), func(c string) bool { return c == breachcast.ChannelTwitter })
		out, err = r.Render(&all, tctx)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", n.Source, err)
	}
	rec := &breachcast.Recipient{Email: "jane.doe@example.com", Name: "Jane Doe", Locale: "en",
		Attrs: map[string]string{}}
	if *recipient != "" {
		if rec, err = s.db.RecipientByEmail(ctx, *recipient); err != nil {
			return err
		}
	}
	subs := out.Substitutions(rec, map[string]string{templates.ExtraUnsubscribeURL: s.cfg.PublicURL + "/unsubscribe/PREVIEW"})
	out.Email.Subject = templates.Apply(out.Email.Subject, subs)
	out.Email.HTML = templates.Apply(out.Email.HTML, subs)
	out.Email.Text = templates.Apply(out.Email.Text, subs)
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if *channel == "" {
			return enc.Encode(out)
		}
		v := map[string]any{}
		b, _ := json.Marshal(out)
		_ = json.Unmarshal(b, &v)
		return enc.Encode(map[string]any{*channel: v[*channel]})
	}
	w := a.stdout
	section := func(title string) { fmt.Fprintf(w, "\n=== %s %s\n", title, strings.Repeat("=", max(0, 60-len(title)))) }
	if *channel == "" || *channel == breachcast.ChannelEmail {
		section("email")
		fmt.Fprintf(w, "Subject: %s\n\n--- text/plain\n%s\n--- text/html (%s bytes)\n%s\n", out.Email.Subject, out.Email.Text,
			commas(len(out.Email.HTML)), out.Email.HTML)
	}
	if *channel == "" || *channel == breachcast.ChannelTwitter {
		section(fmt.Sprintf("X thread (%d posts)", len(out.Twitter)))
		for i, p := range out.Twitter {
			fmt.Fprintf(w, "--- post %d (%d/280)\n%s\n", i+1, templates.XLength(p), p)
		}
	}
	if *channel == "" || *channel == breachcast.ChannelFacebook {
		section("facebook")
		fmt.Fprintln(w, out.Facebook)
	}
	if *channel == "" || *channel == breachcast.ChannelStatus {
		section("status page")
		fmt.Fprintln(w, out.Status)
	}
	if *channel == "" && len(n.Channels) < len(breachcast.Channels) {
		fmt.Fprintf(w, "\nNote: this notice goes out only on %s.\n", strings.Join(n.Channels, ", "))
	}
	return nil
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// commas formats 1234567 as 1,234,567.
func commas(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commas(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
