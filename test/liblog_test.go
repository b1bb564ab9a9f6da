package e2e_test

// Issue 17.7: every library logs through slog. With Redis down, go-redis
// reports its failed dials, and a connection dropped mid-command makes
// go-milter warn; both must arrive as JSON lines of the daemon's log
// (`report` skips any other line).

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

func TestLibraryLogsAreJSON(t *testing.T) {
	// Redis on a port nobody listens on; the auto-reply check uses the
	// store for every auto-generated message.
	d := harness.StartMailwarden(t, relTOML("", "redis", "", ""))
	header := append([][2]string{{"Auto-Submitted", " auto-replied"}}, relHeader...)
	if _, err := relSession(t, relSock(d), header); err != nil {
		t.Fatalf("session: %v\n%s", err, d.Stderr())
	}
	// A negotiation, then a command cut off in its length prefix.
	c, err := net.Dial("unix", relSock(d))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(relOptneg)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 64))
	c.Write([]byte{0, 0})
	c.Close()

	d.WaitLog(t, func(m map[string]any) bool { return m["library"] == "go-redis" }, 20*time.Second)
	d.WaitLog(t, func(m map[string]any) bool { return m["library"] == "go-milter" }, 10*time.Second)
	for _, m := range d.Logs() {
		if m["_raw"] == true {
			t.Errorf("a log line that is not JSON: %q", m["msg"])
		}
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", strings.TrimSpace(d.Stderr()))
	}
}
