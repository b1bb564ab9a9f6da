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
