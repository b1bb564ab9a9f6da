package harness

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartRedis starts a private redis-server on a free 127.0.0.1 port with
// persistence off and returns its address (host:port). The server is
// stopped when the test ends. Without redis-server the test is skipped
// locally and fails when CI=true.
func StartRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(t, "redis-server not found: %v", err)
		return ""
	}
	dir := t.TempDir()
	for attempt := 0; attempt < 3; attempt++ {
		port, err := redisFreePort()
		if err != nil {
			Unavailable(t, "no free port: %v", err)
			return ""
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		conf := strings.Join([]string{
			"bind 127.0.0.1",
			fmt.Sprintf("port %d", port),
			"save \"\"",
			"appendonly no",
			"daemonize no",
			"protected-mode yes",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "redis.log"),
			"databases 1",
		}, "\n") + "\n"
		cf := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, cf)
		if err := cmd.Start(); err != nil {
			Unavailable(t, "start redis-server: %v", err)
			return ""
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if redisWaitPing(addr, exited, 10*time.Second) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return addr
		}
		cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
	Unavailable(t, "redis-server did not answer PING; log:\n%s", log)
	return ""
}

func redisFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// redisWaitPing speaks just enough RESP to see +PONG.
func redisWaitPing(addr string, exited <-chan struct{}, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
