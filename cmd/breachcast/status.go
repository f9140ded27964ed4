package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/store"
)

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "delivery status of an incident, or export the public status site",
		usage:   "[INCIDENT [--update N] [--missing] [--json]] | export DIR",
		help: `
Without arguments, lists every incident.

With an incident slug, shows each update and, per channel, how many deliveries
are queued, in flight, sent and failed, the last error and when a waiting
channel goes on; the social posts with their ids and links; and the batches
that were in flight when a worker stopped and were sent again (the only
recipients who may have an email twice).

  --update N   only update N
  --missing    list who has not received the email yet (address, state, reason)
  --json       print one JSON object: {"incident", "title", "status", "updates":
               [{"seq", "status", "published_at", "channels": [{"channel",
               "state", "total", "queued", "inflight", "sent", "failed", ...}]}]}

'breachcast status export DIR' writes the whole public status site (HTML pages,
feeds, Statuspage-compatible JSON) as static files into DIR, to be served from
anywhere the breach did not reach.`,
		run: runStatus,
	}
}

type channelJSON struct {
	Channel   string     `json:"channel"`
	State     string     `json:"state"`
	Total     int        `json:"total"`
	Queued    int        `json:"queued"`
	Inflight  int        `json:"inflight"`
	Sent      int        `json:"sent"`
	Failed    int        `json:"failed"`
	Recovered int        `json:"recovered"`
	LastError string     `json:"last_error,omitempty"`
	NextAt    *time.Time `json:"next_attempt_at,omitempty"`
	Posts     []postJSON `json:"posts,omitempty"`
}

type postJSON struct {
	Seq   int    `json:"seq"`
	State string `json:"state"`
	ID    string `json:"id,omitempty"`
	URL   string `json:"url,omitempty"`
	Error string `json:"error,omitempty"`
}

type updateJSON struct {
	Seq         int           `json:"seq"`
	ID          int64         `json:"id"`
	Status      string        `json:"status"`
	Title       string        `json:"title"`
	PublishedAt time.Time     `json:"published_at"`
	PublishedBy string        `json:"published_by"`
	Channels    []channelJSON `json:"channels"`
}

func runStatus(ctx context.Context, a *app, args []string) error {
	fs := flags("status")
	updateN := fs.Int("update", 0, "")
	missing := fs.Bool("missing", false, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "export" {
		if len(pos) != 2 {
			return usagef("want: status export DIR")
		}
		return runExport(ctx, a, pos[1])
	}
	if len(pos) > 1 {
		return usagef("want at most one incident")
	}
	db, _, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(pos) == 0 {
		return listIncidents(ctx, a, db, *asJSON)
	}
	inc, err := db.Incident(ctx, pos[0])
	if err != nil {
		return err
	}
	updates := inc.Updates
	if *updateN != 0 {
		if *updateN < 1 || *updateN > len(updates) {
			return fmt.Errorf("incident %s has updates 1 to %d, not %d", inc.Slug, len(updates), *updateN)
		}
		updates = updates[*updateN-1 : *updateN]
	}
	if *missing {
		u := updates[len(updates)-1]
		n := 0
		err := db.Missing(ctx, u.ID, breachcast.ChannelEmail, 0, func(email, state, reason string) error {
			n++
			fmt.Fprintf(a.stdout, "%s\t%s\t%s\n", email, state, reason)
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "%s recipients have not received update %d of %s.\n", commas(n), u.Seq, inc.Slug)
		return nil
	}
	var out []updateJSON
	for _, u := range updates {
		uj, err := describeUpdate(ctx, db, u)
		if err != nil {
			return err
		}
		out = append(out, uj)
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"incident": inc.Slug, "title": inc.Title, "status": inc.Status,
			"severity": inc.Severity, "open": inc.Open(), "updates": out})
	}
	w := a.stdout
	state := "open"
	if !inc.Open() {
		state = "resolved " + inc.ResolvedAt.Local().Format("2006-01-02 15:04")
	}
	fmt.Fprintf(w, "%s: %s [%s, %s, %s]\n", inc.Slug, inc.Title, inc.Status, inc.Severity, state)
	for i, uj := range out {
		fmt.Fprintf(w, "\nUpdate %d: %s, published %s by %s\n", uj.Seq, uj.Status,
			uj.PublishedAt.Local().Format("2006-01-02 15:04:05"), orDash(uj.PublishedBy))
		tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "  CHANNEL\tSTATE\tQUEUED\tIN FLIGHT\tSENT\tFAILED\tNOTE")
		for _, c := range uj.Channels {
			note := ""
			if c.LastError != "" && c.State != "done" {
				note = shorten(c.LastError, 100)
			}
			if c.NextAt != nil && time.Until(*c.NextAt) > 0 && c.State != "done" && c.State != "failed" {
				note = "waits until " + c.NextAt.Local().Format("15:04:05") + ": " + note
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Channel, c.State, commas(c.Queued), commas(c.Inflight),
				commas(c.Sent), commas(c.Failed), note)
		}
		tw.Flush()
		for _, c := range uj.Channels {
			for _, p := range c.Posts {
				line := fmt.Sprintf("    %s post %d/%d: %s", c.Channel, p.Seq, len(c.Posts), p.State)
				if p.ID != "" {
					line += " id " + p.ID + " " + p.URL
				}
				if p.Error != "" {
					line += " (" + p.Error + ")"
				}
				fmt.Fprintln(w, line)
			}
			if c.Recovered > 0 {
				batches, err := db.Batches(ctx, updates[i].ID, c.Channel, true)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "    %s: %s recipients were in batches in flight when a worker stopped; they were sent again and may have it twice:",
					c.Channel, commas(c.Recovered))
				for _, b := range batches {
					fmt.Fprintf(w, " batch %d (%d)", b.ID, b.Size)
				}
				fmt.Fprintln(w)
			}
		}
	}
	return nil
}

func describeUpdate(ctx context.Context, db *store.DB, u *breachcast.Update) (updateJSON, error) {
	uj := updateJSON{Seq: u.Seq, ID: u.ID, Status: string(u.Status), Title: u.Title, PublishedAt: u.PublishedAt,
		PublishedBy: u.PublishedBy}
	ps, err := db.Progress(ctx, u.ID)
	if err != nil {
		return uj, err
	}
	posts, err := db.Posts(ctx, u.ID, "")
	if err != nil {
		return uj, err
	}
	for _, p := range ps {
		c := channelJSON{Channel: p.Channel, State: p.JobState, Total: p.Total, Queued: p.Queued, Inflight: p.Inflight,
			Sent: p.Sent, Failed: p.Failed, Recovered: p.Recovered, LastError: p.LastError}
		if !p.NextAt.IsZero() && p.JobState != "done" && p.JobState != "failed" {
			t := p.NextAt
			c.NextAt = &t
		}
		for _, post := range posts {
			if post.Channel == p.Channel {
				c.Posts = append(c.Posts, postJSON{Seq: post.Seq, State: post.State, ID: post.ExternalID, URL: post.URL, Error: post.Error})
			}
		}
		uj.Channels = append(uj.Channels, c)
	}
	return uj, nil
}

func listIncidents(ctx context.Context, a *app, db *store.DB, asJSON bool) error {
	incs, err := db.Incidents(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		type row struct {
			Incident  string    `json:"incident"`
			Title     string    `json:"title"`
			Status    string    `json:"status"`
			Severity  string    `json:"severity"`
			Open      bool      `json:"open"`
			UpdatedAt time.Time `json:"updated_at"`
		}
		rows := []row{}
		for _, i := range incs {
			rows = append(rows, row{i.Slug, i.Title, string(i.Status), string(i.Severity), i.Open(), i.UpdatedAt})
		}
		return json.NewEncoder(a.stdout).Encode(rows)
	}
	if len(incs) == 0 {
		fmt.Fprintln(a.stdout, "No incidents yet. Write a notice and run: breachcast publish NOTICE.md")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "INCIDENT\tSTATUS\tSEVERITY\tUPDATED\tTITLE")
	for _, i := range incs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.Slug, i.Status, i.Severity, i.UpdatedAt.Local().Format("2006-01-02 15:04"), i.Title)
	}
	return tw.Flush()
}

func retractCommand() *command {
	return &command{
		name:    "retract",
		summary: "take an update's social posts down (X delete; Facebook hide or delete)",
		usage:   "INCIDENT --update N [--channel twitter|facebook]",
		help: `
Takes down the posts of one update: deletes its X posts, and hides or deletes
its Facebook post (facebook.retract_mode). Each retraction is recorded in the
audit log. Emails cannot be unsent: publish a correcting update instead.

Options:
  --update N        the update whose posts to take down (required)
  --channel C       only twitter or only facebook`,
		run: func(ctx context.Context, a *app, args []string) error {
			fs := flags("retract")
			updateN := fs.Int("update", 0, "")
			channel := fs.String("channel", "", "")
			pos, err := parse(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 || *updateN < 1 {
				return usagef("want an incident and --update N")
			}
			if *channel != "" && *channel != breachcast.ChannelTwitter && *channel != breachcast.ChannelFacebook {
				return usagef("--channel: %q is not twitter or facebook", *channel)
			}
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			inc, err := s.db.Incident(ctx, pos[0])
			if err != nil {
				return err
			}
			if *updateN > len(inc.Updates) {
				return fmt.Errorf("incident %s has %d updates", inc.Slug, len(inc.Updates))
			}
			u := inc.Updates[*updateN-1]
			posts, err := s.db.Posts(ctx, u.ID, *channel)
			if err != nil {
				return err
			}
			retracters := map[string]channels.Retracter{}
			if s.x != nil {
				retracters[breachcast.ChannelTwitter] = s.x
			}
			if s.fb != nil {
				retracters[breachcast.ChannelFacebook] = s.fb
			}
			done, failed := 0, 0
			// Newest first, so a thread comes down from its tail.
			for i := len(posts) - 1; i >= 0; i-- {
				p := posts[i]
				if p.State != "sent" {
					continue
				}
				r := retracters[p.Channel]
				if r == nil {
					fmt.Fprintf(a.stderr, "%s is not configured: cannot retract post %s\n", p.Channel, p.ExternalID)
					failed++
					continue
				}
				if err := r.Retract(ctx, p.ExternalID); err != nil {
					fmt.Fprintf(a.stderr, "%s post %s: %v\n", p.Channel, p.ExternalID, err)
					failed++
					continue
				}
				if err := s.db.MarkPostRetracted(ctx, p.ID, a.actor()); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "retracted %s post %s\n", p.Channel, p.ExternalID)
				done++
			}
			if done == 0 && failed == 0 {
				fmt.Fprintf(a.stdout, "Update %d of %s has no posts to retract.\n", u.Seq, inc.Slug)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d posts could not be retracted", failed, done+failed)
			}
			return nil
		},
	}
}

func repliesCommand() *command {
	return &command{
		name:    "replies",
		summary: "list the customer replies collected for an incident (X, Facebook, email)",
		usage:   "INCIDENT [--json]",
		help: `
Lists every reply collected for an incident, oldest first: X replies and
mentions (polled), Facebook comments (webhook or polled) and email replies, each
with its channel, author, time, the update it answers and its state (edited,
hidden, removed by its author). 'breachcast serve' collects them.

Options:
  --json   one JSON object per line`,
		run: func(ctx context.Context, a *app, args []string) error {
			fs := flags("replies")
			asJSON := fs.Bool("json", false, "")
			pos, err := parse(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usagef("want one incident")
			}
			db, _, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			inc, err := db.Incident(ctx, pos[0])
			if err != nil {
				return err
			}
			seq := map[int64]int{}
			for _, u := range inc.Updates {
				seq[u.ID] = u.Seq
			}
			replies, err := db.Replies(ctx, inc.Slug)
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(a.stdout)
				for _, r := range replies {
					if err := enc.Encode(map[string]any{"channel": r.Channel, "id": r.ExternalID, "author": r.AuthorName,
						"author_id": r.AuthorID, "text": r.Text, "in_reply_to": r.InReplyTo, "created_at": r.CreatedAt,
						"update": seq[r.UpdateID], "state": r.Action}); err != nil {
						return err
					}
				}
				return nil
			}
			if len(replies) == 0 {
				fmt.Fprintf(a.stdout, "No replies to %s yet.\n", inc.Slug)
				return nil
			}
			for _, r := range replies {
				state := ""
				if r.Action != breachcast.ReplyAdded {
					state = " [" + string(r.Action) + "]"
				}
				fmt.Fprintf(a.stdout, "%s  %-8s update %d  %s%s\n    %s\n", r.CreatedAt.Local().Format("2006-01-02 15:04"), r.Channel,
					seq[r.UpdateID], r.AuthorName, state, strings.ReplaceAll(strings.TrimSpace(r.Text), "\n", "\n    "))
			}
			fmt.Fprintf(a.stderr, "%d replies.\n", len(replies))
			return nil
		},
	}
}
