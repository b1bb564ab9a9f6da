package audit

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

// fakeFS maps the paths main.cf names to testdata files.
func fakeFS(path string) ([]byte, error) {
	switch path {
	case "/etc/aliases":
		return os.ReadFile("testdata/aliases")
	case "/etc/postfix/virtual.re":
		return os.ReadFile("testdata/virtual.re")
	}
	return nil, os.ErrNotExist
}

func TestAudit(t *testing.T) {
	cases := []struct {
		file       string
		listen     string
		relayGuard bool
		spool      []string
		// every finding at info or above, id → severity (ids may repeat)
		want []string
	}{
		{"good.cf", "inet:127.0.0.1:8895", true, []string{"/var/spool/postfix"}, nil},
		{"openrelay.cf", "inet:127.0.0.1:8895", false, nil, []string{
			"open-relay critical", "open-relay critical", "milter-smtpd critical",
			"milter-non_smtpd warning", "milter-default-action warning", "message-size warning",
			"tls-smtpd warning", "tls-smtp warning", "tls-protocols warning", "tls-auth-only warning", "queue-minfree warning",
			"alias-postmaster info", "alias-abuse info", "relay-guard info", "spool-guard info"}},
		{"wide.cf", "unix:/var/spool/postfix/mailwarden/milter.sock", true, []string{"/tmp"}, []string{
			"mynetworks-wide critical", "mynetworks-wide warning", "mynetworks-table info",
			"message-size warning", "tls-smtp warning", "queue-minfree warning", "spool-guard info"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pf, err := ParseMainCF(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg := policy.DefaultConfig()
			cfg.LocalDomains = []string{"example.org"}
			fs := Run(Input{Postfix: pf, Config: cfg, ReadFile: fakeFS, RelayGuard: tc.relayGuard, SpoolDirs: tc.spool, Listen: tc.listen})
			var got []string
			for _, x := range fs {
				if x.Severity >= SevInfo {
					got = append(got, x.ID+" "+x.Severity.String())
					if x.Severity >= SevWarning && x.Fix == "" {
						t.Errorf("%s has no fix", x.ID)
					}
				}
			}
			want := append([]string(nil), tc.want...)
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s\nall: %+v", strings.Join(got, "\n"), strings.Join(want, "\n"), fs)
			}
			for i := 1; i < len(fs); i++ {
				if fs[i].Severity > fs[i-1].Severity {
					t.Fatal("findings not sorted by severity")
				}
			}
		})
	}
}

func TestRelayRestrictions(t *testing.T) {
	cases := []struct {
		relay, rcpt string
		open        bool
	}{
		{"permit_mynetworks, reject", "", false},
		{"permit_mynetworks permit_sasl_authenticated defer_unauth_destination", "", false},
		{"permit_mynetworks, permit", "", true},
		{"permit, reject_unauth_destination", "", true},
		{"", "permit_mynetworks, reject_unauth_destination", false},
		{"", "permit_mynetworks", true},
		{"check_client_access hash:/x", "", true},
	}
	for _, c := range cases {
		pf := MainCF{"smtpd_relay_restrictions": c.relay, "smtpd_recipient_restrictions": c.rcpt}
		open := false
		for _, f := range Run(Input{Postfix: pf, ReadFile: fakeFS}) {
			if f.ID == "open-relay" {
				open = true
			}
		}
		if open != c.open {
			t.Errorf("relay %q rcpt %q: open relay = %v, want %v", c.relay, c.rcpt, open, c.open)
		}
	}
}

func TestParseMainCF(t *testing.T) {
	m, err := ParseMainCF(strings.NewReader("a = 1\n# c\nb = x,\n  y\n\nc=$a ${b} $(a)\nd = $d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Get("b"); v != "x, y" {
		t.Errorf("continuation: %q", v)
	}
	if v, _ := m.Get("c"); v != "1 x, y 1" {
		t.Errorf("expansion: %q", v)
	}
	m.Get("d") // self reference terminates
	if v, set := m.Get("milter_default_action"); set || v != "tempfail" {
		t.Errorf("default: %q %v", v, set)
	}
	for _, bad := range []string{"  x = 1\n", "novalue\n", "a b = 1\n"} {
		if _, err := ParseMainCF(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMilterMatches(t *testing.T) {
	q := "/var/spool/postfix"
	cases := []struct {
		entry, listen string
		ok            bool
	}{
		{"inet:127.0.0.1:8895", "inet:127.0.0.1:8895", true},
		{"inet:localhost:8895", "inet:127.0.0.1:8895", true},
		{"inet:[::1]:8895", "inet:127.0.0.1:8895", true},
		{"inet:127.0.0.1:8896", "inet:127.0.0.1:8895", false},
		{"inet:10.0.0.1:8895", "inet:127.0.0.1:8895", false},
		{"unix:/mailwarden/milter.sock", "unix:/var/spool/postfix/mailwarden/milter.sock", true},
		{"unix:mailwarden/milter.sock", "unix:/var/spool/postfix/mailwarden/milter.sock", true},
		{"{ unix:/run/mw.sock, default_action = accept }", "unix:/run/mw.sock", true},
		{"unix:/run/other.sock", "unix:/run/mw.sock", false},
		{"inet:127.0.0.1:8895", "unix:/run/mw.sock", false},
	}
	for _, c := range cases {
		if got := milterMatches(c.entry, c.listen, q); got != c.ok {
			t.Errorf("%q vs %q: %v", c.entry, c.listen, got)
		}
	}
}

func FuzzParseMainCF(f *testing.F) {
	for _, n := range []string{"good.cf", "openrelay.cf", "wide.cf"} {
		b, _ := os.ReadFile("testdata/" + n)
		f.Add(string(b))
	}
	f.Add("a = ${b\nb = $(a)\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMainCF(strings.NewReader(s))
		if err != nil {
			return
		}
		Run(Input{Postfix: m, ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist }})
	})
}
