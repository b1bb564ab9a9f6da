package arc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerifySeal: verifying a two-set chain (RSA-2048) and adding
// our set, the cost of one forwarded message.
func BenchmarkVerifySeal(b *testing.B) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	dns := newDNS(nil)
	publish(b, dns, "s", "a.example", k.Public())
	s := &Sealer{Domain: "a.example", Selector: "s", Key: k}
	m, _ := hop(b, dns, s, plainMsg)
	m, _ = hop(b, dns, s, m)
	h, body := parse(b, m)
	bt, _ := readAllString(body)
	for b.Loop() {
		v := Verify(context.Background(), dns, h, strings.NewReader(bt))
		if v.Result != ResultPass {
			b.Fatal(v.Err)
		}
		if _, err := s.Seal(h, strings.NewReader(bt), v, "a.example; arc=pass", time.Unix(1700000000, 0)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListReseal: a list re-injection whose change broke the newest
// AMS: Verify fails on it, VerifySeals checks the two seals, and we add
// our set; the cost of one list copy.
func BenchmarkListReseal(b *testing.B) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	dns := newDNS(nil)
	publish(b, dns, "s", "a.example", k.Public())
	s := &Sealer{Domain: "a.example", Selector: "s", Key: k}
	m, _ := hop(b, dns, s, plainMsg)
	m, _ = hop(b, dns, s, m)
	h, body := parse(b, strings.Replace(m, "Subject: hi", "Subject: [list] hi", 1))
	bt, _ := readAllString(body)
	for b.Loop() {
		if v := Verify(context.Background(), dns, h, strings.NewReader(bt)); v.Result != ResultFail {
			b.Fatal("the list's change did not break the chain")
		}
		vs := VerifySeals(context.Background(), dns, h)
		if vs.Result != ResultPass {
			b.Fatal(vs.Err)
		}
		if _, err := s.Seal(h, strings.NewReader(bt), vs, "a.example; arc=pass", time.Unix(1700000000, 0)); err != nil {
			b.Fatal(err)
		}
	}
}
