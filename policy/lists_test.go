package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/message"
)

func TestMatchAddr(t *testing.T) {
	for _, tc := range []struct {
		pattern, addr string
		want          bool
	}{
		{"user@example.org", "user@example.org", true},
		{"user@example.org", "User@Example.ORG", true},
		{"USER@EXAMPLE.ORG", "user@example.org", true},
		{"user@example.org", "other@example.org", false},
		{"example.org", "anyone@example.org", true},
		{"example.org", "anyone@EXAMPLE.org", true},
		{"example.org", "anyone@sub.example.org", false},
		{"example.org", "anyone@badexample.org", false},
		{"*.example.org", "a@sub.example.org", true},
		{"*.example.org", "a@deep.sub.example.org", true},
		{"*.example.org", "a@example.org", false},
		{"*@example.org", "x@example.org", true},
		{"spam*@example.org", "spammer@example.org", true},
		{"spam*@example.org", "ham@example.org", false},
		{"user@*.example.org", "user@mx.example.org", true},
		{"user@*", "user@anything.test", true},
		{"*", "someone@anything.test", true},
		{"<>", "", true},
		{"<>", "a@example.org", false},
		{"example.org", "", false},
		{"*", "", false}, // only "<>" names the null sender
		{"*@*", "", false},
		// RFC 5321 §4.1.2: "/" is a legal atext character in a local part;
		// a wildcard must match it like any other character.
		{"*@example.org", "a/b@example.org", true},
		{"*@example.org", "=?x/y?=@example.org", true},
		{"[bad@example.org", "[bad@example.org", true}, // broken glob, exact match still works
		{"  user@example.org  ", "user@example.org", true},
	} {
		if got := matchAddr([]string{normalizePattern(tc.pattern)}, tc.addr); got != tc.want {
			t.Errorf("matchAddr(%q, %q) = %v, want %v", tc.pattern, tc.addr, got, tc.want)
		}
	}
	if matchAddr(nil, "a@example.org") {
		t.Error("an empty list matches nothing")
	}
	if !matchAddr([]string{"x@y.test", "example.org"}, "a@example.org") {
		t.Error("any pattern of the list may match")
	}
}

func TestMatchHostAndGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.org", "mail.example.org", true},
		{"mail.example.org", "MAIL.Example.Org.", true},
		{"*.example.org", "mx1.example.org", true},
		{"*.example.org", "example.org", false},
		{"mx?.example.org", "mx1.example.org", true},
		{"mx*.example.org", "mx-out.example.org", true},
		{"mx*.example.org", "smtp.example.org", false},
		{"[192.0.2.1]", "[192.0.2.1]", true}, // address literal: exact, not a glob class
		{"localhost", "", false},
		{"*", "", false},
	} {
		if got := matchHost([]string{normalizePattern(tc.pattern)}, tc.host); got != tc.want {
			t.Errorf("matchHost(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
	for _, tc := range []struct {
		p, h string
		want bool
	}{
		{"example.org", "example.org", true},
		{"*.example.org", "a.example.org", true},
		{"*.example.org", "aexample.org", false},
		{"*.ex*.org", "a.example.org", true},
		{"a[", "a[", true},
		{"a[", "ab", false},
	} {
		if got := globHost(tc.p, tc.h); got != tc.want {
			t.Errorf("globHost(%q, %q) = %v, want %v", tc.p, tc.h, got, tc.want)
		}
	}
}

func TestIsLocalDomainAndProtected(t *testing.T) {
	c := DefaultConfig()
	c.LocalDomains = []string{"example.org", "example.net"}
	for _, tc := range []struct {
		d    string
		want bool
	}{{"example.org", true}, {"EXAMPLE.NET", true}, {"example.org.", true}, {"sub.example.org", false}, {"example.com", false}, {"", false}} {
		if got := c.IsLocalDomain(tc.d); got != tc.want {
			t.Errorf("IsLocalDomain(%q) = %v, want %v", tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		rcpt string
		want bool
	}{
		{"postmaster@example.org", true},
		{"Postmaster@EXAMPLE.net", true},
		{"abuse@example.org", true},
		{"postmaster+tag@example.org", true},
		{"postmaster", true}, // RFC 5321 §4.5.1: the bare "postmaster" recipient
		{"postmaster@example.com", false},
		{"user@example.org", false},
		{"postmasterx@example.org", false},
		{"+postmaster@example.org", false},
	} {
		if got := c.IsProtected(tc.rcpt); got != tc.want {
			t.Errorf("IsProtected(%q) = %v, want %v", tc.rcpt, got, tc.want)
		}
	}
	// Without local domains the local part alone decides.
	c.LocalDomains = nil
	if !c.IsProtected("abuse@anything.test") {
		t.Error("abuse@ must be protected when no local domain is configured")
	}
	c.ProtectedRecipients = []string{"hostmaster"}
	if c.IsProtected("postmaster@x.test") || !c.IsProtected("HostMaster@x.test") {
		t.Error("protected_recipients is configurable")
	}
}

func TestDirectionAndFromUs(t *testing.T) {
	c := DefaultConfig()
	c.LocalDomains = []string{"example.org"}
	c.TrustedNetworks = append(c.TrustedNetworks, Prefix(netip.MustParsePrefix("10.0.0.0/8")))
	outside := message.Client{Addr: netip.MustParseAddr("198.51.100.7")}
	trusted := message.Client{Addr: netip.MustParseAddr("10.1.2.3")}
	local := message.Client{} // sendmail(1): no address
	for _, tc := range []struct {
		name   string
		client message.Client
		auth   string
		rcpts  []string
		fromUs bool
		want   Direction
	}{
		{"outside to local", outside, "", []string{"a@example.org"}, false, DirInbound},
		{"outside to mixed", outside, "", []string{"a@example.org", "b@other.test"}, false, DirInbound},
		{"outside to outside", outside, "", []string{"b@other.test"}, false, DirRelay},
		{"authenticated to outside", outside, "alice", []string{"b@other.test"}, true, DirOutbound},
		{"authenticated to local", outside, "alice", []string{"a@EXAMPLE.org"}, true, DirInternal},
		{"trusted to outside", trusted, "", []string{"b@other.test"}, true, DirOutbound},
		{"trusted to mixed", trusted, "", []string{"a@example.org", "b@other.test"}, true, DirOutbound},
		{"local submission", local, "", []string{"b@other.test"}, true, DirOutbound},
		{"loopback v4-mapped", message.Client{Addr: netip.MustParseAddr("::ffff:127.0.0.1")}, "", []string{"a@example.org"}, true, DirInternal},
	} {
		if got := c.FromUs(tc.client, tc.auth); got != tc.fromUs {
			t.Errorf("%s: FromUs = %v, want %v", tc.name, got, tc.fromUs)
		}
		if got := c.Direction(tc.client, tc.auth, tc.rcpts); got != tc.want {
			t.Errorf("%s: Direction = %v, want %v", tc.name, got, tc.want)
		}
		m := &message.Message{Client: tc.client, Auth: tc.auth, Rcpts: tc.rcpts}
		if got := c.DirectionOf(m); got != tc.want {
			t.Errorf("%s: Message.Direction = %v, want %v", tc.name, got, tc.want)
		}
	}
	// With no local domains every recipient is local.
	c.LocalDomains = nil
	if d := c.Direction(outside, "", []string{"x@anything.test"}); d != DirInbound {
		t.Errorf("no local_domains: %v, want inbound", d)
	}
}

func TestAuthservID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{" mx.example.org; spf=pass smtp.mailfrom=a@b.test", "mx.example.org"},
		{"mx.example.org 1; spf=pass", "mx.example.org"},
		{" mx.example.org;\n\tdkim=pass header.d=b.test", "mx.example.org"},
		{" mx.example.org;\r\n\tdkim=pass header.d=b.test", "mx.example.org"},
		{" (forged) mx.example.org; none", "mx.example.org"},
		{" MX.Example.Org; none", "MX.Example.Org"},
		{" mx.example.org", "mx.example.org"},
		{" mx.example.org (comment); spf=pass", "mx.example.org"},
		{" garbage without semicolon", "garbage"},
		{"", ""},
		{" (unterminated comment", ""},
		// RFC 8601 §2.2: the id is a token or a quoted string, comments
		// may touch it; a mail reader sees "mx.test" in all of these.
		{` "mx.test"; spf=pass`, "mx.test"},
		{` "mx.test" 1; spf=pass`, "mx.test"},
		{` "mx\.test"; none`, "mx.test"},
		{` (c)"mx.test"; none`, "mx.test"},
		{` mx.test(c); none`, "mx.test"},
		{` (a (nested) comment) mx.test; none`, "mx.test"},
		{` (a \) quoted paren) mx.test; none`, "mx.test"},
		{` mx.test.; spf=pass`, "mx.test"},
		{`mx.test;spf=pass`, "mx.test"},
		{" mx.test\t; spf=pass", "mx.test"},
		{` "unterminated`, "unterminated"},
	} {
		if got := authservID(tc.in); got != tc.want {
			t.Errorf("authservID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatAuthRes(t *testing.T) {
	if got := formatAuthRes("mx.test", nil); got != " mx.test; none" {
		t.Errorf("no results: %q", got)
	}
	one := formatAuthRes("mx.test", []authres.Result{&authres.SPFResult{Value: authres.ResultPass, From: "a@b.test"}})
	if one != " mx.test; spf=pass smtp.mailfrom=a@b.test" {
		t.Errorf("one result: %q", one)
	}
	two := formatAuthRes("mx.test", []authres.Result{
		&authres.SPFResult{Value: authres.ResultPass, From: "a@b.test"},
		&authres.DKIMResult{Value: authres.ResultFail, Domain: "b.test"},
	})
	want := " mx.test;\n\tspf=pass smtp.mailfrom=a@b.test;\n\tdkim=fail header.d=b.test"
	if two != want {
		t.Errorf("two results:\n got %q\nwant %q", two, want)
	}
	// What we write must parse back with our own id (it is what we delete
	// when a sender forges it).
	id, res, err := authres.Parse(message.Unfold(two))
	if err != nil || id != "mx.test" || len(res) != 2 {
		t.Errorf("parse back: %q %v %v", id, res, err)
	}
	if authservID(two) != "mx.test" {
		t.Error("authservID of our own header")
	}
	for _, l := range strings.Split(two, "\n") {
		if len(l) > 998 {
			t.Error("line too long")
		}
	}
}
