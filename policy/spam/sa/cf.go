package sa

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kind is the kind of text a rule runs on.
type Kind int

// Rule kinds, named after the SpamAssassin directives.
const (
	KindHeader Kind = iota
	KindBody
	KindRawBody
	KindURI
	KindFull
	KindMIMEHeader
	KindMeta
)

var kindNames = [...]string{"header", "body", "rawbody", "uri", "full", "mimeheader", "meta"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Def is one rule as the .cf files define it, before compilation.
type Def struct {
	Name   string
	Kind   Kind
	File   string
	Line   int
	Source string // the definition as written after the name

	// Header and mimeheader rules.
	Header     string // field name, "ALL", "ToCc", ...
	Modifier   string // "", "raw", "addr", "name"
	Exists     bool   // exists:Name
	Negate     bool   // !~
	IfUnset    string
	HasIfUnset bool

	Pattern string // Perl regex as written, with delimiters and flags
	Eval    string // eval function name, when the rule is eval:
	Args    []string
	Meta    string // meta expression

	Scores      [4]float64
	HasScore    bool
	Description string
	Tflags      map[string]string
	Priority    int
}

// Ruleset is the parsed content of the rule files.
type Ruleset struct {
	Defs  map[string]*Def
	Order []string // names in order of first definition
	// Directives counts the lines read per directive that this package does
	// not act on (whitelist_from, report, ...): facts for `mailwarden rules`.
	Ignored map[string]int
	// Errors are the lines that could not be read; a bad line never stops
	// the load (SpamAssassin warns and goes on; so do we).
	Errors []error
	Files  []string
	// Freemail are the freemail_domains (FreeMail plugin), lower case;
	// entries may start with "*." for a whole subtree.
	Freemail map[string]bool
	// RequireVersionFailed lists files skipped by require_version.
	RequireVersionFailed []string

	replaceTags  map[string]string
	replacePre   map[string]string
	replacePost  map[string]string
	replaceInter map[string]string
	replaceRules map[string]bool
	// orphan scores etc. for rules defined later
	pending map[string]*Def
}

// ParseError is a line of a rule file that could not be read.
type ParseError struct {
	File string
	Line int
	Text string
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("sa: %s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Errors of the rule parser.
var (
	ErrSyntax       = errors.New("sa: syntax error")
	ErrNoRules      = errors.New("sa: no rule files found")
	ErrIncludeDepth = errors.New("sa: include nested too deep")
)

// Version is the SpamAssassin version this engine claims for `if version`
// and require_version: the rules shipped with 4.0.1 target it.
const Version = 4.000001

// Env says what the conditionals of the rule files see.
type Env struct {
	// Version for `if version >= ...` and require_version; 0 means Version.
	Version float64
	// Plugin reports whether a plugin counts as loaded. Nil means the
	// plugins whose evals this package implements (see Plugins).
	Plugin func(name string) bool
	// Can reports features for `if can(...)`. Nil means the defaults.
	Can func(name string) bool
}

func (e Env) version() float64 {
	if e.Version == 0 {
		return Version
	}
	return e.Version
}

func (e Env) plugin(name string) bool {
	if e.Plugin != nil {
		return e.Plugin(name)
	}
	return Plugins[strings.TrimPrefix(name, "Mail::SpamAssassin::Plugin::")]
}

func (e Env) can(name string) bool {
	if e.Can != nil {
		return e.Can(name)
	}
	switch {
	case strings.HasPrefix(name, "Mail::SpamAssassin::Conf::feature_"),
		strings.HasPrefix(name, "Mail::SpamAssassin::Conf::compat_"),
		strings.HasPrefix(name, "Mail::SpamAssassin::Conf::perl_min_version_"):
		// Features of the rule language: most are syntax this parser reads
		// (welcomelist names, capture rules are not: see below).
		switch strings.TrimPrefix(name, "Mail::SpamAssassin::Conf::") {
		case "feature_capture_rules", "feature_dns_block_rule", "feature_dns_query_restriction",
			"feature_blocklist_welcomelist_no_dot", "feature_subjprefix", "feature_srsrewrite",
			"compat_welcomelist_blocklist":
			return false
		}
		return true
	case name == "Mail::SpamAssassin::Plugin::BodyEval::has_check_body_length",
		name == "Mail::SpamAssassin::Plugin::MIMEEval::has_check_for_ascii_text_illegal":
		return true
	}
	return false
}

// Plugins are the SpamAssassin plugins that count as loaded: those whose
// eval functions (or directives) this package implements, at least the
// ones that matter (the rest of their evals are skipped and counted).
var Plugins = map[string]bool{
	"Check": true, "HeaderEval": true, "BodyEval": true, "MIMEEval": true,
	"HTMLEval": true, "MIMEHeader": true, "ReplaceTags": true, "Bayes": true,
	"RelayEval": true, "WLBLEval": false, "FreeMail": true, "VBounce": true,
	// Fed with the daemon's own results (Message.Auth, auth.go).
	"SPF": true, "DKIM": true, "DMARC": true, "Dmarc": true,
}

// Load reads rule files in order: each path is a file or a directory whose
// *.cf files are read in name order (as SpamAssassin does).
func Load(paths []string, env Env) (*Ruleset, error) {
	rs := newRuleset()
	found := false
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("sa: %w", err)
		}
		if !st.IsDir() {
			found = true
			if err := rs.parseFile(p, env, 0); err != nil {
				return nil, err
			}
			continue
		}
		files, err := filepath.Glob(filepath.Join(p, "*.cf"))
		if err != nil {
			return nil, fmt.Errorf("sa: %w", err)
		}
		sort.Strings(files)
		for _, f := range files {
			found = true
			if err := rs.parseFile(f, env, 0); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		return nil, ErrNoRules
	}
	rs.finish()
	return rs, nil
}

// DefaultPaths returns the rule paths SpamAssassin itself would read:
// the newest sa-update directory under updateRoot
// (/var/lib/spamassassin/<version>/updates_spamassassin_org) when present,
// else shareDir (/usr/share/spamassassin); then siteGlob's files
// (/etc/spamassassin/*.cf).
func DefaultPaths(updateRoot, shareDir, siteDir string) []string {
	var paths []string
	if dirs, _ := filepath.Glob(filepath.Join(updateRoot, "*", "updates_spamassassin_org")); len(dirs) > 0 {
		sort.Strings(dirs)
		paths = append(paths, dirs[len(dirs)-1])
	} else {
		paths = append(paths, shareDir)
	}
	return append(paths, siteDir)
}

// Parse reads one rule file's text (for tests and for operators' snippets).
func Parse(name string, r io.Reader, env Env) (*Ruleset, error) {
	rs := newRuleset()
	if err := rs.parse(name, r, env, 0); err != nil {
		return nil, err
	}
	rs.finish()
	return rs, nil
}

func newRuleset() *Ruleset {
	return &Ruleset{
		Defs:         map[string]*Def{},
		Ignored:      map[string]int{},
		replaceTags:  map[string]string{},
		replacePre:   map[string]string{},
		replacePost:  map[string]string{},
		replaceInter: map[string]string{},
		replaceRules: map[string]bool{},
		pending:      map[string]*Def{},
		Freemail:     map[string]bool{},
	}
}

const maxIncludeDepth = 8

func (rs *Ruleset) parseFile(path string, env Env, depth int) error {
	// Rule files are regular files: an include of a device or a FIFO
	// would block or never end.
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		if err == nil {
			err = fmt.Errorf("%s: not a regular file", path)
		}
		rs.Errors = append(rs.Errors, fmt.Errorf("sa: %w", err))
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		rs.Errors = append(rs.Errors, fmt.Errorf("sa: %w", err))
		return nil
	}
	defer f.Close()
	rs.Files = append(rs.Files, path)
	return rs.parse(path, f, env, depth)
}

type cond struct {
	active bool // this branch is taken
	parent bool // the enclosing block is active
}

func (rs *Ruleset) parse(name string, r io.Reader, env Env, depth int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var stack []cond
	active := func() bool { return len(stack) == 0 || stack[len(stack)-1].active }
	n := 0
	for sc.Scan() {
		n++
		line := stripComment(sc.Text())
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		dir, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '\t'); i >= 0 && (i < len(dir)) {
			dir, rest = line[:i], line[i+1:]
		}
		rest = strings.TrimSpace(rest)
		dir = strings.ToLower(dir)
		bad := func(err error) {
			rs.Errors = append(rs.Errors, &ParseError{File: name, Line: n, Text: line, Err: err})
		}
		switch dir {
		case "if", "ifplugin":
			v := false
			if active() {
				if dir == "ifplugin" {
					v = env.plugin(rest)
				} else {
					var err error
					v, err = evalIf(rest, env)
					if err != nil {
						bad(err)
					}
				}
			}
			stack = append(stack, cond{active: active() && v, parent: active()})
			continue
		case "else":
			if len(stack) == 0 {
				bad(fmt.Errorf("%w: else without if", ErrSyntax))
				continue
			}
			top := &stack[len(stack)-1]
			top.active = top.parent && !top.active
			continue
		case "endif":
			if len(stack) == 0 {
				bad(fmt.Errorf("%w: endif without if", ErrSyntax))
				continue
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if !active() {
			continue
		}
		if err := rs.directive(name, n, dir, rest, env, depth); err != nil {
			bad(err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("sa: %s: %w", name, err)
	}
	if len(stack) > 0 {
		rs.Errors = append(rs.Errors, &ParseError{File: name, Line: n, Err: fmt.Errorf("%w: missing endif", ErrSyntax)})
	}
	return nil
}

// stripComment removes a comment: '#' to the end of the line unless it is
// escaped with a backslash (rule regexes write \#).
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] != '\\') {
			return s[:i]
		}
	}
	return s
}

func (rs *Ruleset) def(name string, kind Kind, file string, line int, src string) *Def {
	d := rs.Defs[name]
	if d == nil {
		d = rs.pending[name]
		delete(rs.pending, name)
		if d == nil {
			d = &Def{Name: name, Tflags: map[string]string{}}
		}
		rs.Defs[name] = d
		rs.Order = append(rs.Order, name)
	} else {
		// A redefinition replaces the test, keeps score and description.
		keep := *d
		*d = Def{Name: name, Scores: keep.Scores, HasScore: keep.HasScore,
			Description: keep.Description, Tflags: keep.Tflags, Priority: keep.Priority}
	}
	d.Kind, d.File, d.Line, d.Source = kind, file, line, src
	return d
}

// attr returns the rule for a score/describe/tflags/priority line, which
// may come before the rule itself.
func (rs *Ruleset) attr(name string) *Def {
	if d := rs.Defs[name]; d != nil {
		return d
	}
	d := rs.pending[name]
	if d == nil {
		d = &Def{Name: name, Tflags: map[string]string{}}
		rs.pending[name] = d
	}
	return d
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (rs *Ruleset) directive(file string, line int, dir, rest string, env Env, depth int) error {
	switch dir {
	case "header", "body", "rawbody", "uri", "full", "mimeheader", "meta":
		name, body, _ := cutSpace(rest)
		if !validName(name) {
			return fmt.Errorf("%w: bad rule name %q", ErrSyntax, name)
		}
		if body == "" {
			return fmt.Errorf("%w: %s %s has no test", ErrSyntax, dir, name)
		}
		kind := map[string]Kind{"header": KindHeader, "body": KindBody, "rawbody": KindRawBody,
			"uri": KindURI, "full": KindFull, "mimeheader": KindMIMEHeader, "meta": KindMeta}[dir]
		d := &Def{Name: name, Kind: kind}
		if err := parseTest(d, body); err != nil {
			return err
		}
		nd := rs.def(name, kind, file, line, body)
		nd.Header, nd.Modifier, nd.Exists, nd.Negate = d.Header, d.Modifier, d.Exists, d.Negate
		nd.IfUnset, nd.HasIfUnset, nd.Pattern, nd.Eval, nd.Args, nd.Meta = d.IfUnset, d.HasIfUnset, d.Pattern, d.Eval, d.Args, d.Meta
	case "score":
		f := strings.Fields(rest)
		if len(f) < 2 || !validName(f[0]) {
			return fmt.Errorf("%w: score needs a rule and a value", ErrSyntax)
		}
		vals := f[1:]
		if vals[0] == "(" || strings.HasPrefix(vals[0], "(") {
			// "score X (1.0)" is a relative score in old files; take the number.
			for i := range vals {
				vals[i] = strings.Trim(vals[i], "()")
			}
		}
		var s [4]float64
		if len(vals) != 1 && len(vals) != 4 {
			return fmt.Errorf("%w: score %s needs 1 or 4 values", ErrSyntax, f[0])
		}
		for i, v := range vals {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%w: score %s: %q", ErrSyntax, f[0], v)
			}
			s[i] = x
		}
		if len(vals) == 1 {
			s = [4]float64{s[0], s[0], s[0], s[0]}
		}
		d := rs.attr(f[0])
		d.Scores, d.HasScore = s, true
	case "describe":
		name, text, _ := cutSpace(rest)
		if !validName(name) {
			return fmt.Errorf("%w: bad rule name %q", ErrSyntax, name)
		}
		rs.attr(name).Description = text
	case "tflags":
		f := strings.Fields(rest)
		if len(f) < 1 || !validName(f[0]) {
			return fmt.Errorf("%w: bad tflags", ErrSyntax)
		}
		d := rs.attr(f[0])
		d.Tflags = map[string]string{}
		for _, fl := range f[1:] {
			k, v, _ := strings.Cut(fl, "=")
			d.Tflags[k] = v
		}
	case "priority":
		f := strings.Fields(rest)
		if len(f) != 2 || !validName(f[0]) {
			return fmt.Errorf("%w: bad priority", ErrSyntax)
		}
		p, err := strconv.Atoi(f[1])
		if err != nil {
			return fmt.Errorf("%w: priority %s: %q", ErrSyntax, f[0], f[1])
		}
		rs.attr(f[0]).Priority = p
	case "lang":
		// Translations of descriptions and reports: not used.
		rs.Ignored["lang"]++
	case "require_version":
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if strings.TrimSpace(rest) == "@@VERSION@@" {
			// Debian ships the rule files unsubstituted; they are the
			// package's own version.
			break
		}
		if err != nil {
			return fmt.Errorf("%w: require_version %q", ErrSyntax, rest)
		}
		if v != env.version() {
			// SpamAssassin refuses such a file; the rules still apply here
			// as they are written for 4.x, but say so.
			if int(v) != int(env.version()) {
				rs.RequireVersionFailed = append(rs.RequireVersionFailed, file)
			}
		}
	case "include":
		if depth >= maxIncludeDepth {
			return ErrIncludeDepth
		}
		p := strings.TrimSpace(rest)
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		return rs.parseFile(p, env, depth+1)
	case "replace_tag", "replace_inter", "replace_pre", "replace_post":
		name, val, _ := cutSpace(rest)
		if name == "" {
			return fmt.Errorf("%w: %s needs a tag", ErrSyntax, dir)
		}
		switch dir {
		case "replace_tag":
			rs.replaceTags[name] = val
		case "replace_pre":
			rs.replacePre[name] = val
		case "replace_post":
			rs.replacePost[name] = val
		case "replace_inter":
			rs.replaceInter[name] = val
		}
	case "replace_rules":
		for _, n := range strings.Fields(rest) {
			rs.replaceRules[n] = true
		}
	case "freemail_domains":
		for _, d := range strings.Fields(rest) {
			rs.Freemail[strings.ToLower(d)] = true
		}
	case "replace_start", "replace_end":
		// Only the default < > delimiters are used by the shipped rules.
		rs.Ignored[dir]++
	default:
		rs.Ignored[dir]++
	}
	return nil
}

func cutSpace(s string) (string, string, bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.TrimSpace(s[i+1:]), true
}

// parseTest reads the test part of a rule definition.
func parseTest(d *Def, s string) error {
	if d.Kind == KindMeta {
		d.Meta = s
		return nil
	}
	if strings.HasPrefix(s, "eval:") {
		name, args, err := parseEval(s[len("eval:"):])
		if err != nil {
			return err
		}
		d.Eval, d.Args = name, args
		return nil
	}
	if d.Kind != KindHeader && d.Kind != KindMIMEHeader {
		d.Pattern = s
		return nil
	}
	if strings.HasPrefix(s, "exists:") {
		d.Exists = true
		d.Header = strings.TrimSpace(s[len("exists:"):])
		return nil
	}
	// header NAME Field[:mod] =~ /re/flags [ [if-unset: STRING] ]
	field, rest, _ := cutSpace(s)
	if h, mod, ok := strings.Cut(field, ":"); ok {
		field = h
		d.Modifier = strings.ToLower(mod)
	}
	d.Header = field
	switch {
	case strings.HasPrefix(rest, "=~"):
		rest = strings.TrimSpace(rest[2:])
	case strings.HasPrefix(rest, "!~"):
		d.Negate = true
		rest = strings.TrimSpace(rest[2:])
	default:
		return fmt.Errorf("%w: header test needs =~ or !~", ErrSyntax)
	}
	if i := strings.LastIndex(rest, "[if-unset:"); i >= 0 && strings.HasSuffix(rest, "]") {
		d.IfUnset = strings.TrimSpace(rest[i+len("[if-unset:") : len(rest)-1])
		d.HasIfUnset = true
		rest = strings.TrimSpace(rest[:i])
	}
	d.Pattern = rest
	return nil
}

// parseEval reads "name(arg, 'arg', ...)".
func parseEval(s string) (string, []string, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open <= 0 || !strings.HasSuffix(s, ")") {
		return "", nil, fmt.Errorf("%w: bad eval %q", ErrSyntax, s)
	}
	name := s[:open]
	if !validName(name) {
		return "", nil, fmt.Errorf("%w: bad eval name %q", ErrSyntax, name)
	}
	in := s[open+1 : len(s)-1]
	var args []string
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == ' ' || c == '\t' || c == ',':
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(in[i+1:], c)
			if j < 0 {
				return "", nil, fmt.Errorf("%w: unterminated string in eval %q", ErrSyntax, s)
			}
			args = append(args, in[i+1:i+1+j])
			i += j + 2
		default:
			j := strings.IndexByte(in[i:], ',')
			if j < 0 {
				j = len(in) - i
			}
			args = append(args, strings.TrimSpace(in[i:i+j]))
			i += j
		}
	}
	return name, args, nil
}

// finish applies ReplaceTags.
func (rs *Ruleset) finish() {
	// Tag values may use other tags: expand them first (a few rounds
	// reach every chain the shipped rules use; a cycle stops there).
	for round := 0; round < 4; round++ {
		changed := false
		for k, v := range rs.replaceTags {
			if strings.Contains(v, "<") {
				if nv := rs.expandTags(v, "", "", ""); nv != v {
					rs.replaceTags[k] = nv
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	for name := range rs.replaceRules {
		d := rs.Defs[name]
		if d == nil || d.Pattern == "" {
			continue
		}
		d.Pattern = rs.replace(d.Pattern)
	}
}

// replace expands <TAG> in a pattern (ReplaceTags plugin). A pattern picks
// its pre, post and inter snippets with <pre NAME>, <post NAME> and
// <inter NAME>: pre and post wrap each tag, inter goes between adjacent
// tags.
func (rs *Ruleset) replace(p string) string {
	var pre, post, inter string
	for _, k := range []struct {
		kind string
		m    map[string]string
		dst  *string
	}{{"pre", rs.replacePre, &pre}, {"post", rs.replacePost, &post}, {"inter", rs.replaceInter, &inter}} {
		for {
			i := strings.Index(p, "<"+k.kind+" ")
			if i < 0 {
				break
			}
			j := strings.IndexByte(p[i:], '>')
			if j < 0 {
				break
			}
			*k.dst = k.m[strings.TrimSpace(p[i+len(k.kind)+2:i+j])]
			p = p[:i] + p[i+j+1:]
		}
	}
	return rs.expandTags(p, pre, post, inter)
}

func (rs *Ruleset) expandTags(p, pre, post, inter string) string {
	var b strings.Builder
	prevTag := false
	for i := 0; i < len(p); {
		if p[i] == '<' {
			if j := strings.IndexByte(p[i:], '>'); j > 1 {
				if v, ok := rs.replaceTags[p[i+1:i+j]]; ok {
					if prevTag {
						b.WriteString(inter)
					}
					b.WriteString(pre)
					b.WriteString(v)
					b.WriteString(post)
					i += j + 1
					prevTag = true
					continue
				}
			}
		}
		prevTag = false
		b.WriteByte(p[i])
		i++
	}
	return b.String()
}
