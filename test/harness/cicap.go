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

// CICAPOptions configures StartCICAP.
type CICAPOptions struct {
	// MaxObjectSize is virus_scan.MaxObjectSize in bytes: c-icap does not
	// scan a larger object (it answers 204 after the preview). 0 means
	// c-icap's default, 5 MB.
	MaxObjectSize int64
	// Clamd is the clamd behind c-icap's clamd_mod; nil starts a private
	// one whose database holds only the body signature
	// (SignaturesBody), so that c-icap's engine differs from a clamd
	// started with SignaturesHash beside it.
	Clamd *Clamd
}

// CICAP is a running private c-icap with the virus_scan service
// (libc-icap-mod-virus-scan) backed by clamd through clamd_mod.
type CICAP struct {
	Dir        string
	ConfigPath string
	Addr       string // 127.0.0.1:port
	Clamd      *Clamd

	proc
	out bytes.Buffer
}

// CICAPService is the service name: an alias of virus_scan in its
// "simple" mode, which scans the whole object before answering (204 when
// clean) and answers an object above MaxObjectSize with an error (or, when
// the preview's Content-Length shows it, a 204 before reading it, which the
// client reads as unscanned). Debian's own "avscan" alias has
// sizelimit=off; the default mode streams large objects back with 200
// while scanning, which cannot be told from an unscanned pass-through.
const CICAPService = "avscan"

// StartCICAP starts c-icap in the foreground (-N) with its own config on a
// free 127.0.0.1 port, returns once it answers OPTIONS for virus_scan, and
// stops it when the test ends. If it cannot start the test is skipped
// locally and fails when CI=true, with c-icap's logs.
func StartCICAP(t testing.TB, opts CICAPOptions) *CICAP {
	t.Helper()
	Require(t, "c-icap")
	bin, _ := LookPath("c-icap")
	modDir := "/usr/lib/x86_64-linux-gnu/c_icap"
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu/c_icap", "/usr/lib/aarch64-linux-gnu/c_icap", "/usr/lib/c_icap"} {
		if _, err := os.Stat(filepath.Join(d, "virus_scan.so")); err == nil {
			modDir = d
			break
		}
	}
	if _, err := os.Stat(filepath.Join(modDir, "clamd_mod.so")); err != nil {
		Unavailable(t, "libc-icap-mod-virus-scan not installed (no %s/clamd_mod.so)", modDir)
		return nil
	}
	if opts.Clamd == nil {
		opts.Clamd = StartClamd(t, ClamdOptions{Signatures: SignaturesBody, DisableCache: true})
	}
	if opts.MaxObjectSize <= 0 {
		opts.MaxObjectSize = 5 << 20
	}
	c := &CICAP{Dir: shortTempDir(t, "cicap"), Clamd: opts.Clamd}
	tmp := filepath.Join(c.Dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	magic := "/etc/c-icap/c-icap.magic"
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			Unavailable(t, "no free port: %v", err)
			return nil
		}
		c.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		conf := []string{
			"PidFile " + filepath.Join(c.Dir, "c-icap.pid"),
			"CommandsSocket " + filepath.Join(c.Dir, "c-icap.ctl"),
			"Timeout 60",
			"MaxKeepAliveRequests 100",
			"KeepAliveTimeout 600",
			"StartServers 1",
			"MaxServers 1",
			"MinSpareThreads 4",
			"MaxSpareThreads 16",
			"ThreadsPerChild 16",
			"MaxRequestsPerChild 0",
			"Port " + c.Addr,
			"TmpDir " + tmp,
			"MaxMemObject 131072",
			"DebugLevel 1",
			"Pipelining on",
			"ModulesDir " + modDir,
			"ServicesDir " + modDir,
			"TemplateDir /usr/share/c_icap/templates/",
			"TemplateDefaultLanguage en",
			"LoadMagicFile " + magic,
			"ServerLog " + filepath.Join(c.Dir, "server.log"),
			"AccessLog " + filepath.Join(c.Dir, "access.log"),
			"Module common clamd_mod.so",
			"clamd_mod.ClamdSocket " + opts.Clamd.Socket,
			"Service antivirus_module virus_scan.so",
			"ServiceAlias " + CICAPService + " virus_scan?allow204=on&sizelimit=on&mode=simple",
			// Mail is TEXT (or DATA) to c-icap's magic: scan everything.
			"virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE",
			"virus_scan.SendPercentData 0",
			"virus_scan.Allow204Responces on",
			"virus_scan.PassOnError off",
			fmt.Sprintf("virus_scan.MaxObjectSize %d", opts.MaxObjectSize),
			"virus_scan.DefaultEngine clamd",
		}
		if os.Geteuid() == 0 {
			conf = append(conf, "User root", "Group root")
		}
		c.ConfigPath = filepath.Join(c.Dir, "c-icap.conf")
		if err := os.WriteFile(c.ConfigPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.out.Reset()
		cmd := exec.Command(bin, "-N", "-f", c.ConfigPath)
		cmd.Stdout, cmd.Stderr = &c.out, &c.out
		if err := c.start(cmd); err != nil {
			Unavailable(t, "start c-icap: %v", err)
			return nil
		}
		if lastErr = c.waitReady("c-icap", 30*time.Second, c.optionsOK); lastErr == nil {
			t.Cleanup(c.Stop)
			return c
		}
		c.Stop()
		lastErr = fmt.Errorf("%v\nc-icap output:\n%s\nserver.log:\n%s", lastErr, c.out.Bytes(), c.Log())
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	Unavailable(t, "c-icap did not start: %v", lastErr)
	return nil
}

// URL is the virus_scan service's ICAP URI.
func (c *CICAP) URL() string { return "icap://" + c.Addr + "/" + CICAPService }

// optionsOK asks for the service's OPTIONS and wants a 200.
func (c *CICAP) optionsOK() error {
	line, err := c.options()
	if err == nil && !strings.HasPrefix(line, "ICAP/1.0 200") {
		err = fmt.Errorf("OPTIONS: %q", line)
	}
	return err
}

// options sends OPTIONS for the service and returns the status line.
func (c *CICAP) options() (string, error) {
	conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "OPTIONS %s ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n", c.URL())
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// Log returns c-icap's server log.
func (c *CICAP) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	return string(b)
}

// AccessLog returns c-icap's access log.
func (c *CICAP) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "access.log"))
	return string(b)
}
