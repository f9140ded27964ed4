package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/breachcast/breachcast/store"
)

// TestASIGKILLedFanOutLosesNoRecipientAndResendsOnlyTheBatchesTheLedgerNames
// is the delivery guarantee of the README, on a real process: publish to
// 100,000 recipients, SIGKILL the publisher mid-run, start breachcast serve,
// and find every recipient delivered, with duplicates only among the
// recipients of the batches the ledger reports as recovered (in flight when
// the process died).
func TestASIGKILLedFanOutLosesNoRecipientAndResendsOnlyTheBatchesTheLedgerNames(t *testing.T) {
	const n = 100_000
	r := newRig(t)
	r.env["BREACHCAST_SENDGRID_BATCH_SIZE"] = "500"
	r.env["BREACHCAST_SENDGRID_CONCURRENCY"] = "4"
	r.sg.SetLatency(40 * time.Millisecond)
	r.customers(n)
	bin := binary(t)
	notice := r.write("n.md", noticeText("db-leak", "investigating", "email, status", breachBody))

	publish := exec.Command(bin, "publish", notice)
	publish.Env = r.environ()
	var pubOut syncBuffer
	publish.Stdout, publish.Stderr = &pubOut, &pubOut
	if err := publish.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a third of the fan-out", 60*time.Second, func() bool { return r.sg.Total() >= n/3 })
	if err := publish.Process.Kill(); err != nil { // SIGKILL: no cleanup of any kind
		t.Fatal(err)
	}
	publish.Wait()
	atKill := r.sg.Total()
	if atKill >= n {
		t.Fatalf("the publisher finished before it was killed (%d sent); the test proves nothing", atKill)
	}

	db, err := store.Open(context.Background(), r.env["BREACHCAST_DB"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.LatestUpdate(context.Background(), "db-leak")
	if err != nil {
		t.Fatal(err)
	}
	inflight := map[int64]bool{}
	batches, err := db.Batches(context.Background(), u.ID, "email", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if b.State == "inflight" {
			inflight[b.ID] = true
		}
	}

	serve := exec.Command(bin, "serve")
	serve.Env = r.environ()
	var serveOut syncBuffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	eventually(t, "serve to finish the fan-out", 120*time.Second, func() bool {
		left, err := db.UnfinishedJobs(context.Background(), u.ID)
		return err == nil && left == 0
	})
	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly on SIGTERM: %v\n%s", err, serveOut.String())
	}

	// The ledger names the batches that were sent again.
	mayRepeat := map[string]bool{}
	recovered, err := db.Batches(context.Background(), u.ID, "email", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range recovered {
		if !inflight[b.ID] {
			t.Errorf("batch %d was resent but was not in flight when the publisher died", b.ID)
		}
		emails, err := db.BatchRecipientEmails(context.Background(), b.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range emails {
			mayRepeat[e] = true
		}
	}
	counts := r.sg.Counts()
	dup := 0
	for i := 1; i <= n; i++ {
		addr := fmt.Sprintf("customer%d@example.com", i)
		switch c := counts[addr]; {
		case c == 0:
			t.Fatalf("%s never got the notice", addr)
		case c > 1 && !mayRepeat[addr]:
			t.Fatalf("%s got it %d times but was in no batch the ledger names", addr, c)
		case c > 1:
			dup++
		}
	}
	st := r.status("db-leak")
	for _, c := range st.Updates[0].Channels {
		if c.Channel == "email" && (c.Sent != n || c.Failed != 0 || c.State != "done") {
			t.Fatalf("status after recovery: %+v", c)
		}
	}
	text := r.must("status", "db-leak")
	if len(recovered) > 0 && !strings.Contains(text, "were sent again and may have it twice") {
		t.Fatalf("status does not name the resent batches:\n%s", text)
	}
	t.Logf("killed after %d of %d sent; %d batches in flight, %d resent, %d recipients got it twice",
		atKill, n, len(inflight), len(recovered), dup)
}
