package report

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, opt Options) *Report {
	t.Helper()
	f, err := os.Open("testdata/sample.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep := New(opt)
	if err := rep.Read(f); err != nil {
		t.Fatal(err)
	}
	return rep.Finish()
}

func TestSample(t *testing.T) {
	rep := load(t, DefaultOptions())
	if rep.Lines != 49 || rep.Skipped != 2 {
		t.Errorf("lines %d skipped %d", rep.Lines, rep.Skipped)
	}
	if rep.Messages != 39 || rep.RcptsRefused != 3 {
		t.Errorf("messages %d refused %d", rep.Messages, rep.RcptsRefused)
	}
	wantAct := map[string]int{"accept": 31, "reject": 5, "quarantine": 1, "tempfail": 1, "discard": 1}
	for k, v := range wantAct {
		if rep.ByAction[k] != v {
			t.Errorf("action %s = %d, want %d", k, rep.ByAction[k], v)
		}
	}
	if rep.ByWouldBe["reject"] != 6 || rep.ByWouldBe["accept"] != 30 {
		t.Errorf("would-be %v", rep.ByWouldBe)
	}
	if len(rep.TopClients) < 2 || rep.TopClients[0] != (Count{"198.51.100.7", 3}) || rep.TopClients[1] != (Count{"203.0.113.9", 2}) {
		t.Errorf("top clients %v", rep.TopClients)
	}
	if rep.TopDomains[0] != (Count{"evil.test", 3}) {
		t.Errorf("top domains %v", rep.TopDomains)
	}
	if len(rep.AuthFailures) != 3 || rep.AuthFailures[0].Domain != "evil.test" || rep.AuthFailures[0].Total != 6 ||
		rep.AuthFailures[0].Reasons["spf-fail"] != 3 || rep.AuthFailures[0].Reasons["dmarc-reject"] != 3 {
		t.Errorf("auth failures %+v", rep.AuthFailures)
	}
	if len(rep.Viruses) != 1 || rep.Viruses[0].From != "v@virus.test" || rep.Viruses[0].QueueID != "Q600" {
		t.Errorf("viruses %+v", rep.Viruses)
	}
	lim := map[string]int{}
	for _, c := range rep.RateLimits {
		lim[c.Key] = c.Count
	}
	if len(lim) != 3 || lim["limit-outbound"] != 1 || lim["autoreply-limited"] != 1 || lim["limit-exceeded"] != 1 {
		t.Errorf("rate limits %v", rep.RateLimits)
	}
	if len(rep.RelayAttempts) != 1 || rep.RelayAttempts[0].Client != "198.51.100.66" {
		t.Errorf("relay %+v", rep.RelayAttempts)
	}
	if len(rep.LocalOnly) != 1 || rep.LocalOnly[0].Kind != "local-only" || len(rep.Ops) != 3 {
		t.Errorf("local-only %+v ops %+v", rep.LocalOnly, rep.Ops)
	}
	if len(rep.Bursts) != 2 || rep.Bursts[0].Count != 25 || rep.Bursts[0].Key != "client:192.0.2.200" || rep.Bursts[1].Key != "from:burst@spam.test" ||
		rep.Bursts[0].End.Sub(rep.Bursts[0].Start) != 240*time.Second {
		t.Errorf("bursts %+v", rep.Bursts)
	}
	if len(rep.Hourly) != 2 || rep.Hourly[0].Key != "2026-11-20T10" || rep.Hourly[1].Count != 25 {
		t.Errorf("hourly %+v", rep.Hourly)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"messages: 39", "198.51.100.7", "evil.test  (dmarc-reject 3, spf-fail 3)", "virus hits: 1", "relay attempts: 1", "client:192.0.2.200", "autoreply-limited"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestSinceAndBurstThreshold(t *testing.T) {
	opt := DefaultOptions()
	opt.Since = time.Date(2026, 11, 20, 10, 50, 0, 0, time.UTC)
	rep := load(t, opt)
	if rep.Messages != 25 || len(rep.Viruses) != 0 || len(rep.RelayAttempts) != 0 {
		t.Errorf("since: messages %d viruses %d relay %d", rep.Messages, len(rep.Viruses), len(rep.RelayAttempts))
	}
	opt = DefaultOptions()
	opt.BurstCount, opt.BurstWindow = 26, time.Hour
	if rep := load(t, opt); len(rep.Bursts) != 0 {
		t.Errorf("25 messages reported as a burst of 26: %+v", rep.Bursts)
	}
	opt.BurstCount, opt.BurstWindow = 10, 50*time.Second // 6 arrivals fit in 50s
	if rep := load(t, opt); len(rep.Bursts) != 0 {
		t.Errorf("window not applied: %+v", rep.Bursts)
	}
}

func TestHTMLEscapes(t *testing.T) {
	rep := load(t, DefaultOptions())
	var b bytes.Buffer
	if err := rep.WriteHTML(&b, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	h := b.String()
	if strings.Contains(h, "<script") || strings.Contains(h, "<b>bold") {
		t.Fatal("log content not escaped in the HTML page")
	}
	for _, want := range []string{`id="total-messages">39<`, `<svg id="chart-actions"`, `<svg id="chart-hourly"`, `<svg id="chart-clients"`, "&lt;b&gt;bold&lt;/b&gt;"} {
		if !strings.Contains(h, want) {
			t.Errorf("html lacks %q", want)
		}
	}
	if strings.Contains(h, "http://") && strings.Count(h, "http://") != strings.Count(h, "http://www.w3.org/2000/svg") {
		t.Error("page references an external resource")
	}
}

func FuzzAdd(f *testing.F) {
	data, _ := os.ReadFile("testdata/sample.log")
	for _, l := range bytes.Split(data, []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`{"msg":"message","time":"x"}`))
	f.Add([]byte(`{"msg":"message","rcpts":"notalist","reasons":[1,2]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rep := New(DefaultOptions())
		rep.Add(line)
		rep.Add(line)
		rep.Finish()
		var b bytes.Buffer
		if err := rep.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteHTML(&b, time.Time{}); err != nil {
			t.Fatal(err)
		}
	})
}
