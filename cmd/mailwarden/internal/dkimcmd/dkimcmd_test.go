package dkimcmd

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/auth/sign"
)

type zoneDNS map[string]string

func (z zoneDNS) LookupTXT(_ context.Context, n string) ([]string, error) {
	if v, ok := z[strings.TrimSuffix(n, ".")]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "nxdomain", Name: n, IsNotFound: true}
}

// TestKeygenThenCheck: keygen writes a 0600 key and prints a record; once
// that record is "published" (the quoted strings joined, as a resolver
// does), check says ok; with no record it says missing and exits 1.
func TestKeygenThenCheck(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k.pem")
	var out, errb bytes.Buffer
	if code := Keygen([]string{"--domain", "example.com", "--selector", "s1", "--out", keyFile}, &out, &errb); code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	m := regexp.MustCompile(`(?m)^s1\._domainkey\.example\.com\. IN TXT \( (.*) \)$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no zone line in %s", out.String())
	}
	var txt strings.Builder
	for _, s := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		if len(s[1]) > 255 {
			t.Errorf("string of %d bytes", len(s[1]))
		}
		txt.WriteString(s[1])
	}
	if !strings.Contains(out.String(), "[[dkim_sign.key]]") {
		t.Error("no config snippet")
	}
	if code := Keygen([]string{"--domain", "example.com", "--selector", "s1", "--out", keyFile}, &out, &errb); code == 0 {
		t.Error("keygen overwrote a key")
	}
	tab, err := sign.NewTable(sign.Config{Keys: []sign.KeyConfig{{Name: "k", Domain: "example.com", Selector: "s1", File: keyFile}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := Check(context.Background(), tab, zoneDNS{"s1._domainkey.example.com": txt.String()}, &out); code != 0 || !strings.HasPrefix(out.String(), "ok") {
		t.Errorf("check with the record: %d %s", code, out.String())
	}
	out.Reset()
	if code := Check(context.Background(), tab, zoneDNS{}, &out); code != 1 || !strings.HasPrefix(out.String(), "missing") {
		t.Errorf("check without the record: %d %s", code, out.String())
	}
}

func TestKeygenUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Keygen([]string{"--domain", "example.com"}, &out, &errb); code != 2 {
		t.Errorf("missing selector: %d", code)
	}
	if code := Keygen([]string{"--domain", "d", "--selector", "s", "--algo", "dsa", "--out", filepath.Join(t.TempDir(), "x")}, &out, &errb); code != 2 {
		t.Errorf("bad algo: %d", code)
	}
}
