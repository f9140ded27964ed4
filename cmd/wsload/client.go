package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// viewer is one websocket connection of a client child: it records the id
// and the arrival time of the newest message it received.
type viewer struct {
	lastID atomic.Int64
	at     atomic.Int64 // unix nanoseconds of the newest message
}

var idKey = []byte(`"id":`)

// messageID reads the update id from a live message without decoding it all.
func messageID(b []byte) int64 {
	i := bytes.Index(b, idKey)
	if i < 0 {
		return 0
	}
	b = b[i+len(idKey):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	n, _ := strconv.ParseInt(string(b[:j]), 10, 64)
	return n
}

// client opens o.n viewers to o.url from the source addresses in o.srcList,
// reports READY, then answers WAIT commands with the latencies of its viewers.
func client(ctx context.Context, o options, stdin io.Reader, stdout io.Writer) error {
	var srcs []net.IP
	for _, s := range strings.Split(o.srcList, ",") {
		if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
			srcs = append(srcs, ip)
		}
	}
	if len(srcs) == 0 {
		return fmt.Errorf("no valid source address in %q", o.srcList)
	}
	viewers := make([]*viewer, o.n)
	conns := make([]*websocket.Conn, o.n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.dialers)
	var firstErr atomic.Value
	for i := range o.n {
		viewers[i] = &viewer{}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: srcs[i%len(srcs)]}, Timeout: 30 * time.Second}
			d := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 256}
			var c *websocket.Conn
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				if c, _, err = d.DialContext(ctx, o.url, nil); err == nil {
					break
				}
				time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "wsload client: first dial error:", e)
	}
	live := 0
	for i, c := range conns {
		if c == nil {
			continue
		}
		live++
		v := viewers[i]
		go func() {
			c.SetReadLimit(1 << 20)
			// Only the start of a message is needed (the id comes first);
			// the rest is discarded without allocating.
			head := make([]byte, 64)
			for {
				_, r, err := c.NextReader()
				if err != nil {
					v.lastID.Store(-1) // disconnected
					return
				}
				now := time.Now().UnixNano()
				n, _ := io.ReadFull(r, head)
				id := messageID(head[:n])
				if _, err := io.Copy(io.Discard, r); err != nil {
					v.lastID.Store(-1)
					return
				}
				if id > v.lastID.Load() {
					v.at.Store(now)
					v.lastID.Store(id)
				}
			}
		}()
	}
	fmt.Fprintf(stdout, "READY %d %d\n", live, failed.Load())

	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "WAIT" {
			continue
		}
		id, _ := strconv.ParseInt(f[1], 10, 64)
		t0, _ := strconv.ParseInt(f[2], 10, 64)
		ms, _ := strconv.ParseInt(f[3], 10, 64)
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		for {
			pending := 0
			for i, v := range viewers {
				if conns[i] != nil && v.lastID.Load() >= 0 && v.lastID.Load() < id {
					pending++
				}
			}
			if pending == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var b strings.Builder
		got, missing := 0, 0
		for i, v := range viewers {
			if conns[i] == nil {
				continue
			}
			if v.lastID.Load() < id {
				missing++
				continue
			}
			if got > 0 {
				b.WriteByte(',')
			}
			got++
			b.WriteString(strconv.FormatInt((v.at.Load()-t0)/1000, 10))
		}
		fmt.Fprintf(stdout, "LAT %d %d %s\n", got, missing, b.String())
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}
