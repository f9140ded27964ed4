package status

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/breachcast/breachcast"
	"github.com/gorilla/websocket"
)

func (e *env) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(e.url, "http") + "/live" + query
}

func (e *env) dial(t *testing.T, query string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(e.wsURL(query), hdr)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial /live%s: %v (HTTP %d)", query, err, code)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readMsg(t *testing.T, c *websocket.Conn, within time.Duration) liveJSON {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("no live message within %v: %v", within, err)
	}
	var m liveJSON
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("live message is not JSON: %v", err)
	}
	return m
}

func TestLivePushesANewUpdateToEveryViewerWithinASecond(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var viewers []*websocket.Conn
	for range 20 {
		viewers = append(viewers, e.dial(t, "?since=5", nil))
	}
	waitFor(t, "viewers registered", time.Second, func() bool { return e.srv.hub.count() == 20 })

	start := time.Now()
	e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Monitoring, breachcast.SeverityCritical, "A fix is deployed.", t0.Add(2*time.Hour))
	e.refresh()
	for i, c := range viewers {
		m := readMsg(t, c, time.Second)
		if m.Type != "update" || m.ID != 6 || m.Prev != 5 || m.Slug != "breach-2026" || !m.Open || m.Status != "monitoring" {
			t.Fatalf("viewer %d got %+v", i, m)
		}
		// Only the new entry and the card's header travel, not the timeline.
		if !strings.Contains(m.Entry, "A fix is deployed.") || !strings.Contains(m.Entry, "Status changed from Identified to Monitoring") ||
			!strings.Contains(m.Head, "badge-monitoring") || m.Card != "" || strings.Contains(m.Entry, "We found the cause.") {
			t.Fatalf("viewer %d: the delta is wrong: %+v", i, m)
		}
		if !strings.Contains(m.Banner, `id="overall"`) {
			t.Fatalf("viewer %d: no banner", i)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("delivery took %v", d)
	}
	// One prepared frame shared by all: the snapshot holds it.
	if msgs, _ := e.srv.hub.catchUp(5); msgs[0].pm == nil {
		t.Fatal("no prepared message in the snapshot")
	}
}

func TestLiveCatchUpSendsWhatTheViewerMissed(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	// A viewer that has update 2 (the db incident's last) missed 3, 4 and 5:
	// all of the breach incident, as one card.
	c := e.dial(t, "?since=2", nil)
	m := readMsg(t, c, time.Second)
	if m.Slug != "breach-2026" || m.ID != 5 {
		t.Fatalf("catch-up = %+v", m)
	}
	// A viewer with nothing gets every incident, oldest change first.
	c0 := e.dial(t, "?since=0", nil)
	if a, b := readMsg(t, c0, time.Second), readMsg(t, c0, time.Second); a.Slug != "db-outage" || b.Slug != "breach-2026" {
		t.Fatalf("full catch-up order: %s then %s", a.Slug, b.Slug)
	}
	// An up-to-date viewer gets nothing until the next publish.
	cur := e.dial(t, "?since=5", nil)
	cur.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := cur.ReadMessage(); err == nil {
		t.Fatal("an up-to-date viewer received a message")
	}
}

func TestLiveRejectsBadRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://www.acme.test"} })
	e.seed()
	tests := []struct {
		name  string
		query string
		hdr   http.Header
		want  int
	}{
		{"foreign origin", "", http.Header{"Origin": {"https://evil.test"}}, http.StatusForbidden},
		{"negative since", "?since=-1", nil, http.StatusBadRequest},
		{"garbage since", "?since=abc", nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(e.wsURL(tt.query), tt.hdr)
			if err == nil || resp == nil || resp.StatusCode != tt.want {
				t.Fatalf("err %v, response %v, want HTTP %d", err, resp, tt.want)
			}
		})
	}
	for _, o := range []string{e.url, "https://www.acme.test"} {
		e.dial(t, "", http.Header{"Origin": {o}})
	}
	if r, _ := e.get("/live"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET /live: %d, want 400", r.StatusCode)
	}
}

func TestLiveCapsConnectionsPerAddressAndInTotal(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxPerAddress = 20; c.MaxConnections = 1000 })
	e.seed()
	// Thousands of attempts from one address: exactly the cap gets in.
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range 2000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, resp, err := websocket.DefaultDialer.Dial(e.wsURL("?since=5"), nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				codes[101]++
				t.Cleanup(func() { c.Close() })
			case resp != nil:
				codes[resp.StatusCode]++
			default:
				codes[0]++
			}
		}()
	}
	wg.Wait()
	if codes[101] != 20 || codes[http.StatusTooManyRequests] != 1980 {
		t.Fatalf("outcomes %v, want 20 upgrades and 1980 answers 429", codes)
	}
	if n := e.srv.hub.count(); n != 20 {
		t.Fatalf("hub holds %d viewers", n)
	}

	small := newEnv(t, func(c *Config) { c.MaxConnections = 3 })
	small.seed()
	for range 3 {
		small.dial(t, "", nil)
	}
	_, resp, err := websocket.DefaultDialer.Dial(small.wsURL(""), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("beyond the total cap: err %v resp %v, want 503 with Retry-After", err, resp)
	}
}

func TestLivePingsAndDropsViewersThatNeverAnswer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PingInterval = 100 * time.Millisecond })
	e.seed()
	// A viewer that reads answers pings (gorilla replies from its read loop).
	alive := e.dial(t, "?since=5", nil)
	pings := make(chan struct{}, 100)
	alive.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := alive.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// A viewer that never reads never answers.
	mute := e.dial(t, "?since=5", nil)
	_ = mute
	waitFor(t, "both registered", time.Second, func() bool { return e.srv.hub.count() == 2 })
	waitFor(t, "the silent viewer dropped", 3*time.Second, func() bool { return e.srv.hub.count() == 1 })
	for range 5 {
		select {
		case <-pings:
		case <-time.After(time.Second):
			t.Fatal("the answering viewer is not pinged")
		}
	}
	if n := e.srv.hub.count(); n != 1 {
		t.Fatalf("%d viewers after several ping intervals, want the answering one", n)
	}
}

func TestLimitsUseTheConfiguredClientAddress(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxPerAddress = 1
		c.ClientAddr = func(r *http.Request) string { return r.Header.Get("X-Client") }
	})
	e.seed()
	e.dial(t, "", http.Header{"X-Client": {"a"}})
	e.dial(t, "", http.Header{"X-Client": {"b"}})
	if _, resp, err := websocket.DefaultDialer.Dial(e.wsURL(""), http.Header{"X-Client": {"a"}}); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second viewer for client a: %v", err)
	}
}

func TestLiveClosesViewersThatSendOversizedOrMalformedFrames(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()

	big := e.dial(t, "?since=5", nil)
	big.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 64<<10)))
	big.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _, err := big.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("oversized frame: got %v, want close 1009", err)
	}

	// Raw garbage after a real handshake: an unmasked frame with a reserved
	// opcode, which the protocol forbids from a client.
	c := e.dial(t, "?since=5", nil)
	raw := c.NetConn()
	raw.Write([]byte{0x8f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept a connection that sent a malformed frame")
		}
	}

	// A client that sends a tiny valid frame is kept.
	ok := e.dial(t, "?since=5", nil)
	ok.WriteMessage(websocket.TextMessage, []byte("hi"))
	waitFor(t, "bad viewers dropped", 2*time.Second, func() bool { return e.srv.hub.count() == 1 })

	// And the server still serves.
	e.src.publish("breach-2026", "Customer email addresses exposed", breachcast.Resolved, breachcast.SeverityCritical, "Done.", t0.Add(3*time.Hour))
	e.refresh()
	if m := readMsg(t, ok, time.Second); m.ID != 6 {
		t.Fatalf("after bad frames: %+v", m)
	}
}

// hubServer serves websockets straight into h (no snapshot involved).
func hubServer(t *testing.T, h *hub) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.reserve("a"); err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			h.release("a")
			return
		}
		h.attach(conn, "a", 0)
	}))
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

func bigMessage(id int64, size int) *liveMessage {
	m := &liveMessage{id: id, json: []byte(strings.Repeat("x", size))}
	m.pm, _ = websocket.NewPreparedMessage(websocket.TextMessage, m.json)
	return m
}

func TestLiveDropsAViewerThatStopsReadingAndKeepsServingTheOthers(t *testing.T) {
	h := newHub(hubConfig{maxConns: 10, maxPerAddr: 10, queue: 8, writeTimeout: 200 * time.Millisecond, ping: time.Hour, shards: 1})
	defer h.stop()
	u := hubServer(t, h)
	slow, _, err := websocket.DefaultDialer.Dial(u, nil) // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	waitFor(t, "both attached", time.Second, func() bool { return h.count() == 2 })
	fast.SetReadLimit(-1)
	for i := int64(1); h.count() == 2; i++ {
		if i > 200 {
			t.Fatal("a viewer that never reads was never dropped")
		}
		h.publish(nil, []*liveMessage{bigMessage(i, 512<<10)})
		fast.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, b, err := fast.ReadMessage(); err != nil || len(b) != 512<<10 {
			t.Fatalf("the reading viewer stopped receiving at message %d: %v", i, err)
		}
	}
	// The remaining viewer is the fast one: it still receives.
	h.publish(nil, []*liveMessage{bigMessage(999, 10)})
	fast.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, b, err := fast.ReadMessage(); err != nil || len(b) != 10 {
		t.Fatalf("after the drop: %v", err)
	}
}

func TestLiveDropsAViewerWhoseQueueOverflows(t *testing.T) {
	h := newHub(hubConfig{maxConns: 10, maxPerAddr: 10, queue: 2, writeTimeout: time.Second, ping: time.Hour, shards: 1})
	defer h.stop()
	c, _, err := websocket.DefaultDialer.Dial(hubServer(t, h), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "attached", time.Second, func() bool { return h.count() == 1 })
	sh := h.shards[0]
	var vc *wsClient
	sh.mu.Lock()
	for k := range sh.clients {
		vc = k
	}
	// As if the writer had not caught up: the queue is already full.
	m := bigMessage(1, 10)
	vc.queue = []*liveMessage{m, m}
	sh.mu.Unlock()
	sh.enqueue([]*liveMessage{bigMessage(2, 10)})
	sh.mu.Lock()
	_, kept := sh.clients[vc]
	sh.mu.Unlock()
	if kept {
		t.Fatal("a viewer whose queue overflowed was kept")
	}
	waitFor(t, "slot freed", time.Second, func() bool { return h.count() == 0 })
}

func TestSSEStreamsUpdatesAndResumesFromLastEventID(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	req, _ := http.NewRequest("GET", e.url+"/live/sse", nil)
	req.Header.Set("Last-Event-ID", "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan [2]string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				events <- [2]string{id, line[6:]}
			}
		}
		close(events)
	}()
	next := func() (string, liveJSON) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			var m liveJSON
			if err := json.Unmarshal([]byte(ev[1]), &m); err != nil {
				t.Fatal(err)
			}
			return ev[0], m
		case <-time.After(2 * time.Second):
			t.Fatal("no event within 2s")
		}
		panic("unreachable")
	}
	if id, m := next(); id != "5" || m.Slug != "breach-2026" {
		t.Fatalf("catch-up event %s %+v", id, m)
	}
	e.src.publish("new-one", "Second incident", breachcast.Investigating, breachcast.SeverityMinor, "Also this.", t0.Add(2*time.Hour))
	e.refresh()
	if id, m := next(); id != "6" || m.Slug != "new-one" || m.Type != "update" || m.Prev != 0 || !strings.Contains(m.Card, `id="incident-new-one"`) {
		t.Fatalf("live event for a new incident (which carries its card) %s %+v", id, m)
	}
	if r, _ := e.get("/live/sse?since=x"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage since: %d", r.StatusCode)
	}
}

func TestPollingFallback(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	resp, body := e.get("/live/since?id=2")
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	var got struct {
		LastID   int64      `json:"last_id"`
		Messages []liveJSON `json:"messages"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.LastID != 5 || len(got.Messages) != 1 || got.Messages[0].Slug != "breach-2026" {
		t.Fatalf("since=2: %+v", got)
	}
	_, body = e.get("/live/since?id=5")
	json.Unmarshal([]byte(body), &got)
	if len(got.Messages) != 0 {
		t.Fatalf("since=5 returned %d messages", len(got.Messages))
	}
	if r, _ := e.get("/live/since?id=-3"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("negative id: %d", r.StatusCode)
	}
}

func TestClosingTheServerDisconnectsViewers(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	c := e.dial(t, "?since=5", nil)
	waitFor(t, "registered", time.Second, func() bool { return e.srv.hub.count() == 1 })
	e.srv.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("viewer still connected after Close")
	}
	waitFor(t, "slots freed", time.Second, func() bool { return e.srv.hub.count() == 0 })
}
