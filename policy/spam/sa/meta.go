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
