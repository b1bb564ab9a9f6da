// Package goldentest runs golden-file cases for the decision engine's
// tests: a case is NAME.eml (the message), NAME.env (its envelope, first
// line "# proves: what the case shows") and NAME.want (the expected
// verdict as indented JSON), listed by name in the folder's README.md.
// The policy root's tests and the wired pipeline's tests share it; each
// decides what the verdict they compare looks like.
package goldentest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/message"
)

var update = flag.Bool("update", false, "rewrite the golden .want files")

// Seeds are fuzz seeds for message parsers: the golden cases' messages in
// dir, then hostile shapes (no header end, folding at odd places, bare CR,
// NUL and invalid UTF-8, nested multiparts, broken encodings, garbage
// Authentication-Results).
func Seeds(dir string) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			seeds = append(seeds, b)
		}
	}
	for _, s := range []string{
		"",
		"\n",
		"\r\n\r\n",
		"Subject: x",
		"Subject: x\n continued\n\tagain\n\nbody",
		"From x@y Mon Jan 1\nFrom: a\n\n",
		" leading continuation\n",
		"NoColonLine\nSubject: x\n\n",
		"Subject: a\rb\r\n\r\nbody\r",
		"X: \x00\xff\xfe\n\n\x00",
		"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: multipart/mixed; boundary=y\n\n--y\n--y--\n--x--\n",
		"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: inner\n\ntext",
		"Content-Type: text/plain; charset=bogus-charset\nContent-Transfer-Encoding: base64\n\n!!!notbase64",
		"Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<p>=E9=\n</p><script>x",
		"Authentication-Results: mx.fuzz.test; spf=pass\nX-Spam-Status: Yes\n\n",
		"Authentication-Results: (((\nAuthentication-Results: ;;;\n\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// Case is one golden case.
type Case struct {
	Name string // file name without .eml
	Base string // path without .eml: Base+".env", Base+".want", ...
}

// Cases lists the *.eml cases in dir. It fails the test when there are
// fewer than min or when README.md does not name each one in backquotes.
func Cases(t *testing.T, dir string, min int) []Case {
	t.Helper()
	emls, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(emls) < min {
		t.Fatalf("want at least %d golden cases, have %d (%v)", min, len(emls), err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cases := make([]Case, 0, len(emls))
	for _, eml := range emls {
		c := Case{Name: strings.TrimSuffix(filepath.Base(eml), ".eml"), Base: strings.TrimSuffix(eml, ".eml")}
		if !bytes.Contains(readme, []byte("`"+c.Name+"`")) {
			t.Errorf("%s: README.md does not list %s", dir, c.Name)
		}
		cases = append(cases, c)
	}
	return cases
}

// Message reads the case's message, bounded by maxHeaders.
func (c Case) Message(t *testing.T, maxHeaders int) *message.Message {
	t.Helper()
	f, err := os.Open(c.Base + ".eml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, body, err := message.ReadMessage(f, maxHeaders)
	if err != nil {
		t.Fatal(err)
	}
	return &message.Message{QueueID: c.Name, Header: h, Body: message.BytesBody(body)}
}

// Env applies the case's .env file to m: key=value lines (client_ip,
// helo, from, rcpt, auth), "#" comments. A key Env does not know goes to
// other, which reports whether it took it. It returns the "proves" line.
func (c Case) Env(t *testing.T, m *message.Message, other func(k, v string) error) string {
	t.Helper()
	path := c.Base + ".env"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	proves := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			proves, _ = strings.CutPrefix(line, "# proves: ")
			if proves == line || proves == "" {
				t.Fatalf("%s: the first line must be \"# proves: what this case shows\"", path)
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: want key=value", path, n)
		}
		switch k {
		case "client_ip":
			a, err := netip.ParseAddr(v)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			m.Client.Addr = a
		case "helo":
			m.Client.HELO = v
		case "from":
			m.MailFrom = strings.Trim(v, "<>")
		case "rcpt":
			m.Rcpts = append(m.Rcpts, v)
		case "auth":
			m.Auth = v
		default:
			if other == nil {
				t.Fatalf("%s:%d: unknown key %q", path, n, k)
			}
			if err := other(k, v); err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
		}
	}
	return proves
}

// Compare marshals got as indented JSON and compares it with the case's
// .want file; with -update it rewrites the file instead.
func (c Case) Compare(t *testing.T, proves string, got any) {
	t.Helper()
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	if *update {
		if err := os.WriteFile(c.Base+".want", data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(c.Base + ".want")
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("%s\nproves: %s\n--- got\n%s--- want\n%s", c.Name, proves, data, want)
	}
}
