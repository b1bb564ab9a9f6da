package sa

import (
	"maps"
	"math"
	"math/bits"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Input is what a check needs besides the message.
type Input struct {
	// Bayes is the Bayes spam probability, when HasBayes (BAYES_* rules).
	Bayes    float64
	HasBayes bool
	// Now is the time of the check (date rules); zero means the Date
	// field is compared with the newest Received time only.
	Now time.Time
}

// Hit is one rule that matched.
type Hit struct {
	Rule  string
	Score float64 // in the score set of the engine's Options
	// ScoreNoBayes is the score in the set without Bayes (the same as
	// Score when Options.Bayes is off): SpamAssassin scores from it while
	// Bayes has not learned enough, and so does the check.
	ScoreNoBayes float64
	Count        int // matches, for rules with tflags multiple
}

// Signal returns the hit's signal name, "sa-RULE".
func (h Hit) Signal() string { return "sa-" + h.Rule }

// Result is the outcome of the rules on one message.
type Result struct {
	Hits  []Hit // scored rules that hit, by rule name
	Score float64
	// Truncated is set when the time budget ran out before all rules ran.
	Truncated bool
}

// msgCtx holds one message's texts, each computed once.
type msgCtx struct {
	e      *Engine
	m      *Message
	in     Input
	counts []int32
	fields map[string][]string // lower-case name -> raw values
	hcache map[hkey]hval       // header: latin1 texts
	tcache map[hkey]hval       // headerText: the texts as decoded
	dvals  map[string][]string // values: decoded values by lower-case name

	bodyDone bool
	body     []string // latin1 paragraphs, subject first
	rawbody  []string
	plain    []string // decoded text parts, for evals (not latin1)
	// rendered holds, per part, its text as SpamAssassin renders it:
	// text/plain as decoded, text/html reduced to text; "" for others.
	rendered []string
	htmlOf   []int // per part, its html.parts entry, -1 for none
	madiff   *madiff
	html     htmlInfo
	hasHTML  bool
	uris     []string
	upper    float64 // uppercase percentage, -1 until computed
	mask     []uint8 // screen's scratch space
	occ      []occ   // and its counted sets' occurrences

	dateDone   bool // dateDiff computed (the date evals read it several times)
	dateDiffV  float64
	dateDiffOK bool

	relaysDone         bool
	trusted, untrusted []Relay
	unparseable        int
	received           []parsedReceived // nil until read
	start              time.Time
}

// hkey is a header text's name and modifier (a struct: building a
// string key allocated on every lookup).
type hkey struct{ name, mod string }

type hval struct {
	v  string
	ok bool
}

// ctxScratch is what every message's msgCtx needs at the engine's size:
// a count per rule and the header caches (~70 KB a message, a third of
// what the rules allocated), recycled through Engine.scratch.
type ctxScratch struct {
	counts         []int32
	hcache, tcache map[hkey]hval
	fields         map[string][]string
}

func (e *Engine) getScratch() *ctxScratch {
	if s, ok := e.scratch.Get().(*ctxScratch); ok {
		return s
	}
	return &ctxScratch{counts: make([]int32, len(e.rules)), hcache: make(map[hkey]hval, len(e.hslots)+16),
		tcache: make(map[hkey]hval, len(e.hslots)+16), fields: map[string][]string{}}
}

func (e *Engine) putScratch(s *ctxScratch) {
	clear(s.counts)
	clear(s.hcache)
	clear(s.tcache)
	clear(s.fields)
	e.scratch.Put(s)
}

// Check runs the rules on a message.
func (e *Engine) Check(m *Message, in Input) Result {
	sc := e.getScratch()
	defer e.putScratch(sc)
	c := &msgCtx{e: e, m: m, in: in, counts: sc.counts, hcache: sc.hcache, tcache: sc.tcache, fields: sc.fields, upper: -1}
	if e.opt.Budget > 0 {
		c.start = time.Now()
	}
	for _, f := range m.Header {
		k := lowerName(f.Name)
		c.fields[k] = append(c.fields[k], f.Value)
	}
	var res Result
	steps := []func(){
		c.runHeaders,
		func() { c.runLines(KindBody, c.bodyLines()) },
		func() { c.runLines(KindRawBody, c.rawLines()) },
		func() { c.runLines(KindURI, c.uriLines()) },
		c.runFull,
		c.runMIMEHeaders,
		c.runEvals,
	}
	for _, s := range steps {
		if c.spent() {
			res.Truncated = true
			break
		}
		s()
	}
	var stackSpace [64]float64
	stack := stackSpace[:]
	if p := e.metaProg; p.depth > len(stack) {
		stack = make([]float64, p.depth)
	}
	for k, i := range e.metas {
		if e.metaProg.eval(k, c.counts, stack) != 0 {
			c.counts[i] = 1
		}
	}
	for i, r := range e.rules {
		if r == nil || !r.report || c.counts[i] == 0 {
			continue
		}
		res.Hits = append(res.Hits, Hit{Rule: r.name, Score: r.score, ScoreNoBayes: r.scoreNB, Count: int(c.counts[i])})
		res.Score += r.score
	}
	sort.Slice(res.Hits, func(i, j int) bool { return res.Hits[i].Rule < res.Hits[j].Rule })
	return res
}

// costHook, when set by a test, gets the time each line rule took.
var costHook func(rule, lines int, d time.Duration)

func (c *msgCtx) spent() bool {
	return c.e.opt.Budget > 0 && time.Since(c.start) > c.e.opt.Budget
}

// header returns a header test's text, as SpamAssassin's get(): the
// values of all fields of that name joined by newlines, decoded (RFC 2047)
// and unfolded unless raw; :addr and :name take the first address.
func (c *msgCtx) header(name, mod string) (string, bool) {
	key := hkey{name, mod}
	if h, ok := c.hcache[key]; ok {
		return h.v, h.ok
	}
	v, ok := c.headerText(name, mod)
	v = latin1(v)
	c.hcache[key] = hval{v, ok}
	return v, ok
}

// values returns the values of the fields named name, decoded unless
// raw; the decoded ones once per message (the header slots, the exists
// rules and the evals ask for the same fields). The slice has no spare
// capacity, so that a caller's append copies it.
func (c *msgCtx) values(name string, raw bool) ([]string, bool) {
	lname := lowerName(name)
	vals, ok := c.fields[lname]
	if !ok {
		return nil, false
	}
	if raw {
		return slices.Clip(vals), true
	}
	if out, ok := c.dvals[lname]; ok {
		return out, true
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = decodeHeader(v)
	}
	if c.dvals == nil {
		c.dvals = map[string][]string{}
	}
	c.dvals[lname] = out
	return out, true
}

// headerText is a header test's text before latin1 (see header), once
// per message.
func (c *msgCtx) headerText(name, mod string) (string, bool) {
	key := hkey{name, mod}
	if h, ok := c.tcache[key]; ok {
		return h.v, h.ok
	}
	v, ok := c.computeHeaderText(name, mod)
	if c.tcache == nil {
		c.tcache = map[hkey]hval{}
	}
	c.tcache[key] = hval{v, ok}
	return v, ok
}

// pseudoHeader reports whether computeHeaderText reads name as a
// pseudo-header (in its case) rather than as a field (in any case).
func pseudoHeader(name string) bool {
	switch name {
	case "ALL", "ALL-TRUSTED", "ALL-INTERNAL", "ALL-UNTRUSTED", "ALL-EXTERNAL", "ToCc", "MESSAGEID", "X-Spam-Relays-Untrusted", "X-Spam-Relays-External",
		"X-Spam-Relays-Trusted", "X-Spam-Relays-Internal", "EnvelopeFrom":
		return true
	}
	return false
}

func (c *msgCtx) computeHeaderText(name, mod string) (string, bool) {
	raw := mod == "raw"
	var vals []string
	ok := false
	switch name {
	case "ALL":
		var b strings.Builder
		n := 0
		for _, f := range c.m.Header {
			n += len(f.Name) + len(f.Value) + 3
		}
		b.Grow(n + n/8) // decoding rarely makes a value longer
		for _, f := range c.m.Header {
			writeField(&b, f, raw)
		}
		return b.String(), len(c.m.Header) > 0
	case "ALL-TRUSTED", "ALL-INTERNAL", "ALL-UNTRUSTED", "ALL-EXTERNAL":
		// PerMsgStatus.pm: the fields down to and with the Received
		// field of the first relay from outside (trusted), or from that
		// field on (untrusted). Without trusted_networks, internal is
		// trusted.
		k := c.trustedReceivedCount()
		trusted := name == "ALL-TRUSTED" || name == "ALL-INTERNAL"
		var b strings.Builder
		idx := -1 // of the last Received field seen
		for _, f := range c.m.Header {
			rcvd := strings.EqualFold(f.Name, "Received")
			if rcvd {
				idx++
			}
			if !trusted && idx < k {
				continue
			}
			writeField(&b, f, raw)
			if trusted && rcvd && idx == k {
				break
			}
		}
		return b.String(), b.Len() > 0
	case "ToCc":
		to, ok1 := c.values("To", raw)
		cc, ok2 := c.values("Cc", raw)
		vals, ok = append(to, cc...), ok1 || ok2
		if ok && mod != "addr" && mod != "name" {
			return strings.Join(vals, ", "), true
		}
		if !ok {
			return "", false
		}
		// ToCc:addr and ToCc:name read the addresses, not the text:
		// the first one, as for a field.
	case "MESSAGEID":
		for _, n := range []string{"Message-Id", "Resent-Message-Id", "X-Message-Id"} {
			v, o := c.values(n, raw)
			vals = append(vals, v...)
			ok = ok || o
		}
	// The relay texts are the same under both names and any modifier:
	// rendered once, cached under the first name without one.
	case "X-Spam-Relays-Untrusted", "X-Spam-Relays-External":
		if name != "X-Spam-Relays-Untrusted" || mod != "" {
			return c.headerText("X-Spam-Relays-Untrusted", "")
		}
		_, u := c.relays()
		return relayText(u), true
	case "X-Spam-Relays-Trusted", "X-Spam-Relays-Internal":
		if name != "X-Spam-Relays-Trusted" || mod != "" {
			return c.headerText("X-Spam-Relays-Trusted", "")
		}
		t, _ := c.relays()
		return relayText(t), true
	case "EnvelopeFrom":
		if c.m.HasEnvelopeFrom {
			return c.m.EnvelopeFrom, true
		}
		if v, o := c.inferEnvelopeFrom(raw); o {
			vals, ok = []string{v}, true
		}
	default:
		vals, ok = c.values(name, raw)
	}
	if !ok {
		return "", false
	}
	switch mod {
	case "addr":
		return addrOf(vals[0]), true
	case "name":
		return nameOf(vals[0]), true
	}
	return strings.Join(vals, "\n"), true
}

// dateDiff is computeDateDiff, once per message.
func (c *msgCtx) dateDiff() (float64, bool) {
	if !c.dateDone {
		c.dateDone = true
		c.dateDiffV, c.dateDiffOK = c.computeDateDiff()
	}
	return c.dateDiffV, c.dateDiffOK
}

// relays splits the message's path into trusted and untrusted relays.
func (c *msgCtx) relays() (trusted, untrusted []Relay) {
	if !c.relaysDone {
		c.relaysDone = true
		rs := c.m.Relays
		if rs == nil {
			for _, p := range c.receivedRelays() {
				rs, c.unparseable = appendRelay(rs, c.unparseable, p.relay, p.kind)
			}
		}
		c.trusted, c.untrusted = splitTrust(rs)
	}
	return c.trusted, c.untrusted
}

// trustedReceivedCount is Received.pm's last_trusted_relay_index + 1:
// how many Received fields, from the top, come before the one of the
// first relay from outside (fields that name no relay count while the
// path is still trusted).
func (c *msgCtx) trustedReceivedCount() int {
	k := 0
	for _, p := range c.receivedRelays() {
		if p.kind == rcvdRelay && !internal(p.relay.IP) {
			break
		}
		k++
	}
	return k
}

// parsedReceived is what parseReceived read in one Received field.
type parsedReceived struct {
	relay Relay
	kind  rcvdKind
}

// receivedRelays reads each Received field once per message: the path
// (relays) and the ALL-TRUSTED family of header texts both walk them.
func (c *msgCtx) receivedRelays() []parsedReceived {
	if c.received == nil {
		vals := c.fields["received"]
		c.received = make([]parsedReceived, len(vals))
		for i, v := range vals {
			c.received[i].relay, c.received[i].kind = parseReceived(v)
		}
	}
	return c.received
}

// inferEnvelopeFrom is SpamAssassin's get_envelope_from without an
// envelope: the envelope-from that the Received field of the last relay
// handing over to the site recorded, else an X-Envelope-From,
// Envelope-Sender or Return-Path field above every Received field (below
// one, a relay further back added it). With an X-Sender field, a
// fetchmail hop makes them untrustworthy.
func (c *msgCtx) inferEnvelopeFrom(raw bool) (string, bool) {
	trusted, untrusted := c.relays()
	var last *Relay
	if len(untrusted) > 0 {
		last = &untrusted[0]
	} else if len(trusted) > 0 {
		last = &trusted[len(trusted)-1]
	}
	if last != nil && strings.IndexByte(last.EnvFrom, '@') > 0 {
		return last.EnvFrom, true
	}
	if v, ok := c.values("X-Sender", true); ok && strings.Contains(addrOf(v[0]), "@") {
		for _, r := range c.fields["received"] {
			if strings.Contains(r, "(fetchmail") {
				return "", false
			}
		}
	}
	// aboveReceived says the first field named name comes before any
	// Received field.
	aboveReceived := func(name string) bool {
		for _, f := range c.m.Header {
			switch {
			case strings.EqualFold(f.Name, "Received"):
				return false
			case strings.EqualFold(f.Name, name):
				return true
			}
		}
		return false
	}
	for _, name := range []string{"X-Envelope-From", "Envelope-Sender", "Return-Path"} {
		v, ok := c.values(name, raw)
		if !ok {
			continue
		}
		if aboveReceived(name) {
			return addrOf(v[0]), true
		}
		if name == "X-Envelope-From" {
			return "", false
		}
	}
	return "", false
}

func addrOf(v string) string {
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Address
	}
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t,("); i >= 0 {
		v = v[:i]
	}
	return v
}

func nameOf(v string) string {
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Name
	}
	if i := strings.IndexByte(v, '<'); i > 0 {
		return strings.Trim(strings.TrimSpace(v[:i]), `"`)
	}
	if i := strings.IndexByte(v, '('); i >= 0 {
		if j := strings.IndexByte(v[i:], ')'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return ""
}

// lowerNames caches the lower case of field names (the rules' and the
// messages'), which strings.ToLower allocated for each field of each
// message; bounded, for a daemon that sees names without end. It is read
// without a lock (a sync.Map's interface hashing was 1 % of a daemon's
// CPU); a name not in it is added to a copy, under lowerMu.
var (
	lowerNames atomic.Pointer[map[string]string]
	lowerMu    sync.Mutex
)

const maxLowerNames = 4096

// lowerName is strings.ToLower for a field name.
func lowerName(s string) string {
	lower := true
	for i := 0; i < len(s) && lower; i++ {
		lower = s[i] < 0x80 && (s[i] < 'A' || s[i] > 'Z')
	}
	if lower {
		return s
	}
	if m := lowerNames.Load(); m != nil {
		if l, ok := (*m)[s]; ok {
			return l
		}
	}
	l := strings.ToLower(s)
	if l != s {
		rememberLower(s, l)
	}
	return l
}

// rememberLower adds s and its lower case l to lowerNames, up to
// maxLowerNames names (copying the map each time costs at most that
// many entries per name, and only until it is full).
func rememberLower(s, l string) {
	lowerMu.Lock()
	defer lowerMu.Unlock()
	old := lowerNames.Load()
	n := 0
	if old != nil {
		if _, ok := (*old)[s]; ok {
			return
		}
		n = len(*old)
	}
	if n >= maxLowerNames {
		return
	}
	m := make(map[string]string, n+1)
	if old != nil {
		maps.Copy(m, *old)
	}
	m[strings.Clone(s)] = l
	lowerNames.Store(&m)
}

func containsAny(lower string, lits []string) bool {
	for _, l := range lits {
		if strings.Contains(lower, l) {
			return true
		}
	}
	return false
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerTable[b[j]]
			}
			return string(b)
		}
	}
	return s
}

// isASCII reports whether s is all ASCII, eight bytes at a time: it
// runs on every header text and body line, and a header block is read
// by it several times.
func isASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if word8(s, i)&hiBits != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// word8 is the eight bytes of s from i, little-endian (the compiler
// makes it one load).
func word8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	loBits = 0x0101010101010101
	hiBits = 0x8080808080808080
)

// screen reports whether text passes a rule's literal screen.
func (r *rule) screen(lower string, ascii bool) bool {
	v := &r.v[b2i(ascii)]
	if v.never {
		return false
	}
	return v.lits == nil || containsAny(lower, v.lits)
}

// match counts the matches of a rule's regex in text (1 at most unless
// the rule counts multiple hits). ascii says the text is pure ASCII.
func (r *rule) match(text string, ascii bool, limit int) int {
	return r.matchWithin(text, ascii, limit, 0, math.MaxInt)
}

// matchWithin is match where every match of the rule (of its automaton)
// lies within text[lo:hi] (a window, see prefilter.width).
func (r *rule) matchWithin(text string, ascii bool, limit, lo, hi int) int {
	v := &r.v[b2i(ascii)]
	if dbgOn && r.bt != nil {
		dbgBT(r.name, dbgBTCall, false, 0)
	}
	if v.never {
		return 0
	}
	// A backtracking rule's hand-written answer or screen before any
	// automaton: the RE2 screen (lookarounds dropped, backreferences as
	// .*) passes nearly every text these reject (the From/To/Subject
	// comparisons: any header block with both fields), and its pass over
	// the text costs more than they do.
	if r.bt != nil {
		if r.btNative != nil && !r.multi {
			if m, ok := r.btNative(text); ok {
				return b2i(m)
			}
		}
		if r.btScreen != nil && !r.btScreen(text) {
			return 0
		}
	}
	// The screen (X for X{n}) first: its automaton is n times smaller and
	// rejects most texts at a fraction of the cost.
	if v.screenDFA != nil && !v.repeats(text) {
		return 0
	}
	reMatched := false // v.re is known to match text
	if v.dfa != nil {
		start := 0
		if v.prefix != nil {
			// Every match starts with a prefix: none, no match.
			if start = firstPrefix(text, v.prefix); start < 0 {
				return 0
			}
		} else if v.startBytes != "" {
			if start = indexAnyFrom(text, 0, v.startBytes); start < 0 {
				return 0
			}
		}
		if dbgOn {
			dbgRule = r.name
		}
		var m, ok bool
		switch {
		case v.adfa != nil:
			m, ok = v.prefixMatch(text, start)
		case lo > 0 || hi < len(text):
			// Latin1 text: a byte C2 or C3 starts each rune past ASCII.
			for lo > 0 && text[lo]&0xc0 == 0x80 {
				lo--
			}
			m, ok = v.dfa.matchWithin(text, lo, hi)
		default:
			m, ok = v.dfa.matchAt(text, start)
		}
		if dbgOn {
			dbgDone(m)
		}
		if !ok && !v.screened(text) {
			return 0
		}
		if ok {
			if !m {
				return 0
			}
			if (r.bt == nil || v.ruleExact) && !r.multi && v.dfaExact {
				return 1
			}
			// A multiple-hit rule that can match once at most: the
			// automaton's answer is the count.
			if r.bt == nil && r.multi && v.dfaExact && v.re.atMostOne(text) {
				return 1
			}
			reMatched = v.dfaExact
		}
	} else if !v.screened(text) {
		return 0
	}
	if r.bt == nil {
		if r.multi {
			if c := v.re.counter(); c != nil {
				return c.count(text, limit)
			}
		}
		re := v.re.get()
		if re == nil {
			return 0
		}
		if !r.multi {
			return b2i(re.MatchString(text))
		}
		var t0 time.Time
		if dbgOn {
			t0 = time.Now()
		}
		n := len(re.FindAllStringIndex(text, limit))
		if dbgOn {
			dbgMulti(r.name, len(text), n, int64(time.Since(t0)))
		}
		return n
	}
	if dbgOn {
		dbgBT(r.name, dbgBTPass, false, 0)
	}
	if !reMatched && v.re != nil && !v.re.get().MatchString(text) {
		return 0
	}
	if !r.multi {
		var t0 time.Time
		if dbgOn {
			t0 = time.Now()
		}
		if r.btLook != nil {
			m, ok := r.btLook.match(text, ascii)
			if dbgOn {
				dbgBT(r.name, dbgBTLook, m, time.Since(t0))
			}
			if ok {
				return b2i(m)
			}
			if dbgOn {
				t0 = time.Now()
			}
		}
		ok, err := r.bt.MatchString(text)
		if dbgOn {
			dbgBT(r.name, dbgBTRun, ok && err == nil, time.Since(t0))
		}
		return b2i(ok && err == nil)
	}
	n := 0
	m, err := r.bt.FindStringMatch(text)
	for m != nil && err == nil && n < limit {
		n++
		m, err = r.bt.FindNextMatch(m)
	}
	return n
}

func (r *rule) limit() int {
	if r.maxhits > 0 {
		return r.maxhits
	}
	if r.multi {
		return 1000
	}
	return 1
}

func (c *msgCtx) runHeaders() {
	for k, i := range c.e.exists {
		var ok bool
		if f := c.e.existsField[k]; f != "" {
			_, ok = c.fields[f]
		} else {
			_, ok = c.headerText(c.e.rules[i].def.Header, "")
		}
		if ok {
			c.counts[i] = 1
		}
	}
	var cand []uint8
	for si := range c.e.hslots {
		sl := &c.e.hslots[si]
		var v string
		ok := false
		// A field's text is there only when the field is (values).
		if sl.field == "" {
			v, ok = c.header(sl.name, sl.mod)
		} else if _, there := c.fields[sl.field]; there {
			v, ok = c.header(sl.name, sl.mod)
		}
		if !ok && sl.hasIfUnset {
			v = sl.ifUnset
		}
		ascii := isASCII(v)
		cand = c.screen(&sl.pf[b2i(ascii)], v, len(sl.rules), cand)
		for pos, i := range sl.rules {
			r := c.e.rules[i]
			// A text without the rule's literals cannot match: a plain
			// test misses, a negated one (!~) hits, both without running
			// the regex.
			n := 0
			switch cand[pos] {
			case candHit:
				n = 1
			case candRun:
				var t0 time.Time
				if costHook != nil {
					t0 = time.Now()
				}
				n = r.match(v, ascii, r.limit())
				if costHook != nil {
					costHook(i, 1, time.Since(t0))
				}
			}
			if r.def.Negate {
				if n == 0 {
					c.counts[i] = 1
				}
				continue
			}
			c.counts[i] = int32(n)
		}
	}
}

// screen marks in cand (reused, n long) the rules of pf that can match
// text: those whose literals occur in it (in any ASCII case), those
// their group automaton names, and those without a screen.
func (c *msgCtx) screen(pf *prefilter, text string, n int, cand []uint8) []uint8 {
	if cap(cand) < n {
		cand = make([]uint8, n)
	}
	cand = cand[:n]
	clear(cand)
	if pf.ac != nil {
		// cand holds the literal sets found (bits) until the rule's
		// are all there; candRun (1) is the whole set of a rule with
		// one, else the bits go on and become candRun at the end.
		mask := c.maskScratch(n)
		var occs []occ
		if pf.count != nil {
			occs = c.occScratch(n)
		}
		pf.ac.scan(text, func(p int32, end int) {
			for _, e := range pf.patRule[p] {
				pos := e >> 4
				if e&patCounted != 0 {
					o := &occs[pos]
					if !o.add(end-pf.ac.lengths[p], end) || o.n < pf.count[pos] {
						continue
					}
				}
				mask[pos] |= 1 << (e & 3)
			}
		})
		for pos, m := range mask {
			if m != 0 && m == pf.need[pos] {
				cand[pos] = candRun
			}
		}
	}
	for _, pos := range pf.noLit {
		cand[pos] = candRun
	}
	for _, nr := range pf.native {
		if nr.match(text) {
			cand[nr.pos] = candHit
			if nr.screen {
				cand[nr.pos] = candRun
			}
		}
	}
	for gi := range pf.groups {
		g := &pf.groups[gi]
		m, exact := g.run(text)
		for m != 0 {
			b := bits.TrailingZeros64(m)
			m &^= 1 << b
			cand[g.pos[b]] = candRun + uint8(exact>>b&1)
		}
	}
	return cand
}

// occScratch returns n cleared counters, reused by each screen.
func (c *msgCtx) occScratch(n int) []occ { return cleared(&c.occ, n) }

// cleared returns *s as n cleared elements, reusing its array.
func cleared[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	*s = (*s)[:n]
	clear(*s)
	return *s
}

// occ counts the occurrences of a rule's counted literal set in a text
// (litScreen.count): the most that are pairwise disjoint, found greedily
// (the one that ends first; the scan reports them by their end), and
// where the last one counted ends.
type occ struct {
	n   int32
	end int
}

// add counts an occurrence from start to end unless it overlaps the
// last one counted, and reports whether it did.
func (o *occ) add(start, end int) bool {
	if start < o.end {
		return false
	}
	o.n++
	o.end = end
	return true
}

// maskScratch returns n cleared bytes, reused by each screen.
func (c *msgCtx) maskScratch(n int) []uint8 { return cleared(&c.mask, n) }

// What screen says of a rule: it cannot match, it may (run it), it does.
const (
	candNo uint8 = iota
	candRun
	candHit
)

func (c *msgCtx) runFull() {
	rules := c.e.kinds[KindFull]
	if len(rules) == 0 {
		return
	}
	full := latin1(c.m.rawText())
	ascii := isASCII(full)
	cand := c.screen(&c.e.pf[KindFull][b2i(ascii)], full, len(rules), nil)
	for pos, i := range rules {
		switch cand[pos] {
		case candHit:
			c.counts[i] = 1
		case candRun:
			r := c.e.rules[i]
			c.counts[i] = int32(r.match(full, ascii, r.limit()))
		}
	}
}

func (c *msgCtx) runMIMEHeaders() {
	for _, i := range c.e.kinds[KindMIMEHeader] {
		r := c.e.rules[i]
		n := 0
		for _, p := range c.m.Parts {
			for _, f := range p.Header {
				if !strings.EqualFold(f.Name, r.def.Header) {
					continue
				}
				v := f.Value
				if r.def.Modifier != "raw" {
					v = decodeHeader(v)
				}
				v = latin1(v)
				n += r.match(v, isASCII(v), r.limit())
			}
		}
		if r.def.Negate {
			if n == 0 {
				c.counts[i] = 1
			}
			continue
		}
		c.counts[i] = int32(n)
	}
}

// runLines runs the rules of a line-based kind: one Aho-Corasick pass over
// all lines finds the lines where each rule's literals occur; the rule's
// regex runs on those lines only (rules without literals run on all).
func (c *msgCtx) runLines(k Kind, lines []string) {
	rules := c.e.kinds[k]
	if len(rules) == 0 || len(lines) == 0 {
		return
	}
	sc := lineScratchPool.Get().(*lineScratch)
	defer lineScratchPool.Put(sc)
	sc.reset(len(rules))
	ascii := make([]bool, len(lines))
	for li, line := range lines {
		ascii[li] = isASCII(line)
	}
	// Each screen sweeps all the lines before the next one runs, so that
	// its table stays in the processor's cache from line to line (line
	// by line, the Aho-Corasick automaton and the group automata took
	// turns evicting each other on every short paragraph). A rule's
	// lines may then be marked out of order (the ASCII ones by one
	// screen, the others by another): its count is the same.
	for li, line := range lines {
		l := int32(li)
		pf := &c.e.pf[k][b2i(ascii[li])]
		if pf.ac != nil {
			pf.ac.scan(line, func(p int32, end int) {
				for _, e := range pf.patRule[p] {
					pos := e >> 4
					if e&patWindow != 0 {
						sc.win[pos].add(l, end-pf.ac.lengths[p], end)
					}
					m := sc.mask[pos]
					if e&patCounted != 0 {
						// The set's bit waits for its count. The rule
						// is touched at its first occurrence (maybe
						// again below: clearing twice does no harm).
						o := &sc.occ[pos]
						if o.n == 0 && m == 0 {
							sc.touched = append(sc.touched, pos)
						}
						if !o.add(end-pf.ac.lengths[p], end) || o.n < pf.count[pos] {
							continue
						}
					} else if m == 0 {
						sc.touched = append(sc.touched, pos)
					}
					m |= 1 << (e & 3)
					sc.mask[pos] = m
					if m == pf.need[pos] && sc.mark(pos, l) && pf.width != nil && pf.width[pos] > 0 {
						sc.windowed = append(sc.windowed, int32(len(sc.marks)-1))
					}
				}
			})
			for _, pos := range sc.touched {
				sc.mask[pos] = 0
				sc.occ[pos] = occ{}
			}
			sc.touched = sc.touched[:0]
			// The line's occurrences are all known: the windows of
			// the rules marked.
			for _, mi := range sc.windowed {
				mk := &sc.marks[mi]
				w, width := sc.win[mk.pos], pf.width[mk.pos]
				mk.lo, mk.hi = max(w.firstEnd-width, 0), w.lastStart+width
			}
			sc.windowed = sc.windowed[:0]
		}
	}
	for li, line := range lines {
		l := int32(li)
		pf := &c.e.pf[k][b2i(ascii[li])]
		for _, pos := range pf.noLit {
			sc.mark(pos, l)
		}
		for _, nr := range pf.native {
			if nr.match(line) {
				c.counts[rules[nr.pos]] = 1
			}
		}
	}
	for vi := range 2 {
		pf := &c.e.pf[k][vi]
		for gi := range pf.groups {
			g := &pf.groups[gi]
			for li, line := range lines {
				if b2i(ascii[li]) != vi {
					continue
				}
				m, exact := g.run(line)
				for m != 0 {
					b := bits.TrailingZeros64(m)
					m &^= 1 << b
					if exact>>b&1 != 0 {
						// The group's answer is the rule's: one hit.
						c.counts[rules[g.pos[b]]] = 1
						continue
					}
					sc.mark(g.pos[b], int32(li))
				}
			}
		}
	}
	sc.group()
	for pos := range rules {
		ls := sc.lines(pos)
		i := rules[pos]
		if len(ls) == 0 || c.counts[i] > 0 {
			// A count already set is a group's exact hit on a line of
			// the other variant: one hit, all the rule counts.
			continue
		}
		r := c.e.rules[i]
		limit := r.limit()
		n := 0
		var t0 time.Time
		if costHook != nil {
			t0 = time.Now()
		}
		for j, l := range ls {
			w := sc.window(pos, j)
			n += r.matchWithin(lines[l], ascii[l], limit-n, int(w.lo), int(w.hi))
			if n >= limit {
				break
			}
		}
		if costHook != nil {
			costHook(i, len(ls), time.Since(t0))
		}
		c.counts[i] = int32(n)
	}
}

// texts decodes and renders the text parts once.
func (c *msgCtx) texts() {
	if c.bodyDone {
		return
	}
	c.bodyDone = true
	// Message.pm: the subject (get_header in scalar context: the last
	// field) on a line of its own, "\n" when there is none.
	subject := "\n"
	if subj, _ := c.values("Subject", false); len(subj) > 0 {
		subject = subj[len(subj)-1] + "\n"
	}
	// Node.pm renders text/plain and text/html only; every leaf part
	// still puts a line break between its neighbours.
	rendered := make([]string, len(c.m.Parts))
	c.rendered = make([]string, len(c.m.Parts))
	c.htmlOf = make([]int, len(c.m.Parts))
	for i, p := range c.m.Parts {
		c.htmlOf[i] = -1
		if p.Text == "" {
			continue
		}
		c.plain = append(c.plain, p.Text)
		if p.Type == "text/plain" {
			c.rendered[i] = p.Text
		}
		if p.Type == "text/html" {
			c.hasHTML = true
			c.rendered[i] = renderHTML(p.Text, &c.html)
			c.htmlOf[i] = len(c.html.parts) - 1
		}
		if c.rendered[i] != "" {
			rendered[i] = unicodeSpaces(scanCut(c.rendered[i], bodyPartScanSize, "\n "))
		}
		c.rawbody = chunks(latin1(scanCut(p.Text, rawbodyPartScanSize, "\n> ")), c.rawbody)
	}
	c.body = bodyLines(subject, rendered, c.body)
	if c.m.URIs != nil {
		c.uris = c.m.URIs
	} else {
		var plain []string
		for _, p := range c.m.Parts {
			if p.Type != "text/html" && strings.HasPrefix(p.Type, "text/") {
				plain = append(plain, p.Text)
			}
		}
		c.uris = extractURIs(plain, c.html.links)
	}
	for i, u := range c.uris {
		c.uris[i] = latin1(u)
	}
}

func (c *msgCtx) bodyLines() []string { c.texts(); return c.body }
func (c *msgCtx) rawLines() []string  { c.texts(); return c.rawbody }
func (c *msgCtx) uriLines() []string  { c.texts(); return c.uris }

func (c *msgCtx) runEvals() {
	c.texts()
	for _, i := range c.e.evals {
		r := c.e.rules[i]
		c.counts[i] = int32(r.eval(c, r.def.Args))
	}
}

// SpamAssassin's defaults for body_part_scan_size and
// rawbody_part_scan_size (Mail::SpamAssassin::Conf): body and rawbody
// rules see only that much of each part.
const (
	bodyPartScanSize    = 50000
	rawbodyPartScanSize = 500000
)

// scanCut truncates a part's text to size bytes as SpamAssassin's
// Message.pm does: just after the first of cuts (tried in order) found
// within 1024 bytes past size, else at size.
func scanCut(text string, size int, cuts string) string {
	if len(text) <= size {
		return text
	}
	for i := 0; i < len(cuts); i++ {
		if j := strings.IndexByte(text[size:], cuts[i]); j >= 0 && j <= 1024 {
			return text[:size+j+1]
		}
	}
	return text[:size]
}

// lineScratch collects, for runLines, the lines each rule must run on: a
// flat list of (rule, line) marks in line order, grouped by rule at the
// end (a counting sort keeps each rule's lines in order). Pooled: a
// message would otherwise allocate a slice per candidate rule.
type lineScratch struct {
	// mask, per rule, has the bits of the literal sets found in the
	// current line (see prefilter.need); touched lists the rules whose
	// mask or occ is not 0, to clear them for the next line.
	mask []uint8
	occ  []occ // per rule, its counted set's occurrences in the line
	win  []winPlaces
	// windowed lists the marks of the current line whose window is set
	// at its end.
	windowed []int32
	touched  []int32
	last     []int32 // per rule: the last line marked, -1 for none
	off      []int32 // per rule: its lines are flat[off[pos]:off[pos+1]]
	marks    []lineMark
	flat     []int32
	flatWin  []lineWindow // the windows of flat's lines
}

// lineMark is a line a rule runs on; a match can only lie within
// lo..hi of it (a rule's window, see prefilter.width; all of the line
// for others).
type lineMark struct{ pos, line, lo, hi int32 }

// lineWindow is the part of the line a rule's match can lie within.
type lineWindow struct{ lo, hi int32 }

// winPlaces is where the occurrences of a windowed rule's first literal
// set are in a line: the first ends at firstEnd, the last starts at
// lastStart (the scan reports them by their end).
type winPlaces struct {
	line                int32
	firstEnd, lastStart int32
}

func (w *winPlaces) add(line int32, start, end int) {
	if w.line != line {
		*w = winPlaces{line: line, firstEnd: int32(end), lastStart: int32(start)}
		return
	}
	w.lastStart = max(w.lastStart, int32(start))
}

var lineScratchPool = sync.Pool{New: func() any { return new(lineScratch) }}

func (sc *lineScratch) reset(n int) {
	sc.mask = slices.Grow(sc.mask[:0], n)[:n]
	clear(sc.mask)
	sc.occ = slices.Grow(sc.occ[:0], n)[:n]
	clear(sc.occ)
	sc.win = slices.Grow(sc.win[:0], n)[:n]
	for i := range sc.win {
		sc.win[i].line = -1
	}
	sc.windowed = sc.windowed[:0]
	sc.touched = sc.touched[:0]
	sc.last = slices.Grow(sc.last[:0], n)[:n]
	for i := range sc.last {
		sc.last[i] = -1
	}
	sc.off = slices.Grow(sc.off[:0], n+1)[:n+1]
	clear(sc.off)
	sc.marks = sc.marks[:0]
}

// mark records that the rule at pos runs on line, and reports whether
// it was not yet.
func (sc *lineScratch) mark(pos, line int32) bool {
	if sc.last[pos] == line {
		return false
	}
	sc.last[pos] = line
	sc.marks = append(sc.marks, lineMark{pos, line, 0, math.MaxInt32})
	return true
}

func (sc *lineScratch) group() {
	for _, m := range sc.marks {
		sc.off[m.pos+1]++
	}
	for i := 1; i < len(sc.off); i++ {
		sc.off[i] += sc.off[i-1]
	}
	sc.flat = slices.Grow(sc.flat[:0], len(sc.marks))[:len(sc.marks)]
	sc.flatWin = slices.Grow(sc.flatWin[:0], len(sc.marks))[:len(sc.marks)]
	next := sc.last // reused: the next free slot of each rule
	copy(next, sc.off[:len(next)])
	for _, m := range sc.marks {
		sc.flat[next[m.pos]] = m.line
		sc.flatWin[next[m.pos]] = lineWindow{m.lo, m.hi}
		next[m.pos]++
	}
}

func (sc *lineScratch) lines(pos int) []int32 { return sc.flat[sc.off[pos]:sc.off[pos+1]] }

// window is the window of the j-th line of the rule at pos.
func (sc *lineScratch) window(pos, j int) lineWindow { return sc.flatWin[int(sc.off[pos])+j] }

// writeField writes f as the ALL pseudo-headers show a field: "Name:
// value" and a line break, the value decoded unless raw.
func writeField(b *strings.Builder, f Field, raw bool) {
	v := f.Value
	if !raw {
		v = decodeHeader(v)
	}
	b.WriteString(f.Name)
	b.WriteString(": ")
	b.WriteString(v)
	b.WriteByte('\n')
}
