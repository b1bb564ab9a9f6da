package message_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/goldentest"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Run locally for a while, e.g.
//   go test -run='^$' -fuzz=FuzzReadMessage -fuzztime=30s ./policy/message
// Crashers land in testdata/fuzz/FuzzReadMessage/ and are then regression seeds.

func messageSeeds(f *testing.F) {
	for _, s := range goldentest.Seeds("../testdata/golden") {
		f.Add(s)
	}
}

func FuzzReadMessage(f *testing.F) {
	messageSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, err := message.ReadMessage(bytes.NewReader(data), 50)
		if err != nil {
			if !errors.Is(err, message.ErrHeaderTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(h) > 50 {
			t.Fatalf("%d fields with a limit of 50", len(h))
		}
		for _, fl := range h {
			if !message.ValidFieldName(fl.Name) {
				t.Fatalf("invalid field name %q", fl.Name)
			}
			if strings.ContainsAny(fl.Value, "\n") && !validFolds(fl.Value) {
				t.Fatalf("value %q has a line break not followed by white space", fl.Value)
			}
		}
		// The body the MTA would send has CRLF line ends only.
		if bytes.Count(body, []byte("\n")) != bytes.Count(body, []byte("\r\n")) {
			t.Fatalf("body has bare LF: %q", body)
		}
		// Writing the header and reading it back gives the same fields.
		var b bytes.Buffer
		h.WriteTo(&b)
		if b.Len() != h.WireSize() {
			t.Fatalf("WireSize %d, WriteTo wrote %d", h.WireSize(), b.Len())
		}
		h2, rest, err := message.ReadMessage(&b, 0)
		if err != nil {
			t.Fatalf("re-reading our own header: %v", err)
		}
		if len(rest) != 0 || len(h2) != len(h) {
			t.Fatalf("round trip: %q -> %q (rest %q)", h, h2, rest)
		}
		for i := range h {
			want := h[i].Value
			if want != "" && want[0] != ' ' && want[0] != '\t' {
				want = " " + want
			}
			if h2[i].Name != h[i].Name || h2[i].Value != want {
				t.Fatalf("round trip field %d: %q -> %q", i, h[i], h2[i])
			}
		}
	})
}

func validFolds(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] == '\n' && (i+1 >= len(v) || (v[i+1] != ' ' && v[i+1] != '\t')) {
			return false
		}
	}
	return true
}
