package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/metrics"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/policy"
)

// TestReloadRefusesRestartKeys (issue 17.6): a SIGHUP that changes
// [metrics] or [control] is refused, naming the keys that need a
// restart; the running config stays; a refused reload is counted and
// logged for `report`.
func TestReloadRefusesRestartKeys(t *testing.T) {
	sections := wire.Sections(append(Sections(), control.Section(), metrics.Section())...)
	load := func(text string) *policy.Config {
		cfg, err := policy.Load("t.toml", []byte(text), sections)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := "local_domains = [\"example.org\"]\n[store]\nbackend = \"memory\"\n[control]\nsocket = \"\"\n"
	next := load(base)
	var logs bytes.Buffer
	d := New(Options{Load: func(string) (*policy.Config, error) { return next, nil },
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	stop, err := d.Start(load(base))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	p1 := d.Pipeline()

	next = load(base + "[metrics]\naddress = \"127.0.0.1:9999\"\n[score]\nreject = 30.0\n")
	d.reload()
	if d.Pipeline() != p1 || d.ReloadFailures() != 1 || d.Reloads() != 0 {
		t.Fatalf("a [metrics] change was applied by a reload (failures %d)", d.ReloadFailures())
	}
	if !strings.Contains(logs.String(), `"msg":"config reload refused"`) || !strings.Contains(logs.String(), "metrics.address") {
		t.Errorf("the refusal does not name metrics.address:\n%s", logs.String())
	}
	next = load(strings.Replace(base, "socket = \"\"", "socket = \"/run/other.sock\"", 1))
	logs.Reset()
	d.reload()
	if d.ReloadFailures() != 2 || !strings.Contains(logs.String(), "control.socket") {
		t.Errorf("a [control] change: failures %d\n%s", d.ReloadFailures(), logs.String())
	}
	// Unchanged restart keys: the reload applies.
	next = load(base + "[score]\nreject = 30.0\n")
	d.reload()
	if d.Reloads() != 1 || d.Pipeline().Config().Score.Reject != 30 {
		t.Errorf("a reload without restart keys was not applied")
	}
}

// TestWarnUntrained (issue 17.9): at start, Bayes on and untrained is
// warned about; trained, it is not.
func TestWarnUntrained(t *testing.T) {
	sections := wire.Sections(append(Sections(), control.Section(), metrics.Section())...)
	cfg, err := policy.Load("t.toml", []byte("[store]\nbackend = \"memory\"\n[spam.bayes]\nmin_spam = 1\nmin_ham = 1\n"), sections)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := New(Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	stop, err := d.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	d.warnUntrained(cfg)
	if !strings.Contains(logs.String(), "Bayes is not trained") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
	st := d.services().Store
	st.Set(context.Background(), "bayes:n:s", []byte("1"), 0)
	st.Set(context.Background(), "bayes:n:h", []byte("1"), 0)
	logs.Reset()
	d.warnUntrained(cfg)
	if logs.Len() != 0 {
		t.Errorf("warned although trained:\n%s", logs.String())
	}
}
