package sa

// metaExpr is a meta rule's expression with its rule names resolved to
// rule indexes once, at compile time: evaluating the metas of a message
// then reads the hit counts directly instead of looking names up.
type metaExpr struct {
	op   metaOp
	num  float64
	rule int32 // for metaRule
	l, r *metaExpr
}

type metaOp uint8

const (
	metaNum metaOp = iota
	metaRule
	metaNot
	metaNeg
	metaAnd
	metaOr
	metaAdd
	metaSub
	metaMul
	metaDiv
	metaEq
	metaNe
	metaLt
	metaLe
	metaGt
	metaGe
)

var metaOps = map[string]metaOp{
	"!": metaNot, "neg": metaNeg, "&&": metaAnd, "||": metaOr, "+": metaAdd, "-": metaSub,
	"*": metaMul, "/": metaDiv, "==": metaEq, "!=": metaNe, "<": metaLt, "<=": metaLe,
	">": metaGt, ">=": metaGe,
}

// compileMeta resolves x: index returns a name's rule index, or -1 for a
// name that reads 0 (not defined or not run). Calls read 0 in metas, as
// (*expr).eval's callers make them.
func compileMeta(x *expr, index func(string) int32) *metaExpr {
	if x == nil {
		return &metaExpr{op: metaNum}
	}
	switch x.op {
	case "num":
		return &metaExpr{op: metaNum, num: x.num}
	case "id":
		if i := index(x.id); i >= 0 {
			return &metaExpr{op: metaRule, rule: i}
		}
		return &metaExpr{op: metaNum}
	case "call":
		return &metaExpr{op: metaNum}
	}
	op, ok := metaOps[x.op]
	if !ok {
		return &metaExpr{op: metaNum}
	}
	m := &metaExpr{op: op, l: compileMeta(x.l, index)}
	if op != metaNot && op != metaNeg {
		m.r = compileMeta(x.r, index)
	}
	return m
}

// eval computes the expression over the hit counts, as (*expr).eval does.
func (m *metaExpr) eval(counts []int32) float64 {
	switch m.op {
	case metaNum:
		return m.num
	case metaRule:
		return float64(counts[m.rule])
	case metaNot:
		return b2f(m.l.eval(counts) == 0)
	case metaNeg:
		return -m.l.eval(counts)
	case metaAnd:
		if l := m.l.eval(counts); l == 0 {
			return 0
		}
		return m.r.eval(counts)
	case metaOr:
		if l := m.l.eval(counts); l != 0 {
			return l
		}
		return m.r.eval(counts)
	}
	l, r := m.l.eval(counts), m.r.eval(counts)
	switch m.op {
	case metaAdd:
		return l + r
	case metaSub:
		return l - r
	case metaMul:
		return l * r
	case metaDiv:
		if r == 0 {
			return 0
		}
		return l / r
	case metaEq:
		return b2f(l == r)
	case metaNe:
		return b2f(l != r)
	case metaLt:
		return b2f(l < r)
	case metaLe:
		return b2f(l <= r)
	case metaGt:
		return b2f(l > r)
	case metaGe:
		return b2f(l >= r)
	}
	return 0
}

// metaProg is the metas of an engine compiled, in their order, into one
// array of stack-machine instructions: walking each meta's tree of
// pointers, scattered over the heap, cost more than the rules it reads
// (some 8700 nodes for the Debian metas, on every message). && and ||
// jump over their right side as eval returns early.
type metaProg struct {
	code  []metaInst
	start []int32 // meta k's code is code[start[k]:start[k+1]]
	depth int     // the deepest stack any meta needs
}

type metaInst struct {
	op  metaOp
	arg int32 // metaRule: the rule; metaAnd, metaOr: where to jump
	num float64
}

// newMetaProg compiles the expressions of the metas (indexes into
// rules), in order.
func newMetaProg(rules []*rule, metas []int) *metaProg {
	p := &metaProg{}
	for _, i := range metas {
		p.start = append(p.start, int32(len(p.code)))
		p.depth = max(p.depth, p.emit(rules[i].mexpr))
	}
	p.start = append(p.start, int32(len(p.code)))
	return p
}

// emit appends m's code and returns the stack depth it needs.
func (p *metaProg) emit(m *metaExpr) int {
	switch m.op {
	case metaNum:
		p.code = append(p.code, metaInst{op: metaNum, num: m.num})
		return 1
	case metaRule:
		p.code = append(p.code, metaInst{op: metaRule, arg: m.rule})
		return 1
	case metaNot, metaNeg:
		d := p.emit(m.l)
		p.code = append(p.code, metaInst{op: m.op})
		return d
	case metaAnd, metaOr:
		// The left side's value, then the jump (taken: it is the
		// result, else dropped), then the right side's.
		dl := p.emit(m.l)
		j := len(p.code)
		p.code = append(p.code, metaInst{op: m.op})
		dr := p.emit(m.r)
		p.code[j].arg = int32(len(p.code))
		return max(dl, dr)
	}
	dl := p.emit(m.l)
	dr := p.emit(m.r)
	p.code = append(p.code, metaInst{op: m.op})
	return max(dl, 1+dr)
}

// eval returns meta k's value over the hit counts, as (*metaExpr).eval
// does; stack has room for p.depth values.
func (p *metaProg) eval(k int, counts []int32, stack []float64) float64 {
	sp := 0
	for pc, end := p.start[k], p.start[k+1]; pc < end; pc++ {
		in := &p.code[pc]
		switch in.op {
		case metaNum:
			stack[sp] = in.num
			sp++
			continue
		case metaRule:
			stack[sp] = float64(counts[in.arg])
			sp++
			continue
		case metaNot:
			stack[sp-1] = b2f(stack[sp-1] == 0)
			continue
		case metaNeg:
			stack[sp-1] = -stack[sp-1]
			continue
		case metaAnd:
			if stack[sp-1] == 0 {
				stack[sp-1] = 0
				pc = in.arg - 1
			} else {
				sp--
			}
			continue
		case metaOr:
			if stack[sp-1] != 0 {
				pc = in.arg - 1
			} else {
				sp--
			}
			continue
		}
		sp--
		l, r := stack[sp-1], stack[sp]
		var v float64
		switch in.op {
		case metaAdd:
			v = l + r
		case metaSub:
			v = l - r
		case metaMul:
			v = l * r
		case metaDiv:
			if r != 0 {
				v = l / r
			}
		case metaEq:
			v = b2f(l == r)
		case metaNe:
			v = b2f(l != r)
		case metaLt:
			v = b2f(l < r)
		case metaLe:
			v = b2f(l <= r)
		case metaGt:
			v = b2f(l > r)
		case metaGe:
			v = b2f(l >= r)
		}
		stack[sp-1] = v
	}
	return stack[0]
}
