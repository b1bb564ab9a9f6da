package virus_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/clamav/clamdtest"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/virus"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// fake is a Scanner with a fixed finding.
type fake struct {
	name  string
	f     virus.Finding
	calls atomic.Int32
	seen  atomic.Int64
}

func (s *fake) Name() string { return s.name }
func (s *fake) Scan(ctx context.Context, open func() io.Reader, size int64) virus.Finding {
	s.calls.Add(1)
	n, _ := io.Copy(io.Discard, open())
	s.seen.Store(n)
	return s.f
}

func msg(body string) *message.Message {
	return &message.Message{
		QueueID:  "Q1",
		MailFrom: "a@example.com",
		Rcpts:    []string{"b@example.org"},
		Header:   message.Header{{Name: "Subject", Value: " hi"}, {Name: "X-Virus-Status", Value: " Clean"}},
		Body:     message.BytesBody(body),
	}
}

func header(r policy.Result, name string) string {
	for _, f := range r.Headers {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func TestStatusesToActions(t *testing.T) {
	cfg := virus.DefaultConfig()
	cfg.Enabled = true
	for _, tc := range []struct {
		f         virus.Finding
		status    policy.Status
		action    policy.Action
		reason    string
		mandatory bool
		header    string
	}{
		{virus.Finding{Status: virus.StatusClean}, virus.StatusClean, policy.ActionAccept, "", false, "Clean"},
		{virus.Finding{Status: virus.StatusInfected, Signature: "Eicar-Sig"}, virus.StatusInfected, policy.ActionReject, "virus-infected", true, "Infected (Eicar-Sig)"},
		{virus.Finding{Status: virus.StatusError, Err: errors.New("down")}, virus.StatusError, policy.ActionTempfail, "virus-error", true, "Unscanned (error)"},
		{virus.Finding{Status: virus.StatusOversize, Err: errors.New("big")}, virus.StatusOversize, policy.ActionReject, "virus-oversize", true, "Unscanned (oversize)"},
	} {
		s := &fake{name: "clamav:x", f: tc.f}
		c := virus.New(cfg, []virus.Scanner{s}, nil, nil)
		m := msg("hello\r\n")
		r, err := c.Check(context.Background(), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != tc.status || r.Action != tc.action || r.Mandatory != tc.mandatory {
			t.Errorf("%s: got status %s action %s mandatory %v", tc.status, r.Status, r.Action, r.Mandatory)
		}
		if (tc.reason == "") != (len(r.Reasons) == 0) || tc.reason != "" && r.Reasons[0] != tc.reason {
			t.Errorf("%s: reasons %v, want %q", tc.status, r.Reasons, tc.reason)
		}
		if got := header(r, "X-Virus-Status"); got != tc.header {
			t.Errorf("%s: X-Virus-Status %q, want %q", tc.status, got, tc.header)
		}
		// X-Virus-Scanned only when an engine scanned the message.
		scanned := tc.status == virus.StatusClean || tc.status == virus.StatusInfected
		if got := header(r, "X-Virus-Scanned"); scanned != strings.HasPrefix(got, "mailwarden (clamav:x)") {
			t.Errorf("%s: X-Virus-Scanned = %q", tc.status, got)
		}
		if len(r.RemoveHeaders) != 2 {
			t.Errorf("forged X-Virus-* fields are not removed: %v", r.RemoveHeaders)
		}
		if s.seen.Load() != m.RawSize() {
			t.Errorf("scanner read %d bytes, message has %d", s.seen.Load(), m.RawSize())
		}
	}
}

func TestReplySignatureAndActions(t *testing.T) {
	cfg := virus.DefaultConfig()
	s := &fake{name: "e", f: virus.Finding{Status: virus.StatusInfected, Signature: "Sig.A"}}
	r, _ := virus.New(cfg, []virus.Scanner{s}, nil, nil).Check(context.Background(), msg("x"), nil)
	if r.Reply.String() != "554 5.7.1 Message contains malware" {
		t.Fatalf("reply %q: the signature must not be in the reply by default", r.Reply)
	}
	if !strings.Contains(r.Detail, "Sig.A") {
		t.Fatalf("detail %q lacks the signature", r.Detail)
	}
	cfg.ReplySignature = true
	cfg.OnInfected = policy.ActionQuarantine
	r, _ = virus.New(cfg, []virus.Scanner{s}, nil, nil).Check(context.Background(), msg("x"), nil)
	if r.Reply.Text != "Message contains malware (Sig.A)" || r.Action != policy.ActionQuarantine || !r.Mandatory || !strings.Contains(r.QuarantineReason, "Sig.A") {
		t.Fatalf("got %+v", r)
	}
	cfg.OnError = policy.ActionAccept
	cfg.HeaderScanned = ""
	s.f = virus.Finding{Status: virus.StatusError, Err: errors.New("x")}
	r, _ = virus.New(cfg, []virus.Scanner{s}, nil, nil).Check(context.Background(), msg("x"), nil)
	if r.Action != policy.ActionAccept || header(r, "X-Virus-Status") != "Unscanned (error)" || len(r.Headers) != 1 {
		t.Fatalf("error → accept with a header: %+v", r)
	}
}

func TestRequire(t *testing.T) {
	clean := virus.Finding{Status: virus.StatusClean}
	bad := virus.Finding{Status: virus.StatusError, Err: errors.New("down")}
	big := virus.Finding{Status: virus.StatusOversize, Err: errors.New("big")}
	inf := virus.Finding{Status: virus.StatusInfected, Signature: "S"}
	for _, tc := range []struct {
		req  virus.Require
		fs   []virus.Finding
		want policy.Status
		min  int
	}{
		{virus.RequireAll, []virus.Finding{clean, clean}, virus.StatusClean, 0},
		{virus.RequireAll, []virus.Finding{clean, bad}, virus.StatusError, 0},
		{virus.RequireAll, []virus.Finding{big, clean}, virus.StatusOversize, 0},
		{virus.RequireAll, []virus.Finding{bad, inf}, virus.StatusInfected, 0},
		{virus.RequireAny, []virus.Finding{clean, bad}, virus.StatusClean, 0},
		{virus.RequireAny, []virus.Finding{bad, bad}, virus.StatusError, 0},
		{virus.RequireAny, []virus.Finding{bad, big}, virus.StatusOversize, 0},
		{virus.RequireAny, []virus.Finding{clean, inf}, virus.StatusInfected, 0},
		// min_engines (with require = "any"):
		{virus.RequireAny, []virus.Finding{clean, bad, clean}, virus.StatusClean, 2},
		{virus.RequireAny, []virus.Finding{clean, bad, bad}, virus.StatusError, 2},
		{virus.RequireAny, []virus.Finding{clean, big, bad}, virus.StatusOversize, 2},
		{virus.RequireAny, []virus.Finding{clean, clean, clean}, virus.StatusClean, 3},
		{virus.RequireAny, []virus.Finding{bad, bad, inf}, virus.StatusInfected, 3},
	} {
		cfg := virus.DefaultConfig()
		cfg.Require = tc.req
		if tc.min > 0 {
			cfg.MinEngines = tc.min
		}
		var ss []virus.Scanner
		for i, f := range tc.fs {
			ss = append(ss, &fake{name: string(rune('a' + i)), f: f})
		}
		r, _ := virus.New(cfg, ss, nil, nil).Check(context.Background(), msg("x"), nil)
		if r.Status != tc.want {
			t.Errorf("require=%s %v: %s, want %s", tc.req, tc.fs, r.Status, tc.want)
		}
		for _, s := range ss {
			if s.(*fake).calls.Load() != 1 {
				t.Errorf("every group must scan the message once")
			}
		}
	}
}

const cfgText = `
[lists]
allow_senders = ["friend@example.com"]

[virus]
enabled = true
timeout = "2s"

[[clamav.server]]
name = "a"
addresses = ["%A%"]
stream_max_length = "1KB"

[[clamav.server]]
name = "b"
addresses = ["%B%", "unix:/nonexistent/clamd.ctl"]
`

// sections is the schema of our two sections (Module without scanners
// builds nothing until enabled).
func sections() []policy.Module { return []policy.Module{virus.Module(nil), virus.ClamAVSection()} }

// build makes the pipeline the daemon would: scanners from [clamav], then
// the virus module with them.
func build(cfg *policy.Config) (*policy.Pipeline, error) { return buildWith(cfg, nil) }

// buildWith is build with a metrics seam.
func buildWith(cfg *policy.Config, m policy.Metrics) (*policy.Pipeline, error) {
	scanners, err := virus.NewScanners(virus.ConfigOf(cfg), virus.ClamAVConfigOf(cfg))
	if err != nil {
		return nil, err
	}
	return policy.New(cfg, []policy.Module{virus.Module(scanners), virus.ClamAVSection()}, nil, nil, m)
}

func pipeline(t *testing.T, text string) *policy.Pipeline {
	t.Helper()
	cfg, err := policy.Load("test.toml", []byte(text), sections())
	if err != nil {
		t.Fatal(err)
	}
	p, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Through the pipeline with two fake clamd groups: malware from an
// allow-listed sender is still rejected; oversize for one group spoils
// require = "all".
func TestPipelineWithFakeClamd(t *testing.T) {
	a := clamdtest.Start(t, clamdtest.Options{Signatures: map[string]string{eicar: "Eicar-A"}})
	b := clamdtest.Start(t, clamdtest.Options{TCP: true})
	p := pipeline(t, strings.NewReplacer("%A%", a.Addr(), "%B%", b.Addr()).Replace(cfgText))

	m := msg("hello\r\n" + eicar)
	m.MailFrom = "friend@example.com"
	v := p.Run(context.Background(), m)
	if v.Action != policy.ActionReject || v.Reply.String() != "554 5.7.1 Message contains malware" || !contains(v.Reasons, "virus-infected") {
		t.Fatalf("allow-listed malware: %s %s %v", v.Action, v.Reply, v.Reasons)
	}
	v = p.Run(context.Background(), msg("hello\r\n"))
	if v.Action != policy.ActionAccept {
		t.Fatalf("clean: %s %v", v.Action, v.Reasons)
	}
	var status string
	for _, f := range v.Prepend {
		if f.Name == "X-Virus-Status" {
			status = f.Value
		}
	}
	if status != "Clean" {
		t.Fatalf("X-Virus-Status %q in %v", status, v.Prepend)
	}
	if len(v.Delete) != 1 || v.Delete[0].Name != "X-Virus-Status" {
		t.Fatalf("forged X-Virus-Status not deleted: %v", v.Delete)
	}
	v = p.Run(context.Background(), msg(strings.Repeat("x", 2000)))
	if v.Action != policy.ActionReject || v.Reply.Code != 552 || !contains(v.Reasons, "virus-oversize") {
		t.Fatalf("oversize for group a: %s %s %v", v.Action, v.Reply, v.Reasons)
	}
	if a.Scans() != 2 || b.Scans() != 3 {
		t.Fatalf("scans a=%d b=%d, want 2 (oversize never sent) and 3", a.Scans(), b.Scans())
	}
}

func TestStalledClamdTempfailsWithinTimeout(t *testing.T) {
	a := clamdtest.Start(t, clamdtest.Options{Stall: true})
	p := pipeline(t, "[virus]\nenabled = true\ntimeout = \"1s\"\n[[clamav.server]]\naddresses = [\""+a.Addr()+"\"]\n")
	start := time.Now()
	v := p.Run(context.Background(), msg("hello"))
	el := time.Since(start)
	if v.Action != policy.ActionTempfail || !contains(v.Reasons, "virus-error") || el > 1500*time.Millisecond {
		t.Fatalf("stalled clamd: %s %v after %v", v.Action, v.Reasons, el)
	}
	if v.Checks[len(v.Checks)-1].Result.Headers == nil {
		t.Fatalf("the check itself must report the timeout (with its header), not the pipeline")
	}
}

func TestDefaultsAndValidate(t *testing.T) {
	p := pipeline(t, "")
	for _, c := range p.Checks() {
		if c == "virus" {
			t.Fatal("virus must be off by default (no clamd on a fresh machine)")
		}
	}
	mods := sections()
	for _, bad := range []string{
		"[virus]\non_infected = \"accept\"\n",
		"[virus]\nrequire = \"most\"\n",
		"[virus]\ninfected_reply = \"451 4.7.1 x\"\n",
		"[virus]\nheader_status = \"X Bad\"\n",
		"[[clamav.server]]\naddresses = [\"nowhere\"]\n",
		"[[clamav.server]]\nname = \"a\"\n[[clamav.server]]\nname = \"a\"\n",
		"[clamav]\nbogus = 1\n",
	} {
		if _, err := policy.Load("t.toml", []byte(bad), mods); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// fileBody is a spooled body, as the filter keeps large messages.
type fileBody struct{ f *os.File }

func (b fileBody) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }
func (b fileBody) Size() int64                             { st, _ := b.f.Stat(); return st.Size() }
func (b fileBody) Close() error                            { return b.f.Close() }

func bigMessage(t testing.TB, size int) *message.Message {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "body"))
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("A", 76) + "\r\n")
	for n := 0; n < size-len(eicar); n += len(line) {
		f.Write(line)
	}
	f.WriteString(eicar) // the very last bytes
	t.Cleanup(func() { f.Close() })
	m := msg("")
	m.Body = fileBody{f}
	return m
}

// A 50 MB message from a spool file is streamed: the heap does not grow
// with the message (and EICAR in its last bytes is still found).
func TestMemoryBounded50MB(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB")
	}
	a := clamdtest.Start(t, clamdtest.Options{Signatures: map[string]string{eicar: "Eicar-A"}})
	cfg := virus.DefaultConfig()
	cfg.Enabled = true
	p := pipeline(t, "[virus]\nenabled = true\ntimeout = \"60s\"\n[[clamav.server]]\nstream_max_length = \"100MB\"\naddresses = [\""+a.Addr()+"\"]\n")
	m := bigMessage(t, 50<<20)
	peak, v := measure(func() *policy.Verdict { return p.Run(context.Background(), m) })
	if v.Action != policy.ActionReject {
		t.Fatalf("EICAR at the end of 50 MB: %s %v %v", v.Action, v.Reasons, v.Checks)
	}
	t.Logf("peak heap growth while scanning 50 MB: %.1f MB", float64(peak)/(1<<20))
	if peak > 16<<20 {
		t.Fatalf("heap grew by %d MB for a 50 MB message: not streamed", peak>>20)
	}
}

// measure runs fn and returns the peak growth of the in-use heap.
func measure(fn func() *policy.Verdict) (uint64, *policy.Verdict) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
					peak.Store(ms.HeapInuse - base)
				}
			}
		}
	}()
	v := fn()
	close(stop)
	<-done
	return peak.Load(), v
}

func BenchmarkScan50MB(b *testing.B) {
	a := clamdtest.Start(b, clamdtest.Options{})
	p := pipelineB(b, "[virus]\nenabled = true\ntimeout = \"60s\"\n[[clamav.server]]\nstream_max_length = \"100MB\"\naddresses = [\""+a.Addr()+"\"]\n")
	m := bigMessage(b, 50<<20)
	b.SetBytes(m.RawSize())
	var worst uint64
	for b.Loop() {
		peak, _ := measure(func() *policy.Verdict { return p.Run(context.Background(), m) })
		worst = max(worst, peak)
	}
	b.ReportMetric(float64(worst)/(1<<20), "peak-heap-MB")
}

func pipelineB(b *testing.B, text string) *policy.Pipeline {
	cfg, err := policy.Load("b.toml", []byte(text), sections())
	if err != nil {
		b.Fatal(err)
	}
	p, err := build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// The example file (also the built-in default) documents our sections with
// the defaults the code uses, including the commented [[clamav.server]].
func TestExampleConfigMatchesDefaults(t *testing.T) {
	data, err := os.ReadFile("../../examples/mailwarden.toml")
	if err != nil {
		t.Fatal(err)
	}
	mods := sections()
	// Keep only the core keys and our sections: other modules' sections
	// are not registered here.
	var keep []string
	on := true
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "[") {
			name := strings.Trim(t, "[] ")
			on = name == "virus" || name == "clamav" || name == "clamav.server" || coreSection(name)
		}
		if on {
			keep = append(keep, l)
		}
	}
	cfg, err := policy.Load("mailwarden.toml", []byte(strings.Join(keep, "\n")), mods)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *cfg.Sections["virus"].(*virus.Config), *virus.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("[virus] in the example: %+v\nDefaultConfig: %+v", got, want)
	}
	// Uncommenting the [[clamav.server]] example gives the default group.
	var block []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		if l == "# [[clamav.server]]" {
			in = true
		}
		if in {
			if !strings.HasPrefix(l, "#") {
				break
			}
			s := strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
			if !strings.HasPrefix(s, "#") {
				block = append(block, s)
			}
		}
	}
	cfg, err = policy.Load("block.toml", []byte(strings.Join(block, "\n")), mods)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(block, "\n"))
	}
	g := cfg.Sections["clamav"].(*virus.ClamAVConfig).Servers
	d := virus.DefaultGroup()
	if len(g) != 1 || g[0].Name != d.Name || strings.Join(g[0].Addresses, ",") != strings.Join(d.Addresses, ",") || g[0].StreamMaxLength != d.StreamMaxLength || g[0].ConnectTimeout != d.ConnectTimeout {
		t.Errorf("commented [[clamav.server]] %+v, default %+v", g, d)
	}
}

var keyLine = regexp.MustCompile(`^[a-z_]+ = `)

// Uncommenting the [[virus.engine]] examples gives three valid engines.
func TestExampleEngines(t *testing.T) {
	data, err := os.ReadFile("../../examples/mailwarden.toml")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		if l == "# [[virus.engine]]" && !in {
			in = true
		}
		if in {
			if !strings.HasPrefix(l, "#") {
				break
			}
			// Settings and table headers; the prose between them stays out.
			if l := strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "); strings.HasPrefix(l, "[[") || keyLine.MatchString(l) {
				block = append(block, l)
			}
		}
	}
	cfg, err := policy.Load("engines.toml", []byte("[virus]\n"+strings.Join(block, "\n")), sections())
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(block, "\n"))
	}
	es := cfg.Sections["virus"].(*virus.Config).Engines
	if len(es) != 3 || es[0].ScannerName() != "clamd:local" || es[1].ScannerName() != "icap:second" || es[2].ScannerName() != "sssp:sophos" || es[1].MaxSize != 5<<20 {
		t.Errorf("example engines: %+v", es)
	}
}

// coreSection reports the tables of the policy root ([listen] and [log] are
// the daemon's, cmd/mailwarden/internal/daemon).
func coreSection(name string) bool {
	switch name {
	case "message", "replies", "headers", "score", "lists", "rule", "score.domain":
		return true
	}
	return false
}

// While clamd is down, an allow-listed sender's mail is not let through
// unscanned: the scan error's tempfail is mandatory.
func TestScannerDownNotSoftenedByAllowList(t *testing.T) {
	p := pipeline(t, "[lists]\nallow_senders = [\"friend@example.com\"]\n[virus]\nenabled = true\ntimeout = \"2s\"\n[[clamav.server]]\naddresses = [\"unix:/nonexistent/clamd.ctl\"]\n")
	m := msg("hello\r\n")
	m.MailFrom = "friend@example.com"
	v := p.Run(context.Background(), m)
	if v.Action != policy.ActionTempfail || !contains(v.Reasons, "virus-error") {
		t.Fatalf("allow-listed sender, clamd down: %s %v", v.Action, v.Reasons)
	}
}

// clamd's own limits (Heuristics.Limits.Exceeded.*, AlertExceedsMax yes)
// and its INSTREAM size limit are "unscanned", never clean, and by default
// not malware either (issue 18 item 4).
func TestClamdLimitsAreUnscanned(t *testing.T) {
	for _, tc := range []struct {
		reply  string
		limits string
		action policy.Action
		reason string
		header string
	}{
		{"stream: Heuristics.Limits.Exceeded.MaxScanSize FOUND\n", "", policy.ActionReject, "virus-oversize", "Unscanned (oversize)"},
		{"stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND\n", `limits_exceeded = "unscanned"` + "\non_oversize = \"quarantine\"", policy.ActionQuarantine, "virus-oversize", "Unscanned (oversize)"},
		{"stream: Heuristics.Limits.Exceeded.MaxFiles FOUND\n", `limits_exceeded = "infected"`, policy.ActionReject, "virus-infected", "Infected (Heuristics.Limits.Exceeded.MaxFiles)"},
		{"INSTREAM size limit exceeded. ERROR\n", "", policy.ActionReject, "virus-oversize", "Unscanned (oversize)"},
		{"stream: Heuristics.Limits.ExceededNot FOUND\n", "", policy.ActionReject, "virus-infected", "Infected (Heuristics.Limits.ExceededNot)"},
	} {
		a := clamdtest.Start(t, clamdtest.Options{Reply: tc.reply})
		p := pipeline(t, "[virus]\nenabled = true\n"+tc.limits+"\n[[clamav.server]]\naddresses = [\""+a.Addr()+"\"]\n")
		v := p.Run(context.Background(), msg("hello\r\n"))
		var status string
		for _, f := range v.Prepend {
			if f.Name == "X-Virus-Status" {
				status = f.Value
			}
		}
		if v.Action != tc.action || !contains(v.Reasons, tc.reason) || status != tc.header {
			t.Errorf("%q with %q: %s %v %q, want %s %s %q", tc.reply, tc.limits, v.Action, v.Reasons, status, tc.action, tc.reason, tc.header)
		}
	}
	if _, err := policy.Load("x.toml", []byte("[virus]\nlimits_exceeded = \"clean\"\n"), sections()); err == nil {
		t.Error(`limits_exceeded = "clean" accepted`)
	}
}
