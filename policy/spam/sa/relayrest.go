package sa

import (
	"regexp"
	"strings"
)

// The rest of Received.pm's parse_received_line, for the fields none of
// ParseRelays's shapes read: the qmail shapes without a HELO, a few
// bracketed ones, the handovers it ignores, and its last resort (an
// address in brackets and a "by" name make a relay; a field with
// neither is unparseable).
const rcvdIP = `(?:\d{1,3}(?:\.\d{1,3}){3}|(?:[Ii][Pp][Vv]6:)?[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)`

var (
	rcvdWithLocalFor = regexp.MustCompile(`\bwith local for\b`)
	rcvdFromByOnly   = regexp.MustCompile(`(?i)^from (\S+) by [^\s;]+ ?;`)
	rcvdBareIPv4     = regexp.MustCompile(`^\[[\d.]+\]$`)
	rcvdTrailingDate = regexp.MustCompile(`[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$`)
	rcvdHeloEq       = regexp.MustCompile(`\bhelo=([-A-Za-z0-9.^+_&:=?!@%*$\\/]+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)`)
	rcvdHeloWord     = regexp.MustCompile(`\b(?:HELO|EHLO) ([-A-Za-z0-9.^+_&:=?!@%*$\\/]+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)`)
	rcvdBy           = regexp.MustCompile(` by (\S+)(?:[^-A-Za-z0-9;.]|$)`)
	rcvdHeloGuess    = regexp.MustCompile(`^(\S+)[^-A-Za-z0-9.]`)
	rcvdAnyIP        = regexp.MustCompile(`\[(` + rcvdIP + `)\]`)

	// qmail (Received.pm's "MiB" block): the general shape, then its
	// four variants.
	rcvdQmailAny    = regexp.MustCompile(`^\S+(?: \((?:HELO|EHLO) \S*\))? \((?:\S+@)?\[?` + rcvdIP + `\]?\)(?: \(envelope-sender <\S+>\))? by \S+(?: \(.+\))* with (?:.* )?(?:SMTP|QMQP)( id )?`)
	rcvdQmailHeloID = regexp.MustCompile(`^(\S+) \((?:HELO|EHLO) ([^ ()]*)\) \((\S*)@\[?(` + rcvdIP + `)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`)
	rcvdQmailHelo   = regexp.MustCompile(`^(\S+) \((?:HELO|EHLO) ([^ ()]*)\) \(\[?(` + rcvdIP + `)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`)
	rcvdQmailID     = regexp.MustCompile(`^(\S+) \((\S*)@\[?(` + rcvdIP + `)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`)
	rcvdQmailPlain  = regexp.MustCompile(`^(\S+) \(\[?(` + rcvdIP + `)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`)

	// Microsoft's SMTPSVC does not look the name up: "from helo ([ip]
	// RDNS failed) by host with Microsoft SMTPSVC".
	rcvdSMTPSVC = regexp.MustCompile(`^from\s+\S*\s+\(\[` + rcvdIP + `\][^)]{0,40}\)\s+by\s+\S+\s+with\s+Microsoft\s+SMTPSVC`)

	rcvdQpsmtpd = regexp.MustCompile(`^(\S+) \((?:HELO|EHLO) (\S*)\) \((` + rcvdIP + `)\) by (\S+) \(qpsmtpd/\S+\) with (?:ESMTP|SMTP)`)

	rcvdHotmailHTTP = regexp.MustCompile(`by (\S+\.hotmail\.msn\.com) `)
	rcvdLeadingIP   = regexp.MustCompile(`^(` + rcvdIP + `) `)
	rcvdParenHelo   = regexp.MustCompile(`^\((\S+) \[(` + rcvdIP + `)\]\) by (\S+) `)
	rcvdParenIP     = regexp.MustCompile(`^\(\[?(` + rcvdIP + `)\]?\) by (\S+) `)
	rcvdMDaemon     = regexp.MustCompile(`^(\S+) \[(` + rcvdIP + `)\] by (\S+) \[` + rcvdIP + `\] with `)
	rcvdNameParenIP = regexp.MustCompile(`^(\S+)\((` + rcvdIP + `)\) by (\S+) `)
	// The shapes after the fetchers' (Received.pm: "from (rdns|unknown)
	// [(HELO h)] ([ident@]ip) ... by"): the MTA looked the name up.
	rcvdNameHeloIP    = regexp.MustCompile(`^(\S+) \((?:HELO|EHLO) ([^)]*)\) \((?:\S*@)?\[?(` + rcvdIP + `)\]?\).* by (\S+) `)
	rcvdNameHeloLogin = regexp.MustCompile(`^(\S+) \((?:HELO|EHLO) (\S*)\) \((?:\S+@)?(` + rcvdIP + `).*?\) by (\S+) with `)
	rcvdIPByWith      = regexp.MustCompile(`^(` + rcvdIP + `) by (\S+) with `)
	// SquirrelMail and NaSMail: "from IP (SquirrelMail authenticated
	// user u) by host with HTTP".
	rcvdWebmail   = regexp.MustCompile(` \((?:SquirrelMail|NaSMail) authenticated user `)
	rcvdWebmailIP = regexp.MustCompile(`(` + rcvdIP + `)[^\w.\-].{9,79}by (\S+) with HTTP`)
	rcvdNameIP    = regexp.MustCompile(`^(\S+) \((?:\S*@)?\[?(` + rcvdIP + `)\]?\).* by (\S+) `)

	// The handovers Received.pm knows carry nothing to use ("STUFF TO
	// IGNORE"), after "from " is taken off.
	rcvdLocalhost = `(?:localhost(?:\.localdomain)?|127\.0\.0\.1|::1)`
	rcvdIgnore    = []*regexp.Regexp{
		// Those among its shapes.
		regexp.MustCompile(`^mail pickup service by (\S+) with Microsoft SMTPSVC$`),
		regexp.MustCompile(`^\S+ by \S+ with BSMTP`),
		regexp.MustCompile(`^\S+ \(\S+\) by \S+ \(Content Technologies `),
		regexp.MustCompile(`^\S+ \([^\s@]+@` + rcvdLocalhost + `\) by \S+ \(`),
		regexp.MustCompile(`^\S+ \S+ by \S+ with local-e?smtp `),
		regexp.MustCompile(`^127\.0\.0\.1 \(AVG SMTP \S+ \[\S+\]\)`),
		regexp.MustCompile(`^\S+@\S+ by \S+ by uid \S+ `),
		regexp.MustCompile(`^\S+@\S+ by \S+ `),
		regexp.MustCompile(`^Unknown/Local \(`),
		regexp.MustCompile(`^` + rcvdLocalhost + ` \((?:\S+@)?` + rcvdLocalhost + `[)\[]`),
		regexp.MustCompile(`^\S+ \((?:\S+@)?` + rcvdLocalhost + `\) `),
		regexp.MustCompile(`^\S+ \(\S+@\S+ \[` + rcvdLocalhost + `\]\) `),
		regexp.MustCompile(`^\(AUTH: \S+\) by \S+ with `),
		regexp.MustCompile(`^localhost \(localhost \[\[UNIX: localhost\]\]\) by `),
		regexp.MustCompile(`^\S+\.amazon\.com by \S+\.amazon\.com with ESMTP \(peer crosscheck: `),
		regexp.MustCompile(`^[^.]+ by \S+ with Novell_GroupWise`),
		regexp.MustCompile(`^no\.name\.available by \S+ via smtpd \(for `),
		regexp.MustCompile(`^\S+ by \S+ \(.{0,100}\) with qmail-scanner`),
		regexp.MustCompile(`^\S+ by \S+ with local`),
		regexp.MustCompile(`^\S+ \(\[unix socket\]\) by \S+ \(Cyrus v[0-9]*?\.[0-9]*?\.[0-9]*?\) with LMTPA`),
		regexp.MustCompile(`^\S+ by \S+ (?:with|via|for|\()`),
		regexp.MustCompile(`^\S+ (?:(?:with|via|for) \S+|\(unverified\)) by\b`),
		regexp.MustCompile(`^\S+ \(unknown\) by \S+ \(SG\) with \b`),
		regexp.MustCompile(`^\S+ \(\S+ \[local\]\) by \S+ \(OpenSMTPD\) with \b`),
		regexp.MustCompile(`\(LSMTP for`),
		regexp.MustCompile(`^\(\[` + rcvdLocalhost + `\]\) with MailEnable `),
		regexp.MustCompile(`^facebook\.com \([^)]+\) by facebook\.com with Thrift id \S+$`),
		regexp.MustCompile(`^\S+ named \S+ by gmailapi\.google\.com with HTTPREST$`),
		regexp.MustCompile(`^\S+ id \S+$`),
		regexp.MustCompile(`^\[<.*? \(Jetsend`),
	}
)

// rcvdRest reads v, a Received field that starts with "from" and that
// none of ParseRelays's shapes read. It returns the relay, or ignored
// when Received.pm skips such a handover, or neither when the field is
// unparseable.
func rcvdRest(v string) (r Relay, ok, ignored bool) {
	v = collapseSpace(v)
	for strings.HasSuffix(v, ";") {
		v = strings.TrimSuffix(strings.TrimSuffix(v, ";"), " ")
	}
	if rcvdWithLocalFor.MatchString(v) {
		return r, false, true
	}
	if m := rcvdFromByOnly.FindStringSubmatch(v); m != nil && !rcvdBareIPv4.MatchString(m[1]) {
		return r, false, true
	}
	v = rcvdTrailingDate.ReplaceAllString(v, "")
	v = strings.Replace(v, ")by ", ") by ", 1)
	if m := rcvdHeloEq.FindStringSubmatch(v); m != nil {
		r.HELO = m[1]
	} else if m := rcvdHeloWord.FindStringSubmatch(v); m != nil {
		r.HELO = m[1]
	}
	if m := rcvdBy.FindStringSubmatch(v); m != nil {
		r.By = strings.TrimSuffix(m[1], ";")
	}
	rest, found := strings.CutPrefix(v, "from ")
	if !found {
		// "FROM" (simta) and "(from" (Norton AntiVirus) have shapes of
		// their own; neither is read here.
		return r, false, false
	}
	r.NoLookup = true
	if rcvdWebmail.MatchString(rest) {
		if m := rcvdWebmailIP.FindStringSubmatch(rest); m != nil {
			r.IP, r.By = m[1], m[2]
			return r, true, false
		}
	}
	if q, ok := rcvdQmailShape(rest); ok {
		return q, true, false
	}
	if m := rcvdHotmailHTTP.FindStringSubmatch(rest); m != nil {
		r.By = m[1]
		if m := rcvdLeadingIP.FindStringSubmatch(rest); m != nil {
			r.IP = m[1]
		}
		return r, true, false
	}
	if m := rcvdParenHelo.FindStringSubmatch(rest); m != nil {
		r.HELO, r.IP, r.By = m[1], m[2], m[3]
		return r, true, false
	}
	if m := rcvdParenIP.FindStringSubmatch(rest); m != nil {
		r.IP, r.By = m[1], m[2]
		return r, true, false
	}
	if m := rcvdMDaemon.FindStringSubmatch(rest); m != nil {
		r.HELO, r.IP, r.By, r.NoLookup = m[1], m[2], m[3], false
		return r, true, false
	}
	if m := rcvdNameParenIP.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.IP, r.By = m[1], m[2], m[3]
		return r, true, false
	}
	if m := rcvdNameHeloIP.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By, r.NoLookup = m[1], m[2], m[3], m[4], false
		return r, true, false
	}
	if m := rcvdNameIP.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By, r.NoLookup = m[1], m[1], m[2], m[3], false
		return r, true, false
	}
	if m := rcvdNameHeloLogin.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By, r.NoLookup = m[1], m[2], m[3], m[4], false
		return r, true, false
	}
	if m := rcvdIPByWith.FindStringSubmatch(rest); m != nil {
		r.IP, r.By = m[1], m[2]
		return r, true, false
	}
	for _, re := range rcvdIgnore {
		if re.MatchString(rest) {
			return r, false, true
		}
	}
	if r.HELO == "" {
		if m := rcvdHeloGuess.FindStringSubmatch(rest); m != nil {
			r.HELO = m[1]
		}
	}
	// Received.pm's fall-through: the first address in brackets.
	if m := rcvdAnyIP.FindStringSubmatch(rest); m != nil {
		r.IP = m[1]
	}
	if r.IP != "" && r.By != "" {
		return r, true, false
	}
	return r, false, false
}

// rcvdQmailField reads v, a whole Received field, when it has one of
// qmail's shapes (Received.pm reads them before the Sendmail ones
// without a name: "from name ([ip]) by host with QMQP" names the relay).
func rcvdQmailField(v string) (Relay, bool) {
	rest, ok := strings.CutPrefix(collapseSpace(v), "from ")
	if !ok || rcvdQpsmtpd.MatchString(rest) || rcvdSMTPSVC.MatchString(v) {
		// qpsmtpd's and SMTPSVC's fields look like qmail's, but
		// Received.pm reads them first, as not looked up (as
		// ParseRelays's own shapes do).
		return Relay{}, false
	}
	r, ok := rcvdQmailShape(rest)
	if ok {
		if m := rcvdBy.FindStringSubmatch(rest); m != nil && r.By == "" {
			r.By = m[1]
		}
	}
	return r, ok
}

// rcvdQmailShape is Received.pm's qmail block ("MiB"): the general
// shape, then its four variants, on a field without its "from ".
func rcvdQmailShape(rest string) (r Relay, ok bool) {
	m := rcvdQmailAny.FindStringSubmatch(rest)
	if m == nil || m[1] != "" {
		return r, false
	}
	if m := rcvdQmailHeloID.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By = m[1], m[2], m[4], m[5]
	} else if m := rcvdQmailHelo.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By = m[1], m[2], m[3], m[4]
	} else if m := rcvdQmailID.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By = m[1], m[1], m[3], m[4]
	} else if m := rcvdQmailPlain.FindStringSubmatch(rest); m != nil {
		r.RDNS, r.HELO, r.IP, r.By = m[1], m[1], m[2], m[3]
	}
	// qmail writes "unknown" when tcpserver gave it no name: then
	// nothing was looked up.
	if r.RDNS == "unknown" {
		r.RDNS, r.NoLookup = "", true
	}
	return r, true
}
