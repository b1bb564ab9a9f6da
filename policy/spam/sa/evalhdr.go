package sa

import (
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// Header evals of SpamAssassin's HeaderEval and RelayEval plugins that
// read the path (Received) and the recipients.

// publicIPv4 reports whether s is an IPv4 address outside the private,
// loopback and link-local ranges (SpamAssassin's IS_IPV4_ADDRESS and
// !IS_IP_PRIVATE).
func publicIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && !internal(s) && !a.IsUnspecified()
}

// dotcomHELO is the list of big freemail/ISP domains of
// _check_received_helos: their own servers have reverse DNS.
var dotcomHELO = regexp.MustCompile(`(?i)(?:\.|^)(?:lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com|excite\.com|caramail\.com|cs\.com|aol\.com|msn\.com|yahoo\.com|drizzle\.com)$`)

// evalNoRDNSDotcomHELO is check_for_no_rdns_dotcom_helo: an untrusted
// relay said HELO as one of the big dot-coms but had no reverse DNS, by a
// field that shows the MTA looked (no_reverse_dns). As
// in RelayEval, each public relay overwrites the verdict, so the oldest
// one decides: one without a HELO too (Received.pm records it as "", which
// is defined for _check_received_helos).
func evalNoRDNSDotcomHELO(c *msgCtx, _ []string) int {
	_, untrusted := c.relays()
	hit := 0
	for _, r := range untrusted {
		if internal(r.IP) {
			continue
		}
		hit = b2i(r.RDNS == "" && !r.NoLookup && dotcomHELO.MatchString(r.HELO))
	}
	return hit
}

// evalHELOIPMismatch is helo_ip_mismatch: an untrusted relay gave a
// public IPv4 address as HELO that is not its own and not in the same /24.
func evalHELOIPMismatch(c *msgCtx, _ []string) int {
	_, untrusted := c.relays()
	for _, r := range untrusted {
		helo := strings.Trim(r.HELO, "[]")
		if !publicIPv4(helo) || !publicIPv4(r.IP) || helo == r.IP {
			continue
		}
		if net24 := helo[:strings.LastIndexByte(helo, '.')+1]; !strings.HasPrefix(r.IP, net24) {
			return 1
		}
	}
	return 0
}

// SpamAssassin's _check_recipients constants.
const (
	toccSortedCount  = 7
	toccSimilarCount = 5
	toccSimilarLen   = 2
)

// addresses appends to out what
//
//	[^\s<>,;:"()\[\]]+@[^\s<>,;:"()\[\]]+
//
// finds in v (FindAllString): "@" is in the class, so the first + takes
// a run of class bytes up to its last "@" with a byte after it, the
// second the rest; a match is a whole run that has an "@" neither first
// nor last, and a run without one has no match at any start. The
// excluded characters are ASCII, so bytes decide.
func addresses(v string, out []string) []string {
	if strings.IndexByte(v, '@') < 0 {
		return out
	}
	for i := 0; i < len(v); {
		if !addrByte(v[i]) {
			i++
			continue
		}
		j := i
		for j < len(v) && addrByte(v[j]) {
			j++
		}
		if j-i >= 3 && strings.IndexByte(v[i+1:j-1], '@') >= 0 {
			out = append(out, v[i:j])
		}
		i = j
	}
	return out
}

func addrByte(c byte) bool {
	switch c {
	case '\t', '\n', '\f', '\r', ' ', '<', '>', ',', ';', ':', '"', '(', ')', '[', ']':
		return false
	}
	return true
}

// recipients are the addresses of To and Cc (else also Bcc), adjacent
// duplicates removed, at most 256, as _check_recipients reads them.
func (c *msgCtx) recipients() []string {
	var in []string
	for _, fs := range [][]string{{"to", "cc"}, {"bcc"}} {
		for _, f := range fs {
			for _, v := range c.fields[f] {
				in = addresses(unfold(v), in)
			}
		}
		if len(in) >= toccSimilarCount {
			break
		}
	}
	var out []string
	prev := ""
	for _, a := range in {
		if !strings.EqualFold(a, prev) {
			out = append(out, a)
			prev = a
		}
		if len(out) == 256 {
			break
		}
	}
	return out
}

// evalSortedRecipients is sorted_recipients: seven or more recipients in
// sorted order (a harvested list).
func evalSortedRecipients(c *msgCtx, _ []string) int {
	r := c.recipients()
	return b2i(len(r) >= toccSortedCount && sort.StringsAreSorted(r))
}

// evalSimilarRecipients is similar_recipients(min, max): of all pairs of
// five or more recipients, the share whose local parts start alike plus
// those whose different hosts start alike, in [min, max).
func evalSimilarRecipients(c *msgCtx, a []string) int {
	r := c.recipients()
	sim := 0.0
	if len(r) >= toccSimilarCount {
		prefix := func(s string) string { return s[:min(len(s), toccSimilarLen)] }
		hits, pairs := 0, 0
		for i := range r {
			hi := r[i][strings.IndexByte(r[i], '@')+1:]
			for j := i + 1; j < len(r); j++ {
				hj := r[j][strings.IndexByte(r[j], '@')+1:]
				if prefix(r[i]) == prefix(r[j]) {
					hits++
				}
				if prefix(hi) == prefix(hj) && hi != hj {
					hits++
				}
				pairs++
			}
		}
		sim = float64(hits) / float64(pairs)
	}
	lo, hi := argFloat(a, 0, -1e308), argFloat(a, 1, 1e308)
	return b2i(sim >= lo && sim < hi)
}

var (
	ezmlmList     = regexp.MustCompile(`(?m)^contact \S+@\S+; run by ezmlm$`)
	ezmlmDelivTo  = regexp.MustCompile(`(?m)^mailing list \S+@\S+`)
	ezmlmRcvd     = regexp.MustCompile(`qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+`)
	msnGroupsRcvd = regexp.MustCompile(`from groups\.msn\.com \(\S+\.msn\.com `)
)

// gatedThroughReceivedRemover is gated_through_received_hdr_remover: the
// path was cut by an ezmlm list or MSN groups, or there is none.
func (c *msgCtx) gatedThroughReceivedRemover() bool {
	rcvd := strings.Join(c.fields["received"], "\n")
	if ml := strings.Join(c.fields["mailing-list"], "\n"); ezmlmList.MatchString(ml) {
		if ezmlmDelivTo.MatchString(strings.Join(c.fields["delivered-to"], "\n")) && ezmlmRcvd.MatchString(rcvd) {
			return true
		}
	}
	if len(c.fields["received"]) == 0 {
		return true
	}
	return msnGroupsRcvd.MatchString(rcvd)
}

func evalGatedThroughReceivedRemover(c *msgCtx, _ []string) int {
	return b2i(c.gatedThroughReceivedRemover())
}

var (
	spaces       = regexp.MustCompile(`\s+`)
	yahooRDNS    = regexp.MustCompile(`(?i)^\S+\.yahoo\.com$`)
	yahooGenuine = regexp.MustCompile(`by web\S+\.mail\S*\.yahoo\.com via HTTP|by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP|by smtp\S+\.yahoo\.com with SMTP|from \[[0-9.:A-Fa-f]+\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP|by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+`)
	yahooBulk    = regexp.MustCompile(`\bmailer\d+\.bulk\.scd\.yahoo\.com\b`)
	yahooReplyTo = regexp.MustCompile(`(?i)@reply\.yahoo\.com$`)
)

// evalForgedYahooReceived is check_for_forged_yahoo_received_headers: From
// is a yahoo.com address but no Received field shows Yahoo's own servers
// handing the message on.
func evalForgedYahooReceived(c *msgCtx, _ []string) int {
	from, _ := c.headerText("From", "addr")
	if !endsWithDomain(from, "yahoo.com") {
		return 0
	}
	rcvd := c.fields["received"]
	if len(c.fields["resent-from"]) > 0 && len(c.fields["resent-to"]) > 0 && len(c.fields["x-received"]) > 0 {
		rcvd = c.fields["x-received"]
	}
	text := spaces.ReplaceAllString(strings.Join(rcvd, "\n"), " ")
	if c.gatedThroughReceivedRemover() {
		return 0
	}
	// Bounces from Yahoo: its server is a trusted relay or the first
	// untrusted one.
	trusted, untrusted := c.relays()
	for _, r := range trusted {
		if yahooRDNS.MatchString(r.RDNS) {
			return 0
		}
	}
	if len(untrusted) > 0 && yahooRDNS.MatchString(untrusted[0].RDNS) {
		return 0
	}
	if yahooGenuine.MatchString(text) || (yahooBulk.MatchString(text) && yahooReplyTo.MatchString(from)) {
		return 0
	}
	return 1
}

// endsWithDomain is (?i)\b<domain>$ for a lower-case ASCII domain with
// neither k nor s (the letters with non-ASCII folds) that starts with a
// letter: s ends with the domain in any ASCII case, and no ASCII word
// character stands before it.
func endsWithDomain(s, domain string) bool {
	n := len(s) - len(domain)
	return n >= 0 && hasPrefixFoldASCII(s[n:], domain) && (n == 0 || !isWordByte(s[n-1]))
}
