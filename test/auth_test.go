package e2e_test

// Sender authentication end to end (issue 3): OpenDKIM from Debian signs,
// mailwarden verifies; a real Postfix enforces DMARC through mailwarden;
// all DNS comes from a test DNS server that mailwarden is pointed at.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/test/harness"
)

const authAuthservID = "mx.auth.test"

// authConfig treats every client as external (Postfix connects from
// 127.0.0.1) and uses the test DNS server.
func authConfig(dns *harness.DNS) string {
	return `authserv_id = "` + authAuthservID + `"
trusted_networks = []
local_domains = ["auth.test"]
` + harness.DNSSection(dns) + `
# The spam scorer also counts authentication failures; these tests are
# about the auth actions, so scores must not hold or reject on their own.
[score]
add_header = 5.0
quarantine = 100.0
reject = 200.0
`
}

// genKey runs opendkim-genkey and returns the private key path and the
// TXT record value it made.
func genKey(t *testing.T, dir, domain, selector string) (string, string) {
	t.Helper()
	bin, _ := harness.LookPath("opendkim-genkey")
	out, err := exec.Command(bin, "--domain="+domain, "--selector="+selector, "--directory="+dir, "--bits=2048").CombinedOutput()
	if err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	zone, err := os.ReadFile(filepath.Join(dir, selector+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	var txt strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(string(zone), -1) {
		txt.WriteString(m[1])
	}
	return filepath.Join(dir, selector+".private"), txt.String()
}

// startOpenDKIM runs opendkim as a signing milter on a unix socket.
func startOpenDKIM(t *testing.T, dir, domain, selector, key string) string {
	t.Helper()
	bin, _ := harness.LookPath("opendkim")
	sock := filepath.Join(dir, "opendkim.sock")
	conf := filepath.Join(dir, "opendkim.conf")
	cfg := fmt.Sprintf(`Mode s
Domain %s
Selector %s
KeyFile %s
Socket local:%s
SignatureAlgorithm rsa-sha256
Canonicalization relaxed/simple
InternalHosts 127.0.0.1
Background no
Syslog no
RequireSafeKeys no
PidFile %s
`, domain, selector, key, sock, filepath.Join(dir, "opendkim.pid"))
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", "-x", conf)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		harness.Unavailable(t, "opendkim: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("opendkim did not create %s:\n%s", sock, stderr.String())
	return ""
}

// signWithOpenDKIM passes a message through the opendkim milter (as an MTA
// would) and returns it with the DKIM-Signature field opendkim added.
func signWithOpenDKIM(t *testing.T, sock string, from, rcpt string, msg []byte) []byte {
	t.Helper()
	c := milter.NewClient("unix", sock)
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroMTAFQDN, "mx.auth.test")
	macros.Set(milter.MacroQueueId, "E2EAUTH1")
	s, err := c.Session(macros)
	if err != nil {
		t.Fatalf("opendkim session: %v", err)
	}
	defer s.Close()
	check := func(act *milter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("opendkim: %v", err)
		}
		if act.StopProcessing() {
			t.Fatalf("opendkim refused: %+v", act)
		}
	}
	check(s.Conn("localhost", milter.FamilyInet, 25, "127.0.0.1"))
	check(s.Helo("localhost"))
	check(s.Mail("<"+from+">", ""))
	check(s.Rcpt("<"+rcpt+">", ""))
	check(s.DataStart())
	hdr, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, line := range strings.Split(strings.ReplaceAll(string(hdr), "\r\n\t", "\n\t"), "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		check(s.HeaderField(k, strings.TrimPrefix(v, " "), nil))
	}
	check(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	check(act, err)
	var sig string
	for _, m := range mods {
		if (m.Type == milter.ActionInsertHeader || m.Type == milter.ActionAddHeader) && strings.EqualFold(m.HeaderName, "DKIM-Signature") {
			sig = m.HeaderValue
		}
	}
	if sig == "" {
		t.Fatalf("opendkim added no DKIM-Signature (modifications %+v)", mods)
	}
	sig = strings.ReplaceAll(strings.ReplaceAll(sig, "\r\n", "\n"), "\n", "\r\n")
	return append([]byte("DKIM-Signature: "+sig+"\r\n"), msg...)
}

// checkJSON runs `mailwarden check --json` and returns the decoded output.
func checkJSON(t *testing.T, config string, msg []byte, args ...string) map[string]any {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mw.toml")
	eml := filepath.Join(dir, "msg.eml")
	os.WriteFile(cfg, []byte(config), 0o644)
	os.WriteFile(eml, msg, 0o644)
	cmd := exec.Command(harness.Mailwarden(t), append(append([]string{"check", "-config", cfg, "--json"}, args...), eml)...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("check output: %v\n%s", err, out)
	}
	return v
}

func checkStatus(v map[string]any, name string) string {
	c, _ := v["checks"].(map[string]any)
	s, _ := c[name].(string)
	return s
}

// TestAuthOpenDKIMInterop: a key made by opendkim-genkey, served by the
// test DNS server; opendkim signs, mailwarden verifies.
func TestAuthOpenDKIMInterop(t *testing.T) {
	t.Parallel()
	harness.Require(t, "opendkim", "opendkim-genkey")
	dir := t.TempDir()
	key, txt := genKey(t, dir, "signer.example", "e2e")
	dns := harness.StartDNS(t)
	dns.AddTXT("e2e._domainkey.signer.example", 300, txt)
	sock := startOpenDKIM(t, dir, "signer.example", "e2e", key)

	msg := []byte("From: Alice <alice@signer.example>\r\nTo: bob@auth.test\r\nSubject: interop\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <interop@signer.example>\r\n\r\n" +
		"Hello Bob,\r\nthis message was signed by OpenDKIM.\r\n")
	signed := signWithOpenDKIM(t, sock, "alice@signer.example", "bob@auth.test", msg)
	if !bytes.Contains(signed, []byte("a=rsa-sha256")) || !bytes.Contains(signed, []byte("d=signer.example")) {
		t.Fatalf("unexpected signature:\n%s", signed)
	}
	cfg := authConfig(dns)
	args := []string{"--client-ip", "192.0.2.10", "--helo", "mail.signer.example", "--from", "alice@signer.example", "--rcpt", "bob@auth.test"}

	v := checkJSON(t, cfg, signed, args...)
	if checkStatus(v, "dkim") != "pass" {
		t.Fatalf("dkim = %q, want pass: %v", checkStatus(v, "dkim"), v["details"])
	}
	// DKIM aligned with From: DMARC would pass if the domain had a policy;
	// it has none here.
	if checkStatus(v, "dmarc") != "none" || checkStatus(v, "spf") != "none" {
		t.Errorf("spf=%s dmarc=%s", checkStatus(v, "spf"), checkStatus(v, "dmarc"))
	}
	hdrs, _ := json.Marshal(v["headers"])
	if !strings.Contains(string(hdrs), "dkim=pass") || !strings.Contains(string(hdrs), "header.d=signer.example") || !strings.Contains(string(hdrs), "header.s=e2e") {
		t.Errorf("Authentication-Results: %s", hdrs)
	}

	// One byte of the body altered: fail.
	bad := bytes.Replace(signed, []byte("signed by OpenDKIM"), []byte("signed by OpenDKIm"), 1)
	if v := checkJSON(t, cfg, bad, args...); checkStatus(v, "dkim") != "fail" {
		t.Errorf("altered body: dkim = %q, want fail", checkStatus(v, "dkim"))
	}

	// With a p=reject policy the signed message passes DMARC, the altered
	// one is rejected (exit code 5).
	dns.Add(`_dmarc.signer.example. TXT "v=DMARC1; p=reject"`)
	if v := checkJSON(t, cfg, signed, args...); checkStatus(v, "dmarc") != "pass" || v["action"] != "accept" {
		t.Errorf("signed, p=reject: dmarc=%s action=%v", checkStatus(v, "dmarc"), v["action"])
	}
	if v := checkJSON(t, cfg, bad, args...); checkStatus(v, "dmarc") != "fail" || v["action"] != "reject" {
		t.Errorf("altered, p=reject: dmarc=%s action=%v", checkStatus(v, "dmarc"), v["action"])
	}
}

// authMessage is a plain unsigned message.
func authMessage(from, to, subject string) []byte {
	return []byte(fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@e2e>\r\n\r\nHello.\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano()))
}

// TestAuthPostfixDMARC: through a real Postfix with mailwarden as milter.
func TestAuthPostfixDMARC(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	dns := harness.StartDNS(t,
		// SPF fails for 127.0.0.1 (Postfix's client here), no DKIM: DMARC fails.
		`reject.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.reject.example. TXT "v=DMARC1; p=reject"`,
		`none.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.none.example. TXT "v=DMARC1; p=none"`,
		`pass.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`_dmarc.pass.example. TXT "v=DMARC1; p=reject"`,
	)
	dns.SetTimeout("slow.example")
	sink := harness.StartSink(t)
	mw := harness.StartMailwarden(t, authConfig(dns))
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: mw.Addr(), Relay: sink.Addr})
	send := func(from, to string) error {
		return harness.SendSMTP(pf.SMTPAddr(), "client.example", from, []string{to}, authMessage(from, to, "dmarc e2e"))
	}

	t.Run("PolicyRejectIsRefusedAtSMTP", func(t *testing.T) {
		err := send("alice@reject.example", "r1@auth.test")
		var se *harness.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || se.Enhanced != "5.7.1" {
			t.Fatalf("got %v, want 550 5.7.1", err)
		}
		line := mw.WaitLog(t, harness.MessageFrom("alice@reject.example"), 20*time.Second)
		if line["action"] != "reject" || !hasReason(line, "dmarc-reject") {
			t.Errorf("log line %v", line)
		}
		if c, _ := line["checks"].(map[string]any); c != nil {
			if d, _ := c["dmarc"].(map[string]any); d == nil || d["status"] != "fail" {
				t.Errorf("checks %v", c)
			}
		}
	})

	t.Run("PolicyNoneIsDeliveredWithDMARCFail", func(t *testing.T) {
		if err := send("bob@none.example", "r2@auth.test"); err != nil {
			t.Fatal(err)
		}
		m := sink.WaitFor(30*time.Second, harness.To("r2@auth.test"))
		if m == nil {
			t.Fatalf("not delivered; maillog:\n%s", pf.Log())
		}
		var ours string
		for _, v := range m.Get("Authentication-Results") {
			if strings.HasPrefix(strings.TrimSpace(v), authAuthservID) {
				ours = v
			}
		}
		if !strings.Contains(ours, "dmarc=fail") || !strings.Contains(ours, "header.from=none.example") ||
			!strings.Contains(ours, "policy.dmarc=none") || !strings.Contains(ours, "spf=fail") {
			t.Errorf("our Authentication-Results: %q", ours)
		}
	})

	t.Run("AlignedSPFPassIsDelivered", func(t *testing.T) {
		if err := send("carol@pass.example", "r3@auth.test"); err != nil {
			t.Fatal(err)
		}
		if m := sink.WaitFor(30*time.Second, harness.To("r3@auth.test")); m == nil {
			t.Fatalf("not delivered")
		} else if ars := strings.Join(m.Get("Authentication-Results"), "\n"); !strings.Contains(ars, "dmarc=pass") {
			t.Errorf("Authentication-Results: %q", ars)
		}
	})

	t.Run("DNSTimeoutIs4xxNeverReject", func(t *testing.T) {
		err := send("dave@slow.example", "r4@auth.test")
		var se *harness.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 4 {
			t.Fatalf("got %v, want a 4xx", err)
		}
		line := mw.WaitLog(t, harness.MessageFrom("dave@slow.example"), 20*time.Second)
		if line["action"] != "tempfail" || !hasReason(line, "auth-temperror") {
			t.Errorf("log line %v", line)
		}
	})
}
