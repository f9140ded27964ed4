// Command wsload measures the status page's live channel under a crowd: it
// opens N websocket viewers (default 18,000), measures the server's memory per
// idle viewer, then publishes updates and measures how long each viewer waits
// for them.
//
// The container allows 20,000 open files per process, so wsload runs the
// server in a child process (whose memory is then measured alone) and spreads
// the viewers over several client child processes, each dialing from several
// 127.0.0.x source addresses.
//
// Usage:
//
//	wsload [-n 18000] [-rounds 5] [-per-client 4500] [-sources 8]
//	wsload -serve -addr 127.0.0.1:8080    serve the demo status page (also for scripts/bench-status.sh)
//	wsload -export DIR                    write the same page as static files
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

type options struct {
	serve, client bool
	export        string
	addr          string
	n, perClient  int
	sources       int
	rounds        int
	settle        time.Duration
	timeout       time.Duration
	url           string
	srcList       string
	dialers       int
	shards        int
	viaPoll       bool
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.serve, "serve", false, "run the demo status server (child mode; also used by the bench script)")
	fs.StringVar(&o.export, "export", "", "export the demo status page as static files into this directory and exit")
	fs.BoolVar(&o.client, "client", false, "internal: run as a client child")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "server listen address (-serve)")
	fs.IntVar(&o.n, "n", 18000, "number of websocket viewers")
	fs.IntVar(&o.perClient, "per-client", 4500, "viewers per client process (each must stay under the 20,000 open-file limit)")
	fs.IntVar(&o.sources, "sources", 8, "number of 127.0.0.x source addresses to dial from")
	fs.IntVar(&o.rounds, "rounds", 5, "publishes to time")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause before measuring idle memory")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Second, "how long a round waits for every viewer")
	fs.StringVar(&o.url, "url", "", "internal: websocket URL (-client)")
	fs.StringVar(&o.srcList, "src", "", "internal: comma-separated source addresses (-client)")
	fs.IntVar(&o.dialers, "dialers", 64, "concurrent dials per client process")
	fs.IntVar(&o.shards, "shards", 0, "server writer shards (0: the status package default)")
	fs.BoolVar(&o.viaPoll, "via-poll", false, "publish through the server's PublicVersion poll loop instead of Refresh")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case o.export != "":
		return exportDemo(ctx, o.export)
	case o.serve:
		return serve(ctx, o, stdout)
	case o.client:
		return client(ctx, o, os.Stdin, stdout)
	}
	if o.n <= 0 || o.perClient <= 0 || o.perClient > 19000 || o.sources <= 0 || o.sources > 250 {
		return errors.New("-n and -per-client must be positive, -per-client at most 19000 and -sources 1..250")
	}
	return orchestrate(ctx, o, stdout)
}

// memReport is the server's own view of its memory.
type memReport struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	Viewers    int    `json:"viewers"`
	LastID     int64  `json:"last_id"`
	PID        int    `json:"pid"`
}

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startChild(ctx context.Context, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}, nil
}

func (c *child) line() (string, error) {
	s, err := c.out.ReadString('\n')
	return strings.TrimSpace(s), err
}

func (c *child) stop() {
	c.in.Close()
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func rssBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, err := strconv.ParseUint(f[1], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func getMem(base string, gc bool) (memReport, error) {
	u := base + "/_wsload/mem"
	if gc {
		u += "?gc=1"
	}
	var m memReport
	resp, err := http.Get(u)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

func orchestrate(ctx context.Context, o options, out io.Writer) error {
	srvArgs := []string{"-serve", "-addr", "127.0.0.1:0"}
	if o.shards > 0 {
		srvArgs = append(srvArgs, "-shards", strconv.Itoa(o.shards))
	}
	if o.viaPoll {
		srvArgs = append(srvArgs, "-via-poll")
	}
	srv, err := startChild(ctx, srvArgs...)
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer srv.stop()
	l, err := srv.line()
	if err != nil || !strings.HasPrefix(l, "LISTENING ") {
		return fmt.Errorf("server did not start: %q %v", l, err)
	}
	addr := strings.Fields(l)[1]
	base := "http://" + addr
	pid := srv.cmd.Process.Pid

	before, err := getMem(base, true)
	if err != nil {
		return fmt.Errorf("server memory: %w", err)
	}
	rss0, err := rssBytes(pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "server pid %d on %s: baseline RSS %.1f MiB, heap in use %.1f MiB, %d goroutines\n",
		pid, addr, mib(rss0), mib(before.HeapInuse), before.Goroutines)

	// Client processes, each with its share of viewers and source addresses.
	nClients := (o.n + o.perClient - 1) / o.perClient
	var clients []*child
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	start := time.Now()
	wsURL := "ws://" + addr + "/live?since=" + strconv.FormatInt(before.LastID, 10)
	for i := range nClients {
		n := min(o.perClient, o.n-i*o.perClient)
		var srcs []string
		for j := range o.sources {
			if j%nClients == i || o.sources < nClients {
				srcs = append(srcs, fmt.Sprintf("127.0.0.%d", 2+j))
			}
		}
		c, err := startChild(ctx, "-client", "-url", wsURL, "-n", strconv.Itoa(n), "-src", strings.Join(srcs, ","), "-dialers", strconv.Itoa(o.dialers))
		if err != nil {
			return fmt.Errorf("start client: %w", err)
		}
		clients = append(clients, c)
	}
	connected, failed := 0, 0
	for i, c := range clients {
		l, err := c.line()
		var ok, bad int
		if _, serr := fmt.Sscanf(l, "READY %d %d", &ok, &bad); err != nil || serr != nil {
			return fmt.Errorf("client %d: %q %v", i, l, err)
		}
		connected += ok
		failed += bad
	}
	fmt.Fprintf(out, "%d viewers connected in %v (%d failed) from %d client processes\n", connected, time.Since(start).Round(time.Millisecond), failed, nClients)
	if connected == 0 {
		return errors.New("no viewer connected")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := getMem(base, false)
		if err == nil && m.Viewers >= connected {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server sees %d viewers, clients %d", m.Viewers, connected)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(o.settle)
	idle, err := getMem(base, true)
	if err != nil {
		return err
	}
	rss1, err := rssBytes(pid)
	if err != nil {
		return err
	}
	perRSS := float64(int64(rss1)-int64(rss0)) / float64(connected)
	perHeap := float64(int64(idle.HeapInuse+idle.StackInuse)-int64(before.HeapInuse+before.StackInuse)) / float64(connected)
	fmt.Fprintf(out, "idle: RSS %.1f MiB, heap in use %.1f MiB, stacks %.1f MiB, %d goroutines, %d viewers\n",
		mib(rss1), mib(idle.HeapInuse), mib(idle.StackInuse), idle.Goroutines, idle.Viewers)
	fmt.Fprintf(out, "memory per idle viewer: %.1f KiB RSS, %.1f KiB Go heap+stacks (target <= 20 KiB)\n", perRSS/1024, perHeap/1024)

	var all []time.Duration
	for r := 1; r <= o.rounds; r++ {
		time.Sleep(time.Second)
		t0 := time.Now()
		resp, err := http.Post(base+"/_wsload/publish", "text/plain", nil)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		var pub struct {
			ID        int64
			RefreshUS int64 `json:"refresh_us"`
		}
		json.NewDecoder(resp.Body).Decode(&pub)
		resp.Body.Close()
		for _, c := range clients {
			fmt.Fprintf(c.in, "WAIT %d %d %d\n", pub.ID, t0.UnixNano(), o.timeout.Milliseconds())
		}
		var lats []time.Duration
		missing := 0
		for i, c := range clients {
			l, err := c.line()
			if err != nil || !strings.HasPrefix(l, "LAT ") {
				return fmt.Errorf("client %d: %q %v", i, truncate(l, 100), err)
			}
			f := strings.Fields(l)
			miss, _ := strconv.Atoi(f[2])
			missing += miss
			if len(f) > 3 {
				for _, s := range strings.Split(f[3], ",") {
					us, _ := strconv.ParseInt(s, 10, 64)
					lats = append(lats, time.Duration(us)*time.Microsecond)
				}
			}
		}
		slices.Sort(lats)
		all = append(all, lats...)
		fmt.Fprintf(out, "round %d (update %d, re-render and queue %v): %d delivered, %d missing: %s\n",
			r, pub.ID, (time.Duration(pub.RefreshUS) * time.Microsecond).Round(100*time.Microsecond), len(lats), missing, pct(lats))
	}
	slices.Sort(all)
	after, _ := getMem(base, false)
	fmt.Fprintf(out, "summary: %d viewers, %.1f KiB RSS and %.1f KiB heap per idle viewer; delivery over %d rounds: %s; %d viewers still connected\n",
		connected, perRSS/1024, perHeap/1024, o.rounds, pct(all), after.Viewers)
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func pct(d []time.Duration) string {
	if len(d) == 0 {
		return "no deliveries"
	}
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return fmt.Sprintf("p50 %v p90 %v p99 %v max %v",
		at(0.50).Round(time.Millisecond), at(0.90).Round(time.Millisecond), at(0.99).Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// listenAndServe runs h on addr until ctx ends, announcing the address.
func listenAndServe(ctx context.Context, addr string, h http.Handler, announce func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	announce(ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}
