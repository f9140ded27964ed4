package facebook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	fb "github.com/huandu/facebook/v2"

	"github.com/breachcast/breachcast/channels"
)

// ExpiryWarning is how close a token expiry has to be to fail the check.
const ExpiryWarning = 14 * 24 * time.Hour

const renewAdvice = "Facebook tokens expire when unused; renew before the breach, not during it."

// tokenInfo is the data of GET /debug_token.
type tokenInfo struct {
	AppID               flexID   `json:"app_id"`
	Type                string   `json:"type"`
	ProfileID           flexID   `json:"profile_id"`
	IsValid             bool     `json:"is_valid"`
	ExpiresAt           int64    `json:"expires_at"`
	DataAccessExpiresAt int64    `json:"data_access_expires_at"`
	Scopes              []string `json:"scopes"`
	GranularScopes      []struct {
		Scope     string   `json:"scope"`
		TargetIDs []flexID `json:"target_ids"`
	} `json:"granular_scopes"`
	Error *struct {
		Code    int    `json:"code"`
		Subcode int    `json:"subcode"`
		Message string `json:"message"`
	} `json:"error"`
}

// Check runs the readiness checks: the token is valid and is this Page's,
// how long until it (and its data access) expires, the permissions to post
// and to read and answer comments, the Page itself, and the webhook
// handshake secret. Every Detail says what was found or what to do.
func (c *Client) Check(ctx context.Context) []channels.Check {
	var out []channels.Check
	add := func(name string, ok bool, format string, args ...any) {
		out = append(out, channels.Check{Channel: Name, Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}

	ti, err := c.inspectToken(ctx)
	var ce *channels.Error
	if errors.As(err, &ce) && ce.Code == CodeToken {
		add("token", false, "Facebook refused the app credentials used to inspect the Page token; check the app id and app secret (%s)", ce.Message)
		add("token expiry", false, "unknown, because the token could not be checked")
		add("permissions", false, "unknown, because the token could not be checked")
	} else if err != nil {
		add("token", false, "could not check the Page token: %s", reason(err))
		add("token expiry", false, "unknown, because the token could not be checked")
		add("permissions", false, "unknown, because the token could not be checked")
	} else {
		c.tokenChecks(ti, add)
	}

	res, err := c.call(ctx, "GET /{page-id}", "pages_read_engagement", fb.GET, "/"+c.cfg.PageID, fb.Params{"fields": "id,name,link"})
	var page struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	switch {
	case err != nil:
		add("page", false, "could not read the Page %s: %s", c.cfg.PageID, reason(err))
	case decode(res, &page) != nil || page.ID == "":
		add("page", false, "Facebook did not describe the Page %s", c.cfg.PageID)
	default:
		add("page", true, "the Page %q (id %s) is reachable with the token", page.Name, page.ID)
	}

	if c.cfg.VerifyToken == "" {
		add("webhook", false, "no webhook verify token is set, so Facebook cannot subscribe the webhook; comments will only be collected by polling")
	} else {
		add("webhook", true, "a webhook verify token is set; subscribe the app to the Page's feed field with this server's webhook URL")
	}
	return out
}

// inspectToken asks GET /debug_token about the Page token, authenticated
// with the app token as Meta documents. The token being inspected is a
// parameter, so the call is a POST with method=GET: the token goes in the
// body, never in the URL.
func (c *Client) inspectToken(ctx context.Context) (*tokenInfo, error) {
	res, err := c.callAs(ctx, c.app, "GET /debug_token", "", fb.POST, "/debug_token",
		fb.Params{"method": "GET", "input_token": c.cfg.PageToken})
	if err != nil {
		return nil, err
	}
	var out struct {
		Data *tokenInfo `json:"data"`
	}
	if err := decode(res, &out); err != nil || out.Data == nil {
		return nil, errors.New("Facebook did not describe the token")
	}
	return out.Data, nil
}

func (c *Client) tokenChecks(ti *tokenInfo, add func(string, bool, string, ...any)) {
	now := c.now()
	switch {
	case !ti.IsValid:
		why := "Facebook says it is invalid"
		if ti.Error != nil && ti.Error.Message != "" {
			why = "Facebook says: " + ti.Error.Message
		}
		add("token", false, "the Page token is not valid (%s); generate a new Page token and update the configuration", why)
	case ti.Type != "" && ti.Type != "PAGE":
		add("token", false, "the token is a %s token, not a Page token; generate a Page access token for Page %s", ti.Type, c.cfg.PageID)
	case ti.AppID != "" && string(ti.AppID) != c.cfg.AppID:
		add("token", false, "the token was issued to app %s but the configured app is %s; calls will fail their appsecret_proof", ti.AppID, c.cfg.AppID)
	case ti.ProfileID != "" && string(ti.ProfileID) != c.cfg.PageID:
		add("token", false, "the token belongs to Page %s, not to the configured Page %s", ti.ProfileID, c.cfg.PageID)
	default:
		add("token", true, "the Page token is valid for Page %s and app %s", c.cfg.PageID, c.cfg.AppID)
	}

	if ti.ExpiresAt == 0 {
		add("token expiry", true, "the Page token never expires")
	} else {
		ok, words := expiry("the Page token", time.Unix(ti.ExpiresAt, 0), now)
		add("token expiry", ok, "%s", words)
	}
	if ti.DataAccessExpiresAt != 0 {
		ok, words := expiry("data access (reading comments)", time.Unix(ti.DataAccessExpiresAt, 0), now)
		add("data access expiry", ok, "%s", words)
	}

	if !ti.IsValid {
		add("permissions", false, "the Page token is not valid, so the permissions granted to it do not count")
		return
	}
	var missing []string
	for _, p := range Permissions {
		if !slices.Contains(ti.Scopes, p) || !c.grantedForPage(ti, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		add("permissions", false, "the Page token lacks %s; without them breachcast cannot post and read comments. Grant them to the app and generate a new Page token",
			strings.Join(missing, ", "))
	} else {
		add("permissions", true, "the Page token has %s", strings.Join(Permissions, ", "))
	}
}

// grantedForPage reports whether a granular scope, when Facebook lists one
// for p, includes the configured Page.
func (c *Client) grantedForPage(ti *tokenInfo, p string) bool {
	for _, g := range ti.GranularScopes {
		if g.Scope == p && len(g.TargetIDs) > 0 {
			return slices.Contains(g.TargetIDs, flexID(c.cfg.PageID))
		}
	}
	return true
}

func expiry(what string, at, now time.Time) (bool, string) {
	left := at.Sub(now)
	day := at.UTC().Format("2 Jan 2006 15:04 MST")
	switch {
	case left <= 0:
		return false, fmt.Sprintf("%s expired on %s. %s", what, day, renewAdvice)
	case left <= ExpiryWarning:
		return false, fmt.Sprintf("%s expires on %s, in %s. %s", what, day, humanDays(left), renewAdvice)
	}
	return true, fmt.Sprintf("%s expires on %s, in %s", what, day, humanDays(left))
}

func humanDays(d time.Duration) string {
	days := int(d.Hours() / 24)
	switch days {
	case 0:
		return "less than a day"
	case 1:
		return "1 day"
	}
	return fmt.Sprintf("%d days", days)
}

// reason is the readable part of an error.
func reason(err error) string {
	var ce *channels.Error
	if errors.As(err, &ce) && ce.Message != "" {
		return ce.Message
	}
	return err.Error()
}
