package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type statusJSON struct {
	Incident string `json:"incident"`
	Status   string `json:"status"`
	Updates  []struct {
		Seq      int    `json:"seq"`
		Status   string `json:"status"`
		Channels []struct {
			Channel string `json:"channel"`
			State   string `json:"state"`
			Total   int    `json:"total"`
			Queued  int    `json:"queued"`
			Sent    int    `json:"sent"`
			Failed  int    `json:"failed"`
			Posts   []struct {
				ID  string `json:"id"`
				URL string `json:"url"`
			} `json:"posts"`
		} `json:"channels"`
	} `json:"updates"`
}

func (r *rig) status(slug string) statusJSON {
	r.t.Helper()
	var s statusJSON
	if err := json.Unmarshal([]byte(r.must("status", slug, "--json")), &s); err != nil {
		r.t.Fatal(err)
	}
	return s
}

func TestPublishDeliversTheNoticeOnEveryChannelAndUpdatesContinueTheThreads(t *testing.T) {
	r := newRig(t)
	r.customers(250)
	out := r.must("publish", r.write("1.md", noticeText("db-leak", "investigating", "email, twitter, facebook, status", breachBody)))
	if !strings.Contains(out, "Published update 1 of db-leak") || !strings.Contains(out, "Delivered update 1") {
		t.Fatalf("publish said:\n%s", out)
	}
	if r.sg.Total() != 250 || len(r.sg.Counts()) != 250 {
		t.Fatalf("SendGrid got %d emails for %d addresses", r.sg.Total(), len(r.sg.Counts()))
	}
	first := r.sg.Messages("customer7@example.com")
	if len(first) != 1 {
		t.Fatalf("customer7 got %d emails", len(first))
	}
	m := first[0]
	if !strings.Contains(m.Subject, "Unauthorized access to customer data") || !strings.Contains(m.HTML, "Hi Customer 7") ||
		!strings.Contains(m.Text, "Hi Customer 7") || !strings.HasPrefix(m.ReplyTo, "reply+") ||
		!strings.HasSuffix(m.ReplyTo, "@reply.acme.example") || m.Headers["Message-ID"] == "" {
		t.Fatalf("email as customer7 got it: %+v", m)
	}
	for k, v := range m.CustomArgs {
		if strings.Contains(v, "@") || strings.Contains(strings.ToLower(v), "customer") {
			t.Fatalf("custom_args %s=%q carries personal data", k, v)
		}
	}
	thread := r.x.Posts()
	if len(thread) == 0 || !strings.Contains(thread[0].Text, "https://status.acme.example/incidents/db-leak") {
		t.Fatalf("X thread %+v does not open with the status page link", thread)
	}
	for i := 1; i < len(thread); i++ {
		if thread[i].InReplyToID != thread[i-1].ID {
			t.Fatalf("post %d replies to %q, not to post %d", i+1, thread[i].InReplyToID, i)
		}
	}
	if len(r.fb.Posts()) != 1 {
		t.Fatalf("%d Facebook posts", len(r.fb.Posts()))
	}

	out = r.must("publish", r.write("2.md", noticeText("db-leak", "identified", "email, twitter, facebook, status",
		"We know how it happened: a leaked support credential, now revoked.")))
	if !strings.Contains(out, "Published update 2 of db-leak") {
		t.Fatalf("second publish said:\n%s", out)
	}
	both := r.sg.Messages("customer7@example.com")
	if len(both) != 2 || both[1].Headers["In-Reply-To"] != m.Headers["Message-ID"] ||
		!strings.Contains(both[1].Headers["References"], m.Headers["Message-ID"]) {
		t.Fatalf("the update does not thread to the first notice: %+v", both[1].Headers)
	}
	all := r.x.Posts()
	cont := all[len(thread)]
	if cont.InReplyToID != thread[len(thread)-1].ID || cont.ConversationID != thread[0].ID {
		t.Fatalf("update 2 starts a new thread instead of continuing: %+v", cont)
	}
	st := r.status("db-leak")
	if len(st.Updates) != 2 || st.Status != "identified" {
		t.Fatalf("%+v", st)
	}
	for _, c := range st.Updates[1].Channels {
		if c.State != "done" || c.Failed != 0 || c.Queued != 0 {
			t.Fatalf("update 2 %s: %+v", c.Channel, c)
		}
		if c.Channel == "email" && c.Sent != 250 {
			t.Fatalf("update 2 email sent %d", c.Sent)
		}
		if c.Channel == "twitter" && (len(c.Posts) == 0 || c.Posts[0].ID == "" || !strings.Contains(c.Posts[0].URL, c.Posts[0].ID)) {
			t.Fatalf("twitter posts in status: %+v", c.Posts)
		}
	}
	text := r.must("status", "db-leak")
	if !strings.Contains(text, "twitter post 1/") || !strings.Contains(text, "https://x.com/") {
		t.Fatalf("status does not show the posts:\n%s", text)
	}
}

func TestPublishingTheSameFileTwiceIsRefused(t *testing.T) {
	r := newRig(t)
	p := r.write("n.md", noticeText("db-leak", "investigating", "status", breachBody))
	r.must("publish", p)
	_, errb, code := r.cli("publish", p)
	if code != 1 || !strings.Contains(errb, "identical to update 1") {
		t.Fatalf("exit %d: %s", code, errb)
	}
}

func TestPreviewJSONHasEveryRendering(t *testing.T) {
	r := newRig(t)
	out := r.must("preview", r.write("n.md", noticeText("db-leak", "investigating", "email", breachBody)), "--json")
	var v struct {
		Email struct {
			Subject, HTML, Text string
		} `json:"email"`
		Twitter  []string `json:"twitter"`
		Facebook string   `json:"facebook"`
		Status   string   `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Email.Subject == "" || !strings.Contains(v.Email.HTML, "<html") || !strings.Contains(v.Email.Text, "Hi Jane Doe") ||
		len(v.Twitter) == 0 || v.Facebook == "" || !strings.Contains(v.Status, "<p>") {
		t.Fatalf("preview: %+v", v)
	}
	if strings.Contains(v.Email.HTML, "BCTK") {
		t.Fatal("preview left substitution tokens in the email")
	}
	one := r.must("preview", filepath.Join(r.dir, "n.md"), "--channel", "twitter", "--json")
	if !strings.HasPrefix(strings.TrimSpace(one), `{`) || !strings.Contains(one, `"twitter"`) || strings.Contains(one, `"email"`) {
		t.Fatalf("--channel twitter --json: %s", one)
	}
}

func TestPreviewRefusesAThreadOfMoreThan25PostsWithTheCount(t *testing.T) {
	r := newRig(t)
	body := strings.Repeat("This paragraph explains one more detail of what happened and what you should do about it now. ", 80)
	_, errb, code := r.cli("preview", r.write("long.md", noticeText("db-leak", "investigating", "twitter", body)))
	if code != 1 || !strings.Contains(errb, "posts") {
		t.Fatalf("exit %d: %s", code, errb)
	}
}

func TestBadNoticesAreRefusedWithFileLineAndFieldAndStoreNothing(t *testing.T) {
	r := newRig(t)
	for name, tc := range map[string]struct{ content, want string }{
		"status":  {noticeText("db-leak", "investigatng", "email", breachBody), `bad.md:4: status: "investigatng" is not a status`},
		"channel": {noticeText("db-leak", "investigating", "email, myspace", breachBody), "myspace"},
		"empty":   {noticeText("db-leak", "investigating", "email", ""), "body"},
		"yaml":    {"---\nincident: [unclosed\n---\nbody\n", "bad.md:"},
		"utf8":    {noticeText("db-leak", "investigating", "email", "caf\xe9"), "UTF-8"},
		"huge":    {noticeText("db-leak", "investigating", "email", strings.Repeat("a", 5<<20)), "at most 512 KiB"},
	} {
		t.Run(name, func(t *testing.T) {
			_, errb, code := r.cli("publish", r.write("bad.md", tc.content))
			if code != 1 || !strings.Contains(errb, tc.want) {
				t.Fatalf("exit %d, stderr %q, want it to contain %q", code, errb, tc.want)
			}
		})
	}
	if out := r.must("status"); !strings.Contains(out, "No incidents yet") {
		t.Fatalf("a refused notice left something: %s", out)
	}
}

func TestANoticeForAChannelThatIsNotConfiguredNamesIt(t *testing.T) {
	r := newRig(t)
	delete(r.env, "BREACHCAST_X_CONSUMER_KEY")
	_, errb, code := r.cli("publish", r.write("n.md", noticeText("db-leak", "investigating", "twitter, status", breachBody)))
	if code != 1 || !strings.Contains(errb, "twitter") || !strings.Contains(errb, "not configured") {
		t.Fatalf("exit %d: %s", code, errb)
	}
}

func TestRecipientsWithBadRowsAreReportedAndNothingIsImported(t *testing.T) {
	r := newRig(t)
	csv := r.write("c.csv", "email,name\nok@example.com,Ok\nnot-an-address,Bad\nok@example.com,Dup\n")
	_, errb, code := r.cli("recipients", "import", csv)
	if code != 1 || !strings.Contains(errb, "row 3") || !strings.Contains(errb, "row 4") || !strings.Contains(errb, "nothing was imported") {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if n, err := r.db(t).RecipientCount(context.Background(), "all"); err != nil || n != 0 {
		t.Fatalf("%d recipients were imported from a file with bad rows (%v)", n, err)
	}
	out := r.must("recipients", "import", csv, "--skip-invalid", "--segment", "eu")
	if !strings.Contains(out, "Imported 1 recipients (segment eu)") {
		t.Fatalf("%s", out)
	}
	if segs := r.must("recipients", "segments"); !strings.Contains(segs, "eu") {
		t.Fatalf("segments: %s", segs)
	}
}

func TestPublishWhilePausedQueuesAndResumeDelivers(t *testing.T) {
	r := newRig(t)
	r.customers(30)
	r.must("pause", "--reason", "checking the audience")
	_, errb, code := r.cli("publish", r.write("n.md", noticeText("db-leak", "investigating", "email, status", breachBody)))
	if code != exitIncomplete || !strings.Contains(errb, "paused") || r.sg.Total() != 0 {
		t.Fatalf("exit %d, %d sent: %s", code, r.sg.Total(), errb)
	}
	r.must("resume")
	srv := r.serve(t)
	eventually(t, "delivery after resume", 20*time.Second, func() bool { return r.sg.Total() == 30 })
	srv.stop()
	audit := r.must("audit")
	for _, want := range []string{"pause", "resume", "publish", "checking the audience"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit log lacks %q:\n%s", want, audit)
		}
	}
}

// served is a breachcast serve running in the test process.
type served struct {
	url  string
	stop func()
}

func (r *rig) serve(t *testing.T) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r.env["BREACHCAST_HTTP_ADDR"] = addr
	r.env["BREACHCAST_PUBLIC_URL"] = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var out, errb syncBuffer
	go func() {
		code := run(ctx, []string{"serve"}, strings.NewReader(""), &out, &errb, r.getenv)
		if code != 0 && ctx.Err() == nil {
			t.Errorf("serve exited %d: %s", code, errb.String())
		}
		close(done)
	}()
	eventually(t, "serve to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	s := &served{url: "http://" + addr}
	stopped := false
	s.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(s.stop)
	return s
}

func TestServeDeliversADetachedPublishAndShowsItOnTheStatusPage(t *testing.T) {
	r := newRig(t)
	r.customers(20)
	srv := r.serve(t)
	r.must("publish", "--detach", r.write("n.md", noticeText("db-leak", "investigating", "email, twitter, status", breachBody)))
	eventually(t, "the status page to show the incident", 20*time.Second, func() bool {
		code, body := get(t, srv.url+"/incidents/db-leak")
		return code == 200 && strings.Contains(body, "Unauthorized access to customer data")
	})
	eventually(t, "email delivery", 20*time.Second, func() bool { return r.sg.Total() == 20 })
	code, body := get(t, srv.url+"/api/v2/summary.json")
	if code != 200 || !strings.Contains(body, `"incidents"`) || !strings.Contains(body, "db-leak") && !strings.Contains(body, "Unauthorized") {
		t.Fatalf("summary.json %d: %s", code, body)
	}
	if code, _ := get(t, srv.url+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get(t, srv.url+"/incidents/no-such-incident"); code != 404 {
		t.Fatalf("unknown incident: %d", code)
	}
}

func TestStatusExportWritesAStaticSite(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t)
	r.must("publish", r.write("n.md", noticeText("db-leak", "investigating", "status", breachBody)))
	srv.stop()
	dir := filepath.Join(r.dir, "site")
	r.must("status", "export", dir)
	for _, f := range []string{"index.html", "history.atom", "api/v2/summary.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("export lacks %s: %v", f, err)
		}
		if f == "index.html" && !strings.Contains(string(b), "Unauthorized access") {
			t.Fatalf("index.html does not show the incident")
		}
	}
}

func TestHelpDocumentsEveryCommandAndSetting(t *testing.T) {
	r := newRig(t)
	out := r.must("help")
	for _, c := range commands() {
		if !strings.Contains(out, c.name) {
			t.Errorf("help lacks %s", c.name)
		}
		h := r.must(c.name, "--help")
		if !strings.Contains(h, "Usage: breachcast "+c.name) {
			t.Errorf("%s --help: %s", c.name, h)
		}
	}
	cfg := r.must("config", "--help")
	for _, d := range settingDocs() {
		if !strings.Contains(cfg, d[1]) || d[2] == "" {
			t.Errorf("setting %s (%s) undocumented", d[0], d[1])
		}
	}
	shown := r.must("config")
	if strings.Contains(shown, "SG.test-key") || strings.Contains(shown, "xemu-consumer-secret") || !strings.Contains(shown, "[redacted]") {
		t.Fatalf("config shows a secret:\n%s", shown)
	}
	if _, _, code := r.cli("frobnicate"); code != exitUsage {
		t.Fatalf("unknown command exit %d", code)
	}
}
