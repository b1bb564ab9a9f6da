package sa

import (
	"net/netip"
	"regexp"
	"strings"
)

// Relay is one hop of the message's path, as a Received field records it
// (RFC 5321 §4.4): the client's address, its reverse DNS name (empty when
// it had none) and HELO name, and the receiving host.
type Relay struct {
	IP   string
	RDNS string
	HELO string
	By   string
	ID   string
	// EnvFrom is the envelope sender the field records (a Return-Path,
	// envelope-from or envelope-sender clause), as Received.pm reads it.
	EnvFrom string
	// NoLookup says the field's shape does not show that the MTA looked
	// up the reverse DNS (qmail's, SMTPD32's, a bare address): an empty
	// RDNS then proves nothing (SpamAssassin's rdns_not_in_headers).
	NoLookup bool
}

// Received field shapes of the common MTAs (Postfix/Sendmail, Exim,
// qmail); the rest count as unparseable, as in SpamAssassin.
var (
	// (Postfix and Sendmail: rcvdPostfixShape)
	rcvdExim  = regexp.MustCompile(`^from\s+(\S+)\s+\(\[(?:IPv6:)?([0-9A-Fa-f.:]+)\](?::\d+)?(?:\s+helo=(\S+?))?\)`)
	rcvdQmail = regexp.MustCompile(`^from\s+(\S+)\s+\(HELO\s+(\S+?)\)\s+\(([0-9.]+)\)`)
	// qmail with the address bracketed, and optionally a user:
	// "from unknown (HELO avalon) ([64.125.200.18]) (envelope-sender <a@b>) by ..."
	rcvdQmailish = regexp.MustCompile(`^from (\S+) \((?:HELO|EHLO) ([^)]*)\) \((?:\S*@)?\[?([0-9.]+)\]?\).* by \S+ `)
	// SMTPD32 and the like: "from oemcomputer [63.232.189.195] by highstream.net (SMTPD32-7.07) ..."
	rcvdHeloBracket = regexp.MustCompile(`^from (\S+) \[([0-9.]+)\] by \S+ `)
	rcvdBare        = regexp.MustCompile(`^from\s+\[([0-9A-Fa-f.:]+)\]`)
	// The characters Received.pm replaces with "!" in the envelope
	// sender it records (rcvdEnvFromValue reads the clause).
	rcvdStrip = strings.NewReplacer(" ", "!", "\t", "!", "\x00", "!", "#", "!", "[", "!", "]", "!", "(", "!", ")", "!", "<", "!", ">", "!", "|", "!")
)

// ParseRelays reads the Received fields (newest first) into relays;
// fields it cannot read are left out and counted.
func ParseRelays(received []string) (relays []Relay, unparseable int) {
	for _, v := range received {
		r, k := parseReceived(v)
		relays, unparseable = appendRelay(relays, unparseable, r, k)
	}
	return relays, unparseable
}

// rcvdKind is what one Received field says of the message's path.
type rcvdKind uint8

const (
	rcvdNone        rcvdKind = iota // no relay: not a "from" field, or no client address
	rcvdRelay                       // a relay
	rcvdFetcher                     // a mail fetcher's handover
	rcvdUnparseable                 // a client address that could not be read
)

// appendRelay adds what one field says (parseReceived's answer) to the
// path read so far, newest first.
func appendRelay(relays []Relay, unparseable int, r Relay, k rcvdKind) ([]Relay, int) {
	switch k {
	case rcvdRelay:
		relays = append(relays, r)
	case rcvdUnparseable:
		unparseable++
	case rcvdFetcher:
		// QUIRK(spamassassin): Received.pm skips a fetcher's handover
		// and, while every relay so far is trusted, restarts the path
		// there: the fetching host's own hops say nothing of the
		// message (found_pop_fetcher_sig).
		if _, untrusted := splitTrust(relays); len(untrusted) == 0 {
			relays = relays[:0]
		}
	}
	return relays, unparseable
}

// parseReceived reads one Received field.
func parseReceived(v string) (Relay, rcvdKind) {
	v = strings.TrimSpace(unfold(v))
	// The four shapes start with "from" and white space: one look
	// settles the other fields (by, with, ...). Each regexp runs once,
	// FindStringSubmatch both matching and reading.
	if !strings.HasPrefix(v, "from") {
		return Relay{}, rcvdNone
	}
	// A mail fetcher's handover (fetchmail, getmail): "... by localhost
	// with IMAP (fetchmail-5.9.0)".
	if strings.Contains(v, "with POP3") || strings.Contains(v, "with IMAP") {
		return Relay{}, rcvdFetcher
	}
	var r Relay
	var exim []string // Exim's shape has "([" where its regexp needs it
	if strings.Contains(v, "([") {
		exim = rcvdExim.FindStringSubmatch(v)
	}
	// QUIRK(spamassassin): Received.pm reads "from NAME ([ip]
	// helo=H)" as reverse DNS NAME and HELO H only in Exim's fields;
	// in others (Sendmail without a lookup) NAME is the HELO and the
	// relay has no reverse DNS, as the Postfix shape reads it.
	if m := exim; m != nil && strings.Contains(v, "Exim") {
		r = Relay{RDNS: m[1], IP: m[2], HELO: m[3]}
		if r.HELO == "" {
			r.HELO = m[1]
		}
	} else if helo, rdns, ip, ok := rcvdPostfixShape(v); ok && rdns != "" {
		r = Relay{HELO: helo, RDNS: withoutIdent(rdns), IP: ip}
	} else if q, qok := rcvdQmailField(v); qok {
		// Received.pm's Sendmail shape needs a name before the
		// address; without one, qmail's come first.
		r = q
	} else if ok {
		r = Relay{HELO: helo, IP: ip, NoLookup: rcvdSMTPSVC.MatchString(v)}
	} else if m := exim; m != nil {
		r = Relay{HELO: m[3], IP: m[2]}
		if r.HELO == "" {
			r.HELO = m[1]
		}
	} else if m := rcvdQmail.FindStringSubmatch(v); m != nil {
		r = Relay{RDNS: m[1], HELO: m[2], IP: m[3], NoLookup: true}
	} else if m := rcvdQmailish.FindStringSubmatch(collapseSpace(v)); m != nil {
		r = Relay{RDNS: m[1], HELO: m[2], IP: m[3], NoLookup: true}
	} else if m := rcvdHeloBracket.FindStringSubmatch(collapseSpace(v)); m != nil {
		r = Relay{HELO: m[1], IP: m[2], NoLookup: true}
	} else if m := rcvdBare.FindStringSubmatch(v); m != nil {
		r = Relay{IP: m[1], NoLookup: true}
	} else if rest, ok, ignored := rcvdRest(v); ok {
		r = rest
	} else {
		// A handover Received.pm ignores is no relay; any other field
		// it cannot read counts as unparseable.
		if ignored {
			return Relay{}, rcvdNone
		}
		return Relay{}, rcvdUnparseable
	}
	if strings.EqualFold(r.RDNS, "unknown") {
		r.RDNS = ""
	}
	if e, ok := rcvdEnvFromValue(collapseSpace(v)); ok {
		r.EnvFrom = rcvdStrip.Replace(strings.TrimRight(strings.TrimLeft(e, "<"), ">"))
	}
	if by, ok := rcvdClause(v, "by"); ok {
		r.By = by
	}
	if id, ok := rcvdClause(v, "id"); ok {
		r.ID = id
	}
	if _, err := netip.ParseAddr(r.IP); err != nil {
		return Relay{}, rcvdUnparseable
	}
	return r, rcvdRelay
}

// internal reports an address of the site's own networks as SpamAssassin
// infers them without trusted_networks: loopback and private ranges.
func internal(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
}

// splitTrust cuts the path at the first relay from outside: that one and
// all older ones are untrusted.
func splitTrust(relays []Relay) (trusted, untrusted []Relay) {
	for i, r := range relays {
		if !internal(r.IP) {
			return relays[:i], relays[i:]
		}
	}
	return relays, nil
}

// relayText renders relays as SpamAssassin's X-Spam-Relays-* pseudo-headers.
func relayText(rs []Relay) string {
	// The fixed text of one relay, its intl digit and the space before the
	// next: the builder is sized once.
	const fixed = len("[ ip=") + len(" rdns=") + len(" helo=") + len(" by=") +
		len(" ident= envfrom= intl=") + 1 + len(" id=") + len(" auth= msa=0 ]") + 1
	n := 0
	for _, r := range rs {
		n += fixed + len(r.IP) + len(r.RDNS) + len(r.HELO) + len(r.By) + len(r.ID)
	}
	var b strings.Builder
	b.Grow(n)
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		intl := "0"
		if internal(r.IP) {
			intl = "1"
		}
		for _, s := range [...]string{"[ ip=", r.IP, " rdns=", r.RDNS, " helo=", r.HELO, " by=", r.By,
			" ident= envfrom=", r.EnvFrom, " intl=", intl, " id=", r.ID, " auth= msa=0 ]"} {
			b.WriteString(s)
		}
	}
	return b.String()
}

// collapseSpace turns each run of white space into one space, as
// SpamAssassin's parse_received_line does before its patterns.
func collapseSpace(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

// withoutIdent removes the client's IDENT answer that Sendmail writes
// before its reverse DNS name ("IDENT:root@host", "root@host", "user@"
// when the name is missing), as Received.pm's sendmail branch does: the
// rest is the name, empty when there was none.
func withoutIdent(rdns string) string {
	if rest, ok := strings.CutPrefix(rdns, "IDENT:"); ok {
		if i := strings.IndexByte(rest, '@'); i >= 0 {
			rdns = rest[i+1:]
		}
	}
	if i := strings.IndexByte(rdns, '@'); i >= 0 {
		rdns = rdns[i+1:]
	}
	return rdns
}
