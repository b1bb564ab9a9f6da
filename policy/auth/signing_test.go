package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/message"
)

// TestSignStep: through the pipeline, mail from a trusted network gets a
// DKIM-Signature at the very top that verifies over the delivered
// message (our Authentication-Results included); inbound mail and a
// message with two From fields get none.
func TestSignStep(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	old := LoadKeys
	LoadKeys = func(string) (crypto.Signer, error) { return key, nil }
	t.Cleanup(func() { LoadKeys = old })
	txt, _ := sign.TXTRecord(key.Public())
	toml := `
authserv_id = "mx.example.com"
local_domains = ["example.com"]
trusted_networks = ["10.0.0.0/8"]
[dkim_sign]
[[dkim_sign.key]]
name = "k1"
domain = "example.com"
selector = "s1"
file = "/nonexistent/k1.pem"
[[dkim_sign.rule]]
from = "*@example.com"
keys = ["k1"]
`
	mods := []policy.Module{SignModule(nil)}
	cfg, err := policy.Load("t.toml", []byte(toml), mods)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg, mods, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mk := func(ip, from string) *message.Message {
		m := msg(ip, "client", "alice@example.com", "From: "+from+"\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello\r\n")
		m.Rcpts = []string{"bob@example.net"}
		return m
	}
	m := mk("10.1.2.3", "Alice <alice@example.com>")
	v := p.Run(context.Background(), m)
	if v.Action != policy.ActionAccept || len(v.Prepend) == 0 || v.Prepend[0].Name != "DKIM-Signature" {
		t.Fatalf("outbound: %s %+v", v.Action, v.Prepend)
	}
	if strings.Contains(v.Prepend[0].Value, "\r") {
		t.Errorf("CR in a milter value: %q", v.Prepend[0].Value)
	}
	var raw strings.Builder
	for _, f := range policy.FinalHeader(m.Header, &policy.Verdict{Prepend: v.Prepend}) {
		raw.WriteString(f.Name + ":" + strings.ReplaceAll(strings.ReplaceAll(f.Value, "\r\n", "\n"), "\n", "\r\n") + "\r\n")
	}
	raw.WriteString("\r\nHello\r\n")
	vs, err := dkim.VerifyWithOptions(strings.NewReader(raw.String()), &dkim.VerifyOptions{
		LookupTXT: func(n string) ([]string, error) {
			if n == "s1._domainkey.example.com" {
				return []string{txt}, nil
			}
			return nil, nil
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verify: %v %+v", err, vs)
	}
	if !strings.Contains(strings.ToLower(strings.Join(vs[0].HeaderKeys, ":")), "from:from") {
		t.Errorf("From not oversigned: %v", vs[0].HeaderKeys)
	}
	for name, m := range map[string]*message.Message{
		"inbound":  mk("192.0.2.1", "alice@example.com"),
		"two From": msg("10.1.2.3", "c", "a@example.com", "From: a@example.com\r\nFrom: b@example.com\r\n\r\nx\r\n"),
	} {
		v := p.Run(context.Background(), m)
		for _, f := range v.Prepend {
			if f.Name == "DKIM-Signature" {
				t.Errorf("%s: signed", name)
			}
		}
	}
}

// recordDNS is a key-record DNS that changes while the watcher runs.
type recordDNS struct {
	mu  sync.Mutex
	txt map[string]string
}

func (d *recordDNS) set(name, v string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v == "" {
		delete(d.txt, name)
		return
	}
	d.txt[name] = v
}

func (d *recordDNS) LookupTXT(_ context.Context, n string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.txt[strings.TrimSuffix(n, ".")]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}

type keyStates struct {
	mu sync.Mutex
	m  map[string]sign.RecordState
}

func (k *keyStates) DKIMKeyState(key string, st sign.RecordState) {
	k.mu.Lock()
	k.m[key] = st
	k.mu.Unlock()
}
func (k *keyStates) DKIMSigned(string) {}

// TestKeyWatcher: a key whose record is missing does not sign; Check
// (what a reload runs) sees a record published since at once; a tick of
// the clock sees it withdrawn. The metric follows every state.
func TestKeyWatcher(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	k := &sign.Key{Name: "k1", Domain: "example.com", Selector: "s1", Signer: priv}
	txt, _ := sign.TXTRecord(priv.Public())
	dns := &recordDNS{txt: map[string]string{}}
	tick := make(chan time.Time)
	now := time.Unix(1_700_000_000, 0)
	m := &keyStates{m: map[string]sign.RecordState{}}
	w := &KeyWatcher{Tracker: sign.NewTracker(), Keys: []*sign.Key{k}, Resolver: dns, Metrics: m,
		Now: func() time.Time { return now }, Tick: tick}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w.Start(ctx)
	if st := w.Tracker.State("k1"); st.State != sign.RecordMissing || w.Tracker.Usable(k) || m.m["k1"] != sign.RecordMissing {
		t.Fatalf("at start: %+v (metric %s)", st, m.m["k1"])
	}
	dns.set("s1._domainkey.example.com", txt)
	w.Check(ctx) // the reload
	if st := w.Tracker.State("k1"); st.State != sign.RecordOK || !w.Tracker.Usable(k) || !st.Checked.Equal(now) {
		t.Fatalf("after the reload's check: %+v", st)
	}
	dns.set("s1._domainkey.example.com", "")
	tick <- now.Add(sign.CheckInterval) // the periodic check runs in the watcher's goroutine
	deadline := time.Now().Add(5 * time.Second)
	for w.Tracker.Usable(k) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := w.Tracker.State("k1"); st.State != sign.RecordMissing || st.Usable {
		t.Fatalf("after the tick: %+v", st)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m["k1"] != sign.RecordMissing {
		t.Errorf("metric %s", m.m["k1"])
	}
}
