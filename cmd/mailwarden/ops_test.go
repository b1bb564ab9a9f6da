package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/policy"
)

func testDaemon(t *testing.T) *daemon.Server {
	t.Helper()
	cfg, err := policy.Load("t", []byte("local_domains = [\"example.org\"]\n[control]\nsocket = \"\"\n"), sections())
	if err != nil {
		t.Fatal(err)
	}
	d := daemon.New(daemon.Options{Started: time.Now().Add(-90 * time.Second), Version: versionString()})
	stop, err := d.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return d
}

func TestControlProtocol(t *testing.T) {
	d := testDaemon(t)
	sock := filepath.Join(t.TempDir(), "ctl", "control.sock")
	// A stale socket file from a crashed daemon is replaced.
	os.MkdirAll(filepath.Dir(sock), 0o700)
	stale, _ := net.Listen("unix", sock)
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ctl := control.ConfigOf(d.Pipeline().Config())
	ctl.Socket = sock
	stop, err := control.Start(ctl, d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	// A second daemon must not steal a live socket.
	if _, err := control.Start(&control.Config{Socket: sock}, d, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("live socket taken over: %v", err)
	}

	resp, err := control.Call(sock, control.Request{Cmd: "status"})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.Status; s.Mode != policy.ModeEnforce || s.Override || s.UptimeSeconds < 89 || len(s.Checks) == 0 {
		t.Errorf("status %+v", s)
	}
	resp, err = control.Call(sock, control.Request{Cmd: "mode", Mode: "tempfail-all"})
	if err != nil || resp.Status.Mode != policy.ModeTempfailAll || !resp.Status.Override {
		t.Fatalf("mode: %+v %v", resp, err)
	}
	// The pipeline in force sees it at once.
	if d.Pipeline().Mode() != policy.ModeTempfailAll {
		t.Fatal("mode switch not in force")
	}
	if _, err := control.Call(sock, control.Request{Cmd: "mode", Mode: "chaos"}); err == nil {
		t.Error("bad mode accepted")
	}
	if _, err := control.Call(sock, control.Request{Cmd: "reboot"}); err == nil {
		t.Error("unknown command accepted")
	}
	if resp, err := control.Call(sock, control.Request{Cmd: "mode", Mode: "config"}); err != nil || resp.Status.Override || resp.Status.Mode != policy.ModeEnforce {
		t.Fatalf("mode config: %+v %v", resp, err)
	}
	// Garbage and several requests on one connection.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "not json\n{\"cmd\":\"status\"}\n")
	r := bufio.NewReader(c)
	for i, wantOK := range []bool{false, true} {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var cr control.Response
		if err := json.Unmarshal(line, &cr); err != nil || cr.OK != wantOK {
			t.Errorf("answer %d: %s", i, line)
		}
	}
	// The CLI commands.
	var out, errb strings.Builder
	if code := run([]string{"mode", "-socket", sock, "monitor"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "mode monitor (override; configured: enforce)") {
		t.Errorf("mode cli: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	// The daemon started 90 s before the test (however long its start
	// took on a loaded machine).
	code := run([]string{"status", "-socket", sock}, &out, &errb)
	up := regexp.MustCompile(`uptime: +(\d+)m(\d+)s`).FindStringSubmatch(out.String())
	if code != 0 || !strings.Contains(out.String(), "monitor (override; configured: enforce)") || up == nil || atoi(up[1])*60+atoi(up[2]) < 90 {
		t.Errorf("status cli: %d\n%s", code, out.String())
	}
	if code := run([]string{"status", "-socket", filepath.Join(t.TempDir(), "none.sock")}, &out, &errb); code != 1 {
		t.Errorf("status without daemon: exit %d", code)
	}
}

// The example file documents the defaults: loading it must give exactly the
// modules' Default() for the operations sections.
func TestExampleOpsSectionsAreDefaults(t *testing.T) {
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sections() {
		switch m.Name {
		case "relay", "local_only", "spool", "health", "control", "metrics":
		default:
			continue
		}
		got, _ := json.Marshal(cfg.Sections[m.Name])
		want, _ := json.Marshal(m.Default())
		if string(got) != string(want) {
			t.Errorf("[%s] in examples/mailwarden.toml differs from the default:\n got %s\nwant %s", m.Name, got, want)
		}
	}
}

func TestReportAndAuditCommands(t *testing.T) {
	const sample = "internal/report/testdata/sample.log"
	var out, errb strings.Builder
	if code := run([]string{"report", "--json", sample}, &out, &errb); code != 0 {
		t.Fatalf("report: %d %s", code, errb.String())
	}
	var rep struct {
		Messages int            `json:"messages"`
		ByAction map[string]int `json:"by_action"`
	}
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || rep.Messages != 39 || rep.ByAction["reject"] != 5 {
		t.Fatalf("report --json: %v %+v", err, rep)
	}
	// The fixture is older than an hour: --since drops it all. Flags may
	// follow the file names.
	out.Reset()
	if code := run([]string{"report", sample, "--since", "1h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "messages: 0 ") {
		t.Fatalf("report --since: %d\n%s", code, out.String())
	}
	html := filepath.Join(t.TempDir(), "r.html")
	if code := run([]string{"report", "--html", html, sample}, io.Discard, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	if b, _ := os.ReadFile(html); !strings.Contains(string(b), "<svg") {
		t.Fatal("no svg in the html page")
	}
	for _, bad := range [][]string{{"report"}, {"report", "--since", "soon", sample}, {"report", "/nonexistent.log"}} {
		if code := run(bad, io.Discard, io.Discard); code == 0 {
			t.Errorf("%v succeeded", bad)
		}
	}
	for _, c := range []struct {
		file string
		code int
	}{{"openrelay.cf", 4}, {"wide.cf", 4}} {
		out.Reset()
		code := run([]string{"audit", "--main-cf", "internal/audit/testdata/" + c.file}, &out, &errb)
		if code != c.code || !strings.Contains(out.String(), "fix: ") {
			t.Errorf("audit %s: exit %d, want %d\n%s", c.file, code, c.code, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"audit", "--json", "--main-cf", "internal/audit/testdata/good.cf"}, &out, &errb); code == 1 {
		t.Fatal(errb.String())
	}
	var fs []struct{ ID, Severity string }
	if err := json.Unmarshal([]byte(out.String()), &fs); err != nil || len(fs) == 0 {
		t.Fatalf("audit --json: %v\n%s", err, out.String())
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
