package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

func pauseCommand() *command {
	return &command{
		name:    "pause",
		summary: "kill switch: stop every outbound send now, in every process",
		usage:   "[--reason TEXT]",
		help: `
Turns the kill switch on. Every breachcast process sharing the database stops
starting sends within a second (requests already on the wire finish and are
recorded). Nothing is lost: 'breachcast resume' continues exactly where it
stopped. The pause and its reason go into the audit log.

Options:
  --reason TEXT   why, for the audit log and for whoever looks next`,
		run: func(ctx context.Context, a *app, args []string) error {
			fs := flags("pause")
			reason := fs.String("reason", "", "")
			if pos, err := parse(fs, args); err != nil {
				return err
			} else if len(pos) > 0 {
				return usagef("unexpected argument %q (quote the reason: --reason \"...\")", pos[0])
			}
			db, _, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			changed, err := db.SetPause(ctx, true, a.actor(), *reason)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintln(a.stdout, "Already paused.")
				return nil
			}
			fmt.Fprintln(a.stdout, "Paused: every breachcast process stops sending within a second.\n'breachcast resume' continues exactly where it stopped.")
			return nil
		},
	}
}

func resumeCommand() *command {
	return &command{
		name:    "resume",
		summary: "turn the kill switch off; sending continues where it stopped",
		usage:   "",
		help: `
Turns the kill switch off. Workers in every process pick up exactly where they
stopped: no recipient is skipped and nothing already sent is sent again.`,
		run: func(ctx context.Context, a *app, args []string) error {
			if pos, err := parse(flags("resume"), args); err != nil {
				return err
			} else if len(pos) > 0 {
				return usagef("unexpected argument %q", pos[0])
			}
			db, _, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			changed, err := db.SetPause(ctx, false, a.actor(), "")
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintln(a.stdout, "Not paused.")
				return nil
			}
			n, _ := db.UnfinishedJobs(ctx, 0)
			fmt.Fprintf(a.stdout, "Resumed. %d delivery jobs are open; 'breachcast serve' (or a running publish) continues them.\n", n)
			return nil
		},
	}
}

func auditCommand() *command {
	return &command{
		name:    "audit",
		summary: "show the append-only audit log (publishes, pauses, retractions, imports)",
		usage:   "[--limit N] [--json]",
		help: `
Prints the audit log, newest first. The log is append-only: the database refuses
to change or delete its entries.

Options:
  --limit N   how many entries (default 50)
  --json      one JSON object per line`,
		run: func(ctx context.Context, a *app, args []string) error {
			fs := flags("audit")
			limit := fs.Int("limit", 50, "")
			asJSON := fs.Bool("json", false, "")
			if _, err := parse(fs, args); err != nil {
				return err
			}
			db, _, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			entries, err := db.Audit(ctx, *limit)
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(a.stdout)
				for _, e := range entries {
					if err := enc.Encode(map[string]any{"id": e.ID, "at": e.At, "actor": e.Actor, "action": e.Action,
						"subject": e.Subject, "detail": e.Detail}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "WHEN\tWHO\tWHAT\tSUBJECT\tDETAIL")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action,
					orDash(e.Subject), string(e.Detail))
			}
			return tw.Flush()
		},
	}
}

func configCommand() *command {
	var help strings.Builder
	help.WriteString(`
Prints the effective configuration (file, then environment) with every secret
shown as [redacted]. Every setting can be given in the YAML config file or as
an environment variable, which wins; secrets can also come from a file named by
the variable with _FILE appended (e.g. BREACHCAST_SENDGRID_API_KEY_FILE).

Settings:
`)
	tw := tabwriter.NewWriter(&help, 0, 2, 2, ' ', 0)
	for _, d := range settingDocs() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d[0], d[1], d[2])
	}
	tw.Flush()
	return &command{
		name:    "config",
		summary: "show the effective configuration and list every setting",
		usage:   "",
		help:    help.String(),
		run: func(ctx context.Context, a *app, args []string) error {
			if _, err := parse(flags("config"), args); err != nil {
				return err
			}
			c, err := a.config()
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(c)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version",
		help:    "Prints the build's module version and VCS revision.",
		run: func(ctx context.Context, a *app, args []string) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok {
				v = bi.Main.Version
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v += " " + s.Value
					}
				}
			}
			fmt.Fprintln(a.stdout, "breachcast", v)
			return nil
		},
	}
}

func channelsCommand() *command {
	return &command{
		name:    "channels",
		summary: "check that every configured channel is ready (channels check)",
		usage:   "check [--json]",
		help: `
'breachcast channels check' asks each configured provider, live, whether
breachcast can do its job, and says in plain words what is wrong:
  email     the SendGrid key is valid and has the Mail Send permission
  twitter   the X credentials work (GET /2/users/me) and the app can write
  facebook  the Page token is valid, when it expires, the Page and its permissions
A breach tool sits idle for months and Facebook tokens expire when unused: run
this on a schedule, before the breach, not during it. Exit status 1 if anything
is not ready.`,
		run: func(ctx context.Context, a *app, args []string) error {
			fs := flags("channels")
			asJSON := fs.Bool("json", false, "")
			pos, err := parse(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 || pos[0] != "check" {
				return usagef("want: channels check")
			}
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			var results []channels.Check
			checkers := map[string]channels.Checker{}
			if s.mailer != nil {
				checkers[breachcast.ChannelEmail] = s.mailer
			}
			if s.x != nil {
				checkers[breachcast.ChannelTwitter] = s.x
			}
			if s.fb != nil {
				checkers[breachcast.ChannelFacebook] = s.fb
			}
			for _, ch := range []string{breachcast.ChannelEmail, breachcast.ChannelTwitter, breachcast.ChannelFacebook} {
				c, ok := checkers[ch]
				if !ok {
					results = append(results, channels.Check{Channel: ch, Name: "configured", OK: true,
						Detail: "not configured: notices naming " + ch + " are refused"})
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				results = append(results, c.Check(cctx)...)
				cancel()
			}
			bad := 0
			for _, r := range results {
				if !r.OK {
					bad++
				}
			}
			if *asJSON {
				if err := json.NewEncoder(a.stdout).Encode(results); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(a.stdout, 0, 2, 2, ' ', 0)
				for _, r := range results {
					mark := "ok"
					if !r.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mark, r.Channel, r.Name, r.Detail)
				}
				tw.Flush()
			}
			if bad > 0 {
				return fmt.Errorf("%d check(s) failed", bad)
			}
			return nil
		},
	}
}
