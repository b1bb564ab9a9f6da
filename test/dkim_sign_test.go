package e2e_test

// DKIM signing end to end (issue 14): mail of ours goes through a real
// Postfix (smtpd and non_smtpd milters) and mailwarden to the sink,
// signed; dkimpy and OpenDKIM verify it, both asking the test DNS server
// for the keys. Inbound mail is never signed; a key whose record is
// missing does not sign.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/test/harness"
)

// dkimpyDNS is the start of the dkimpy scripts: dnsfunc asks the DNS
// server at argv[1]:argv[2] for TXT records.
const dkimpyDNS = `
import sys, dkim, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
r.port = int(sys.argv[2])
def dnsfunc(name, timeout=5):
    try:
        a = r.resolve(name.decode().rstrip('.'), 'TXT')
    except Exception:
        return None
    for rd in a:
        return b''.join(rd.strings)
`

// dkimpyDNSVerify prints pass/fail for each DKIM-Signature of a message,
// top down, fetching keys from the DNS server at argv[1]:argv[2].
const dkimpyDNSVerify = dkimpyDNS + `msg = open(sys.argv[3], 'rb').read()
d = dkim.DKIM(msg)
n = sum(1 for k, v in d.headers if k.lower() == b'dkim-signature')
print(' '.join('pass' if d.verify(idx=i, dnsfunc=dnsfunc) else 'fail' for i in range(n)))
`

func dkimpyVerdicts(t *testing.T, dns *harness.DNS, msg []byte) string {
	t.Helper()
	harness.Require(t, "python3")
	f := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(f, msg, 0o600)
	host, port, _ := net.SplitHostPort(dns.Addr)
	out, err := exec.Command("/usr/bin/python3", "-c", dkimpyDNSVerify, host, port, f).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No module named") {
			harness.Unavailable(t, "dkimpy: %s", out)
		}
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// openDKIMVerdicts runs OpenDKIM's test mode, its libunbound forwarded to
// the test DNS server, and returns the Authentication-Results it made.
func openDKIMVerdicts(t *testing.T, dns *harness.DNS, msg []byte) string {
	t.Helper()
	harness.Require(t, "opendkim")
	bin, _ := harness.LookPath("opendkim")
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(dns.Addr)
	os.WriteFile(filepath.Join(dir, "unbound.conf"), []byte(fmt.Sprintf("server:\n  do-not-query-localhost: no\nforward-zone:\n  name: \".\"\n  forward-addr: %s@%s\n", host, port)), 0o600)
	os.WriteFile(filepath.Join(dir, "opendkim.conf"), []byte("Mode v\nSyslog no\nAlwaysAddARHeader yes\nAuthservID verifier\nResolverConfiguration "+filepath.Join(dir, "unbound.conf")+"\n"), 0o600)
	f := filepath.Join(dir, "m.eml")
	os.WriteFile(f, msg, 0o600)
	out, err := exec.Command(bin, "-x", filepath.Join(dir, "opendkim.conf"), "-vvv", "-t", f).CombinedOutput()
	if err != nil {
		t.Fatalf("opendkim: %v\n%s", err, out)
	}
	_, ar, _ := strings.Cut(string(out), "hname='Authentication-Results' hvalue='")
	ar, _, _ = strings.Cut(ar, "'")
	return ar
}

type e2eKey struct {
	name, domain, selector, algo string
	publish                      bool
}

// signingKeys makes the keys, publishes those marked so in dns and
// returns their [[dkim_sign.key]] entries.
func signingKeys(t *testing.T, dns *harness.DNS, dir string, keys []e2eKey) string {
	t.Helper()
	var keyCfg strings.Builder
	for _, k := range keys {
		s, err := sign.GenerateKey(sign.Algo(k.algo))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, k.name+".pem")
		if err := sign.WriteKey(file, s); err != nil {
			t.Fatal(err)
		}
		if k.publish {
			txt, _ := sign.TXTRecord(s.Public())
			dns.AddTXT(dkimkey.RecordName(k.selector, k.domain)+".", 300, sign.SplitTXT(txt)...)
		}
		fmt.Fprintf(&keyCfg, "[[dkim_sign.key]]\nname = %q\ndomain = %q\nselector = %q\nfile = %q\n\n", k.name, k.domain, k.selector, file)
	}
	return keyCfg.String()
}

func TestDKIMSigningPostfix(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	dns := harness.StartDNS(t)
	s := startCoreStack(t, signingConfig(t, dns, `["127.0.0.0/8", "::1/128"]`), map[string]string{
		"disable_mime_output_conversion": "yes",
		// e2e.test is ours: accept it from outside (the sink plays the
		// mailbox server).
		"relay_domains":            "e2e.test",
		"smtpd_relay_restrictions": "permit_mynetworks, permit_auth_destination, reject",
	})
	runSigningCases(t, signingMTA{
		dns:  dns,
		mw:   s.mw,
		name: "Postfix",
		send: s.send,
		submit: func(t testing.TB, args []string, raw []byte) error {
			return s.pf.Sendmail(t, args, raw)
		},
		inbound: func(from, to, subject string) error {
			return harness.Submission{Helo: "mx.outside.example", From: from, Rcpts: []string{to}, XClient: "ADDR=192.0.2.1 NAME=mx.outside.example",
				Data: coreMessage(from, to, subject)}.Send(s.smtp)
		},
		sink: s.sink,
		log:  s.pf.Log,
	})
}

// TestDKIMSigningSendmail: the same through Sendmail (issue 14): mail of
// ours, over SMTP from 127.0.0.1 (trusted_networks) and from the
// sendmail(1) command (the MSP adds Date and Message-ID before the
// daemon and its milter see the message), leaves signed, and dkimpy and
// OpenDKIM verify the signatures against the test DNS server after
// Sendmail relayed the message; mail from 127.0.0.2 (outside
// trusted_networks) is inbound and never signed, nor is mail for a key
// whose record is missing.
func TestDKIMSigningSendmail(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	dns := harness.StartDNS(t)
	s := startSendmailStack(t, signingConfig(t, dns, `["127.0.0.1/32"]`), harness.SendmailOptions{})
	runSigningCases(t, signingMTA{
		dns:    dns,
		mw:     s.mw,
		name:   "Sendmail",
		send:   s.send,
		submit: s.sm.Submit,
		inbound: func(from, to, subject string) error {
			return harness.Submission{Helo: "mx.outside.example", From: from, Rcpts: []string{to}, Source: "127.0.0.2",
				Data: coreMessage(from, to, subject)}.Send(s.smtp)
		},
		inboundSeen: func(t *testing.T, from string) {
			if line := s.summary(t, from); line["direction"] != "inbound" || line["client"] != "127.0.0.2" {
				t.Errorf("not seen as inbound: %v", line)
			}
		},
		sink: s.sink,
		log:  s.sm.Log,
	})
}

// signingConfig is the daemon's config for the signing cases: four keys
// (RSA; RSA and Ed25519 for one domain; one whose record is not
// published) and a rule for each domain.
func signingConfig(t *testing.T, dns *harness.DNS, trusted string) string {
	keyCfg := signingKeys(t, dns, t.TempDir(), []e2eKey{
		{"rsa", "signed.e2e.example", "s1", "rsa2048", true},
		{"both-rsa", "both.e2e.example", "r1", "rsa2048", true},
		{"both-ed", "both.e2e.example", "e1", "ed25519", true},
		{"unpublished", "nokey.e2e.example", "s1", "rsa2048", false},
	})
	return `authserv_id = "mx.sign.e2e.test"
local_domains = ["e2e.test"]
trusted_networks = ` + trusted + `
` + harness.DNSSection(dns) + `
[dkim_sign]
ed25519 = true

` + keyCfg + `
[[dkim_sign.rule]]
from = "*@signed.e2e.example"
keys = ["rsa"]

[[dkim_sign.rule]]
from = "*@both.e2e.example"
keys = ["both-rsa", "both-ed"]

[[dkim_sign.rule]]
from = "*@nokey.e2e.example"
keys = ["unpublished"]
`
}

// signingMTA is what the signing cases need of one MTA stack.
type signingMTA struct {
	dns  *harness.DNS
	mw   *harness.Daemon
	name string
	// send: SMTP from a trusted network; submit: the sendmail(1)
	// command; inbound: SMTP from outside trusted_networks.
	send        func(from, to, subject string, extra ...string) error
	submit      func(t testing.TB, args []string, raw []byte) error
	inbound     func(from, to, subject string) error
	inboundSeen func(t *testing.T, from string) // optional
	sink        *harness.Sink
	log         func() string
}

// runSigningCases: mail of ours leaves signed and dkimpy and OpenDKIM
// verify it (RSA; RSA and Ed25519; a submission without Date and
// Message-ID); inbound mail is never signed; a key whose record is
// missing does not sign.
func runSigningCases(t *testing.T, m signingMTA) {
	// The key records are checked when the daemon starts.
	m.mw.WaitLog(t, func(l map[string]any) bool { return l["msg"] == "dkim key record" && l["key"] == "unpublished" }, 20*time.Second)
	deliver := func(t *testing.T, to string) []byte {
		t.Helper()
		msg := m.sink.WaitFor(30*time.Second, harness.To(to))
		if msg == nil {
			t.Fatalf("not delivered to %s; %s log:\n%s", to, m.name, m.log())
		}
		return msg.Data
	}
	countSigs := func(msg []byte) int {
		head, _, _ := strings.Cut(string(msg), "\r\n\r\n")
		return strings.Count(strings.ToLower("\r\n"+head), "\r\ndkim-signature:")
	}
	verified := func(t *testing.T, msg []byte, dkimpy string, opendkim int) {
		t.Helper()
		if got := dkimpyVerdicts(t, m.dns, msg); got != dkimpy {
			t.Errorf("dkimpy: %q, want %q\n%s", got, dkimpy, msg)
		}
		ar := openDKIMVerdicts(t, m.dns, msg)
		if strings.Count(ar, "dkim=pass") != opendkim || (opendkim == 2 && !strings.Contains(ar, "ed25519-sha256")) {
			t.Errorf("OpenDKIM: %q\n%s", ar, msg)
		}
	}

	t.Run("RSA over SMTP from a trusted network", func(t *testing.T) {
		const from, to = "alice@signed.e2e.example", "rsa@remote.example"
		if err := m.send(from, to, "signed by mailwarden behind "+m.name); err != nil {
			t.Fatal(err)
		}
		msg := deliver(t, to)
		if n := countSigs(msg); n != 1 {
			t.Fatalf("%d DKIM-Signature fields:\n%s", n, msg)
		}
		verified(t, msg, "pass", 1)
	})
	t.Run("RSA and Ed25519", func(t *testing.T) {
		const from, to = "bob@both.e2e.example", "both@remote.example"
		if err := m.send(from, to, "two signatures"); err != nil {
			t.Fatal(err)
		}
		verified(t, deliver(t, to), "pass pass", 2)
	})
	t.Run("sendmail command without Date and Message-ID", func(t *testing.T) {
		const from, to = "carol@signed.e2e.example", "bare@remote.example"
		raw := "From: Carol <" + from + ">\nTo: <" + to + ">\nSubject: bare submission\n\nNo Date, no Message-ID.\n"
		if err := m.submit(t, []string{"-f", from, to}, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		verified(t, deliver(t, to), "pass", 1)
	})
	t.Run("inbound is never signed", func(t *testing.T) {
		const from, to = "mallory@signed.e2e.example", "inbound@e2e.test"
		if err := m.inbound(from, to, "inbound"); err != nil {
			t.Fatal(err)
		}
		if n := countSigs(deliver(t, to)); n != 0 {
			t.Errorf("%d DKIM-Signature fields on inbound mail", n)
		}
		if m.inboundSeen != nil {
			m.inboundSeen(t, from)
		}
	})
	t.Run("a key whose record is missing does not sign", func(t *testing.T) {
		const from, to = "dave@nokey.e2e.example", "nokey@remote.example"
		if err := m.send(from, to, "unpublished key"); err != nil {
			t.Fatal(err)
		}
		if n := countSigs(deliver(t, to)); n != 0 {
			t.Errorf("%d DKIM-Signature fields with an unpublished key", n)
		}
	})
}
