package store

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of go-redis.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSetRedisLogger: while the server is unreachable, go-redis's own
// warning ("failed to dial") arrives as a JSON line of our logger, not as
// plain text on stderr.
func TestSetRedisLogger(t *testing.T) {
	var buf syncBuffer
	SetRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	// A unix socket that does not exist: the dial fails without network.
	url := "unix://" + filepath.Join(t.TempDir(), "absent.sock")
	r, err := NewRedis(url, "t:", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Ping(ctx); err == nil {
		t.Fatal("ping of an absent server succeeded")
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if m["library"] == "go-redis" && m["level"] == "WARN" && strings.Contains(m["detail"].(string), "dial") {
			found = true
		}
	}
	if !found {
		t.Fatalf("go-redis's dial warning did not reach the slog logger; got %q", buf.String())
	}
}
