package sa

import (
	"regexp"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Evals of SpamAssassin's BodyEval, MIMEEval and HeaderEval plugins that
// read the MIME structure, the encoded bodies and a few header fields.

// madiff is BodyEval's comparison of the parts of a multipart/
// alternative: the share of the HTML part's words (white space separated
// tokens with a letter, digit or _) that the text part lacks, the
// greatest over the message's multipart/alternatives, and the word counts
// of the last one compared.
type madiff struct {
	diff       float64 // percent
	html, text int     // distinct words
}

// multipartAltDiff is the message's madiff, computed once (two evals
// read it).
func (c *msgCtx) multipartAltDiff() madiff {
	if c.madiff == nil {
		r := c.computeMadiff()
		c.madiff = &r
	}
	return *c.madiff
}

func (c *msgCtx) computeMadiff() madiff {
	c.texts()
	var r madiff
	parts := c.m.Parts
	// Exchange meeting requests (text/html beside text/calendar) differ
	// by design.
	if c.m.Type == "multipart/alternative" && len(parts) == 2 && parts[0].Type == "text/html" && parts[1].Type == "text/calendar" {
		return r
	}
	alts := 0
	for _, p := range parts {
		alts = max(alts, p.Alt)
	}
	for alt := 1; alt <= alts; alt++ {
		html, text := map[string]int{}, map[string]int{}
		images := false
		for i, p := range parts {
			if p.Alt != alt {
				continue
			}
			words := text
			if p.Type == "text/html" {
				words = html
			}
			for _, w := range strings.Fields(c.rendered[i]) {
				if hasWordChar(w) {
					words[w]++
				}
			}
			if h := c.htmlOf[i]; h >= 0 && c.html.parts[h].img {
				images = true
			}
		}
		if len(html) == 0 && images {
			html["\n"] = 1 // an image alone is one word
		}
		orig := len(html)
		if orig == 0 {
			continue
		}
		r.html, r.text = orig, len(text)
		for w, n := range text {
			if m, ok := html[w]; ok && m-n < 1 {
				delete(html, w)
			}
		}
		r.diff = max(r.diff, float64(len(html))/float64(orig)*100)
	}
	return r
}

func hasWordChar(w string) bool {
	for i := 0; i < len(w); i++ {
		if isWordByte(w[i]) {
			return true
		}
	}
	return false
}

// evalMultipartAltDiff is multipart_alternative_difference(min, max):
// min < difference <= max (min 0 takes 0 too; max "undef" is none).
func evalMultipartAltDiff(c *msgCtx, a []string) int {
	d := c.multipartAltDiff()
	min := argFloat(a, 0, 0)
	return b2i((min == 0 || d.diff > min) && d.diff <= argFloat(a, 1, 1e308))
}

// evalMultipartAltDiffCount is multipart_alternative_difference_count
// (ratio, minhtml): the text part has more than ratio times the HTML
// part's words, the HTML part more than minhtml.
func evalMultipartAltDiffCount(c *msgCtx, a []string) int {
	d := c.multipartAltDiff()
	if float64(d.html) <= argFloat(a, 1, 0) || d.html == 0 {
		return 0
	}
	return b2i(float64(d.text)/float64(d.html) > argFloat(a, 0, 0))
}

// evalBase64Length is check_base64_length(min[, max]): the longest
// encoded line of the base64 parts (calendar invitations aside), its
// line break counted as Perl's length counts it.
func evalBase64Length(c *msgCtx, a []string) int {
	n := 0
	for _, p := range c.m.Parts {
		if p.Encoding == "base64" && p.Type != "application/ics" && p.MaxLine > 0 {
			n = max(n, p.MaxLine+1)
		}
	}
	if len(a) > 1 && float64(n) > argFloat(a, 1, 1e308) {
		return 0
	}
	return b2i(float64(n) >= argFloat(a, 0, 0))
}

// evalMultipartRatio is check_mime_multipart_ratio(min, max): in a
// message with a multipart/alternative, the encoded size of the last
// text/plain part over that of the last text/html part (1 when either is
// missing); min <= ratio < max.
func evalMultipartRatio(c *msgCtx, a []string) int {
	ratio := 1.0
	text, html := -1, -1
	alt := false
	for _, p := range c.m.Parts {
		alt = alt || p.Alt > 0
		if !alt || attachment(p) {
			continue
		}
		switch p.Type {
		case "text/plain":
			text = p.RawSize
		case "text/html":
			html = p.RawSize
		}
	}
	if text >= 0 && html > 0 {
		ratio = float64(text) / float64(html)
	}
	return b2i(ratio >= argFloat(a, 0, 0) && ratio < argFloat(a, 1, 1e308))
}

func attachment(p Part) bool {
	for _, f := range p.Header {
		if strings.EqualFold(f.Name, "Content-Disposition") && strings.Contains(strings.ToLower(f.Value), "attachment") {
			return true
		}
	}
	return false
}

// evalVerticalWords is tvd_vertical_words(min, max): the most spaced-out
// body line (longer than 5 bytes), as the percentage of spaces to other
// bytes (100 when spaces are the majority); min <= value < max, a max of
// 100 or more taking 100.
func evalVerticalWords(c *msgCtx, a []string) int {
	v := -1
	for _, l := range c.bodyLines() {
		if len(l) <= 5 {
			continue
		}
		sp := strings.Count(l, " ")
		other := len(l) - sp
		pct := 100
		if sp <= other && other > 0 {
			pct = 100 * sp / other
		}
		v = max(v, pct)
	}
	hi := argFloat(a, 1, 101)
	if hi >= 100 {
		hi = 101
	}
	return b2i(float64(v) >= argFloat(a, 0, 0) && float64(v) < hi)
}

var gmailFrom = regexp.MustCompile(`(?i)\bgmail\.com$`)

// evalForgedGmailReceived is check_for_forged_gmail_received_headers: From
// a gmail.com address, without the X-Received or Received of Google's
// own servers, nor its long X-Gm-Message-State and X-Google-Smtp-Source.
func evalForgedGmailReceived(c *msgCtx, _ []string) int {
	from, _ := c.headerText("From", "addr")
	if !gmailFrom.MatchString(from) {
		return 0
	}
	joined := func(name string) string { return strings.Join(c.fields[strings.ToLower(name)], "\n") }
	xr := joined("X-Received")
	if gmailXReceived.MatchString(xr) || gmailSubmission.MatchString(joined("Received")) {
		return 0
	}
	if len(joined("X-Gm-Message-State")) >= 60 && len(joined("X-Google-Smtp-Source")) >= 60 {
		return 0
	}
	return 1
}

var (
	gmailXReceived  = regexp.MustCompile(`by 10\.\S+ with SMTP id \S+|by 2002:a\d\d:\w+:\S+ with SMTP id \S+`)
	gmailSubmission = regexp.MustCompile(`by smtp\.googlemail\.com with ESMTPSA id \S+`)
)

var (
	ipAddress       = `(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-fA-F]{0,4}:[0-9a-fA-F:.]*:[0-9a-fA-F.]+)`
	anyIP           = regexp.MustCompile(ipAddress)
	hotmailOrigin   = regexp.MustCompile(`hotmail\.com|msonline-outlook`)
	hotmailPickup   = regexp.MustCompile(`from mail pickup service by hotmail\.com with Microsoft SMTPSVC;`)
	hotmailGenuine  = regexp.MustCompile(`from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ )]|from \S*\.hotmail.com \(\[` + ipAddress + `\][ ):]|from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;|from \[66\.218.\S+\] by \S+\.yahoo\.com`)
	outlookGenuine  = regexp.MustCompile(`from \S*\.outbound\.protection\.outlook\.com \(\S+\.outbound\.protection\.outlook\.com[ )]|from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \(` + ipAddress + `\)`)
	hotmailHELO     = regexp.MustCompile(`(?:from |HELO |helo=)\S*hotmail\.com\b`)
	msnGroupsTo     = regexp.MustCompile(`(?i)<(\S+)@groups\.msn\.com>`)
	msnGroupsServer = regexp.MustCompile(`from mail pickup service by ((?:p\d\d\.)groups\.msn\.com)\b`)
)

// evalNoHotmailReceived is check_for_no_hotmail_received_headers
// (SEMIFORGED_HOTMAIL_RCVD): From a hotmail.com address, but none of the
// Received fields Hotmail and Outlook.com write.
func evalNoHotmailReceived(c *msgCtx, _ []string) int {
	// The verdict needs a hotmail.com From: look at that first (the
	// Received regexps cost more than all the rest of this eval).
	if from, _ := c.headerText("From", "addr"); !endsWithDomain(from, "hotmail.com") {
		return 0
	}
	rcvd := spaces.ReplaceAllString(strings.Join(c.fields["received"], "\n"), " ")
	if hotmailPickup.MatchString(rcvd) || c.msnGroups(rcvd) || c.gatedThroughReceivedRemover() {
		return 0
	}
	ipv, hasIP := c.headerText("X-Originating-Ip", "")
	ip := hasIP && anyIP.MatchString(ipv)
	ov, hasOrig := c.headerText("X-OriginatorOrg", "")
	orig := hasOrig && hotmailOrigin.MatchString(ov)
	if ip && hotmailGenuine.MatchString(rcvd) || orig && outlookGenuine.MatchString(rcvd) {
		return 0
	}
	// A HELO as hotmail.com is FORGED_HOTMAIL_RCVD's case, not this one.
	return b2i(!hotmailHELO.MatchString(rcvd))
}

// msnGroups is check_for_msn_groups_headers: mail of an MSN group, which
// Hotmail passes to the group's servers directly.
func (c *msgCtx) msnGroups(rcvd string) bool {
	to, _ := c.headerText("To", "")
	tm := msnGroupsTo.FindStringSubmatch(to)
	if tm == nil {
		return false
	}
	sm := msnGroupsServer.FindStringSubmatch(rcvd)
	if sm == nil {
		return false
	}
	list, server := tm[1], sm[1]
	mid, _ := c.headerText("Message-Id", "")
	if list == "notifications" {
		return strings.HasPrefix(mid, "<") && strings.Contains(mid, "@"+server+">")
	}
	// ^<LIST-\S+@groups\.msn\.com>
	rest, ok := strings.CutPrefix(mid, "<"+list+"-")
	if i := strings.Index(rest, "@groups.msn.com>"); !ok || i <= 0 || strings.ContainsAny(rest[:i], " \t\r\n\f\v") {
		return false
	}
	env, _ := c.headerText("EnvelopeFrom", "addr")
	return strings.Contains(env, list+"-bounce@groups.msn.com")
}

var srsAddress = regexp.MustCompile(`(?i)^SRS\d[=+-]`)

// evalRatwareEnvelopeFrom is check_ratware_envelope_from: the envelope
// sender is built from the recipient's address as domain.user@.
func evalRatwareEnvelopeFrom(c *msgCtx, _ []string) int {
	to, _ := c.headerText("To", "addr")
	from, _ := c.headerText("EnvelopeFrom", "addr")
	if from == "" || to == "" || srsAddress.MatchString(from) {
		return 0
	}
	user, dom, ok := strings.Cut(to, "@")
	if !ok || user == "" || dom == "" || strings.Contains(dom, "@") {
		return 0
	}
	dom, err := publicsuffix.EffectiveTLDPlusOne(strings.ToLower(dom))
	if err != nil {
		return 0
	}
	// /\bDOMAIN.USER@/i, the dot any character but a line break.
	lf, tail := strings.ToLower(from), "@"
	user = strings.ToLower(user)
	for i := 0; i+len(dom) < len(lf); i++ {
		if !strings.HasPrefix(lf[i:], dom) || i > 0 && isWordByte(lf[i-1]) == isWordByte(dom[0]) {
			continue
		}
		if j := i + len(dom); lf[j] != '\n' && strings.HasPrefix(lf[j+1:], user+tail) {
			return 1
		}
	}
	return 0
}

var ratwareMID = regexp.MustCompile(`<[A-Z]{28}\.([^>]+?)>`)

// evalRatwareNameID is check_ratware_name_id: a Message-Id of 28 capitals,
// a dot and the sender's address, which the From shows after a quoted
// name.
func evalRatwareNameID(c *msgCtx, _ []string) int {
	mid, _ := c.headerText("MESSAGEID", "")
	m := ratwareMID.FindStringSubmatch(mid)
	if m == nil {
		return 0
	}
	from, _ := c.headerText("From", "")
	// /"[^"]+"\s*<ADDR>/: a quoted name right before the address.
	for off := 0; ; {
		i := strings.Index(from[off:], "<"+m[1]+">")
		if i < 0 {
			return 0
		}
		before := strings.TrimRight(from[:off+i], " \t\r\n\f\v")
		if name, ok := strings.CutSuffix(before, `"`); ok {
			if q := strings.LastIndexByte(name, '"'); q >= 0 && q < len(name)-1 {
				return 1
			}
		}
		off += i + 1
	}
}
