package filter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// lockedBuffer collects the JSON log of a test server.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// messages returns the "message" summary lines.
func (l *lockedBuffer) messages(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "message" {
			out = append(out, m)
		}
	}
	return out
}

// seen is what a probe check saw of a message.
type seen struct {
	queueID  string
	from     string
	rcpts    []string
	header   message.Header
	bodySize int64
	size     int64
	tail     []byte
	client   message.Client
	auth     string
}

type probe struct {
	mu   sync.Mutex
	msgs []seen
}

func (p *probe) Name() string { return "probe" }
func (p *probe) Check(_ context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	s := seen{queueID: m.QueueID, from: m.MailFrom, rcpts: slices.Clone(m.Rcpts), header: slices.Clone(m.Header),
		bodySize: m.Body.Size(), size: m.Size, client: m.Client, auth: m.Auth}
	if n := min(m.Body.Size(), 16); n > 0 {
		s.tail = make([]byte, n)
		m.Body.ReadAt(s.tail, m.Body.Size()-n)
	}
	p.mu.Lock()
	p.msgs = append(p.msgs, s)
	p.mu.Unlock()
	return policy.Result{Status: policy.StatusPass}, nil
}

func (p *probe) last(t *testing.T) seen {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.msgs) == 0 {
		t.Fatal("the probe saw no message")
	}
	return p.msgs[len(p.msgs)-1]
}

type testServer struct {
	sock   string
	spool  string
	logs   *lockedBuffer
	srv    *Server
	probe  *probe
	holder *policy.Holder
}

const serverTOML = `
authserv_id = "mx.test"
local_domains = ["example.org"]
%s
[message]
temp_dir = %q
spool_memory = "64KB"
%s

[lists]
deny_recipients = ["trap@example.org"]
deny_senders = ["*@spammer.test"]

[[rule]]
name = "wire"
body = true
pattern = "(?i)urgent wire transfer"
action = "reject"
reply = "554 5.7.1 Go away"

[[rule]]
name = "invoice"
header = "Subject"
pattern = "(?i)invoice"
action = "quarantine"

[[rule]]
name = "drop"
header = "X-Drop"
pattern = "yes"
action = "discard"
`

// startServer runs a milter server on a unix socket; top goes at the top
// level of the config, message into its [message] table.
func startServer(t *testing.T, top string, message ...string) *testServer {
	t.Helper()
	return startServerWith(t, top, nil, message...)
}

// startServerWith also runs the given modules' checks.
func startServerWith(t *testing.T, top string, extra []policy.Module, message ...string) *testServer {
	t.Helper()
	return startServerOpts(t, top, extra, nil, message...)
}

// startServerOpts also lets tweak change the server Options.
func startServerOpts(t *testing.T, top string, extra []policy.Module, tweak func(*Options), message ...string) *testServer {
	t.Helper()
	dir := shortDir(t)
	ts := &testServer{sock: filepath.Join(dir, "m.sock"), spool: filepath.Join(dir, "spool"), logs: &lockedBuffer{}, probe: &probe{}}
	if err := os.Mkdir(ts.spool, 0o700); err != nil {
		t.Fatal(err)
	}
	mod := policy.Module{Name: "probe", Default: func() any { return &struct{}{} }, Build: func(any, *policy.Env) ([]policy.Step, error) {
		return []policy.Step{{Check: ts.probe, StepConfig: policy.DefaultStep()}}, nil
	}}
	mods := append([]policy.Module{mod}, extra...)
	cfg, err := policy.Load("test.toml", []byte(fmt.Sprintf(serverTOML, top, ts.spool, strings.Join(message, "\n"))), mods)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := policy.New(cfg, mods, logger, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.holder = policy.NewHolder(p)
	ln, err := Listen("unix:"+ts.sock, 0o600, "")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Holder: ts.holder, Logger: logger, ReadTimeout: time.Minute}
	if tweak != nil {
		tweak(&opts)
	}
	ts.srv = New(opts)
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.holder.Close()
	})
	return ts
}

// postfixProtocol is what Postfix offers: every protocol step, including
// SMFIP_HDR_LEADSPC.
const allProtocol = milter.OptNoConnect | milter.OptNoHelo | milter.OptNoMailFrom | milter.OptNoRcptTo | milter.OptNoBody |
	milter.OptNoHeaders | milter.OptNoEOH | milter.OptNoUnknown | milter.OptNoData | milter.OptSkip | milter.OptRcptRej |
	milter.OptNoHeaderReply | milter.OptNoConnReply | milter.OptNoHeloReply | milter.OptNoMailReply | milter.OptNoRcptReply |
	milter.OptNoDataReply | milter.OptNoUnknownReply | milter.OptNoEOHReply | milter.OptNoBodyReply | milter.OptHeaderLeadingSpace

// conn is one MTA connection to the test server.
type conn struct {
	s         *milter.ClientSession
	raw       net.Conn
	leadSpace bool
	macros    *milter.MacroBag
}

func (ts *testServer) connect(t *testing.T, proto milter.OptProtocol) *conn {
	t.Helper()
	d := &recordingDialer{}
	c := milter.NewClient("unix", ts.sock, milter.WithProtocols(proto), milter.WithDialer(d),
		milter.WithReadTimeout(30*time.Second), milter.WithWriteTimeout(30*time.Second))
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroMTAFQDN, "mx.example.org")
	s, err := c.Session(macros)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	cn := &conn{s: s, raw: d.conn, leadSpace: s.ProtocolOption(milter.OptHeaderLeadingSpace), macros: macros}
	mustContinue(t, "conn")(s.Conn("mail.sender.test", milter.FamilyInet, 40000, "198.51.100.7"))
	mustContinue(t, "helo")(s.Helo("mail.sender.test"))
	return cn
}

type recordingDialer struct{ conn net.Conn }

func (d *recordingDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	d.conn = c
	return c, err
}

func mustContinue(t *testing.T, what string) func(*milter.Action, error) {
	return func(a *milter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if a.Type != milter.ActionContinue {
			t.Fatalf("%s: %v, want continue", what, a)
		}
	}
}

type msg struct {
	queueID string
	from    string
	rcpts   []string
	header  [][2]string
	body    []byte
}

type outcome struct {
	rcpt []*milter.Action // per recipient
	mods []milter.ModifyAction
	act  *milter.Action
}

// send runs one transaction; the header values are given without the
// leading space, as they appear after "Name:".
func (c *conn) send(t *testing.T, m msg) outcome {
	t.Helper()
	var o outcome
	c.macros.Set(milter.MacroQueueId, m.queueID)
	c.macros.Set(milter.MacroMailAddr, m.from)
	mustContinue(t, "mail")(c.s.Mail("<"+m.from+">", ""))
	accepted := 0
	for _, r := range m.rcpts {
		a, err := c.s.Rcpt("<"+r+">", "")
		if err != nil {
			t.Fatalf("rcpt %s: %v", r, err)
		}
		o.rcpt = append(o.rcpt, a)
		if a.Type == milter.ActionContinue {
			accepted++
		}
	}
	if accepted == 0 {
		c.s.Abort(nil)
		return o
	}
	mustContinue(t, "data")(c.s.DataStart())
	for _, h := range m.header {
		v := h[1]
		if c.leadSpace {
			v = " " + v // QUIRK(postfix): with SMFIP_HDR_LEADSPC the value keeps its space
		}
		mustContinue(t, "header "+h[0])(c.s.HeaderField(h[0], v, nil))
	}
	mustContinue(t, "eoh")(c.s.HeaderEnd())
	if len(m.body) == 0 {
		// go-milter's client needs a body event before the end; an empty
		// one is what an MTA sends for an empty body.
		mustContinue(t, "empty body")(c.s.BodyChunk(nil))
		mods, act, err := c.s.End()
		if err != nil {
			t.Fatalf("end: %v", err)
		}
		o.mods, o.act = mods, act
		return o
	}
	for b := m.body; len(b) > 0; {
		n := min(len(b), 65535)
		a, err := c.s.BodyChunk(b[:n])
		if err != nil {
			t.Fatalf("body: %v", err)
		}
		if a.Type != milter.ActionContinue {
			o.act = a
			c.s.Abort(nil) // the MTA ends the transaction
			return o
		}
		b = b[n:]
	}
	mods, act, err := c.s.End()
	if err != nil {
		t.Fatalf("end: %v", err)
	}
	o.mods, o.act = mods, act
	return o
}

func basicMsg(qid string) msg {
	return msg{
		queueID: qid, from: "alice@sender.test", rcpts: []string{"bob@example.org"},
		header: [][2]string{{"From", "Alice <alice@sender.test>"}, {"To", "bob@example.org"}, {"Subject", "lunch"}},
		body:   []byte("Shall we have lunch?\r\n"),
	}
}

// finalHeader applies the modifications to the header the MTA has, the
// way Postfix does (insert at an index, change/delete the Nth field of a
// name), and returns it.
func finalHeader(t *testing.T, in [][2]string, mods []milter.ModifyAction) [][2]string {
	t.Helper()
	h := slices.Clone(in)
	for _, m := range mods {
		switch m.Type {
		case milter.ActionInsertHeader:
			if int(m.HeaderIndex) > len(h) {
				t.Fatalf("insert at %d beyond %d fields", m.HeaderIndex, len(h))
			}
			h = slices.Insert(h, int(m.HeaderIndex), [2]string{m.HeaderName, m.HeaderValue})
		case milter.ActionChangeHeader:
			n := 0
			found := false
			for i := range h {
				if strings.EqualFold(h[i][0], m.HeaderName) {
					n++
					if n == int(m.HeaderIndex) {
						if m.HeaderValue == "" {
							h = slices.Delete(h, i, i+1)
						} else {
							h[i][1] = m.HeaderValue
						}
						found = true
						break
					}
				}
			}
			if !found {
				t.Fatalf("change of %s #%d: no such field", m.HeaderName, m.HeaderIndex)
			}
		case milter.ActionAddHeader:
			h = append(h, [2]string{m.HeaderName, m.HeaderValue})
		}
	}
	return h
}

func modsOf(o outcome, typ milter.ModifyActionType) []milter.ModifyAction {
	var out []milter.ModifyAction
	for _, m := range o.mods {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files := dirEntries(t, dir)
		if len(files) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("temp files left in %s: %v", dir, files)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitInFlight(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d transactions still in flight", s.InFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCleanMessageGetsHeadersOnTop(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	if !c.leadSpace {
		t.Fatal("HDR_LEADSPC not negotiated")
	}
	m := basicMsg("Q1")
	o := c.send(t, m)
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("action %v", o.act)
	}
	ins := modsOf(o, milter.ActionInsertHeader)
	if len(ins) != 2 || len(o.mods) != 2 {
		t.Fatalf("mods %v", o.mods)
	}
	for _, i := range ins {
		if i.HeaderIndex != 0 {
			t.Errorf("insert at %d, want 0 (the top)", i.HeaderIndex)
		}
		if !strings.HasPrefix(i.HeaderValue, " ") {
			t.Errorf("with HDR_LEADSPC we supply the space after the colon: %q", i.HeaderValue)
		}
	}
	final := finalHeader(t, m.header, o.mods)
	if final[0][0] != "Authentication-Results" || final[0][1] != " mx.test; none" || final[1][0] != "X-Spam-Status" || final[2][0] != "From" {
		t.Errorf("final header %q", final)
	}
	// What the checks saw.
	s := ts.probe.last(t)
	if s.queueID != "Q1" || s.from != "alice@sender.test" || !slices.Equal(s.rcpts, []string{"bob@example.org"}) {
		t.Errorf("envelope %+v", s)
	}
	if s.client.Addr.String() != "198.51.100.7" || s.client.HELO != "mail.sender.test" || s.client.Name != "mail.sender.test" || s.client.Port != 40000 {
		t.Errorf("client %+v", s.client)
	}
	if s.auth != "" {
		t.Errorf("no {auth_authen}: auth %q", s.auth)
	}
	if len(s.header) != 3 || s.header[2] != (message.Field{Name: "Subject", Value: " lunch"}) {
		t.Errorf("header %q", s.header)
	}
	if s.bodySize != int64(len(m.body)) || len(s.tail) != 16 || !bytes.HasSuffix(m.body, s.tail) {
		t.Errorf("body size %d tail %q", s.bodySize, s.tail)
	}
	// One summary line.
	logs := ts.logs.messages(t)
	if len(logs) != 1 {
		t.Fatalf("%d summary lines", len(logs))
	}
	l := logs[0]
	for _, k := range []string{"queue_id", "client", "client_name", "helo", "from", "rcpts", "direction", "size", "mode", "action", "would_be", "score", "reasons", "checks", "duration_ms"} {
		if _, ok := l[k]; !ok {
			t.Errorf("summary lacks %q: %v", k, l)
		}
	}
	if l["queue_id"] != "Q1" || l["action"] != "accept" || l["direction"] != "inbound" || l["client"] != "198.51.100.7" {
		t.Errorf("summary %v", l)
	}
	if checks, _ := l["checks"].(map[string]any); checks["probe"] == nil || checks["rules"] == nil {
		t.Errorf("checks in the summary: %v", l["checks"])
	}
	waitEmpty(t, ts.spool)
}

func TestForgedAuthResultsDeleted(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	m := basicMsg("Q2")
	m.header = [][2]string{
		{"Authentication-Results", "other.test; spf=pass"},
		{"Received", "from x by y"},
		{"Authentication-Results", "mx.test; dkim=pass header.d=bank.test"},
		{"X-Spam-Status", "No, score=-50"},
		{"From", "bank@bank.test"},
		{"Authentication-Results", "MX.TEST;\n\tdmarc=pass"},
		{"Subject", "hi"},
	}
	o := c.send(t, m)
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("action %v", o.act)
	}
	var dels []string
	for _, d := range modsOf(o, milter.ActionChangeHeader) {
		if d.HeaderValue != "" {
			t.Errorf("change instead of delete: %v", d)
		}
		dels = append(dels, fmt.Sprintf("%s#%d", d.HeaderName, d.HeaderIndex))
	}
	// Highest index first, so that deleting one cannot shift another.
	if !slices.Equal(dels, []string{"Authentication-Results#3", "Authentication-Results#2", "X-Spam-Status#1"}) {
		t.Errorf("deletions %v", dels)
	}
	final := finalHeader(t, m.header, o.mods)
	var ar []string
	for _, f := range final {
		if f[0] == "Authentication-Results" {
			ar = append(ar, strings.TrimSpace(f[1]))
		}
	}
	if !slices.Equal(ar, []string{"mx.test; none", "other.test; spf=pass"}) {
		t.Errorf("A-R fields after the changes: %q", ar)
	}
	if final[1][0] != "X-Spam-Status" || strings.Contains(final[1][1], "-50") {
		t.Errorf("status header %q", final[1])
	}
}

func TestRejectQuarantineDiscard(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)

	m := basicMsg("QR")
	m.body = []byte("Please do an URGENT WIRE TRANSFER.\r\n")
	o := c.send(t, m)
	if o.act.Type != milter.ActionRejectWithCode || o.act.SMTPCode != 554 || o.act.SMTPReply != "554 5.7.1 Go away" {
		t.Errorf("reject: %+v", o.act)
	}
	if len(o.mods) != 0 {
		t.Errorf("a rejected message gets no changes: %v", o.mods)
	}

	m = basicMsg("QQ")
	m.header = append(m.header, [2]string{"Subject", "Your invoice"})
	o = c.send(t, m)
	q := modsOf(o, milter.ActionQuarantine)
	if o.act.Type != milter.ActionAccept || len(q) != 1 || q[0].Reason != "rule-invoice" {
		t.Errorf("quarantine: %v %v", o.act, o.mods)
	}
	if len(modsOf(o, milter.ActionInsertHeader)) != 2 {
		t.Error("a quarantined message gets our headers")
	}

	m = basicMsg("QD")
	m.header = append(m.header, [2]string{"X-Drop", "yes"})
	o = c.send(t, m)
	if o.act.Type != milter.ActionDiscard {
		t.Errorf("discard: %v", o.act)
	}

	m = basicMsg("QS")
	m.from = "offers@spammer.test"
	o = c.send(t, m)
	if o.act.Type != milter.ActionRejectWithCode || o.act.SMTPReply != "550 5.7.1 Message rejected by policy" {
		t.Errorf("deny-listed sender: %v", o.act)
	}
	logs := ts.logs.messages(t)
	var actions []string
	for _, l := range logs {
		actions = append(actions, l["queue_id"].(string)+"="+l["action"].(string))
	}
	if !slices.Equal(actions, []string{"QR=reject", "QQ=quarantine", "QD=discard", "QS=reject"}) {
		t.Errorf("summary lines %v", actions)
	}
	if logs[0]["reply"] != "554 5.7.1 Go away" {
		t.Errorf("reply in the log: %v", logs[0]["reply"])
	}
	waitEmpty(t, ts.spool)
}

func TestRecipientRefusedAtRcpt(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	m := basicMsg("QT")
	m.rcpts = []string{"bob@example.org", "trap@example.org", "carol@example.org"}
	o := c.send(t, m)
	if len(o.rcpt) != 3 || o.rcpt[0].Type != milter.ActionContinue || o.rcpt[2].Type != milter.ActionContinue {
		t.Fatalf("rcpt actions %v", o.rcpt)
	}
	if r := o.rcpt[1]; !r.StopProcessing() || r.SMTPCode != 550 || !strings.Contains(r.SMTPReply, "5.7.1") {
		t.Errorf("trap@: %+v", r)
	}
	if o.act.Type != milter.ActionAccept {
		t.Errorf("the message to the others: %v", o.act)
	}
	if s := ts.probe.last(t); !slices.Equal(s.rcpts, []string{"bob@example.org", "carol@example.org"}) {
		t.Errorf("recipients of the message %v", s.rcpts)
	}
	// Monitor mode: accepted.
	tm := startServer(t, "mode = \"monitor\"\n")
	cm := tm.connect(t, allProtocol)
	o = cm.send(t, m)
	for i, r := range o.rcpt {
		if r.Type != milter.ActionContinue {
			t.Errorf("monitor: rcpt %d %v", i, r)
		}
	}
}

// go-milter v0.10.1 lost the MTA's data on a reused connection; Postfix
// reuses one milter connection for every message of an SMTP session.
func TestTwoMessagesOnOneConnection(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	bad := basicMsg("QA")
	bad.from = "first@sender.test"
	bad.rcpts = []string{"one@example.org"}
	bad.header = append(bad.header, [2]string{"X-Only-First", "1"})
	bad.body = []byte("urgent wire transfer\r\n")
	good := basicMsg("QB")
	good.from = "second@sender.test"
	good.rcpts = []string{"two@example.org", "three@example.org"}
	good.body = []byte(strings.Repeat("fine ", 30000)) // spooled to a file

	if o := c.send(t, bad); o.act.Type != milter.ActionRejectWithCode {
		t.Fatalf("first: %v", o.act)
	}
	first := ts.probe.last(t)
	if o := c.send(t, good); o.act.Type != milter.ActionAccept {
		t.Fatalf("second: %v", o.act)
	}
	second := ts.probe.last(t)
	if first.from != "first@sender.test" || !slices.Equal(first.rcpts, []string{"one@example.org"}) || first.queueID != "QA" {
		t.Errorf("first %+v", first)
	}
	if second.from != "second@sender.test" || !slices.Equal(second.rcpts, []string{"two@example.org", "three@example.org"}) || second.queueID != "QB" {
		t.Errorf("second %+v", second)
	}
	for _, f := range second.header {
		if f.Name == "X-Only-First" {
			t.Error("the second message has the first one's header")
		}
	}
	if second.bodySize != int64(len(good.body)) || second.client.HELO != "mail.sender.test" {
		t.Errorf("second body %d client %+v", second.bodySize, second.client)
	}
	// And a third after the clean one, rejected again.
	if o := c.send(t, bad); o.act.Type != milter.ActionRejectWithCode {
		t.Fatalf("third: %v", o.act)
	}
	if n := len(ts.logs.messages(t)); n != 3 {
		t.Errorf("%d summary lines for 3 messages", n)
	}
	waitEmpty(t, ts.spool)
	waitInFlight(t, ts.srv)
}

func TestTempFilesRemovedWhateverHappens(t *testing.T) {
	ts := startServer(t, "")
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB > spool_memory

	// Accepted.
	c := ts.connect(t, allProtocol)
	m := basicMsg("T1")
	m.body = big
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Fatalf("accept: %v", o.act)
	}
	// Rejected.
	m.body = append(slices.Clone(big), []byte("urgent wire transfer\r\n")...)
	if o := c.send(t, m); o.act.Type != milter.ActionRejectWithCode {
		t.Fatalf("reject: %v", o.act)
	}
	waitEmpty(t, ts.spool)

	// Aborted mid-body (RSET), then the connection goes on.
	c.macros.Set(milter.MacroQueueId, "T3")
	mustContinue(t, "mail")(c.s.Mail("<a@sender.test>", ""))
	mustContinue(t, "rcpt")(c.s.Rcpt("<bob@example.org>", ""))
	mustContinue(t, "data")(c.s.DataStart())
	mustContinue(t, "eoh")(c.s.HeaderEnd())
	for i := 0; i < 5; i++ {
		mustContinue(t, "body")(c.s.BodyChunk(big[:65535]))
	}
	if got := dirEntries(t, ts.spool); len(got) != 1 {
		t.Fatalf("mid-body: spool files %v, want 1", got)
	}
	if err := c.s.Abort(nil); err != nil {
		t.Fatal(err)
	}
	m = basicMsg("T4")
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Fatalf("after abort: %v", o.act)
	}
	waitEmpty(t, ts.spool)

	// The MTA disconnects mid-body without a word.
	d := ts.connect(t, allProtocol)
	mustContinue(t, "mail")(d.s.Mail("<a@sender.test>", ""))
	mustContinue(t, "rcpt")(d.s.Rcpt("<bob@example.org>", ""))
	mustContinue(t, "data")(d.s.DataStart())
	mustContinue(t, "header")(d.s.HeaderField("Subject", " x", nil))
	mustContinue(t, "eoh")(d.s.HeaderEnd())
	for i := 0; i < 5; i++ {
		mustContinue(t, "body")(d.s.BodyChunk(big[:65535]))
	}
	d.raw.Close()
	waitEmpty(t, ts.spool)
	waitInFlight(t, ts.srv)

	// Closed (QUIT) mid-body.
	e := ts.connect(t, allProtocol)
	mustContinue(t, "mail")(e.s.Mail("<a@sender.test>", ""))
	mustContinue(t, "rcpt")(e.s.Rcpt("<bob@example.org>", ""))
	mustContinue(t, "data")(e.s.DataStart())
	mustContinue(t, "eoh")(e.s.HeaderEnd())
	for i := 0; i < 3; i++ {
		mustContinue(t, "body")(e.s.BodyChunk(big[:65535]))
	}
	e.s.Close()
	waitEmpty(t, ts.spool)
	waitInFlight(t, ts.srv)
}

func TestTenMegabyteOneLineBody(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	m := basicMsg("BIG")
	body := bytes.Repeat([]byte("x"), 10<<20)
	copy(body[len(body)-7:], "THE-END")
	m.body = body
	o := c.send(t, m)
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("action %v", o.act)
	}
	s := ts.probe.last(t)
	if s.bodySize != 10<<20 {
		t.Errorf("the check saw %d body bytes, want %d (never truncated)", s.bodySize, 10<<20)
	}
	if !bytes.HasSuffix(s.tail, []byte("THE-END")) {
		t.Errorf("last bytes %q", s.tail)
	}
	var hdr int64
	for _, h := range m.header {
		hdr += int64(len(h[0]) + len(h[1]) + 1 + 3)
	}
	if s.size < 10<<20 || s.size > 10<<20+hdr+100 {
		t.Errorf("message size %d", s.size)
	}
	waitEmpty(t, ts.spool)
}

func TestMaxSizeExceeded(t *testing.T) {
	ts := startServer(t, "max_message_size = \"200KB\"")
	c := ts.connect(t, allProtocol)
	m := basicMsg("OVER")
	m.body = bytes.Repeat([]byte("y"), 300<<10)
	o := c.send(t, m)
	if o.act.Type != milter.ActionRejectWithCode || o.act.SMTPReply != "552 5.3.4 Message too big" {
		t.Errorf("oversize: %+v", o.act)
	}
	if !c.s.ProtocolOption(milter.OptSkip) {
		t.Error("SMFIP_SKIP not negotiated: the rest of an oversize body is sent for nothing")
	}
	l := ts.logs.messages(t)
	if len(l) != 1 || !slices.Equal(l[0]["reasons"].([]any), []any{"message-oversize"}) || l[0]["size"].(float64) <= 200<<10 || l[0]["size"].(float64) >= 300<<10 {
		// Size: past max_message_size, but the rest was skipped (SMFIP_SKIP).
		t.Errorf("summary %v", l)
	}
	waitEmpty(t, ts.spool)
	// Just below the limit is fine.
	m.body = bytes.Repeat([]byte("y"), 150<<10)
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Errorf("below max_message_size: %v", o.act)
	}
	// max_message_size_action = tempfail.
	tt := startServer(t, "max_message_size = \"200KB\"\nmax_message_size_action = \"tempfail\"")
	ct := tt.connect(t, allProtocol)
	m.body = bytes.Repeat([]byte("y"), 300<<10)
	if o := ct.send(t, m); o.act.Type != milter.ActionRejectWithCode || o.act.SMTPCode != 451 {
		t.Errorf("oversize tempfail: %+v", o.act)
	}
	waitEmpty(t, tt.spool)
}

func TestThousandHeaders(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	m := basicMsg("H1000")
	for len(m.header) < 1000 {
		m.header = append(m.header, [2]string{"X-Filler", fmt.Sprintf("value %d", len(m.header))})
	}
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Fatalf("1000 fields: %v", o.act)
	}
	if s := ts.probe.last(t); len(s.header) != 1000 {
		t.Errorf("the checks saw %d fields", len(s.header))
	}
	m.queueID = "H1001"
	m.header = append(m.header, [2]string{"X-One-Too-Many", "1"})
	o := c.send(t, m)
	if o.act.Type != milter.ActionRejectWithCode || o.act.SMTPCode != 552 {
		t.Errorf("1001 fields (max_headers 1000): %+v", o.act)
	}
}

func TestNULBytes(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	m := basicMsg("NUL")
	m.header = append(m.header, [2]string{"X-Binary", "caf\xc3\xa9 \xff\xfe"})
	m.body = []byte("body \x00 with \x00\x00 NULs\r\nurgent wire\x00transfer\r\n")
	o := c.send(t, m)
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("NUL bytes in the body: %v", o.act)
	}
	s := ts.probe.last(t)
	if s.bodySize != int64(len(m.body)) {
		t.Errorf("body with NULs: %d bytes, want %d", s.bodySize, len(m.body))
	}
	if s.header[3].Value != " caf\xc3\xa9 \xff\xfe" {
		t.Errorf("8-bit header %q", s.header[3].Value)
	}
	// The connection still works.
	if o := c.send(t, basicMsg("AFTER")); o.act.Type != milter.ActionAccept {
		t.Errorf("after NULs: %v", o.act)
	}

	// A NUL inside a header value breaks the milter packet (values are C
	// strings): go-milter drops the connection and the MTA applies its
	// milter_default_action. The daemon lives on and leaks nothing.
	d := ts.connect(t, allProtocol)
	d.macros.Set(milter.MacroQueueId, "HNUL")
	mustContinue(t, "mail")(d.s.Mail("<a@sender.test>", ""))
	mustContinue(t, "rcpt")(d.s.Rcpt("<bob@example.org>", ""))
	mustContinue(t, "data")(d.s.DataStart())
	d.s.HeaderField("X-Nul", " a\x00b", nil)
	d.s.HeaderEnd()
	big := bytes.Repeat([]byte("z"), 65535)
	for i := 0; i < 3; i++ {
		if _, err := d.s.BodyChunk(big); err != nil {
			break
		}
	}
	if _, act, err := d.s.End(); err == nil && act.Type == milter.ActionAccept {
		t.Log("header NUL accepted")
	}
	waitEmpty(t, ts.spool)
	waitInFlight(t, ts.srv)
	if o := ts.connect(t, allProtocol).send(t, basicMsg("NEXT")); o.act.Type != milter.ActionAccept {
		t.Errorf("new connection after a broken one: %v", o.act)
	}
}

func TestEmptyBodyAndNoHeaders(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	m := msg{queueID: "E", from: "", rcpts: []string{"bob@example.org"}}
	o := c.send(t, m)
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("empty message: %v", o.act)
	}
	s := ts.probe.last(t)
	if s.bodySize != 0 || len(s.header) != 0 || s.from != "" {
		t.Errorf("saw %+v", s)
	}
}

// Sendmail before 8.14 and other MTAs may not offer SMFIP_HDR_LEADSPC:
// the session must still work, header values must be read the same way,
// and our values must not get a doubled space.
func TestSessionWithoutLeadingSpace(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol&^milter.OptHeaderLeadingSpace)
	if c.leadSpace {
		t.Fatal("HDR_LEADSPC negotiated although not offered")
	}
	m := basicMsg("SM")
	m.header = append(m.header, [2]string{"Authentication-Results", "mx.test; spf=pass"})
	o := c.send(t, m)
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("action %v", o.act)
	}
	for _, i := range modsOf(o, milter.ActionInsertHeader) {
		if strings.HasPrefix(i.HeaderValue, " ") {
			t.Errorf("without HDR_LEADSPC the MTA adds the space: %q", i.HeaderValue)
		}
	}
	if d := modsOf(o, milter.ActionChangeHeader); len(d) != 1 || d[0].HeaderIndex != 1 {
		t.Errorf("forged A-R: %v", d)
	}
	s := ts.probe.last(t)
	if s.header[2] != (message.Field{Name: "Subject", Value: " lunch"}) {
		t.Errorf("header values are kept in one form: %q", s.header[2])
	}
}

// An MTA that does not let us change headers or quarantine is refused at
// negotiation (its milter_default_action applies), not failed per message.
func TestNegotiationRefusesMissingActions(t *testing.T) {
	ts := startServer(t, "")
	c := milter.NewClient("unix", ts.sock, milter.WithActions(milter.OptAddHeader))
	if s, err := c.Session(nil); err == nil {
		s.Close()
		t.Fatal("negotiated without change-header and quarantine")
	}
}

// Without the no-reply protocol options (an older MTA), every step gets a
// reply and the verdict is the same.
func TestSessionWithMinimalProtocol(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, 0|milter.OptHeaderLeadingSpace)
	m := basicMsg("MIN")
	m.body = []byte("urgent wire transfer")
	if o := c.send(t, m); o.act.Type != milter.ActionRejectWithCode {
		t.Errorf("action %v", o.act)
	}
}

// When the body cannot be spooled (temp dir gone, disk full) the message is
// tempfailed, never accepted unchecked, and the connection goes on.
func TestSpoolFailureTempfails(t *testing.T) {
	ts := startServer(t, "")
	if err := os.Remove(ts.spool); err != nil {
		t.Fatal(err)
	}
	c := ts.connect(t, allProtocol)
	m := basicMsg("NOSPOOL")
	m.body = bytes.Repeat([]byte("q"), 200<<10)
	o := c.send(t, m)
	if o.act == nil || o.act.Type != milter.ActionRejectWithCode || o.act.SMTPCode != 451 {
		t.Fatalf("spool failure: %+v", o.act)
	}
	waitInFlight(t, ts.srv)
	if o := c.send(t, basicMsg("SMALL")); o.act.Type != milter.ActionAccept {
		t.Errorf("a small message after the failure: %v", o.act)
	}
}

type countCloser struct {
	mu *sync.Mutex
	n  *int
}

func (c countCloser) Close() error { c.mu.Lock(); *c.n++; c.mu.Unlock(); return nil }

// A reload in the middle of a transaction: the message is judged by the
// pipeline it started with, the next one by the new pipeline, and the old
// pipeline is closed once the transaction is done.
func TestReloadMidTransaction(t *testing.T) {
	ts := startServer(t, "")
	var mu sync.Mutex
	closed := 0
	mod := policy.Module{Name: "svc", Default: func() any { return &struct{}{} }, Build: func(_ any, env *policy.Env) ([]policy.Step, error) {
		env.OnClose(countCloser{&mu, &closed})
		return nil, nil
	}}
	build := func(top string) *policy.Pipeline {
		cfg, err := policy.Load("r.toml", []byte(fmt.Sprintf(serverTOML, top, ts.spool, "")), []policy.Module{mod})
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(cfg, []policy.Module{mod}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ts.holder.Swap(build(""))
	c := ts.connect(t, allProtocol)
	c.macros.Set(milter.MacroQueueId, "MID")
	mustContinue(t, "mail")(c.s.Mail("<a@sender.test>", ""))
	mustContinue(t, "rcpt")(c.s.Rcpt("<bob@example.org>", ""))
	ts.holder.Swap(build("mode = \"monitor\""))
	mustContinue(t, "data")(c.s.DataStart())
	mustContinue(t, "eoh")(c.s.HeaderEnd())
	mustContinue(t, "body")(c.s.BodyChunk([]byte("urgent wire transfer\r\n")))
	mu.Lock()
	if closed != 0 {
		t.Error("the pipeline in use was closed by the reload")
	}
	mu.Unlock()
	_, act, err := c.s.End()
	if err != nil || act.Type != milter.ActionRejectWithCode {
		t.Fatalf("message begun before the reload: %v %v", act, err)
	}
	mu.Lock()
	if closed != 1 {
		t.Errorf("old pipeline closed %d times after its last message, want 1", closed)
	}
	mu.Unlock()
	m := basicMsg("NEW")
	m.body = []byte("urgent wire transfer\r\n")
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Errorf("message after the reload (monitor): %v", o.act)
	}
}

type envelopeChanger struct{}

func (envelopeChanger) Name() string { return "changer" }
func (envelopeChanger) Check(context.Context, *message.Message, policy.Results) (policy.Result, error) {
	return policy.Result{
		Status:      policy.StatusPass,
		ChangeFrom:  "SRS0=ab=cd=sender.test=alice@example.org",
		AddRcpts:    []string{"archive@example.org"},
		DeleteRcpts: []string{"bob@example.org"},
		Headers:     []message.Field{{Name: "X-Folded", Value: " first\r\n\tsecond"}},
	}, nil
}

func TestEnvelopeAndHeaderChanges(t *testing.T) {
	mod := policy.Module{Name: "changer", Default: func() any { return &struct{}{} }, Build: func(any, *policy.Env) ([]policy.Step, error) {
		return []policy.Step{{Check: envelopeChanger{}, StepConfig: policy.DefaultStep()}}, nil
	}}
	ts := startServerWith(t, "", []policy.Module{mod})
	c := ts.connect(t, allProtocol)
	o := c.send(t, basicMsg("ENV"))
	if o.act.Type != milter.ActionAccept {
		t.Fatalf("action %v", o.act)
	}
	cf, add, del := modsOf(o, milter.ActionChangeFrom), modsOf(o, milter.ActionAddRcpt), modsOf(o, milter.ActionDelRcpt)
	if len(cf) != 1 || cf[0].From != "<SRS0=ab=cd=sender.test=alice@example.org>" {
		t.Errorf("change from: %v", cf)
	}
	if len(add) != 1 || add[0].Rcpt != "<archive@example.org>" || len(del) != 1 || del[0].Rcpt != "<bob@example.org>" {
		t.Errorf("recipients: add %v del %v", add, del)
	}
	final := finalHeader(t, basicMsg("").header, o.mods)
	// Ours first, then the checks' fields; folds are bare LF on the wire.
	if final[0][0] != "Authentication-Results" || final[1][0] != "X-Spam-Status" || final[2][0] != "X-Folded" || final[2][1] != " first\n\tsecond" {
		t.Errorf("final header %q", final)
	}
}

// Several MTA connections at once, each with several messages (Postfix runs
// many smtpd processes against one milter): every verdict is right and
// nothing leaks (run with -race).
func TestConcurrentSessions(t *testing.T) {
	ts := startServer(t, "")
	t.Run("group", func(t *testing.T) {
		for i := range 6 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				c := ts.connect(t, allProtocol)
				for j := range 4 {
					m := basicMsg(fmt.Sprintf("C%d-%d", i, j))
					m.from = fmt.Sprintf("s%d-%d@sender.test", i, j)
					want := milter.ActionAccept
					if (i+j)%2 == 1 {
						m.body = append(bytes.Repeat([]byte("pad "), 30000), "urgent wire transfer\r\n"...)
						want = milter.ActionRejectWithCode
					}
					if o := c.send(t, m); o.act.Type != want {
						t.Errorf("%s: %v, want %v", m.queueID, o.act, want)
					}
				}
			})
		}
	})
	if n := len(ts.logs.messages(t)); n != 24 {
		t.Errorf("%d summary lines for 24 messages", n)
	}
	waitEmpty(t, ts.spool)
	waitInFlight(t, ts.srv)
}

// {auth_authen} from the MAIL stage is the SASL login; an empty value is
// no login (QUIRK(postfix): it sends no macro at all when unauthenticated).
func TestAuthMacro(t *testing.T) {
	ts := startServer(t, "")
	c := ts.connect(t, allProtocol)
	c.macros.Set(milter.MacroAuthAuthen, "alice")
	m := basicMsg("AUTH")
	m.rcpts = []string{"someone@outside.test"}
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Fatalf("action %v", o.act)
	}
	if s := ts.probe.last(t); s.auth != "alice" {
		t.Errorf("auth %q", s.auth)
	}
	c.macros.Set(milter.MacroAuthAuthen, "")
	c.send(t, basicMsg("NOAUTH"))
	if s := ts.probe.last(t); s.auth != "" || s.queueID != "NOAUTH" {
		t.Errorf("empty {auth_authen}: auth %q", s.auth)
	}
	logs := ts.logs.messages(t)
	if len(logs) != 2 || logs[0]["auth"] != "alice" || logs[0]["direction"] != "outbound" || logs[1]["direction"] != "inbound" {
		t.Errorf("summary lines %v", logs)
	}
}
