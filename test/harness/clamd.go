package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ClamdOptions configures StartClamd.
type ClamdOptions struct {
	// StreamMaxLength is clamd.conf's StreamMaxLength in bytes; 0 means
	// 25 MB, what Debian's clamav-daemon writes into its clamd.conf.
	StreamMaxLength int64
	// DisableCache turns off clamd's result cache (keyed by content
	// hash), so that replaying the same messages measures the scanner.
	DisableCache bool
	// Signatures chooses the database: both signatures (the zero value),
	// only the hash or only the body signature, so that two engines can
	// have different signature sets (issue 18).
	Signatures ClamdSignatures
}

// ClamdSignatures is the signature set of a private clamd.
type ClamdSignatures int

const (
	// SignaturesBoth: the md5 hash of eicar.txt and the body signature.
	SignaturesBoth ClamdSignatures = iota
	// SignaturesHash: only the `sigtool --md5` hash of eicar.txt, which
	// matches an attachment that is exactly the file (after clamd's MIME
	// decoding), not the string inside other text.
	SignaturesHash
	// SignaturesBody: only the .ndb body signature (the EICAR string
	// anywhere).
	SignaturesBody
)

// Clamd is a running private clamd.
type Clamd struct {
	Dir        string // private directory: config, database, socket, log
	ConfigPath string // clamd.conf, also usable with clamdscan --config-file
	Socket     string // unix socket path
	TCPAddr    string // 127.0.0.1:port
	// BodySignature is the name of the .ndb body signature (the EICAR
	// string anywhere in a scanned object); HashSignature the name of the
	// sigtool --md5 signature of eicar.txt.
	BodySignature, HashSignature string

	StreamMaxLength int64

	proc
}

// BodySignatureName is the name of the body signature StartClamd writes.
const BodySignatureName = "Mailwarden.Test.EICAR-Body"

// EICARFile is the path of the shared EICAR test file.
func EICARFile() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	for _, p := range []string{
		filepath.Join(root, "..", "shared", "conformance", "clamav", "eicar.txt"),
		"/work/shared/conformance/clamav/eicar.txt",
	} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("harness: shared/conformance/clamav/eicar.txt not found")
}

// StartClamd starts a private clamd (foreground, its own config) listening
// on a unix socket and on a free 127.0.0.1 TCP port, with a database
// folder holding only a `sigtool --md5` signature of the shared eicar.txt
// and one .ndb body signature for the EICAR string (or one of them, see
// ClamdOptions.Signatures). It returns once clamd
// answers PING, and stops it when the test ends. If clamd cannot start the
// test is skipped locally and fails when CI=true, with clamd's log.
func StartClamd(t testing.TB, opts ClamdOptions) *Clamd {
	t.Helper()
	Require(t, "clamd", "sigtool")
	clamd, _ := LookPath("clamd")
	sigtool, _ := LookPath("sigtool")
	eicarPath, err := EICARFile()
	if err != nil {
		Unavailable(t, "%v", err)
		return nil
	}
	if opts.StreamMaxLength <= 0 {
		opts.StreamMaxLength = 25 << 20
	}
	c := &Clamd{Dir: shortTempDir(t, "clamd"), StreamMaxLength: opts.StreamMaxLength, BodySignature: BodySignatureName + ".UNOFFICIAL"}
	db := filepath.Join(c.Dir, "db")
	tmp := filepath.Join(c.Dir, "tmp")
	for _, d := range []string{db, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The hash signature, named after the file sigtool reads.
	eicar, err := os.ReadFile(eicarPath)
	if err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(c.Dir, "eicar.txt")
	if err := os.WriteFile(sample, eicar, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sigtool, "--md5", "eicar.txt")
	cmd.Dir = c.Dir
	var serr bytes.Buffer
	cmd.Stderr = &serr
	hdb, err := cmd.Output()
	if err != nil || !bytes.Contains(hdb, []byte(":68:eicar.txt")) {
		Unavailable(t, "sigtool --md5: %v: %s%s", err, hdb, serr.Bytes())
		return nil
	}
	if opts.Signatures != SignaturesBody {
		c.HashSignature = "eicar.txt.UNOFFICIAL"
		if err := os.WriteFile(filepath.Join(db, "mailwarden-test.hdb"), hdb, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The body signature (signatures.pdf, "Extended signature format"):
	// Name:TargetType:Offset:HexSignature; type 0 = any file, offset * =
	// anywhere, so it also matches the EICAR string inside a raw message.
	ndb := fmt.Sprintf("%s:0:*:%x\n", BodySignatureName, bytes.TrimSpace(eicar))
	if opts.Signatures != SignaturesHash {
		if err := os.WriteFile(filepath.Join(db, "mailwarden-test.ndb"), []byte(ndb), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		c.BodySignature = ""
	}
	c.Socket = filepath.Join(c.Dir, "clamd.sock")
	logPath := filepath.Join(c.Dir, "clamd.log")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			Unavailable(t, "no free port: %v", err)
			return nil
		}
		c.TCPAddr = fmt.Sprintf("127.0.0.1:%d", port)
		conf := []string{
			"Foreground yes",
			"LogFile " + logPath,
			"LogTime yes",
			"LogVerbose no",
			"PidFile " + filepath.Join(c.Dir, "clamd.pid"),
			"DatabaseDirectory " + db,
			"TemporaryDirectory " + tmp,
			"LocalSocket " + c.Socket,
			"LocalSocketMode 666",
			"FixStaleSocket yes",
			"TCPAddr 127.0.0.1",
			fmt.Sprintf("TCPSocket %d", port),
			fmt.Sprintf("StreamMaxLength %d", opts.StreamMaxLength),
			"ScanMail yes",
			"ScanArchive yes",
			"MaxThreads 8",
			"SelfCheck 0",
			"OfficialDatabaseOnly no",
			"Bytecode no",
		}
		if os.Geteuid() == 0 {
			conf = append(conf, "User root")
		}
		if opts.DisableCache {
			conf = append(conf, "DisableCache yes")
		}
		c.ConfigPath = filepath.Join(c.Dir, "clamd.conf")
		if err := os.WriteFile(c.ConfigPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(clamd, "--config-file="+c.ConfigPath)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := c.start(cmd); err != nil {
			Unavailable(t, "start clamd: %v", err)
			return nil
		}
		ping := func() error {
			if err := ClamdPing("unix", c.Socket); err != nil {
				return err
			}
			return ClamdPing("tcp", c.TCPAddr)
		}
		if lastErr = c.waitReady("clamd", 60*time.Second, ping); lastErr == nil {
			t.Cleanup(c.Stop)
			return c
		}
		c.Stop()
		log, _ := os.ReadFile(logPath)
		lastErr = fmt.Errorf("%v\nclamd output:\n%s\nclamd log:\n%s", lastErr, out.Bytes(), log)
		if !bytes.Contains(log, []byte("Address already in use")) && !bytes.Contains(out.Bytes(), []byte("Address already in use")) {
			break
		}
	}
	Unavailable(t, "clamd did not start: %v", lastErr)
	return nil
}

// ClamdPing sends PING and expects PONG.
func ClamdPing(network, addr string) error {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprint(conn, "nPING\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if line != "PONG\n" {
		return fmt.Errorf("harness: clamd PING: %q %v", line, err)
	}
	return nil
}

// UnixAddr is the unix socket as mailwarden's [[clamav.server]] writes it.
func (c *Clamd) UnixAddr() string { return "unix:" + c.Socket }

// TCP is the TCP address as mailwarden's [[clamav.server]] writes it.
func (c *Clamd) TCP() string { return "tcp:" + c.TCPAddr }

// PID is clamd's process id (for miltbench -watch style measurements).
func (c *Clamd) PID() int { return c.cmd.Process.Pid }

// Log returns clamd's log file.
func (c *Clamd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "clamd.log"))
	return string(b)
}
