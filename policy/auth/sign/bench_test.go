package sign

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkSign measures one message signed with RSA-2048, and with
// RSA-2048 plus Ed25519 (body of ~4 KB).
func BenchmarkSign(b *testing.B) {
	testKeys()
	kr := &Key{Name: "r", Domain: "example.com", Selector: "s1", Signer: rsa1}
	ke := &Key{Name: "e", Domain: "example.com", Selector: "e1", Signer: ed1}
	h, body := parseMsg(b, msgNoDate)
	body = strings.Repeat("A line of an ordinary message body, about seventy characters long.\r\n", 60)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, bc := range []struct {
		name string
		keys []*Key
	}{{"rsa2048", []*Key{kr}}, {"rsa2048+ed25519", []*Key{kr, ke}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Sign(h, strings.NewReader(body), bc.keys, now, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
