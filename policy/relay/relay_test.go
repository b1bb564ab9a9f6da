package relay

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

type events map[string]int

func (events) CheckDone(string, policy.Status, time.Duration) {}
func (events) MessageDone(*policy.Verdict)                    {}
func (e events) Event(n string)                               { e[n]++ }

func core(t *testing.T) *policy.Config {
	t.Helper()
	cfg, err := policy.Load("t.toml", []byte(`local_domains = ["example.org", "intern.example.org"]
trusted_networks = ["10.0.0.0/8"]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func client(ip string) message.Client {
	if ip == "" {
		return message.Client{}
	}
	return message.Client{Addr: netip.MustParseAddr(ip)}
}

func TestGuard(t *testing.T) {
	cfg := core(t)
	c := Module().Default().(*Config)
	ev := events{}
	g := NewGuard(cfg, c, nil, ev)
	cases := []struct {
		name, ip, auth, rcpt string
		refuse               bool
	}{
		{"foreign to local", "192.0.2.1", "", "bob@example.org", false},
		{"foreign to local, case", "192.0.2.1", "", "bob@EXAMPLE.org.", false},
		{"foreign to outside", "192.0.2.1", "", "x@elsewhere.test", true},
		{"foreign to subdomain not listed", "192.0.2.1", "", "x@sub.example.org", true},
		{"authenticated to outside", "192.0.2.1", "alice", "x@elsewhere.test", false},
		{"trusted to outside", "10.1.2.3", "", "x@elsewhere.test", false},
		{"local submission", "", "", "x@elsewhere.test", false},
		{"ipv6 foreign", "2001:db8::1", "", "x@elsewhere.test", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := g.CheckRcpt(context.Background(), &message.Envelope{Client: client(tc.ip), Auth: tc.auth, MailFrom: "a@b.test"}, tc.rcpt)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Action == policy.ActionReject; got != tc.refuse {
				t.Fatalf("refused = %v, want %v (%+v)", got, tc.refuse, r)
			}
			if tc.refuse && (r.Reply.String() != "550 5.7.1 Relay access denied" || r.Reasons[0] != ReasonRelay || r.Status != StatusRelay) {
				t.Fatalf("bad refusal %+v", r)
			}
			m := &message.Message{Client: client(tc.ip), Auth: tc.auth, Rcpts: []string{"bob@example.org", tc.rcpt}}
			r2, _ := g.Check(context.Background(), m, nil)
			if got := r2.Action == policy.ActionReject; got != tc.refuse {
				t.Fatalf("end of message refused = %v, want %v", got, tc.refuse)
			}
		})
	}
	if ev[ReasonRelay] != 3 {
		t.Fatalf("relay events = %d, want 3", ev[ReasonRelay])
	}
	// Without local domains the guard refuses nothing.
	g2 := NewGuard(&policy.Config{}, c, nil, nil)
	if r, _ := g2.CheckRcpt(context.Background(), &message.Envelope{Client: client("192.0.2.1")}, "x@y.test"); r.Action != policy.ActionAccept {
		t.Fatal("guard without local_domains refused")
	}
}

func TestLocalOnly(t *testing.T) {
	cfg := core(t)
	c := LocalOnlyModule().Default().(*LocalOnlyConfig)
	c.Classes = []Class{
		{Name: "staff", Members: []string{"all-staff@example.org"}, RefuseInbound: true},
		{Name: "intern", Members: []string{"intern.example.org", "*-internal@example.org"}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	l := NewLocalOnly(cfg, c, nil, nil)
	cases := []struct {
		name, ip, from, rcpt string
		reason               string
	}{
		{"list to outside", "10.0.0.1", "all-staff@example.org", "x@gmail.test", ReasonLocalOnly},
		{"list to outside, case", "10.0.0.1", "All-Staff@Example.ORG", "x@gmail.test", ReasonLocalOnly},
		{"list to inside", "10.0.0.1", "all-staff@example.org", "bob@example.org", ""},
		{"domain member to outside", "10.0.0.1", "eve@intern.example.org", "x@gmail.test", ReasonLocalOnly},
		{"wildcard member to outside", "10.0.0.1", "hr-internal@example.org", "x@gmail.test", ReasonLocalOnly},
		{"normal user to outside", "10.0.0.1", "bob@example.org", "x@gmail.test", ""},
		{"outside to list", "192.0.2.1", "spam@evil.test", "all-staff@example.org", ReasonLocalOnlyInbound},
		{"inside to list", "10.0.0.1", "bob@example.org", "all-staff@example.org", ""},
		{"outside to intern (inbound allowed)", "192.0.2.1", "x@y.test", "eve@intern.example.org", ""},
		{"null sender to outside", "10.0.0.1", "", "x@gmail.test", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := l.CheckRcpt(context.Background(), &message.Envelope{Client: client(tc.ip), MailFrom: tc.from}, tc.rcpt)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r.Action != policy.ActionAccept {
				got = r.Reasons[0]
				if r.Reply.Code != 550 || r.Reply.Enhanced != "5.7.1" {
					t.Fatalf("reply %v", r.Reply)
				}
			}
			if got != tc.reason {
				t.Fatalf("reason %q, want %q", got, tc.reason)
			}
			r2, _ := l.Check(context.Background(), &message.Message{Client: client(tc.ip), MailFrom: tc.from, Rcpts: []string{tc.rcpt}}, nil)
			if (r2.Action != policy.ActionAccept) != (tc.reason != "") {
				t.Fatalf("end of message disagrees: %+v", r2)
			}
		})
	}
}

func TestConfigThroughLoad(t *testing.T) {
	mods := []policy.Module{Module(), LocalOnlyModule()}
	_, err := policy.Load("t.toml", []byte(`
local_domains = ["example.org"]
[[local_only.class]]
name = "staff"
members = []
`), mods)
	if err == nil {
		t.Fatal("empty class accepted")
	}
	cfg, err := policy.Load("t.toml", []byte(`
local_domains = ["example.org"]
[relay]
reply = "550 5.7.1 No relaying"
[[local_only.class]]
name = "staff"
members = ["all-staff@example.org"]
refuse_inbound = true
`), mods)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg, mods, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, reply, reasons := p.Rcpt(context.Background(), &message.Envelope{Client: client("192.0.2.9"), MailFrom: "a@b.test"}, "x@c.test")
	if a != policy.ActionReject || reply.String() != "550 5.7.1 No relaying" || reasons[0] != ReasonRelay {
		t.Fatalf("pipeline rcpt: %v %v %v", a, reply, reasons)
	}
	a, _, reasons = p.Rcpt(context.Background(), &message.Envelope{Client: client("192.0.2.9"), MailFrom: "a@b.test"}, "all-staff@example.org")
	if a != policy.ActionReject || reasons[len(reasons)-1] != ReasonLocalOnlyInbound {
		t.Fatalf("pipeline rcpt local-only: %v %v", a, reasons)
	}
	// local_only classes without local_domains are a build error.
	cfg2, err := policy.Load("t.toml", []byte("[[local_only.class]]\nname = \"x\"\nmembers = [\"a@b\"]\n"), mods)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policy.New(cfg2, mods, nil, nil, nil); err == nil {
		t.Fatal("local_only without local_domains built")
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("*@intern.example.org", "a@intern.example.org")
	f.Add("*.example.org", "a@b.example.org")
	f.Add("[", "x")
	f.Add("example.org", "noat")
	f.Fuzz(func(t *testing.T, p, a string) {
		Match([]string{p}, a)
	})
}
