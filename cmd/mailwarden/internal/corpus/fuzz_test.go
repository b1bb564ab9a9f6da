package corpus

import (
	"bytes"
	"testing"
)

// Run locally for a while, e.g.
//   go test -run='^$' -fuzz=FuzzSplit -fuzztime=30s ./cmd/mailwarden/internal/corpus
// Crashers land in testdata/fuzz/FuzzSplit/ and are then regression seeds.

// FuzzSplit: any bytes split without a panic; a file that is not an mbox
// is one message, unchanged; an mbox never yields more messages than it
// has separator lines (a lone separator yields none), and every byte of a message came from the input
// (only "From " separators and one ">" of a quoted ">From " are dropped).
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"",
		"Subject: x\n\nbody\n",
		"From a@b Mon Nov 23 10:00:00 2026\nSubject: one\n\nbody\n>From x\n\nFrom b@c Mon Nov 23 10:01:00 2026\n\ntwo\n",
		"From \n",
		"From x 00:00\r\n\r\nFrom y 11:11\r\n",
		"From a@b Mon 10:00\n>>From quoted twice\n",
		"From a@b Mon 10:00\n" + string(bytes.Repeat([]byte("x"), 70000)) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs := Split(data)
		if !bytes.HasPrefix(data, []byte("From ")) {
			if len(msgs) != 1 || !bytes.Equal(msgs[0], data) {
				t.Fatalf("not an mbox, yet changed: %q -> %q", data, msgs)
			}
			return
		}
		if n := bytes.Count(data, []byte("From ")); len(msgs) > n {
			t.Fatalf("%d messages from %d separators", len(msgs), n)
		}
		total := 0
		for _, m := range msgs {
			total += len(m)
		}
		if total > len(data) {
			t.Fatalf("messages hold %d bytes, the input %d", total, len(data))
		}
	})
}
