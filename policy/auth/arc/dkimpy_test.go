package arc

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runDkimpy runs a Python script with an interpreter that has dkimpy
// (Debian's python3-dkim; its ARC signing also needs python3-authres),
// skipping the test without them; in CI (CI=true) they are required.
func runDkimpy(t *testing.T, script string, args ...string) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		out, err := exec.Command(py, append([]string{"-c", script}, args...)...).CombinedOutput()
		if err == nil {
			return string(out)
		}
		missing := strings.Contains(string(out), "No module named 'dkim'") ||
			strings.Contains(string(out), "name 'authres' is not defined")
		if !missing && !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("dkimpy: %v\n%s", err, out)
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("dkimpy (python3-dkim, python3-authres) is required in CI")
	}
	t.Skip("dkimpy (python3-dkim, python3-authres) not installed")
	return ""
}

const arcVerifyPy = `
import json, sys, dkim
txt = json.load(open(sys.argv[1]))
def dnsfunc(name, timeout=5):
    v = txt.get(name.decode().rstrip('.').lower())
    return v[0].encode() if v else None
for f in sys.argv[2:]:
    msg = open(f, 'rb').read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
    cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    print(cv.decode(), reason.replace('\n', ' '))
`

// TestDkimpyVerifiesOurSeals: a chain sealed by us (a, then b after a list
// change of the Subject, then a again) is cv=pass for dkimpy's
// arc_verify, and a change after the last seal is fail.
func TestDkimpyVerifiesOurSeals(t *testing.T) {
	dns := newDNS(nil)
	a := &Sealer{Domain: "a.example", Selector: "s1", Key: testRSA(t)}
	b := &Sealer{Domain: "b.example", Selector: "s2", Key: testRSA2(t)}
	publish(t, dns, "s1", "a.example", testRSA(t).Public())
	publish(t, dns, "s2", "b.example", testRSA2(t).Public())
	m, _ := hop(t, dns, a, plainMsg)
	m, _ = hop(t, dns, b, m, func(m string) string { return strings.Replace(m, "Subject: hi", "Subject: [list] hi", 1) })
	m, _ = hop(t, dns, a, m)

	dir := t.TempDir()
	keys, _ := json.Marshal(dns.txt)
	os.WriteFile(filepath.Join(dir, "keys.json"), keys, 0o600)
	cases := []struct {
		name, msg, want string
	}{
		{"sealed", m, "pass"},
		{"altered", strings.Replace(m, "Hello", "Hullo", 1), "fail"},
	}
	args := []string{filepath.Join(dir, "keys.json")}
	for _, tc := range cases {
		f := filepath.Join(dir, tc.name+".eml")
		os.WriteFile(f, []byte(tc.msg), 0o600)
		args = append(args, f)
	}
	out := runDkimpy(t, arcVerifyPy, args...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("dkimpy printed %q", out)
	}
	for i, tc := range cases {
		if got := strings.Fields(lines[i]); len(got) == 0 || got[0] != tc.want {
			t.Errorf("%s: dkimpy says %q, want %s", tc.name, lines[i], tc.want)
		}
	}
}

const arcSignPy = `
import sys, dkim
key, src, dst, sel, dom, srv = sys.argv[1:7]
msg = open(src, 'rb').read()
lines = dkim.arc_sign(msg, sel.encode(), dom.encode(), open(key, 'rb').read(), srv.encode(), timestamp=1700000000)
open(dst, 'wb').write(b''.join(lines) + msg)
print('sealed')
`

// TestDkimpySealThenOurs: a message sealed by dkimpy passes our Verify;
// a list then changes its Subject and we seal it; dkimpy's arc_verify
// and ours both pass the result (oldest-pass 2 for us).
func TestDkimpySealThenOurs(t *testing.T) {
	dns := newDNS(nil)
	publish(t, dns, "py", "py.example", testRSA2(t).Public())
	publish(t, dns, "s1", "list.example", testRSA(t).Public())
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "py.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSA2(t))}), 0o600)
	src := filepath.Join(dir, "in.eml")
	os.WriteFile(src, []byte("Authentication-Results: py.example; arc=none; spf=pass smtp.mailfrom=a@example.com\r\n"+plainMsg), 0o600)
	dst := filepath.Join(dir, "py-sealed.eml")
	runDkimpy(t, arcSignPy, keyFile, src, dst, "py", "py.example", "py.example")
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	v := verifyText(t, dns, string(data))
	if v.Result != ResultPass || v.Sets[0].Seal.Domain != "py.example" {
		t.Fatalf("dkimpy's seal: %s (%v)", v.Result, v.Err)
	}
	list := &Sealer{Domain: "list.example", Selector: "s1", Key: testRSA(t)}
	m, _ := hop(t, dns, list, string(data), func(m string) string { return strings.Replace(m, "Subject: hi", "Subject: [list] hi", 1) })
	if v := verifyText(t, dns, m); v.Result != ResultPass || v.OldestPass != 2 {
		t.Fatalf("after our seal: %s oldest-pass=%d (%v)", v.Result, v.OldestPass, v.Err)
	}
	keys, _ := json.Marshal(dns.txt)
	os.WriteFile(filepath.Join(dir, "keys.json"), keys, 0o600)
	f := filepath.Join(dir, "ours.eml")
	os.WriteFile(f, []byte(m), 0o600)
	out := runDkimpy(t, arcVerifyPy, filepath.Join(dir, "keys.json"), f)
	if !strings.HasPrefix(out, "pass") {
		t.Errorf("dkimpy arc_verify after our seal: %s", out)
	}
}
