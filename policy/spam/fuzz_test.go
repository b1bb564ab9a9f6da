package spam

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/store"
)

// hostile seeds: deep nesting, a huge part, unknown charsets, broken
// base64 and quoted-printable.
func hostileSeeds() []string {
	var nest strings.Builder
	nest.WriteString("From: a@example.com\nSubject: nest\nContent-Type: multipart/mixed; boundary=b0\n\n")
	for i := 0; i < 60; i++ {
		nest.WriteString("--b" + itoa(i) + "\nContent-Type: multipart/mixed; boundary=b" + itoa(i+1) + "\n\n")
	}
	nest.WriteString("--b60\nContent-Type: text/html\n\n<a href=http://x.example>y</a>\n")
	return []string{
		plain,
		nest.String(),
		"From: a@example.com\nContent-Type: text/plain; charset=x-unknown-klingon\nContent-Transfer-Encoding: quoted-printable\n\n=ZZ=4\n=\n",
		"From: a@example.com\nContent-Type: text/html; charset=gb2312\nContent-Transfer-Encoding: base64\n\n!!!not base64@@@\n",
		"From: a@example.com\nSubject: =?x-bogus?Q?=FF=FE?=\nContent-Type: multipart/alternative; boundary=\"\"\n\n--\n--\n",
		"From: a@example.com\nContent-Type: text/plain\n\n" + strings.Repeat("A", 3<<20) + "\n",
		"From: \"a@b.example\" <>\nDate: 99 Foo 2100\nMessage-ID: <<>>\n\n<a href=\"http://[::1\">http://[</a> http://@/ http://a@b@c/\n",
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

func FuzzCheck(f *testing.F) {
	for _, s := range hostileSeeds() {
		if len(s) < 64<<10 {
			f.Add([]byte(s))
		}
	}
	c := newCheck(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, body, err := message.ReadMessage(bytes.NewReader(raw), 1000)
		if err != nil {
			return
		}
		m := &message.Message{Header: h, Body: message.BytesBody(body)}
		toks := Tokens(m, c.Ignore())
		if len(toks) > maxTokens {
			t.Fatalf("%d tokens", len(toks))
		}
		for _, tk := range toks {
			if len(tk) > maxTokenLen {
				t.Fatalf("token %q too long", tk)
			}
		}
		if _, err := c.Check(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestHostileBounded runs the hostile seeds (including the 3 MiB part that
// is too big for the fuzz seed corpus) with a time bound.
func TestHostileBounded(t *testing.T) {
	c := newCheck(t, nil)
	// The bound is on work (tokens), not time: how long a hostile message
	// takes is measured by BenchmarkHostile, never asserted here.
	for i, s := range hostileSeeds() {
		m := msg(t, s)
		toks := Tokens(m, c.Ignore())
		if _, err := c.Check(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
		if len(toks) > maxTokens {
			t.Errorf("seed %d: %d tokens", i, len(toks))
		}
	}
}

// BenchmarkHostile scores each hostile seed (the 3 MB one-token line
// dominates): go test -bench Hostile ./policy/spam/
func BenchmarkHostile(b *testing.B) {
	c := newCheck(b, nil)
	var ms []*message.Message
	for _, s := range hostileSeeds() {
		ms = append(ms, msg(b, s))
	}
	b.ResetTimer()
	for b.Loop() {
		for _, m := range ms {
			if _, err := c.Check(context.Background(), m, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// corpus loads up to n messages of the shared SpamAssassin corpus.
func corpus(b testing.TB, n int) (ham, spam []*message.Message) {
	dir := filepath.Join("..", "..", "..", "shared", "corpus", "spamassassin")
	for _, class := range []string{"ham", "spam"} {
		files, _ := filepath.Glob(filepath.Join(dir, class, "*.eml"))
		if len(files) == 0 {
			b.Skip("corpus not found at " + dir)
		}
		for i, f := range files {
			if i >= n {
				break
			}
			data, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			h, body, err := message.ReadMessage(bytes.NewReader(data), 1000)
			if err != nil {
				continue
			}
			m := &message.Message{Header: h, Body: message.BytesBody(body)}
			if class == "ham" {
				ham = append(ham, m)
			} else {
				spam = append(spam, m)
			}
		}
	}
	return ham, spam
}

// BenchmarkSpamCheck scores corpus messages with a warm in-memory token
// store (trained on 1000 ham and 1000 spam) and every local signal. Each
// iteration is one message, parsed afresh (the MIME walk is part of the
// cost). Report msgs/s per core as 1e9/ns_per_op with -cpu 1.
func BenchmarkSpamCheck(b *testing.B) { benchCheck(b, nil) }

// BenchmarkSpamCheckBolt is the same with the token store in a bbolt file
// (policy/store) behind the default count cache, as the daemon runs.
func BenchmarkSpamCheckBolt(b *testing.B) {
	bs := store.NewBolt(filepath.Join(b.TempDir(), "bench.db"), time.Second)
	defer bs.Close()
	d := Default().Bayes
	benchCheck(b, bayes.NewCache(&bayes.Store{S: bs}, d.CacheTTL.D(), d.CacheSize))
}

// BenchmarkSpamCheckBoltCold reads every count from the bbolt file.
func BenchmarkSpamCheckBoltCold(b *testing.B) {
	bs := store.NewBolt(filepath.Join(b.TempDir(), "bench.db"), time.Second)
	defer bs.Close()
	benchCheck(b, &bayes.Store{S: bs})
}

// BenchmarkSpamCheckRules is BenchmarkSpamCheck with SpamAssassin's rules
// from /usr/share/spamassassin on, as the daemon runs by default.
func BenchmarkSpamCheckRules(b *testing.B) {
	const dir = "/usr/share/spamassassin"
	if _, err := os.Stat(dir); err != nil {
		b.Skip("no rule files at " + dir)
	}
	benchCheck(b, nil, dir)
}

func benchCheck(b *testing.B, ts bayes.TokenStore, rules ...string) {
	ham, spam := corpus(b, 1000)
	c := newCheck(b, func(cfg *Config, o *Options) {
		cfg.Bayes.MinHam, cfg.Bayes.MinSpam = 1, 1
		if ts != nil {
			o.Tokens = ts
		}
		cfg.Rules.Paths = rules
	})
	ts = c.TokenStore()
	ctx := context.Background()
	var raws [][]byte
	for _, set := range []struct {
		ms []*message.Message
		cl bayes.Class
	}{{ham, bayes.ClassHam}, {spam, bayes.ClassSpam}} {
		for _, m := range set.ms {
			bayes.Learn(ctx, ts, MessageID(m), Tokens(m, c.Ignore()), set.cl, false)
			var buf bytes.Buffer
			m.Header.WriteTo(&buf)
			buf.ReadFrom(m.BodyReader())
			raws = append(raws, buf.Bytes())
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	var bytesTotal int64
	for i := 0; i < b.N; i++ {
		raw := raws[i%len(raws)]
		bytesTotal += int64(len(raw))
		h, body, _ := message.ReadMessage(bytes.NewReader(raw), 1000)
		m := &message.Message{Header: h, Body: message.BytesBody(body)}
		if _, err := c.Check(ctx, m, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// On a shared machine wall-clock time includes waiting for a CPU;
	// messages per CPU-second of this process does not.
	b.ReportMetric(float64(b.N)/(cpuSeconds()-cpu0), "msgs/cpu-s")
	b.SetBytes(bytesTotal / int64(max(b.N, 1)))
}

// TestMemoryBounded: the check keeps nothing per message, so the live heap
// after scoring 2000 more messages is what it was after the first 200.
func TestMemoryBounded(t *testing.T) {
	c := trained(t, 30)
	ctx := context.Background()
	run := func(n, off int) {
		for i := 0; i < n; i++ {
			m := msg(t, fmt.Sprintf("From: u%d@x%d.example\nSubject: offer %d\nContent-Type: text/html\n\n<p>cheap pills %d <a href=\"http://h%d.example/\">www.other%d.example/</a></p>\n", i+off, i+off, i+off, i+off, i+off, i+off))
			if _, err := c.Check(ctx, m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	run(200, 0)
	before := heap()
	run(2000, 200)
	after := heap()
	if after > before+1<<20 {
		t.Errorf("heap grew from %d to %d bytes over 2000 messages", before, after)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// addRef is the token tokenSet.add made before it built tokens on the
// stack: the concatenation, then cut to maxTokenLen bytes of whole runes.
func addRef(parts ...string) string {
	s := strings.Join(parts, "")
	if len(s) > maxTokenLen {
		s = s[:maxTokenLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// FuzzTokenAdd: add keeps the tokens addRef makes, each once, whether it
// builds them or finds them already seen.
func FuzzTokenAdd(f *testing.F) {
	f.Add("word", " ", "pair", "subj:")
	f.Add("日本語のテキストです日本語のテキストです", " ", "x", "\xff\xfe")
	f.Add(strings.Repeat("a", 39), "é", "", "ab")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		ts := tokenSet{seen: map[string]struct{}{}}
		want := map[string]struct{}{}
		for _, parts := range [][]string{{a}, {a, b}, {a, b, c}, {d, c}, {a, b}, {c}, {b, a, d, c}, {a, b, c}} {
			ts.add(parts...)
			want[addRef(parts...)] = struct{}{}
		}
		if !reflect.DeepEqual(ts.seen, want) {
			t.Fatalf("tokens %q, want %q", ts.seen, want)
		}
	})
}
