package sa

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t testing.TB, src string) *Ruleset {
	t.Helper()
	rs, err := Parse("test.cf", strings.NewReader(src), Env{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		name, src string
		check     func(t *testing.T, d *Def)
	}{
		{"header", `header FOO Subject =~ /buy now/i`, func(t *testing.T, d *Def) {
			if d.Kind != KindHeader || d.Header != "Subject" || d.Pattern != "/buy now/i" || d.Negate {
				t.Errorf("%+v", d)
			}
		}},
		{"header negated with if-unset", `header FOO From:addr !~ /\@example\.com$/ [if-unset: none@x]`, func(t *testing.T, d *Def) {
			if !d.Negate || d.Modifier != "addr" || d.IfUnset != "none@x" || !d.HasIfUnset || d.Pattern != `/\@example\.com$/` {
				t.Errorf("%+v", d)
			}
		}},
		{"header raw", `header FOO Received:raw =~ /x/`, func(t *testing.T, d *Def) {
			if d.Modifier != "raw" || d.Header != "Received" {
				t.Errorf("%+v", d)
			}
		}},
		{"exists", `header FOO exists:X-Mailer`, func(t *testing.T, d *Def) {
			if !d.Exists || d.Header != "X-Mailer" {
				t.Errorf("%+v", d)
			}
		}},
		{"eval with args", `header FOO eval:check_illegal_chars('From','0.20', "2")`, func(t *testing.T, d *Def) {
			if d.Eval != "check_illegal_chars" || strings.Join(d.Args, "|") != "From|0.20|2" {
				t.Errorf("%+v", d)
			}
		}},
		{"body m{}", `body FOO m{a/b}i`, func(t *testing.T, d *Def) {
			if d.Kind != KindBody || d.Pattern != "m{a/b}i" {
				t.Errorf("%+v", d)
			}
		}},
		{"comment and escaped hash", "body FOO /a\\#b/ # comment", func(t *testing.T, d *Def) {
			if d.Pattern != `/a\#b/` {
				t.Errorf("%q", d.Pattern)
			}
		}},
		{"meta", `meta FOO (A && !B) || C > 2`, func(t *testing.T, d *Def) {
			if d.Kind != KindMeta || d.Meta != "(A && !B) || C > 2" {
				t.Errorf("%+v", d)
			}
		}},
		{"score before rule, 4 values", "score FOO 0 1.5 2.5 3.5\nbody FOO /x/", func(t *testing.T, d *Def) {
			if !d.HasScore || d.Scores != [4]float64{0, 1.5, 2.5, 3.5} {
				t.Errorf("%+v", d.Scores)
			}
		}},
		{"one score for all sets", "body FOO /x/\nscore FOO 2", func(t *testing.T, d *Def) {
			if d.Scores != [4]float64{2, 2, 2, 2} {
				t.Errorf("%+v", d.Scores)
			}
		}},
		{"describe tflags priority", "body FOO /x/\ndescribe FOO Says x\ntflags FOO multiple maxhits=3 nice\npriority FOO -100", func(t *testing.T, d *Def) {
			if d.Description != "Says x" || d.Tflags["maxhits"] != "3" || !hasFlag(d, "nice") || d.Priority != -100 {
				t.Errorf("%+v", d)
			}
		}},
		{"ifplugin taken", "ifplugin Mail::SpamAssassin::Plugin::HeaderEval\nbody FOO /x/\nendif", func(t *testing.T, d *Def) {
			if d == nil {
				t.Error("rule missing")
			}
		}},
		{"if version else", "if (version >= 9.0)\nbody FOO /new/\nelse\nbody FOO /old/\nendif", func(t *testing.T, d *Def) {
			if d.Pattern != "/old/" {
				t.Errorf("%q", d.Pattern)
			}
		}},
		{"if can and plugin", "if can(Mail::SpamAssassin::Conf::feature_bug6558_free) && !plugin(Mail::SpamAssassin::Plugin::Nope)\nbody FOO /x/\nendif", func(t *testing.T, d *Def) {
			if d == nil {
				t.Error("rule missing")
			}
		}},
		{"replace tags", "replace_tag A (?:[a@])\nreplace_inter W1 \\W?\nreplace_post P2 {1,2}\nbody FOO /<inter W1><post P2><A><A>/i\nreplace_rules FOO", func(t *testing.T, d *Def) {
			if d.Pattern != `/(?:[a@]){1,2}\W?(?:[a@]){1,2}/i` {
				t.Errorf("%q", d.Pattern)
			}
		}},
		{"nested tags", "replace_tag X (?:<Y>z)\nreplace_tag Y y\nbody FOO /<X>/\nreplace_rules FOO", func(t *testing.T, d *Def) {
			if d.Pattern != `/(?:yz)/` {
				t.Errorf("%q", d.Pattern)
			}
		}},
		{"redefinition keeps score", "body FOO /a/\nscore FOO 3\nbody FOO /b/", func(t *testing.T, d *Def) {
			if d.Pattern != "/b/" || d.Scores[0] != 3 {
				t.Errorf("%+v", d)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := parse(t, tc.src)
			if len(rs.Errors) > 0 {
				t.Fatalf("errors: %v", rs.Errors)
			}
			tc.check(t, rs.Defs["FOO"])
		})
	}
}

func TestParseSkipsInactiveBlocks(t *testing.T) {
	rs := parse(t, "ifplugin Mail::SpamAssassin::Plugin::Unknown\nbody FOO /x/\nif version >= 1\nbody BAR /y/\nendif\nendif\nbody BAZ /z/")
	if rs.Defs["FOO"] != nil || rs.Defs["BAR"] != nil || rs.Defs["BAZ"] == nil {
		t.Errorf("defs: %v", rs.Order)
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{
		"header FOO Subject /x/",     // no operator
		"score FOO abc",              // bad number
		"score FOO 1 2",              // 2 values
		"body",                       // no name
		"body F-O /x/",               // bad name
		"header FOO eval:nope",       // bad eval
		"endif",                      // stray endif
		"tflags",                     // empty
		"priority FOO x",             // bad priority
		"require_version abc",        // bad version
		"if (version >=\nbody X /x/", // bad expression, missing endif
		"meta FOO",                   // no test
		"header FOO exists:",         // accepted: empty name reads false
	} {
		rs, err := Parse("t.cf", strings.NewReader(src), Env{})
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if len(rs.Errors) == 0 && !strings.HasPrefix(src, "header FOO exists:") {
			t.Errorf("%q: no error reported", src)
		}
		for _, e := range rs.Errors {
			var pe *ParseError
			if !errors.As(e, &pe) {
				t.Errorf("%q: error %v is not a *ParseError", src, e)
			}
		}
	}
}

func TestLoadDirAndInclude(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "10_a.cf"), []byte("body A /a/\ninclude extra.inc\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "extra.inc"), []byte("body B /b/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "20_b.cf"), []byte("score A 2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("body C /c/\n"), 0o644)
	rs, err := Load([]string{dir, filepath.Join(dir, "missing")}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Defs["A"] == nil || rs.Defs["B"] == nil || rs.Defs["C"] != nil || rs.Defs["A"].Scores[0] != 2 {
		t.Errorf("defs %v", rs.Order)
	}
	if _, err := Load([]string{filepath.Join(dir, "none")}, Env{}); !errors.Is(err, ErrNoRules) {
		t.Errorf("err = %v, want ErrNoRules", err)
	}
}

func TestDefaultPaths(t *testing.T) {
	root := t.TempDir()
	if got := DefaultPaths(root, "/usr/share/spamassassin", "/etc/spamassassin"); got[0] != "/usr/share/spamassassin" {
		t.Errorf("without updates: %v", got)
	}
	up := filepath.Join(root, "4.000001", "updates_spamassassin_org")
	os.MkdirAll(up, 0o755)
	if got := DefaultPaths(root, "/usr/share/spamassassin", "/etc/spamassassin"); got[0] != up || got[1] != "/etc/spamassassin" {
		t.Errorf("with updates: %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"header FOO Subject =~ /x/i [if-unset: y]",
		"if (version >= 3.004)\nbody X /a/\nelse\nmeta Y (X + Z) > 1\nendif",
		"replace_tag A [a@]\nbody R /<A><inter W><A>/\nreplace_rules R",
		"score X 1 2 3 4\ntflags X multiple maxhits=5",
		"header A eval:check_header_count_range('Subject','2','999')",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		rs, err := Parse("fuzz.cf", strings.NewReader(src), Env{})
		if err != nil {
			return
		}
		// Whatever parses must compile or fail cleanly, and run.
		if e, err := Compile(rs, Options{}); err == nil {
			e.Check(FromRaw([]byte("Subject: a\r\n\r\nbody a@\r\n")), Input{})
		}
	})
}
