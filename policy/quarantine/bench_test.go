package quarantine

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

// BenchmarkPersonal measures what the sender lists add to every message:
// one bbolt read transaction for 5 recipients over 10,000 listed senders.
func BenchmarkPersonal(b *testing.B) {
	dir := b.TempDir()
	ix, err := OpenBolt(filepath.Join(dir, "i.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	q, _ := New(Config{Dir: filepath.Join(dir, "m"), Index: ix})
	ctx := context.Background()
	err = ix.db.Update(func(tx *bolt.Tx) error { // one commit, not 10,000
		for i := range 10000 {
			v, _ := json.Marshal(SenderEntry{Sender: fmt.Sprintf("s%d@x.example", i), Kind: ListAllow})
			if err := tx.Bucket(bucketSenders).Put(senderKey(fmt.Sprintf("u%d@example.org", i%100), fmt.Sprintf("s%d@x.example", i)), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	rcpts := []string{"u1@example.org", "u2@example.org", "u3@example.org", "u4@example.org", "nobody@example.org"}
	for b.Loop() {
		if _, err := q.Personal(ctx, "s101@x.example", rcpts); err != nil {
			b.Fatal(err)
		}
	}
}
