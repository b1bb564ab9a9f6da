package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Config is the core of the TOML configuration. Check modules add their own
// sections (see Module); Load decodes both in one pass so that a key that
// nobody knows is an error.
type Config struct {
	// Mode: enforce, monitor, tempfail-all, accept-all.
	Mode Mode `toml:"mode"`
	// AuthservID names us in Authentication-Results (RFC 8601 §2.5).
	AuthservID string `toml:"authserv_id"`
	// LocalDomains are the domains this server is the destination for.
	LocalDomains []string `toml:"local_domains"`
	// TrustedNetworks are clients whose mail is outbound/internal.
	TrustedNetworks Networks `toml:"trusted_networks"`
	// MaxMessageSize bounds a message (header and body); larger ones are
	// not kept or checked and get MaxMessageSizeAction.
	MaxMessageSize       Size   `toml:"max_message_size"`
	MaxMessageSizeAction Action `toml:"max_message_size_action"`
	// ProtectedRecipients are local parts that content rules never block
	// for local domains (RFC 5321 §4.5.1: postmaster; RFC 2142: abuse).
	ProtectedRecipients []string `toml:"protected_recipients"`

	Message MessageConfig `toml:"message"`
	Replies RepliesConfig `toml:"replies"`
	Headers HeadersConfig `toml:"headers"`
	Score   ScoreConfig   `toml:"score"`
	Lists   ListsConfig   `toml:"lists"`
	Rules   []RuleConfig  `toml:"rule"`

	// Sections holds the decoded module sections by name (pointers to each
	// module's config type).
	Sections map[string]any `toml:"-"`
}

// MessageConfig bounds what one message may cost.
type MessageConfig struct {
	SpoolMemory Size   `toml:"spool_memory"` // bodies above this go to a temp file
	TempDir     string `toml:"temp_dir"`
	MaxHeaders  int    `toml:"max_headers"`
	// MaxHeaderSize bounds the header bytes of one message; past it the
	// header is not kept and the message gets max_message_size_action at
	// once.
	MaxHeaderSize Size `toml:"max_header_size"`
	// MemoryBudget bounds the body bytes held in memory by all messages in
	// flight together; past it bodies go to temp files at once.
	MemoryBudget Size `toml:"memory_budget"`
}

// RepliesConfig holds the generic SMTP replies; details go to the log.
type RepliesConfig struct {
	Reject     Reply  `toml:"reject"`
	Tempfail   Reply  `toml:"tempfail"`
	Oversize   Reply  `toml:"oversize"`
	Quarantine string `toml:"quarantine"` // reason given to the MTA's hold queue
}

// HeadersConfig names the header fields we add. An empty name disables one.
type HeadersConfig struct {
	Status  string `toml:"status"`  // e.g. X-Spam-Status: Yes, score=7.1 required=5.0 reasons=...
	Flag    string `toml:"flag"`    // e.g. X-Spam-Flag: YES, only at or above score.add_header
	Reasons bool   `toml:"reasons"` // list reason codes in the status header
}

// ScoreConfig maps the total score to actions.
type ScoreConfig struct {
	Thresholds
	// Domains overrides the thresholds per recipient domain. With several
	// recipients the most lenient applicable threshold wins, so that no
	// recipient is held to a stricter policy than its own.
	Domains map[string]Thresholds `toml:"domain"`
}

// Thresholds are score levels; 0 disables a level.
type Thresholds struct {
	AddHeader  float64 `toml:"add_header"`
	Quarantine float64 `toml:"quarantine"`
	Reject     float64 `toml:"reject"`
}

// ListsConfig holds allow and deny lists. Address patterns: "user@dom",
// "dom" (the whole domain), "*.dom" (subdomains), "*" wildcards anywhere.
type ListsConfig struct {
	AllowIPs        Networks `toml:"allow_ips"`
	DenyIPs         Networks `toml:"deny_ips"`
	AllowHELOs      []string `toml:"allow_helos"`
	DenyHELOs       []string `toml:"deny_helos"`
	AllowSenders    []string `toml:"allow_senders"`
	DenySenders     []string `toml:"deny_senders"`
	AllowRecipients []string `toml:"allow_recipients"`
	DenyRecipients  []string `toml:"deny_recipients"`
	DenyAction      Action   `toml:"deny_action"`
}

// RuleConfig is one [[rule]]: a regular expression on a header field or the
// body text giving a score or an action.
type RuleConfig struct {
	Name    string  `toml:"name"`
	Header  string  `toml:"header"`  // field name; "" with body = true
	Body    bool    `toml:"body"`    // match the decoded text parts
	Pattern string  `toml:"pattern"` // RE2 syntax
	Score   float64 `toml:"score"`
	Action  *Action `toml:"action"`
	Reply   *Reply  `toml:"reply"`
	Negate  bool    `toml:"negate"` // match when the pattern does NOT match

	re *regexp.Regexp
}

// Module is a config section and, with Build, the steps it makes. Every
// section has the same shape: Default returns a pointer to its config type
// with the defaults (DefaultX / Default naming aside, the only place
// defaults live); the type may implement Normalizer and Validator.
type Module struct {
	// Name is the TOML section and, for a check, the check's name.
	Name string
	// Default returns a pointer to the section's config with its defaults.
	Default func() any
	// Build makes the module's steps from its decoded section, with the
	// services its constructor was given. Nil for a section that builds
	// no step (a service's, such as [dns], or the daemon's).
	Build func(section any, env *Env) ([]Step, error)
}

// DefaultConfig returns the built-in defaults (what an empty file means).
func DefaultConfig() *Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return &Config{
		Mode:                 ModeEnforce,
		AuthservID:           host,
		TrustedNetworks:      Networks{Prefix(mustPrefix("127.0.0.0/8")), Prefix(mustPrefix("::1/128"))},
		ProtectedRecipients:  []string{"postmaster", "abuse"},
		MaxMessageSize:       64 << 20,
		MaxMessageSizeAction: ActionReject,
		Message: MessageConfig{
			SpoolMemory:   1 << 20,
			MaxHeaders:    1000,
			MaxHeaderSize: 1 << 20,
			MemoryBudget:  64 << 20,
		},
		Replies: RepliesConfig{
			Reject:     Reply{550, "5.7.1", "Message rejected by policy"},
			Tempfail:   Reply{451, "4.7.1", "Message deferred, please try again later"},
			Oversize:   Reply{552, "5.3.4", "Message too big"},
			Quarantine: "held by mailwarden",
		},
		Headers: HeadersConfig{Status: "X-Spam-Status", Flag: "X-Spam-Flag", Reasons: true},
		Score:   ScoreConfig{Thresholds: Thresholds{AddHeader: 5, Quarantine: 10, Reject: 20}},
		Lists:   ListsConfig{DenyAction: ActionReject},
	}
}

func mustPrefix(s string) netip.Prefix {
	p, err := ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}

// ConfigError is one problem in a config file, located by key and line.
type ConfigError struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key, "" when not tied to one
	Msg  string
	Err  error // a sentinel it is an instance of (ErrIncomplete), or nil
}

func (e *ConfigError) Unwrap() error { return e.Err }

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if e.File != "" || e.Line > 0 {
		b.WriteString(" ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in one file.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func (es ConfigErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// LoadFile reads and validates a config file.
func LoadFile(path string, modules []Module) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Load(path, data, modules)
}

// Load decodes and validates a config. Every error is a *ConfigError inside
// ConfigErrors. Error texts are redacted (see Redact): they may quote a
// Redis URL or a secret.
func Load(name string, data []byte, modules []Module) (*Config, error) {
	cfg, err := load(name, data, modules)
	var ces ConfigErrors
	switch {
	case err == nil:
		return cfg, nil
	case errors.As(err, &ces):
		for _, ce := range ces {
			ce.Msg = Redact(ce.Msg)
		}
		return nil, ces
	}
	return nil, errors.New(Redact(err.Error()))
}

// ErrIncomplete: a daemon config file that is empty or lacks what every
// deployment must state (see CheckComplete).
var ErrIncomplete = errors.New("policy: not a complete mailwarden config")

// CheckComplete refuses a file that the daemon must not run with. A
// complete config of this daemon is a TOML document that sets at least
// [listen] address: the one setting every deployment states (the MTA must
// be told the same socket). An empty file, one of comments only, or a
// fragment (another program's config, a half-written file) is refused,
// since every key it lacks would silently take its default, and a reload
// to it could turn scanning and limits off. `check`, `learn` and `eval`
// accept fragments; `serve -config` and a reload do not.
func CheckComplete(name string, data []byte) error {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil // Load reports syntax errors with their line
	}
	why := ""
	switch l, _ := doc["listen"].(map[string]any); {
	case len(doc) == 0:
		why = "empty file (no key set): a daemon config must set at least [listen] address"
	case l == nil:
		why = "no [listen] table: a daemon config must set at least [listen] address"
	default:
		if a, _ := l["address"].(string); a == "" {
			why = "no [listen] address: a daemon config must set it"
		}
	}
	if why == "" {
		return nil
	}
	return ConfigErrors{&ConfigError{File: name, Msg: why + "; refusing it", Err: ErrIncomplete}}
}

func load(name string, data []byte, modules []Module) (*Config, error) {
	cfg := DefaultConfig()
	cfg.Sections = map[string]any{}

	// One struct that holds the core config (embedded, so its keys stay at
	// the top level) and one field per module section, so that a single
	// decode knows every valid key.
	fields := []reflect.StructField{{Name: "Config", Type: reflect.TypeOf(Config{}), Anonymous: true}}
	seen := map[string]bool{}
	for i, m := range modules {
		if seen[m.Name] {
			return nil, fmt.Errorf("policy: module %q registered twice", m.Name)
		}
		seen[m.Name] = true
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("M%d", i),
			Type: reflect.TypeOf(m.Default()),
			Tag:  reflect.StructTag(`toml:"` + m.Name + `"`),
		})
	}
	root := reflect.New(reflect.StructOf(fields))
	root.Elem().Field(0).Set(reflect.ValueOf(*cfg))
	for i, m := range modules {
		root.Elem().Field(i + 1).Set(reflect.ValueOf(m.Default()))
	}

	md, err := toml.NewDecoder(strings.NewReader(string(data))).Decode(root.Interface())
	if err != nil {
		return nil, ConfigErrors{decodeError(name, data, err)}
	}
	*cfg = root.Elem().Field(0).Interface().(Config)
	cfg.Sections = map[string]any{}
	for i, m := range modules {
		cfg.Sections[m.Name] = root.Elem().Field(i + 1).Interface()
	}
	// A [score.domain."d"] table overrides only the levels it sets; the
	// others stay the global ones (a missing key read as 0 would silently
	// switch that level off for the domain).
	for d, t := range cfg.Score.Domains {
		if !md.IsDefined("score", "domain", d, "add_header") {
			t.AddHeader = cfg.Score.AddHeader
		}
		if !md.IsDefined("score", "domain", d, "quarantine") {
			t.Quarantine = cfg.Score.Quarantine
		}
		if !md.IsDefined("score", "domain", d, "reject") {
			t.Reject = cfg.Score.Reject
		}
		cfg.Score.Domains[d] = t
	}

	// Normalise first (defaults of array tables, case of names, compiled
	// patterns), then validate: Validate only reads.
	cfg.normalize()
	for _, m := range modules {
		if n, ok := cfg.Sections[m.Name].(Normalizer); ok {
			n.Normalize()
		}
	}

	var errs ConfigErrors
	for _, k := range md.Undecoded() {
		errs = append(errs, &ConfigError{File: name, Line: keyLine(data, k), Key: k.String(), Msg: "unknown key (a typo here would silently disable a policy)"})
	}
	for _, e := range cfg.validate() {
		e.File = name
		if e.Line == 0 && e.Key != "" {
			e.Line = keyLine(data, strings.Split(e.Key, "."))
		}
		errs = append(errs, e)
	}
	for _, m := range modules {
		if v, ok := cfg.Sections[m.Name].(Validator); ok {
			if err := v.Validate(); err != nil {
				for _, e := range splitErrors(err) {
					ce := &ConfigError{File: name, Key: m.Name, Msg: e.Error()}
					var kerr *KeyError
					if errors.As(e, &kerr) {
						ce.Key, ce.Msg = m.Name+"."+kerr.Key, kerr.Msg
					}
					ce.Line = keyLine(data, strings.Split(ce.Key, "."))
					errs = append(errs, ce)
				}
			}
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return cfg, nil
}

// Normalizer is implemented by sections that fill defaults Default cannot
// express (keys of array tables) or normalise values (case, parsing). Load
// calls Normalize before Validate, which must change nothing.
type Normalizer interface {
	Normalize()
}

// Validator is implemented by sections that check themselves. Errors name
// their key with KeyErr. Validate must not change the section.
type Validator interface {
	Validate() error
}

// KeyError is returned by a section's Validate to name the offending key
// (relative to the section).
type KeyError struct {
	Key string
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

// KeyErr is a shorthand for a *KeyError.
func KeyErr(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func decodeError(name string, data []byte, err error) *ConfigError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		ce := &ConfigError{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		if ce.Msg == "" {
			ce.Msg = pe.Error()
		}
		if ce.Line == 0 && ce.Key != "" {
			ce.Line = keyLine(data, strings.Split(ce.Key, "."))
		}
		return ce
	}
	// Type mismatches come as plain errors in the decoder's format:
	// toml: line 3 (last key "max_message_size"): incompatible types: ...
	if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
		key, uerr := strconv.Unquote(`"` + m[2] + `"`)
		if uerr != nil {
			key = m[2]
		}
		ce := &ConfigError{File: name, Key: key, Msg: m[3]}
		ce.Line, _ = strconv.Atoi(m[1])
		if ce.Line == 0 {
			ce.Line = keyLine(data, strings.Split(ce.Key, "."))
		}
		return ce
	}
	return &ConfigError{File: name, Msg: err.Error()}
}

var decodeErrRE = regexp.MustCompile(`(?s)^toml: (?:line (\d+) )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)

var tableRE = regexp.MustCompile(`^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?`)

// keyLine finds the line where a dotted key is set, by a light scan of the
// TOML text (the decoder does not report positions of valid keys). A
// segment "rule[2]" names the second [[rule]] table. It returns 0 when it
// cannot tell.
func keyLine(data []byte, key []string) int {
	if len(key) == 0 {
		return 0
	}
	lines := strings.Split(string(data), "\n")
	want := strings.Join(key, ".")
	table, plain := "", "" // the current table, with and without [N]
	arrays := map[string]int{}
	best := 0
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		if m := tableRE.FindStringSubmatch(t); m != nil {
			plain = unquoteKey(m[2])
			table = plain
			if m[1] == "[[" {
				arrays[plain]++
				table = fmt.Sprintf("%s[%d]", plain, arrays[plain])
			}
			// The table itself, or the table of a key that is not written
			// (a required key left out).
			if best == 0 && (table == want || plain == want || strings.HasPrefix(want, table+".")) {
				best = i + 1
			}
			continue
		}
		eq := strings.IndexByte(t, '=')
		if eq < 0 {
			continue
		}
		k := unquoteKey(strings.TrimSpace(t[:eq]))
		full, fullPlain := k, k
		if table != "" {
			full, fullPlain = table+"."+k, plain+"."+k
		}
		if full == want || fullPlain == want {
			return i + 1
		}
		// A key inside an array of tables reports as table.key.
		if best == 0 && (strings.HasPrefix(want, full+".") || strings.HasPrefix(want, fullPlain+".")) {
			best = i + 1
		}
	}
	return best
}

func unquoteKey(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// normalize puts the core keys in the form the checks compare: domains and
// list patterns lower-cased once here (not on every message), rule patterns
// compiled. A bad pattern stays uncompiled; validate reports it.
func (c *Config) normalize() {
	for i, d := range c.LocalDomains {
		c.LocalDomains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	domains := make(map[string]Thresholds, len(c.Score.Domains))
	for d, t := range c.Score.Domains {
		// Recipient domains are compared lower-cased (see message.Domain).
		domains[strings.ToLower(strings.TrimSuffix(d, "."))] = t
	}
	c.Score.Domains = domains
	for _, l := range [][]string{c.Lists.AllowHELOs, c.Lists.DenyHELOs, c.Lists.AllowSenders, c.Lists.DenySenders, c.Lists.AllowRecipients, c.Lists.DenyRecipients} {
		for i, p := range l {
			l[i] = normalizePattern(p)
		}
	}
	for i := range c.Rules {
		c.Rules[i].re, _ = regexp.Compile(c.Rules[i].Pattern)
	}
}

// validate checks the core keys after normalize; it changes nothing.
func (c *Config) validate() []*ConfigError {
	var errs []*ConfigError
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.AuthservID == "" || strings.ContainsAny(c.AuthservID, " ;()\"\r\n") {
		bad("authserv_id", "must be a host name without spaces, ';', '(' or quotes")
	}
	for i, d := range c.LocalDomains {
		if d == "" || strings.ContainsAny(d, "@ \t") {
			bad("local_domains", "entry %d (%q) is not a domain", i+1, d)
		}
	}
	if c.MaxMessageSize <= 0 {
		bad("max_message_size", "must be positive")
	}
	if c.Message.MaxHeaders <= 0 {
		bad("message.max_headers", "must be positive")
	}
	if c.Message.MaxHeaderSize <= 0 {
		bad("message.max_header_size", "must be positive")
	}
	if c.Message.MemoryBudget < 0 {
		bad("message.memory_budget", "must not be negative")
	}
	if c.Replies.Reject.Code/100 != 5 {
		bad("replies.reject", "must be a 5xx reply")
	}
	if c.Replies.Oversize.Code/100 != 5 && c.Replies.Oversize.Code/100 != 4 {
		bad("replies.oversize", "must be a 4xx or 5xx reply")
	}
	if c.Replies.Tempfail.Code/100 != 4 {
		bad("replies.tempfail", "must be a 4xx reply")
	}
	for _, h := range []struct{ k, v string }{{"headers.status", c.Headers.Status}, {"headers.flag", c.Headers.Flag}} {
		if h.v != "" && !message.ValidFieldName(h.v) {
			bad(h.k, "%q is not a valid header field name", h.v)
		}
	}
	checkThresholds := func(key string, t Thresholds) {
		if t.Quarantine > 0 && t.Reject > 0 && t.Reject < t.Quarantine {
			bad(key, "reject (%g) is below quarantine (%g)", t.Reject, t.Quarantine)
		}
	}
	checkThresholds("score", c.Score.Thresholds)
	for d, t := range c.Score.Domains {
		checkThresholds("score.domain."+d, t)
	}
	for _, l := range []struct {
		k string
		v []string
	}{{"lists.allow_helos", c.Lists.AllowHELOs}, {"lists.deny_helos", c.Lists.DenyHELOs}, {"lists.allow_senders", c.Lists.AllowSenders},
		{"lists.deny_senders", c.Lists.DenySenders}, {"lists.allow_recipients", c.Lists.AllowRecipients}, {"lists.deny_recipients", c.Lists.DenyRecipients}} {
		for _, p := range l.v {
			if p == "" {
				bad(l.k, "empty pattern")
			} else if _, err := path.Match(p, ""); err != nil {
				// A broken wildcard would never match: a silently dead entry.
				bad(l.k, "%q is not a valid wildcard pattern (unclosed [ or trailing \\)", p)
			}
		}
	}
	names := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		key := fmt.Sprintf("rule[%d]", i+1)
		if r.Name == "" || strings.ContainsAny(r.Name, " ,;\t") {
			bad(key+".name", "every rule needs a name without spaces or commas (it becomes the reason code rule-NAME)")
		} else if names[r.Name] {
			bad(key+".name", "duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		if (r.Header == "") == !r.Body {
			bad(key, "set exactly one of header = \"Field\" or body = true")
		} else if r.Header != "" && !message.ValidFieldName(r.Header) {
			bad(key+".header", "%q is not a header field name (it would never match)", r.Header)
		}
		_, err := regexp.Compile(r.Pattern)
		switch {
		case r.Pattern == "":
			bad(key+".pattern", "a rule needs a pattern")
		case err != nil:
			bad(key+".pattern", "bad regular expression: %v", err)
		}
		if r.Action == nil && r.Score == 0 {
			bad(key, "a rule needs a score or an action")
		}
	}
	return errs
}

// IsLocalDomain reports whether d (any case) is one of LocalDomains.
func (c *Config) IsLocalDomain(d string) bool {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for _, l := range c.LocalDomains {
		if d == l {
			return true
		}
	}
	return false
}

// IsProtected reports whether rcpt is postmaster@ or abuse@ (or another
// configured local part) of a local domain. With no local domains
// configured, the local part alone decides.
func (c *Config) IsProtected(rcpt string) bool {
	lp := strings.ToLower(message.LocalPart(rcpt))
	if i := strings.IndexByte(lp, '+'); i > 0 {
		lp = lp[:i]
	}
	for _, p := range c.ProtectedRecipients {
		if strings.EqualFold(lp, p) {
			return len(c.LocalDomains) == 0 || !strings.Contains(rcpt, "@") || c.IsLocalDomain(message.Domain(rcpt))
		}
	}
	return false
}

// ThresholdsFor returns the score levels for a message to rcpts: the
// [score] levels, or a recipient domain's override. With several
// recipients the most lenient level applies (0 means "never"), so that no
// recipient is held to a stricter policy than its own.
func (c *Config) ThresholdsFor(rcpts []string) Thresholds {
	t := c.Score.Thresholds
	if len(c.Score.Domains) == 0 || len(rcpts) == 0 {
		return t
	}
	lenient := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return max(a, b)
	}
	var out Thresholds
	for i, r := range rcpts {
		d, ok := c.Score.Domains[message.Domain(r)]
		if !ok {
			d = t
		}
		if i == 0 {
			out = d
			continue
		}
		out = Thresholds{lenient(out.AddHeader, d.AddHeader), lenient(out.Quarantine, d.Quarantine), lenient(out.Reject, d.Reject)}
	}
	return out
}

// SectionOf returns the decoded section called name as T (the pointer type
// its module's Default returns), or the zero T when cfg has none. The
// package that owns a section wraps it in a typed accessor (for example
// dns.ConfigOf); other packages never read a section by name.
func SectionOf[T any](cfg *Config, name string) T {
	var zero T
	if cfg == nil {
		return zero
	}
	v, _ := cfg.Sections[name].(T)
	return v
}
