package arc

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
