package sign

import (
	"context"
	"crypto"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestSignerDecides: every reason not to sign, and signing when all is
// well (with the tracker holding back a key whose record is missing).
func TestSignerDecides(t *testing.T) {
	tab, err := loadSample(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	withClock(t, now)
	dns := newDNS()
	for _, k := range tab.Keys() {
		if k.Name != "ceo" {
			dns.publish(t, k)
		}
	}
	tr := NewTracker()
	tr.CheckAll(context.Background(), dns, tab.Keys(), now)
	s := &Signer{Table: tab, Tracker: tr, Senders: Senders{"bob": {"example.com"}}}
	msg := func(from ...string) []Field {
		h := []Field{{"To", " x@example.net"}, {"Subject", " s"}}
		for _, f := range from {
			h = append(h, Field{"From", " " + f})
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		req    Request
		status Status
		nsig   int
	}{
		{"inbound", Request{Header: msg("a@example.com"), Ours: false}, StatusNotOurs, 0},
		{"no from", Request{Header: msg(), Ours: true}, StatusNoFrom, 0},
		{"two from", Request{Header: msg("a@example.com", "b@example.com"), Ours: true}, StatusSeveralFrom, 0},
		{"bad from", Request{Header: msg("<<<"), Ours: true}, StatusBadFrom, 0},
		{"no rule", Request{Header: msg("a@example.org"), Ours: true}, StatusNoRule, 0},
		{"user not allowed", Request{Header: msg("a@sub.example.com"), Ours: true, User: "bob"}, StatusNotAllowed, 0},
		{"user own domain", Request{Header: msg("a@example.com"), Ours: true, User: "alice@example.com"}, StatusSigned, 2},
		{"user listed", Request{Header: msg("a@example.com"), Ours: true, User: "bob"}, StatusSigned, 2},
		{"trusted network", Request{Header: msg("a@sub.example.com"), Ours: true}, StatusSigned, 1},
		{"record missing", Request{Header: msg("ceo@example.com"), Ours: true}, StatusNoKey, 0},
	} {
		tc.req.Now = now
		tc.req.Body = strings.NewReader("hi\r\n")
		out := s.Sign(tc.req)
		if out.Status != tc.status || len(out.Signatures) != tc.nsig {
			t.Errorf("%s: %s with %d signatures (%v), want %s with %d", tc.name, out.Status, len(out.Signatures), out.Err, tc.status, tc.nsig)
		}
	}
}

type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("HSM unplugged")
}

func TestSignError(t *testing.T) {
	testKeys()
	k := &Key{Name: "broken", Domain: "example.com", Selector: "s", Signer: failingSigner{rsa1}}
	_, err := Sign([]Field{{"From", " a@example.com"}}, strings.NewReader("x\r\n"), []*Key{k}, time.Unix(1, 0), 0)
	if !errors.Is(err, ErrSignFailure) || !strings.Contains(err.Error(), "HSM unplugged") {
		t.Errorf("err = %v", err)
	}
}
