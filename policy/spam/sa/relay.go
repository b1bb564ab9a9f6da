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
}

// Received field shapes of the common MTAs (Postfix/Sendmail, Exim,
// qmail); the rest count as unparseable, as in SpamAssassin.
var (
	rcvdPostfix = regexp.MustCompile(`^from\s+(\S+)\s+\(([^\s\[\]()]*)\s*\[(?:IPv6:)?([0-9A-Fa-f.:]+)\]`)
	rcvdExim    = regexp.MustCompile(`^from\s+(\S+)\s+\(\[(?:IPv6:)?([0-9A-Fa-f.:]+)\](?::\d+)?(?:\s+helo=(\S+?))?\)`)
	rcvdQmail   = regexp.MustCompile(`^from\s+(\S+)\s+\(HELO\s+(\S+?)\)\s+\(([0-9.]+)\)`)
	rcvdBare    = regexp.MustCompile(`^from\s+\[([0-9A-Fa-f.:]+)\]`)
	ipLiteral   = regexp.MustCompile(`\[\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\]`)
)

// ParseRelays reads the Received fields (newest first) into relays;
// fields it cannot read are left out and counted.
func ParseRelays(received []string) (relays []Relay, unparseable int) {
	for _, v := range received {
		v = strings.TrimSpace(unfold(v))
		// The four shapes start with "from" and white space: one look
		// settles the other fields (by, with, ...). Each regexp runs once,
		// FindStringSubmatch both matching and reading.
		if !strings.HasPrefix(v, "from") {
			continue
		}
		var r Relay
		if m := rcvdPostfix.FindStringSubmatch(v); m != nil {
			r = Relay{HELO: m[1], RDNS: m[2], IP: m[3]}
		} else if m := rcvdExim.FindStringSubmatch(v); m != nil {
			r = Relay{RDNS: m[1], IP: m[2], HELO: m[3]}
			if r.HELO == "" {
				r.HELO = m[1]
			}
		} else if m := rcvdQmail.FindStringSubmatch(v); m != nil {
			r = Relay{RDNS: m[1], HELO: m[2], IP: m[3]}
		} else if m := rcvdBare.FindStringSubmatch(v); m != nil {
			r = Relay{IP: m[1]}
		} else {
			// Only a field that names a client address we could not read
			// counts as unparseable; "from" clauses without one (local
			// pickup, fetchmail) are not relays.
			if from, _, _ := strings.Cut(v, " by "); strings.HasPrefix(v, "from ") && ipLiteral.MatchString(from) {
				unparseable++
			}
			continue
		}
		if strings.EqualFold(r.RDNS, "unknown") || r.RDNS == r.IP {
			r.RDNS = ""
		}
		if by, ok := rcvdClause(v, "by"); ok {
			r.By = by
		}
		if id, ok := rcvdClause(v, "id"); ok {
			r.ID = id
		}
		if _, err := netip.ParseAddr(r.IP); err != nil {
			unparseable++
			continue
		}
		relays = append(relays, r)
	}
	return relays, unparseable
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
			" ident= envfrom= intl=", intl, " id=", r.ID, " auth= msa=0 ]"} {
			b.WriteString(s)
		}
	}
	return b.String()
}
