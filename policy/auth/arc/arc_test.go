package arc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
)

// RFC 6376 §3.4.6 example, and the edge cases of §3.4.3 and §3.4.4.
func TestBodyCanon(t *testing.T) {
	for _, tc := range []struct {
		in            string
		simple, relax string
	}{
		{" C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", " C\r\nD E\r\n"},
		{"", "\r\n", ""},
		{"\r\n\r\n", "\r\n", ""},
		{"a", "a\r\n", "a\r\n"},
		{"a\n\nb\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
		{"a  \t\n \n", "a  \t\r\n \r\n", "a\r\n"},
		{"x\r\n   ", "x\r\n   \r\n", "x\r\n"},
	} {
		for _, c := range []struct {
			canon Canon
			want  string
		}{{CanonSimple, tc.simple}, {CanonRelaxed, tc.relax}} {
			// Byte by byte, to exercise the streaming state.
			var out bytes.Buffer
			w := newBodyCanon(c.canon, &out, -1)
			for i := 0; i < len(tc.in); i++ {
				w.Write([]byte{tc.in[i]})
			}
			w.Close()
			if out.String() != c.want {
				t.Errorf("%s(%q) = %q, want %q", c.canon, tc.in, out.String(), c.want)
			}
		}
	}
	var out bytes.Buffer
	w := newBodyCanon(CanonRelaxed, &out, 3)
	w.Write([]byte("abcdef\r\n"))
	w.Close()
	if out.String() != "abc" {
		t.Errorf("l=3 gave %q", out.String())
	}
}

func TestHeaderCanon(t *testing.T) {
	for _, tc := range []struct {
		c           Canon
		name, value string
		want        string
	}{
		{CanonRelaxed, "A", " X\r\n", "a:X\r\n"},
		{CanonRelaxed, "B ", " Y\t\r\n\tZ  ", "b:Y Z\r\n"},
		{CanonRelaxed, "SubJect", "\tfoo   bar\n baz ", "subject:foo bar baz\r\n"},
		{CanonSimple, "SubJect", " foo\n bar", "SubJect: foo\r\n bar\r\n"},
	} {
		if got := canonHeader(tc.c, tc.name, tc.value); got != tc.want {
			t.Errorf("%s %q %q = %q, want %q", tc.c, tc.name, tc.value, got, tc.want)
		}
	}
}

func TestStripB(t *testing.T) {
	for in, want := range map[string]string{
		" a=x; b=abc\r\n def; c=y":  " a=x; b=; c=y",
		" b = zzz ;bh=keep":         " b =;bh=keep",
		" a=1; b=end":               " a=1; b=",
		" bh=x; b=y":                " bh=x; b=",
		" a=1":                      " a=1",
		" a=b=c; b=1;":              " a=b=c; b=;",
		"":                          "",
		"b":                         "b",
		" b=\r\n  QUJD\r\n  REVG==": " b=",
	} {
		if got := stripB(in); got != want {
			t.Errorf("stripB(%q) = %q, want %q", in, got, want)
		}
	}
}

var (
	keyOnce         sync.Once
	rsaKey, rsaKey2 *rsa.PrivateKey
)

func genKeys() {
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
	})
}

func testRSA(t testing.TB) *rsa.PrivateKey  { genKeys(); return rsaKey }
func testRSA2(t testing.TB) *rsa.PrivateKey { genKeys(); return rsaKey2 }

func publish(t testing.TB, dns *fakeDNS, sel, domain string, pub crypto.PublicKey) {
	kt, p, err := dkimkey.EncodePublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	dns.txt[strings.ToLower(dkimkey.RecordName(sel, domain))] = []string{"v=DKIM1; k=" + string(kt) + "; p=" + p}
}

const plainMsg = "From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello\r\n"

// hop verifies msg as it arrives, lets the hop change it (a list adding
// a Subject tag), seals it as sealer and returns the new message text.
func hop(t testing.TB, dns *fakeDNS, s *Sealer, msg string, change ...func(string) string) (string, *Verification) {
	t.Helper()
	h, body := parse(t, msg)
	v := Verify(context.Background(), dns, h, body)
	for _, c := range change {
		msg = c(msg)
	}
	h, body = parse(t, msg)
	bt, _ := readAllString(body)
	set, err := s.Seal(h, strings.NewReader(bt), v, s.Domain+"; arc="+string(v.Result), time.Unix(1700000000, 0))
	if err != nil {
		t.Fatalf("seal by %s: %v", s.Domain, err)
	}
	var b strings.Builder
	for _, f := range append(set, h...) {
		b.WriteString(f.Name + ":" + strings.ReplaceAll(toCRLF(f.Value), "\r\n", "\n") + "\n")
	}
	return b.String() + "\n" + bt, v
}

func verifyText(t *testing.T, dns *fakeDNS, msg string) *Verification {
	t.Helper()
	h, body := parse(t, msg)
	return Verify(context.Background(), dns, h, body)
}

// TestChainOfHops: three hops pass; a hop that
// changes the Subject breaks the AMS before it, which only moves
// oldest-pass; a change after the last seal fails the chain.
func TestChainOfHops(t *testing.T) {
	dns := newDNS(nil)
	a := &Sealer{Domain: "a.example", Selector: "s1", Key: testRSA(t)}
	b := &Sealer{Domain: "b.example", Selector: "s2", Key: testRSA2(t)}
	c := &Sealer{Domain: "c.example", Selector: "s1", Key: testRSA(t)}
	publish(t, dns, "s1", "a.example", testRSA(t).Public())
	publish(t, dns, "s2", "b.example", testRSA2(t).Public())
	publish(t, dns, "s1", "c.example", testRSA(t).Public())

	m1, v0 := hop(t, dns, a, plainMsg)
	if v0.Result != ResultNone {
		t.Fatalf("unsealed message: %s", v0.Result)
	}
	m2, v1 := hop(t, dns, b, m1)
	if v1.Result != ResultPass || v1.OldestPass != 0 {
		t.Fatalf("after a: %s oldest=%d (%v)", v1.Result, v1.OldestPass, v1.Err)
	}
	// A list hop rewrites the Subject, then seals.
	m2 = strings.Replace(m2, "Subject: hi", "Subject: [list] hi", 1)
	m3, v2 := hop(t, dns, c, m2)
	if v2.Result != ResultFail || !errors.Is(v2.Err, ErrSignature) {
		t.Fatalf("subject changed after seal 2: %s (%v), want fail", v2.Result, v2.Err)
	}
	// c sealed a failed chain with cv=fail; the result is fail and no
	// one may add a set.
	v3 := verifyText(t, dns, m3)
	if v3.Result != ResultFail || !errors.Is(v3.Err, ErrChainFailed) {
		t.Fatalf("after c: %s (%v)", v3.Result, v3.Err)
	}
	h, body := parse(t, m3)
	if _, err := a.Seal(h, body, v3, "a.example; arc=fail", time.Unix(1700000000, 0)); !errors.Is(err, ErrChainFailed) {
		t.Errorf("sealing a cv=fail chain: %v", err)
	}

	// The list verifies, changes the Subject, then seals: AMS 1 breaks,
	// AMS 2 holds, so the chain passes with oldest-pass 2.
	m3b, _ := hop(t, dns, b, m1, func(m string) string { return strings.Replace(m, "Subject: hi", "Subject: [list] hi", 1) })
	v := verifyText(t, dns, m3b)
	if v.Result != ResultPass || v.OldestPass != 2 {
		t.Fatalf("list hop: %s oldest-pass=%d (%v), want pass 2", v.Result, v.OldestPass, v.Err)
	}
	if v.Sets[1].Seal.Domain != "b.example" || v.Sets[1].AuthServID != "b.example" || v.Sets[1].AuthResults != "b.example; arc=pass" {
		t.Errorf("set 2 = %+v", v.Sets[1])
	}
}

func TestTemporaryKeyFailure(t *testing.T) {
	dns := newDNS(nil)
	s := &Sealer{Domain: "a.example", Selector: "s1", Key: testRSA(t)}
	publish(t, dns, "s1", "a.example", testRSA(t).Public())
	m, _ := hop(t, dns, s, plainMsg)
	dns.temp["s1._domainkey.a.example"] = true
	v := verifyText(t, dns, m)
	if v.Result != ResultTempError || !dkimkey.IsTemporary(v.Err) {
		t.Fatalf("got %s (%v), want temperror", v.Result, v.Err)
	}
	h, body := parse(t, m)
	if _, err := s.Seal(h, body, v, "x; arc=temperror", time.Unix(1, 0)); err == nil {
		t.Error("sealed a chain of unknown status")
	}
	delete(dns.temp, "s1._domainkey.a.example")
	delete(dns.txt, "s1._domainkey.a.example")
	if v := verifyText(t, dns, m); v.Result != ResultFail || !errors.Is(v.Err, ErrKey) {
		t.Errorf("missing key: %s (%v), want fail", v.Result, v.Err)
	}
}

// TestFiftySets: 50 sets verify; a 51st is refused by Seal; a message
// claiming i=51 fails.
func TestFiftySets(t *testing.T) {
	dns := newDNS(nil)
	s := &Sealer{Domain: "a.example", Selector: "s1", Key: testRSA(t)}
	publish(t, dns, "s1", "a.example", testRSA(t).Public())
	m := plainMsg
	for range MaxSets {
		m, _ = hop(t, dns, s, m)
	}
	v := verifyText(t, dns, m)
	if v.Result != ResultPass || v.N() != MaxSets {
		t.Fatalf("50 sets: %s N=%d (%v)", v.Result, v.N(), v.Err)
	}
	h, body := parse(t, m)
	if _, err := s.Seal(h, body, v, "a.example; arc=pass", time.Unix(1, 0)); !errors.Is(err, ErrTooManySets) {
		t.Errorf("51st set: %v", err)
	}
	flood := strings.Repeat("ARC-Authentication-Results: i=1; x; arc=none\r\n", 3*MaxSets+1) + plainMsg
	if v := verifyText(t, dns, flood); v.Result != ResultFail || !errors.Is(v.Err, ErrStructure) {
		t.Errorf("151 ARC fields: %s (%v)", v.Result, v.Err)
	}
	bad := "ARC-Authentication-Results: i=51; x; arc=pass\r\n" + m
	if v := verifyText(t, dns, bad); v.Result != ResultFail {
		t.Errorf("i=51: %s", v.Result)
	}
}

func TestSealerErrors(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	h, body := parse(t, plainMsg)
	for _, s := range []*Sealer{
		nil,
		{Domain: "a.example", Selector: "s"},
		{Domain: "", Selector: "s", Key: testRSA(t)},
		{Domain: "a..example", Selector: "s", Key: testRSA(t)},
		{Domain: "a.example", Selector: "s", Key: edKey},
	} {
		if _, err := s.Seal(h, body, nil, "x", time.Unix(1, 0)); !errors.Is(err, ErrSealKey) {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// TestTrustedAndResults: the walk from the newest set stops at the first
// untrusted sealer; an AAR gives back typed results; the A-R entry says
// arc=pass with oldest-pass.
func TestTrustedAndResults(t *testing.T) {
	dns := newDNS(nil)
	a := &Sealer{Domain: "a.example", Selector: "s1", Key: testRSA(t)}
	b := &Sealer{Domain: "b.example", Selector: "s2", Key: testRSA2(t)}
	publish(t, dns, "s1", "a.example", testRSA(t).Public())
	publish(t, dns, "s2", "b.example", testRSA2(t).Public())
	h, body := parse(t, plainMsg)
	set, err := a.Seal(h, body, nil, "a.example; spf=pass smtp.mailfrom=x@origin.example; dkim=pass header.d=origin.example; dmarc=pass header.from=origin.example", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, f := range append(set, h...) {
		sb.WriteString(f.Name + ":" + f.Value + "\r\n")
	}
	_, bt, _ := strings.Cut(plainMsg, "\r\n\r\n")
	m := sb.String() + "\r\n" + bt
	m, _ = hop(t, dns, b, m, func(m string) string { return strings.Replace(m, "Subject: hi", "Subject: [l] hi", 1) })
	v := verifyText(t, dns, m)
	if v.Result != ResultPass || v.OldestPass != 2 {
		t.Fatalf("%s %d %v", v.Result, v.OldestPass, v.Err)
	}
	trust := func(list ...string) func(string) bool {
		return func(d string) bool {
			for _, x := range list {
				if x == d {
					return true
				}
			}
			return false
		}
	}
	if got := v.Trusted(trust("a.example")); got != nil {
		t.Errorf("newest sealer untrusted, got %d sets", len(got))
	}
	if got := v.Trusted(trust("b.example")); len(got) != 1 || got[0].Instance != 2 {
		t.Errorf("only b trusted: %+v", got)
	}
	got := v.Trusted(trust("a.example", "b.example"))
	if len(got) != 2 || got[1].Instance != 1 {
		t.Fatalf("both trusted: %+v", got)
	}
	rs, err := got[1].Results()
	if err != nil || len(rs) != 3 {
		t.Fatalf("AAR 1 results %v %v", rs, err)
	}
	if d, ok := rs[1].(*authres.DKIMResult); !ok || d.Value != authres.ResultPass || d.Domain != "origin.example" {
		t.Errorf("dkim result %#v", rs[1])
	}
	if f := authres.Format("mx.example", []authres.Result{v.AuthResult("192.0.2.1")}); !strings.Contains(f, "arc=pass") || !strings.Contains(f, "header.oldest-pass=2") {
		t.Errorf("A-R %q", f)
	}
	if (&Verification{Result: ResultFail}).Trusted(trust("a.example")) != nil {
		t.Error("a failed chain gave trusted sets")
	}
}

func TestAlignedPass(t *testing.T) {
	exact := func(d, from string) bool { return d == from }
	set := func(i int, sealer, aar string) Set {
		return Set{Instance: i, Seal: Signer{Domain: sealer}, AuthResults: aar}
	}
	for _, tc := range []struct {
		name   string
		sets   []Set
		from   string
		method string
		ok     bool
	}{
		{"dkim aligned", []Set{set(2, "list.example", "list.example; dkim=pass header.d=origin.example; spf=fail smtp.mailfrom=x@origin.example")}, "origin.example", "dkim", true},
		{"spf aligned in older set", []Set{set(2, "b.example", "b.example; dkim=fail header.d=origin.example"), set(1, "a.example", "a.example; spf=pass smtp.mailfrom=bounce@origin.example")}, "origin.example", "spf", true},
		{"dmarc pass", []Set{set(1, "a.example", "a.example; dmarc=pass header.from=Origin.example")}, "origin.example", "dmarc", true},
		{"pass not aligned", []Set{set(1, "a.example", "a.example; dkim=pass header.d=list.example; spf=pass smtp.mailfrom=l@list.example")}, "origin.example", "", false},
		{"fail", []Set{set(1, "a.example", "a.example; dkim=fail header.d=origin.example")}, "origin.example", "", false},
		{"garbage AAR", []Set{set(1, "a.example", ";;;")}, "origin.example", "", false},
		{"no sets", nil, "origin.example", "", false},
	} {
		ev, ok := AlignedPass(tc.sets, tc.from, exact)
		if ok != tc.ok || ev.Method != tc.method {
			t.Errorf("%s: %+v %v", tc.name, ev, ok)
		}
	}
}

// TestVerifySealsListHop: a list of ours changes the Subject and the
// body of a sealed message after we verified it; Verify now fails on the
// AMS, VerifySeals still passes (the seals sign only ARC fields), and a
// set sealed on its word verifies as a whole (oldest-pass 2). A changed
// ARC field, a missing key or a temporary DNS failure are caught.
func TestVerifySealsListHop(t *testing.T) {
	dns := newDNS(nil)
	a := &Sealer{Domain: "a.example", Selector: "s1", Key: testRSA(t)}
	we := &Sealer{Domain: "we.example", Selector: "s2", Key: testRSA2(t)}
	publish(t, dns, "s1", "a.example", testRSA(t).Public())
	publish(t, dns, "s2", "we.example", testRSA2(t).Public())

	m1, _ := hop(t, dns, a, plainMsg)
	if v := verifyText(t, dns, m1); v.Result != ResultPass {
		t.Fatalf("on arrival: %s (%v)", v.Result, v.Err)
	}
	listed := strings.Replace(m1, "Subject: hi", "Subject: [list] hi", 1) + "-- \r\nthe list footer\r\n"
	if v := verifyText(t, dns, listed); v.Result != ResultFail || !errors.Is(v.Err, ErrBodyHash) && !errors.Is(v.Err, ErrSignature) {
		t.Fatalf("after the list: %s (%v), want an AMS failure", v.Result, v.Err)
	}
	h, body := parse(t, listed)
	vs := VerifySeals(context.Background(), dns, h)
	if vs.Result != ResultPass || vs.N() != 1 || vs.Highest != 1 || vs.Sets[0].Seal.Domain != "a.example" {
		t.Fatalf("VerifySeals: %s N=%d (%v)", vs.Result, vs.N(), vs.Err)
	}
	bt, _ := readAllString(body)
	set, err := we.Seal(h, strings.NewReader(bt), vs, "we.example; arc=pass", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(set[0].Value, "cv=pass") || !strings.Contains(set[0].Value, "i=2") {
		t.Fatalf("our seal: %s", set[0].Value)
	}
	var b strings.Builder
	for _, f := range append(set, h...) {
		b.WriteString(f.Name + ":" + strings.ReplaceAll(toCRLF(f.Value), "\r\n", "\n") + "\n")
	}
	if v := verifyText(t, dns, b.String()+"\n"+bt); v.Result != ResultPass || v.OldestPass != 2 {
		t.Fatalf("resealed: %s oldest-pass=%d (%v), want pass 2", v.Result, v.OldestPass, v.Err)
	}

	if vs := VerifySeals(context.Background(), dns, nil); vs.Result != ResultNone {
		t.Errorf("no ARC fields: %s", vs.Result)
	}
	forged := strings.Replace(listed, "i=1; a.example; arc=none", "i=1; a.example; arc=pass", 1)
	if forged == listed {
		t.Fatal("the test's AAR edit did not apply")
	}
	h, _ = parse(t, forged)
	if vs := VerifySeals(context.Background(), dns, h); vs.Result != ResultFail || !errors.Is(vs.Err, ErrSignature) {
		t.Errorf("changed AAR: %s (%v), want fail", vs.Result, vs.Err)
	}
	h, _ = parse(t, listed)
	dns.temp["s1._domainkey.a.example"] = true
	if vs := VerifySeals(context.Background(), dns, h); vs.Result != ResultTempError {
		t.Errorf("temporary DNS failure: %s (%v)", vs.Result, vs.Err)
	}
	delete(dns.temp, "s1._domainkey.a.example")
	delete(dns.txt, "s1._domainkey.a.example")
	if vs := VerifySeals(context.Background(), dns, h); vs.Result != ResultFail || !errors.Is(vs.Err, ErrKey) {
		t.Errorf("missing key: %s (%v)", vs.Result, vs.Err)
	}
}

// TestReportComment: the chain for a DMARC report's local_policy comment
// (RFC 8617 §7.2.1), newest seal first, the first sealer's client.
func TestReportComment(t *testing.T) {
	v := &Verification{Result: ResultPass, Sets: []Set{
		{Instance: 1, Seal: Signer{Domain: "Fwd.example", Selector: "f1"}, AuthResults: "mx.fwd.example; spf=pass smtp.mailfrom=a@b.example; arc=none smtp.remote-ip=2001:db8::1"},
		{Instance: 2, Seal: Signer{Domain: "list.example", Selector: "l1"}, AuthResults: "list.example; dkim=pass header.d=b.example"},
	}}
	if got, want := v.ReportComment(), "arc=pass as[2].d=list.example as[2].s=l1 as[1].d=fwd.example as[1].s=f1 client-ip[1]=2001:db8::1"; got != want {
		t.Errorf("ReportComment = %q\nwant %q", got, want)
	}
	v.Sets[0].AuthResults = "mx.fwd.example; spf=pass smtp.remote-ip=not-an-ip"
	if got := v.ReportComment(); strings.Contains(got, "client-ip") {
		t.Errorf("a bad address was reported: %q", got)
	}
}
