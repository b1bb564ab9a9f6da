package sa

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dlclark/regexp2/v2"
)

// Options configure a compiled rule set.
type Options struct {
	// Bayes and Net pick SpamAssassin's score set: 0 neither, 1 network
	// tests, 2 Bayes, 3 both. Network rules themselves are not run here:
	// Net only selects the scores that assume they ran.
	Bayes bool
	Net   bool
	// Auth says the caller fills Message.Auth with its own SPF, DKIM and
	// DMARC results: those rules then score from the network score set.
	Auth bool
	// Overrides re-weight rules by name (with or without the "sa-"
	// prefix); 0 disables a rule.
	Overrides map[string]float64
	// Budget bounds the rule work on one message; the rules not run when
	// it is spent are reported in Result.Truncated. 0 means no bound.
	Budget time.Duration
	// NoBacktrack skips the regexes RE2 cannot run instead of running
	// them on the bounded backtracking engine.
	NoBacktrack bool
	// MatchTimeout bounds one backtracking match (default 20ms).
	MatchTimeout time.Duration
	// CacheBytes bounds the memory of the lazily built automata of all
	// the rules together (see cache): 0 means DefaultCacheBytes, a
	// negative value no bound.
	CacheBytes int64
}

// ScoreSet returns the index of SpamAssassin's score set for the options.
func (o Options) ScoreSet() int {
	s := 0
	if o.Net {
		s++
	}
	if o.Bayes {
		s += 2
	}
	return s
}

type rule struct {
	name  string
	kind  Kind
	def   *Def
	score float64
	// scoreNB is the score in the set without Bayes.
	scoreNB float64
	report  bool // a scored rule, not a __ sub-rule
	// v are the RE2 forms for any text and for ASCII text: the matcher
	// itself, or for a backtracking rule its screen (nil: no screen).
	v  [2]variant
	bt *regexp2.Regexp
	// btScreen, for some backtracking rules, proves cheaply that the
	// regex cannot match a text (see btScreens).
	btScreen func(text string) bool
	// btNative, for some backtracking rules, answers for the regex
	// (see btNatives).
	btNative func(text string) (match, ok bool)
	// btLook, for the rules whose lookaheads all stand at one place,
	// answers for the regex with automata (see lookRule).
	btLook  *lookRule
	eval    evalFunc
	meta    *expr
	mexpr   *metaExpr // meta with names resolved (after orderMetas)
	multi   bool
	maxhits int
	header  string // lower-case field name
}

// Engine runs a compiled rule set. It is safe for concurrent use.
type Engine struct {
	rules  []*rule
	byName map[string]int
	kinds  [KindMeta + 1][]int // rule indexes per kind (evals excluded)
	evals  []int
	metas  []int // in dependency order
	// metaProg is the metas' code, in that order.
	metaProg *metaProg
	pf       [KindMeta + 1][2]prefilter // per kind, for any text and ASCII text
	hslots   []headerSlot               // header rules by the text they read
	exists   []int                      // exists: header rules
	// existsField is, per exists rule, its field's lower-case name, ""
	// for a pseudo-header: a field is there or not, its text unread.
	existsField []string
	opt         Options
	stats       Stats
	scratch     sync.Pool // *ctxScratch
	// For evals.
	freemail   map[string]bool
	freemailRE *regexp.Regexp // the wildcard entries
	textMatch  map[string]*regexp.Regexp
	cache      *cache // the automata's memory budget
}

// prefilter screens the rules of one kind for one variant.
type prefilter struct {
	ac *automaton
	// patRule maps a literal's index to the rules it screens, as
	// pos<<4 | window<<3 | counted<<2 | factor: pos in kinds[k], which
	// of the rule's literal sets (see factorsOf) the literal belongs to,
	// whether that set's occurrences are counted (litScreen.count) and
	// whether their places bound where the rule runs (width).
	patRule [][]int32
	// need, per position, has a bit per literal set of the rule: it can
	// match a text where the literals found set all of them. A counted
	// set's bit is set once its disjoint occurrences reach count[pos].
	need  []uint8
	count []int32
	// width, per position, when not 0, bounds the bytes a match of the
	// rule spans in the line kinds: a match holds an occurrence of its
	// first set, so it starts no earlier than width before the end of
	// the first and ends no later than width after the start of the
	// last (see runLines).
	width []int32
	noLit []int32 // positions in kinds[k] without literals (always run)
	// native are the rules answered by a native matcher (plainNatives):
	// no literal or group screens them.
	native []nativeRule
	// groups screen the rules without literals whose automaton can be
	// shared: one pass per group names the rules that can match.
	groups []ruleGroup
}

// patCounted marks a prefilter.patRule entry whose literal set is
// counted, patWindow one whose places bound the rule's run.
const (
	patCounted = 1 << 2
	patWindow  = 1 << 3
)

// maxWindow bounds the match widths (in runes) whose windows are kept:
// wider ones span the most of a line.
const maxWindow = 256

// ruleGroup is a set of rules screened by one group automaton: bit i of
// its answer stands for the rule at position pos[i] in kinds[k].
type ruleGroup struct {
	m   *mdfa
	pos []int32
	// need, when set, lists bytes of which every match of every rule of
	// the group holds needN at least (see mustBytes): a text with fewer
	// cannot match, and the automaton need not run on it.
	need  string
	needN int
	// exact has bit i set when the automaton of rule pos[i] is its regex
	// and the rule counts one hit at most: the group's answer is the
	// rule's, and its own matcher need not run.
	exact uint64
}

// run returns which of the group's rules can match text (m) and which of
// those answers are the rules' own (exact); when the automaton gave up,
// all of them, none exact.
func (g *ruleGroup) run(text string) (m, exact uint64) {
	if g.need != "" && !holdsBytes(text, g.need, g.needN) {
		return 0, g.exact
	}
	m, ok := g.m.match(text)
	if !ok {
		return 1<<len(g.pos) - 1, 0
	}
	return m, g.exact
}

// groupSize is how many rules share one group automaton: more rules
// share a pass, but the automaton's states multiply. heavyGroupSize is
// the size of the groups of rules with a count past heavyCount (see
// countWeight). On the whole corpus, 32/15/4 took the groups' time from
// 258 to 156 µs a message, where 16 rules a group, the heavy ones among
// them, flushed their caches 44 times.
var (
	groupSize      = 32
	heavyCount     = 15
	heavyGroupSize = 4
)

// groupMember is a rule a group automaton screens.
type groupMember struct {
	pos   int32
	tree  *syntax.Regexp
	exact bool
}

// groupRules puts rules into groups of size.
func groupRules(ms []groupMember, size int) []ruleGroup {
	var gs []ruleGroup
	for len(ms) > 0 {
		n := min(size, len(ms))
		var g ruleGroup
		trees := make([]*syntax.Regexp, n)
		for i, m := range ms[:n] {
			if m.exact {
				g.exact |= 1 << i
			}
			g.pos = append(g.pos, m.pos)
			trees[i] = m.tree
		}
		g.need, g.needN = groupNeed(trees)
		g.m = newMDFA(trees)
		gs = append(gs, g)
		ms = ms[n:]
	}
	return gs
}

// countWeight is the largest count of a counted repetition in re
// ([a-z]{26,33}: 33). In an automaton each count reached is a state of
// its own, and in a group's automaton these multiply with the states of
// the other regexes: on the whole corpus the group holding the Debian
// body rules with large counts (__MONERO_ID, __LITECOIN_ID,
// __HEXHASHWORD_S2EU, __UC_GIBB_OBFU ...) outgrew its cache and was
// flushed again and again, half the time of all groups. Such rules get
// smaller groups of their own.
func countWeight(re *syntax.Regexp) int {
	w := 0
	if re.Op == syntax.OpRepeat {
		w = max(re.Min, re.Max)
	}
	for _, s := range re.Sub {
		w = max(w, countWeight(s))
	}
	return w
}

// Skip is a rule that is not run, and why.
type Skip struct {
	Rule   string
	Kind   Kind
	Reason string
	Score  float64
}

// EvalStat counts the rules that call one eval function not implemented.
type EvalStat struct {
	Rules int
	Score float64 // sum of |score| of those rules in the chosen set
}

// Stats say what was loaded, translated and skipped.
type Stats struct {
	Files        []string
	ScoreSet     int
	Defined      int          // rules defined
	ByKind       map[Kind]int // rules run, per kind
	Run          int          // rules run (scored rules and their sub-rules)
	Scored       int          // rules run that carry a score
	RE2          int          // regexes translated to RE2
	Backtracking int          // regexes run on the backtracking engine
	Prefiltered  int          // regexes screened by literals
	NativeEvals  int          // rules calling an eval implemented here
	Skipped      []Skip
	MissingEvals map[string]EvalStat
	Ignored      map[string]int // directives read but not used
	Errors       []string
}

// ErrNoRulesRun is returned when nothing of a rule set can run.
var ErrNoRulesRun = errors.New("sa: no rule could be compiled")

func ruleScore(d *Def, set int) float64 {
	if d.HasScore {
		return d.Scores[set]
	}
	switch {
	case strings.HasPrefix(d.Name, "__"):
		return 0
	case strings.HasPrefix(d.Name, "T_"):
		return 0.01
	case d.Tflags != nil && hasFlag(d, "nice"):
		return -1
	}
	return 1
}

func hasFlag(d *Def, f string) bool {
	_, ok := d.Tflags[f]
	return ok
}

// Compile translates a rule set for matching.
func Compile(rs *Ruleset, opt Options) (*Engine, error) {
	if opt.MatchTimeout == 0 {
		opt.MatchTimeout = 20 * time.Millisecond
	}
	set := opt.ScoreSet()
	e := &Engine{byName: map[string]int{}, opt: opt, freemail: rs.Freemail, textMatch: map[string]*regexp.Regexp{}}
	st := &e.stats
	st.Files = rs.Files
	st.ScoreSet = set
	st.Defined = len(rs.Defs)
	st.ByKind = map[Kind]int{}
	st.MissingEvals = map[string]EvalStat{}
	st.Ignored = rs.Ignored
	for _, err := range rs.Errors {
		st.Errors = append(st.Errors, err.Error())
	}
	// scoreIn is a rule's score in set s: the options' set, or the one
	// without Bayes (scoreNB), which SpamAssassin uses when Bayes is off or
	// has not learned enough yet.
	scoreIn := func(d *Def, set int) float64 {
		s := ruleScore(d, authScoreSet(d, set, opt.Auth))
		if v, ok := opt.Overrides[d.Name]; ok {
			s = v
		} else if v, ok := opt.Overrides["sa-"+d.Name]; ok {
			s = v
		}
		return s
	}
	score := func(d *Def) float64 { return scoreIn(d, set) }
	scoreNB := func(d *Def) float64 { return scoreIn(d, set&^2) }
	// Which rules are needed: the scored ones and what their metas read.
	needed := map[string]bool{}
	var need func(name string, depth int)
	metaExpr := map[string]*expr{}
	need = func(name string, depth int) {
		if needed[name] || depth > 50 {
			return
		}
		d := rs.Defs[name]
		if d == nil {
			return
		}
		needed[name] = true
		if d.Kind == KindMeta {
			x, err := parseExpr(d.Meta)
			if err != nil {
				return
			}
			metaExpr[name] = x
			for _, n := range x.names(nil) {
				need(n, depth+1)
			}
		}
	}
	for _, name := range rs.Order {
		d := rs.Defs[name]
		if !strings.HasPrefix(name, "__") && (score(d) != 0 || scoreNB(d) != 0) {
			need(name, 0)
		}
	}
	skip := func(d *Def, reason string) {
		st.Skipped = append(st.Skipped, Skip{Rule: d.Name, Kind: d.Kind, Reason: reason, Score: score(d)})
	}
	skipped := map[string]bool{}
	regexes := e.compileRegexes(rs, needed)
	for _, name := range rs.Order {
		d := rs.Defs[name]
		if !needed[name] {
			continue
		}
		r := &rule{name: name, kind: d.Kind, def: d, score: score(d), scoreNB: scoreNB(d)}
		r.report = !strings.HasPrefix(name, "__") && (r.score != 0 || r.scoreNB != 0)
		_, r.multi = d.Tflags["multiple"]
		if v, ok := d.Tflags["maxhits"]; ok {
			fmt.Sscan(v, &r.maxhits)
			r.multi = true
		}
		// The auth evals are not skipped: without Message.Auth they are
		// false, as when the checks found nothing (auth.go).
		if hasFlag(d, "net") && d.Kind != KindMeta && !authEvals[d.Eval] {
			skip(d, "network test")
			skipped[name] = true
			continue
		}
		switch {
		case d.Kind == KindMeta:
			x, err := parseExpr(d.Meta)
			if err != nil {
				skip(d, "meta: "+err.Error())
				skipped[name] = true
				continue
			}
			r.meta = x
		case d.Eval != "":
			f, ok := evals[d.Eval]
			if ok && f.accepts != nil && !f.accepts(d.Args) {
				ok = false
			}
			if ok && d.Eval == "html_text_match" && len(d.Args) > 1 {
				if p, err := Translate(d.Args[1], ""); err == nil {
					if re, err := regexp.Compile(p); err == nil {
						e.textMatch[d.Args[1]] = re
					}
				}
				ok = e.textMatch[d.Args[1]] != nil
			}
			if !ok {
				skip(d, "eval "+d.Eval+"("+strings.Join(d.Args, ", ")+") not implemented")
				skipped[name] = true
				es := st.MissingEvals[d.Eval]
				if f.fn != nil {
					es = st.MissingEvals[d.Eval+"("+strings.Join(d.Args, ",")+")"]
				}
				es.Rules++
				if r.score < 0 {
					es.Score -= r.score
				} else {
					es.Score += r.score
				}
				if f.fn != nil {
					st.MissingEvals[d.Eval+"("+strings.Join(d.Args, ",")+")"] = es
				} else {
					st.MissingEvals[d.Eval] = es
				}
				continue
			}
			r.eval = f.fn
			st.NativeEvals++
		case d.Exists:
			r.header = strings.ToLower(d.Header)
		default:
			r.header = strings.ToLower(d.Header)
			c := regexes[name]
			r.v, r.bt = c.v, c.bt
			if r.bt != nil {
				r.btScreen = btScreens[d.Pattern]
				r.btNative = btNatives[d.Pattern]
				if !r.multi {
					r.btLook = c.look
				}
			}
			st.RE2 += c.st.re2
			st.Backtracking += c.st.bt
			st.Prefiltered += c.st.pref
			if err := c.err; err != nil {
				reason := err.Error()
				skip(d, reason)
				skipped[name] = true
				continue
			}
		}
		e.byName[name] = len(e.rules)
		e.rules = append(e.rules, r)
	}
	// Metas: order by dependencies; leave out those that would fire
	// wrongly because a rule they negate is not run.
	e.orderMetas(skipped, rs, skip)
	for _, i := range e.metas {
		e.rules[i].mexpr = compileMeta(e.rules[i].meta, func(name string) int32 {
			if j, ok := e.byName[name]; ok && e.rules[j] != nil {
				return int32(j)
			}
			return -1
		})
	}
	e.metaProg = newMetaProg(e.rules, e.metas)
	for i, r := range e.rules {
		if r == nil {
			continue
		}
		switch {
		case r.meta != nil:
		case r.eval != nil:
			e.evals = append(e.evals, i)
		default:
			e.kinds[r.kind] = append(e.kinds[r.kind], i)
		}
		st.ByKind[r.kind]++
		st.Run++
		if r.report {
			st.Scored++
		}
	}
	for k := range e.kinds {
		e.buildPrefilter(Kind(k))
	}
	// The groups hold the trees they need until their first use.
	for _, r := range e.rules {
		if r != nil {
			r.v[0].dfa.release()
			r.v[1].dfa.release()
		}
	}
	limit := opt.CacheBytes
	if limit == 0 {
		limit = DefaultCacheBytes
	}
	e.useCache(newCache(limit))
	e.freemailRE = globsRE(rs.Freemail)
	if st.Run == 0 {
		return nil, ErrNoRulesRun
	}
	sort.Slice(st.Skipped, func(i, j int) bool { return st.Skipped[i].Rule < st.Skipped[j].Rule })
	return e, nil
}

// regexStats counts what compileRegex made of one rule.
type regexStats struct{ re2, bt, pref int }

// compiledRegex is compileRegex's result for one rule.
type compiledRegex struct {
	v    [2]variant
	bt   *regexp2.Regexp
	look *lookRule // see rule.btLook
	st   regexStats
	err  error
}

// compileRegexes compiles the regexes of the rules that need one, in
// parallel (the regexes are independent; the daemon pays this at each
// start and reload).
func (e *Engine) compileRegexes(rs *Ruleset, needed map[string]bool) map[string]*compiledRegex {
	out := map[string]*compiledRegex{}
	var defs []*Def
	for _, name := range rs.Order {
		d := rs.Defs[name]
		if !needed[name] || hasFlag(d, "net") || d.Kind == KindMeta || d.Eval != "" || d.Exists {
			continue
		}
		out[name] = &compiledRegex{}
		defs = append(defs, d)
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(defs) {
					return
				}
				c := out[defs[i].Name]
				var r rule
				c.err = e.compileRegex(&r, defs[i], &c.st)
				c.v, c.bt = r.v, r.bt
				if r.bt != nil {
					c.look = newLookRule(defs[i].Pattern)
				}
			}
		})
	}
	wg.Wait()
	return out
}

func (e *Engine) compileRegex(r *rule, d *Def, st *regexStats) error {
	pat, flags, err := SplitRegex(d.Pattern)
	if err != nil {
		return err
	}
	re2, err := Translate(pat, flags)
	tooLarge := false // RE2 syntax that RE2 refused
	if err == nil {
		full, ascii, cerr := compileVariants(re2)
		if cerr == nil {
			r.v = [2]variant{full, ascii}
			st.re2++
			if full.lits != nil || ascii.lits != nil || ascii.never {
				st.pref++
			}
			return nil
		}
		err = fmt.Errorf("%w: %v", ErrBacktrack, cerr)
		tooLarge = true
	}
	if !errors.Is(err, ErrBacktrack) {
		return err
	}
	if e.opt.NoBacktrack {
		return fmt.Errorf("needs backtracking (%v)", err)
	}
	btPat, terr := translate(pat, flags, targetBT)
	if terr != nil {
		return terr
	}
	var o regexp2.RegexOptions
	for _, c := range flags {
		switch c {
		case 'i':
			o |= regexp2.IgnoreCase
		case 'm':
			o |= regexp2.Multiline
		case 's':
			o |= regexp2.Singleline
		}
	}
	bt, cerr := regexp2.Compile(btPat, o)
	if cerr != nil {
		return fmt.Errorf("backtracking engine: %v", cerr)
	}
	bt.MatchTimeout = e.opt.MatchTimeout
	r.bt = bt
	st.bt++
	if tooLarge {
		// RE2 syntax, refused for its size: the automata run it
		// exactly; the backtracking engine stands by for when they
		// give up.
		if tree, ok := parseRepeat(re2); ok {
			full, ascii := treeVariants(tree)
			r.v = [2]variant{full, ascii}
			st.pref++
			return nil
		}
	}
	// The RE2 superset (lookarounds dropped, backreferences as .*)
	// screens: the backtracking engine runs only where it matches.
	if sup, err := translate(pat, flags, targetSuperset); err == nil {
		// A group counted far ((X){0,99}) makes a screen automaton of
		// a state set per count reached (__SPOOFED_URL's passed the
		// cache's bound and gave up, leaving the regexp's NFA to run):
		// the screen repeats the group any number of times.
		sup = relaxGroupCounts(sup, groupCountLimit)
		full, ascii, err := compileVariants(sup)
		if err != nil {
			// Too large for RE2 (X{5} of a large X): screen with X.
			if core := repeatCore(sup); core != "" {
				full, ascii, err = compileVariants(core)
			}
		}
		// Counts past RE2's limit ([^>]{0,2048}): the same regex with
		// the counts relaxed, first the large ones, then all of them.
		for _, limit := range []int{100, 1} {
			if err == nil {
				break
			}
			full, ascii, err = compileVariants(relaxCounts(sup, limit))
		}
		if err == nil {
			r.v = [2]variant{full, ascii}
			if full.lits != nil || ascii.lits != nil || ascii.never {
				st.pref++
			}
		}
	}
	return nil
}

// groupCountLimit: see relaxGroupCounts in compileRegex.
const groupCountLimit = 30

// relaxCounts rewrites the counted repetitions of an RE2 pattern whose
// bounds pass limit: X{n,m} becomes X{min(n,limit),}, which matches every
// text X{n,m} does. The result screens a regex RE2 refuses for its
// counts.
func relaxCounts(p string, limit int) string {
	return relaxCountsOf(p, limit, false)
}

// relaxGroupCounts is relaxCounts for the counted repetitions of groups
// only ((X){0,99}).
func relaxGroupCounts(p string, limit int) string {
	return relaxCountsOf(p, limit, true)
}

func relaxCountsOf(p string, limit int, groupsOnly bool) string {
	var b strings.Builder
	inClass := false
	afterGroup := false // the last token is a group
	for i := 0; i < len(p); i++ {
		c := p[i]
		wasGroup := afterGroup
		afterGroup = !inClass && c == ')'
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteString(p[i : i+2])
			i++
			continue
		case inClass:
			if c == '[' && i+1 < len(p) && p[i+1] == ':' {
				// [:alpha:] inside a class.
				if j := strings.Index(p[i:], ":]"); j > 0 {
					b.WriteString(p[i : i+j+2])
					i += j + 1
					continue
				}
			}
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			// A ] first in the class is a member.
			if j := i + 1; j < len(p) && p[j] == '^' {
				b.WriteString("[^")
				i++
			} else {
				b.WriteByte('[')
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		case c == '{':
			if n := quantifierEnd(p[i:]); n > 0 {
				q := p[i+1 : i+n-1]
				lo, hi, comma := strings.Cut(q, ",")
				var l, h int
				fmt.Sscan(lo, &l)
				if !comma {
					h = l
				} else if hi == "" {
					h = -1
				} else {
					fmt.Sscan(hi, &h)
				}
				if (l > limit || h > limit) && (wasGroup || !groupsOnly) {
					fmt.Fprintf(&b, "{%d,}", min(l, limit))
				} else {
					b.WriteString(p[i : i+n])
				}
				i += n - 1
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// stripBackrefs replaces \1..\9 with an empty group, which keeps the
// literals that the rest of the pattern requires.
func stripBackrefs(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			if p[i+1] >= '1' && p[i+1] <= '9' {
				b.WriteString("(?:)")
			} else {
				b.WriteString(p[i : i+2])
			}
			i++
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// orderMetas sorts metas so that each comes after the metas it reads and
// skips the metas that read a rule that is not run where that rule's
// absence could make them fire (under !, on the right of >, in == ...).
func (e *Engine) orderMetas(skipped map[string]bool, rs *Ruleset, skip func(*Def, string)) {
	state := map[int]int{} // 0 new, 1 visiting, 2 done
	bad := map[string]bool{}
	for n := range skipped {
		bad[n] = true
	}
	var visit func(i int) bool
	visit = func(i int) bool {
		switch state[i] {
		case 1:
			return false // cycle
		case 2:
			return e.rules[i] != nil
		}
		state[i] = 1
		r := e.rules[i]
		ok := true
		reason := ""
		polarity(r.meta, true, func(name string, pos bool) {
			j, found := e.byName[name]
			if found && e.rules[j] != nil && e.rules[j].meta != nil {
				if !visit(j) {
					found = false
				}
			}
			// A name no loaded file defines reads 0, as in SpamAssassin
			// (its plugin is not loaded). A rule defined but not run here
			// would read 0 where SpamAssassin may read 1: where that could
			// make the meta fire, the meta is not run.
			if rs.Defs[name] != nil && (!found || e.rules[j] == nil) && !pos && ok {
				ok = false
				reason = "meta reads skipped " + name + " where its absence counts"
			}
		})
		state[i] = 2
		if !ok {
			skip(r.def, reason)
			e.rules[i] = nil
			return false
		}
		e.metas = append(e.metas, i)
		return true
	}
	for i, r := range e.rules {
		if r != nil && r.meta != nil {
			visit(i)
		}
	}
}

// polarity calls fn for each name of x with whether a hit can only make
// x larger (pos) or not.
func polarity(x *expr, pos bool, fn func(string, bool)) {
	if x == nil {
		return
	}
	switch x.op {
	case "id":
		fn(x.id, pos)
	case "!", "neg":
		polarity(x.l, !pos, fn)
	case "&&", "||", "+", "*", ">", ">=":
		polarity(x.l, pos, fn)
		polarity(x.r, pos == (x.op != ">" && x.op != ">="), fn)
	case "-", "<", "<=":
		polarity(x.l, pos == (x.op == "-"), fn)
		polarity(x.r, pos != (x.op == "-"), fn)
	default: // == != /: either way
		polarity(x.l, false, fn)
		polarity(x.r, false, fn)
	}
}

func (e *Engine) buildPrefilter(k Kind) {
	if k == KindHeader {
		e.buildHeaderSlots()
		return
	}
	line := k == KindBody || k == KindRawBody || k == KindURI || k == KindFull
	for vi := range 2 {
		e.pf[k][vi] = e.newPrefilter(e.kinds[k], vi, line, k != KindFull)
	}
}

// newPrefilter builds the screen of rules (indexes into e.rules) for
// variant vi; the positions it names are positions in rules. With ac,
// the literals are screened by one Aho-Corasick pass and the rules
// without literals by group automata; else the literals are left for
// (*rule).screen and the rules without them always run.
func (e *Engine) newPrefilter(rules []int, vi int, ac, line bool) prefilter {
	var pf prefilter
	var pats []string
	var light, heavy []groupMember
	index := map[string]int32{}
	for pos, i := range rules {
		r := e.rules[i]
		v := r.v[vi]
		if v.never {
			continue
		}
		if f := plainNatives[r.def.Pattern]; f != nil && ac && !r.multi && r.bt == nil {
			pf.native = append(pf.native, nativeRule{pos: int32(pos), match: f})
			continue
		}
		// runLines reads a native's answer as the rule's: a screen only
		// serves whole texts.
		if f := screenNatives[r.def.Pattern]; f != nil && ac && !line && v.lits == nil {
			pf.native = append(pf.native, nativeRule{pos: int32(pos), match: f, screen: true})
			continue
		}
		if v.lits == nil {
			if v.dfa != nil && v.dfa.tree != nil && ac {
				// The rule matches a text only where its automaton
				// (the regex, or a screen of it) does.
				m := groupMember{pos: int32(pos), tree: v.dfa.tree,
					exact: v.dfaExact && (r.bt == nil || v.ruleExact) && !r.multi}
				// The full variant's tree is as parsed (the ASCII one
				// simplified, its counts unrolled).
				wt := v.dfa.tree
				if f := r.v[0].dfa; f != nil && f.tree != nil {
					wt = f.tree
				}
				if countWeight(wt) > heavyCount {
					heavy = append(heavy, m)
				} else {
					light = append(light, m)
				}
				continue
			}
			pf.noLit = append(pf.noLit, int32(pos))
			continue
		}
		if pf.need == nil {
			pf.need = make([]uint8, len(rules))
		}
		sets := append([][]string{v.lits}, v.more...)
		if !ac {
			sets = sets[:1]
		}
		if ac && v.count > 1 {
			if pf.count == nil {
				pf.count = make([]int32, len(rules))
			}
			pf.count[pos] = int32(v.count)
		}
		if ac && line && v.width > 0 && v.width <= maxWindow {
			if pf.width == nil {
				pf.width = make([]int32, len(rules))
			}
			// The ASCII variant runs on ASCII lines, a byte a rune;
			// the other on latin1 lines, two at most.
			pf.width[pos] = int32(v.width * (2 - vi))
		}
		for f, set := range sets {
			pf.need[pos] |= 1 << f
			e := int32(pos)<<4 | int32(f)
			if ac && v.count > 1 && f == v.countSet {
				e |= patCounted
			}
			if f == 0 && pf.width != nil && pf.width[pos] > 0 {
				e |= patWindow
			}
			for _, l := range set {
				id, ok := index[l]
				if !ok {
					id = int32(len(pats))
					index[l] = id
					pats = append(pats, l)
					pf.patRule = append(pf.patRule, nil)
				}
				pf.patRule[id] = append(pf.patRule[id], e)
			}
		}
	}
	pf.groups = append(groupRules(light, groupSize), groupRules(heavy, heavyGroupSize)...)
	if len(pats) > 0 && ac {
		pf.ac = newAutomaton(pats)
	}
	return pf
}

// headerSlot is the header rules that read one text: the same field (or
// pseudo-header), modifier and if-unset default. The text is got,
// decoded and lowered once, and its rules screened in one pass.
type headerSlot struct {
	name, mod  string
	ifUnset    string
	hasIfUnset bool
	// field is the lower-case name of the field read, "" for a
	// pseudo-header: a message without that field has no text for the
	// slot, which needs no cache.
	field string
	rules []int // indexes into e.rules
	pf    [2]prefilter
}

func (e *Engine) buildHeaderSlots() {
	index := map[string]int{}
	for _, i := range e.kinds[KindHeader] {
		d := e.rules[i].def
		if d.Exists {
			e.exists = append(e.exists, i)
			f := ""
			if !pseudoHeader(d.Header) {
				f = lowerName(d.Header)
			}
			e.existsField = append(e.existsField, f)
			continue
		}
		// Field names are read in any case (see msgCtx.values): one
		// slot, one text and one screen for Message-ID and Message-Id.
		key := d.Header
		if !pseudoHeader(key) {
			key = lowerName(key)
		}
		key += ":" + d.Modifier
		if d.HasIfUnset {
			key += "\x00" + d.IfUnset
		}
		si, ok := index[key]
		if !ok {
			si = len(e.hslots)
			index[key] = si
			sl := headerSlot{name: d.Header, mod: d.Modifier, ifUnset: d.IfUnset, hasIfUnset: d.HasIfUnset}
			if !pseudoHeader(d.Header) {
				sl.field = lowerName(d.Header)
			}
			e.hslots = append(e.hslots, sl)
		}
		e.hslots[si].rules = append(e.hslots[si].rules, i)
	}
	for si := range e.hslots {
		sl := &e.hslots[si]
		for vi := range 2 {
			sl.pf[vi] = e.newPrefilter(sl.rules, vi, true, false)
		}
	}
}

// Stats returns what was loaded, translated and skipped.
func (e *Engine) Stats() Stats { return e.stats }

// globsRE compiles the wildcard entries of a domain list (* any run of
// characters within a label, ? one character) into one anchored regexp.
func globsRE(set map[string]bool) *regexp.Regexp {
	var alts []string
	for d := range set {
		if !strings.ContainsAny(d, "*?") {
			continue
		}
		q := regexp.QuoteMeta(d)
		q = strings.ReplaceAll(q, `\*`, `[^.]*`)
		q = strings.ReplaceAll(q, `\?`, `.`)
		alts = append(alts, q)
	}
	if len(alts) == 0 {
		return nil
	}
	sort.Strings(alts)
	re, err := regexp.Compile(`^(?:` + strings.Join(alts, "|") + `)$`)
	if err != nil {
		return nil
	}
	return re
}

// maxNeedBytes bounds ruleGroup.need: a count per byte.
const maxNeedBytes = 3

// groupNeed returns the bytes of which every match of each of trees
// holds n at least, "" when there are none so few (and rare: no letter,
// digit or blank, of which nearly every text holds some). The rules
// without literals of a group are screened by nothing else: the two
// rawbody rules that count ten HTML entities ran on every chunk of every
// message, most of which hold no &.
func groupNeed(trees []*syntax.Regexp) (need string, n int) {
	for i, t := range trees {
		set, k := mustBytes(t, 0)
		if k == 0 {
			return "", 0
		}
		for j := 0; j < len(set); j++ {
			if !strings.Contains(need, set[j:j+1]) {
				need += set[j : j+1]
			}
		}
		if i == 0 || k < n {
			n = k
		}
	}
	if len(need) > maxNeedBytes {
		return "", 0
	}
	for i := 0; i < len(need); i++ {
		if c := need[i]; c >= 0x80 || c == ' ' || c == '\t' || c == '\n' || isWordByte(c) {
			return "", 0
		}
	}
	return need, n
}

// mustBytes returns a set of ASCII bytes (at most maxNeedBytes) of which
// every match of re holds n at least; n is 0 when it knows no such set.
// A byte of the set stands for itself in a text of byte-runes as well
// (latin1 writes only bytes past ASCII as pairs).
func mustBytes(re *syntax.Regexp, depth int) (set string, n int) {
	if depth > 100 {
		return "", 0
	}
	switch re.Op {
	case syntax.OpLiteral:
		// The literal's rarest byte would be best; its bytes are all
		// there: count those of the first that is not a letter.
		for _, r := range re.Rune {
			if r < 0x80 && !isWordByte(byte(r)) && r != ' ' {
				c := byte(r)
				k := 0
				for _, r2 := range re.Rune {
					if r2 == r {
						k++
					}
				}
				return string(c), k
			}
		}
		return "", 0
	case syntax.OpCharClass:
		var b []byte
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi >= 0x80 || hi-lo >= maxNeedBytes {
				return "", 0
			}
			for r := lo; r <= hi; r++ {
				b = append(b, byte(r))
			}
		}
		if len(b) == 0 || len(b) > maxNeedBytes {
			return "", 0
		}
		return string(b), 1
	case syntax.OpCapture, syntax.OpPlus:
		return mustBytes(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min < 1 {
			return "", 0
		}
		set, k := mustBytes(re.Sub[0], depth+1)
		return set, k * re.Min
	case syntax.OpAlternate:
		for i, s := range re.Sub {
			b, k := mustBytes(s, depth+1)
			if k == 0 {
				return "", 0
			}
			for j := 0; j < len(b); j++ {
				if !strings.Contains(set, b[j:j+1]) {
					set += b[j : j+1]
				}
			}
			if len(set) > maxNeedBytes {
				return "", 0
			}
			if i == 0 || k < n {
				n = k
			}
		}
		return set, n
	case syntax.OpConcat:
		// The smallest set of a part; the parts of the same set add up
		// (each part's bytes lie in its own stretch of the match).
		counts := map[string]int{}
		for _, s := range re.Sub {
			if b, k := mustBytes(s, depth+1); k > 0 {
				counts[b] += k
			}
		}
		for b, k := range counts {
			if n == 0 || len(b) < len(set) || len(b) == len(set) && (k > n || k == n && b < set) {
				set, n = b, k
			}
		}
		return set, n
	}
	return "", 0
}

// holdsBytes reports whether text holds n bytes of set at least.
func holdsBytes(text, set string, n int) bool {
	if n == 1 {
		for i := 0; i < len(set); i++ {
			if strings.IndexByte(text, set[i]) >= 0 {
				return true
			}
		}
		return false
	}
	k := 0
	for i := 0; i < len(set); i++ {
		if k += strings.Count(text, set[i:i+1]); k >= n {
			return true
		}
	}
	return false
}
