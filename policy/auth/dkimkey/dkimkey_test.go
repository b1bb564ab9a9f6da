package dkimkey

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"testing"
)

func TestParseTags(t *testing.T) {
	for in, ok := range map[string]bool{
		"a=1; b=2":              true,
		"a=1; b=2;":             true,
		" a = 1 ;\r\n\tb=x y ;": true,
		"":                      true,
		"a=1;;b=2":              false,
		"a=1; a=2":              false,
		"1a=1":                  false,
		"a":                     false,
		"=1":                    false,
		"a=1; ==":               false,
		"a=\x01":                false,
		"A=1; a=2":              true, // names are case sensitive
	} {
		_, err := ParseTags(in)
		if (err == nil) != ok {
			t.Errorf("ParseTags(%q) err=%v, want ok=%v", in, err, ok)
		}
	}
	tags, _ := ParseTags(" v=DKIM1 ; p = ab\r\n cd ")
	if v, _ := tags.Get("p"); v != "ab\r\n cd" || StripFWS(v) != "abcd" {
		t.Errorf("p=%q", v)
	}
}

func TestParseRecord(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, rp, _ := EncodePublic(rk.Public())
	epub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, ep, _ := EncodePublic(epub)
	for _, tc := range []struct {
		txt  string
		err  error
		kind KeyType
	}{
		{"v=DKIM1; k=rsa; p=" + rp, nil, KeyRSA},
		{"p=" + rp, nil, KeyRSA},
		{"v=DKIM1; k=ed25519; p=" + ep, nil, KeyEd25519},
		{"v=DKIM1; p=", ErrRevoked, ""},
		{"k=rsa; v=DKIM1; p=" + rp, nil, KeyRSA}, // v= not first: tolerated
		{"v=DKIM2; p=" + rp, ErrSyntax, ""},
		{"v=DKIM1; k=dsa; p=" + rp, ErrKeyType, ""},
		{"v=DKIM1; k=ed25519; p=" + rp, ErrSyntax, ""},
		{"v=DKIM1; p=!!!", ErrSyntax, ""},
		{"v=DKIM1", ErrSyntax, ""},
	} {
		r, err := ParseRecord(tc.txt)
		if !errors.Is(err, tc.err) {
			t.Errorf("%.40q: err %v, want %v", tc.txt, err, tc.err)
			continue
		}
		if err == nil && r.KeyType != tc.kind {
			t.Errorf("%.40q: k=%s", tc.txt, r.KeyType)
		}
	}
	r, _ := ParseRecord("v=DKIM1; h=sha1; s=other; t=y:s; p=" + rp)
	if r.AllowsHash("sha256") || r.AllowsEmail() || !r.Testing() || r.RSABits() != 1024 || !SameKey(r.PublicKey, rk.Public()) {
		t.Errorf("flags of %+v", r)
	}
}

type fakeDNS map[string]error

func (f fakeDNS) LookupTXT(_ context.Context, n string) ([]string, error) {
	if err, ok := f[n]; ok {
		return nil, err
	}
	return []string{"garbage", "v=DKIM1; p=MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="}, nil
}

func TestLookup(t *testing.T) {
	dns := fakeDNS{
		"s._domainkey.temp.example": &net.DNSError{Err: "timeout", IsTimeout: true},
		"s._domainkey.none.example": &net.DNSError{Err: "nxdomain", IsNotFound: true},
	}
	if _, err := Lookup(context.Background(), dns, "s", "temp.example"); !IsTemporary(err) {
		t.Errorf("timeout: %v", err)
	}
	if _, err := Lookup(context.Background(), dns, "s", "none.example"); IsTemporary(err) || !errors.Is(err, ErrNoRecord) {
		t.Errorf("nxdomain: %v", err)
	}
	// The first valid record of several is used ("garbage" is skipped);
	// this one is an RSA key record without k= whose p= is not RSA.
	if _, err := Lookup(context.Background(), dns, "s", "ok.example."); err == nil || IsTemporary(err) {
		t.Errorf("wrong key type: %v", err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB")
	f.Add("k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("a=1;;b")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err == nil && r.PublicKey == nil {
			t.Fatal("record without a key")
		}
		if tags, err := ParseTags(s); err == nil {
			seen := map[string]bool{}
			for _, tg := range tags {
				if seen[tg.Name] {
					t.Fatalf("duplicate %q accepted", tg.Name)
				}
				seen[tg.Name] = true
			}
		}
	})
}
