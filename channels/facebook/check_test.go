package facebook

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/fbemu"
)

func checksByName(t *testing.T, cs []channels.Check) map[string]channels.Check {
	t.Helper()
	out := map[string]channels.Check{}
	for _, c := range cs {
		if c.Channel != Name {
			t.Errorf("check %q has channel %q", c.Name, c.Channel)
		}
		if c.Detail == "" {
			t.Errorf("check %q has no detail", c.Name)
		}
		if strings.Contains(c.Detail, testPageToken) || strings.Contains(c.Detail, testAppSecret) {
			t.Errorf("check %q leaks a secret: %s", c.Name, c.Detail)
		}
		out[c.Name] = c
	}
	return out
}

func TestCheckOnAHealthyPage(t *testing.T) {
	e := newEnv(t, nil, func(o *fbemu.Options) { o.TokenExpiry = day.Add(60 * 24 * time.Hour) })
	cs := checksByName(t, e.client.Check(context.Background()))
	for _, name := range []string{"token", "token expiry", "data access expiry", "permissions", "page", "webhook"} {
		c, ok := cs[name]
		if !ok {
			t.Errorf("no %q check", name)
			continue
		}
		if !c.OK {
			t.Errorf("%s: not OK: %s", name, c.Detail)
		}
	}
	if d := cs["token expiry"].Detail; !strings.Contains(d, "23 Jan 2026") || !strings.Contains(d, "60 days") {
		t.Errorf("expiry detail = %q", d)
	}
	if d := cs["page"].Detail; !strings.Contains(d, `"Acme Support"`) {
		t.Errorf("page detail = %q", d)
	}
	// debug_token was asked with the token in the body, never the URL.
	var asked bool
	for _, r := range e.emu.Requests() {
		if strings.HasSuffix(r.Path, "/debug_token") {
			asked = true
			if r.Method != "GET" || r.Params.Get("input_token") == "" || r.Status != 200 || r.TokenKind != "app" {
				t.Errorf("debug_token request = %+v", r)
			}
		}
	}
	if !asked {
		t.Error("debug_token was not called")
	}
	for _, r := range e.emu.Requests() {
		if !strings.HasSuffix(r.Path, "/debug_token") && r.TokenKind != "page" {
			t.Errorf("%s %s used a %q token", r.Method, r.Path, r.TokenKind)
		}
	}
	e.assertNoSecretsLeaked(t)
}

func TestCheckWarnsWellBeforeTheTokenExpires(t *testing.T) {
	e := newEnv(t, nil, func(o *fbemu.Options) {
		o.TokenExpiry = day.Add(5*24*time.Hour + time.Hour)
		o.DataAccessExpiry = day.Add(10 * 24 * time.Hour)
	})
	cs := checksByName(t, e.client.Check(context.Background()))
	exp := cs["token expiry"]
	if exp.OK || !strings.Contains(exp.Detail, "in 5 days") ||
		!strings.Contains(exp.Detail, "Facebook tokens expire when unused; renew before the breach, not during it") {
		t.Errorf("token expiry = %+v", exp)
	}
	if da := cs["data access expiry"]; da.OK || !strings.Contains(da.Detail, "in 10 days") {
		t.Errorf("data access expiry = %+v", da)
	}
	if !cs["token"].OK {
		t.Errorf("the token is still valid: %+v", cs["token"])
	}
}

func TestCheckNamesMissingPermissions(t *testing.T) {
	e := newEnv(t, nil, func(o *fbemu.Options) { o.Permissions = []string{"pages_show_list", "pages_read_engagement"} })
	cs := checksByName(t, e.client.Check(context.Background()))
	p := cs["permissions"]
	if p.OK || !strings.Contains(p.Detail, "pages_manage_posts, pages_manage_engagement") {
		t.Errorf("permissions = %+v", p)
	}
	if !cs["page"].OK {
		t.Errorf("page = %+v", cs["page"])
	}
}

func TestCheckWithAnExpiredToken(t *testing.T) {
	e := newEnv(t, nil, func(o *fbemu.Options) { o.TokenExpiry = day.Add(-time.Hour) })
	cs := checksByName(t, e.client.Check(context.Background()))
	tok := cs["token"]
	if tok.OK || !strings.Contains(tok.Detail, "expired") || !strings.Contains(tok.Detail, "generate a new Page token") {
		t.Errorf("token = %+v", tok)
	}
	if cs["token expiry"].OK || cs["permissions"].OK || cs["page"].OK {
		t.Errorf("checks after a dead token: %+v", cs)
	}
}

func TestCheckNoticesATokenForAnotherPageOrApp(t *testing.T) {
	e := newEnv(t, nil, func(o *fbemu.Options) { o.AllowNoProof = true })
	other := e.newClient(t, func(c *Config) { c.PageID = "999"; c.AppID = testAppID })
	cs := checksByName(t, other.Check(context.Background()))
	if tok := cs["token"]; tok.OK || !strings.Contains(tok.Detail, "belongs to Page "+testPageID) {
		t.Errorf("token = %+v", tok)
	}
	wrongApp := e.newClient(t, func(c *Config) { c.AppID = "123" })
	cs = checksByName(t, wrongApp.Check(context.Background()))
	if tok := cs["token"]; tok.OK || !strings.Contains(tok.Detail, "check the app id and app secret") {
		t.Errorf("token = %+v", tok)
	}
}

func TestCheckWithoutAVerifyTokenSaysCommentsArePolled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.VerifyToken = "" }, nil)
	cs := checksByName(t, e.client.Check(context.Background()))
	if w := cs["webhook"]; w.OK || !strings.Contains(w.Detail, "polling") {
		t.Errorf("webhook = %+v", w)
	}
}
