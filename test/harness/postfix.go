package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PostfixOptions configures StartPostfix.
type PostfixOptions struct {
	// Milter is the milter address for smtpd_milters AND non_smtpd_milters
	// (Daemon.Addr()); "" runs without a milter.
	Milter string
	// Relay is the next hop for all mail, host:port (Sink.Addr), written
	// as relayhost = [host]:port. "" defers all mail.
	Relay string
	// MainCF overrides or adds main.cf parameters, applied last, e.g.
	// {"milter_default_action": "accept"}.
	MainCF map[string]string
	// MasterCF is appended to master.cf (e.g. a submission service).
	MasterCF string
}

// Postfix is a private Postfix instance: its own config_directory,
// queue_directory and data_directory in a temp dir, smtpd on 127.0.0.1 on
// a free port, logging to a file.
type Postfix struct {
	Dir         string // root of the instance
	ConfigDir   string
	QueueDir    string
	MaillogPath string

	smtpAddr string
}

// QueueEntry is one message in `postqueue -j` output.
type QueueEntry struct {
	QueueName   string `json:"queue_name"` // maildrop, incoming, active, deferred, hold
	QueueID     string `json:"queue_id"`
	ArrivalTime int64  `json:"arrival_time"`
	MessageSize int64  `json:"message_size"`
	Sender      string `json:"sender"`
	Recipients  []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// Services of a private instance. Every one runs unchrooted (the private
// spool has none of the files a chroot needs), the syntax is master(5)'s.
const masterCF = `# service type  private unpriv  chroot  wakeup  maxproc command
%s inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
# QUIRK(postfix): no syslog here; maillog_file goes through postlogd.
postlog   unix-dgram n  -       n       -       1       postlogd
`

// instances numbers private instances so that their log lines differ.
var instances struct {
	sync.Mutex
	n int
}

// StartPostfix starts a private Postfix until the test ends. It needs root
// and the postfix package; without them the test is skipped (failed in
// CI). A start failure fails the test with the instance's maillog.
func StartPostfix(t testing.TB, o PostfixOptions) *Postfix {
	t.Helper()
	Require(t, "postfix", "postconf", "postqueue", "sendmail")
	RequireRoot(t)
	if _, err := user.Lookup("postfix"); err != nil {
		Unavailable(t, "no user postfix: %v", err)
	}

	p := &Postfix{Dir: shortTempDir(t, "pf")}
	p.ConfigDir = filepath.Join(p.Dir, "etc")
	p.QueueDir = filepath.Join(p.Dir, "spool")
	data := filepath.Join(p.Dir, "lib")
	p.MaillogPath = filepath.Join(p.Dir, "maillog")
	for _, d := range []string{p.ConfigDir, p.QueueDir, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	// Postfix refuses a data_directory it does not own (master.lock).
	if err := chownUser(data, "postfix"); err != nil {
		t.Fatalf("harness: %v", err)
	}

	port, err := freePort()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	p.smtpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	instances.Lock()
	instances.n++
	n := instances.n
	instances.Unlock()

	main := map[string]string{
		"compatibility_level":            "3.6",
		"config_directory":               p.ConfigDir,
		"queue_directory":                p.QueueDir,
		"data_directory":                 data,
		"mail_owner":                     "postfix",
		"setgid_group":                   "postdrop",
		"syslog_name":                    fmt.Sprintf("postfix-test%d", n),
		"maillog_file":                   p.MaillogPath,
		"maillog_file_prefixes":          p.Dir,
		"inet_interfaces":                "127.0.0.1",
		"inet_protocols":                 "ipv4",
		"myhostname":                     "mx.test.example",
		"mydomain":                       "test.example",
		"myorigin":                       "$myhostname",
		"mydestination":                  "",
		"local_recipient_maps":           "",
		"alias_maps":                     "",
		"alias_database":                 "",
		"mynetworks":                     "127.0.0.0/8",
		"smtpd_relay_restrictions":       "permit_mynetworks, reject",
		"smtpd_authorized_xclient_hosts": "127.0.0.0/8",
		"smtpd_banner":                   "$myhostname ESMTP test instance",
		"biff":                           "no",
		"append_dot_mydomain":            "no",
		"smtp_tls_security_level":        "none",
		"smtpd_tls_security_level":       "none",
		// Deferred mail (tempfail, a sink that was down) is retried
		// within seconds, not the production minutes.
		"queue_run_delay":      "1s",
		"minimal_backoff_time": "1s",
		"maximal_backoff_time": "2s",
		"delay_warning_time":   "0",
		"milter_protocol":      "6",
		// The postfix default, and what we recommend for a filter that
		// enforces policy (README "Postfix in five minutes").
		"milter_default_action":  "tempfail",
		"milter_connect_timeout": "5s",
		"milter_command_timeout": "30s",
		"milter_content_timeout": "60s",
	}
	if o.Milter != "" {
		main["smtpd_milters"] = o.Milter
		main["non_smtpd_milters"] = o.Milter
	}
	if o.Relay != "" {
		relay := o.Relay
		if !strings.HasPrefix(relay, "[") {
			if host, port, err := net.SplitHostPort(relay); err == nil {
				relay = "[" + host + "]:" + port
			}
		}
		main["relayhost"] = relay
	} else {
		main["default_transport"] = "retry:no relay configured in this test"
	}
	for k, v := range o.MainCF {
		main[k] = v
	}
	keys := make([]string, 0, len(main))
	for k := range main {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Private Postfix instance of a mailwarden end-to-end test.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, main[k])
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), []byte(b.String()), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	master := fmt.Sprintf(masterCF, p.smtpAddr) + o.MasterCF
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}

	if out, err := p.postfix("check"); err != nil {
		t.Fatalf("harness: postfix check: %v\n%s\nmaillog:\n%s", err, out, p.Log())
	}
	if out, err := p.postfix("start"); err != nil {
		t.Fatalf("harness: postfix start: %v\n%s\nmaillog:\n%s", err, out, p.Log())
	}
	t.Cleanup(func() {
		if out, err := p.postfix("stop"); err != nil {
			t.Errorf("harness: postfix stop: %v\n%s", err, out)
		}
		if t.Failed() {
			t.Logf("postfix maillog (%s):\n%s", p.Dir, p.Log())
		}
	})
	if err := p.waitGreeting(20 * time.Second); err != nil {
		t.Fatalf("harness: postfix smtpd: %v\nmaillog:\n%s", err, p.Log())
	}
	return p
}

// waitGreeting waits for smtpd's 220 greeting. A bare connect is not
// enough: master accepts the connection even when smtpd dies at start
// (a fatal main.cf setting), and the client would only time out.
func (p *Postfix) waitGreeting(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if strings.Contains(p.Log(), "/smtpd[") && strings.Contains(p.Log(), "]: fatal: ") {
			return fmt.Errorf("smtpd failed to start")
		}
		c, err := net.DialTimeout("tcp", p.smtpAddr, time.Second)
		if err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "QUIT\r\n")
		c.Close()
		if err == nil && strings.HasPrefix(line, "220") {
			return nil
		}
		last = fmt.Errorf("greeting %q: %v", line, err)
	}
	return fmt.Errorf("no 220 greeting on %s within %v: %v", p.smtpAddr, timeout, last)
}

func (p *Postfix) postfix(args ...string) ([]byte, error) {
	cmd := exec.Command(mustLook("postfix"), append([]string{"-c", p.ConfigDir}, args...)...)
	return cmd.CombinedOutput()
}

func mustLook(name string) string {
	if p, err := LookPath(name); err == nil {
		return p
	}
	return name
}

func chownUser(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

func lookupGroup(name string) (*user.Group, error) { return user.LookupGroup(name) }

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// SMTPAddr is smtpd's host:port.
func (p *Postfix) SMTPAddr() string { return p.smtpAddr }

// Sendmail submits msg with Postfix's sendmail command (the path that
// non_smtpd_milters filters) and args (e.g. "-f", from, rcpt...). It
// returns when the message is in the maildrop queue; the milter runs later,
// in cleanup, when pickup takes it.
func (p *Postfix) Sendmail(t testing.TB, args []string, msg []byte) error {
	t.Helper()
	cmd := exec.Command(mustLook("sendmail"), append([]string{"-C", p.ConfigDir}, args...)...)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+p.ConfigDir)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("harness: sendmail %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Queue lists every message in the instance's queues (postqueue -j).
func (p *Postfix) Queue(t testing.TB) []QueueEntry {
	t.Helper()
	cmd := exec.Command(mustLook("postqueue"), "-c", p.ConfigDir, "-j")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("harness: postqueue -j: %v: %s", err, stderr.String())
	}
	var q []QueueEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e QueueEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("harness: postqueue -j: %v in %q", err, sc.Text())
		}
		q = append(q, e)
	}
	return q
}

// Hold lists the messages in the hold queue (quarantined by a milter).
func (p *Postfix) Hold(t testing.TB) []QueueEntry {
	t.Helper()
	var h []QueueEntry
	for _, e := range p.Queue(t) {
		if e.QueueName == "hold" {
			h = append(h, e)
		}
	}
	return h
}

// WaitHold waits until the hold queue has a message for which pred is true
// (nil: any) and returns it, or fails the test after timeout.
func (p *Postfix) WaitHold(t testing.TB, pred func(QueueEntry) bool, timeout time.Duration) QueueEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range p.Hold(t) {
			if pred == nil || pred(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: no matching message in the hold queue after %v; queue: %+v", timeout, p.Queue(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Flush asks Postfix to deliver deferred mail now (postqueue -f).
func (p *Postfix) Flush(t testing.TB) {
	t.Helper()
	out, err := exec.Command(mustLook("postqueue"), "-c", p.ConfigDir, "-f").CombinedOutput()
	if err != nil {
		t.Fatalf("harness: postqueue -f: %v: %s", err, out)
	}
}

// Log returns the instance's maillog so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(p.MaillogPath)
	return string(b)
}

// WaitLog waits until the maillog has a line containing substr and returns
// that line, or fails the test after timeout.
func (p *Postfix) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(p.Log(), "\n") {
			if strings.Contains(l, substr) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: no maillog line with %q after %v:\n%s", substr, timeout, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
