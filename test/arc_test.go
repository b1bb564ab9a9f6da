package e2e_test

// ARC end to end (issue 14): a p=reject sender's message, DKIM-signed,
// passes a mailing list that records dkim=pass, changes the Subject and
// seals; it then reaches mailwarden behind a real Postfix for an address
// that Postfix forwards off-site. Sealed by a trusted sealer it is
// delivered, with our ARC set on top that dkimpy's arc_verify passes
// (asking the test DNS server); sealed by an untrusted one it is refused.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/test/harness"
)

const dkimpyARCVerify = dkimpyDNS + `cv, res, reason = dkim.arc_verify(open(sys.argv[3], 'rb').read(), dnsfunc=dnsfunc)
print(cv.decode(), reason)
`

// publishKey adds the key record of k to the test DNS server.
func publishKey(t *testing.T, dns *harness.DNS, selector, domain string, k *rsa.PrivateKey) {
	txt, err := sign.TXTRecord(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	dns.AddTXT(dkimkey.RecordName(selector, domain)+".", 300, sign.SplitTXT(txt)...)
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// listMessage is the origin's DKIM-signed message after a list changed
// its Subject and sealed it as sealer.
func listMessage(t *testing.T, origin *sign.Key, sealer *arc.Sealer, to string) []byte {
	t.Helper()
	return listMessageFrom(t, origin, "alice@"+origin.Domain, sealer, to)
}

// listMessageFrom is listMessage with another author address.
func listMessageFrom(t *testing.T, origin *sign.Key, from string, sealer *arc.Sealer, to string) []byte {
	t.Helper()
	raw := "From: Alice <" + from + ">\r\nTo: <" + to + ">\r\nSubject: hi\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <" + time.Now().Format("150405.000000") + "@origin.e2e.example>\r\n\r\nHello from the list.\r\n"
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	var h []sign.Field
	for _, line := range strings.Split(head, "\r\n") {
		n, v, _ := strings.Cut(line, ":")
		h = append(h, sign.Field{Name: n, Value: v})
	}
	sigs, err := sign.Sign(h, strings.NewReader(body), []*sign.Key{origin}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	signed := "DKIM-Signature: " + strings.ReplaceAll(sigs[0].Value, "\n", "\r\n") + "\r\n" + raw
	changed := strings.Replace(signed, "\r\nSubject: hi", "\r\nSubject: [list] hi", 1)
	fields, rest, err := arc.ReadMessage(strings.NewReader(changed))
	if err != nil {
		t.Fatal(err)
	}
	set, err := sealer.Seal(fields, rest, nil, sealer.Domain+"; dkim=pass header.d="+origin.Domain+"; dmarc=pass header.from="+origin.Domain, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range set {
		b.WriteString(f.Name + ":" + strings.ReplaceAll(f.Value, "\n", "\r\n") + "\r\n")
	}
	return []byte(b.String() + changed)
}

func TestARCPostfix(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	dns := harness.StartDNS(t, `_dmarc.origin.e2e.example TXT "v=DMARC1; p=reject"`)
	originKey, listKey, otherKey, sealKey := rsaKey(t), rsaKey(t), rsaKey(t), rsaKey(t)
	publishKey(t, dns, "o1", "origin.e2e.example", originKey)
	publishKey(t, dns, "l1", "list.e2e.example", listKey)
	publishKey(t, dns, "x1", "other.e2e.example", otherKey)
	publishKey(t, dns, "arc", "e2e.test", sealKey)
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "seal.pem")
	if err := sign.WriteKey(sealFile, sealKey); err != nil {
		t.Fatal(err)
	}
	toml := `authserv_id = "mx.arc.e2e.test"
local_domains = ["e2e.test"]
trusted_networks = []
` + harness.DNSSection(dns) + `
[score]
add_header = 50.0
quarantine = 100.0
reject = 200.0

[auth.arc]
trusted_sealers = ["list.e2e.example"]
seal_key = "seal"

[autoreply]
forwarding_addresses = ["fw@e2e.test", "fw2@e2e.test"]

[dkim_sign]
[[dkim_sign.key]]
name = "seal"
domain = "e2e.test"
selector = "arc"
file = "` + sealFile + `"
`
	s := startCoreStack(t, toml, map[string]string{
		"relay_domains":            "e2e.test",
		"smtpd_relay_restrictions": "permit_mynetworks, permit_auth_destination, reject",
	})
	origin := &sign.Key{Name: "o", Domain: "origin.e2e.example", Selector: "o1", Signer: originKey}
	send := func(sealer *arc.Sealer, to string) error {
		return harness.Submission{Helo: "mx.list.e2e.example", From: "bounces@list.e2e.example", Rcpts: []string{to},
			XClient: "ADDR=192.0.2.33 NAME=mx.list.e2e.example", Data: listMessage(t, origin, sealer, to)}.Send(s.smtp)
	}

	t.Run("trusted sealer: delivered, sealed by us, dkimpy passes", func(t *testing.T) {
		const to = "fw@e2e.test"
		if err := send(&arc.Sealer{Domain: "list.e2e.example", Selector: "l1", Key: listKey}, to); err != nil {
			t.Fatalf("refused: %v\n%s", err, s.mw.Stderr())
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(to))
		if m == nil {
			t.Fatalf("not delivered; maillog:\n%s", s.pf.Log())
		}
		h := m.Header()
		if len(h) < 3 || h[0].Name != "ARC-Seal" || !strings.Contains(h[0].Value, "i=2") || !strings.Contains(h[0].Value, "cv=pass") || !strings.Contains(h[0].Value, "d=e2e.test") {
			t.Fatalf("our ARC set is not on top:\n%s", m.Data)
		}
		if ar := strings.Join(m.Get("Authentication-Results"), "\n"); !strings.Contains(ar, "arc=pass") || !strings.Contains(ar, "policy.arc-override=list.e2e.example") {
			t.Errorf("Authentication-Results: %s", ar)
		}
		harness.Require(t, "python3")
		f := filepath.Join(t.TempDir(), "m.eml")
		os.WriteFile(f, m.Data, 0o600)
		host, port, _ := net.SplitHostPort(dns.Addr)
		out, err := exec.Command("/usr/bin/python3", "-c", dkimpyARCVerify, host, port, f).CombinedOutput()
		if err != nil {
			harness.Unavailable(t, "dkimpy: %v %s", err, out)
		}
		if !strings.HasPrefix(string(out), "pass") {
			t.Errorf("dkimpy arc_verify: %s\n%s", out, m.Data)
		}
	})
	t.Run("untrusted sealer: refused", func(t *testing.T) {
		err := send(&arc.Sealer{Domain: "other.e2e.example", Selector: "x1", Key: otherKey}, "fw2@e2e.test")
		var se *harness.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 5 {
			t.Errorf("want a 5xx refusal, got %v", err)
		}
	})
}

// dkimpySignAndSeal signs a message as the origin (DKIM) and seals it as
// an upstream forwarder (ARC i=1), both with dkimpy.
const dkimpySignAndSeal = `
import sys, dkim
okey, fkey, src, dst = sys.argv[1:5]
msg = open(src, 'rb').read()
msg = dkim.sign(msg, b'o1', b'origin.e2e.example', open(okey, 'rb').read()) + msg
msg = b'Authentication-Results: mx.fwd.e2e.example; dkim=pass header.d=origin.e2e.example; spf=pass smtp.mailfrom=alice@origin.e2e.example\r\n' + msg
lines = dkim.arc_sign(msg, b'f1', b'fwd.e2e.example', open(fkey, 'rb').read(), b'mx.fwd.e2e.example')
open(dst, 'wb').write(b''.join(lines) + msg)
`

// TestARCListPostfix (issue 14 item 8): a p=reject author's message,
// DKIM-signed and ARC-sealed by dkimpy (a forwarder upstream), reaches a
// mailing list of ours through Postfix and mailwarden; the list (played
// by the test: it takes the copy from the sink) tags the Subject, adds a
// footer and re-injects it through the LISTS listener of
// examples/postfix-master.cf ([auth.arc] list_server_daemons). The copy
// for a member leaves with our ARC set i=2, cv=pass, whose AAR carries
// what we verified when the list received the message, and dkimpy's
// arc_verify passes it although the list broke both the DKIM signature
// and the upstream AMS. The same copy through port 25 (our own mail from
// 127.0.0.1, not the list listener) leaves unsealed and fails; from an
// outside client it is refused by the author's p=reject.
func TestARCListPostfix(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix", "python3")
	harness.RequireRoot(t)
	dns := harness.StartDNS(t, `_dmarc.origin.e2e.example TXT "v=DMARC1; p=reject"`)
	originKey, fwdKey, sealKey := rsaKey(t), rsaKey(t), rsaKey(t)
	publishKey(t, dns, "o1", "origin.e2e.example", originKey)
	publishKey(t, dns, "f1", "fwd.e2e.example", fwdKey)
	publishKey(t, dns, "arc", "e2e.test", sealKey)
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "seal.pem")
	if err := sign.WriteKey(sealFile, sealKey); err != nil {
		t.Fatal(err)
	}
	pkcs1 := func(name string, k *rsa.PrivateKey) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
		return f
	}
	src, dst := filepath.Join(dir, "post.eml"), filepath.Join(dir, "sealed.eml")
	os.WriteFile(src, []byte("From: Alice <alice@origin.e2e.example>\r\nTo: <list@e2e.test>\r\nSubject: hello list\r\nDate: "+
		time.Now().Format(time.RFC1123Z)+"\r\nMessage-ID: <"+time.Now().Format("150405.000000")+"@origin.e2e.example>\r\n\r\nA post to the list.\r\n"), 0o600)
	if out, err := exec.Command("/usr/bin/python3", "-c", dkimpySignAndSeal, pkcs1("o.pem", originKey), pkcs1("f.pem", fwdKey), src, dst).CombinedOutput(); err != nil {
		harness.Unavailable(t, "dkimpy: %v %s", err, out)
	}
	post, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	toml := `authserv_id = "mx.list.e2e.test"
local_domains = ["e2e.test"]
trusted_networks = ["127.0.0.0/8"]
` + harness.DNSSection(dns) + `
[score]
add_header = 50.0
quarantine = 100.0
reject = 200.0

[auth.arc]
seal_key = "seal"
list_server_daemons = ["LISTS"]

[dkim_sign]
[[dkim_sign.key]]
name = "seal"
domain = "e2e.test"
selector = "arc"
file = "` + sealFile + `"
`
	var s stack
	s.sink = harness.StartSink(t)
	s.mw = harness.StartMailwarden(t, toml)
	listener := freeAddr(t)
	s.pf = harness.StartPostfix(t, harness.PostfixOptions{Milter: s.mw.Addr(), Relay: s.sink.Addr,
		MainCF:   map[string]string{"relay_domains": "e2e.test", "smtpd_relay_restrictions": "permit_mynetworks, permit_auth_destination, reject"},
		MasterCF: exampleService(t, "127.0.0.1:10027", listener)})
	s.smtp = s.pf.SMTPAddr()
	host, port, _ := net.SplitHostPort(dns.Addr)
	arcVerify := func(t *testing.T, msg []byte) string {
		t.Helper()
		f := filepath.Join(t.TempDir(), "m.eml")
		os.WriteFile(f, msg, 0o600)
		out, err := exec.Command("/usr/bin/python3", "-c", dkimpyARCVerify, host, port, f).CombinedOutput()
		if err != nil {
			t.Fatalf("dkimpy arc_verify: %v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}

	// Arrival: from the forwarder, for the list.
	err = harness.Submission{Helo: "mx.fwd.e2e.example", From: "bounces@fwd.e2e.example", Rcpts: []string{"list@e2e.test"},
		XClient: "ADDR=192.0.2.44 NAME=mx.fwd.e2e.example", Data: post}.Send(s.smtp)
	if err != nil {
		t.Fatalf("arrival refused: %v\n%s", err, s.mw.Stderr())
	}
	got := s.sink.WaitFor(30*time.Second, harness.To("list@e2e.test"))
	if got == nil {
		t.Fatalf("not delivered to the list; maillog:\n%s", s.pf.Log())
	}
	arrival := strings.Join(got.Get("Authentication-Results"), "\n")
	if !strings.Contains(arrival, "mx.list.e2e.test") || !strings.Contains(arrival, "arc=pass") || !strings.Contains(arrival, "dkim=pass") || !strings.Contains(arrival, "dmarc=pass") {
		t.Fatalf("arrival Authentication-Results: %s", arrival)
	}

	// The list: Subject tag, List-Id, footer; then back to Postfix.
	head, body, _ := strings.Cut(string(got.Data), "\r\n\r\n")
	head = strings.Replace(head, "\r\nSubject: hello list", "\r\nSubject: [e2e-list] hello list", 1) + "\r\nList-Id: <list.e2e.test>"
	listed := []byte(head + "\r\n\r\n" + body + "-- \r\nTo unsubscribe, write to list-request@e2e.test\r\n")
	reinject := func(t *testing.T, addr, member string) *harness.Mail {
		t.Helper()
		if err := (harness.Submission{Helo: "lists.e2e.test", From: "list-bounces@e2e.test", Rcpts: []string{member}, Data: listed}).Send(addr); err != nil {
			t.Fatalf("re-injection refused: %v", err)
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(member))
		if m == nil {
			t.Fatalf("not delivered to %s; maillog:\n%s", member, s.pf.Log())
		}
		return m
	}

	t.Run("through the list listener: sealed with the arrival results", func(t *testing.T) {
		m := reinject(t, listener, "member@remote.example")
		h := m.Header()
		if len(h) < 3 || h[0].Name != "ARC-Seal" || !strings.Contains(h[0].Value, "i=2") || !strings.Contains(h[0].Value, "cv=pass") || !strings.Contains(h[0].Value, "d=e2e.test") {
			t.Fatalf("our ARC set is not on top:\n%s", m.Data)
		}
		aar := strings.Join(m.Get("ARC-Authentication-Results"), "\n")
		if !strings.Contains(aar, "i=2; mx.list.e2e.test;") || !strings.Contains(aar, "dkim=pass header.d=origin.e2e.example") ||
			!strings.Contains(aar, "arc=pass") || !strings.Contains(aar, "smtp.remote-ip=192.0.2.44") || strings.Contains(aar, "127.0.0.1") {
			t.Errorf("our AAR does not carry the arrival results:\n%s", aar)
		}
		if ours := strings.Join(m.Get("Authentication-Results"), "\n"); strings.Count(ours, "mx.list.e2e.test") != 1 || !strings.Contains(ours, "arc=fail") || !strings.Contains(ours, "dkim=fail") {
			t.Errorf("this hop's Authentication-Results (the list broke the signature and the chain): %s", ours)
		}
		if v := arcVerify(t, m.Data); !strings.HasPrefix(v, "pass") {
			t.Errorf("dkimpy arc_verify: %s\n%s", v, m.Data)
		}
	})
	t.Run("through port 25 from 127.0.0.1: ours, but not the list's: unsealed", func(t *testing.T) {
		m := reinject(t, s.smtp, "member2@remote.example")
		if seals := m.Get("ARC-Seal"); len(seals) != 1 {
			t.Errorf("%d ARC-Seal fields, want only the upstream one", len(seals))
		}
		if v := arcVerify(t, m.Data); !strings.HasPrefix(v, "fail") {
			t.Errorf("dkimpy arc_verify without our seal: %s", v)
		}
	})
	t.Run("from an outside client: refused by the author's p=reject", func(t *testing.T) {
		err := harness.Submission{Helo: "other.e2e.example", From: "list-bounces@e2e.test", Rcpts: []string{"member3@e2e.test"},
			XClient: "ADDR=192.0.2.45 NAME=other.e2e.example", Data: listed}.Send(s.smtp)
		var se *harness.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 5 {
			t.Errorf("want a 5xx refusal (DMARC), got %v", err)
		}
	})
}
