package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/rua"
)

// TestARCOverride: a p=reject sender's message, DKIM-signed, goes through
// a list that records dkim=pass in its AAR, changes the Subject (the
// signature breaks) and seals. Our arc check passes the chain; DMARC
// fails; with the list in trusted_sealers the reject is relaxed
// (dmarc-arc-override, policy.arc-override in Authentication-Results),
// without it the message is rejected.
func TestARCOverride(t *testing.T) {
	s := dnstest.Start(t, `_dmarc.origin.example TXT "v=DMARC1; p=reject"`)
	origin := newSigner(t, s, "origin.example", "o1")
	listKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := dkimkey.EncodePublic(listKey.Public())
	s.AddTXT("l1._domainkey.list.example", 300, "v=DKIM1; k=rsa; p="+p[:200], p[200:])

	signed := origin.sign(t, "From: Alice <alice@origin.example>\r\nTo: list@list.example\r\nSubject: hi\r\n\r\nhello\r\n")
	changed := strings.Replace(signed, "Subject: hi", "Subject: [list] hi", 1)
	h, body, err := arc.ReadMessage(strings.NewReader(changed))
	if err != nil {
		t.Fatal(err)
	}
	sealer := &arc.Sealer{Domain: "list.example", Selector: "l1", Key: listKey}
	set, err := sealer.Seal(h, body, nil, "list.example; dkim=pass header.d=origin.example; spf=pass smtp.mailfrom=alice@origin.example; dmarc=pass header.from=origin.example", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range append(set, h...) {
		b.WriteString(f.Name + ":" + f.Value + "\n")
	}
	_, bodyText, _ := strings.Cut(changed, "\r\n\r\n")
	raw := b.String() + "\n" + bodyText

	for _, tc := range []struct {
		trusted []string
		action  policy.Action
		reason  string
	}{
		{[]string{"list.example"}, policy.ActionAccept, "dmarc-arc-override"},
		{nil, policy.ActionReject, "dmarc-reject"},
		{[]string{"other.example"}, policy.ActionReject, "dmarc-reject"},
	} {
		cfg := DefaultConfig()
		cfg.ARC.TrustedSealers = tc.trusted
		w := newWorldCfg(t, s, cfg)
		m := msg("192.0.2.77", "mx.list.example", "bounces@list.example", raw)
		r := w.run(m)
		if st := status(r, ARC); st != "pass" {
			t.Fatalf("arc: %s (%s)", st, r[ARC].Detail)
		}
		if f := authres.Format("mx.test", r[ARC].AuthResults); !strings.Contains(f, "arc=pass") {
			t.Errorf("arc A-R %q", f)
		}
		d := r[DMARC]
		if d.Status != StatusFail || d.Action != tc.action || !contains(d.Reasons, tc.reason) {
			t.Errorf("trusted=%v: dmarc %s action %s reasons %v (%s)", tc.trusted, d.Status, d.Action, d.Reasons, d.Detail)
		}
		f := authres.Format("mx.test", d.AuthResults)
		override := tc.action == policy.ActionAccept
		if strings.Contains(f, "policy.arc-override=list.example") != override {
			t.Errorf("trusted=%v: dmarc A-R %q", tc.trusted, f)
		}
		// The aggregate report row (RFC 8617 §7.2.1): local_policy with
		// the chain as comment when relaxed; a refusal carries no reason.
		o := d.Data.(*DMARCOutcome)
		act := tc.action
		obs := reportObservation(m, &policy.Verdict{Action: act}, o, nil, nil, time.Unix(1700000000, 0))
		want := []rua.Reason(nil)
		if override {
			want = []rua.Reason{{Type: rua.OverrideLocalPolicy, Comment: "arc=pass as[1].d=list.example as[1].s=l1"}}
		}
		if !reflect.DeepEqual(obs.Row.Reasons, want) || obs.Row.DKIM != rua.ResultFail {
			t.Errorf("trusted=%v: report row reasons %+v dkim %s, want %+v", tc.trusted, obs.Row.Reasons, obs.Row.DKIM, want)
		}
	}
}
