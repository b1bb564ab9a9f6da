package arc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzVerify feeds hostile messages through ReadMessage and Verify: no
// panic, and a result from the RFC 8617 vocabulary.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(plainMsg))
	f.Add([]byte("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=a.example; s=s; b=QUJD\r\nARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=a.example; s=s; h=from:to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=QUJD\r\nARC-Authentication-Results: i=1; a.example; spf=pass\r\nFrom: x\r\n\r\nbody\r\n"))
	f.Add([]byte("ARC-Seal: i=2; cv=fail\r\n\r\n"))
	f.Add([]byte("ARC-Authentication-Results: i=1\r\n\r\n"))
	f.Add([]byte(" cont\r\n"))
	dns := newDNS(map[string]string{"s._domainkey.a.example": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"})
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, body, err := ReadMessage(bytes.NewReader(msg))
		if err != nil {
			return
		}
		v := Verify(context.Background(), dns, h, body)
		switch v.Result {
		case ResultNone, ResultPass, ResultFail, ResultTempError:
		default:
			t.Fatalf("result %q", v.Result)
		}
		if v.Result == ResultPass && v.N() == 0 {
			t.Fatal("pass without sets")
		}
		// The seals-only check never passes what Verify fails on
		// structure, and the report comment of any chain is one line.
		vs := VerifySeals(context.Background(), dns, h)
		if v.Result == ResultPass && vs.Result != ResultPass {
			t.Fatalf("Verify passes, VerifySeals says %s (%v)", vs.Result, vs.Err)
		}
		if errors.Is(v.Err, ErrStructure) && vs.Result == ResultPass {
			t.Fatalf("VerifySeals passes a broken structure: %v", v.Err)
		}
		if c := v.ReportComment(); strings.ContainsAny(c, "\r\n") {
			t.Fatalf("report comment %q", c)
		}
	})
}

// FuzzParseSig: the AMS/AS and AAR parsers never panic, and a parsed
// instance is within 1..50.
func FuzzParseSig(f *testing.F) {
	for _, s := range []string{
		" i=1; a=rsa-sha256; b=QUJD; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; c=relaxed; d=a.example; h=from : to; s=s; t=1; l=10",
		" i=1; a=rsa-sha256; b=QUJD; cv=none; d=a.example; s=s",
		" i=01;;", "i=1; x.example; spf=pass", "b=", "=;=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, seal := range []bool{false, true} {
			if s, err := parseSig(v, seal); err == nil && (s.instance < 1 || s.instance > MaxSets) {
				t.Fatalf("instance %d", s.instance)
			}
		}
		if a, err := parseAAR(v); err == nil && (a.instance < 1 || a.instance > MaxSets) {
			t.Fatalf("AAR instance %d", a.instance)
		}
		_ = stripB(v)
	})
}

// FuzzBodyCanon: relaxed body canonicalization is idempotent, and
// chunking does not change the output.
func FuzzBodyCanon(f *testing.F) {
	f.Add([]byte(" C \r\nD \t E\r\n\r\n\r\n"), 3)
	f.Add([]byte("a\n\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		canon := func(c Canon, chunks ...[]byte) string {
			var out bytes.Buffer
			w := newBodyCanon(c, &out, -1)
			for _, ch := range chunks {
				w.Write(ch)
			}
			w.Close()
			return out.String()
		}
		for _, c := range []Canon{CanonSimple, CanonRelaxed} {
			whole := canon(c, in)
			if split > 0 && split < len(in) {
				if got := canon(c, in[:split], in[split:]); got != whole {
					t.Fatalf("%s: split at %d gives %q, whole %q", c, split, got, whole)
				}
			}
			if strings.Contains(strings.ReplaceAll(whole, "\r\n", ""), "\n") {
				t.Fatalf("%s: bare LF in %q", c, whole)
			}
		}
		once := canon(CanonRelaxed, in)
		if twice := canon(CanonRelaxed, []byte(once)); twice != once {
			t.Fatalf("relaxed not idempotent: %q then %q", once, twice)
		}
	})
}
