package arc

import (
	"context"
	"strings"
	"testing"
)

// loadCaptured reads the mail-auth format: "<name> <TXT value>" lines, a
// blank line, then the message.
func loadCaptured(t *testing.T, rel string) (*fakeDNS, string) {
	t.Helper()
	text := string(readConf(t, rel))
	keys, msg, ok := strings.Cut(text, "\n\n")
	if !ok {
		t.Fatalf("%s: no blank line after the keys", rel)
	}
	records := map[string]string{}
	for _, line := range strings.Split(keys, "\n") {
		if name, val, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			records[name] = val
		}
	}
	return newDNS(records), msg
}

// TestRealSealedMessages: the two captured messages (a Google seal, and a
// two-hop chain with an RSA and an Ed25519 sealer) pass.
func TestRealSealedMessages(t *testing.T) {
	for _, tc := range []struct {
		file    string
		n       int
		sealers []string
		algo1   string // a= of the first seal
	}{
		{"arc/mail-auth/001.txt", 1, []string{"google.com"}, "rsa-sha256"},
		{"arc/mail-auth/002.txt", 2, []string{"scamorza.org", "manchego.org"}, "ed25519-sha256"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dns, msg := loadCaptured(t, tc.file)
			h, body := parse(t, msg)
			v := Verify(context.Background(), dns, h, body)
			if v.Result != ResultPass {
				t.Fatalf("got %s (%v), want pass", v.Result, v.Err)
			}
			if v.N() != tc.n {
				t.Errorf("N = %d, want %d", v.N(), tc.n)
			}
			for i, d := range tc.sealers {
				if v.Sets[i].Seal.Domain != d {
					t.Errorf("sealer %d = %q, want %q", i+1, v.Sets[i].Seal.Domain, d)
				}
			}
			if a := v.Sets[0].Seal.Algorithm; a != tc.algo1 {
				t.Errorf("first seal a=%s, want %s", a, tc.algo1)
			}
			// Changing one signed byte of the body breaks the newest AMS.
			h2, body2 := parse(t, strings.Replace(msg, "\n\n", "\n\nX", 1))
			if v := Verify(context.Background(), dns, h2, body2); v.Result != ResultFail {
				t.Errorf("altered body: %s, want fail", v.Result)
			}
		})
	}
}
