package daemon

import (
	"testing"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/policy"
)

// A SIGHUP that changes only [score] swaps in a new pipeline on the same
// resolver and store (the DNS cache survives); one that changes [dns]
// gets a new resolver. A refused reload keeps everything.
func TestReloadKeepsServices(t *testing.T) {
	sections := append(wire.Sections(), Sections()...)
	load := func(text string) *policy.Config {
		cfg, err := policy.Load("t.toml", []byte(text), sections)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := "local_domains = [\"example.org\"]\n[store]\nbackend = \"memory\"\n[dns]\nservers = [\"127.0.0.1:5399\"]\n"
	next := load(base)
	d := New(Options{Load: func(string) (*policy.Config, error) { return next, nil }})
	stop, err := d.Start(load(base))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	p1, r1, st1 := d.Pipeline(), d.svc.Resolver, d.svc.Store

	next = load(base + "[score]\nreject = 30.0\n")
	d.reload()
	if d.Pipeline() == p1 || d.Pipeline().Config().Score.Reject != 30 {
		t.Fatal("reload did not swap in the new pipeline")
	}
	if d.svc.Resolver != r1 || d.svc.Store != st1 {
		t.Fatal("a reload that left [dns] and [store] alone rebuilt them (the DNS cache is lost)")
	}

	next = load("local_domains = [\"example.org\"]\n[store]\nbackend = \"memory\"\n[dns]\nservers = [\"127.0.0.1:5398\"]\n")
	d.reload()
	if d.svc.Resolver == r1 || d.svc.Store != st1 {
		t.Fatal("a [dns] change must build a new resolver and keep the store")
	}
	if d.Reloads() != 2 || d.ReloadFailures() != 0 {
		t.Fatalf("reloads %d, failures %d", d.Reloads(), d.ReloadFailures())
	}
}
