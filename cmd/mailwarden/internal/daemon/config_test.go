package daemon

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

func TestParseFileMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want fs.FileMode
		err  bool
	}{
		{"0660", 0o660, false},
		{"660", 0o660, false},
		{"0777", 0o777, false},
		{"0", 0, false},
		{"0888", 0, true},
		{"1777", 0, true},
		{"rw-rw----", 0, true},
		{"", 0, true},
	} {
		got, err := ParseFileMode(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseFileMode(%q) = %o, %v; want %o, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func loadErrs(t *testing.T, text string) policy.ConfigErrors {
	t.Helper()
	_, err := policy.Load("test.toml", []byte(text), Sections())
	var ces policy.ConfigErrors
	if !errors.As(err, &ces) {
		t.Fatalf("Load(%q) = %v, want ConfigErrors", text, err)
	}
	return ces
}

// Moved from policy's TestLoadErrors with the sections: same keys, lines
// and messages.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, key string
		line            int
		msg             string
	}{
		{"unknown table", "\n[listen]\naddress = \"inet:127.0.0.1:1\"\n\n[lisen]\nport = 1\n", "lisen.port", 6, "unknown key"},
		{"bad duration", "[listen]\ngrace_period = \"forever\"\n", "listen.grace_period", 2, "bad duration"},
		{"bad listen address", "[listen]\naddress = \"127.0.0.1:8895\"\n", "listen.address", 2, "unix: or inet:"},
		{"bad socket mode", "[listen]\nsocket_mode = \"rw\"\n", "listen.socket_mode", 2, "octal"},
		{"bad log level", "[log]\nlevel = \"loud\"\n", "log.level", 2, "debug, info"},
		{"negative max connections", "[listen]\nmax_connections = -1\n", "listen.max_connections", 2, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ces := loadErrs(t, tc.text)
			var found *policy.ConfigError
			for _, e := range ces {
				if e.Key == tc.key {
					found = e
				}
			}
			if found == nil || found.Line != tc.line || !strings.Contains(found.Msg, tc.msg) {
				t.Fatalf("got %v, want key %s line %d msg ~%q", ces, tc.key, tc.line, tc.msg)
			}
		})
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	text := "mode = \"enforce\"\n[lists]\ndeny_sender = []\n[log]\nlevel = \"loud\"\nformat = \"xml\"\n"
	ces := loadErrs(t, text)
	keys := map[string]int{}
	for _, e := range ces {
		keys[e.Key] = e.Line
	}
	if keys["lists.deny_sender"] != 3 || keys["log.level"] != 5 || keys["log.format"] != 6 || len(ces) != 3 {
		t.Errorf("errors: %v", ces)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := policy.Load("t", nil, Sections())
	if err != nil {
		t.Fatal(err)
	}
	if l := ListenOf(cfg); l.Address != "inet:127.0.0.1:8895" || l.MaxConnections != 400 || LogOf(cfg).Format != "json" {
		t.Errorf("defaults: %+v %+v", l, LogOf(cfg))
	}
	var _ fs.FileMode
}
