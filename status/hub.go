package status

import (
	"cmp"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The hub keeps every live viewer and pushes new messages to them.
//
// Memory per idle viewer is what limits a crowd, so a viewer costs one
// goroutine (its reader, parked in the netpoller), a small read buffer and a
// few small structs: writes are done by one writer goroutine per shard, not a
// goroutine per viewer; frames are prepared once per message and written
// without a per-connection write buffer; a viewer whose bounded queue is full
// is dropped (it reconnects and catches up) instead of being waited for.

type hubConfig struct {
	maxConns, maxPerAddr, queue int
	writeTimeout, ping          time.Duration
	shards                      int
	log                         *slog.Logger
}

var (
	errHubFull = errors.New("too many live viewers")
	errAddrCap = errors.New("too many live connections from your address")
	errRefused = errors.New("live updates are not accepted right now")
)

type hub struct {
	cfg hubConfig

	// mu orders publishes against new viewers' catch-up, so a viewer either
	// catches up from the new snapshot or receives its broadcast: never
	// neither. It also guards the counters and the SSE viewers.
	mu      sync.Mutex
	catch   []*liveMessage // catch-up messages, one per incident, by ascending id
	total   int
	perAddr map[string]int
	sse     map[*sseClient]struct{}

	shards []*shard
	next   atomic.Uint32
	refuse atomic.Bool // tests: refuse new viewers

	stopOnce sync.Once
	stopc    chan struct{}
	wg       sync.WaitGroup
}

type shard struct {
	h       *hub
	mu      sync.Mutex
	clients map[*wsClient]struct{}
	pending []*wsClient // clients with a non-empty queue
	wake    chan struct{}
	work    []*wsClient // writer's scratch
	msgs    [][]*liveMessage
}

type wsClient struct {
	conn   *websocket.Conn
	addr   string
	shard  *shard
	queue  []*liveMessage // guarded by shard.mu
	queued bool           // in shard.pending
	gone   bool           // removed from the shard
}

type sseClient struct {
	addr   string
	queue  []*liveMessage // guarded by hub.mu
	notify chan struct{}
	gone   bool
}

func newHub(cfg hubConfig) *hub {
	h := &hub{cfg: cfg, perAddr: map[string]int{}, sse: map[*sseClient]struct{}{}, stopc: make(chan struct{})}
	for range cfg.shards {
		sh := &shard{h: h, clients: map[*wsClient]struct{}{}, wake: make(chan struct{}, 1)}
		h.shards = append(h.shards, sh)
		h.wg.Add(1)
		go sh.writer()
	}
	return h
}

// stop ends the writers and disconnects every viewer.
func (h *hub) stop() {
	h.stopOnce.Do(func() {
		close(h.stopc)
		h.wg.Wait()
		h.closeAll()
	})
}

// closeAll disconnects every live viewer (they reconnect and catch up).
func (h *hub) closeAll() {
	for _, sh := range h.shards {
		sh.mu.Lock()
		for c := range sh.clients {
			sh.removeLocked(c)
			c.conn.Close()
		}
		sh.mu.Unlock()
	}
	h.mu.Lock()
	for c := range h.sse {
		c.gone = true
		delete(h.sse, c)
		close(c.notify)
	}
	h.mu.Unlock()
}

// reserve takes a viewer slot for addr, or says why there is none.
func (h *hub) reserve(addr string) error {
	if h.refuse.Load() {
		return errRefused
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total >= h.cfg.maxConns {
		return errHubFull
	}
	if h.perAddr[addr] >= h.cfg.maxPerAddr {
		return errAddrCap
	}
	h.total++
	h.perAddr[addr]++
	return nil
}

// release gives back a slot taken by reserve.
func (h *hub) release(addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.perAddr[addr]--; h.perAddr[addr] <= 0 {
		delete(h.perAddr, addr)
	}
}

// count returns the number of viewers holding a slot.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// catchUp returns the messages a viewer that has seen update id since
// lacks. h.mu must be held.
func (h *hub) catchUpLocked(since int64) []*liveMessage {
	i, _ := slices.BinarySearchFunc(h.catch, since+1, func(m *liveMessage, id int64) int { return cmp.Compare(m.id, id) })
	return h.catch[i:]
}

// catchUp returns what a viewer that has seen update id since lacks, and the
// newest update id, from the state last broadcast.
func (h *hub) catchUp(since int64) (msgs []*liveMessage, last int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.catch); n > 0 {
		last = h.catch[n-1].id
	}
	return h.catchUpLocked(since), last
}

// publish installs the new catch-up messages and queues msgs to every
// viewer, atomically with respect to attach: a new viewer either catches up
// from the new state or receives the broadcast, never neither.
func (h *hub) publish(catch, msgs []*liveMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.catch = catch
	if len(msgs) == 0 {
		return
	}
	for _, sh := range h.shards {
		sh.enqueue(msgs)
	}
	for c := range h.sse {
		if len(c.queue)+len(msgs) > h.cfg.queue {
			h.dropSSELocked(c)
			continue
		}
		c.queue = append(c.queue, msgs...)
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// attach adds an upgraded websocket viewer that has seen update id since,
// queueing what it missed from the current snapshot, and starts its reader.
// The slot must have been reserved.
func (h *hub) attach(conn *websocket.Conn, addr string, since int64) {
	sh := h.shards[int(h.next.Add(1))%len(h.shards)]
	c := &wsClient{conn: conn, addr: addr, shard: sh}
	h.mu.Lock()
	missed := h.catchUpLocked(since)
	sh.mu.Lock()
	sh.clients[c] = struct{}{}
	if len(missed) > 0 {
		c.queue = append(c.queue, missed...)
		c.queued = true
		sh.pending = append(sh.pending, c)
	}
	sh.mu.Unlock()
	h.mu.Unlock()
	if len(missed) > 0 {
		sh.signal()
	}
	go h.read(c)
}

// read consumes the viewer's frames (pongs, close, and anything else, which
// is discarded) until the connection fails, then frees the slot.
func (h *hub) read(c *wsClient) {
	defer func() {
		c.shard.remove(c)
		c.conn.Close()
		h.release(c.addr)
	}()
	wait := 2 * h.cfg.ping
	c.conn.SetReadLimit(maxClientFrame)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
	}
}

// maxClientFrame bounds what a viewer may send: viewers only answer pings.
const maxClientFrame = 512

func (sh *shard) signal() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// enqueue queues msgs to every viewer of the shard, dropping those whose
// queue would overflow.
func (sh *shard) enqueue(msgs []*liveMessage) {
	sh.mu.Lock()
	for c := range sh.clients {
		if len(c.queue)+len(msgs) > sh.h.cfg.queue {
			sh.removeLocked(c)
			c.conn.Close() // its reader frees the slot
			continue
		}
		c.queue = append(c.queue, msgs...)
		if !c.queued {
			c.queued = true
			sh.pending = append(sh.pending, c)
		}
	}
	sh.mu.Unlock()
	sh.signal()
}

func (sh *shard) remove(c *wsClient) {
	sh.mu.Lock()
	sh.removeLocked(c)
	sh.mu.Unlock()
}

func (sh *shard) removeLocked(c *wsClient) {
	if c.gone {
		return
	}
	c.gone = true
	c.queue = nil
	delete(sh.clients, c)
}

// writer is the shard's only writer goroutine: it delivers queued messages
// and pings idle viewers, each write bounded by the write timeout.
func (sh *shard) writer() {
	defer sh.h.wg.Done()
	ping := time.NewTicker(sh.h.cfg.ping)
	defer ping.Stop()
	for {
		select {
		case <-sh.h.stopc:
			return
		case <-sh.wake:
			sh.flush()
		case <-ping.C:
			sh.pingAll()
		}
	}
}

func (sh *shard) flush() {
	sh.mu.Lock()
	sh.work = append(sh.work[:0], sh.pending...)
	sh.msgs = sh.msgs[:0]
	for _, c := range sh.pending {
		sh.msgs = append(sh.msgs, c.queue)
		c.queue = nil
		c.queued = false
	}
	clear(sh.pending)
	sh.pending = sh.pending[:0]
	sh.mu.Unlock()

	timeout := sh.h.cfg.writeTimeout
	for i, c := range sh.work {
		deadline := time.Now().Add(timeout)
		for _, m := range sh.msgs[i] {
			c.conn.SetWriteDeadline(deadline)
			if err := c.conn.WritePreparedMessage(m.pm); err != nil {
				sh.remove(c)
				c.conn.Close()
				break
			}
		}
	}
	clear(sh.work)
	clear(sh.msgs)
}

func (sh *shard) pingAll() {
	sh.mu.Lock()
	sh.work = sh.work[:0]
	for c := range sh.clients {
		sh.work = append(sh.work, c)
	}
	sh.mu.Unlock()
	for _, c := range sh.work {
		if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(sh.h.cfg.writeTimeout)); err != nil {
			sh.remove(c)
			c.conn.Close()
		}
	}
	clear(sh.work)
}

// addSSE registers a Server-Sent Events viewer with what it missed. The
// slot must have been reserved.
func (h *hub) addSSE(addr string, since int64) *sseClient {
	c := &sseClient{addr: addr, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	c.queue = append(c.queue, h.catchUpLocked(since)...)
	h.sse[c] = struct{}{}
	if len(c.queue) > 0 {
		c.notify <- struct{}{}
	}
	return c
}

// takeSSE returns the viewer's queued messages; ok is false once it has
// been dropped.
func (h *hub) takeSSE(c *sseClient) (msgs []*liveMessage, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.gone {
		return nil, false
	}
	msgs, c.queue = c.queue, nil
	return msgs, true
}

// removeSSE unregisters an SSE viewer (idempotent) and frees its slot.
func (h *hub) removeSSE(c *sseClient) {
	h.mu.Lock()
	if !c.gone {
		h.dropSSELocked(c)
	}
	h.mu.Unlock()
	h.release(c.addr)
}

func (h *hub) dropSSELocked(c *sseClient) {
	c.gone = true
	c.queue = nil
	delete(h.sse, c)
	close(c.notify)
}
