package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/message"
)

// listWorld is a list hop of ours: the sealer "up.example" sealed i=1
// before the message reached us, we verified it on arrival (our
// Authentication-Results), the list changed it and re-injects it.
type listWorld struct {
	dns  *fakeDNS
	step *listSealStep
	up   *arc.Sealer
}

func newListWorld(t *testing.T) *listWorld {
	t.Helper()
	upKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ourKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dns := &fakeDNS{txt: map[string][]string{}}
	for _, k := range []struct {
		rec string
		key *rsa.PrivateKey
	}{{"u1._domainkey.up.example", upKey}, {"arc._domainkey.example.org", ourKey}} {
		_, p, _ := dkimkey.EncodePublic(k.key.Public())
		dns.txt[k.rec] = []string{"v=DKIM1; k=rsa; p=" + p}
	}
	core := policy.DefaultConfig()
	core.AuthservID = "mx.example.org"
	core.TrustedNetworks = policy.Networks{policy.Prefix(netip.MustParsePrefix("127.0.0.0/8"))}
	cfg := DefaultConfig()
	cfg.ARC.SealKey = "seal"
	cfg.ARC.ListServers = policy.Networks{policy.Prefix(netip.MustParsePrefix("127.0.0.1/32"))}
	cfg.ARC.ListServerUsers = []string{"mailman"}
	cfg.ARC.ListServerDaemons = []string{"LISTS"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &listWorld{
		dns: dns,
		up:  &arc.Sealer{Domain: "up.example", Selector: "u1", Key: upKey},
		step: &listSealStep{core: core, arc: &cfg.ARC, keys: dns,
			sealer: &arc.Sealer{Domain: "example.org", Selector: "arc", Key: ourKey},
			now:    func() time.Time { return time.Unix(1700000000, 0) }},
	}
}

const listPost = "From: Alice <alice@origin.example>\r\nTo: list@example.org\r\nSubject: hi\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <1@origin.example>\r\n\r\nHello list\r\n"

// arrived returns the post sealed by up.example, as the list receives it
// from us: our Authentication-Results (arrival) on top.
func (w *listWorld) arrived(t *testing.T, arrival string) string {
	t.Helper()
	h, body, err := arc.ReadMessage(strings.NewReader(listPost))
	if err != nil {
		t.Fatal(err)
	}
	set, err := w.up.Seal(h, body, nil, "up.example; dkim=pass header.d=origin.example", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if arrival != "" {
		b.WriteString("Authentication-Results: " + arrival + "\r\n")
	}
	for _, f := range set {
		b.WriteString(f.Name + ":" + strings.ReplaceAll(f.Value, "\n", "\r\n") + "\r\n")
	}
	return b.String() + listPost
}

// listed is what the list re-injects: a Subject tag and a footer.
func listed(m string) string {
	return strings.Replace(m, "Subject: hi", "Subject: [list] hi", 1) + "-- \r\nlist footer\r\n"
}

// reinject runs the arc check and the step on raw from client ip (SASL
// user auth) the way the pipeline does, and returns the message as it
// leaves (our set on top, this hop's Authentication-Results below it).
func (w *listWorld) reinject(t *testing.T, raw, ip, auth string, daemon ...string) (string, []message.Field) {
	t.Helper()
	_, body, _ := strings.Cut(raw, "\r\n\r\n")
	m := msg(ip, "list.example.org", "list-bounces@example.org", raw)
	m.Auth = auth
	if len(daemon) > 0 {
		m.Macros = map[string]string{"daemon_name": daemon[0]}
	}
	fields := make([]arc.Field, len(m.Header))
	for i, f := range m.Header {
		fields[i] = arc.Field{Name: f.Name, Value: f.Value}
	}
	hop := arc.Verify(context.Background(), w.dns, fields, m.BodyReader())
	v := &policy.Verdict{Checks: []policy.CheckReport{{Name: ARC, Result: policy.Result{Data: hop}}}}
	// The pipeline: our A-R of this hop on top, the arrival one (our
	// authserv-id) removed.
	out := message.Header{{Name: "Authentication-Results", Value: " mx.example.org; arc=" + string(hop.Result) + " smtp.remote-ip=" + ip}}
	for _, f := range m.Header {
		if f.Name == "Authentication-Results" {
			continue
		}
		out = append(out, f)
	}
	set, err := w.step.Finish(context.Background(), m, out, v)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range append(set, out...) {
		b.WriteString(f.Name + ":" + strings.ReplaceAll(f.Value, "\n", "\r\n") + "\r\n")
	}
	return b.String() + "\r\n" + body, set
}

func (w *listWorld) verify(t *testing.T, raw string) *arc.Verification {
	t.Helper()
	h, body, err := arc.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return arc.Verify(context.Background(), w.dns, h, body)
}

func seal(set []message.Field) (cv, aar string) {
	for _, f := range set {
		switch f.Name {
		case arc.HeaderSeal:
			_, cv, _ = strings.Cut(f.Value, "cv=")
			cv, _, _ = strings.Cut(cv, ";")
		case arc.HeaderAuthResults:
			aar = strings.Join(strings.Fields(message.Unfold(f.Value)), " ")
		}
	}
	return cv, aar
}

// TestListSeal: a list re-injection is sealed with the results we found
// when the list received the message, cv= after the chain status then:
// the list's changes broke the newest AMS, our seal vouches for it, and
// the whole chain verifies (oldest-pass 2).
func TestListSeal(t *testing.T) {
	w := newListWorld(t)
	const arrival = "mx.example.org; spf=pass smtp.mailfrom=alice@origin.example; dkim=pass header.d=origin.example; arc=pass smtp.remote-ip=192.0.2.1"
	raw := listed(w.arrived(t, arrival))
	if v := w.verify(t, raw); v.Result != arc.ResultFail {
		t.Fatalf("the list's change should break the chain: %s", v.Result)
	}
	for _, c := range []struct{ ip, auth, daemon string }{{"127.0.0.1", "", ""}, {"192.0.2.50", "mailman", ""}, {"127.0.0.9", "", "lists"}} {
		out, set := w.reinject(t, raw, c.ip, c.auth, c.daemon)
		cv, aar := seal(set)
		if len(set) != 3 || cv != "pass" {
			t.Fatalf("%s %q: set %+v", c.ip, c.auth, set)
		}
		if aar != "i=2; "+arrival {
			t.Errorf("AAR %q, want the arrival results", aar)
		}
		if v := w.verify(t, out); v.Result != arc.ResultPass || v.OldestPass != 2 || v.Sets[1].Seal.Domain != "example.org" {
			t.Errorf("resealed chain: %s oldest-pass=%d (%v)", v.Result, v.OldestPass, v.Err)
		}
	}
	// Not a list server: not ours to seal here.
	if _, set := w.reinject(t, raw, "192.0.2.50", ""); set != nil {
		t.Errorf("sealed mail of another client: %+v", set)
	}
	if _, set := w.reinject(t, raw, "127.0.0.2", "alice"); set != nil {
		t.Errorf("sealed mail of another SASL user: %+v", set)
	}
	if _, set := w.reinject(t, raw, "127.0.0.2", "", "ORIGINATING"); set != nil {
		t.Errorf("sealed mail of another listener: %+v", set)
	}
}

// TestListSealChainStatus: the cv= of our seal per arrival record.
func TestListSealChainStatus(t *testing.T) {
	w := newListWorld(t)
	const id = "mx.example.org; dkim=pass header.d=origin.example; "
	for _, tc := range []struct {
		name, arrival string
		change        func(string) string
		cv            string // "" no seal
		result        arc.Result
	}{
		{"arrival fail: cv=fail", id + "arc=fail", listed, "fail", arc.ResultFail},
		{"arrival temperror: unsealed", id + "arc=temperror", listed, "", ""},
		{"no arc= recorded: unsealed", id + "spf=pass smtp.mailfrom=a@b.example", listed, "", ""},
		{"list changed nothing: as verified now", id + "arc=pass", func(s string) string { return s }, "pass", arc.ResultPass},
		{"the list changed an ARC field: cv=fail", id + "arc=pass", func(s string) string {
			return listed(strings.Replace(s, "i=1; up.example; dkim=pass", "i=1; up.example; dkim=fail", 1))
		}, "fail", arc.ResultFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.change(w.arrived(t, tc.arrival))
			out, set := w.reinject(t, raw, "127.0.0.1", "")
			cv, aar := seal(set)
			if cv != tc.cv {
				t.Fatalf("cv=%q, want %q (%+v)", cv, tc.cv, set)
			}
			if set == nil {
				return
			}
			if aar != "i=2; "+tc.arrival {
				t.Errorf("AAR %q", aar)
			}
			if v := w.verify(t, out); v.Result != tc.result {
				t.Errorf("after our seal: %s (%v), want %s", v.Result, v.Err, tc.result)
			}
		})
	}
}

// TestListSealWithoutArrival: a list's own notice (never arrived through
// us) is sealed with this hop's results and chain status.
func TestListSealWithoutArrival(t *testing.T) {
	w := newListWorld(t)
	out, set := w.reinject(t, listPost, "127.0.0.1", "")
	cv, aar := seal(set)
	if cv != "none" || aar != "i=1; mx.example.org; arc=none smtp.remote-ip=127.0.0.1" {
		t.Fatalf("cv=%q AAR %q", cv, aar)
	}
	if v := w.verify(t, out); v.Result != arc.ResultPass {
		t.Errorf("our chain: %s (%v)", v.Result, v.Err)
	}
}

func TestArrivalResults(t *testing.T) {
	h := message.Header{
		{Name: "Received", Value: " from list"},
		{Name: "Authentication-Results", Value: " other.example; spf=fail"},
		{Name: "authentication-results", Value: " MX.example.org.;\n\tspf=pass smtp.mailfrom=a@b.example;\n\tarc=pass"},
		{Name: "Authentication-Results", Value: " mx.example.org; arc=fail"},
	}
	got, ok := ArrivalResults(h, "mx.example.org")
	if !ok || got != "MX.example.org.; spf=pass smtp.mailfrom=a@b.example; arc=pass" {
		t.Errorf("ArrivalResults = %q %v", got, ok)
	}
	if _, ok := ArrivalResults(h[:2], "mx.example.org"); ok {
		t.Error("found another authserv-id's results")
	}
	for payload, want := range map[string]arc.Result{
		got:                            arc.ResultPass,
		"x; ARC=Fail smtp.remote-ip=1": arc.ResultFail,
		"x; spf=pass":                  "",
		"x; arcx=pass":                 "",
		"x":                            "",
	} {
		if r := ARCResultOf(payload); r != want {
			t.Errorf("ARCResultOf(%q) = %q, want %q", payload, r, want)
		}
	}
}

func TestListServersNeedSealKey(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ARC.ListServerUsers = []string{"mailman"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "seal_key") {
		t.Errorf("list_server_users without seal_key: %v", err)
	}
	cfg = DefaultConfig()
	cfg.ARC.ListServerDaemons = []string{"LISTS"}
	cfg.ARC.SealKey = "seal"
	cfg.ARC.Enabled = false
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "arc.enabled") {
		t.Errorf("list_server_daemons without the arc check: %v", err)
	}
}
