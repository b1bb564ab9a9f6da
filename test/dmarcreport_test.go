package e2e_test

// DMARC aggregate reports end to end (issue 15): messages from several
// 127.0.0.x sources through a real Postfix with mailwarden as milter,
// `_dmarc` records naming rua= in the test DNS, the rows in Redis (the
// shared [store]), then `mailwarden dmarc send` with a fixed clock hands
// the reports to Postfix, which relays them to the sink. The attachment
// validates against libmail-dmarc-perl's rua-schema.xsd and parses with
// its receiver; the counts match what was sent; mail to our rua address
// and incoming reports are not counted; a sender killed between the
// MTA's "250" and recording it sends no duplicate after a restart.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/rua"
	"github.com/mailwarden/mailwarden/test/harness"
)

const dmarcSchema = "/usr/share/perl5/auto/share/dist/Mail-DMARC/rua-schema.xsd"

func TestDMARCReportsThroughPostfix(t *testing.T) {
	harness.Require(t, "postfix", "redis-server", "xmllint", "perl")
	harness.RequireRoot(t)
	if _, err := os.Stat(dmarcSchema); err != nil {
		harness.Unavailable(t, "libmail-dmarc-perl: %v", err)
	}
	dns := harness.StartDNS(t,
		`sender.example. TXT "v=spf1 ip4:127.0.0.2 -all"`,
		`_dmarc.sender.example. TXT "v=DMARC1; p=none; rua=mailto:agg@reports.example"`,
		// RFC 7489 §7.1: reports.example accepts reports on sender.example.
		`sender.example._report._dmarc.reports.example. TXT "v=DMARC1"`,
		`other.example. TXT "v=spf1 ip4:127.0.0.6 -all"`,
		`_dmarc.other.example. TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@other.example"`,
	)
	redis := harness.StartRedis(t)
	sink := harness.StartSink(t)
	common := func(smtp string) string {
		return `[store]
backend = "redis"
redis_url = "redis://` + redis + `/0"
redis_prefix = "e2e-dmarc:"

[dmarc_report]
enabled = true
org_name = "Mailwarden E2E"
submitter = "auth.test"
email = "dmarc-noreply@auth.test"
smtp = "` + smtp + `"
helo = "mx.test"
report_addresses = ["dmarc@auth.test"]
`
	}
	// The reports come from 127.0.0.1 (trusted: our own outgoing mail);
	// the test's sources are other loopback addresses, presented with
	// XCLIENT.
	// Their From is in a local domain: the auto-reply guard discards
	// auto-generated mail from foreign senders.
	core := strings.Replace(authConfig(dns), "trusted_networks = []", `trusted_networks = ["127.0.0.1/32"]`, 1)
	// A list that changes the Subject of other.example's signed mail and
	// seals it as a trusted sealer: DMARC fails, the p=quarantine is
	// relaxed (RFC 8617 §7.2.1: local_policy in the report).
	otherKey, listKey := rsaKey(t), rsaKey(t)
	publishKey(t, dns, "o1", "other.example", otherKey)
	publishKey(t, dns, "l1", "list.e2e.example", listKey)
	core += "\n[auth.arc]\ntrusted_sealers = [\"list.e2e.example\"]\n"
	mw := harness.StartMailwarden(t, core+common("127.0.0.1:1"))
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: mw.Addr(), Relay: sink.Addr})

	send := func(ip, from, to, subject string) {
		t.Helper()
		s := harness.Submission{Helo: "client.example", From: from, Rcpts: []string{to},
			Data: coreMessage(from, to, subject), XClient: "ADDR=" + ip + " NAME=[UNAVAILABLE]"}
		if err := s.Send(pf.SMTPAddr()); err != nil {
			t.Fatalf("send from %s: %v", ip, err)
		}
		if sink.WaitFor(30*time.Second, harness.To(to)) == nil {
			t.Fatalf("not delivered: %s; maillog:\n%s", to, pf.Log())
		}
	}
	for i := 0; i < 3; i++ { // SPF pass, aligned: DMARC pass
		send("127.0.0.2", "a@sender.example", fmt.Sprintf("u%d@auth.test", i), "pass")
	}
	for i := 0; i < 2; i++ { // SPF fail: DMARC fail, p=none: delivered
		send("127.0.0.3", "a@sender.example", fmt.Sprintf("v%d@auth.test", i), "fail")
	}
	send("127.0.0.4", "a@sender.example", "dmarc@auth.test", "to our rua address")
	send("127.0.0.5", "a@sender.example", "w@auth.test", "Report Domain: sender.example Submitter: x.example Report-ID: <1>")
	send("127.0.0.6", "b@other.example", "x@auth.test", "other")
	listed := harness.Submission{Helo: "mx.list.e2e.example", From: "bounces@list.e2e.example", Rcpts: []string{"y@auth.test"},
		XClient: "ADDR=127.0.0.7 NAME=mx.list.e2e.example",
		Data: listMessageFrom(t, &sign.Key{Name: "o", Domain: "other.example", Selector: "o1", Signer: otherKey}, "b@other.example",
			&arc.Sealer{Domain: "list.e2e.example", Selector: "l1", Key: listKey}, "y@auth.test")}
	if err := listed.Send(pf.SMTPAddr()); err != nil {
		t.Fatalf("the list's copy: %v", err)
	}
	if sink.WaitFor(30*time.Second, harness.To("y@auth.test")) == nil {
		t.Fatalf("the list's copy was not delivered (ARC override); maillog:\n%s", pf.Log())
	}
	// The rows are written by the daemon's queue worker: give it a moment.
	time.Sleep(2 * time.Second)

	dir := t.TempDir()
	writeCfg := func(name, smtp string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(harness.DNSSection(dns)+common(smtp)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := rua.DayStart(time.Now()).Add(24*time.Hour + 30*time.Minute) // a fixed clock: tomorrow 00:30 UTC
	dmarcSend := func(cfg string, at time.Time) *exec.Cmd {
		return exec.Command(harness.Mailwarden(t), "dmarc", "send", "-config", cfg, "--now", at.Format(time.RFC3339))
	}

	// 1. The first run dies between Postfix's "250" to the final "." and
	// recording it: the proxy kills the process when that reply comes.
	px := startKillProxy(t, pf.SMTPAddr())
	cmd := dmarcSend(writeCfg("proxy.toml", px.addr), now)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	px.setVictim(cmd.Process.Pid)
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("dmarc send was not killed at the final reply: %v\n%s", err, out.String())
	}
	// 2. Restarts after the lease (15 min): the unconfirmed report is not
	// sent again, the other one is sent once.
	direct := writeCfg("direct.toml", pf.SMTPAddr())
	var outs []string
	for _, at := range []time.Time{now.Add(20 * time.Minute), now.Add(80 * time.Minute)} {
		b, err := dmarcSend(direct, at).CombinedOutput()
		if err != nil {
			t.Fatalf("dmarc send: %v\n%s", err, b)
		}
		outs = append(outs, string(b))
	}
	// Sorted by domain, other.example's report was the first one sent,
	// the one whose "250" the proxy swallowed.
	if !regexp.MustCompile(`other\.example\tdmarc@other\.example\tsent \(unconfirmed`).MatchString(outs[1]) ||
		!regexp.MustCompile(`sender\.example\tagg@reports\.example\tsent\tattempts=1`).MatchString(outs[1]) {
		t.Errorf("outbox after the restarts:\n%s", outs[1])
	}

	reports := map[string][]*harness.Mail{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (len(reports["agg@reports.example"]) == 0 || len(reports["dmarc@other.example"]) == 0) {
		if m := sink.WaitFor(time.Second, func(m *harness.Mail) bool {
			return strings.HasPrefix(strings.Join(m.Get("Subject"), ""), "Report Domain:") && len(m.To) == 1 && m.From == "dmarc-noreply@auth.test"
		}); m != nil {
			reports[m.To[0]] = append(reports[m.To[0]], m)
		}
	}
	time.Sleep(3 * time.Second) // a duplicate would arrive within Postfix's 1 s queue runs
	for m := sink.WaitFor(time.Second, func(m *harness.Mail) bool { return m.From == "dmarc-noreply@auth.test" }); m != nil; m = sink.WaitFor(time.Second, func(m *harness.Mail) bool { return m.From == "dmarc-noreply@auth.test" }) {
		reports[m.To[0]] = append(reports[m.To[0]], m)
	}
	if len(reports["agg@reports.example"]) != 1 || len(reports["dmarc@other.example"]) != 1 || len(reports) != 2 {
		t.Fatalf("report mails per destination: %v\nmaillog:\n%s", count(reports), pf.Log())
	}

	// 3. The report on sender.example: format, schema, independent reader, counts.
	m := reports["agg@reports.example"][0]
	subj := strings.Join(m.Get("Subject"), "")
	if !regexp.MustCompile(`^Report Domain: sender\.example Submitter: auth\.test Report-ID: <[^>]+>$`).MatchString(subj) {
		t.Errorf("subject %q", subj)
	}
	name, gz := attachment(t, m)
	if !regexp.MustCompile(`^auth\.test!sender\.example!\d+!\d+![^!]+\.xml\.gz$`).MatchString(name) {
		t.Errorf("file name %q", name)
	}
	fs, err := rua.Parse(name, gz)
	if err != nil {
		t.Fatal(err)
	}
	xml := gunzipBytes(t, gz)
	schema := filepath.Join(dir, "rua-schema.xsd")
	sb, _ := os.ReadFile(dmarcSchema)
	// Reports in the wild use an unqualified <feedback>: validate the
	// structure with the schema's targetNamespace removed.
	os.WriteFile(schema, regexp.MustCompile(`\s+targetNamespace="[^"]*"`).ReplaceAll(sb, nil), 0o644)
	xf := filepath.Join(dir, "report.xml")
	os.WriteFile(xf, xml, 0o644)
	if b, err := exec.Command("xmllint", "--noout", "--schema", schema, xf).CombinedOutput(); err != nil {
		t.Errorf("xmllint: %v\n%s\n%s", err, b, xml)
	}
	counts := map[string]int64{}
	for _, r := range fs[0].Records {
		counts[r.Row.SourceIP+"/"+r.Row.PolicyEvaluated.SPF] += r.Row.Count
	}
	if len(counts) != 2 || counts["127.0.0.2/pass"] != 3 || counts["127.0.0.3/fail"] != 2 {
		t.Errorf("rows %v (mail to dmarc@auth.test and the incoming report must not count)\n%s", counts, xml)
	}
	eml := filepath.Join(dir, "report.eml")
	os.WriteFile(eml, m.Data, 0o644)
	root, _ := harness.ModuleRoot()
	got := filepath.Join(dir, "perl.json")
	if b, err := exec.Command("perl", filepath.Join(root, "policy/rua/testdata/read-report.pl"), eml, got).CombinedOutput(); err != nil {
		t.Errorf("Mail::DMARC could not read the report: %v\n%s", err, b)
	} else if j, _ := os.ReadFile(got); !bytes.Contains(j, []byte(`"domain":"sender.example"`)) || !bytes.Contains(j, []byte(`"source_ip":"127.0.0.2"`)) {
		t.Errorf("Mail::DMARC read %s", j)
	}
	// The other report says what was done: p=quarantine, SPF pass; the
	// list's copy delivered on the trusted sealer's word, with the chain
	// in a local_policy reason. It validates against the schema too.
	_, gz2 := attachment(t, reports["dmarc@other.example"][0])
	x := gunzipBytes(t, gz2)
	if !bytes.Contains(x, []byte("<source_ip>127.0.0.6</source_ip>")) || !bytes.Contains(x, []byte("<p>quarantine</p>")) {
		t.Errorf("other report:\n%s", x)
	}
	arcRow := regexp.MustCompile(`<source_ip>127\.0\.0\.7</source_ip>\s*<count>1</count>\s*<policy_evaluated>\s*<disposition>none</disposition>\s*<dkim>fail</dkim>\s*<spf>fail</spf>\s*` +
		`<reason>\s*<type>local_policy</type>\s*<comment>arc=pass as\[1\]\.d=list\.e2e\.example as\[1\]\.s=l1</comment>`)
	if !arcRow.Match(x) {
		t.Errorf("no ARC override row in the other report:\n%s", x)
	}
	os.WriteFile(xf, x, 0o644)
	if b, err := exec.Command("xmllint", "--noout", "--schema", schema, xf).CombinedOutput(); err != nil {
		t.Errorf("xmllint, other report: %v\n%s\n%s", err, b, x)
	}
}

func count(m map[string][]*harness.Mail) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// attachment returns the application/gzip part of a report mail.
func attachment(t *testing.T, m *harness.Mail) (string, []byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/gzip part: %v", err)
		}
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct == "application/gzip" {
			b, _ := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
			return p.FileName(), b
		}
	}
}

func gunzipBytes(t *testing.T, gz []byte) []byte {
	t.Helper()
	fs, err := rua.Parse("x.gz", gz)
	if err != nil || len(fs) != 1 {
		t.Fatalf("gunzip: %v", err)
	}
	cmd := exec.Command("gzip", "-dc")
	cmd.Stdin = bytes.NewReader(gz)
	b, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// killProxy relays SMTP to the MTA and kills the victim process when the
// MTA answers the first final "." of a DATA, before relaying that reply:
// the message is queued, the sender never learns it.
type killProxy struct {
	addr   string
	mu     sync.Mutex
	victim int
	fired  bool
}

func startKillProxy(t *testing.T, upstream string) *killProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &killProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, upstream)
		}
	}()
	return p
}

func (p *killProxy) setVictim(pid int) {
	p.mu.Lock()
	p.victim = pid
	p.mu.Unlock()
}

func (p *killProxy) serve(c net.Conn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	dotSent := make(chan struct{}, 1)
	go func() { // client → MTA, watching for the end of DATA
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if line == ".\r\n" {
				select { // before the dot leaves: its reply cannot overtake
				case dotSent <- struct{}{}:
				default:
				}
			}
			if line != "" {
				u.Write([]byte(line))
			}
			if err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(u)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		select {
		case <-dotSent:
			p.mu.Lock()
			fire := !p.fired && p.victim != 0 && strings.HasPrefix(line, "250")
			if fire {
				p.fired = true
				syscall.Kill(p.victim, syscall.SIGKILL)
			}
			p.mu.Unlock()
			if fire {
				return // the reply is never relayed
			}
		default:
		}
		c.Write([]byte(line))
	}
}
