package sa

import (
	"fmt"
	"strconv"
	"strings"
)

// expr is a parsed meta or if expression: Perl's arithmetic and boolean
// operators over numbers, rule names (their hit counts) and, in if lines,
// version, can(...) and plugin(...).
type expr struct {
	op   string // "num", "id", "call", "!", "neg", or a binary operator
	num  float64
	id   string // rule name, or the function of a call
	arg  string // argument of a call
	l, r *expr
}

type exprParser struct {
	toks []string
	pos  int
	err  error
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == '_') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == ':' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch two {
			case "&&", "||", ">=", "<=", "==", "!=":
				toks = append(toks, two)
				i += 2
				continue
			}
			if strings.IndexByte("()!+-*/<>", c) < 0 {
				return nil, fmt.Errorf("%w: unexpected %q in expression", ErrSyntax, c)
			}
			toks = append(toks, string(c))
			i++
		}
	}
	return toks, nil
}

func parseExpr(s string) (*expr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &exprParser{toks: toks}
	e := p.or()
	if p.err == nil && p.pos < len(p.toks) {
		p.err = fmt.Errorf("%w: unexpected %q in expression", ErrSyntax, p.toks[p.pos])
	}
	if p.err != nil {
		return nil, p.err
	}
	return e, nil
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *exprParser) bin(next func() *expr, ops ...string) *expr {
	l := next()
	for p.err == nil {
		t := p.peek()
		found := false
		for _, o := range ops {
			if t == o {
				found = true
			}
		}
		if !found {
			return l
		}
		p.pos++
		l = &expr{op: t, l: l, r: next()}
	}
	return l
}

func (p *exprParser) or() *expr  { return p.bin(p.and, "||") }
func (p *exprParser) and() *expr { return p.bin(p.cmp, "&&") }
func (p *exprParser) cmp() *expr {
	return p.bin(p.add, "==", "!=", "<", "<=", ">", ">=")
}
func (p *exprParser) add() *expr { return p.bin(p.mul, "+", "-") }
func (p *exprParser) mul() *expr { return p.bin(p.unary, "*", "/") }

const maxExprDepth = 200

func (p *exprParser) unary() *expr {
	if p.err != nil {
		return &expr{op: "num"}
	}
	switch p.peek() {
	case "!":
		p.pos++
		return &expr{op: "!", l: p.unary()}
	case "-":
		p.pos++
		return &expr{op: "neg", l: p.unary()}
	case "+":
		p.pos++
		return p.unary()
	}
	return p.primary()
}

func (p *exprParser) primary() *expr {
	t := p.peek()
	if t == "" {
		p.err = fmt.Errorf("%w: expression ends early", ErrSyntax)
		return &expr{op: "num"}
	}
	p.pos++
	switch {
	case t == "(":
		if p.pos > maxExprDepth*4 && strings.Count(strings.Join(p.toks[:p.pos], ""), "(") > maxExprDepth {
			p.err = fmt.Errorf("%w: expression nested too deep", ErrSyntax)
			return &expr{op: "num"}
		}
		e := p.or()
		if p.peek() != ")" {
			if p.err == nil {
				p.err = fmt.Errorf("%w: missing )", ErrSyntax)
			}
			return e
		}
		p.pos++
		return e
	case t[0] >= '0' && t[0] <= '9' || t[0] == '.':
		v, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
		if err != nil {
			p.err = fmt.Errorf("%w: bad number %q", ErrSyntax, t)
		}
		return &expr{op: "num", num: v}
	case t[0] == '_' || t[0] >= 'a' && t[0] <= 'z' || t[0] >= 'A' && t[0] <= 'Z':
		if p.peek() == "(" {
			// A call: can(...), plugin(...); the argument is a name.
			p.pos++
			arg := ""
			for p.peek() != ")" && p.peek() != "" {
				arg += p.toks[p.pos]
				p.pos++
			}
			if p.peek() != ")" {
				p.err = fmt.Errorf("%w: missing ) after %s(", ErrSyntax, t)
			}
			p.pos++
			return &expr{op: "call", id: t, arg: arg}
		}
		return &expr{op: "id", id: t}
	}
	p.err = fmt.Errorf("%w: unexpected %q in expression", ErrSyntax, t)
	return &expr{op: "num"}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// eval computes the expression; id returns a name's value, call a
// function's. Division by zero gives 0 (Perl dies; SpamAssassin then
// scores the meta 0).
func (e *expr) eval(id func(string) float64, call func(string, string) float64) float64 {
	switch e.op {
	case "num":
		return e.num
	case "id":
		return id(e.id)
	case "call":
		return call(e.id, e.arg)
	case "!":
		return b2f(e.l.eval(id, call) == 0)
	case "neg":
		return -e.l.eval(id, call)
	case "&&":
		if l := e.l.eval(id, call); l == 0 {
			return 0
		}
		return e.r.eval(id, call)
	case "||":
		if l := e.l.eval(id, call); l != 0 {
			return l
		}
		return e.r.eval(id, call)
	}
	l, r := e.l.eval(id, call), e.r.eval(id, call)
	switch e.op {
	case "+":
		return l + r
	case "-":
		return l - r
	case "*":
		return l * r
	case "/":
		if r == 0 {
			return 0
		}
		return l / r
	case "==":
		return b2f(l == r)
	case "!=":
		return b2f(l != r)
	case "<":
		return b2f(l < r)
	case "<=":
		return b2f(l <= r)
	case ">":
		return b2f(l > r)
	case ">=":
		return b2f(l >= r)
	}
	return 0
}

// names appends the identifiers the expression reads.
func (e *expr) names(out []string) []string {
	if e == nil {
		return out
	}
	if e.op == "id" {
		out = append(out, e.id)
	}
	return e.r.names(e.l.names(out))
}

// evalIf evaluates the condition of an if line.
func evalIf(s string, env Env) (bool, error) {
	e, err := parseExpr(s)
	if err != nil {
		return false, err
	}
	v := e.eval(func(name string) float64 {
		switch name {
		case "version":
			return env.version()
		case "perl_version":
			return 5.036
		}
		return 0
	}, func(fn, arg string) float64 {
		switch fn {
		case "can":
			return b2f(env.can(arg))
		case "plugin":
			return b2f(env.plugin(arg))
		}
		return 0
	})
	return v != 0, nil
}
