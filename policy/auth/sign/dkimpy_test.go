package sign

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runDkimpy runs a Python script with an interpreter that has dkimpy
// (Debian's python3-dkim), skipping the test without one; in CI
// (CI=true) a missing dkimpy is a failure.
func runDkimpy(t *testing.T, script string, args ...string) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		out, err := exec.Command(py, append([]string{"-c", script}, args...)...).CombinedOutput()
		if err == nil {
			return string(out)
		}
		if !strings.Contains(string(out), "No module named 'dkim'") && !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("dkimpy: %v\n%s", err, out)
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("dkimpy (python3-dkim) is required in CI")
	}
	t.Skip("dkimpy (python3-dkim) not installed")
	return ""
}

// dkimVerifyPy prints, for each file, "pass" or "fail" for each of its
// DKIM-Signature fields, top down.
const dkimVerifyPy = `
import json, sys, dkim
txt = json.load(open(sys.argv[1]))
def dnsfunc(name, timeout=5):
    v = txt.get(name.decode().rstrip('.').lower())
    return v[0].encode() if v else None
for f in sys.argv[2:]:
    msg = open(f, 'rb').read()
    d = dkim.DKIM(msg)
    n = sum(1 for k, v in d.headers if k.lower() == b'dkim-signature')
    print(' '.join('pass' if d.verify(idx=i, dnsfunc=dnsfunc) else 'fail' for i in range(n)))
`

// TestDkimpyVerifiesOurSignatures: dkimpy verifies our RSA and Ed25519
// signatures of a message without Date and Message-ID, inserted as the
// MTA inserts a milter header, and fails them after a second From is
// added. dkimpy checks t= and x= against its own clock, so this test
// signs at the current time.
func TestDkimpyVerifiesOurSignatures(t *testing.T) {
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
	keys, _ := json.Marshal(dns.txt)
	kf := filepath.Join(dir, "keys.json")
	os.WriteFile(kf, keys, 0o600)
	files := map[string]string{
		"signed":  signed,
		"forged":  strings.Replace(signed, "\r\nSubject:", "\r\nFrom: mallory@evil.example\r\nSubject:", 1),
		"lf-only": strings.ReplaceAll(signed, "\r\n", "\n"),
	}
	want := map[string]string{"signed": "pass pass", "forged": "fail fail", "lf-only": "pass pass"}
	order := []string{"signed", "forged", "lf-only"}
	args := []string{kf}
	for _, n := range order {
		p := filepath.Join(dir, n+".eml")
		os.WriteFile(p, []byte(files[n]), 0o600)
		args = append(args, p)
	}
	lines := strings.Split(strings.TrimSpace(runDkimpy(t, dkimVerifyPy, args...)), "\n")
	if len(lines) != len(order) {
		t.Fatalf("dkimpy printed %q", lines)
	}
	for i, n := range order {
		if lines[i] != want[n] {
			t.Errorf("%s: dkimpy says %q, want %q", n, lines[i], want[n])
		}
	}
}
