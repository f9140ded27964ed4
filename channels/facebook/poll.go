package facebook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	fb "github.com/huandu/facebook/v2"

	"github.com/breachcast/breachcast"
	"github.com/breachcast/breachcast/channels"
)

// Poll limits: comments per Graph page, and Graph pages read per post in one
// Poll (the rest is read on the next Poll, from the cursor).
const (
	pollPageSize     = 100
	pollPagesPerPost = 20
	maxCursorBytes   = 64 << 10
)

// pollCursor is what the opaque Poll cursor holds: per watched post, Graph's
// "after" cursor of the last comment read.
type pollCursor struct {
	V     int               `json:"v"`
	After map[string]string `json:"after"`
}

func decodePollCursor(s string) (*pollCursor, error) {
	pc := &pollCursor{V: 1, After: map[string]string{}}
	if s == "" {
		return pc, nil
	}
	if len(s) > maxCursorBytes {
		return nil, breachcast.Errorf(breachcast.EINVALID, "facebook poll cursor is %d bytes, more than any this channel makes", len(s))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, pc)
	}
	if err != nil || pc.V != 1 || pc.After == nil {
		return nil, breachcast.Errorf(breachcast.EINVALID, "facebook poll cursor is not one this channel made")
	}
	for id := range pc.After {
		if !objectIDRE.MatchString(id) {
			return nil, breachcast.Errorf(breachcast.EINVALID, "facebook poll cursor names %q, which is not a post id", id)
		}
	}
	return pc, nil
}

func (pc *pollCursor) encode() string {
	b, _ := json.Marshal(pc)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pollTarget is one post whose comments are read.
type pollTarget struct {
	id         string
	incidentID int64
	updateID   int64 // 0 when the post is only some update's root
}

// Poll fetches the comments made since cursor under the watched posts: the
// fallback when webhooks are not set up. In ModePost it reads every watched
// post and root; in ModeComment the root alone (filter=stream brings the
// replies to our update comments with it). The returned cursor makes a
// restart neither miss nor re-read a comment. On error, the replies and
// cursor returned so far are still valid and may be stored. Polling sees
// new comments only: edits and removals arrive by webhook.
func (c *Client) Poll(ctx context.Context, watches []channels.Watch, cursor string) ([]*breachcast.Reply, string, error) {
	cur, err := decodePollCursor(cursor)
	if err != nil {
		return nil, cursor, err
	}
	targets, ours, err := c.pollTargets(watches)
	if err != nil {
		return nil, cursor, err
	}
	next := &pollCursor{V: 1, After: map[string]string{}}
	var replies []*breachcast.Reply
	for i, t := range targets {
		got, after, err := c.pollPost(ctx, t, cur.After[t.id], ours)
		replies = append(replies, got...)
		if after != "" {
			next.After[t.id] = after
		}
		if err == nil {
			continue
		}
		var ce *channels.Error
		if errors.As(err, &ce) && ce.Code == CodeNotFound {
			c.log.Warn("poll: watched post is gone", "post_id", t.id)
			continue
		}
		for _, rest := range targets[i+1:] {
			if a := cur.After[rest.id]; a != "" {
				next.After[rest.id] = a
			}
		}
		return replies, next.encode(), fmt.Errorf("poll comments on %s: %w", t.id, err)
	}
	return replies, next.encode(), nil
}

// pollTargets lists the posts to read, and maps each of our posts and
// comments to the update it belongs to.
func (c *Client) pollTargets(watches []channels.Watch) ([]pollTarget, map[string]pollTarget, error) {
	ours := map[string]pollTarget{}
	for _, w := range watches {
		for _, id := range append([]string{w.Root}, w.Posts...) {
			if id != "" && !objectIDRE.MatchString(id) {
				return nil, nil, breachcast.Errorf(breachcast.EINVALID, "facebook poll: %q is not a Facebook post id", id)
			}
		}
		for _, id := range w.Posts {
			ours[id] = pollTarget{id: id, incidentID: w.IncidentID, updateID: w.UpdateID}
		}
	}
	var targets []pollTarget
	seen := map[string]bool{}
	add := func(id string, w channels.Watch) {
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		t, ok := ours[id]
		if !ok {
			t = pollTarget{id: id, incidentID: w.IncidentID}
		}
		targets = append(targets, t)
	}
	for _, w := range watches {
		if c.cfg.Mode == ModeComment && w.Root != "" {
			add(w.Root, w)
			continue
		}
		add(w.Root, w)
		for _, id := range w.Posts {
			add(id, w)
		}
	}
	return targets, ours, nil
}

type graphComment struct {
	ID          string    `json:"id"`
	Message     string    `json:"message"`
	CreatedTime graphTime `json:"created_time"`
	From        *struct {
		ID   flexID `json:"id"`
		Name string `json:"name"`
	} `json:"from"`
	Parent *struct {
		ID string `json:"id"`
	} `json:"parent"`
}

type commentPage struct {
	Data   []json.RawMessage `json:"data"`
	Paging struct {
		Cursors struct {
			After string `json:"after"`
		} `json:"cursors"`
		Next string `json:"next"`
	} `json:"paging"`
}

// pollPost reads the comments under t after the Graph cursor after, and
// returns them with the cursor of the last one read.
func (c *Client) pollPost(ctx context.Context, t pollTarget, after string, ours map[string]pollTarget) ([]*breachcast.Reply, string, error) {
	var out []*breachcast.Reply
	for range pollPagesPerPost {
		params := fb.Params{
			"fields": "id,from,message,created_time,parent",
			"filter": "stream",
			"order":  "chronological",
			"limit":  pollPageSize,
		}
		if after != "" {
			params["after"] = after
		}
		res, err := c.call(ctx, "GET /{post-id}/comments", "pages_read_engagement", fb.GET, "/"+t.id+"/comments", params)
		if err != nil {
			return out, after, err
		}
		var page commentPage
		if err := decode(res, &page); err != nil {
			return out, after, &channels.Error{Channel: Name, Op: "GET /{post-id}/comments", Message: "unreadable comment list", Err: err}
		}
		for _, raw := range page.Data {
			var gc graphComment
			if err := json.Unmarshal(raw, &gc); err != nil || gc.ID == "" {
				c.log.Warn("poll: unreadable comment skipped", "post_id", t.id)
				continue
			}
			if gc.From != nil && string(gc.From.ID) == c.cfg.PageID {
				continue // the page's own comment: one of our updates
			}
			rep := &breachcast.Reply{
				Channel:    Name,
				ExternalID: gc.ID,
				Action:     breachcast.ReplyAdded,
				Text:       gc.Message,
				InReplyTo:  t.id,
				RootID:     t.id,
				CreatedAt:  gc.CreatedTime.Time,
				EventTime:  gc.CreatedTime.Time,
				Raw:        bytes.Clone(raw),
				IncidentID: t.incidentID,
				UpdateID:   t.updateID,
			}
			if gc.From != nil {
				rep.AuthorID, rep.AuthorName = string(gc.From.ID), gc.From.Name
			}
			if gc.Parent != nil && gc.Parent.ID != "" {
				rep.InReplyTo = gc.Parent.ID
				if o, ok := ours[gc.Parent.ID]; ok {
					rep.IncidentID, rep.UpdateID = o.incidentID, o.updateID
				}
			}
			out = append(out, rep)
		}
		if len(page.Data) > 0 && page.Paging.Cursors.After != "" {
			after = page.Paging.Cursors.After
		}
		if len(page.Data) == 0 || page.Paging.Next == "" {
			return out, after, nil
		}
	}
	return out, after, nil
}
