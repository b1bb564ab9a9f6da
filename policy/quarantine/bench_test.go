package quarantine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkPut measures what a quarantined message adds before the MTA's
// answer: gzip, fsync of the file and the directory, the bolt commit.
func BenchmarkPut(b *testing.B) {
	dir := b.TempDir()
	ix, err := OpenBolt(filepath.Join(dir, "i.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	q, _ := New(Config{Dir: filepath.Join(dir, "m"), Index: ix})
	msg := sample + strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 900) // ~50 KB
	m := Meta{MailFrom: "s@spam.example", Recipients: []string{"a@example.org"}, Category: CategorySpam}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := q.Put(context.Background(), m, strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}
