package filter

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shortDir is a temp dir with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mwf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestListenUnixStaleSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "m.sock")
	old, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close() // a crashed daemon leaves the file behind
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatal("setup: no stale socket file")
	}
	ln, err := Listen("unix:"+sock, 0o660, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("new socket does not answer: %v", err)
	}
	c.Close()
}

func TestListenUnixLiveSocketRefused(t *testing.T) {
	sock := filepath.Join(shortDir(t), "m.sock")
	live, err := Listen("unix:"+sock, 0o660, "")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() { // answer the probe
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if ln, err := Listen("unix:"+sock, 0o660, ""); err == nil {
		ln.Close()
		t.Fatal("a second daemon took over a live socket")
	} else if !strings.Contains(err.Error(), "another process") {
		t.Errorf("error %v", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Error("the live socket was removed")
	}
}

func TestListenUnixRegularFileKept(t *testing.T) {
	p := filepath.Join(shortDir(t), "m.sock")
	os.WriteFile(p, []byte("precious"), 0o644)
	if ln, err := Listen("unix:"+p, 0o660, ""); err == nil {
		ln.Close()
		t.Fatal("listened over a regular file")
	} else if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("error %v", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "precious" {
		t.Error("the regular file was touched")
	}
}

func TestListenUnixModeAndGroup(t *testing.T) {
	dir := shortDir(t)
	for _, mode := range []os.FileMode{0o660, 0o600, 0o666} {
		sock := filepath.Join(dir, "m"+strconv.Itoa(int(mode))+".sock")
		ln, err := Listen("local:"+sock, mode, strconv.Itoa(os.Getgid()))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("socket mode %o, want %o", fi.Mode().Perm(), mode)
		}
		ln.Close()
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Error("socket file left after Close")
		}
	}
	if ln, err := Listen("unix:"+filepath.Join(dir, "g.sock"), 0o660, "no-such-group-mailwarden"); err == nil {
		ln.Close()
		t.Error("unknown group accepted")
	}
	if _, err := os.Lstat(filepath.Join(dir, "g.sock")); !os.IsNotExist(err) {
		t.Error("socket left behind after a group error")
	}
}

func TestListenInet(t *testing.T) {
	ln, err := Listen("inet:127.0.0.1:0", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if ln6, err := Listen("inet6:[::1]:0", 0, ""); err == nil {
		ln6.Close()
	}
	for _, bad := range []string{"127.0.0.1:8895", "smtp:127.0.0.1:25", "inet:127.0.0.1:notaport"} {
		if ln, err := Listen(bad, 0, ""); err == nil {
			ln.Close()
			t.Errorf("%q accepted", bad)
		}
	}
}
