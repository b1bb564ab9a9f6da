package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// mappedRSS is the resident size in bytes of this process's mappings of
// path (/proc/self/smaps).
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && f[5] == path
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// Reading the whole file through bbolt's mapping makes it resident; the
// next transaction after TrimEvery takes it out of the resident set, and
// the data reads the same afterwards.
func TestBoltTrimsResidentPages(t *testing.T) {
	ctx := context.Background()
	s := NewBolt(t.TempDir()+"/state.db", 0)
	defer s.Close()
	val := []byte(strings.Repeat("v", 200))
	var es []Entry
	for i := range 40000 { // ~10 MB of pages
		es = append(es, Entry{Key: fmt.Sprintf("k%06d", i), Val: val})
	}
	if err := s.SetBatch(ctx, es); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	s.lastTrim.Store(1 << 62) // no trim while reading everything
	vals, err := s.MGet(ctx, keys)
	n := 0
	for _, v := range vals {
		if v != nil {
			n++
		}
	}
	before := mappedRSS(t, s.path)
	if err != nil || n != len(es) || before < 4<<20 {
		t.Fatalf("read %d keys, %d bytes resident: want %d keys, several MB", n, before, len(es))
	}
	s.lastTrim.Store(0) // a trim is due
	if v, ok, err := s.Get(ctx, "k039999"); err != nil || !ok || string(v) != string(val) {
		t.Fatalf("get: %q %v %v", v, ok, err)
	}
	if after := mappedRSS(t, s.path); after > before/4 {
		t.Fatalf("resident after the trim: %d bytes (before %d)", after, before)
	}
	if v, ok, _ := s.Get(ctx, "k000001"); !ok || string(v) != string(val) {
		t.Fatalf("get after trim: %q %v", v, ok)
	}
}
