package filter

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// BenchmarkMilterSession measures one whole milter transaction (Postfix's
// sequence: connect, HELO, MAIL, RCPT, headers, body, end) through the core
// pipeline on corpus messages, over a unix socket, client included.
//
//	go test -run '^$' -bench MilterSession -benchmem ./filter
func BenchmarkMilterSession(b *testing.B) {
	files, _ := filepath.Glob("../../shared/corpus/spamassassin/ham/*.eml")
	if len(files) == 0 {
		b.Skip("corpus not found beside the repository")
	}
	type parsed struct {
		h    message.Header
		body []byte
	}
	var msgs []parsed
	for _, f := range files[:min(200, len(files))] {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		h, body, err := message.ReadMessage(bytes.NewReader(data), 0)
		if err != nil {
			continue
		}
		msgs = append(msgs, parsed{h, body})
	}
	dir := b.TempDir()
	sock := filepath.Join(dir, "m.sock")
	cfg, err := policy.Load("bench.toml", []byte("authserv_id = \"mx.test\"\n[[rule]]\nname = \"x\"\nheader = \"Subject\"\npattern = \"(?i)viagra\"\nscore = 5.0\n"), nil)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	p, err := policy.New(cfg, nil, logger, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	holder := policy.NewHolder(p)
	ln, err := Listen("unix:"+sock, 0o600, "")
	if err != nil {
		b.Fatal(err)
	}
	srv := New(Options{Holder: holder, Logger: logger})
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	client := milter.NewClient("unix", sock, milter.WithProtocols(allProtocol))
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		s, err := client.Session(milter.NewMacroBag())
		if err != nil {
			b.Fatal(err)
		}
		s.Conn("mail.example.net", milter.FamilyInet, 25000, "192.0.2.10")
		s.Helo("mail.example.net")
		s.Mail("<a@example.net>", "")
		s.Rcpt("<b@example.org>", "")
		s.DataStart()
		for _, f := range m.h {
			s.HeaderField(f.Name, f.Value, nil)
		}
		s.HeaderEnd()
		for body := m.body; len(body) > 0; {
			n := min(len(body), 65535)
			s.BodyChunk(body[:n])
			body = body[n:]
		}
		if _, act, err := s.End(); err != nil || act.Type != milter.ActionAccept {
			b.Fatalf("end: %v %v", act, err)
		}
		s.Close()
	}
}
