package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/message"
)

// world is an injected DNS world: a test DNS server and an authenticator
// whose resolver asks only it.
type world struct {
	t   *testing.T
	dns *dnstest.Server
	a   *authenticator
	cfg *Config
}

func newWorld(t *testing.T, records ...string) *world {
	t.Helper()
	s := dnstest.Start(t, records...)
	cfg := DefaultConfig()
	return newWorldCfg(t, s, cfg)
}

func newWorldCfg(t *testing.T, s *dnstest.Server, cfg *Config) *world {
	t.Helper()
	dc := dns.DefaultConfig()
	dc.Servers = []string{s.Addr}
	dc.Timeout = policy.Duration(150 * time.Millisecond)
	dc.Attempts = 1
	r, err := dns.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	core := policy.DefaultConfig()
	core.TrustedNetworks = policy.Networks{policy.Prefix(netip.MustParsePrefix("10.99.0.0/16"))}
	core.AuthservID = "mx.test"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := newAuth(cfg, core, r, nil)
	a.sample = func() int { return 0 }
	return &world{t: t, dns: s, a: a, cfg: cfg}
}

// msg builds a message from a client IP, MAIL FROM and a raw header+body.
func msg(ip, helo, mailFrom, raw string) *message.Message {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	hdr, body, _ := strings.Cut(raw, "\n\n")
	var h message.Header
	for _, line := range strings.Split(hdr, "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h) > 0 {
			h[len(h)-1].Value += "\n" + line
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		h = append(h, message.Field{Name: k, Value: v})
	}
	m := &message.Message{MailFrom: mailFrom, Header: h, Body: message.BytesBody(strings.ReplaceAll(body, "\n", "\r\n")), Rcpts: []string{"rcpt@mx.test"}}
	if ip != "" {
		m.Client.Addr = netip.MustParseAddr(ip)
	}
	m.Client.HELO = helo
	m.Client.Name = "unknown"
	return m
}

// run runs the three checks in pipeline order and returns their results.
func (w *world) run(m *message.Message) policy.Results {
	w.t.Helper()
	ctx := context.Background()
	prior := policy.Results{}
	for _, s := range w.a.steps() {
		if s.Check.Name() == "dmarc" {
			continue
		}
		r, err := s.Check.Check(ctx, m, nil)
		if err != nil {
			w.t.Fatalf("%s: %v", s.Check.Name(), err)
		}
		prior[s.Check.Name()] = r
	}
	for _, s := range w.a.steps() {
		if s.Check.Name() == "dmarc" {
			r, err := s.Check.Check(ctx, m, prior)
			if err != nil {
				w.t.Fatalf("dmarc: %v", err)
			}
			prior["dmarc"] = r
		}
	}
	return prior
}

// signer makes Ed25519 DKIM signatures and publishes the key.
type signer struct {
	domain, selector string
	key              ed25519.PrivateKey
}

func newSigner(t *testing.T, s *dnstest.Server, domain, selector string) *signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.AddTXT(selector+"._domainkey."+domain, 300, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	return &signer{domain, selector, priv}
}

func (sg *signer) sign(t *testing.T, raw string) string {
	t.Helper()
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	var b strings.Builder
	err := dkim.Sign(&b, strings.NewReader(raw), &dkim.SignOptions{Domain: sg.domain, Selector: sg.selector, Signer: sg.key, HeaderKeys: []string{"From", "Subject", "To"}})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const plainMsg = "From: Alice <alice@example.com>\nTo: bob@mx.test\nSubject: hi\n\nhello\n"

func status(r policy.Results, name string) policy.Status { return r[name].Status }

func TestSPFStatuses(t *testing.T) {
	w := newWorld(t,
		`example.com. TXT "v=spf1 ip4:192.0.2.0/24 ~all"`,
		`fail.example. TXT "v=spf1 -all"`,
		`perm.example. TXT "v=spf1 foo:bar -all"`,
		`helo.example. TXT "v=spf1 a -all"`,
		`helo.example. A 192.0.2.77`,
	)
	w.dns.SetTimeout("slow.example")
	for _, c := range []struct {
		ip, helo, from string
		want           policy.Status
	}{
		{"192.0.2.1", "h.example", "a@example.com", StatusPass},
		{"198.51.100.1", "h.example", "a@example.com", StatusSoftfail},
		{"198.51.100.1", "h.example", "a@fail.example", StatusFail},
		{"198.51.100.1", "h.example", "a@perm.example", StatusPermerror},
		{"198.51.100.1", "h.example", "a@nospf.example", StatusNone},
		{"198.51.100.1", "h.example", "a@slow.example", StatusTemperror},
		{"192.0.2.77", "helo.example", "", StatusPass}, // null sender: HELO
		{"192.0.2.78", "helo.example", "", StatusFail},
		{"192.0.2.78", "[192.0.2.78]", "", StatusNone},
		{"10.99.1.1", "h.example", "a@fail.example", policy.StatusSkip}, // trusted network
	} {
		r := w.run(msg(c.ip, c.helo, c.from, plainMsg))
		if got := status(r, "spf"); got != c.want {
			t.Errorf("%s %s %q: spf=%s, want %s (%s)", c.ip, c.helo, c.from, got, c.want, r["spf"].Detail)
		}
	}
}

func TestReceivedSPF(t *testing.T) {
	s := dnstest.Start(t, `example.com. TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
	cfg := DefaultConfig()
	cfg.SPF.ReceivedSPF = true
	w := newWorldCfg(t, s, cfg)
	r := w.run(msg("192.0.2.1", "h.example", "a@example.com", plainMsg))["spf"]
	if len(r.Headers) != 1 || r.Headers[0].Name != "Received-SPF" ||
		!strings.HasPrefix(r.Headers[0].Value, " pass (mx.test: domain of a@example.com designates 192.0.2.1 as permitted sender)") ||
		!strings.Contains(r.Headers[0].Value, `envelope-from="a@example.com"`) {
		t.Errorf("Received-SPF = %q", r.Headers)
	}
	sp := r.AuthResults[0].(*authres.SPFResult)
	if sp.Value != authres.ResultPass || sp.From != "a@example.com" {
		t.Errorf("authres %+v", sp)
	}
}

func TestDKIM(t *testing.T) {
	w := newWorld(t)
	sg := newSigner(t, w.dns, "example.com", "sel")
	signed := sg.sign(t, plainMsg)
	r := w.run(msg("198.51.100.1", "h.example", "a@example.com", signed))
	if status(r, "dkim") != StatusPass {
		t.Fatalf("dkim = %s (%s)", status(r, "dkim"), r["dkim"].Detail)
	}
	g := r["dkim"].AuthResults[0].(*authres.GenericResult)
	if g.Params["header.d"] != "example.com" || g.Params["header.s"] != "sel" || g.Params["header.a"] != "ed25519-sha256" || len(g.Params["header.b"]) != 8 {
		t.Errorf("authres params %v", g.Params)
	}
	line := authres.Format("mx.test", r["dkim"].AuthResults)
	if !strings.Contains(line, "dkim=pass header.a=ed25519-sha256 header.b=") || !strings.Contains(line, "header.d=example.com header.s=sel") {
		t.Errorf("formatted %q", line)
	}
	// One body byte altered: fail.
	bad := strings.Replace(signed, "hello", "hellO", 1)
	if st := status(w.run(msg("198.51.100.1", "h", "a@example.com", bad)), "dkim"); st != StatusFail {
		t.Errorf("altered body: %s", st)
	}
	// A signed header altered: fail.
	bad = strings.Replace(signed, "Subject: hi", "Subject: hI", 1)
	if st := status(w.run(msg("198.51.100.1", "h", "a@example.com", bad)), "dkim"); st != StatusFail {
		t.Errorf("altered header: %s", st)
	}
	// No signature: none.
	if st := status(w.run(msg("198.51.100.1", "h", "a@example.com", plainMsg)), "dkim"); st != StatusNone {
		t.Errorf("unsigned: %s", st)
	}
	// Revoked key (empty p=): permerror. Key lookup timeout: temperror.
	w.dns.Remove("sel._domainkey.example.com")
	w.dns.AddTXT("sel._domainkey.example.com", 300, "v=DKIM1; k=ed25519; p=")
	w.a.resolver.Flush()
	if st := status(w.run(msg("198.51.100.1", "h", "a@example.com", signed)), "dkim"); st != StatusPermerror {
		t.Errorf("revoked: %s", st)
	}
	w.dns.SetTimeout("sel._domainkey.example.com")
	w.a.resolver.Flush()
	if st := status(w.run(msg("198.51.100.1", "h", "a@example.com", signed)), "dkim"); st != StatusTemperror {
		t.Errorf("timeout: %s", st)
	}
	w.dns.ClearTimeout("sel._domainkey.example.com")
	w.dns.Remove("sel._domainkey.example.com")
	w.a.resolver.Flush()
	if st := status(w.run(msg("198.51.100.1", "h", "a@example.com", signed)), "dkim"); st != StatusPermerror {
		t.Errorf("no key: %s", st)
	}
}

func TestDKIMMaxSignatures(t *testing.T) {
	s := dnstest.Start(t)
	cfg := DefaultConfig()
	cfg.DKIM.MaxSignatures = 2
	w := newWorldCfg(t, s, cfg)
	raw := plainMsg
	for i := range 4 {
		sg := newSigner(t, s, "example.com", "s"+string(rune('a'+i)))
		raw = sg.sign(t, raw)
	}
	r := w.run(msg("198.51.100.1", "h", "a@example.com", raw))["dkim"]
	o := r.Data.(*DKIMOutcome)
	if len(o.Signatures) != 2 || o.Status != StatusPass {
		t.Errorf("%d signatures verified, status %s", len(o.Signatures), o.Status)
	}
}

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
