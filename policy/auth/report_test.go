package auth

import (
	"context"
	"sync"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/rua"
)

type sink struct {
	mu  sync.Mutex
	got []rua.Observation
}

func (s *sink) Observe(o rua.Observation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, o)
	return true
}

// The dmarc check hands one report row per message whose policy names
// rua=, with the disposition of the final verdict.
func TestPipelineReportObservation(t *testing.T) {
	s := dnstest.Start(t,
		`_dmarc.rua.example. TXT "v=DMARC1; p=quarantine; sp=reject; rua=mailto:agg@rua.example,mailto:x@other.example!10m"`,
		`rua.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.norua.example. TXT "v=DMARC1; p=reject"`,
	)
	toml := "trusted_networks = []\nauthserv_id = \"mx.test\"\n[dns]\nservers = [\"" + s.Addr + "\"]\ntimeout = \"500ms\"\nattempts = 1\n"
	cfg, err := policy.Load("t.toml", []byte(toml), []policy.Module{dns.Section(), Module(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := dns.New(dns.ConfigOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	sk := &sink{}
	p, err := policy.New(cfg, []policy.Module{dns.Section(), Module(r, sk)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	v := p.Run(ctx, msg("198.51.100.1", "h.example", "a@rua.example", "From: a@sub.rua.example\nSubject: x\n\nbody\n"))
	if v.Action != policy.ActionReject {
		t.Fatalf("action %s", v.Action)
	}
	p.Run(ctx, msg("192.0.2.9", "h.example", "a@rua.example", "From: a@rua.example\nSubject: y\n\nbody\n"))
	p.Run(ctx, msg("198.51.100.1", "h.example", "a@norua.example", "From: a@norua.example\nSubject: z\n\nbody\n"))
	if len(sk.got) != 2 {
		t.Fatalf("observations: %+v", sk.got)
	}
	o := sk.got[0]
	if o.Policy.Domain != "rua.example" || o.Policy.P != rua.DispositionQuarantine || o.Policy.SP != rua.DispositionReject || len(o.Policy.RUA) != 2 {
		t.Errorf("policy %+v", o.Policy)
	}
	row := o.Row
	if row.SourceIP.String() != "198.51.100.1" || row.HeaderFrom != "sub.rua.example" || row.EnvelopeFrom != "rua.example" ||
		row.Disposition != rua.DispositionReject || row.DKIM != rua.ResultFail || row.SPF != rua.ResultFail {
		t.Errorf("row %+v", row)
	}
	if len(row.SPFAuth) != 1 || row.SPFAuth[0] != (rua.SPFAuth{Domain: "rua.example", Scope: rua.ScopeMFrom, Result: rua.SPFFail}) {
		t.Errorf("spf tuples %+v", row.SPFAuth)
	}
	if o.Subject != "x" || len(o.Recipients) == 0 || o.Time.IsZero() {
		t.Errorf("observation %+v", o)
	}
	pass := sk.got[1].Row
	if pass.SPF != rua.ResultPass || pass.Disposition != rua.DispositionNone || len(pass.Reasons) != 0 {
		t.Errorf("passing row %+v", pass)
	}
}
