package sa

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// evalFunc computes an eval: rule on a message: its hit count (0 or 1 for
// most).
type evalFunc func(c *msgCtx, args []string) int

// evalDef is an eval function implemented here; accepts, when set, says
// whether the arguments select a variant that is implemented.
type evalDef struct {
	fn      evalFunc
	accepts func(args []string) bool
}

// evals are the eval functions implemented natively: chosen by measuring
// which unimplemented ones carry the most score weight in the Debian rule
// set (see Stats.MissingEvals and the package doc).
var evals = map[string]evalDef{
	"check_bayes":                          {fn: evalBayes},
	"check_for_shifted_date":               {fn: evalShiftedDate},
	"html_image_only":                      {fn: evalHTMLImageOnly},
	"html_range":                           {fn: evalHTMLRange, accepts: argIn(0, "length", "obfuscation_ratio", "non_element_ratio", "closed_extra_ratio", "max_size")},
	"html_eval":                            {fn: evalHTMLEval, accepts: argIn(0, "length")},
	"html_test":                            {fn: evalHTMLTest, accepts: argIn(0, "html", "embeds", "form_action_mailto", "font_face_bad", "font_low_contrast", "font_invalid_color")},
	"html_tag_exists":                      {fn: evalHTMLTagExists},
	"html_tag_balance":                     {fn: evalHTMLTagBalance},
	"html_image_ratio":                     {fn: evalHTMLImageRatio},
	"html_text_match":                      {fn: evalHTMLTextMatch, accepts: argIn(0, "comment", "title", "anchor")},
	"check_for_faraway_charset":            {fn: never},
	"check_for_faraway_charset_in_headers": {fn: never},
	"html_charset_faraway":                 {fn: never},
	"check_unresolved_template":            {fn: evalUnresolvedTemplate},
	"check_illegal_chars":                  {fn: evalIllegalChars},
	"check_equal_from_domains":             {fn: evalEqualFromDomains},
	// VBounce: no welcomelist_bounce_relays are configured here, so no
	// message is a bounce of our own mail.
	"have_any_bounce_relays":              {fn: never},
	"check_welcomelist_bounce_relays":     {fn: never},
	"check_whitelist_bounce_relays":       {fn: never},
	"check_all_trusted":                   {fn: evalAllTrusted},
	"check_relays_unparseable":            {fn: evalRelaysUnparseable},
	"check_no_relays":                     {fn: evalNoRelays},
	"check_for_missing_to_header":         {fn: evalMissingTo},
	"check_header_count_range":            {fn: evalHeaderCountRange},
	"subject_is_all_caps":                 {fn: evalSubjectAllCaps},
	"check_for_mime":                      {fn: evalMIME, accepts: argIn(0, "mime_attachment", "mime_base64_count", "mime_qp_count", "mime_base64_encoded_text", "mime_bad_iso_charset", "mime_faraway_charset", "mime_qp_long_line")},
	"check_for_mime_html":                 {fn: evalMIMEHTML},
	"check_for_ascii_text_illegal":        {fn: evalASCIITextIllegal},
	"check_for_mime_html_only":            {fn: evalMIMEHTMLOnly},
	"check_body_length":                   {fn: evalBodyLength},
	"check_for_uppercase":                 {fn: evalUppercase},
	"check_freemail_from":                 {fn: evalFreemailFrom},
	"check_freemail_header":               {fn: evalFreemailHeader},
	"check_freemail_replyto":              {fn: evalFreemailReplyTo},
	"check_for_matching_env_and_hdr_from": {fn: evalEnvMatchesFrom},
	"check_for_to_in_subject":             {fn: evalToInSubject, accepts: argIn(0, "address", "user")},
	"check_outlook_message_id":            {fn: evalOutlookMessageID},
	"check_msg_parse_flags":               {fn: evalParseFlags, accepts: argIn(0, "mime_epilogue_exists", "missing_mime_headers")},
	// evalhdr.go
	"check_for_no_rdns_dotcom_helo":           {fn: evalNoRDNSDotcomHELO},
	"helo_ip_mismatch":                        {fn: evalHELOIPMismatch},
	"sorted_recipients":                       {fn: evalSortedRecipients},
	"similar_recipients":                      {fn: evalSimilarRecipients},
	"gated_through_received_hdr_remover":      {fn: evalGatedThroughReceivedRemover},
	"check_for_forged_yahoo_received_headers": {fn: evalForgedYahooReceived},
	"multipart_alternative_difference":        {fn: evalMultipartAltDiff},
	"multipart_alternative_difference_count":  {fn: evalMultipartAltDiffCount},
	"check_base64_length":                     {fn: evalBase64Length},
	"check_mime_multipart_ratio":              {fn: evalMultipartRatio},
	"tvd_vertical_words":                      {fn: evalVerticalWords},
	"check_for_forged_gmail_received_headers": {fn: evalForgedGmailReceived},
	"check_for_no_hotmail_received_headers":   {fn: evalNoHotmailReceived},
	"check_ratware_envelope_from":             {fn: evalRatwareEnvelopeFrom},
	"check_ratware_name_id":                   {fn: evalRatwareNameID},
	// auth.go adds the SPF, DKIM and DMARC plugins' evals.
}

func argIn(i int, vals ...string) func([]string) bool {
	return func(a []string) bool {
		if i >= len(a) {
			return false
		}
		for _, v := range vals {
			if a[i] == v {
				return true
			}
		}
		return false
	}
}

// never is an eval that cannot fire in this setting: charset checks with
// SpamAssassin's default ok_locales "all"; relay trust, which for a
// milter on the border never covers the client that connected.
func never(*msgCtx, []string) int { return 0 }

// evalParseFlags is check_msg_parse_flags: mime_epilogue_exists is read
// from the walk; missing_mime_headers is not followed (never).
func evalParseFlags(c *msgCtx, args []string) int {
	return b2i(len(args) > 0 && args[0] == "mime_epilogue_exists" && c.m.mimeEpilogue)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func argFloat(args []string, i int, def float64) float64 {
	if i >= len(args) {
		return def
	}
	switch args[i] {
	case "undef", "":
		return def
	case "inf":
		return 1e308
	}
	v, err := strconv.ParseFloat(args[i], 64)
	if err != nil {
		return def
	}
	return v
}

func inRange(v float64, args []string, i int) bool {
	// SpamAssassin's ranges: min < v <= max.
	return v > argFloat(args, i, -1e308) && v <= argFloat(args, i+1, 1e308)
}

func evalBayes(c *msgCtx, a []string) int {
	if !c.in.HasBayes {
		return 0
	}
	p := c.in.Bayes
	return b2i(p >= argFloat(a, 0, 0) && p <= argFloat(a, 1, 1))
}

// dateHeaderTime is the time of the first Resent-Date field that
// parses, else of the first Date field that does, as HeaderEval.pm's
// _get_date_header_time.
func (c *msgCtx) dateHeaderTime() (int64, bool) {
	for _, name := range []string{"Resent-Date", "Date"} {
		vals, _ := c.values(name, false)
		for _, v := range vals {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if t, ok := parseRFC822Date(v); ok {
				return t, true
			}
		}
	}
	return 0, false
}

// Received fields a fetchmail run adds on the reading host, which
// _get_received_header_times leaves out of the delivery times.
var (
	rcvdLocalRE     = regexp.MustCompile(`\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)|qmail \d+ invoked by uid \d+`)
	rcvdFetchmailRE = regexp.MustCompile(`\bby localhost with \w+ \(fetchmail-[\d.]+`)
)

// rcvdLocal is rcvdLocalRE.MatchString(v), which each branch of needs
// a literal most fields lack.
func rcvdLocal(v string) bool {
	return (strings.Contains(v, "from localhost") || strings.Contains(v, "127.0.0.1") || strings.Contains(v, "qmail ")) &&
		rcvdLocalRE.MatchString(v)
}

// rcvdFetchmail is rcvdFetchmailRE.MatchString(v), which needs
// "(fetchmail-".
func rcvdFetchmail(v string) bool {
	return strings.Contains(v, "(fetchmail-") && rcvdFetchmailRE.MatchString(v)
}

// joinFolds replaces each \r?\n[ \t]+ of v (a folded line break) with one
// space. The leftmost match at a line feed starts at the carriage return
// before it, if any; no match ends in one.
func joinFolds(v string) string {
	i := strings.IndexByte(v, '\n')
	if i < 0 {
		return v
	}
	var b strings.Builder
	last := 0 // end of the previous match
	for ; i < len(v); i++ {
		if v[i] != '\n' {
			continue
		}
		j := i + 1
		for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
			j++
		}
		if j == i+1 {
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(v))
		}
		start := i
		if i > last && v[i-1] == '\r' {
			start = i - 1
		}
		b.WriteString(v[last:start])
		b.WriteByte(' ')
		last = j
		i = j - 1
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}

// receivedTimes are the dates of the Received fields, newest first, as
// HeaderEval.pm's _get_received_header_times reads them: the first date
// (day month year time zone) anywhere in each field, except in the
// fields fetchmail added: a first field from localhost followed by a
// fetchmail one, or a first fetchmail one.
func (c *msgCtx) receivedTimes() []int64 {
	vals, _ := c.values("Received", true)
	var rcvd []string
	for _, v := range vals {
		// Node.pm's header() joins a folded line with one space (the
		// regular expressions below want single spaces), then decodes.
		v = decodeHeader(joinFolds(v))
		if strings.TrimSpace(v) != "" {
			rcvd = append(rcvd, v)
		}
	}
	if len(rcvd) > 0 && rcvdLocal(rcvd[0]) {
		if len(rcvd) > 1 && rcvdFetchmail(rcvd[1]) {
			rcvd = rcvd[2:]
		}
	} else if len(rcvd) > 0 && rcvdFetchmail(rcvd[0]) {
		rcvd = rcvd[1:]
	}
	var out []int64
	for _, v := range rcvd {
		m := rcvdDate(v)
		if m == "" {
			continue
		}
		if t, ok := parseRFC822Date(m); ok {
			out = append(out, t)
		}
	}
	return out
}

// dateDiff is the Date time minus the Received time closest to it (the
// oldest Received time is left out when it equals the Date time), in
// seconds, as HeaderEval.pm's _check_date_diff; ok is false without a
// Date or Received time.
func (c *msgCtx) computeDateDiff() (float64, bool) {
	d, ok := c.dateHeaderTime()
	if !ok {
		return 0, false
	}
	times := c.receivedTimes()
	if len(times) == 0 {
		return 0, false
	}
	diffs := make([]int64, len(times))
	for i, t := range times {
		diffs[i] = d - t
	}
	if len(diffs) > 1 && diffs[len(diffs)-1] == 0 {
		diffs = diffs[:len(diffs)-1]
	}
	// Perl's sort is stable: of equal absolute differences the first wins.
	best := diffs[0]
	for _, x := range diffs[1:] {
		if abs64(x) < abs64(best) {
			best = x
		}
	}
	return float64(best), true
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func evalShiftedDate(c *msgCtx, a []string) int {
	diff, _ := c.dateDiff()
	lo, hi := argFloat(a, 0, -1e308), argFloat(a, 1, 1e308)
	return b2i(diff >= 3600*lo && diff < 3600*hi)
}

var outlookIDRE = regexp.MustCompile(`^<[0-9a-f]{4}([0-9a-f]{8})\$[0-9a-f]{8}\$[0-9a-f]{8}@`)

// evalOutlookMessageID: an Outlook-style Message-ID whose embedded time
// matches neither the Date nor the first Received time.
func evalOutlookMessageID(c *msgCtx, _ []string) int {
	id, _ := c.headerText("MESSAGEID", "")
	m := outlookIDRE.FindStringSubmatch(id)
	if m == nil {
		return 0
	}
	token, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		return 0
	}
	const x, y, fudge = 0.0023283064365387, 27111902.8329849, 250
	expect := func(t float64) float64 { return math.Trunc(t*x + y) }
	var date float64
	if ds := c.fields["date"]; len(ds) > 0 {
		if t, err := ParseDate(strings.TrimSpace(unfold(ds[0]))); err == nil {
			date = float64(t.Unix())
		}
	}
	if math.Abs(float64(token)-expect(date)) < fudge {
		return 0
	}
	var rcvd float64
	if rs := c.fields["received"]; len(rs) > 0 {
		if s := rcvdDate(unfold(rs[0])); s != "" {
			if t, err := ParseDate(strings.TrimSpace(s)); err == nil {
				rcvd = float64(t.Unix())
			}
		}
	}
	return b2i(math.Abs(float64(token)-expect(rcvd)) >= fudge)
}

// evalHTMLImageOnly is html_image_only: an HTML part with an <img> whose
// source (not its rendered text: HTML.pm's "length") is in the range.
func evalHTMLImageOnly(c *msgCtx, a []string) int {
	for i := range c.html.parts {
		if p := &c.html.parts[i]; p.img && inRange(float64(p.length), a, 0) {
			return 1
		}
	}
	return 0
}

func evalHTMLRange(c *msgCtx, a []string) int {
	if a[0] != "length" {
		// Per HTML part, as SpamAssassin keeps them: any part in range.
		for i := range c.html.parts {
			if v, ok := c.html.parts[i].ratio(a[0]); ok && inRange(v, a, 1) {
				return 1
			}
		}
		return 0
	}
	for i := range c.html.parts {
		if inRange(float64(c.html.parts[i].length), a, 1) {
			return 1
		}
	}
	return 0
}

func evalHTMLEval(c *msgCtx, a []string) int {
	if !c.hasHTML || len(a) < 2 {
		return 0
	}
	for i := range c.html.parts {
		if compare(float64(c.html.parts[i].length), a[1]) {
			return 1
		}
	}
	return 0
}

// compare applies a condition like "< 384" or "!= 0".
func compare(v float64, cond string) bool {
	x, err := parseExpr("V " + cond)
	if err != nil {
		return false
	}
	return x.eval(func(string) float64 { return v }, func(string, string) float64 { return 0 }) != 0
}

func evalHTMLTest(c *msgCtx, a []string) int {
	switch a[0] {
	case "html":
		return b2i(c.hasHTML)
	case "embeds":
		return b2i(c.html.tags["embed"] > 0 || c.html.tags["object"] > 0)
	case "form_action_mailto":
		return b2i(c.html.formMailto)
	case "font_face_bad", "font_low_contrast", "font_invalid_color":
		for _, p := range c.html.parts {
			if a[0] == "font_face_bad" && p.fontFaceBad || a[0] == "font_low_contrast" && p.lowContrast || a[0] == "font_invalid_color" && p.invalidColor {
				return 1
			}
		}
	}
	return 0
}

func evalHTMLTagExists(c *msgCtx, a []string) int {
	return b2i(len(a) > 0 && c.html.tags[strings.ToLower(a[0])] > 0)
}

// evalHTMLTagBalance is html_tag_balance: an HTML part that has seen the
// tag and ends with that many of it open (never below 0, as HTML.pm
// counts).
func evalHTMLTagBalance(c *msgCtx, a []string) int {
	if len(a) < 2 {
		return 0
	}
	tag := strings.ToLower(a[0])
	for i := range c.html.parts {
		if n, ok := c.html.parts[i].inside[tag]; ok && compare(float64(n), a[1]) {
			return 1
		}
	}
	return 0
}

// evalHTMLImageRatio is html_image_ratio: an HTML part whose non-space
// rendered characters per pixel of image area are in the range.
func evalHTMLImageRatio(c *msgCtx, a []string) int {
	for i := range c.html.parts {
		if p := &c.html.parts[i]; p.imageArea > 0 && inRange(float64(p.nonSpace)/float64(p.imageArea), a, 0) {
			return 1
		}
	}
	return 0
}

var textMatchCache = map[string]*regexp.Regexp{}

func evalHTMLTextMatch(c *msgCtx, a []string) int {
	if len(a) < 2 || !c.hasHTML {
		return 0
	}
	re := c.e.textMatch[a[1]]
	if re == nil {
		return 0
	}
	var texts []string
	switch a[0] {
	case "comment":
		texts = c.html.comments
	case "title":
		texts = []string{c.html.title}
	case "anchor":
		texts = c.html.anchors
	}
	for _, t := range texts {
		if re.MatchString(latin1(t)) {
			return 1
		}
	}
	return 0
}

var templateRE = regexp.MustCompile(`%[A-Z][A-Z_-]`)

func evalUnresolvedTemplate(c *msgCtx, _ []string) int {
	for _, f := range c.m.Header {
		if templateRE.MatchString(f.Value) {
			return 1
		}
	}
	return 0
}

func evalIllegalChars(c *msgCtx, a []string) int {
	if len(a) < 3 {
		return 0
	}
	var str string
	if a[0] == "ALL" {
		var b strings.Builder
		for _, f := range c.m.Header {
			switch strings.ToLower(f.Name) {
			case "subject", "from":
				// SpamAssassin leaves these to their own tests.
				continue
			}
			b.WriteString(f.Value)
		}
		str = b.String()
	} else {
		str = strings.Join(c.fields[strings.ToLower(a[0])], "\n")
	}
	if str == "" {
		return 0
	}
	n := 0
	for i := 0; i < len(str); i++ {
		if str[i] >= 0x80 {
			n++
		}
	}
	ratio, count := argFloat(a, 1, 0), argFloat(a, 2, 0)
	return b2i(float64(n)/float64(len(str)) >= ratio && float64(n) >= count)
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimRight(addr[i+1:], ">. "))
}

func orgDomain(d string) string {
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

func evalEqualFromDomains(c *msgCtx, _ []string) int {
	env, _ := c.headerText("EnvelopeFrom", "addr")
	from, _ := c.headerText("From", "addr")
	ed, fd := domainOf(env), domainOf(from)
	if ed == "" || fd == "" {
		return 0
	}
	// HeaderEval.pm compares the last two labels (s/^.+\.([^\.]+\.[^\.]+)$/$1/),
	// not registrable domains: example.co.uk and other.co.uk are equal.
	return b2i(!strings.EqualFold(lastTwoLabels(ed), lastTwoLabels(fd)))
}

func lastTwoLabels(d string) string {
	if i := strings.LastIndexByte(d, '.'); i > 0 {
		if j := strings.LastIndexByte(d[:i], '.'); j > 0 {
			return d[j+1:]
		}
	}
	return d
}

func evalNoRelays(c *msgCtx, _ []string) int {
	t, u := c.relays()
	return b2i(len(t)+len(u)+c.unparseable == 0)
}

// evalAllTrusted: every relay is internal. The daemon puts the SMTP
// client first, so mail from outside is never all trusted.
func evalAllTrusted(c *msgCtx, _ []string) int {
	t, u := c.relays()
	return b2i(len(t) > 0 && len(u) == 0 && c.unparseable == 0)
}

func evalRelaysUnparseable(c *msgCtx, _ []string) int {
	c.relays()
	return b2i(c.unparseable > 0)
}

func evalMissingTo(c *msgCtx, _ []string) int {
	_, to := c.fields["to"]
	_, ato := c.fields["apparently-to"]
	return b2i(!to && !ato)
}

func evalHeaderCountRange(c *msgCtx, a []string) int {
	if len(a) < 3 {
		return 0
	}
	n := float64(len(c.fields[strings.ToLower(a[0])]))
	return b2i(n >= argFloat(a, 1, 0) && n <= argFloat(a, 2, 1e308))
}

var replyPrefix = regexp.MustCompile(`(?i)^(?:(?:Re|Fwd|Fw|Aw|Antwort|Sv):\s*)+`)

func evalSubjectAllCaps(c *msgCtx, _ []string) int {
	vals, _ := c.values("Subject", false)
	if len(vals) == 0 {
		return 0
	}
	s := replyPrefix.ReplaceAllString(strings.TrimSpace(vals[0]), "")
	if !strings.ContainsAny(s, " \t") || len(s) < 10 {
		return 0
	}
	letters := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, s)
	return b2i(letters != "" && letters == strings.ToUpper(letters))
}

func evalMIME(c *msgCtx, a []string) int {
	for _, p := range c.m.Parts {
		text := strings.HasPrefix(p.Type, "text/")
		switch a[0] {
		case "mime_attachment":
			for _, f := range p.Header {
				if strings.EqualFold(f.Name, "Content-Disposition") && strings.Contains(strings.ToLower(f.Value), "attachment") {
					return 1
				}
			}
			if !text && !strings.HasPrefix(p.Type, "multipart/") {
				return 1
			}
		case "mime_base64_count":
			if p.Encoding == "base64" {
				return 1
			}
		case "mime_qp_count":
			if p.Encoding == "quoted-printable" {
				return 1
			}
		case "mime_qp_long_line":
			// RFC 5322's 78 characters (Apple Mail and Outlook Web Access
			// pass RFC 2045's 76 by two, so SpamAssassin does not test it).
			if p.Encoding == "quoted-printable" && p.MaxLine > 78 {
				return 1
			}
		case "mime_base64_encoded_text":
			// MIMEEval.pm: text in base64 that is ASCII (no charset or an
			// ASCII one) and not an attachment or inline part.
			cd := strings.TrimSpace(strings.ToLower(fieldOf(p.Header, "Content-Disposition")))
			if text && p.Encoding == "base64" && (p.Charset == "" || asciiCharset.MatchString(p.Charset)) &&
				!strings.HasPrefix(cd, "attachment") && !strings.HasPrefix(cd, "inline") {
				return 1
			}
		case "mime_bad_iso_charset":
			cs := p.Charset
			if strings.HasPrefix(cs, "iso-") && !regexp.MustCompile(`^iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b`).MatchString(cs) {
				return 1
			}
		}
	}
	return 0
}

// asciiCharset is MIMEEval.pm's list of US-ASCII names (unanchored, as
// there).
var asciiCharset = regexp.MustCompile(`us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|iso_646\.irv:1991|ascii|iso646-us|us|ibm367|cp367|csascii`)

// fieldOf returns the value of the first field named name, "" if none.
func fieldOf(h []Field, name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// evalASCIITextIllegal: a text/plain part that declares no charset or
// us-ascii (exactly that name, as MIMEEval.pm compares it) whose body, as
// encoded, is not US-ASCII (see Part.NotASCII).
func evalASCIITextIllegal(c *msgCtx, _ []string) int {
	for _, p := range c.m.Parts {
		if p.Type == "text/plain" && (p.Charset == "" || p.Charset == "us-ascii") && p.NotASCII {
			return 1
		}
	}
	return 0
}

func evalMIMEHTML(c *msgCtx, _ []string) int {
	for _, p := range c.m.Parts {
		if p.Type == "text/html" {
			return 1
		}
	}
	return 0
}

func evalMIMEHTMLOnly(c *msgCtx, _ []string) int {
	html, text := 0, 0
	for _, p := range c.m.Parts {
		switch p.Type {
		case "text/html":
			html++
		case "text/plain":
			text++
		}
	}
	return b2i(html > 0 && text == 0)
}

func evalBodyLength(c *msgCtx, a []string) int {
	_, body, _ := splitText(c.m.rawText())
	return b2i(float64(len(body)) < argFloat(a, 0, 0))
}

var base64Line = regexp.MustCompile(`^(?:[A-Za-z0-9+/=]{60,76} ?){1,2}$`)

func evalUppercase(c *msgCtx, a []string) int {
	if c.upper < 0 {
		letters, upper := 0, 0
		for _, l := range c.body[min(1, len(c.body)):] { // not the subject
			if !strings.ContainsAny(l, " \t") || base64Line.MatchString(l) {
				continue
			}
			for i := 0; i < len(l); i++ {
				ch := l[i]
				if ch >= 'A' && ch <= 'Z' {
					upper++
					letters++
				} else if ch >= 'a' && ch <= 'z' {
					letters++
				}
			}
		}
		c.upper = 0
		if letters >= 200 {
			c.upper = float64(upper) / float64(letters) * 100
		}
	}
	return b2i(inRange(c.upper, a, 0))
}

func (c *msgCtx) isFreemail(addr string) bool {
	d := domainOf(addr)
	if d == "" {
		return false
	}
	if c.e.freemail[d] {
		return true
	}
	return c.e.freemailRE != nil && c.e.freemailRE.MatchString(d)
}

func evalFreemailFrom(c *msgCtx, a []string) int {
	for _, h := range []string{"From", "EnvelopeFrom"} {
		if addr, ok := c.headerText(h, "addr"); ok && c.isFreemail(addr) {
			if len(a) > 0 {
				re, err := regexp.Compile(a[0])
				if err != nil || !re.MatchString(addr) {
					continue
				}
			}
			return 1
		}
	}
	return 0
}

func evalFreemailHeader(c *msgCtx, a []string) int {
	if len(a) == 0 {
		return 0
	}
	name, mod, _ := strings.Cut(a[0], ":")
	_ = mod
	addr, ok := c.headerText(name, "addr")
	if !ok || !c.isFreemail(addr) {
		return 0
	}
	if len(a) > 1 {
		re, err := regexp.Compile(a[1])
		if err != nil || !re.MatchString(addr) {
			return 0
		}
	}
	return 1
}

// evalFreemailReplyTo is FreeMail.pm's check_freemail_replyto: From and
// Reply-To are different freemail addresses; or, comparing the reply
// address (Reply-To for "replyto"; for "reply" the Reply-To if it is
// freemail, else a freemail From) with the freemail addresses of the body,
// one of those differs. Envelope senders of bulk mail are skipped
// (freemail_skip_bulk_envfrom), and so is a body with too many addresses.
func evalFreemailReplyTo(c *msgCtx, a []string) int {
	what := "replyto"
	if len(a) > 0 {
		what = a[0]
	}
	// A bulk envelope sender makes the answer 0: asked only when the
	// answer would be 1, the regexp runs on few messages.
	hit := func() int {
		env, _ := c.headerText("EnvelopeFrom", "addr")
		return b2i(!freemailBulkEnvFrom.MatchString(env))
	}
	from, hasFrom := c.headerText("From", "addr")
	reply, hasReply := c.headerText("Reply-To", "addr")
	from, reply = strings.ToLower(from), strings.ToLower(reply)
	fromFM := hasFrom && c.isFreemail(from)
	replyFM := hasReply && c.isFreemail(reply)
	if fromFM && replyFM && from != reply {
		return hit()
	}
	switch {
	case what == "replyto" && !replyFM:
		return 0
	case what == "reply" && hasReply && !replyFM:
		return 0
	case what == "reply" && !hasReply && !fromFM:
		return 0
	}
	body, ok := c.bodyFreemails()
	if !ok || len(body) == 0 {
		return 0
	}
	addr := from
	if what == "replyto" || replyFM {
		addr = reply
	}
	for _, b := range body {
		if b != addr {
			return hit()
		}
	}
	return 0
}

// FreeMail.pm's $skip_replyto_envfrom and (with a plain TLD for its
// list of valid ones) email_regex; the user part's 64-character bound
// is checked after a match.
var (
	freemailBulkEnvFrom = regexp.MustCompile(`(?i)(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@`)
	freemailEmail       = regexp.MustCompile("(?i)(?:^|[^a-z0-9!#$%&'*+/=?^_`{|}~-])([a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\\.){1,4}[a-z]{2,63})\\b")
	freemailURLWithAt   = regexp.MustCompile(`(?i)<?https?://\S{0,255}(?:@|%40)\S{0,255}`)
	// An address in angle brackets' end or before a label ("a@b.com
	// web:"), not a phone or mail label: not a reply address.
	freemailLabel   = regexp.MustCompile(`(?i)^(?:>|\s{1,10}([a-z]{2,11}):)`)
	freemailNoLabel = regexp.MustCompile(`(?i)^(?:fa(?:x|csi)|tel|phone|e?-?mail)`)
)

// stripURLsWithAt is freemailURLWithAt.ReplaceAllString(line, " "),
// without running the regexp on a line that lacks what every match has:
// "://" and an "@" or "%40".
func stripURLsWithAt(line string) string {
	if !strings.Contains(line, "://") || strings.IndexByte(line, '@') < 0 && !strings.Contains(line, "%40") {
		return line
	}
	return freemailURLWithAt.ReplaceAllString(line, " ")
}

// bodyFreemails is FreeMail.pm's _parse_body: the freemail addresses of
// mailto links and of the body text, lower case, unique; false when the
// body has 5 addresses or 3 freemail ones (freemail_max_body_emails,
// freemail_max_body_freemails with freemail_skip_when_over_max).
func (c *msgCtx) bodyFreemails() ([]string, bool) {
	var all []string
	seen := map[string]bool{}
	add := func(e string) {
		if e = strings.ToLower(e); !seen[e] {
			seen[e] = true
			all = append(all, e)
		}
	}
	c.texts()
	for _, l := range c.html.links {
		if len(all) >= 20 {
			break
		}
		if len(l) > 7 && strings.EqualFold(l[:7], "mailto:") {
			if m := freemailEmail.FindStringSubmatch(l[7:]); m != nil && strings.HasPrefix(l[7:], m[1]) {
				add(m[1])
			}
		}
	}
body:
	for _, line := range c.body {
		line = stripURLsWithAt(line)
		if strings.IndexByte(line, '@') < 0 {
			continue // most lines: freemailEmail needs an "@"
		}
		for _, m := range freemailEmail.FindAllStringSubmatchIndex(line, -1) {
			e := line[m[2]:m[3]]
			if strings.HasSuffix(line[:m[2]], "mailto:") {
				// (?<!mailto:): a link's address stays.
			} else if l := freemailLabel.FindStringSubmatch(line[m[3]:]); l != nil && (l[1] == "" || !freemailNoLabel.MatchString(l[1])) {
				continue
			}
			if at := strings.IndexByte(e, '@'); at > 64 {
				continue
			}
			add(e)
			if len(all) >= 40 {
				break body
			}
		}
	}
	var fm []string
	for i, e := range all {
		if i+1 == 5 {
			return nil, false
		}
		if c.isFreemail(e) {
			if fm = append(fm, e); len(fm) == 3 {
				return nil, false
			}
		}
	}
	return fm, true
}

func evalEnvMatchesFrom(c *msgCtx, _ []string) int {
	env, ok1 := c.headerText("EnvelopeFrom", "addr")
	from, ok2 := c.headerText("From", "addr")
	return b2i(ok1 && ok2 && env != "" && strings.EqualFold(env, from))
}

func evalToInSubject(c *msgCtx, a []string) int {
	to, _ := c.headerText("To", "addr")
	subj, _ := c.values("Subject", false)
	if to == "" || len(subj) == 0 {
		return 0
	}
	return toInSubject(subj[0], to, a[0])
}

// toInSubject is check_for_to_in_subject on a subject s and a To address.
func toInSubject(s, to, mode string) int {
	// Every match holds the address (or its user part) in the subject,
	// in any case: without it, no regexp to compile. Only ASCII texts,
	// where (?i) folds as containsFold does (it also folds K and ſ).
	needle := to
	if mode != "address" {
		needle, _, _ = strings.Cut(to, "@")
	}
	if isASCII(s) && isASCII(needle) && !containsFold(s, needle) {
		return 0
	}
	switch mode {
	case "address":
		re, err := regexp.Compile(`(?i)\b` + regexp.QuoteMeta(to) + `\b`)
		return b2i(err == nil && re.MatchString(s))
	default:
		user, _, _ := strings.Cut(to, "@")
		q := regexp.QuoteMeta(user)
		re, err := regexp.Compile(`(?i)^(?:(?:re|fw):\s*(?:\w+\s+)?` + q + `$|(?-i:` + q + `)\s*[,:;!?-](?:$|\s)|` + q + `$|,\s*` + q + `[,:;!?-]$)`)
		return b2i(err == nil && re.MatchString(s))
	}
}

func init() {
	// Guard against a typo in the table: every entry has a function.
	for n, d := range evals {
		if d.fn == nil {
			panic(fmt.Sprintf("sa: eval %s has no function", n))
		}
	}
}
