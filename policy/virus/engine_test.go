package virus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/clamav/clamdtest"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/virus"
	"github.com/mailwarden/mailwarden/policy/virus/icap/icaptest"
	"github.com/mailwarden/mailwarden/policy/virus/sssp/sssptest"
)

// engineMetrics records policy.Metrics and virus.EngineMetrics calls.
type engineMetrics struct {
	mu    sync.Mutex
	scans map[string][]policy.Status
}

func (m *engineMetrics) CheckDone(string, policy.Status, time.Duration) {}
func (m *engineMetrics) MessageDone(*policy.Verdict)                    {}
func (m *engineMetrics) EngineDone(engine string, st policy.Status, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scans[engine] = append(m.scans[engine], st)
}

func prepended(v *policy.Verdict, name string) string {
	for _, f := range v.Prepend {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Three engines of three kinds, each with its own signatures: each find is
// attributed to its engine, X-Virus-Scanned names every engine that
// scanned, max_size is per engine, require/min_engines decide.
func TestEngines(t *testing.T) {
	cd := clamdtest.Start(t, clamdtest.Options{Signatures: map[string]string{"CLAMD-ONLY": "Clamd.Sig"}})
	ic := icaptest.Start(t, icaptest.Options{Preview: 1024, Signatures: map[string]string{"ICAP-ONLY": "Icap.Sig"}})
	ss := sssptest.Start(t, sssptest.Options{Signatures: map[string]string{"SSSP-ONLY": "Sssp.Sig"}})
	conf := func(extra string) string {
		return `
authserv_id = "mx.example.org"
[virus]
enabled = true
timeout = "5s"
` + extra + `
[[virus.engine]]
type = "clamd"
name = "local"
addresses = ["` + cd.Addr() + `"]

[[virus.engine]]
type = "icap"
name = "second"
addresses = ["` + ic.URL() + `"]
max_size = "2KB"

[[virus.engine]]
type = "sssp"
name = "sophos"
addresses = ["` + ss.Addr() + `"]
`
	}
	run := func(text string, body string) (*policy.Verdict, *engineMetrics) {
		t.Helper()
		cfg, err := policy.Load("t.toml", []byte(text), sections())
		if err != nil {
			t.Fatal(err)
		}
		m := &engineMetrics{scans: map[string][]policy.Status{}}
		p, err := buildWith(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		return p.Run(context.Background(), msg(body)), m
	}
	all := "mailwarden (clamd:local, icap:second, sssp:sophos) on mx.example.org"
	for _, tc := range []struct {
		body, extra    string
		action         policy.Action
		status, header string
	}{
		{"hello\r\n", "", policy.ActionAccept, "Clean", all},
		{"hello CLAMD-ONLY\r\n", "", policy.ActionReject, "Infected (Clamd.Sig)", all},
		{"hello ICAP-ONLY\r\n", "", policy.ActionReject, "Infected (Icap.Sig)", all},
		{"hello SSSP-ONLY\r\n", "", policy.ActionReject, "Infected (Sssp.Sig)", all},
		// Above the ICAP engine's max_size: oversize for it; with
		// require = "all" the message is unscanned (oversize)...
		{strings.Repeat("x", 3000), "", policy.ActionReject, "Unscanned (oversize)", "mailwarden (clamd:local, sssp:sophos) on mx.example.org"},
		// ... with "any" and min_engines = 2 the two others suffice,
		{strings.Repeat("x", 3000), "require = \"any\"\nmin_engines = 2", policy.ActionAccept, "Clean", "mailwarden (clamd:local, sssp:sophos) on mx.example.org"},
		// with min_engines = 3 they do not,
		{strings.Repeat("x", 3000), "require = \"any\"\nmin_engines = 3", policy.ActionReject, "Unscanned (oversize)", "mailwarden (clamd:local, sssp:sophos) on mx.example.org"},
		// and malware found by one is malware whatever the others say.
		{strings.Repeat("x", 3000) + "SSSP-ONLY", "require = \"any\"", policy.ActionReject, "Infected (Sssp.Sig)", "mailwarden (clamd:local, sssp:sophos) on mx.example.org"},
	} {
		v, m := run(conf(tc.extra), tc.body)
		if v.Action != tc.action || prepended(v, "X-Virus-Status") != tc.status || prepended(v, "X-Virus-Scanned") != tc.header {
			t.Errorf("%.20q %q: %s %q %q, want %s %q %q", tc.body, tc.extra, v.Action, prepended(v, "X-Virus-Status"), prepended(v, "X-Virus-Scanned"), tc.action, tc.status, tc.header)
		}
		if len(m.scans) != 3 {
			t.Errorf("metrics per engine: %v", m.scans)
		}
	}
	// One engine down, require = "all": tempfail; "any": the others.
	ic.Close()
	v, m := run(conf(""), "hello\r\n")
	if v.Action != policy.ActionTempfail || prepended(v, "X-Virus-Status") != "Unscanned (error)" {
		t.Errorf("icap down, all: %s %q", v.Action, prepended(v, "X-Virus-Status"))
	}
	if got := m.scans["icap:second"]; len(got) != 1 || got[0] != virus.StatusError {
		t.Errorf("metrics of the engine that is down: %v", m.scans)
	}
	v, _ = run(conf("require = \"any\""), "hello\r\n")
	if v.Action != policy.ActionAccept || prepended(v, "X-Virus-Scanned") != "mailwarden (clamd:local, sssp:sophos) on mx.example.org" {
		t.Errorf("icap down, any: %s %q", v.Action, prepended(v, "X-Virus-Scanned"))
	}
}

func TestEngineConfigErrors(t *testing.T) {
	mods := sections()
	for name, text := range map[string]string{
		"unknown type":   "[[virus.engine]]\ntype = \"kaspersky\"\naddresses = [\"x\"]\n",
		"no type":        "[[virus.engine]]\naddresses = [\"/x\"]\n",
		"icap no addr":   "[[virus.engine]]\ntype = \"icap\"\n",
		"icap bad url":   "[[virus.engine]]\ntype = \"icap\"\naddresses = [\"127.0.0.1:1344\"]\n",
		"sssp bad addr":  "[[virus.engine]]\ntype = \"sssp\"\naddresses = [\"nowhere\"]\n",
		"dup names":      "[[virus.engine]]\ntype = \"clamd\"\nname = \"a\"\n[[virus.engine]]\ntype = \"clamd\"\nname = \"a\"\n",
		"min_engines":    "[virus]\nmin_engines = 3\n[[virus.engine]]\ntype = \"clamd\"\n",
		"preview clamd":  "[[virus.engine]]\ntype = \"clamd\"\npreview = false\n",
		"negative size":  "[[virus.engine]]\ntype = \"clamd\"\nmax_size = -1\n",
		"limits garbage": "[virus]\nlimits_exceeded = \"maybe\"\n",
	} {
		if _, err := policy.Load("t.toml", []byte(text), mods); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Both forms: a clear migration error when the pipeline is built.
	text := "[virus]\nenabled = true\n[[virus.engine]]\ntype = \"clamd\"\n[[clamav.server]]\nname = \"old\"\n"
	cfg, err := policy.Load("t.toml", []byte(text), mods)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := build(cfg); !errors.Is(err, virus.ErrBothForms) {
		t.Errorf("both forms: %v", err)
	}
	// The old form alone keeps working, with the names it had.
	a := clamdtest.Start(t, clamdtest.Options{})
	cfg, err = policy.Load("t.toml", []byte("authserv_id = \"h\"\n[virus]\nenabled = true\n[[clamav.server]]\nname = \"old\"\naddresses = [\""+a.Addr()+"\"]\n"), mods)
	if err != nil {
		t.Fatal(err)
	}
	p, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if v := p.Run(context.Background(), msg("hi")); prepended(v, "X-Virus-Scanned") != "mailwarden (clamav:old) on h" {
		t.Errorf("old form: %q", prepended(v, "X-Virus-Scanned"))
	}
}
