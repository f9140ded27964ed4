package fbemu

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Graph's limits on text length, in characters.
const (
	maxPostChars    = 63206
	maxCommentChars = 8000
)

func (s *Server) page() actor { return actor{ID: s.opts.PageID, Name: s.opts.PageName} }

func (s *Server) notFound(method, id string) *GraphError {
	e := badParam("") // shape only
	e.Message = fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
		strings.ToLower(method), id)
	e.Type = "GraphMethodException"
	e.Subcode = 33
	return e
}

func needPerm(code int, perm string) *GraphError {
	if code == 10 {
		return gerr(403, 10, "OAuthException", "(#10) This endpoint requires the '%s' permission or the 'Page Public Content Access' feature.", perm)
	}
	return gerr(403, 200, "OAuthException", "(#200) Requires %s permission to manage the object", perm)
}

// debugToken answers GET /debug_token: metadata about input_token. The caller
// authenticates with the Page token itself or with the app token
// "app-id|app-secret".
func (s *Server) debugToken(rc *reqCtx) (any, *GraphError) {
	if rc.method != "GET" {
		return nil, s.notFound(rc.method, "debug_token")
	}
	if e := s.checkParams(rc, "debug_token"); e != nil {
		return nil, e
	}
	appToken := s.opts.AppID + "|" + s.opts.AppSecret
	if rc.token == "" {
		return nil, gerr(400, 104, "OAuthException", "An access token is required to request this resource.")
	}
	if !hmac.Equal([]byte(rc.token), []byte(appToken)) {
		if e := s.authenticate(rc); e != nil {
			return nil, e
		}
	}
	input := rc.get("input_token")
	if input == "" {
		return nil, badParam("The parameter input_token is required")
	}
	s.mu.Lock()
	exp, dexp, perms := s.tokenExpiry, s.dataExpiry, slices.Clone(s.perms)
	s.mu.Unlock()
	data := map[string]any{
		"app_id":                 s.opts.AppID,
		"application":            "breachcast emulator",
		"type":                   "PAGE",
		"profile_id":             s.opts.PageID,
		"user_id":                "100000000009999",
		"issued_at":              s.issuedAt.Unix(),
		"data_access_expires_at": dexp.Unix(),
		"expires_at":             0,
		"is_valid":               true,
		"scopes":                 perms,
	}
	var granular []map[string]any
	for _, p := range perms {
		g := map[string]any{"scope": p}
		if strings.HasPrefix(p, "pages_") {
			g["target_ids"] = []string{s.opts.PageID}
		}
		granular = append(granular, g)
	}
	data["granular_scopes"] = granular
	if !exp.IsZero() {
		data["expires_at"] = exp.Unix()
	}
	now := s.now()
	switch {
	case !hmac.Equal([]byte(input), []byte(s.opts.PageToken)):
		data = map[string]any{"is_valid": false, "scopes": []string{}, "error": map[string]any{
			"code": 190, "message": "Invalid OAuth access token.",
		}}
	case !exp.IsZero() && !now.Before(exp):
		data["is_valid"] = false
		data["error"] = map[string]any{"code": 190, "subcode": 463,
			"message": "Error validating access token: Session has expired on " + exp.UTC().Format("Monday, 02-Jan-06 15:04:05 MST") + "."}
	}
	return map[string]any{"data": data}, nil
}

// node answers GET, POST (update) and DELETE on /{id}.
func (s *Server) node(rc *reqCtx, id string) (any, *GraphError) {
	s.mu.Lock()
	p := s.posts[id]
	c := s.comments[id]
	s.mu.Unlock()
	switch {
	case id == s.opts.PageID:
		if rc.method != "GET" {
			return nil, s.notFound(rc.method, id)
		}
		if e := s.checkParams(rc, epPageGet); e != nil {
			return nil, e
		}
		fields, e := s.fieldsFor(rc, "Page", []string{"id", "name"})
		if e != nil {
			return nil, e
		}
		all := map[string]any{
			"id": s.opts.PageID, "name": s.opts.PageName, "link": "https://www.facebook.com/" + s.opts.PageID,
			"category": "Software company", "fan_count": 1204, "followers_count": 1310, "is_published": true,
			"can_post": true, "username": "breachcastdemo",
		}
		return pick(all, fields), nil
	case p != nil && !p.deleted:
		return s.postNode(rc, p)
	case c != nil && !c.removed:
		return s.commentNode(rc, c)
	}
	return nil, s.notFound(rc.method, id)
}

func (s *Server) postNode(rc *reqCtx, p *post) (any, *GraphError) {
	switch rc.method {
	case "GET":
		if e := s.checkParams(rc, epPostGet); e != nil {
			return nil, e
		}
		if !s.hasPerm("pages_read_engagement") {
			return nil, needPerm(10, "pages_read_engagement")
		}
		fields, e := s.fieldsFor(rc, "PagePost", []string{"created_time", "message", "id"})
		if e != nil {
			return nil, e
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return pick(s.postJSON(p), fields), nil
	case "POST":
		if e := s.checkParams(rc, epPostUpdate); e != nil {
			return nil, e
		}
		if !s.hasPerm("pages_manage_posts") {
			return nil, needPerm(200, "pages_manage_posts")
		}
		verb := ""
		s.mu.Lock()
		if v := rc.get("is_hidden"); v != "" {
			h, err := strconv.ParseBool(v)
			if err != nil {
				s.mu.Unlock()
				return nil, badParam("Param is_hidden must be a boolean")
			}
			p.hidden = h
			verb = map[bool]string{true: "hide", false: "unhide"}[h]
		}
		if m := rc.get("message"); m != "" {
			p.message, p.updated = m, s.now()
			verb = "edited"
		}
		ev := s.postEvent(p, verb)
		s.mu.Unlock()
		if verb != "" {
			s.enqueue(ev)
		}
		return map[string]any{"success": true}, nil
	case "DELETE":
		if e := s.checkParams(rc, epPostDelete); e != nil {
			return nil, e
		}
		if !s.hasPerm("pages_manage_posts") {
			return nil, needPerm(200, "pages_manage_posts")
		}
		s.mu.Lock()
		p.deleted = true
		ev := s.postEvent(p, "remove")
		s.mu.Unlock()
		s.enqueue(ev)
		return map[string]any{"success": true}, nil
	}
	return nil, s.notFound(rc.method, p.id)
}

func (s *Server) commentNode(rc *reqCtx, c *comment) (any, *GraphError) {
	switch rc.method {
	case "GET":
		if e := s.checkParams(rc, epCommentGet); e != nil {
			return nil, e
		}
		if !s.hasPerm("pages_read_engagement") {
			return nil, needPerm(10, "pages_read_engagement")
		}
		fields, e := s.fieldsFor(rc, "Comment", []string{"created_time", "from", "message", "id"})
		if e != nil {
			return nil, e
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return pick(s.commentJSON(c), fields), nil
	case "POST":
		if e := s.checkParams(rc, epCommentUpdate); e != nil {
			return nil, e
		}
		if !s.hasPerm("pages_manage_engagement") {
			return nil, needPerm(200, "pages_manage_engagement")
		}
		var verb string
		s.mu.Lock()
		if v := rc.get("is_hidden"); v != "" {
			h, err := strconv.ParseBool(v)
			if err != nil {
				s.mu.Unlock()
				return nil, badParam("Param is_hidden must be a boolean")
			}
			c.hidden = h
			verb = map[bool]string{true: "hide", false: "unhide"}[h]
		}
		if m := rc.get("message"); m != "" {
			c.message = m
			verb = "edited"
		}
		ev := s.commentEvent(c, verb)
		s.mu.Unlock()
		if verb != "" {
			s.enqueue(ev)
		}
		return map[string]any{"success": true}, nil
	case "DELETE":
		if e := s.checkParams(rc, epCommentDelete); e != nil {
			return nil, e
		}
		if !s.hasPerm("pages_manage_engagement") {
			return nil, needPerm(200, "pages_manage_engagement")
		}
		s.mu.Lock()
		c.removed = true
		ev := s.commentEvent(c, "remove")
		s.mu.Unlock()
		s.enqueue(ev)
		return map[string]any{"success": true}, nil
	}
	return nil, s.notFound(rc.method, c.id)
}

// edge answers /{id}/feed and /{id}/comments.
func (s *Server) edge(rc *reqCtx, id, edge string) (any, *GraphError) {
	switch {
	case edge == "feed" && id == s.opts.PageID && rc.method == "POST":
		return s.createPost(rc)
	case edge == "feed" && id == s.opts.PageID && rc.method == "GET":
		return s.listPosts(rc)
	case edge == "comments":
		s.mu.Lock()
		p, c := s.posts[id], s.comments[id]
		s.mu.Unlock()
		var node string
		switch {
		case p != nil && !p.deleted:
			node = "PagePost"
		case c != nil && !c.removed:
			node = "Comment"
		default:
			return nil, s.notFound(rc.method, id)
		}
		switch rc.method {
		case "POST":
			return s.createComment(rc, node, id)
		case "GET":
			return s.listComments(rc, node, id)
		}
	}
	return nil, s.notFound(rc.method, id+"/"+edge)
}

func (s *Server) createPost(rc *reqCtx) (any, *GraphError) {
	if e := s.checkParams(rc, epPageFeedPost); e != nil {
		return nil, e
	}
	if !s.hasPerm("pages_manage_posts") || !s.hasPerm("pages_read_engagement") {
		return nil, gerr(403, 200, "OAuthException", "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts permission")
	}
	msg, link := rc.get("message"), rc.get("link")
	if strings.TrimSpace(msg) == "" && link == "" {
		return nil, badParam("Missing message or attachment")
	}
	if utf8.RuneCountInString(msg) > maxPostChars {
		return nil, badParam("Message is too long: the limit is %d characters", maxPostChars)
	}
	if link != "" {
		if u, err := url.Parse(link); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, badParam("Param link must be a valid URL")
		}
	}
	now := s.now()
	s.mu.Lock()
	for _, p := range s.postOrder {
		if !p.deleted && p.message == msg && p.link == link && now.Sub(p.created) < 24*time.Hour {
			s.mu.Unlock()
			return nil, gerr(400, 506, "OAuthException", "(#506) Duplicate status message")
		}
	}
	s.nextID++
	num := strconv.FormatInt(s.nextID, 10)
	p := &post{id: s.opts.PageID + "_" + num, num: num, message: msg, link: link, from: s.page(), created: now, updated: now,
		unpublsh: rc.get("published") == "false"}
	s.posts[p.id] = p
	s.postOrder = append(s.postOrder, p)
	ev := s.postEvent(p, "add")
	s.mu.Unlock()
	s.enqueue(ev)
	if s.opts.AutoReply {
		s.scheduleAutoReplies(p.id)
	}
	return map[string]any{"id": p.id}, nil
}

func (s *Server) listPosts(rc *reqCtx) (any, *GraphError) {
	if e := s.checkParams(rc, epPageFeedGet); e != nil {
		return nil, e
	}
	if !s.hasPerm("pages_read_engagement") {
		return nil, needPerm(10, "pages_read_engagement")
	}
	fields, e := s.fieldsFor(rc, "PagePost", []string{"created_time", "message", "id"})
	if e != nil {
		return nil, e
	}
	limit := 25
	if l, err := strconv.Atoi(rc.get("limit")); err == nil && l > 0 && l <= 100 {
		limit = l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data := []any{}
	for i := len(s.postOrder) - 1; i >= 0 && len(data) < limit; i-- {
		if p := s.postOrder[i]; !p.deleted && (!p.hidden || rc.get("include_hidden") == "true") {
			data = append(data, pick(s.postJSON(p), fields))
		}
	}
	return map[string]any{"data": data}, nil
}

func (s *Server) createComment(rc *reqCtx, node, target string) (any, *GraphError) {
	ep := epPostComment
	if node == "Comment" {
		ep = epCommentReply
	}
	if e := s.checkParams(rc, ep); e != nil {
		return nil, e
	}
	if !s.hasPerm("pages_manage_engagement") {
		return nil, needPerm(200, "pages_manage_engagement")
	}
	msg := rc.get("message")
	if strings.TrimSpace(msg) == "" {
		return nil, badParam("Missing message or attachment")
	}
	if utf8.RuneCountInString(msg) > maxCommentChars {
		return nil, badParam("Comment is too long: the limit is %d characters", maxCommentChars)
	}
	c, ev, err := s.addComment(target, s.page(), msg)
	if err != nil {
		return nil, err
	}
	s.enqueue(ev)
	return map[string]any{"id": c.id}, nil
}

// addComment stores a comment on target (a post or a comment) by from.
func (s *Server) addComment(target string, from actor, msg string) (*comment, []byte, *GraphError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	postID, parentID := target, target
	if p := s.posts[target]; p == nil || p.deleted {
		pc := s.comments[target]
		if pc == nil || pc.removed {
			return nil, nil, s.notFound("POST", target)
		}
		// Facebook keeps one level of replies: a reply to a reply hangs
		// under the top-level comment.
		postID, parentID = pc.postID, pc.id
		if pc.parentID != pc.postID {
			parentID = pc.parentID
		}
	}
	s.nextID++
	s.nextSeq++
	p := s.posts[postID]
	c := &comment{id: p.num + "_" + strconv.FormatInt(s.nextID, 10), postID: postID, parentID: parentID,
		seq: s.nextSeq, from: from, message: msg, created: s.now()}
	s.comments[c.id] = c
	return c, s.commentEvent(c, "add"), nil
}

// listComments answers GET /{id}/comments with Graph's cursor paging.
func (s *Server) listComments(rc *reqCtx, node, target string) (any, *GraphError) {
	ep := epPostComments
	if node == "Comment" {
		ep = epCommentReplies
	}
	if e := s.checkParams(rc, ep); e != nil {
		return nil, e
	}
	if !s.hasPerm("pages_read_engagement") {
		return nil, needPerm(10, "pages_read_engagement")
	}
	fields, e := s.fieldsFor(rc, "Comment", []string{"created_time", "from", "message", "id"})
	if e != nil {
		return nil, e
	}
	filter := rc.get("filter")
	if filter == "" {
		filter = "toplevel"
	}
	if filter != "toplevel" && filter != "stream" {
		return nil, badParam("Param filter must be one of {toplevel, stream}")
	}
	order := rc.get("order")
	if order == "" {
		order = "chronological"
	}
	if order != "chronological" && order != "reverse_chronological" {
		return nil, badParam("Param order must be one of {chronological, reverse_chronological}")
	}
	limit := 25
	if v := rc.get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l <= 0 {
			return nil, badParam("Param limit must be a positive integer")
		}
		limit = min(l, 100)
	}
	var since time.Time
	if v := rc.get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, badParam("Param since must be a unix timestamp")
		}
		since = time.Unix(n, 0)
	}
	var after, before int64 = -1, -1
	if v := rc.get("after"); v != "" {
		n, ok := decodeCursor(v)
		if !ok {
			return nil, badParam("Invalid cursor for param after")
		}
		after = n
	}
	if v := rc.get("before"); v != "" {
		n, ok := decodeCursor(v)
		if !ok {
			return nil, badParam("Invalid cursor for param before")
		}
		before = n
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*comment
	for _, c := range s.comments {
		if c.removed || c.created.Before(since) {
			continue
		}
		if c.parentID == target || (filter == "stream" && node == "PagePost" && c.postID == target) {
			all = append(all, c)
		}
	}
	rev := order == "reverse_chronological"
	slices.SortFunc(all, func(a, b *comment) int {
		if rev {
			return int(b.seq - a.seq)
		}
		return int(a.seq - b.seq)
	})
	// Cursors name a comment by its sequence number, so they stay valid
	// when comments are added or removed: "after" is everything later in
	// display order, "before" everything earlier.
	count := func(x int64, orEqual bool) int {
		n := 0
		for _, c := range all {
			if c.seq == x && orEqual || (!rev && c.seq < x) || (rev && c.seq > x) {
				n++
			}
		}
		return n
	}
	lo, hi := 0, len(all) // window [lo, hi)
	if after >= 0 {
		lo = count(after, true)
	}
	if before >= 0 {
		hi = count(before, false)
	}
	if lo > hi {
		lo = hi
	}
	start, end := lo, min(lo+limit, hi)
	if before >= 0 && after < 0 {
		start, end = max(hi-limit, lo), hi
	}
	data := []any{}
	for _, c := range all[start:end] {
		data = append(data, pick(s.commentJSON(c), fields))
	}
	out := map[string]any{"data": data}
	if end > start {
		first, last := encodeCursor(all[start].seq), encodeCursor(all[end-1].seq)
		paging := map[string]any{"cursors": map[string]string{"before": first, "after": last}}
		q := url.Values{}
		for k, v := range rc.params {
			switch k {
			case "access_token", "appsecret_proof", "after", "before", "method", "format":
			default:
				q[k] = v
			}
		}
		link := rc.base + target + "/comments?"
		if end < len(all) {
			q.Set("after", last)
			paging["next"] = link + q.Encode()
			q.Del("after")
		}
		if start > 0 {
			q.Set("before", first)
			paging["previous"] = link + q.Encode()
		}
		out["paging"] = paging
	}
	return out, nil
}

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("emu-comment:" + strconv.FormatInt(seq, 10)))
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), "emu-comment:")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n >= 0
}

// postJSON renders a post with every field the emulator serves. s.mu held.
func (s *Server) postJSON(p *post) map[string]any {
	return map[string]any{
		"id": p.id, "message": p.message, "created_time": p.created.UTC().Format(graphTime),
		"updated_time": p.updated.UTC().Format(graphTime), "from": p.from, "is_hidden": p.hidden,
		"is_published": !p.unpublsh, "permalink_url": "https://www.facebook.com/" + p.id,
	}
}

// commentJSON renders a comment with every field the emulator serves. s.mu held.
func (s *Server) commentJSON(c *comment) map[string]any {
	m := map[string]any{
		"id": c.id, "message": c.message, "created_time": c.created.UTC().Format(graphTime), "from": c.from,
		"is_hidden": c.hidden, "can_hide": c.from.ID != s.opts.PageID, "can_remove": true,
		"permalink_url": "https://www.facebook.com/" + c.postID + "?comment_id=" + c.id,
		"object":        map[string]string{"id": c.postID},
	}
	n := 0
	for _, o := range s.comments {
		if o.parentID == c.id && !o.removed {
			n++
		}
	}
	m["comment_count"] = n
	if c.parentID != c.postID {
		if pc := s.comments[c.parentID]; pc != nil {
			m["parent"] = map[string]any{"id": pc.id, "message": pc.message, "from": pc.from,
				"created_time": pc.created.UTC().Format(graphTime)}
		}
	}
	return m
}

func pick(all map[string]any, fields []string) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	if _, ok := out["id"]; !ok {
		out["id"] = all["id"] // Graph always returns the id
	}
	return out
}
