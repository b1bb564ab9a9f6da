package sign

import (
	"errors"
	"strings"
	"testing"
)

func TestFromAddress(t *testing.T) {
	for _, tc := range []struct {
		h    []Field
		addr string
		err  error
	}{
		{[]Field{{"From", " Alice <alice@example.com>"}}, "alice@example.com", nil},
		{[]Field{{"from ", " \"Doe, J\"\r\n <j@example.com>"}}, "j@example.com", nil},
		{[]Field{{"To", " x@example.com"}}, "", ErrNoFrom},
		{[]Field{{"From", " a@example.com"}, {"FROM", " b@example.com"}}, "", ErrSeveralFrom},
		{[]Field{{"From", " a@example.com, b@example.com"}}, "", ErrSeveralFrom},
		{[]Field{{"From", " not an address"}}, "", ErrFromSyntax},
		{[]Field{{"From", " <@>"}}, "", ErrFromSyntax},
	} {
		addr, err := FromAddress(tc.h)
		if addr != tc.addr || !errors.Is(err, tc.err) {
			t.Errorf("%v: %q %v, want %q %v", tc.h, addr, err, tc.addr, tc.err)
		}
	}
}

func FuzzFromAddress(f *testing.F) {
	for _, s := range []string{" a@b.c", " \"x\" <a@b.c>", " a@b.c, d@e.f", " =?utf-8?q?x?= <a@b>", " <@>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		addr, err := FromAddress([]Field{{"From", v}})
		if err == nil {
			i := strings.LastIndexByte(addr, '@')
			if i <= 0 || i == len(addr)-1 {
				t.Fatalf("%q: address %q without local part or domain", v, addr)
			}
		}
	})
}
