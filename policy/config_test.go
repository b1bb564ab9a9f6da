package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSection is a module's config section for the tests.
type fakeSection struct {
	StepConfig
	Threshold int      `toml:"threshold"`
	Servers   []string `toml:"servers"`
}

func (s *fakeSection) Validate() error {
	var errs []error
	if s.Threshold < 0 {
		errs = append(errs, KeyErr("threshold", "must not be negative (got %d)", s.Threshold))
	}
	for _, x := range s.Servers {
		if x == "" {
			errs = append(errs, KeyErr("servers", "empty server"))
		}
	}
	if s.Threshold == 99 {
		errs = append(errs, errors.New("plain error without a key"))
	}
	return errors.Join(errs...)
}

func fakeModule() Module {
	return Module{
		Name:    "fake",
		Default: func() any { return &fakeSection{StepConfig: DefaultStep(), Threshold: 3} },
		Build:   func(any, *Env) ([]Step, error) { return nil, nil },
	}
}

// loadErrs loads text and returns its ConfigErrors (failing if it loads).
func loadErrs(t *testing.T, text string, mods ...Module) ConfigErrors {
	t.Helper()
	cfg, err := Load("test.toml", []byte(text), mods)
	if err == nil {
		t.Fatalf("config loaded, want an error:\n%s\n%+v", text, cfg)
	}
	var ces ConfigErrors
	if !errors.As(err, &ces) || len(ces) == 0 {
		t.Fatalf("error %T %v is not ConfigErrors", err, err)
	}
	return ces
}

func TestLoadEmptyIsDefault(t *testing.T) {
	cfg, err := Load("empty.toml", nil, []Module{fakeModule()})
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if cfg.Mode != ModeEnforce || cfg.MaxMessageSize != d.MaxMessageSize || cfg.Replies.Reject != d.Replies.Reject ||
		cfg.Score.Reject != 20 || cfg.Lists.DenyAction != ActionReject || cfg.AuthservID == "" {
		t.Errorf("empty config is not the default: %+v", cfg)
	}
	sec, ok := cfg.Sections["fake"].(*fakeSection)
	if !ok || sec.Threshold != 3 || !sec.Enabled {
		t.Errorf("module section defaults: %#v", cfg.Sections["fake"])
	}
}

func TestLoadValues(t *testing.T) {
	text := `
mode = "monitor"
authserv_id = "mx.example.org"
local_domains = ["Example.ORG."]
trusted_networks = ["10.0.0.0/8"]
max_message_size = "10MB"
max_message_size_action = "tempfail"

[message]
spool_memory = "256KB"

[replies]
reject = "554 5.7.0 Nope"

[score]
add_header = 3
reject = 0

[score.domain."Lenient.TEST."]
quarantine = 50

[lists]
deny_senders = ["*@spam.test"]
deny_action = "discard"

[[rule]]
name = "subj"
header = "Subject"
pattern = "(?i)win"
score = 2.5

[[rule]]
name = "body"
body = true
pattern = "click"
action = "quarantine"
reply = "550 5.7.1 x"

[fake]
threshold = 7
servers = ["a", "b"]
timeout = "2s"
on_error = "accept"
`
	cfg, err := Load("v.toml", []byte(text), []Module{fakeModule()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeMonitor || cfg.AuthservID != "mx.example.org" || cfg.LocalDomains[0] != "example.org" {
		t.Errorf("top level: %+v", cfg)
	}
	if cfg.MaxMessageSize != 10<<20 || cfg.MaxMessageSizeAction != ActionTempfail || cfg.Message.SpoolMemory != 256<<10 {
		t.Errorf("message: %+v", cfg.Message)
	}
	if cfg.Replies.Reject != (Reply{554, "5.7.0", "Nope"}) || cfg.Replies.Tempfail.Code != 451 {
		t.Errorf("replies: %+v", cfg.Replies)
	}
	if cfg.Score.AddHeader != 3 || cfg.Score.Quarantine != 10 || cfg.Score.Reject != 0 || cfg.Score.Domains["lenient.test"].Quarantine != 50 {
		t.Errorf("score: %+v", cfg.Score)
	}
	if cfg.Lists.DenyAction != ActionDiscard || len(cfg.Lists.DenySenders) != 1 {
		t.Errorf("lists: %+v", cfg.Lists)
	}
	if len(cfg.Rules) != 2 || cfg.Rules[0].re == nil || *cfg.Rules[1].Action != ActionQuarantine || cfg.Rules[1].Reply.Code != 550 {
		t.Errorf("rules: %+v", cfg.Rules)
	}
	sec := cfg.Sections["fake"].(*fakeSection)
	if sec.Threshold != 7 || len(sec.Servers) != 2 || sec.Timeout.D().Seconds() != 2 || sec.OnError != ActionAccept || !sec.Enabled {
		t.Errorf("fake section: %+v", sec)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		key  string
		line int
		msg  string // substring
	}{
		{"unknown top-level key", "mode = \"enforce\"\nmdoe = \"monitor\"\n", "mdoe", 2, "unknown key"},
		{"unknown key in a table", "[lists]\ndeny_ips = []\ndeny_sender = [\"x@y.test\"]\n", "lists.deny_sender", 3, "unknown key"},
		{"unknown table", "\n[lists]\ndeny_ips = []\n\n[lisen]\nport = 1\n", "lisen.port", 6, "unknown key"},
		{"unknown key in a rule", "[[rule]]\nname = \"a\"\nheader = \"Subject\"\npattern = \"x\"\nscore = 1\nscroe = 2\n", "rule.scroe", 6, "unknown key"},
		{"unknown key in a module", "[fake]\nthreshold = 1\nthreshhold = 2\n", "fake.threshhold", 3, "unknown key"},
		{"mode of the wrong type", "\n\nmode = 3\n", "mode", 3, "unknown mode"},
		{"unknown mode", "mode = \"off\"\n", "mode", 1, "unknown mode"},
		{"size of the wrong type", "max_message_size = true\n", "max_message_size", 1, "bad size"},
		{"int for a string list", "local_domains = 3\n", "local_domains", 1, "incompatible types"},
		{"string for an int", "[message]\n\nmax_headers = \"many\"\n", "message.max_headers", 3, "incompatible types"},
		{"bad regexp in the second rule", "[[rule]]\nname = \"a\"\nbody = true\npattern = \"a\"\nscore = 1\n[[rule]]\nname = \"b\"\nbody = true\npattern = \"[z-a]\"\nscore = 1\n", "rule[2].pattern", 9, "regular expression"},
		{"type error under a quoted key", "[score.domain.\"a.test\"]\n\nreject = \"x\"\n", `score.domain."a.test".reject`, 3, "incompatible types"},
		{"bad action", "[lists]\ndeny_action = \"bounce\"\n", "lists.deny_action", 2, "unknown action"},
		{"bad network", "[lists]\n\ndeny_ips = [\"192.0.2.300\"]\n", "lists.deny_ips", 3, "bad address"},
		{"reject reply without 5xx", "[replies]\nreject = \"451 4.7.1 later\"\n", "replies.reject", 2, "5xx"},
		{"tempfail reply with 5xx", "[replies]\n\ntempfail = \"550 5.7.1 no\"\n", "replies.tempfail", 3, "4xx"},
		{"reply that is not one", "[replies]\nreject = \"no way\"\n", "replies.reject", 2, "4xx or 5xx"},
		{"bad header name", "[headers]\nstatus = \"X Spam\"\n", "headers.status", 2, "header field name"},
		{"bad authserv-id", "authserv_id = \"mx example\"\n", "authserv_id", 1, "host name"},
		{"bad local domain", "local_domains = [\"user@example.org\"]\n", "local_domains", 1, "not a domain"},
		{"zero max size", "max_message_size = 0\n", "max_message_size", 1, "positive"},
		{"thresholds reversed", "[score]\nquarantine = 10.0\nreject = 5.0\n", "score", 1, "below quarantine"},
		{"domain thresholds reversed", "[score.domain.\"a.test\"]\nquarantine = 9.0\nreject = 8.0\n", "score.domain.a.test", 1, "below quarantine"},
		{"broken wildcard", "[lists]\n\nallow_senders = [\"[abc@example.org\"]\n", "lists.allow_senders", 3, "not a valid wildcard"},
		{"broken HELO wildcard", "[lists]\ndeny_helos = [\"mx\\\\\"]\n", "lists.deny_helos", 2, "not a valid wildcard"},
		{"rule on a bad field name", "[[rule]]\nname = \"r\"\nheader = \"Sub ject\"\npattern = \"a\"\nscore = 1\n", "rule[1].header", 3, "not a header field name"},
		{"empty list pattern", "[lists]\ndeny_senders = [\"ok@x.test\", \" \"]\n", "lists.deny_senders", 2, "empty pattern"},
		{"bad regexp", "[[rule]]\nname = \"r\"\nheader = \"Subject\"\npattern = \"(unclosed\"\nscore = 1\n", "rule[1].pattern", 4, "regular expression"},
		{"empty regexp", "[[rule]]\nname = \"r\"\nheader = \"Subject\"\nscore = 1\n", "rule[1].pattern", 1, "needs a pattern"},
		{"duplicate rule names", "[[rule]]\nname = \"r\"\nheader = \"Subject\"\npattern = \"a\"\nscore = 1\n\n[[rule]]\nname = \"r\"\nbody = true\npattern = \"b\"\nscore = 1\n", "rule[2].name", 8, "duplicate rule name"},
		{"rule without a name", "[[rule]]\nheader = \"Subject\"\npattern = \"a\"\nscore = 1\n", "rule[1].name", 1, "needs a name"},
		{"rule name with a comma", "[[rule]]\nname = \"a,b\"\nheader = \"Subject\"\npattern = \"a\"\nscore = 1\n", "rule[1].name", 0, "needs a name"},
		{"rule with header and body", "[[rule]]\nname = \"r\"\nheader = \"Subject\"\nbody = true\npattern = \"a\"\nscore = 1\n", "rule[1]", 1, "exactly one"},
		{"rule with neither", "[[rule]]\nname = \"r\"\npattern = \"a\"\nscore = 1\n", "rule[1]", 1, "exactly one"},
		{"rule without effect", "[[rule]]\nname = \"r\"\nbody = true\npattern = \"a\"\n", "rule[1]", 1, "score or an action"},
		{"rule with a bad reply", "[[rule]]\nname = \"r\"\nbody = true\npattern = \"a\"\naction = \"reject\"\nreply = \"200 ok\"\n", "rule.reply", 6, "4xx or 5xx"},
		{"module KeyErr", "\n[fake]\nthreshold = -1\n", "fake.threshold", 3, "must not be negative"},
		{"module KeyErr on a list", "[fake]\nservers = [\"a\", \"\"]\n", "fake.servers", 2, "empty server"},
		{"module plain error", "[fake]\nthreshold = 99\n", "fake", 1, "plain error without a key"},
		{"module step key", "[fake]\ntimeout = \"never\"\n", "fake.timeout", 2, "bad duration"},
		{"module on_error", "[fake]\non_error = \"explode\"\n", "fake.on_error", 2, "unknown action"},
		{"broken syntax: missing quote", "mode = \"enforce\"\n[lists]\ndeny_ips = [\"1.2.3.4]\n", "", 3, ""},
		{"broken syntax: double equals", "\n\n\nmode = = 1\n", "", 4, ""},
		{"broken syntax: unclosed table", "[lists\ndeny_ips = []\n", "", 2, "end table name"}, // the parser reports where it noticed
		{"broken syntax: duplicate key", "mode = \"enforce\"\nmode = \"monitor\"\n", "", 2, ""},
		{"broken syntax: NUL", "mode = \"enforce\"\n\x00\n", "", 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ces := loadErrs(t, tc.text, fakeModule())
			var found *ConfigError
			for _, e := range ces {
				if tc.key == "" || e.Key == tc.key {
					found = e
					break
				}
			}
			if found == nil {
				t.Fatalf("no error for key %q in %v", tc.key, ces)
			}
			if found.File != "test.toml" {
				t.Errorf("File = %q", found.File)
			}
			if tc.line != 0 && found.Line != tc.line {
				t.Errorf("error %q: line %d, want %d", found, found.Line, tc.line)
			}
			if tc.msg != "" && !strings.Contains(found.Msg, tc.msg) {
				t.Errorf("error %q does not say %q", found, tc.msg)
			}
			s := found.Error()
			if !strings.HasPrefix(s, "config: test.toml:") || (tc.key != "" && !strings.Contains(s, tc.key)) {
				t.Errorf("Error() = %q: want file, line and key", s)
			}
		})
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	text := "mode = \"enforce\"\n[lists]\ndeny_sender = []\n[headers]\nstatus = \"X Spam\"\nflag = \"X: Flag\"\n"
	ces := loadErrs(t, text)
	keys := map[string]int{}
	for _, e := range ces {
		keys[e.Key] = e.Line
	}
	if keys["lists.deny_sender"] != 3 || keys["headers.status"] != 5 || keys["headers.flag"] != 6 || len(ces) != 3 {
		t.Errorf("errors: %v", ces)
	}
	for i := 1; i < len(ces); i++ {
		if ces[i].Line < ces[i-1].Line {
			t.Errorf("errors are not sorted by line: %v", ces)
		}
	}
	if !strings.Contains(ces.Error(), "\n") {
		t.Error("ConfigErrors.Error joins one error per line")
	}
}

func TestLoadModules(t *testing.T) {
	if _, err := Load("x", nil, []Module{fakeModule(), fakeModule()}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a module registered twice: %v", err)
	}
	// Without the module, its section is an unknown key.
	ces := loadErrs(t, "[fake]\nthreshold = 1\n")
	if len(ces) != 2 || ces[0].Key != "fake" || ces[0].Line != 1 || ces[1].Key != "fake.threshold" || ces[1].Line != 2 {
		t.Errorf("section of a missing module: %v", ces)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadFile(filepath.Join(dir, "missing.toml"), nil); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "bad.toml")
	os.WriteFile(p, []byte("mode = \"enforce\"\nbogus = 1\n"), 0o644)
	_, err := LoadFile(p, nil)
	if err == nil || !strings.Contains(err.Error(), p+":2: bogus: unknown key") {
		t.Errorf("bad file: %v", err)
	}
	os.WriteFile(p, []byte("mode = \"monitor\"\n"), 0o644)
	cfg, err := LoadFile(p, nil)
	if err != nil || cfg.Mode != ModeMonitor {
		t.Errorf("good file: %v %v", cfg, err)
	}
}

func TestConfigErrorString(t *testing.T) {
	for _, tc := range []struct {
		e    ConfigError
		want string
	}{
		{ConfigError{File: "f", Line: 3, Key: "k", Msg: "m"}, "config: f:3: k: m"},
		{ConfigError{File: "f", Msg: "m"}, "config: f: m"},
		{ConfigError{Line: 2, Msg: "m"}, "config: 2: m"},
		{ConfigError{Key: "k", Msg: "m"}, "config: k: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestKeyLine(t *testing.T) {
	text := []byte(`# comment with key = 1
mode = "enforce"
[lists]
  deny_ips = []   # indented
[score.domain."a.test"]
reject = 1
[[rule]]
name = "x"
[[rule]]
name = "y"
"quoted" = 2
`)
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"mode", 2},
		{"lists.deny_ips", 4},
		{"lists", 3},
		{"score.domain.a.test.reject", 6},
		{"score.domain.a.test", 5},
		{"rule.name", 8},
		{"rule[1].name", 8},
		{"rule[2].name", 10},
		{"rule[2]", 9},
		{"rule[2].missing", 9}, // a required key left out: its table
		{"rule[3].name", 0},
		{"quoted", 0}, // top-level "quoted" does not exist: it is inside [[rule]]
		{"rule.quoted", 11},
		{"nothing.here", 0},
		{"", 0},
	} {
		var k []string
		if tc.key != "" {
			k = strings.Split(tc.key, ".")
		}
		if got := keyLine(text, k); got != tc.want {
			t.Errorf("keyLine(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestLoadDomainThresholdsInherit(t *testing.T) {
	cfg, err := Load("d.toml", []byte(`
[score]
add_header = 4.0
quarantine = 9.0
reject = 19.0

[score.domain."partial.test"]
reject = 30.0

[score.domain."off.test"]
quarantine = 0.0
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Score.Domains["partial.test"]; got != (Thresholds{AddHeader: 4, Quarantine: 9, Reject: 30}) {
		t.Errorf("partial override: %+v", got)
	}
	if got := cfg.Score.Domains["off.test"]; got != (Thresholds{AddHeader: 4, Quarantine: 0, Reject: 19}) {
		t.Errorf("explicit 0 switches a level off: %+v", got)
	}
	// An inherited level below the domain's own is still checked.
	ces := loadErrs(t, "[score]\nreject = 20.0\n[score.domain.\"x.test\"]\nquarantine = 25.0\n")
	if ces[0].Key != "score.domain.x.test" {
		t.Errorf("errors %v", ces)
	}
}

// Validate only reads: normalising (case, compiled patterns) is its own
// step, run by Load before it.
func TestValidateDoesNotMutate(t *testing.T) {
	c := DefaultConfig()
	c.LocalDomains = []string{"Example.ORG."}
	c.Lists.DenySenders = []string{"*@Spammer.TEST"}
	c.Score.Domains = map[string]Thresholds{"Big.Example": {Reject: 50}}
	c.Rules = []RuleConfig{{Name: "r", Header: "Subject", Pattern: "x", Score: 1}}
	if errs := c.validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if c.LocalDomains[0] != "Example.ORG." || c.Lists.DenySenders[0] != "*@Spammer.TEST" || c.Rules[0].re != nil {
		t.Fatalf("validate changed the config: %v %v %v", c.LocalDomains, c.Lists.DenySenders, c.Rules[0].re)
	}
	if _, ok := c.Score.Domains["Big.Example"]; !ok {
		t.Fatal("validate rewrote score.domain keys")
	}
	c.normalize()
	if c.LocalDomains[0] != "example.org" || c.Lists.DenySenders[0] != "*@spammer.test" || c.Rules[0].re == nil {
		t.Fatalf("normalize: %v %v %v", c.LocalDomains, c.Lists.DenySenders, c.Rules[0].re)
	}
	if _, ok := c.Score.Domains["big.example"]; !ok {
		t.Fatal("normalize did not lower-case score.domain keys")
	}
}
