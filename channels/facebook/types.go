package facebook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// flexID is a Graph id sent as a JSON string or, in older webhook shapes
// (sender_id, from.id), as a number.
type flexID string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("id %s is neither a string nor a number", b)
		}
		*f = flexID(n.String())
	}
	return nil
}

// graphTime is a Graph timestamp: epoch seconds in webhooks,
// "2006-01-02T15:04:05+0000" in API responses.
type graphTime struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *graphTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			t.Time = time.Time{}
			return nil
		}
		for _, layout := range []string{"2006-01-02T15:04:05-0700", time.RFC3339} {
			if v, err := time.Parse(layout, s); err == nil {
				t.Time = v.UTC()
				return nil
			}
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			t.Time = epoch(n)
			return nil
		}
		return fmt.Errorf("time %q is not a Graph timestamp", s)
	}
	n, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("time %s is not a Graph timestamp", b)
	}
	t.Time = epoch(int64(n))
	return nil
}

// epoch reads seconds, or milliseconds for values too large to be seconds
// (some webhook objects send those).
func epoch(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	if n > 1e12 {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}
