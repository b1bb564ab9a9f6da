package filter

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

func readAll(t *testing.T, b *spoolBody) []byte {
	t.Helper()
	out, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSpoolMemory(t *testing.T) {
	dir := t.TempDir()
	s := spool{dir: dir, memLimit: 100, max: 1000}
	s.Write([]byte("hello "))
	s.Write([]byte("world"))
	if s.file != nil || len(dirEntries(t, dir)) != 0 {
		t.Fatal("a small body must stay in memory")
	}
	b := s.body()
	if b.Size() != 11 || string(readAll(t, b)) != "hello world" {
		t.Errorf("body %q size %d", readAll(t, b), b.Size())
	}
	p := make([]byte, 5)
	if n, err := b.ReadAt(p, 6); n != 5 || string(p) != "world" || (err != nil && err != io.EOF) {
		t.Errorf("ReadAt: %d %q %v", n, p, err)
	}
	if n, err := b.ReadAt(p, 9); n != 2 || err != io.EOF {
		t.Errorf("ReadAt past the end: %d %v", n, err)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

func TestSpoolSwitchesToFile(t *testing.T) {
	dir := t.TempDir()
	s := spool{dir: dir, memLimit: 64, max: 1 << 20}
	var want bytes.Buffer
	for i := 0; i < 10; i++ {
		chunk := []byte(strings.Repeat(string(rune('a'+i)), 20))
		want.Write(chunk)
		if err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if i == 2 && s.file != nil {
			t.Fatal("switched to a file below the threshold (60 <= 64)")
		}
		if i == 3 && s.file == nil {
			t.Fatal("not switched to a file above the threshold (80 > 64)")
		}
	}
	files := dirEntries(t, dir)
	if len(files) != 1 || !strings.HasPrefix(files[0], "mailwarden-") {
		t.Fatalf("spool dir: %v", files)
	}
	b := s.body()
	if s.file != nil {
		t.Error("the spool still holds the file after body()")
	}
	if b.Size() != 200 || !bytes.Equal(readAll(t, b), want.Bytes()) {
		t.Fatalf("spooled body differs: size %d", b.Size())
	}
	// Reads at any offset, including across the memory/file boundary and
	// concurrently.
	done := make(chan bool)
	for _, off := range []int64{0, 59, 60, 61, 150, 199} {
		go func() {
			p := make([]byte, 7)
			n, err := b.ReadAt(p, off)
			exp := want.Bytes()[off:min(off+7, 200)]
			done <- n == len(exp) && bytes.Equal(p[:n], exp) && (err == nil || (err == io.EOF && n < 7))
		}()
	}
	for range 6 {
		if !<-done {
			t.Error("ReadAt returned wrong data")
		}
	}
	// The spool's own discard no longer owns the file.
	s.discard()
	if len(dirEntries(t, dir)) != 1 {
		t.Fatal("discard after body() removed the body's file")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if files := dirEntries(t, dir); len(files) != 0 {
		t.Fatalf("Close left %v", files)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSpoolDiscardRemovesFile(t *testing.T) {
	dir := t.TempDir()
	s := spool{dir: dir, memLimit: 10, max: 1 << 20}
	s.Write(bytes.Repeat([]byte("x"), 100))
	if len(dirEntries(t, dir)) != 1 {
		t.Fatal("no spool file")
	}
	s.discard()
	if files := dirEntries(t, dir); len(files) != 0 {
		t.Fatalf("discard left %v", files)
	}
	s.discard() // harmless twice
}

func TestSpoolOversize(t *testing.T) {
	dir := t.TempDir()
	s := spool{dir: dir, memLimit: 10, max: 100, base: 30}
	s.Write(bytes.Repeat([]byte("x"), 50)) // 80: spooled to a file
	if s.oversize || len(dirEntries(t, dir)) != 1 {
		t.Fatal("not oversize yet")
	}
	s.Write(bytes.Repeat([]byte("y"), 21)) // 101 > 100
	if !s.oversize {
		t.Fatal("not oversize at 101 bytes with max 100")
	}
	if files := dirEntries(t, dir); len(files) != 0 {
		t.Fatalf("oversize left %v", files)
	}
	s.Write(bytes.Repeat([]byte("z"), 1000))
	if s.size != 1071 {
		t.Errorf("size counts every byte received: %d", s.size)
	}
	if s.file != nil || s.buf.Len() != 0 || len(dirEntries(t, dir)) != 0 {
		t.Error("an oversize spool keeps writing")
	}
	b := s.body()
	if b.Size() != 0 {
		t.Errorf("oversize body has %d bytes", b.Size())
	}
	b.Close()
	// In memory too.
	m := spool{dir: dir, memLimit: 1 << 20, max: 10}
	m.Write([]byte("0123456789"))
	if m.oversize {
		t.Fatal("exactly max is not oversize")
	}
	m.Write([]byte("a"))
	if !m.oversize || m.buf.Len() != 0 {
		t.Error("memory spool past max")
	}
}

func TestSpoolCreateError(t *testing.T) {
	s := spool{dir: filepath.Join(t.TempDir(), "missing"), memLimit: 1, max: 100}
	err := s.Write([]byte("too much"))
	if err == nil || !strings.HasPrefix(err.Error(), "filter: spool:") {
		t.Errorf("Write into a missing dir: %v", err)
	}
}

// A check abandoned at its deadline may still read the body when the
// message is over and the body closed: that must neither race nor crash.
func TestSpoolBodyCloseWhileReading(t *testing.T) {
	for _, memLimit := range []int64{1 << 20, 10} { // memory and file
		dir := t.TempDir()
		s := spool{dir: dir, memLimit: memLimit, max: 1 << 20}
		s.Write(bytes.Repeat([]byte("r"), 4096))
		b := s.body()
		started := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			p := make([]byte, 512)
			for i := 0; i < 2000; i++ {
				if i == 10 {
					close(started)
				}
				b.ReadAt(p, int64(i%8)*512)
			}
		}()
		<-started
		if err := b.Close(); err != nil {
			t.Error(err)
		}
		<-done
		if files := dirEntries(t, dir); len(files) != 0 {
			t.Errorf("Close left %v", files)
		}
		if n, err := b.ReadAt(make([]byte, 8), 0); n != 0 || err == nil {
			t.Errorf("ReadAt after Close: %d, %v; want an error", n, err)
		}
	}
}
