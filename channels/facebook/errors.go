package facebook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "github.com/huandu/facebook/v2"

	"github.com/breachcast/breachcast/channels"
)

// Codes set on *channels.Error by this channel. They group Graph's numeric
// codes (kept in the message) by what the operator has to do.
const (
	CodeToken      = "token"      // the Page token is expired, revoked or invalid: renew it
	CodePermission = "permission" // the token lacks a permission: grant it
	CodeDuplicate  = "duplicate"  // Facebook refused an identical post
	CodeRateLimit  = "rate_limit" // throttled: retry after RetryAfter
	CodeTransient  = "transient"  // Facebook had a temporary failure: retry
	CodeInvalid    = "invalid"    // the request itself is wrong
	CodeNotFound   = "not_found"  // the post or comment does not exist (any more)
	CodeBlocked    = "blocked"    // Facebook blocked the action for policy reasons
)

// defaultRateLimitWait is used when Graph throttles without saying for how
// long.
const defaultRateLimitWait = time.Minute

// Subcodes of OAuthException that mean the token itself is unusable.
var tokenSubcodes = map[int]bool{458: true, 459: true, 460: true, 463: true, 464: true, 467: true, 492: true}

var permissionRE = regexp.MustCompile(`\b(pages_[a-z_]+|publish_[a-z_]+|read_insights|manage_pages)\b`)

// graphError turns a Graph error object into a *channels.Error saying
// whether and when to retry. op names the call ("POST /{page-id}/feed") and
// perm the permission the call needs, named when Graph does not name one.
func graphError(op, perm string, status int, h http.Header, ge *fb.Error, now time.Time) *channels.Error {
	e := &channels.Error{Channel: Name, Op: op, Status: status, Err: ge}
	ref := "Graph error " + strconv.Itoa(ge.Code)
	if ge.ErrorSubcode != 0 {
		ref += "/" + strconv.Itoa(ge.ErrorSubcode)
	}
	words := strings.TrimSpace(ge.Message)
	if ge.TraceID != "" {
		ref += ", fbtrace_id " + ge.TraceID
	}
	said := fmt.Sprintf("(%s: %s)", ref, words)

	switch code := ge.Code; {
	case code == 190 || code == 102 || (ge.Type == "OAuthException" && tokenSubcodes[ge.ErrorSubcode]):
		e.Code, e.Permanent = CodeToken, true
		e.Message = "the Facebook Page access token is expired, revoked or invalid " + said +
			"; renew the Page token and update the facebook channel's configuration"
	case code == 3 || code == 10 || (code >= 200 && code <= 299):
		e.Code, e.Permanent = CodePermission, true
		var named []string
		for _, m := range permissionRE.FindAllString(words, -1) {
			if !slices.Contains(named, m) {
				named = append(named, m)
			}
		}
		if len(named) == 0 && perm != "" {
			named = []string{perm}
		}
		what := "a permission it needs"
		switch len(named) {
		case 0:
		case 1:
			what = "the " + named[0] + " permission"
		default:
			what = "the " + strings.Join(named, " and ") + " permissions"
		}
		e.Message = "the Facebook Page token lacks " + what + " " + said +
			"; grant it to the app and generate a new Page token"
	case code == 506:
		e.Code, e.Permanent = CodeDuplicate, true
		e.Message = "Facebook refused the post as a duplicate of one already on the Page " + said
	case code == 4 || code == 17 || code == 32 || code == 341 || code == 613 || (code >= 80000 && code <= 80014):
		e.Code = CodeRateLimit
		e.RetryAfter = rateLimitWait(h, now)
		e.Message = "Facebook is throttling this app or Page " + said
	case code == 1 || code == 2 || ge.IsTransient || status >= 500:
		e.Code = CodeTransient
		e.RetryAfter = channels.RetryAfter(h, now)
		e.Message = "Facebook had a temporary failure " + said
	case code == 100 && ge.ErrorSubcode == 33:
		e.Code, e.Permanent = CodeNotFound, true
		e.Message = "the Facebook object does not exist or cannot be reached with this token " + said
	case code == 100:
		e.Code, e.Permanent = CodeInvalid, true
		e.Message = "Facebook rejected the request " + said
	case code == 368:
		e.Code, e.Permanent = CodeBlocked, true
		e.Message = "Facebook blocked the action as abusive; review the Page in Facebook's Support Inbox " + said
	default:
		e.Code = strconv.Itoa(code)
		e.Permanent = status == 0 || channels.StatusPermanent(status)
		e.Message = "Facebook refused the request " + said
	}
	return e
}

// usage is one entry of Graph's usage headers.
type usage struct {
	EstimatedTimeToRegainAccess int `json:"estimated_time_to_regain_access"` // minutes
}

// rateLimitWait reads how long Graph expects throttling to last: the largest
// estimated_time_to_regain_access (minutes) in X-Business-Use-Case-Usage,
// X-App-Usage or X-Page-Usage, else Retry-After, else a minute.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	mins := 0
	for _, name := range []string{"X-App-Usage", "X-Page-Usage"} {
		var u usage
		if v := h.Get(name); v != "" && json.Unmarshal([]byte(v), &u) == nil {
			mins = max(mins, u.EstimatedTimeToRegainAccess)
		}
	}
	if v := h.Get("X-Business-Use-Case-Usage"); v != "" {
		var buc map[string][]usage
		if json.Unmarshal([]byte(v), &buc) == nil {
			for _, list := range buc {
				for _, u := range list {
					mins = max(mins, u.EstimatedTimeToRegainAccess)
				}
			}
		}
	}
	if mins > 0 {
		return time.Duration(mins) * time.Minute
	}
	if d := channels.RetryAfter(h, now); d > 0 {
		return d
	}
	return defaultRateLimitWait
}
