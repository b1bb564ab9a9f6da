package autoreply

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestForwarders(t *testing.T) {
	dir := t.TempDir()
	al := filepath.Join(dir, "aliases")
	vi := filepath.Join(dir, "virtual")
	os.WriteFile(al, []byte(`# /etc/aliases
mailer-daemon: postmaster
postmaster:    root
root:          ops@gmail.test
bob:           bob, |/usr/bin/procmail
"quoted":      quoted@remote.test
team:          alice,
               carol@partner.test
loop1:         loop2
loop2:         loop1
`), 0o644)
	os.WriteFile(vi, []byte(`# virtual
sales@example.org      alice@example.org, sales@crm.test
info@example.org       alice@example.org
@catchall.example.org  keeper@example.org
keeper@example.org     keeper@away.test
`), 0o644)
	local := func(d string) bool { return d == "example.org" || d == "catchall.example.org" }
	f, err := NewForwarders([]string{"Listed@Example.org"}, []string{al}, []string{vi}, local)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"listed@example.org":            true,
		"mailer-daemon@example.org":     true, // → postmaster → root → gmail
		"bob@example.org":               false,
		"team@example.org":              true,
		"quoted@example.org":            true,
		"sales@example.org":             true,
		"info@example.org":              false,
		"anything@catchall.example.org": true, // → keeper → away.test
		"loop1@example.org":             false,
		"alice@example.org":             false,
		"root@remote.test":              false, // not our alias
	} {
		if got := f.OffSite(addr); got != want {
			t.Errorf("OffSite(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, err := NewForwarders(nil, []string{filepath.Join(dir, "missing")}, nil, local); err == nil {
		t.Fatal("missing alias file accepted")
	}
	var nilF *Forwarders
	if nilF.OffSite("x@example.org") {
		t.Fatal("nil Forwarders")
	}
}

func FuzzParseTable(f *testing.F) {
	f.Add("a: b, c\n  d\n# x\n", true)
	f.Add("a@b c@d\n@dom x\n", false)
	f.Fuzz(func(t *testing.T, s string, alias bool) {
		m := map[string][]string{}
		if err := parseTable(strings.NewReader(s), alias, m); err != nil {
			return
		}
		fw := &Forwarders{aliases: m, virtual: m, listed: map[string]bool{}, local: func(d string) bool { return d == "" || d == "b" }}
		for k := range m {
			fw.OffSite(k)
		}
	})
}
