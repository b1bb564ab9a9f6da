// Package harness starts the real programs that mailwarden's end-to-end
// tests (package e2e_test in test/) talk to: the mailwarden binary itself
// (built once per test process), a private Postfix instance, an SMTP sink
// that plays the next hop, and, in files owned by other checks, DNS, clamd,
// Redis and Sendmail.
//
// Everything a helper starts is private to the calling test: its own
// directories, ports and sockets, stopped by t.Cleanup. Several instances
// may run at once in one test process, so tests may use t.Parallel.
//
// A missing program skips a test on a developer machine but fails it when
// CI=true (see Require): a suite that silently skips in CI proves nothing.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI=true), where a missing
// server is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends the test because something it needs is missing: t.Fatal
// in CI, t.Skip elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("harness: %s (CI=true, so this is a failure)", msg)
	}
	t.Skipf("harness: %s (set CI=true to make this a failure)", msg)
}

// Require checks that every named program can be found (in $PATH or the
// usual sbin directories, which a non-root PATH often lacks).
func Require(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := LookPath(b); err != nil {
			Unavailable(t, "%s not installed", b)
		}
	}
}

// RequireRoot ends the test (skip, or fail in CI) unless it runs as root,
// which starting a private Postfix needs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "must run as root")
	}
}

// LookPath finds a program in $PATH, then in /usr/sbin and /sbin.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("harness: %s not found", name)
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("harness: %s not found in $PATH, /usr/sbin or /sbin", name)
}

// ModuleRoot is the directory of mailwarden's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/mailwarden/mailwarden\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: mailwarden's go.mod not found above the working directory")
		}
		dir = parent
	}
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	tempDirs  struct {
		sync.Mutex
		dirs []string
	}
)

// Main runs the tests and removes what the harness kept across tests (the
// built binary). Use it from TestMain: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	tempDirs.Lock()
	for _, d := range tempDirs.dirs {
		os.RemoveAll(d)
	}
	tempDirs.Unlock()
	return code
}

// processTempDir makes a directory that lives as long as the test process
// (removed by Main). Its path is short, so unix sockets fit in it.
func processTempDir(pattern string) (string, error) {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	tempDirs.Lock()
	tempDirs.dirs = append(tempDirs.dirs, d)
	tempDirs.Unlock()
	return d, nil
}

// shortTempDir is a per-test directory with a short path (unix socket
// paths are limited to 107 bytes, and t.TempDir embeds the test name),
// readable by other users (Postfix's daemons run as postfix).
func shortTempDir(t testing.TB, pattern string) string {
	t.Helper()
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Mailwarden returns the path of the mailwarden binary, built from
// ./cmd/mailwarden once per test process (without the race detector: the
// daemon under test should run at production speed; its packages have
// their own -race unit tests).
func Mailwarden(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := processTempDir("mwbin")
		if err != nil {
			buildErr = err
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			if gobin, err = exec.LookPath("go"); err != nil {
				buildErr = fmt.Errorf("harness: no go command: %w", err)
				return
			}
		}
		buildBin = filepath.Join(dir, "mailwarden")
		cmd := exec.Command(gobin, "build", "-o", buildBin, "./cmd/mailwarden")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("harness: go build ./cmd/mailwarden: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// Daemon is a running `mailwarden serve`.
type Daemon struct {
	ConfigPath string // the config file it runs on
	Dir        string // private directory (config, socket)

	addr   string // milter address as Postfix writes it
	dns    string // the private test DNS server's address
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	exit   error         // valid after done
	mu     sync.Mutex
	logs   []map[string]any
	stderr bytes.Buffer
	change chan struct{} // closed and replaced on every new log line
	prefix []string      // a command the daemon runs under (prlimit)
}

// PID is the daemon's process id (prlimit execs it: the same process).
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// StartMailwarden writes toml (made private to this daemon by
// withDefaults: a [listen] address on a private unix socket, its own state
// file and control socket, unless the text sets them) and runs `mailwarden
// serve -config FILE` until the test ends. It returns once the milter socket
// accepts connections. Standard error is read as the JSON log.
func StartMailwarden(t testing.TB, toml string) *Daemon {
	t.Helper()
	return StartMailwardenWith(t, toml, DaemonOptions{})
}

// DaemonOptions change how StartMailwardenWith runs the daemon.
type DaemonOptions struct {
	// NoFile, when set, runs the daemon under this open-file limit (soft
	// and hard, through prlimit(1), so Go cannot raise it).
	NoFile int
}

// StartMailwardenWith is StartMailwarden with options.
func StartMailwardenWith(t testing.TB, toml string, o DaemonOptions) *Daemon {
	t.Helper()
	bin := Mailwarden(t)
	d := &Daemon{Dir: shortTempDir(t, "mw"), change: make(chan struct{})}
	if o.NoFile > 0 {
		p, err := exec.LookPath("prlimit")
		if err != nil {
			Unavailable(t, "prlimit not found: %v", err)
			return nil
		}
		d.prefix = []string{p, fmt.Sprintf("--nofile=%d:%d", o.NoFile, o.NoFile), "--"}
	}
	d.ConfigPath = filepath.Join(d.Dir, "mailwarden.toml")
	// Never the machine's resolver: traffic may only go to this machine,
	// and a test's DNS answers come from a test DNS server. Unless the test
	// brings its own, the daemon gets an empty one (NXDOMAIN with SOA for
	// every name, like a real resolver for names that do not exist).
	d.dns = StartDNS(t).Addr
	text, addr := withDefaults(toml, d.Dir, "unix:"+filepath.Join(d.Dir, "milter.sock"), d.dns)
	d.addr = addr
	if err := os.WriteFile(d.ConfigPath, []byte(text), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := d.start(bin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !d.exited() {
			d.Stop(t)
		}
		if t.Failed() {
			t.Logf("mailwarden log:\n%s", d.Stderr())
		}
	})
	if err := d.waitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\nmailwarden stderr:\n%s", err, d.Stderr())
	}
	return d
}

func (d *Daemon) start(bin string) error {
	args := append(append([]string(nil), d.prefix...), bin, "serve", "-config", d.ConfigPath)
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Dir = d.Dir
	d.cmd.Env = append(os.Environ(), "TMPDIR="+d.Dir)
	pr, err := d.cmd.StderrPipe()
	if err != nil {
		return err
	}
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("harness: start mailwarden: %w", err)
	}
	d.done = make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			d.addLine(sc.Bytes())
		}
	}()
	go func() {
		<-readDone // Wait closes the pipe: read everything first
		d.exit = d.cmd.Wait()
		close(d.done)
	}()
	return nil
}

func (d *Daemon) addLine(line []byte) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		m = map[string]any{"msg": string(line), "_raw": true}
	}
	d.mu.Lock()
	d.stderr.Write(line)
	d.stderr.WriteByte('\n')
	d.logs = append(d.logs, m)
	close(d.change)
	d.change = make(chan struct{})
	d.mu.Unlock()
}

func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *Daemon) waitReady(timeout time.Duration) error {
	network, address := dialTarget(d.addr)
	deadline := time.Now().Add(timeout)
	for {
		if d.exited() {
			return fmt.Errorf("harness: mailwarden exited before listening on %s: %v", d.addr, d.exit)
		}
		c, err := net.DialTimeout(network, address, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: mailwarden not listening on %s after %v: %v", d.addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialTarget turns a milter address (unix:/path, inet:host:port,
// inet:port@host) into net.Dial arguments.
func dialTarget(addr string) (network, address string) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "local:"):
		return "unix", strings.TrimPrefix(addr, "local:")
	case strings.HasPrefix(addr, "inet6:"):
		return "tcp6", strings.TrimPrefix(addr, "inet6:")
	}
	a := strings.TrimPrefix(addr, "inet:")
	if i := strings.IndexByte(a, '@'); i >= 0 { // Sendmail's port@host
		return "tcp", net.JoinHostPort(a[i+1:], a[:i])
	}
	return "tcp", a
}

var anyTableRE = regexp.MustCompile(`(?m)^[ \t]*\[`)

// tableBody finds a table's body in a TOML text: the offsets after its
// header line and before the next table header.
func tableBody(toml, table string) (start, end int, ok bool) {
	re := regexp.MustCompile(`(?m)^[ \t]*\[[ \t]*` + regexp.QuoteMeta(table) + `[ \t]*\][ \t]*(#.*)?$`)
	loc := re.FindStringIndex(toml)
	if loc == nil {
		return 0, 0, false
	}
	end = len(toml)
	if next := anyTableRE.FindStringIndex(toml[loc[1]:]); next != nil {
		end = loc[1] + next[0]
	}
	return loc[1], end, true
}

// keyValue returns the string value of key in a table body ("" and false
// when the key is not set).
func keyValue(body, key string) (string, bool) {
	re := regexp.MustCompile(`(?m)^[ \t]*` + regexp.QuoteMeta(key) + `[ \t]*=[ \t]*(?:"([^"]*)"|'([^']*)'|(\S+))`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return "", false
	}
	return m[1] + m[2] + m[3], true
}

// setDefaults adds key = "value" lines to a table unless the table sets
// them (the table is appended if missing). defaults is ordered pairs.
func setDefaults(toml, table string, defaults [][2]string) string {
	start, end, ok := tableBody(toml, table)
	body := ""
	if ok {
		body = toml[start:end]
	}
	var add []string
	for _, kv := range defaults {
		if _, set := keyValue(body, kv[0]); !set {
			v := fmt.Sprintf("%q", kv[1])
			if strings.HasPrefix(kv[1], "[") || kv[1] == "true" || kv[1] == "false" {
				v = kv[1] // an array or a boolean, written as TOML
			}
			add = append(add, kv[0]+" = "+v)
		}
	}
	if len(add) == 0 {
		return toml
	}
	ins := strings.Join(add, "\n")
	if ok {
		return toml[:start] + "\n" + ins + toml[start:]
	}
	if toml != "" && !strings.HasSuffix(toml, "\n") {
		toml += "\n"
	}
	return toml + "\n[" + table + "]\n" + ins + "\n"
}

// withDefaults makes a test's config private to its daemon, keeping every
// key the text sets itself, and returns it with the milter address in
// force:
//   - [listen] address (default addr); for a unix socket, group postfix
//     (or mode 0666) so that Postfix's smtpd, which runs as postfix, can
//     connect; a 3 s grace period so that tests stop quickly;
//   - [store] path and [control] socket in dir, so that concurrent daemons
//     share neither the bolt file (bbolt locks it) nor the control socket.
func withDefaults(toml, dir, addr, dnsAddr string) (string, string) {
	if start, end, ok := tableBody(toml, "listen"); ok {
		if a, set := keyValue(toml[start:end], "address"); set {
			addr = a
		}
	}
	listen := [][2]string{{"address", addr}}
	if strings.HasPrefix(addr, "unix:") {
		start, end, _ := tableBody(toml, "listen")
		body := toml[start:end]
		_, mode := keyValue(body, "socket_mode")
		_, group := keyValue(body, "socket_group")
		if !mode && !group {
			if _, err := lookupGroup("postfix"); err == nil {
				listen = append(listen, [2]string{"socket_group", "postfix"})
			} else {
				listen = append(listen, [2]string{"socket_mode", "0666"})
			}
		}
	}
	listen = append(listen, [2]string{"grace_period", "3s"})
	toml = setDefaults(toml, "listen", listen)
	toml = setDefaults(toml, "store", [][2]string{{"path", filepath.Join(dir, "state.db")}})
	toml = setDefaults(toml, "control", [][2]string{{"socket", filepath.Join(dir, "control.sock")}})
	// The SpamAssassin rules are on by default, and compiling the Debian
	// set costs seconds of CPU at every start: daemons of tests that do
	// not test spam content run without them unless their TOML turns them
	// on ([spam.rules] enabled = true, as test/spam_test.go does).
	toml = setDefaults(toml, "spam.rules", [][2]string{{"enabled", "false"}})
	if dnsAddr != "" {
		toml = setDefaults(toml, "dns", [][2]string{{"servers", fmt.Sprintf("[%q]", dnsAddr)}})
	}
	return toml, addr
}

// Addr is the milter address in Postfix's syntax (unix:/path or
// inet:host:port), for smtpd_milters.
func (d *Daemon) Addr() string { return d.addr }

// SendmailAddr is the milter address in Sendmail's X= syntax
// (S=local:/path or S=inet:port@host).
func (d *Daemon) SendmailAddr() string {
	network, address := dialTarget(d.addr)
	if network == "unix" {
		return "local:" + address
	}
	host, port, _ := net.SplitHostPort(address)
	return "inet:" + port + "@" + host
}

// Logs returns every log line so far, decoded from JSON (a line that is
// not JSON is {"msg": line, "_raw": true}).
func (d *Daemon) Logs() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]map[string]any(nil), d.logs...)
}

// Stderr is the daemon's standard error so far, as text.
func (d *Daemon) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// WaitLog waits for a log line for which pred is true (lines already
// logged count) and returns it; it fails the test after timeout.
func (d *Daemon) WaitLog(t testing.TB, pred func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	m, err := d.waitLogFrom(0, pred, timeout)
	if err != nil {
		t.Fatalf("%v\nmailwarden stderr:\n%s", err, d.Stderr())
	}
	return m
}

// WaitLogAfter is WaitLog counting only lines logged after the first n
// (n = len(d.Logs()) taken before an action).
func (d *Daemon) WaitLogAfter(t testing.TB, n int, pred func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	m, err := d.waitLogFrom(n, pred, timeout)
	if err != nil {
		t.Fatalf("%v\nmailwarden stderr:\n%s", err, d.Stderr())
	}
	return m
}

func (d *Daemon) waitLogFrom(i int, pred func(map[string]any) bool, timeout time.Duration) (map[string]any, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		d.mu.Lock()
		for ; i < len(d.logs); i++ {
			if pred(d.logs[i]) {
				m := d.logs[i]
				d.mu.Unlock()
				return m, nil
			}
		}
		ch := d.change
		d.mu.Unlock()
		select {
		case <-ch:
		case <-d.done:
			// The process exited: the reader has delivered its last line.
			d.mu.Lock()
			n := len(d.logs)
			d.mu.Unlock()
			if i >= n {
				return nil, fmt.Errorf("harness: mailwarden exited (%v) before the awaited log line", d.exit)
			}
		case <-timer.C:
			return nil, fmt.Errorf("harness: no matching mailwarden log line within %v", timeout)
		}
	}
}

// MsgIs matches log lines whose "msg" is msg.
func MsgIs(msg string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["msg"] == msg }
}

// MessageFrom matches the per-message summary line ("msg":"message") of the
// message with envelope sender from.
func MessageFrom(from string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["msg"] == "message" && m["from"] == from }
}

// Reload rewrites the config (the [listen] table is filled in as at start,
// with the same address) and sends SIGHUP. It returns at once: wait for the
// daemon's log line to know the outcome.
func (d *Daemon) Reload(t testing.TB, toml string) {
	t.Helper()
	text, _ := withDefaults(toml, d.Dir, d.addr, d.dns)
	if err := os.WriteFile(d.ConfigPath, []byte(text), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	d.Signal(t, syscall.SIGHUP)
}

// ReloadWait is Reload followed by the daemon's answer: the "config
// reloaded" line (ok) or the first "config reload refused" line (not ok).
func (d *Daemon) ReloadWait(t testing.TB, toml string, timeout time.Duration) (line map[string]any, ok bool) {
	t.Helper()
	n := len(d.Logs())
	d.Reload(t, toml)
	line = d.WaitLogAfter(t, n, func(m map[string]any) bool {
		return m["msg"] == "config reloaded" || m["msg"] == "config reload refused"
	}, timeout)
	return line, line["msg"] == "config reloaded"
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("harness: signal mailwarden: %v", err)
	}
}

// Stop sends SIGTERM and waits for the daemon to exit; a daemon that does
// not exit within 20 s is killed, and a non-zero exit fails the test.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.exited() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		t.Errorf("harness: mailwarden did not exit within 20s of SIGTERM")
		return
	}
	if d.exit != nil {
		t.Errorf("harness: mailwarden exited with %v after SIGTERM (want 0)\n%s", d.exit, d.Stderr())
	}
}

// Exited reports whether the daemon process has exited, and how.
func (d *Daemon) Exited() (bool, error) {
	if d.exited() {
		return true, d.exit
	}
	return false, nil
}
