package facebook

import (
	"encoding/json"
	"testing"
	"time"
)

func TestGraphTimestampsInEveryShape(t *testing.T) {
	want := time.Date(2015, 12, 3, 9, 30, 3, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{`1449135003`, want, false},
		{`1449135003000`, want, false}, // milliseconds
		{`"2015-12-03T09:30:03+0000"`, want, false},
		{`"2015-12-03T10:30:03+01:00"`, want, false},
		{`"1449135003"`, want, false},
		{`null`, time.Time{}, false},
		{`""`, time.Time{}, false},
		{`0`, time.Time{}, false},
		{`"yesterday"`, time.Time{}, true},
		{`true`, time.Time{}, true},
	}
	for _, tt := range tests {
		var g graphTime
		err := json.Unmarshal([]byte(tt.in), &g)
		if (err != nil) != tt.bad || !g.Equal(tt.want) {
			t.Errorf("%s: got %v, %v", tt.in, g.Time, err)
		}
	}
}

func TestIDsAsStringsOrNumbers(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{`"1234567890321"`, "1234567890321", false},
		{`1234567890321`, "1234567890321", false},
		{`null`, "", false},
		{`{"id":1}`, "", true},
	}
	for _, tt := range tests {
		var id flexID
		err := json.Unmarshal([]byte(tt.in), &id)
		if (err != nil) != tt.bad || string(id) != tt.want {
			t.Errorf("%s: got %q, %v", tt.in, id, err)
		}
	}
	c, err := New(Config{AppID: "1", AppSecret: "s", PageID: "42", PageToken: "t"})
	if err != nil || c.Name() != "facebook" {
		t.Errorf("Name = %q, %v", c.Name(), err)
	}
}
