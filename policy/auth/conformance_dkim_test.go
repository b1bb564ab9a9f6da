package auth

import (
	"bufio"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "unsafe" // go:linkname, for the fixed clock below

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

// go-msgauth checks x= against its package clock, which has no option; the
// captured real-world messages must be verified at the time the upstream
// suite uses (see conformance/dkim/README.md), so tests set it here.
//
//go:linkname dkimNow github.com/emersion/go-msgauth/dkim.now
var dkimNow func() time.Time

func withClock(t *testing.T, unix int64) {
	old := dkimNow
	dkimNow = func() time.Time { return time.Unix(unix, 0) }
	t.Cleanup(func() { dkimNow = old })
}

func readConf(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conformanceDir, rel))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return b
}

// serveKeys adds "<name> <TXT value>" lines to the DNS server.
func serveKeys(t *testing.T, s *dnstest.Server, text string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad key line %q", line)
		}
		s.AddTXT(name, 300, strings.TrimSpace(val))
	}
}

// verifyRaw runs our dkim check on a raw message.
func verifyRaw(t *testing.T, w *world, raw string) *DKIMOutcome {
	t.Helper()
	m := msg("198.51.100.1", "h.example", "x@example.org", raw)
	r, err := (&dkimCheck{w.a}).Check(t.Context(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Data.(*DKIMOutcome)
}

func wantAll(t *testing.T, name string, o *DKIMOutcome, n int, want policy.Status) {
	t.Helper()
	if len(o.Signatures) != n {
		t.Errorf("%s: %d signatures, want %d", name, len(o.Signatures), n)
	}
	for _, s := range o.Signatures {
		if s.Status != want {
			t.Errorf("%s: d=%s s=%s a=%s: %s (%v), want %s", name, s.Domain, s.Selector, s.Algorithm, s.Status, s.Err, want)
		}
	}
}

// RFC 8463 Appendix A: the Ed25519 and the RSA signature both pass.
func TestConformanceDKIM8463(t *testing.T) {
	s := dnstest.Start(t)
	serveKeys(t, s, string(readConf(t, "dkim/rfc8463/dns.txt")))
	w := newWorldCfg(t, s, DefaultConfig())
	o := verifyRaw(t, w, string(readConf(t, "dkim/rfc8463/signed.eml")))
	wantAll(t, "rfc8463", o, 2, StatusPass)
	algs := map[string]bool{}
	for _, sg := range o.Signatures {
		algs[sg.Algorithm] = true
	}
	if !algs["ed25519-sha256"] || !algs["rsa-sha256"] {
		t.Errorf("algorithms %v", algs)
	}
}

// RFC 6376 Appendix A.2 as printed does not verify (see the README).
func TestConformanceDKIM6376Negative(t *testing.T) {
	s := dnstest.Start(t)
	serveKeys(t, s, string(readConf(t, "dkim/rfc6376/dns.txt")))
	w := newWorldCfg(t, s, DefaultConfig())
	o := verifyRaw(t, w, string(readConf(t, "dkim/rfc6376/appendix-A2-signed.eml")))
	wantAll(t, "rfc6376 A.2", o, 1, StatusFail)
}

// Real-world signed mail captured by Stalwart mail-auth, at the upstream
// suite's fixed time; at the real time, 005 has expired.
func TestConformanceDKIMMailAuth(t *testing.T) {
	total := 0
	for i := 1; i <= 6; i++ {
		name := filepath.Join("dkim/mail-auth", "00"+string(rune('0'+i))+".txt")
		data := string(readConf(t, name))
		keys, message, ok := strings.Cut(data, "\n\n")
		if !ok {
			t.Fatalf("%s: no blank line", name)
		}
		s := dnstest.Start(t)
		serveKeys(t, s, keys)
		w := newWorldCfg(t, s, DefaultConfig())
		t.Run(name, func(t *testing.T) {
			withClock(t, 1667843664)
			o := verifyRaw(t, w, message)
			want := strings.Count(message, "\nDKIM-Signature:") + btoi(strings.HasPrefix(message, "DKIM-Signature:"))
			wantAll(t, name, o, want, StatusPass)
			total += len(o.Signatures)
		})
		if i == 5 {
			w.a.resolver.Flush()
			o := verifyRaw(t, w, message)
			if o.Status != StatusPermerror || !strings.Contains(errText(o.Signatures[0].Err), "expired") {
				t.Errorf("005 at the real time: %s %v, want permerror (expired)", o.Status, o.Signatures[0].Err)
			}
		}
	}
	if total != 8 {
		t.Errorf("%d signatures verified, want 8", total)
	}
}

// dkimpy's signed test data.
func TestConformanceDKIMPy(t *testing.T) {
	s := dnstest.Start(t)
	serveKeys(t, s, string(readConf(t, "dkim/dkimpy/dns-records.txt")))
	w := newWorldCfg(t, s, DefaultConfig())
	for _, c := range []struct {
		file string
		n    int
	}{{"rfc6376.signed.msg", 2}, {"ed25519test2.msg", 1}, {"test2.message", 1}} {
		o := verifyRaw(t, w, string(readConf(t, "dkim/dkimpy/"+c.file)))
		wantAll(t, c.file, o, c.n, StatusPass)
	}
}

func loadRSA(t *testing.T, rel string) *rsa.PrivateKey {
	block, _ := pem.Decode(readConf(t, rel))
	if block == nil {
		t.Fatalf("%s: no PEM", rel)
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signWith(t *testing.T, raw string, opts *dkim.SignOptions) string {
	t.Helper()
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	var b strings.Builder
	if err := dkim.Sign(&b, strings.NewReader(raw), opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// signSHA1 makes a genuine rsa-sha1 simple/simple signature (go-msgauth
// refuses to make one), so that the RFC 8301 rejection is tested on a
// signature that would otherwise verify.
func signSHA1(t *testing.T, raw string, key *rsa.PrivateKey) string {
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	hdr, body, _ := strings.Cut(raw, "\r\n\r\n")
	body = strings.TrimRight(body, "\r\n") + "\r\n" // RFC 6376 §3.4.3
	bh := sha1.Sum([]byte(body))
	var from, subject string
	for _, l := range strings.Split(hdr, "\r\n") {
		if strings.HasPrefix(l, "From:") {
			from = l
		}
		if strings.HasPrefix(l, "Subject:") {
			subject = l
		}
	}
	sig := "DKIM-Signature: v=1; a=rsa-sha1; c=simple/simple; d=example.com; s=test; h=From:Subject; bh=" + base64.StdEncoding.EncodeToString(bh[:]) + "; b="
	h := sha1.New()
	h.Write([]byte(from + "\r\n" + subject + "\r\n" + sig))
	b, err := rsa.SignPKCS1v15(nil, key, crypto.SHA1, h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA1, h.Sum(nil), b); err != nil {
		t.Fatal(err)
	}
	return sig + base64.StdEncoding.EncodeToString(b) + "\r\n" + raw
}

// Negative cases: altered body/header, revoked and broken keys, rsa-sha1
// (RFC 8301), l= (the body length tag lets unsigned content through).
func TestConformanceDKIMNegative(t *testing.T) {
	key := loadRSA(t, "dkim/dkimpy/test.private")
	message := string(readConf(t, "dkim/dkimpy/test.message"))
	good := signWith(t, message, &dkim.SignOptions{Domain: "example.com", Selector: "test", Signer: key})
	sha1 := signSHA1(t, message, key)
	lTag := strings.Replace(good, "DKIM-Signature: ", "DKIM-Signature: l=10; ", 1)
	i := strings.Index(good, "\r\n\r\n")
	bodyAltered := good[:i+4] + "X" + good[i+5:]
	hdrAltered := strings.Replace(good, "Subject: ", "Subject: Re: ", 1)

	records := map[string]string{}
	for _, f := range []string{"test.txt", "test2.txt", "test_bad.txt", "badversion.txt", "badk.txt", "test_tlsrpt.txt"} {
		records[f] = strings.TrimSpace(string(readConf(t, "dkim/dkimpy/"+f)))
	}
	for _, c := range []struct {
		name, key, msg string
		want           policy.Status
		errHas         string
	}{
		{"good", "test.txt", good, StatusPass, ""},
		{"no k= (rsa default)", "test2.txt", good, StatusPass, ""},
		{"body altered", "test.txt", bodyAltered, StatusFail, "body hash"},
		{"signed header altered", "test.txt", hdrAltered, StatusFail, "signature did not verify"},
		{"rsa-sha1 (RFC 8301 §3.1)", "test.txt", sha1, StatusPermerror, "too weak"},
		{"l= tag", "test.txt", lTag, StatusFail, "body length"},
		{"revoked key (empty p=)", "v=DKIM1; k=rsa; p=", good, StatusPermerror, ""},
		{"corrupted key", "test_bad.txt", good, StatusPermerror, ""},
		{"bad key version", "badversion.txt", good, StatusPermerror, ""},
		{"unknown k=", "badk.txt", good, StatusPermerror, ""},
		{"service type not email", "test_tlsrpt.txt", good, StatusPermerror, "service"},
		{"no key record", "", good, StatusPermerror, "no key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := dnstest.Start(t)
			if rec, ok := records[c.key]; ok {
				s.AddTXT("test._domainkey.example.com", 300, rec)
			} else if c.key != "" {
				s.AddTXT("test._domainkey.example.com", 300, c.key)
			}
			w := newWorldCfg(t, s, DefaultConfig())
			o := verifyRaw(t, w, c.msg)
			if len(o.Signatures) != 1 || o.Status != c.want {
				t.Fatalf("status %s (%d sigs: %+v), want %s", o.Status, len(o.Signatures), o.Signatures, c.want)
			}
			if c.errHas != "" && !strings.Contains(errText(o.Signatures[0].Err), c.errHas) {
				t.Errorf("error %q lacks %q", errText(o.Signatures[0].Err), c.errHas)
			}
		})
	}
}
