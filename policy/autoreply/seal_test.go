package autoreply

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/message"
)

type txtMap map[string]string

func (t txtMap) LookupTXT(_ context.Context, n string) ([]string, error) {
	if v, ok := t[strings.TrimSuffix(n, ".")]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "nxdomain", Name: n, IsNotFound: true}
}

// TestSealForwards: inbound mail to an address Postfix forwards off-site
// gets our ARC set (AAR = our Authentication-Results), which verifies;
// mail to a plain mailbox, mail of ours and a verdict without the arc
// check's result get none.
func TestSealForwards(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := dkimkey.EncodePublic(key.Public())
	dns := txtMap{"arc._domainkey.example.org": "v=DKIM1; k=rsa; p=" + p}
	core := policy.DefaultConfig()
	core.AuthservID = "mx.example.org"
	core.LocalDomains = []string{"example.org"}
	fw, err := NewForwarders([]string{"fw@example.org"}, nil, nil, core.IsLocalDomain)
	if err != nil {
		t.Fatal(err)
	}
	s := &sealStep{core: core, fw: fw, sealer: &arc.Sealer{Domain: "example.org", Selector: "arc", Key: key}, now: func() time.Time { return time.Unix(1700000000, 0) }}
	h := message.Header{
		{Name: "Authentication-Results", Value: " mx.example.org;\n\tspf=pass smtp.mailfrom=a@origin.example;\n\tdkim=pass header.d=origin.example"},
		{Name: "From", Value: " a@origin.example"}, {Name: "To", Value: " fw@example.org"}, {Name: "Subject", Value: " hi"},
	}
	withARC := &policy.Verdict{Checks: []policy.CheckReport{{Name: auth.ARC, Result: policy.Result{Data: &arc.Verification{Result: arc.ResultNone}}}}}
	mk := func(ip, rcpt string) *message.Message {
		return &message.Message{Client: message.Client{Addr: netip.MustParseAddr(ip)}, Rcpts: []string{rcpt}, Header: h, Body: message.BytesBody("hello\r\n")}
	}
	set, err := s.Finish(context.Background(), mk("192.0.2.1", "fw@example.org"), h, withARC)
	if err != nil || len(set) != 3 || set[0].Name != arc.HeaderSeal || set[2].Name != arc.HeaderAuthResults {
		t.Fatalf("forwarded: %v %+v", err, set)
	}
	if !strings.Contains(set[2].Value, "i=1; mx.example.org; spf=pass") {
		t.Errorf("AAR %q", set[2].Value)
	}
	var fields []arc.Field
	for _, f := range append(append(message.Header{}, set...), h...) {
		fields = append(fields, arc.Field{Name: f.Name, Value: f.Value})
	}
	if v := arc.Verify(context.Background(), dns, fields, strings.NewReader("hello\r\n")); v.Result != arc.ResultPass {
		t.Errorf("our seal: %s (%v)", v.Result, v.Err)
	}
	for name, tc := range map[string]struct {
		m *message.Message
		v *policy.Verdict
	}{
		"plain mailbox":  {mk("192.0.2.1", "user@example.org"), withARC},
		"mail of ours":   {mk("127.0.0.1", "fw@example.org"), withARC},
		"no arc verdict": {mk("192.0.2.1", "fw@example.org"), &policy.Verdict{}},
	} {
		if set, err := s.Finish(context.Background(), tc.m, h, tc.v); err != nil || set != nil {
			t.Errorf("%s: sealed (%v)", name, err)
		}
	}
}
