package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// The default path's directory does not exist on a fresh machine; the store
// creates it rather than failing every message that needs state.
func TestBoltCreatesStateDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "lib", "mailwarden", "state.db")
	s := NewBolt(path, time.Second)
	defer s.Close()
	if err := s.Set(context.Background(), "k", []byte("v"), time.Minute); err != nil {
		t.Fatalf("Set on a fresh path: %v", err)
	}
	v, ok, err := s.Get(context.Background(), "k")
	if err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
}
