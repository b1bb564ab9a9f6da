package e2e_test

// Operations end-to-end suite (issue 7): relay guard and local-only classes
// refusing at RCPT through a real Postfix, the spool guard's 452, the mode
// switch over the control socket without a restart, `mailwarden status`,
// a /metrics scrape, `mailwarden audit` against the private Postfix's
// main.cf, and `mailwarden report --html` rendered by headless Chromium.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

func opsFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mwRun runs the mailwarden binary with args and returns stdout+stderr and
// the exit code.
func opsRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(harness.Mailwarden(t), args...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mailwarden %v: %v", args, err)
	}
	return string(out), code
}

// opsSend submits one message from a client address presented with XCLIENT
// ("" = Postfix sees 127.0.0.1, which is in trusted_networks).
func opsSend(pf *harness.Postfix, clientIP, from, to string) error {
	s := harness.Submission{Helo: "client.e2e.test", From: from, Rcpts: []string{to}, Data: coreMessage(from, to, "ops test")}
	if clientIP != "" {
		s.XClient = "ADDR=" + clientIP + " NAME=[UNAVAILABLE]"
	}
	return s.Send(pf.SMTPAddr())
}

func opsScrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	return string(b)
}

// metricValue returns the value of the first sample whose line starts
// with prefix (name{labels...), or -1.
func opsMetric(text, prefix string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestOpsRelayLocalOnlyModeStatusMetrics(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	sink := harness.StartSink(t)
	ctlDir := t.TempDir()
	sock := filepath.Join(ctlDir, "control.sock")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", opsFreePort(t))
	mw := harness.StartMailwarden(t, fmt.Sprintf(`
local_domains = ["e2e.test"]

[[local_only.class]]
name = "staff"
members = ["all-staff@e2e.test", "*@intern.e2e.test"]
refuse_inbound = true

[spool]
dirs = [%q]
min_free_bytes = "1KB"
interval = "1s"

[health]
relay_hosts = [%q]
interval = "1s"

[control]
socket = %q

# Foreign clients come from documentation networks: no DNS here.
[auth.spf]
enabled = false
[auth.dkim]
enabled = false
[auth.dmarc]
enabled = false

[metrics]
address = %q
`, ctlDir, sink.Addr, sock, metricsAddr))
	// The MTA is misconfigured on purpose: its mynetworks trusts two foreign
	// networks, so Postfix would relay for them and the milter's relay
	// guard (trusted_networks = loopback) is the only line of defence.
	// QUIRK(postfix): smtpd refuses to start with a plain open relay
	// (smtpd_relay_restrictions = permit), so a wide mynetworks it is.
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: mw.Addr(), Relay: sink.Addr,
		MainCF: map[string]string{"mynetworks": "127.0.0.0/8 192.0.2.0/24 198.51.100.0/24"}})

	// The control socket is owner-only.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket mode %v, want socket 0600", fi.Mode())
	}

	// A foreign client may address local domains ...
	if err := opsSend(pf, "192.0.2.10", "alice@sender.example", "bob@e2e.test"); err != nil {
		t.Fatalf("foreign client to a local domain: %v", err)
	}
	sink.Wait(t, 20*time.Second)
	// ... but not relay: refused at RCPT with 550 5.7.1 and logged.
	err = opsSend(pf, "192.0.2.10", "alice@sender.example", "victim@elsewhere.example")
	wantSMTPError(t, err, 550, "5.7.1", "Relay access denied")
	var se *harness.SMTPError
	if errors.As(err, &se) && se.Stage != "RCPT" {
		t.Errorf("relay refused at %s, want RCPT", se.Stage)
	}
	line := mw.WaitLog(t, func(m map[string]any) bool {
		return m["msg"] == "relay attempt" && m["rcpt"] == "victim@elsewhere.example" && m["client"] == "192.0.2.10"
	}, 10*time.Second)
	if line["reason"] != "relay-attempt" {
		t.Errorf("relay log line %v", line)
	}

	// Local-only: a member may write inside, not outside (trusted client).
	if err := opsSend(pf, "", "all-staff@e2e.test", "carol@e2e.test"); err != nil {
		t.Fatalf("local-only class to a local recipient: %v", err)
	}
	err = opsSend(pf, "", "all-staff@e2e.test", "friend@outside.example")
	wantSMTPError(t, err, 550, "5.7.1", "Recipient not allowed")
	mw.WaitLog(t, func(m map[string]any) bool {
		return m["msg"] == "local-only refused" && m["reason"] == "local-only" && m["rcpt"] == "friend@outside.example"
	}, 10*time.Second)
	err = opsSend(pf, "", "eve@intern.e2e.test", "friend@outside.example")
	wantSMTPError(t, err, 550, "5.7.1", "Recipient not allowed")
	// refuse_inbound: from outside to the class.
	err = opsSend(pf, "198.51.100.7", "stranger@outside.example", "all-staff@e2e.test")
	wantSMTPError(t, err, 550, "5.7.1", "Recipient not allowed")
	mw.WaitLog(t, func(m map[string]any) bool {
		return m["msg"] == "local-only refused" && m["reason"] == "local-only-inbound"
	}, 10*time.Second)

	// Status through the control socket.
	out, code := opsRun(t, "status", "-socket", sock)
	if code != 0 {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	for _, want := range []string{"mode:       enforce", "uptime:", "in flight:  0", "smtp  " + sink.Addr + "  up", ctlDir} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// Safe mode at short notice: monitor, without a restart.
	out, code = opsRun(t, "mode", "-socket", sock, "monitor")
	if code != 0 || !strings.Contains(out, "mode monitor (override; configured: enforce)") {
		t.Fatalf("mode monitor: exit %d: %s", code, out)
	}
	mw.WaitLog(t, func(m map[string]any) bool { return m["msg"] == "mode changed" && m["to"] == "monitor" }, 5*time.Second)
	if err := opsSend(pf, "192.0.2.10", "alice@sender.example", "monitored@elsewhere.example"); err != nil {
		t.Fatalf("relay attempt in monitor mode was refused: %v", err)
	}
	if m := sink.WaitFor(20*time.Second, harness.To("monitored@elsewhere.example")); m == nil {
		t.Fatal("monitor mode: the relayed message never reached the sink")
	}

	mw.WaitLog(t, func(m map[string]any) bool {
		return m["msg"] == "message" && m["mode"] == "monitor" && m["would_be"] == "reject" && hasReason(m, "relay-attempt")
	}, 10*time.Second)
	out, _ = opsRun(t, "status", "-socket", sock)
	if !strings.Contains(out, "monitor (override; configured: enforce)") {
		t.Errorf("status after mode switch:\n%s", out)
	}
	m := opsScrape(t, metricsAddr)
	if opsMetric(m, `mailwarden_mode{mode="monitor"}`) != 1 || opsMetric(m, `mailwarden_mode{mode="enforce"}`) != 0 {
		t.Errorf("mode gauge wrong:\n%s", opsGrep(m, "mailwarden_mode"))
	}

	// Back to the configured mode: refused again.
	if out, code := opsRun(t, "mode", "-socket", sock, "config"); code != 0 || !strings.Contains(out, "mode enforce (from the config") {
		t.Fatalf("mode config: exit %d: %s", code, out)
	}
	wantSMTPError(t, opsSend(pf, "192.0.2.10", "alice@sender.example", "victim2@elsewhere.example"), 550, "5.7.1", "Relay access denied")
	if n := opsCountLogs(mw, "mailwarden started"); n != 1 {
		t.Errorf("daemon started %d times; the mode switch must not restart it", n)
	}
	// A bad mode is refused by the client, the daemon keeps its mode.
	if _, code := opsRun(t, "mode", "-socket", sock, "panic"); code == 0 {
		t.Error("mode panic accepted")
	}

	// Metrics: counters moved.
	m = opsScrape(t, metricsAddr)
	checks := []struct {
		prefix string
		min    float64
	}{
		{`mailwarden_events_total{event="relay-attempt"}`, 3},
		{`mailwarden_events_total{event="local-only"}`, 2},
		{`mailwarden_events_total{event="local-only-inbound"}`, 1},
		{`mailwarden_events_total{event="mode-change"}`, 2},
		{`mailwarden_messages_total{action="accept",mode="enforce",would_be="accept"}`, 2},
		{`mailwarden_messages_total{action="accept",mode="monitor",would_be="reject"}`, 1},
		{`mailwarden_message_reasons_total{reason="relay-attempt"}`, 1},
		{`mailwarden_check_status_total{check="relay",status="pass"}`, 1},
		{`mailwarden_check_duration_seconds_count{check="relay"}`, 1},
		{`mailwarden_neighbour_up{kind="smtp",target="` + sink.Addr + `"}`, 1},
		{`mailwarden_spool_free_bytes{dir="` + ctlDir + `"}`, 1024},
		{`mailwarden_spool_low{dir="` + ctlDir + `"}`, 0},
		{`mailwarden_inflight_sessions`, 0},
		{`mailwarden_config_reloads_total`, 0},
	}
	for _, c := range checks {
		if v := opsMetric(m, c.prefix); v < c.min {
			t.Errorf("%s = %v, want >= %v", c.prefix, v, c.min)
		}
	}
	// A reload is counted.
	mw.Reload(t, strings.Replace(opsReadFile(t, mw.ConfigPath), `interval = "1s"`, `interval = "2s"`, 1))
	mw.WaitLog(t, harness.MsgIs("config reloaded"), 10*time.Second)
	if v := opsMetric(opsScrape(t, metricsAddr), "mailwarden_config_reloads_total"); v != 1 {
		t.Errorf("reloads = %v, want 1", v)
	}

	// The audit finds the milter wiring of this Postfix correct.
	out, _ = opsRun(t, "audit", "--main-cf", filepath.Join(pf.ConfigDir, "main.cf"), "-config", mw.ConfigPath, "-v")
	for _, want := range []string{"ok        milter-smtpd", "ok        milter-non_smtpd", "ok        relay-restrictions"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}

	// The report over this daemon's real log counts what happened.
	logFile := filepath.Join(t.TempDir(), "mailwarden.log")
	if err := os.WriteFile(logFile, []byte(mw.Stderr()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = opsRun(t, "report", logFile)
	if code != 0 {
		t.Fatalf("report: %d\n%s", code, out)
	}
	for _, re := range []string{`relay attempts: [3-9]`, `local-only refusals: [3-9]`, `(?m)^\s+[1-9]\d*\s+192\.0\.2\.10$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("report does not match %s:\n%s", re, out)
		}
	}
}

func TestOpsSpoolGuard(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	sink := harness.StartSink(t)
	// No file system has a zettabyte free: the guard defers at once.
	mw := harness.StartMailwarden(t, `
local_domains = ["e2e.test"]
[control]
socket = ""
[spool]
min_free_bytes = "1000000000GB"
interval = "1s"
`)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: mw.Addr(), Relay: sink.Addr})
	mw.WaitLog(t, harness.MsgIs("spool space low"), 10*time.Second)
	err := opsSend(pf, "", "alice@e2e.test", "bob@e2e.test")
	wantSMTPError(t, err, 452, "4.3.1", "Insufficient system storage")
}

func TestOpsReportHTMLInChromium(t *testing.T) {
	t.Parallel()
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		harness.Unavailable(t, "chromium not installed: %v", err)
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	out, code := opsRun(t, "report", "--html", page, filepath.Join(root, "cmd/mailwarden/internal/report/testdata/sample.log"))
	if code != 0 {
		t.Fatalf("report: %d\n%s", code, out)
	}
	profile := t.TempDir()
	shot := filepath.Join(dir, "report.png")
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile}
	run := func(args ...string) []byte {
		cmd := exec.Command(chromium, append(append([]string{}, base...), args...)...)
		var stdout strings.Builder
		cmd.Stdout = &stdout
		cmd.Stderr = io.Discard
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatalf("chromium: %v", err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("chromium %v: %v", args, err)
			}
		case <-time.After(90 * time.Second):
			cmd.Process.Kill()
			t.Fatal("chromium hung")
		}
		return []byte(stdout.String())
	}
	dom := string(run("--dump-dom", "file://"+page))
	for _, want := range []string{
		`id="total-messages">39<`, `id="action-reject">5<`, `id="action-accept">31<`,
		`<svg id="chart-actions"`, `<svg id="chart-hourly"`, `<svg id="chart-clients"`, `<svg id="chart-auth"`,
		"198.51.100.7", "evil.test", "virus-infected", "client:192.0.2.200", "&lt;b&gt;bold&lt;/b&gt;",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	// The browser parsed the charts as SVG: every bar is a rect element.
	if n := strings.Count(dom, "<rect "); n < 10 {
		t.Errorf("rendered DOM has %d rect elements", n)
	}
	if strings.Contains(dom, "<script") || strings.Contains(dom, "<b>bold") {
		t.Error("hostile log content became markup")
	}
	run("--screenshot="+shot, "--window-size=900,1600", "file://"+page)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		t.Errorf("screenshot missing or blank: %v", err)
	}
}

func opsGrep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func opsCountLogs(d *harness.Daemon, msg string) int {
	n := 0
	for _, l := range d.Logs() {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

func opsReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Neighbour health against real servers: a relay (the sink), clamd, Redis
// and a DNS server are up; clamd stopped shows as down in status, in the
// metrics and in the log.
func TestOpsHealthRealNeighbours(t *testing.T) {
	t.Parallel()
	harness.Require(t, "clamd", "redis-server")
	sink := harness.StartSink(t)
	redis := harness.StartRedis(t)
	clamd := harness.StartClamd(t, harness.ClamdOptions{})
	dns := harness.StartDNS(t, "probe.e2e.test. 60 IN A 192.0.2.1")
	sock := filepath.Join(t.TempDir(), "control.sock")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", opsFreePort(t))
	mw := harness.StartMailwarden(t, fmt.Sprintf(`
[health]
interval = "500ms"
timeout = "2s"
relay_hosts = [%q]
clamd = %q
redis = %q
dns_servers = [%q]
dns_query = "probe.e2e.test"
[control]
socket = %q
[metrics]
address = %q
`, sink.Addr, clamd.UnixAddr(), redis, dns.Addr, sock, metricsAddr))

	type st struct {
		Health []struct {
			Kind, Target, Error string
			Up                  bool
		}
	}
	status := func() (st, string, int) {
		out, code := opsRun(t, "status", "-json", "-socket", sock)
		var s st
		if code == 0 || code == 3 {
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatalf("status -json: %v\n%s", err, out)
			}
		}
		return s, out, code
	}
	up := func(s st) map[string]bool {
		m := map[string]bool{}
		for _, h := range s.Health {
			m[h.Kind] = h.Up
		}
		return m
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, out, code := status()
		u := up(s)
		if code == 0 && len(u) == 4 && u["smtp"] && u["clamd"] && u["redis"] && u["dns"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("neighbours not all up (exit %d):\n%s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := opsScrape(t, metricsAddr)
	for _, k := range []string{"smtp", "clamd", "redis", "dns"} {
		if v := opsMetric(m, `mailwarden_neighbour_up{kind="`+k+`"`); v != 1 {
			t.Errorf("mailwarden_neighbour_up %s = %v", k, v)
		}
	}

	clamd.Stop()
	mw.WaitLog(t, func(l map[string]any) bool { return l["msg"] == "neighbour down" && l["kind"] == "clamd" }, 15*time.Second)
	s, out, code := status()
	if u := up(s); code != 3 || u["clamd"] || !u["redis"] {
		t.Errorf("after clamd stopped: exit %d\n%s", code, out)
	}
	if v := opsMetric(opsScrape(t, metricsAddr), `mailwarden_neighbour_up{kind="clamd"`); v != 0 {
		t.Errorf("clamd still up in metrics: %v", v)
	}
}
