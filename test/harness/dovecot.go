package harness

import (
	"bufio"
	"fmt"
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
)

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	// Config is appended to the instance's dovecot.conf (e.g. the imapsieve
	// snippet of examples/dovecot with its paths made private).
	Config string
	// MailUser is the system user that owns the mailboxes and runs the
	// Sieve pipe programs; "" is nobody.
	MailUser string
}

// Dovecot is a private Dovecot IMAP server: its own base_dir, state and
// mail directories in a temp dir, IMAP (no TLS) on 127.0.0.1 on a free
// port, any user name with the password DovecotPassword. The machine's
// own Dovecot, if any, is not touched.
type Dovecot struct {
	Dir        string // root of the instance
	ConfigPath string
	LogPath    string
	MailUser   *user.User

	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// DovecotPassword is every user's password on a private Dovecot.
const DovecotPassword = "e2e-secret"

const dovecotConf = `# private Dovecot of a mailwarden end-to-end test
instance_name = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
log_path = %[2]s/dovecot.log
info_log_path = %[2]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = static
  args = password=%[3]s
}
userdb {
  driver = static
  args = uid=%[4]s gid=%[5]s home=%[2]s/home/%%u
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \Junk
    auto = create
  }
  mailbox Trash {
    special_use = \Trash
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[6]d
  }
  inet_listener imaps {
    port = 0
  }
}
`

// StartDovecot starts a private Dovecot until the test ends. It needs root
// and dovecot-imapd; without them the test is skipped (failed in CI).
func StartDovecot(t testing.TB, o DovecotOptions) *Dovecot {
	t.Helper()
	Require(t, "dovecot")
	RequireRoot(t)
	for _, u := range []string{"dovecot", "dovenull"} {
		if _, err := user.Lookup(u); err != nil {
			Unavailable(t, "no user %s: %v", u, err)
		}
	}
	if o.MailUser == "" {
		o.MailUser = "nobody"
	}
	mu, err := user.Lookup(o.MailUser)
	if err != nil {
		t.Fatalf("harness: dovecot mail user: %v", err)
	}
	d := &Dovecot{Dir: shortTempDir(t, "dc"), MailUser: mu, done: make(chan struct{})}
	d.ConfigPath = filepath.Join(d.Dir, "dovecot.conf")
	d.LogPath = filepath.Join(d.Dir, "dovecot.log")
	home := filepath.Join(d.Dir, "home")
	for _, dir := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, dir), 0o755); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	uid, _ := strconv.Atoi(mu.Uid)
	gid, _ := strconv.Atoi(mu.Gid)
	if err := os.Chown(home, uid, gid); err != nil {
		t.Fatalf("harness: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	d.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(dovecotConf, "mwtest-"+filepath.Base(d.Dir), d.Dir, DovecotPassword, mu.Uid, mu.Gid, port) + o.Config
	if err := os.WriteFile(d.ConfigPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}

	d.cmd = exec.Command(mustLook("dovecot"), "-F", "-c", d.ConfigPath)
	out, err := os.Create(filepath.Join(d.Dir, "dovecot.out"))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("harness: start dovecot: %v", err)
	}
	go func() {
		d.cmd.Wait()
		out.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	if err := d.waitGreeting(15 * time.Second); err != nil {
		t.Fatalf("harness: dovecot did not start: %v\n%s", err, d.Log())
	}
	return d
}

func (d *Dovecot) waitGreeting(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("dovecot exited")
		default:
		}
		c, err := net.DialTimeout("tcp", d.addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "* OK") {
				return nil
			}
			err = fmt.Errorf("greeting %q: %v", line, rerr)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addr is the IMAP listener, host:port.
func (d *Dovecot) Addr() string { return d.addr }

// Log is the instance's log and the server's own output.
func (d *Dovecot) Log() string {
	a, _ := os.ReadFile(d.LogPath)
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.out"))
	return string(a) + string(b)
}

// WaitLog waits until the instance's log contains substr.
func (d *Dovecot) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l := d.Log(); strings.Contains(l, substr) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: dovecot log has no %q after %s:\n%s", substr, timeout, d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Imapsieve installs the shipped imapsieve snippets of examples/dovecot
// into a private directory and returns the config text for
// DovecotOptions.Config: examples/dovecot/90-mailwarden-imapsieve.conf
// with its /etc/dovecot/sieve and /usr/lib/dovecot/sieve-pipe paths
// moved there, the two Sieve scripts as shipped (compiled with sievec
// when installed), and pipe as the program mailwarden-learn.
func Imapsieve(t testing.TB, pipe []byte) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "dovecot")
	dir := shortTempDir(t, "is")
	sieveDir, pipeDir := filepath.Join(dir, "sieve"), filepath.Join(dir, "sieve-pipe")
	for _, d := range []string{sieveDir, pipeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := os.ReadFile(filepath.Join(src, "90-mailwarden-imapsieve.conf"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("/etc/dovecot/sieve", sieveDir, "/usr/lib/dovecot/sieve-pipe", pipeDir).Replace(string(conf))
	if err := os.WriteFile(filepath.Join(dir, "imapsieve.conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"learn-spam.sieve", "learn-ham.sieve"} {
		b, err := os.ReadFile(filepath.Join(src, s))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sieveDir, s), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(pipeDir, "mailwarden-learn"), pipe, 0o755); err != nil {
		t.Fatal(err)
	}
	return text
}

// CompileSieve compiles the Sieve scripts of a private Dovecot's
// imapsieve directory with sievec and that instance's config, as an
// administrator does after installing them (Dovecot would otherwise
// compile them on every run, as a user who may not write the directory).
func (d *Dovecot) CompileSieve(t testing.TB) {
	t.Helper()
	sievec, err := LookPath("sievec")
	if err != nil {
		Unavailable(t, "sievec not installed (dovecot-sieve)")
	}
	conf, _ := os.ReadFile(d.ConfigPath)
	for _, line := range strings.Split(string(conf), "\n") {
		_, path, ok := strings.Cut(line, "= file:")
		if !ok {
			continue
		}
		if out, err := exec.Command(sievec, "-c", d.ConfigPath, strings.TrimSpace(path)).CombinedOutput(); err != nil {
			t.Fatalf("harness: sievec %s: %v\n%s", path, err, out)
		}
	}
}
