package policy

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/goldentest"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Run each locally for a while, e.g.
//   go test -run='^$' -fuzz=FuzzReadMessage -fuzztime=30s ./policy
// Crashers land in testdata/fuzz/FuzzX/ and are then regression seeds.

func messageSeeds(f *testing.F) {
	for _, s := range goldentest.Seeds(filepath.Join("testdata", "golden")) {
		f.Add(s)
	}
}

const fuzzConfig = `
authserv_id = "mx.fuzz.test"
local_domains = ["example.org"]

[lists]
deny_senders = ["*@spammer.test"]
allow_recipients = ["postmaster@example.org"]

[[rule]]
name = "subject"
header = "Subject"
pattern = "(?i)casino|viagra"
score = 7.0

[[rule]]
name = "any-received"
header = "Received"
pattern = "from .* by"
score = 0.5

[[rule]]
name = "body"
body = true
pattern = "(?i)wire transfer"
action = "reject"

[[rule]]
name = "html"
body = true
pattern = "click here"
negate = true
score = -0.1
`

func FuzzPipeline(f *testing.F) {
	messageSeeds(f)
	cfg, err := Load("fuzz.toml", []byte(fuzzConfig), nil)
	if err != nil {
		f.Fatal(err)
	}
	p, err := New(cfg, nil, nil, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, err := message.ReadMessage(bytes.NewReader(data), cfg.Message.MaxHeaders)
		if err != nil {
			return
		}
		m := &message.Message{
			Client:   message.Client{Addr: netip.MustParseAddr("192.0.2.1"), HELO: "fuzz"},
			MailFrom: "a@b.test", Rcpts: []string{"u@example.org"},
			Header: h, Body: message.BytesBody(body),
		}
		v := p.Run(context.Background(), m)
		if v.Action > ActionReject || v.WouldBe > ActionReject {
			t.Fatalf("invalid action %v/%v", v.Action, v.WouldBe)
		}
		if len(v.Prepend) == 0 || v.Prepend[0].Name != "Authentication-Results" {
			t.Fatalf("prepend %+v", v.Prepend)
		}
		for _, c := range v.Checks {
			if c.Error != "" {
				t.Fatalf("check %s failed: %s", c.Name, c.Error)
			}
		}
		for _, d := range v.Delete {
			n := len(h.Values(d.Name))
			if d.Index < 1 || d.Index > n {
				t.Fatalf("delete %v: only %d fields named so", d, n)
			}
		}
		if (v.Action == ActionReject || v.Action == ActionTempfail) && v.Reply.IsZero() {
			t.Fatalf("%v without a reply", v.Action)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"550 5.7.1 Message rejected by policy", "451 4.7.1 later", "554", "550 5.7.1",
		"550  5.7.1  spaced", "450 5.7.1 mismatch", "550 5.1234.1 x", "550 5..1 x", "550 5.7.1 \x00",
		"-550", "+550 5.7.1 x", "0550 5.7.1 x", "550\t5.7.1 tab", "5.7.1 550", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReply(s)
		if err != nil {
			return
		}
		if r.Code < 400 || r.Code > 599 {
			t.Fatalf("%q: code %d", s, r.Code)
		}
		if strings.ContainsAny(r.Text, "\r\n\x00") {
			t.Fatalf("%q: text %q has a line break or NUL", s, r.Text)
		}
		if r.Enhanced != "" && r.Enhanced[0] != byte('0'+r.Code/100) {
			t.Fatalf("%q: enhanced %q does not match %d", s, r.Enhanced, r.Code)
		}
		r2, err := ParseReply(r.String())
		if err != nil || r2 != r {
			t.Fatalf("%q: %+v does not survive String(): %+v %v", s, r, r2, err)
		}
	})
}

func FuzzConfigLoad(f *testing.F) {
	for _, s := range []string{
		"", baseTOML, fuzzConfig,
		"mode = 3", "mode = \"monitor\"\n[score]\nreject = 1\nquarantine = 2",
		"[lists]\ndeny_ips = [\"1.2.3.4/40\"]", "[[rule]]\nname=\"a\"\nbody=true\npattern=\"(\"\nscore=1",
		"[score.domain.\"x\"]\nreject = -1", "max_message_size = \"1KB\"\n[message]\nspool_memory = \"9999999999999G\"",
		"[listen]\naddress = \"unix:/tmp/x\"\nsocket_mode = \"7777\"", "a.b.c = 1", "[[rule]]\n[[rule]]\n",
		"[replies]\nreject = \"550 5.7.1 \\u0000\"", "x = \"\"\"\nmultiline\n\"\"\"", "[fake]\nthreshold = 99",
	} {
		f.Add(s)
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "golden", "config.toml")); err == nil {
		f.Add(string(b))
	}
	mods := []Module{fakeModule()}
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := Load("fuzz.toml", []byte(text), mods)
		if err != nil {
			var ces ConfigErrors
			if errors.As(err, &ces) {
				for _, e := range ces {
					if e.Msg == "" {
						t.Fatalf("config error without a message: %+v", e)
					}
				}
			}
			_ = err.Error()
			return
		}
		// A config that loads must build and run.
		p, err := New(cfg, nil, nil, nil, nil)
		if err != nil {
			t.Fatalf("loaded config does not build: %v", err)
		}
		defer p.Close()
		v := p.Run(context.Background(), testMessage())
		if v.Action > ActionReject {
			t.Fatalf("action %v", v.Action)
		}
		if cfg.Replies.Reject.Code/100 != 5 || cfg.Replies.Tempfail.Code/100 != 4 || cfg.MaxMessageSize <= 0 {
			t.Fatalf("validation let through %+v %+v", cfg.Replies, cfg.Message)
		}
	})
}
