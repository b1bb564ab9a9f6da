package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter"
)

func TestParseMailq(t *testing.T) {
	out := "\t\t/tmp/sm123/mqueue (2 requests)\n" +
		"-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n" +
		"5ANMAbcd000042*     312 Mon Nov 23 22:10 <carol@sender.e2e.test>\n" +
		"     QUARANTINE: e2e hold\n" +
		"                                         <hold@remote.example>\n" +
		"5ANMAbcd000043      100 Mon Nov 23 22:11 <>\n" +
		"                 (Deferred: Connection refused by [127.0.0.1])\n" +
		"                                         <a@remote.example>\n" +
		"                                         <b@remote.example>\n" +
		"\t\tTotal requests: 2\n"
	q, err := ParseMailq([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 {
		t.Fatalf("got %d entries: %+v", len(q), q)
	}
	if e := q[0]; e.QueueID != "5ANMAbcd000042" || e.Size != 312 || e.Sender != "carol@sender.e2e.test" ||
		e.Quarantine != "e2e hold" || len(e.Recipients) != 1 || e.Recipients[0] != "hold@remote.example" {
		t.Errorf("entry 0: %+v", e)
	}
	if e := q[1]; e.Sender != "" || e.Quarantine != "" || !strings.HasPrefix(e.Status, "Deferred:") || len(e.Recipients) != 2 {
		t.Errorf("entry 1: %+v", e)
	}
	if q, err := ParseMailq([]byte("/tmp/x/mqueue is empty\n\t\tTotal requests: 0\n")); err != nil || len(q) != 0 {
		t.Errorf("empty queue: %v %v", q, err)
	}
	if _, err := ParseMailq([]byte("     <orphan@example>\n")); err == nil {
		t.Error("a recipient before any entry must be an error")
	}
}

func TestSendmailMC(t *testing.T) {
	flags := ""
	mc, err := SendmailMC(SendmailOptions{Milter: "local:/tmp/mw1/milter.sock", Relay: "127.0.0.1:2525", MilterFlags: &flags}, "/tmp/sm1", 2600)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"S=local:/tmp/mw1/milter.sock, F=,",
		"define(`SMART_HOST', `relay:[127.0.0.1]')",
		"define(`RELAY_MAILER_ARGS', `TCP $h 2525')",
		"DAEMON_OPTIONS(`Port=2600, Addr=127.0.0.1, Name=MTA')",
		"define(`confMILTER_MACROS_EOM'",
		"MAILER(`smtp')",
	} {
		if !strings.Contains(mc, want) {
			t.Errorf("generated .mc lacks %q:\n%s", want, mc)
		}
	}
	if strings.Contains(mc, "8895") {
		t.Errorf("the example's milter address survived:\n%s", mc)
	}
	mc, err = SendmailMC(SendmailOptions{}, "/tmp/sm1", 2600)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(mc, "\nINPUT_MAIL_FILTER") {
		t.Errorf("no Milter, but INPUT_MAIL_FILTER:\n%s", mc)
	}
}

// TestSendmailInstance starts a private Sendmail with the stand-in milter
// of postfix_test.go and checks the wiring: delivery to the sink through
// the milter, 5xx and 4xx at end of data, quarantine in mailq -qQ, log.
func TestSendmailInstance(t *testing.T) {
	t.Parallel()
	addr := startTestMilter(t) // inet:127.0.0.1:port
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(addr, "inet:"))
	sink := StartSink(t)
	sm := StartSendmail(t, SendmailOptions{Milter: "inet:" + port + "@" + host, Relay: sink.Addr})
	if v, err := SendmailVersion(); err != nil || !strings.HasPrefix(v, "8.") {
		t.Errorf("SendmailVersion: %q, %v", v, err)
	}

	if err := SendSMTP(sm.SMTPAddr(), "client.test", "ok@sender.test", []string{"ok@remote.example"}, []byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(30*time.Second, To("ok@remote.example"))
	if m == nil {
		t.Fatalf("not delivered to the sink; log:\n%s", sm.Log())
	}
	// Sendmail hands MAIL FROM to the milter without the angle brackets
	// Postfix keeps (mailwarden's filter takes either).
	if v := m.Get("X-Harness-Milter"); len(v) != 1 || strings.Trim(strings.TrimPrefix(v[0], "seen "), "<>") != "ok@sender.test" {
		t.Errorf("X-Harness-Milter %q; message:\n%s", v, m.Data)
	}

	for _, tc := range []struct {
		from string
		code int
	}{{"reject@sender.test", 550}, {"tempfail@sender.test", 451}} {
		err := SendSMTP(sm.SMTPAddr(), "client.test", tc.from, []string{"x@remote.example"}, []byte("Subject: x\r\n\r\nx\r\n"))
		var se *SMTPError
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Errorf("%s: %v, want %d", tc.from, err, tc.code)
		}
	}

	if err := SendSMTP(sm.SMTPAddr(), "client.test", "hold@sender.test", []string{"held@remote.example"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	e := sm.WaitQuarantined(t, func(e SendmailQueueEntry) bool { return e.Sender == "hold@sender.test" }, 10*time.Second)
	if e.Quarantine != "harness hold" || len(e.Recipients) != 1 || e.Recipients[0] != "held@remote.example" {
		t.Errorf("quarantined entry %+v", e)
	}
	sm.WaitLog(t, e.QueueID+": milter=mailwarden, quarantine=harness hold", 5*time.Second)
	if m := sink.WaitFor(time.Second, To("held@remote.example")); m != nil {
		t.Errorf("quarantined message delivered:\n%s", m.Data)
	}
}

// probeMilter records what Sendmail sends and tries the header edits
// mailwarden makes.
type probeMilter struct {
	milter.NoOpMilter
	mu     *sync.Mutex
	seen   map[string]string // "stage name" -> value, "header N" -> value
	proto  milter.OptProtocol
	nHdr   int
	macros []milter.MacroName
}

func (p *probeMilter) record(stage string, m milter.Modifier) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.macros {
		if v, ok := m.GetEx(n); ok {
			p.seen[stage+" "+n] = v
		}
	}
}

func (p *probeMilter) Connect(host, family string, port uint16, addr string, m milter.Modifier) (*milter.Response, error) {
	p.record("connect", m)
	return milter.RespContinue, nil
}
func (p *probeMilter) Helo(name string, m milter.Modifier) (*milter.Response, error) {
	p.record("helo", m)
	return milter.RespContinue, nil
}
func (p *probeMilter) MailFrom(from, _ string, m milter.Modifier) (*milter.Response, error) {
	p.record("mail", m)
	p.mu.Lock()
	p.seen["mail from"] = from
	p.mu.Unlock()
	return milter.RespContinue, nil
}
func (p *probeMilter) RcptTo(rcpt, _ string, m milter.Modifier) (*milter.Response, error) {
	p.record("rcpt", m)
	return milter.RespContinue, nil
}
func (p *probeMilter) Header(name, value string, m milter.Modifier) (*milter.Response, error) {
	p.mu.Lock()
	p.nHdr++
	p.seen[fmt.Sprintf("header %d", p.nHdr)] = name + ":" + value
	p.mu.Unlock()
	return milter.RespContinue, nil
}
func (p *probeMilter) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	p.record("eom", m)
	p.mu.Lock()
	p.seen["protocol"] = fmt.Sprintf("%#x", uint32(m.Protocol()))
	p.mu.Unlock()
	// What mailwarden's filter does: delete the second and the first
	// X-Del (highest index first), insert two fields at index 0.
	for _, err := range []error{
		m.ChangeHeader(1, "X-Del", ""),
		m.ChangeHeader(2, "X-Del", ""),
		m.InsertHeader(0, "X-Second", " two"),
		m.InsertHeader(0, "X-First", " one"),
	} {
		if err != nil {
			return nil, err
		}
	}
	return milter.RespAccept, nil
}

// TestSendmailMilterFacts pins down what Sendmail does with a milter that
// negotiates exactly like mailwarden's filter (protocol steps, leading
// space, macro requests), the facts filter/ relies on.
func TestSendmailMilterFacts(t *testing.T) {
	t.Parallel()
	const proto = milter.OptNoUnknown | milter.OptNoData | milter.OptNoEOH |
		milter.OptNoConnReply | milter.OptNoHeloReply | milter.OptNoMailReply | milter.OptNoHeaderReply |
		milter.OptHeaderLeadingSpace
	stages := map[milter.MacroStage][]milter.MacroName{
		milter.StageConnect: {milter.MacroMTAFQDN, milter.MacroDaemonName, milter.MacroDaemonAddr, milter.MacroClientAddr, milter.MacroClientName, milter.MacroClientPTR, milter.MacroMTAVersion, milter.MacroIfAddr},
		milter.StageMail:    {milter.MacroQueueId, milter.MacroAuthType, milter.MacroAuthAuthen, milter.MacroMailAddr},
		milter.StageRcpt:    {milter.MacroRcptAddr, milter.MacroRcptMailer},
		milter.StageEOM:     {milter.MacroQueueId},
	}
	var all []milter.MacroName
	for _, l := range stages {
		all = append(all, l...)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	opts := []milter.Option{
		milter.WithDynamicMilter(func(_ uint32, _ milter.OptAction, p milter.OptProtocol, _ milter.DataSize) milter.Milter {
			return &probeMilter{mu: &mu, seen: seen, proto: p, macros: all}
		}),
		milter.WithActions(milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine | milter.OptSetMacros),
		milter.WithProtocols(proto),
	}
	for st, l := range stages {
		opts = append(opts, milter.WithMacroRequest(st, l))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := milter.NewServer(opts...)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	sink := StartSink(t)
	sm := StartSendmail(t, SendmailOptions{Milter: "inet:" + port + "@127.0.0.1", Relay: sink.Addr})
	msg := "X-Del: first\r\nFrom: <probe@sender.test>\r\nX-Del: second\r\nX-Del: third\r\nSubject:no space\r\nX-Keep: \t tab and space\r\n\r\nbody\r\n"
	if err := SendSMTP(sm.SMTPAddr(), "helo.client.test", "probe@sender.test", []string{"probe@remote.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(30*time.Second, To("probe@remote.example"))
	if m == nil {
		t.Fatalf("not delivered; log:\n%s", sm.Log())
	}
	mu.Lock()
	defer mu.Unlock()
	dump := func() string {
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s = %q\n", k, seen[k])
		}
		return b.String()
	}
	check := func(key, want string) {
		t.Helper()
		if got, ok := seen[key]; !ok || got != want {
			t.Errorf("%s = %q (sent: %v), want %q", key, got, ok, want)
		}
	}
	// SMFIP_HDR_LEADSPC is honoured: values arrive as written.
	// Every protocol step we ask for is granted (no-reply flags, no
	// DATA/EOH/unknown events, leading space).
	if p, _ := strconv.ParseUint(strings.TrimPrefix(seen["protocol"], "0x"), 16, 32); milter.OptProtocol(p)&proto != proto {
		t.Errorf("negotiated protocol %s, want all of %#x", seen["protocol"], uint32(proto))
	}
	check("header 1", "X-Del: first")
	check("header 5", "Subject:no space")
	check("header 6", "X-Keep: \t tab and space")
	// The queue id is known from MAIL on (Postfix: only later), not at
	// connect; it is the id of Sendmail's Received line.
	if id := seen["mail i"]; id == "" || seen["eom i"] != id || !strings.Contains(string(m.Data), "with ESMTP id "+id) {
		t.Errorf("queue id at MAIL %q, at EOM %q", id, seen["eom i"])
	}
	if _, ok := seen["connect i"]; ok {
		t.Errorf("queue id at connect: %q", seen["connect i"])
	}
	// Macros the milter asks for at negotiation are sent, also those the
	// .mc's confMILTER_MACROS_CONNECT does not list.
	check("connect {client_ptr}", "localhost")
	check("connect {daemon_addr}", "127.0.0.1")
	check("connect j", SendmailHostname)
	check("rcpt {rcpt_mailer}", "relay")
	// No SASL macros for an unauthenticated client, not even empty ones.
	for k := range seen {
		if strings.Contains(k, "{auth_") {
			t.Errorf("%s sent for an unauthenticated client: %q", k, seen[k])
		}
	}
	// MAIL FROM arrives without angle brackets (Postfix keeps them).
	check("mail from", "probe@sender.test")
	if t.Failed() {
		t.Logf("seen:\n%s", dump())
	}

	// Inserted at index 0 means above Sendmail's own Received line; a
	// deleted field keeps its index (deleting 1 then 2 removed the first
	// two X-Del), unlike a list that closes the gap.
	h := m.Header()
	var names []string
	for _, f := range h {
		names = append(names, f.Name)
	}
	if len(h) < 3 || h[0].Raw != "X-First: one\r\n" || h[1].Raw != "X-Second: two\r\n" || h[2].Name != "Received" {
		t.Errorf("header order %v, want X-First, X-Second, Received first:\n%s", names, m.Data)
	}
	if got := m.Get("X-Del"); len(got) != 1 || got[0] != "third" {
		t.Errorf("X-Del left: %q, want [third]", got)
	}
}

func FuzzParseMailq(f *testing.F) {
	f.Add([]byte("\t\t/q (1 request)\n-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n" +
		"5ANMAbcd000042*     312 Mon Nov 23 22:10 <a@b>\n     QUARANTINE: x\n  (Deferred: y)\n      <c@d>\n\t\tTotal requests: 1\n"))
	f.Add([]byte("/q is empty\n"))
	f.Add([]byte("X 1 2 3 4 5 6\n \n\t<\n"))
	// Any output, even a truncated or garbled listing: an error, never a
	// panic, and every entry parsed has its size.
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseMailq(b)
		if err != nil {
			return
		}
		for _, e := range q {
			if e.Size < 0 && !bytes.Contains(b, []byte("-")) {
				t.Errorf("negative size %d without a minus sign in the input", e.Size)
			}
		}
	})
}
