package e2e_test

// The Debian package (issue 17 item 10): test/deb.sh builds it with
// examples/debian/build.sh and runs TestDebPackage with MAILWARDEN_DEB set
// to the .deb. The test installs it on this machine with dpkg -i, checks
// what the package promises (binary, conffile, system user, state and
// socket directories, a unit that systemd-analyze accepts), starts the
// daemon the way the unit does (no systemd in CI: the unit's
// ExecStartPre and ExecStart, as its User=, with its RuntimeDirectory=),
// sends one message through a private Postfix to it, and removes the
// package with dpkg -r, which must leave the config and the state.

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

const (
	debUnit   = "/lib/systemd/system/mailwarden.service"
	debConfig = "/etc/mailwarden/mailwarden.toml"
	debState  = "/var/lib/mailwarden"
)

// unitFile is the [Service] settings of a systemd unit that the test
// emulates; repeated keys keep the last value.
func unitFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			if k, v, ok := strings.Cut(line, "="); ok {
				kv[k] = v
			}
		}
	}
	return kv
}

func debRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// asUser runs argv as the unit's User= and Group= with its supplementary
// groups, as systemd does (setpriv from util-linux).
func asUser(u *user.User, g *user.Group, argv string) *exec.Cmd {
	return exec.Command("setpriv", append([]string{"--reuid=" + u.Uid, "--regid=" + g.Gid, "--init-groups", "--"},
		strings.Fields(argv)...)...)
}

func TestDebPackage(t *testing.T) {
	deb := os.Getenv("MAILWARDEN_DEB")
	if deb == "" {
		t.Skip("MAILWARDEN_DEB unset: test/deb.sh builds the package and runs this test")
	}
	harness.RequireRoot(t)
	harness.Require(t, "dpkg", "setpriv", "postfix")

	// The unit listens where the shipped default config says; the test
	// uses that config unchanged, so the port must be free.
	const milterAddr = "127.0.0.1:8895"
	if c, err := net.DialTimeout("tcp", milterAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s is in use (another mailwarden?): the installed default config listens there", milterAddr)
	}

	debRun(t, "dpkg", "-i", deb)
	removed := false
	t.Cleanup(func() {
		if !removed {
			exec.Command("dpkg", "-r", "mailwarden").Run()
		}
	})

	// What the package installs.
	if out := debRun(t, "/usr/bin/mailwarden", "version"); !strings.HasPrefix(out, "mailwarden ") {
		t.Errorf("mailwarden version: %q", out)
	}
	u, err := user.Lookup("mailwarden")
	if err != nil {
		t.Fatalf("postinst created no user mailwarden: %v", err)
	}
	g, err := user.LookupGroup("mailwarden")
	if err != nil {
		t.Fatalf("postinst created no group mailwarden: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	for _, c := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{debState, uid, gid, os.ModeDir | 0o750},
		{debConfig, 0, gid, 0o640},
		{"/etc/mailwarden", 0, gid, os.ModeDir | 0o750},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != c.uid || int(st.Gid) != c.gid || fi.Mode()&(os.ModeDir|os.ModePerm) != c.mode {
			t.Errorf("%s: uid %d gid %d mode %v, want %d %d %v", c.path, st.Uid, st.Gid, fi.Mode(), c.uid, c.gid, c.mode)
		}
	}
	if pg, err := user.LookupGroup("postfix"); err == nil {
		fi, err := os.Stat("/var/spool/postfix/mailwarden")
		if err != nil {
			t.Errorf("postfix socket directory: %v", err)
		} else if st := fi.Sys().(*syscall.Stat_t); strconv.Itoa(int(st.Gid)) != pg.Gid || fi.Mode()&os.ModeSetgid == 0 || int(st.Uid) != uid {
			t.Errorf("/var/spool/postfix/mailwarden: uid %d gid %d mode %v, want mailwarden, postfix, setgid", st.Uid, st.Gid, fi.Mode())
		}
	}
	if out := debRun(t, "dpkg-query", "-W", "-f=${Conffiles}", "mailwarden"); !strings.Contains(out, debConfig) {
		t.Errorf("%s is not a conffile: %q", debConfig, out)
	}
	if conf, err := os.ReadFile(debConfig); err != nil {
		t.Error(err)
	} else if out := debRun(t, "/usr/bin/mailwarden", "config", "default"); out != string(conf) {
		t.Errorf("%s differs from the built-in default", debConfig)
	}

	// The unit: systemd accepts it, and it runs as the package's user.
	if sa, err := harness.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command(sa, "verify", debUnit).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify %s: %v\n%s", debUnit, err, out)
		}
	} else {
		t.Logf("systemd-analyze not installed: the unit is not verified")
	}
	unit := unitFile(t, debUnit)
	if unit["User"] != "mailwarden" || unit["Group"] != "mailwarden" {
		t.Fatalf("unit runs as %q:%q, want mailwarden:mailwarden", unit["User"], unit["Group"])
	}
	if rd := unit["RuntimeDirectory"]; rd != "" {
		// systemd creates it owned by User= before ExecStartPre.
		dir := filepath.Join("/run", rd)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, uid, gid)
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if out, err := asUser(u, g, unit["ExecStartPre"]).CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre %s: %v\n%s", unit["ExecStartPre"], err, out)
	}
	var logs bytes.Buffer
	daemon := asUser(u, g, unit["ExecStart"])
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatalf("ExecStart %s: %v", unit["ExecStart"], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			daemon.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", milterAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("daemon exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not listening on %s after 15s:\n%s", milterAddr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// One message through a private Postfix.
	sink := harness.StartSink(t)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milterAddr, Relay: sink.Addr})
	from, to := "deb@client.example", "deb@remote.example"
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.e2e.test", from, []string{to}, coreMessage(from, to, "through the package")); err != nil {
		t.Fatalf("send: %v\n%s", err, pf.Log())
	}
	m := sink.WaitFor(30*time.Second, harness.To(to))
	if m == nil {
		t.Fatalf("no delivery through Postfix and the packaged daemon\npostfix: %s\ndaemon: %s", pf.Log(), logs.String())
	}
	host, _ := os.Hostname()
	ours := false
	for _, v := range m.Get("Authentication-Results") {
		ours = ours || strings.HasPrefix(strings.TrimSpace(v), host)
	}
	if !ours {
		t.Errorf("delivered without our Authentication-Results (authserv-id %s): %v", host, m.Get("Authentication-Results"))
	}
	stop()
	if !strings.Contains(logs.String(), `"msg":"message"`) || !strings.Contains(logs.String(), from) {
		t.Errorf("daemon logged no summary line for %s:\n%s", from, logs.String())
	}

	// dpkg -r keeps config and state.
	debRun(t, "dpkg", "-r", "mailwarden")
	removed = true
	if _, err := os.Stat("/usr/bin/mailwarden"); !os.IsNotExist(err) {
		t.Errorf("dpkg -r left /usr/bin/mailwarden (%v)", err)
	}
	for _, p := range []string{debConfig, debState} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dpkg -r removed %s: %v", p, err)
		}
	}
	if out := debRun(t, "dpkg-query", "-W", "-f=${Status}", "mailwarden"); out != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: status %q", out)
	}
}
