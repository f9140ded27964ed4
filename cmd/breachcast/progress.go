package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/breachcast/breachcast/store"
)

// progress shows delivery per channel: a redrawn bar on a terminal, a plain
// line per change otherwise (logs, CI, pipes).
type progress struct {
	w     io.Writer
	tty   bool
	lines int // lines drawn last time (terminal)
	last  map[string]string
	start time.Time
	first map[string]int // sent count when first seen, for the rate
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty, last: map[string]string{}, start: time.Now(), first: map[string]int{}}
}

func (p *progress) line(c *store.ChannelProgress, bar bool) string {
	done := c.Sent + c.Failed
	total := max(c.Total, 1)
	pct := done * 100 / total
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s", c.Channel)
	if bar {
		const width = 24
		filled := done * width / total
		b.WriteString("[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "] ")
	}
	fmt.Fprintf(&b, "%3d%%  %s/%s sent", pct, commas(c.Sent), commas(c.Total))
	if c.Failed > 0 {
		fmt.Fprintf(&b, ", %s failed", commas(c.Failed))
	}
	if c.Inflight > 0 {
		fmt.Fprintf(&b, ", %s in flight", commas(c.Inflight))
	}
	if c.Channel == "email" && c.Sent > p.first[c.Channel] {
		if secs := time.Since(p.start).Seconds(); secs > 1 {
			fmt.Fprintf(&b, "  %s/s", commas(int(float64(c.Sent-p.first[c.Channel])/secs)))
		}
	}
	switch {
	case c.JobState == "done" || c.JobState == "failed":
		b.WriteString("  " + c.JobState)
	case !c.NextAt.IsZero() && time.Until(c.NextAt) > time.Second && c.LastError != "":
		fmt.Fprintf(&b, "  waiting until %s: %s", c.NextAt.Local().Format("15:04:05"), shorten(c.LastError, 80))
	}
	return b.String()
}

func (p *progress) draw(ps []*store.ChannelProgress) {
	for _, c := range ps {
		if _, ok := p.first[c.Channel]; !ok {
			p.first[c.Channel] = c.Sent
		}
	}
	if p.tty {
		if p.lines > 0 {
			fmt.Fprintf(p.w, "\x1b[%dA", p.lines)
		}
		for _, c := range ps {
			fmt.Fprintf(p.w, "\r\x1b[K%s\n", p.line(c, true))
		}
		p.lines = len(ps)
		return
	}
	for _, c := range ps {
		l := p.line(c, false)
		key := fmt.Sprintf("%d/%d/%s", c.Sent, c.Failed, c.JobState)
		if p.last[c.Channel] != key {
			p.last[c.Channel] = key
			fmt.Fprintln(p.w, l)
		}
	}
}

func (p *progress) finish(ps []*store.ChannelProgress) {
	if p.tty {
		p.draw(ps)
	}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
