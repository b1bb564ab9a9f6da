package sign

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

// TestOpenDKIMVerifiesOurSignatures runs OpenDKIM's test mode
// (opendkim -t, keys from a test DNS server) on a message we signed with
// RSA and Ed25519 (both pass), and on the same message with a second
// From (both fail).
func TestOpenDKIMVerifiesOurSignatures(t *testing.T) {
	bin, err := exec.LookPath("opendkim")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/opendkim"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("opendkim is required in CI")
			}
			t.Skip("opendkim not installed")
		}
	}
	testKeys()
	dns := newDNS()
	kr := &Key{Name: "r", Domain: "example.com", Selector: "s1", Signer: rsa1}
	ke := &Key{Name: "e", Domain: "example.com", Selector: "e1", Signer: ed1}
	dns.publish(t, kr)
	dns.publish(t, ke)
	h, body := parseMsg(t, msgNoDate)
	sigs, err := Sign(h, strings.NewReader(body), []*Key{kr, ke}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	signed := assemble(sigs, msgNoDate)
	dir := t.TempDir()
	// The records are served by a test DNS server as a zone would serve
	// them (255-byte strings); OpenDKIM's libunbound is pointed at it.
	srv := dnstest.Start(t)
	for name, v := range dns.txt {
		srv.AddTXT(name+".", 300, SplitTXT(v[0])...)
	}
	host, port, _ := net.SplitHostPort(srv.Addr)
	unbound := fmt.Sprintf("server:\n  do-not-query-localhost: no\nforward-zone:\n  name: \".\"\n  forward-addr: %s@%s\n", host, port)
	os.WriteFile(filepath.Join(dir, "unbound.conf"), []byte(unbound), 0o600)
	conf := "Mode v\nSyslog no\nResolverConfiguration " + filepath.Join(dir, "unbound.conf") + "\nAlwaysAddARHeader yes\nAuthservID test\n"
	os.WriteFile(filepath.Join(dir, "opendkim.conf"), []byte(conf), 0o600)
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"signed", signed, "dkim=pass"},
		{"forged", strings.Replace(signed, "\r\nSubject:", "\r\nFrom: mallory@evil.example\r\nSubject:", 1), "dkim=fail"},
	} {
		f := filepath.Join(dir, tc.name+".eml")
		os.WriteFile(f, []byte(tc.msg), 0o600)
		out, err := exec.Command(bin, "-x", filepath.Join(dir, "opendkim.conf"), "-vvv", "-t", f).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: opendkim: %v\n%s", tc.name, err, out)
		}
		// The Authentication-Results OpenDKIM would add, one result
		// per signature.
		_, ar, ok := strings.Cut(string(out), "hname='Authentication-Results' hvalue='")
		ar, _, _ = strings.Cut(ar, "'")
		if !ok || strings.Count(ar, tc.want) != 2 || !strings.Contains(ar, "header.a=ed25519-sha256") || !strings.Contains(ar, "(2048-bit key") {
			t.Errorf("%s: OpenDKIM says %q, want two %s", tc.name, ar, tc.want)
		}
	}
}
