package sgemu_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/breachcast/breachcast/emulators/sgemu"
)

// fullRequest is a mail/send body of 1000 personalizations shaped like the
// ones channels/email sends: headers, substitutions and custom args on each.
func fullRequest(batch int) []byte {
	m := mail.NewV3Mail()
	m.SetFrom(mail.NewEmail("Example Security", "security@example.com"))
	m.SetReplyTo(mail.NewEmail("", "reply+t0k3n@in.example.com"))
	m.Subject = "[-name-] Security incident: update 2"
	m.AddContent(mail.NewContent("text/plain", "Dear -name-,\n\n"+string(bytes.Repeat([]byte("We are sorry. "), 150))),
		mail.NewContent("text/html", "<p>Dear -name-,</p><p>"+string(bytes.Repeat([]byte("We are <b>sorry</b>. "), 150))+"</p>"))
	m.SetCustomArg("bc_update", "12")
	for i := range 1000 {
		p := mail.NewPersonalization()
		p.AddTos(mail.NewEmail(fmt.Sprintf("Customer %d", i), fmt.Sprintf("c%d-%d@example.com", batch, i)))
		p.SetHeader("Message-ID", fmt.Sprintf("<u12.r%d.%d@breachcast.example>", batch, i))
		p.SetHeader("In-Reply-To", fmt.Sprintf("<u11.r%d.%d@breachcast.example>", batch, i))
		p.SetHeader("References", fmt.Sprintf("<u11.r%d.%d@breachcast.example>", batch, i))
		p.SetSubstitution("-name-", fmt.Sprintf("Customer %d", i))
		p.SetCustomArg("bc_delivery", fmt.Sprint(batch*1000+i))
		m.AddPersonalizations(p)
	}
	return mail.GetRequestBody(m)
}

// BenchmarkMailSend1000Recipients measures the emulator's own cost of one
// full request: decoding, SendGrid's rules and recording 1000 recipients.
func BenchmarkMailSend1000Recipients(b *testing.B) {
	emu := sgemu.New(sgemu.Options{Keys: map[string][]string{key: nil}})
	bodies := make([][]byte, 8)
	for i := range bodies {
		bodies[i] = fullRequest(i)
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest("POST", "/v3/mail/send", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		emu.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/recipient")
}

// BenchmarkRecordAMillionRecipients sends a million distinct recipients
// through the handler and reports the heap the emulator keeps afterwards.
func BenchmarkRecordAMillionRecipients(b *testing.B) {
	for range b.N {
		emu := sgemu.New(sgemu.Options{Keys: map[string][]string{key: nil}})
		for batch := range 1000 {
			req := httptest.NewRequest("POST", "/v3/mail/send", bytes.NewReader(fullRequest(batch)))
			req.Header.Set("Authorization", "Bearer "+key)
			w := httptest.NewRecorder()
			emu.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if emu.Total() != 1_000_000 || len(emu.Recent(5)) != 5 {
			b.Fatalf("total %d", emu.Total())
		}
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "MiB-heap-after")
		runtime.KeepAlive(emu)
	}
}
