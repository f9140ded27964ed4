package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/recipients"
)

func recipientsCommand() *command {
	return &command{
		name:    "recipients",
		summary: "import the affected customers (recipients import FILE.csv), list segments",
		usage:   "import FILE.csv [--segment NAME] [--skip-invalid] | segments",
		help: `
'breachcast recipients import FILE.csv' imports customers from a CSV file ("-"
reads standard input). Columns: email (required), name, locale, and any others,
kept as attributes for the email templates ({{.Recipient.Attr "plan"}}). The
delimiter (comma, semicolon or tab), a UTF-8 byte order mark and CRLF line ends
are recognised. An address already imported is updated, not duplicated.

The whole file is checked first. Bad rows (invalid address, duplicate address,
missing column, invalid locale...) are reported with their row numbers and
nothing is imported, unless --skip-invalid is given, which imports exactly the
valid rows.

Options:
  --segment NAME     also add every imported customer to segment NAME, which a
                     notice can then address with 'audience: NAME'
  --skip-invalid     import the valid rows and report the others

'breachcast recipients segments' lists the segments and how many customers each holds.`,
		run: runRecipients,
	}
}

func runRecipients(ctx context.Context, a *app, args []string) error {
	fs := flags("recipients")
	segment := fs.String("segment", "", "")
	skip := fs.Bool("skip-invalid", false, "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == "segments" {
		db, _, err := a.openStore(ctx)
		if err != nil {
			return err
		}
		defer db.Close()
		total, err := db.RecipientCount(ctx, breachcast.AudienceAll)
		if err != nil {
			return err
		}
		segs, err := db.Segments(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintf(tw, "SEGMENT\tRECIPIENTS\n%s\t%s\n", breachcast.AudienceAll, commas(total))
		for _, name := range sortedKeys(segs) {
			fmt.Fprintf(tw, "%s\t%s\n", name, commas(segs[name]))
		}
		return tw.Flush()
	}
	if len(pos) != 2 || pos[0] != "import" {
		return usagef("want: recipients import FILE.csv, or recipients segments")
	}
	if *segment == breachcast.AudienceAll {
		return usagef("--segment: %q is every recipient already; choose another name", *segment)
	}
	start := time.Now()
	rep, err := recipients.Options{Stdin: a.stdin}.Check(pos[1])
	if err != nil {
		return err
	}
	defer rep.Close()
	if !rep.OK() {
		fmt.Fprint(a.stderr, rep.String())
	}
	rd, err := rep.Open(*skip)
	if err != nil {
		var pe *recipients.ProblemsError
		if errors.As(err, &pe) {
			return errors.New(pe.Error())
		}
		return err
	}
	defer rd.Close()
	db, _, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.ImportRecipients(ctx, *segment, a.actor(), rd.Next)
	if err != nil {
		return err
	}
	where := ""
	if *segment != "" {
		where = fmt.Sprintf(" (segment %s)", *segment)
	}
	fmt.Fprintf(a.stdout, "Imported %s recipients%s: %s new, %s updated", commas(res.Inserted+res.Updated), where,
		commas(res.Inserted), commas(res.Updated))
	if n := rep.Invalid(); n > 0 {
		fmt.Fprintf(a.stdout, "; skipped %s invalid rows", commas(n))
	}
	fmt.Fprintf(a.stdout, " in %s.\n", time.Since(start).Round(time.Millisecond))
	return nil
}
