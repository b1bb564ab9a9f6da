package sign

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	_ "unsafe" // go:linkname, for go-msgauth's clock

	"github.com/BurntSushi/toml"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
)

// go-msgauth stamps t= and checks x= with its package clock, which has
// no option; the tests set it to the time they pass to Sign.
//
//go:linkname dkimNow github.com/emersion/go-msgauth/dkim.now
var dkimNow func() time.Time

func withClock(t *testing.T, now time.Time) {
	old := dkimNow
	dkimNow = func() time.Time { return now }
	t.Cleanup(func() { dkimNow = old })
}

var (
	keysOnce sync.Once
	rsa1     *rsa.PrivateKey
	rsa2     *rsa.PrivateKey
	ed1      ed25519.PrivateKey
)

func testKeys() {
	keysOnce.Do(func() {
		rsa1, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
		_, ed1, _ = ed25519.GenerateKey(rand.Reader)
	})
}

type fakeDNS struct {
	mu   sync.Mutex
	txt  map[string][]string
	temp map[string]bool
}

func newDNS() *fakeDNS { return &fakeDNS{txt: map[string][]string{}, temp: map[string]bool{}} }

func (f *fakeDNS) LookupTXT(_ context.Context, n string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = strings.ToLower(strings.TrimSuffix(n, "."))
	if f.temp[n] {
		return nil, &net.DNSError{Err: "timeout", Name: n, IsTimeout: true}
	}
	if t, ok := f.txt[n]; ok {
		return t, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}

func (f *fakeDNS) publish(t testing.TB, k *Key) {
	txt, err := TXTRecord(k.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// As a zone serves it: 255-byte strings, joined by the resolver.
	f.txt[strings.ToLower(dkimkey.RecordName(k.Selector, k.Domain))] = []string{strings.Join(SplitTXT(txt), "")}
}

func parseMsg(t testing.TB, msg string) ([]Field, string) {
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	var h []Field
	for _, line := range strings.Split(head, "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			h[len(h)-1].Value += "\r\n" + line
			continue
		}
		n, v, _ := strings.Cut(line, ":")
		h = append(h, Field{n, v})
	}
	return h, body
}

// assemble inserts the signatures at the top the way the MTA does with
// a milter value: each LF becomes CRLF.
func assemble(sigs []Signature, msg string) string {
	var b strings.Builder
	for i := len(sigs) - 1; i >= 0; i-- {
		b.WriteString("DKIM-Signature: " + strings.ReplaceAll(sigs[i].Value, "\n", "\r\n") + "\r\n")
	}
	return b.String() + msg
}

const msgNoDate = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nTo: carol@example.net\r\nSubject: hello\r\nList-Id: <x.example.com>\r\n\r\nHi Bob,\r\n\r\n  line with   spaces  \r\n\r\n"

func TestHeaderKeys(t *testing.T) {
	h, _ := parseMsg(t, msgNoDate)
	got := HeaderKeys(h)
	want := []string{"From", "From", "To", "To", "To", "Cc", "Subject", "Subject", "Reply-To", "list-id"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HeaderKeys = %v\nwant %v", got, want)
	}
	h = append(h, Field{"Date", " x"}, Field{"Message-ID", " <1@x>"}, Field{"Resent-From", " a@b"}, Field{"X-Other", " y"})
	got = HeaderKeys(h)
	for _, n := range []string{"Date", "Message-ID", "resent-from"} {
		if !contains(got, n) {
			t.Errorf("%s missing from %v", n, got)
		}
	}
	if contains(got, "x-other") || contains(got, "Sender") || contains(got, "In-Reply-To") {
		t.Errorf("unexpected names in %v", got)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func verify(t *testing.T, dns *fakeDNS, msg string) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(n string) ([]string, error) { return dns.LookupTXT(context.Background(), n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestSignVerify: RSA and Ed25519 signatures of a message without Date
// and Message-ID verify with go-msgauth; the value is milter-ready; a
// second From or To added later breaks them, a Message-ID added later
// does not.
func TestSignVerify(t *testing.T) {
	testKeys()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	withClock(t, now)
	dns := newDNS()
	kr := &Key{Name: "r", Domain: "example.com", Selector: "s1", Signer: rsa1}
	ke := &Key{Name: "e", Domain: "example.com", Selector: "e1", Signer: ed1}
	dns.publish(t, kr)
	dns.publish(t, ke)
	h, body := parseMsg(t, msgNoDate)
	sigs, err := Sign(h, strings.NewReader(body), []*Key{kr, ke}, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 2 {
		t.Fatalf("%d signatures", len(sigs))
	}
	for _, s := range sigs {
		if strings.Contains(s.Value, "\r") || strings.HasPrefix(s.Value, " ") || strings.Contains(s.Value, "l=") {
			t.Errorf("value not milter-ready or has l=: %q", s.Value)
		}
		for _, line := range strings.Split(s.Value, "\n")[1:] {
			if !strings.HasPrefix(line, "\t") {
				t.Errorf("fold without a tab: %q", line)
			}
		}
		if !strings.Contains(s.Value, "c=relaxed/relaxed") || !strings.Contains(s.Value, "t=1772366400") || !strings.Contains(s.Value, "x=1772971200") {
			t.Errorf("tags: %q", s.Value)
		}
	}
	signed := assemble(sigs, msgNoDate)
	vs := verify(t, dns, signed)
	if len(vs) != 2 {
		t.Fatalf("%d verifications", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("%s: %v", v.Domain, v.Err)
		}
	}
	for _, tc := range []struct {
		name, add string
		pass      bool
	}{
		{"second From", "From: mallory@evil.example\r\n", false},
		{"third To", "To: x@evil.example\r\n", false},
		{"Cc", "Cc: x@evil.example\r\n", false},
		{"Message-ID", "Message-ID: <late@relay.example>\r\n", true},
		{"Date", "Date: Sun, 1 Mar 2026 12:00:00 +0000\r\n", true},
	} {
		m := strings.Replace(signed, "\r\nSubject:", "\r\n"+tc.add+"Subject:", 1)
		for _, v := range verify(t, dns, m) {
			if (v.Err == nil) != tc.pass {
				t.Errorf("after adding %s: err %v, want pass=%v", tc.name, v.Err, tc.pass)
			}
		}
	}
}

func TestSignNoKeys(t *testing.T) {
	if s, err := Sign(nil, nil, nil, time.Unix(0, 0), 0); s != nil || err != nil {
		t.Errorf("no keys: %v %v", s, err)
	}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte, mode os.FileMode) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

func TestLoadKey(t *testing.T) {
	testKeys()
	dir := t.TempDir()
	p8, _ := x509.MarshalPKCS8PrivateKey(rsa1)
	e8, _ := x509.MarshalPKCS8PrivateKey(ed1)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	w8, _ := x509.MarshalPKCS8PrivateKey(weak)
	for _, tc := range []struct {
		path string
		err  error
	}{
		{writePEM(t, dir, "rsa.pem", "PRIVATE KEY", p8, 0o600), nil},
		{writePEM(t, dir, "rsa1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1), 0o640), nil},
		{writePEM(t, dir, "ed.pem", "PRIVATE KEY", e8, 0o600), nil},
		{writePEM(t, dir, "world.pem", "PRIVATE KEY", p8, 0o644), ErrKeyMode},
		{writePEM(t, dir, "weak.pem", "PRIVATE KEY", w8, 0o600), ErrWeakKey},
		{writePEM(t, dir, "cert.pem", "CERTIFICATE", p8, 0o600), ErrKeyFile},
		{filepath.Join(dir, "absent.pem"), ErrKeyFile},
	} {
		if _, err := LoadKey(tc.path); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", filepath.Base(tc.path), err, tc.err)
		}
	}
}

const sampleTOML = `
expire = "96h"
ed25519 = true

[[key]]
name = "2026a"
domain = "example.com"
selector = "s2026a"
file = "a.pem"
not_before = 2026-01-01T00:00:00Z
not_after = 2026-07-01T00:00:00Z

[[key]]
name = "2026b"
domain = "example.com"
selector = "s2026b"
file = "b.pem"
not_before = 2026-06-01T00:00:00Z

[[key]]
name = "ed"
domain = "example.com"
selector = "ed"
file = "ed.pem"

[[key]]
name = "ceo"
domain = "example.com"
selector = "ceo"
file = "b.pem"

[[rule]]
from = "*@example.com"
keys = ["2026a", "2026b", "ed"]

[[rule]]
from = "ceo@example.com"
keys = ["ceo"]

[[rule]]
from = "*@.example.com"
keys = ["2026a"]

[[rule]]
from = "*@.eu.example.com"
keys = ["2026b"]
`

func loadSample(t *testing.T, mutate func(*Config)) (*Table, error) {
	testKeys()
	var cfg Config
	if _, err := toml.Decode(sampleTOML, &cfg); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	files := map[string]crypto.Signer{"a.pem": rsa1, "b.pem": rsa2, "ed.pem": ed1}
	return NewTable(cfg, func(p string) (crypto.Signer, error) {
		if k, ok := files[p]; ok {
			return k, nil
		}
		return nil, ErrKeyFile
	})
}

func names(ks []*Key) string {
	var n []string
	for _, k := range ks {
		n = append(n, k.Name)
	}
	return strings.Join(n, ",")
}

func TestTableRules(t *testing.T) {
	tab, err := loadSample(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Expire() != 96*time.Hour {
		t.Errorf("expire %v", tab.Expire())
	}
	for from, want := range map[string]string{
		"alice@example.com":     "2026a,2026b,ed",
		"CEO@Example.COM":       "ceo",
		"bob@sales.example.com": "2026a",
		"bob@x.eu.example.com":  "2026b",
		"bob@eu.example.com":    "2026a", // *@.eu.example.com is for subdomains of eu only
		"bob@example.org":       "",
		"not-an-address":        "",
	} {
		if got := names(tab.Match(from)); got != want {
			t.Errorf("Match(%s) = %q, want %q", from, got, want)
		}
	}
	all := func(*Key) bool { return true }
	for _, tc := range []struct {
		now    time.Time
		usable func(*Key) bool
		want   string
	}{
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), all, "2026a,ed"},
		{time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC), all, "2026a,2026b,ed"}, // rotation overlap
		{time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), all, "2026b,ed"},
		{time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC), all, ""}, // Ed25519 never alone
		{time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), func(k *Key) bool { return k.Name != "2026a" }, ""},
	} {
		if got := names(tab.Select("alice@example.com", tc.now, tc.usable)); got != tc.want {
			t.Errorf("Select at %s = %q, want %q", tc.now.Format(time.DateOnly), got, tc.want)
		}
	}
	tab2, _ := loadSample(t, func(c *Config) { c.Ed25519 = false })
	if got := names(tab2.Select("alice@example.com", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), nil)); got != "2026a" {
		t.Errorf("Ed25519 off: %q", got)
	}
}

func TestTableErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		err    error
	}{
		{"unknown key", func(c *Config) { c.Rules[0].Keys = append(c.Rules[0].Keys, "nope") }, ErrUnknownKey},
		{"unreadable", func(c *Config) { c.Keys[0].File = "missing.pem" }, ErrKeyFile},
		{"ed25519 alone", func(c *Config) { c.Rules[0].Keys = []string{"ed"} }, ErrNoRSAForEd},
		{"bad pattern", func(c *Config) { c.Rules[0].From = "*@" }, ErrRuleSyntax},
		{"bad pattern 2", func(c *Config) { c.Rules[0].From = "a*@example.com" }, ErrRuleSyntax},
		{"duplicate", func(c *Config) { c.Keys[1].Name = "2026a" }, ErrKeyConfig},
		{"window", func(c *Config) { c.Keys[0].NotAfter = c.Keys[0].NotBefore }, ErrKeyConfig},
		{"no selector", func(c *Config) { c.Keys[0].Selector = "" }, ErrKeyConfig},
	} {
		if _, err := loadSample(t, tc.mutate); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestSenders(t *testing.T) {
	s := Senders{"bob": {"example.com", ".example.org"}}
	for _, tc := range []struct {
		user, domain string
		ok           bool
	}{
		{"bob", "example.com", true},
		{"BOB", "Example.com.", true},
		{"bob", "sub.example.org", true},
		{"bob", "example.org", false},
		{"bob", "evil.example", false},
		{"alice@example.net", "example.net", true},
		{"alice@example.net", "example.com", false},
		{"carol", "example.com", false},
	} {
		if got := s.MaySendAs(tc.user, tc.domain); got != tc.ok {
			t.Errorf("MaySendAs(%s, %s) = %v", tc.user, tc.domain, got)
		}
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	for _, a := range []Algo{AlgoRSA2048, AlgoEd25519} {
		k, err := GenerateKey(a)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, string(a)+".pem")
		if err := WriteKey(p, k); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", a, st.Mode())
		}
		if err := WriteKey(p, k); err == nil {
			t.Errorf("%s: overwrote an existing key", a)
		}
		back, err := LoadKey(p)
		if err != nil || !dkimkey.SameKey(back.Public(), k.Public()) {
			t.Fatalf("%s: reload: %v", a, err)
		}
		zone, err := ZoneRecord("s1", "example.com", k.Public())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(zone, "s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=") {
			t.Errorf("zone line %q", zone)
		}
		txt, _ := TXTRecord(k.Public())
		parts := SplitTXT(txt)
		for _, p := range parts {
			if len(p) > 255 {
				t.Errorf("string of %d bytes", len(p))
			}
		}
		if strings.Join(parts, "") != txt || (a == AlgoRSA2048) != (len(parts) > 1) {
			t.Errorf("%s: split into %d", a, len(parts))
		}
		if rec, err := dkimkey.ParseRecord(txt); err != nil || !dkimkey.SameKey(rec.PublicKey, k.Public()) {
			t.Errorf("%s: record does not parse back: %v", a, err)
		}
	}
	if _, err := GenerateKey("dsa"); err == nil {
		t.Error("dsa accepted")
	}
}

func TestCheckAndTracker(t *testing.T) {
	testKeys()
	dns := newDNS()
	ok := &Key{Name: "ok", Domain: "example.com", Selector: "ok", Signer: rsa1}
	other := &Key{Name: "other", Domain: "example.com", Selector: "other", Signer: rsa1}
	missing := &Key{Name: "missing", Domain: "example.com", Selector: "missing", Signer: rsa1}
	revoked := &Key{Name: "revoked", Domain: "example.com", Selector: "revoked", Signer: rsa1}
	flaky := &Key{Name: "flaky", Domain: "example.com", Selector: "flaky", Signer: rsa1}
	dns.publish(t, ok)
	dns.publish(t, flaky)
	dns.publish(t, &Key{Domain: "example.com", Selector: "other", Signer: rsa2})
	dns.txt["revoked._domainkey.example.com"] = []string{"v=DKIM1; p="}
	keys := []*Key{ok, other, missing, revoked, flaky}
	want := map[string]RecordState{"ok": RecordOK, "other": RecordMismatch, "missing": RecordMissing, "revoked": RecordMissing, "flaky": RecordOK}
	ctx := context.Background()
	for _, k := range keys {
		if st, _ := Check(ctx, dns, k); st != want[k.Name] {
			t.Errorf("Check(%s) = %s, want %s", k.Name, st, want[k.Name])
		}
	}
	tr := NewTracker()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if tr.Usable(ok) || tr.State("ok").State != RecordUnchecked || !tr.Due(t0) {
		t.Fatal("a new tracker must hold every key back")
	}
	tr.CheckAll(ctx, dns, keys, t0)
	for _, k := range keys {
		if got := tr.Usable(k); got != (want[k.Name] == RecordOK) {
			t.Errorf("usable(%s) = %v", k.Name, got)
		}
	}
	if tr.Due(t0.Add(9*time.Minute)) || !tr.Due(t0.Add(10*time.Minute)) {
		t.Error("Due is not every 10 minutes")
	}
	// A DNS hiccup does not stop a key that was fine; a key never
	// confirmed stays held back; a removed record stops the key.
	dns.temp["flaky._domainkey.example.com"] = true
	dns.temp["missing._domainkey.example.com"] = true
	delete(dns.txt, "ok._domainkey.example.com")
	tr.CheckAll(ctx, dns, keys, t0.Add(10*time.Minute))
	if s := tr.State("flaky"); s.State != RecordTempError || !s.Usable {
		t.Errorf("flaky: %+v", s)
	}
	if tr.Usable(missing) || tr.Usable(ok) {
		t.Error("missing or removed record still usable")
	}
	// A reload that drops keys forgets them.
	tr.CheckAll(ctx, dns, []*Key{flaky}, t0.Add(20*time.Minute))
	if tr.State("other").State != RecordUnchecked {
		t.Error("dropped key still tracked")
	}
}

func FuzzRule(f *testing.F) {
	for _, s := range []string{"*@example.com", "*@.example.com", "a@b", "@", "*@.", "a@@b"} {
		f.Add(s, "x@sub.example.com")
	}
	f.Fuzz(func(t *testing.T, pattern, from string) {
		r, err := parseRule(pattern)
		if err != nil {
			return
		}
		tab := &Table{rules: []rule{r}}
		keys := tab.Match(from)
		if len(keys) != 0 {
			t.Fatal("a rule without keys gave keys")
		}
		if r.domain == "" {
			t.Fatalf("%q parsed without a domain", pattern)
		}
	})
}
