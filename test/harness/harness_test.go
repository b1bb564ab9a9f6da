package harness

import (
	"strings"

	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestWithDefaults(t *testing.T) {
	const sock = "unix:/tmp/mwX/milter.sock"
	tests := []struct {
		name     string
		in       string
		wantAddr string
		want     []string // substrings of the result, in order
		notWant  []string
	}{
		{"no table", "mode = \"enforce\"", sock,
			[]string{"mode = \"enforce\"\n", "\n[listen]\naddress = \"" + sock + "\"\n", "grace_period = \"3s\""}, nil},
		{"empty", "", sock, []string{"[listen]\naddress = \"" + sock + "\""}, nil},
		{"table without address", "[listen]\nread_timeout = \"1m\"\n[log]\nlevel = \"debug\"\n", sock,
			[]string{"[listen]\naddress = \"" + sock + "\"", "read_timeout = \"1m\"\n[log]"}, []string{"\n[listen]\n\n[listen]"}},
		{"table with address", "[listen]\naddress = \"inet:127.0.0.1:9999\"\n", "inet:127.0.0.1:9999",
			[]string{"[listen]\ngrace_period = \"3s\"\naddress = \"inet:127.0.0.1:9999\""}, []string{sock, "socket_"}},
		{"literal string address", "[listen]\naddress = 'inet:127.0.0.1:9998'\n", "inet:127.0.0.1:9998",
			[]string{"address = 'inet:127.0.0.1:9998'"}, []string{"address = \"", "socket_"}},
		{"private store and control", "[store]\nbackend = \"bolt\"\n[[limit]]\nname = \"x\"\n", sock,
			[]string{"[store]\npath = \"/tmp/mwX/state.db\"\nbackend = \"bolt\"\n[[limit]]\nname = \"x\"\n", "[control]\nsocket = \"/tmp/mwX/control.sock\""}, nil},
		{"own store path and control socket kept", "[control]\nsocket = '/run/x.sock'\n[store]\npath = \"/var/x.db\"\n", sock,
			[]string{"[control]\nsocket = '/run/x.sock'\n[store]\npath = \"/var/x.db\"\n"}, []string{"mwX/state.db", "mwX/control.sock"}},
		{"address in another table is not ours", "[other]\naddress = \"x\"\n[listen]\n", sock,
			[]string{"[other]\naddress = \"x\"\n[listen]\naddress = \"" + sock + "\""}, nil},
		{"own grace and mode kept", "[listen] # ours\nsocket_mode = \"0600\"\ngrace_period = \"9s\"\n", sock,
			[]string{"[listen] # ours\naddress = \"" + sock + "\"\nsocket_mode = \"0600\"\ngrace_period = \"9s\""}, []string{"3s", "socket_group"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, addr := withDefaults(tt.in, "/tmp/mwX", sock, "")
			if addr != tt.wantAddr {
				t.Errorf("address %q, want %q", addr, tt.wantAddr)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("result lacks %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("result contains %q:\n%s", w, got)
				}
			}
			for _, table := range []string{"[listen]", "[store]", "[control]"} {
				if strings.Count(got, table) != 1 {
					t.Errorf("want exactly one %s table:\n%s", table, got)
				}
			}
			if _, err := toml.Decode(got, new(map[string]any)); err != nil {
				t.Errorf("result is not valid TOML: %v\n%s", err, got)
			}
		})
	}
}

func TestDialTarget(t *testing.T) {
	for in, want := range map[string][2]string{
		"unix:/run/m.sock":    {"unix", "/run/m.sock"},
		"local:/run/m.sock":   {"unix", "/run/m.sock"},
		"inet:127.0.0.1:8895": {"tcp", "127.0.0.1:8895"},
		"inet:8895@127.0.0.1": {"tcp", "127.0.0.1:8895"},
		"inet6:[::1]:8895":    {"tcp6", "[::1]:8895"},
	} {
		n, a := dialTarget(in)
		if n != want[0] || a != want[1] {
			t.Errorf("dialTarget(%q) = %q, %q; want %q", in, n, a, want)
		}
	}
}

func TestDaemonWaitLog(t *testing.T) {
	d := &Daemon{change: make(chan struct{}), done: make(chan struct{})}
	go func() {
		time.Sleep(20 * time.Millisecond)
		d.addLine([]byte(`{"msg":"starting"}`))
		d.addLine([]byte(`not json`))
		d.addLine([]byte(`{"msg":"message","from":"a@example.org","action":"accept"}`))
	}()
	m := d.WaitLog(t, MessageFrom("a@example.org"), 5*time.Second)
	if m["action"] != "accept" {
		t.Errorf("got %v", m)
	}
	logs := d.Logs()
	if len(logs) != 3 || logs[1]["_raw"] != true || logs[1]["msg"] != "not json" {
		t.Errorf("logs %v", logs)
	}
	if _, err := d.waitLogFrom(3, MsgIs("starting"), 50*time.Millisecond); err == nil {
		t.Error("a line before the start index matched")
	}
	close(d.done)
	if _, err := d.waitLogFrom(0, MsgIs("never"), 5*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("after exit: %v, want an exit error at once", err)
	}
}

// A daemon never asks the machine's resolver: without a [dns] servers key
// of its own, the config points at the harness's test DNS server.
func TestWithDefaultsDNS(t *testing.T) {
	got, _ := withDefaults("mode = \"enforce\"\n", "/tmp/mwX", "unix:/tmp/mwX/m.sock", "127.0.0.1:5353")
	if !strings.Contains(got, "[dns]\nservers = [\"127.0.0.1:5353\"]") {
		t.Errorf("no private DNS server in:\n%s", got)
	}
	own := "[dns]\nservers = [\"127.0.0.1:53\"]\n"
	got, _ = withDefaults(own, "/tmp/mwX", "unix:/tmp/mwX/m.sock", "127.0.0.1:5353")
	if strings.Contains(got, "5353") {
		t.Errorf("the test's own servers were overridden:\n%s", got)
	}
}

// The Debian SpamAssassin rules cost seconds of CPU per start: harness
// daemons run without them unless the test turns them on.
func TestWithDefaultsSpamRules(t *testing.T) {
	got, _ := withDefaults("[spam]\nenabled = true\n", "/tmp/mwX", "unix:/tmp/mwX/m.sock", "")
	var cfg struct {
		Spam struct {
			Rules struct{ Enabled *bool } `toml:"rules"`
		} `toml:"spam"`
	}
	if _, err := toml.Decode(got, &cfg); err != nil || cfg.Spam.Rules.Enabled == nil || *cfg.Spam.Rules.Enabled {
		t.Errorf("rules not off by default (%v):\n%s", err, got)
	}
	own := "[spam.rules]\nenabled = true\n"
	got, _ = withDefaults(own, "/tmp/mwX", "unix:/tmp/mwX/m.sock", "")
	if strings.Contains(got, "enabled = false") || strings.Count(got, "[spam.rules]") != 1 {
		t.Errorf("the test's own rules setting was overridden:\n%s", got)
	}
}
