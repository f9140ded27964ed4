package twitter

import (
	"fmt"
	"testing"
	"time"

	"github.com/breachcast/breachcast/channels"
	"github.com/breachcast/breachcast/emulators/xemu"
)

func benchClient(b *testing.B) (*Client, *xemu.Server) {
	b.Helper()
	unlimited := xemu.Limit{Requests: 1 << 30, Window: time.Hour}
	emu := xemu.New(xemu.Options{
		ConsumerKey: testConsumerKey, ConsumerSecret: testConsumerSecret, AccessToken: testAccessToken, AccessSecret: testAccessSecret,
		Limits: map[string]xemu.Limit{xemu.EndpointCreate: unlimited, xemu.EndpointSearch: unlimited, xemu.EndpointMentions: unlimited},
	})
	u, err := emu.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = emu.Close() })
	cfg := validConfig()
	cfg.BaseURL, cfg.UserID, cfg.Username = u, xemu.DefaultUserID, xemu.DefaultUsername
	c, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c, emu
}

// BenchmarkPublish is one signed POST /2/tweets to the emulator on loopback.
func BenchmarkPublish(b *testing.B) {
	c, _ := benchClient(b)
	for i := 0; b.Loop(); i++ {
		if _, err := c.Publish(ctx, &channels.Post{Text: fmt.Sprintf("update %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPoll500 reads a conversation of 500 replies from scratch
// (5 search pages and 5 mentions pages).
func BenchmarkPoll500(b *testing.B) {
	c, emu := benchClient(b)
	r, err := c.Publish(ctx, &channels.Post{Text: "root"})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 500 {
		emu.AddReply(r.ExternalID, fmt.Sprintf("c%d", i), "question")
	}
	watches := []channels.Watch{{Root: r.ExternalID}}
	for b.Loop() {
		replies, _, err := c.Poll(ctx, watches, "")
		if err != nil || len(replies) != 500 {
			b.Fatalf("%d replies, %v", len(replies), err)
		}
	}
}
