package convert

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// An expression computes a number from one CSV row: numbers, column names,
// + - * /, unary minus and parentheses, e.g. `Quantity * UnitPrice`. A
// column name is a run of letters, digits, '_' and '.', or any text between
// square brackets (`[Unit Price]`).
type expr interface {
	eval(row []string) (float64, error)
}

type num float64

func (n num) eval([]string) (float64, error) { return float64(n), nil }

type col struct {
	name string
	idx  int
}

func (c col) eval(row []string) (float64, error) {
	s := strings.TrimSpace(row[c.idx])
	if s == "" {
		return 0, fmt.Errorf("column %q is empty, want a number", c.name)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("column %q: %q is not a finite number", c.name, s)
	}
	return v, nil
}

type neg struct{ x expr }

func (n neg) eval(row []string) (float64, error) {
	v, err := n.x.eval(row)
	return -v, err
}

type binary struct {
	op   byte
	l, r expr
}

func (b binary) eval(row []string) (float64, error) {
	l, err := b.l.eval(row)
	if err != nil {
		return 0, err
	}
	r, err := b.r.eval(row)
	if err != nil {
		return 0, err
	}
	var v float64
	switch b.op {
	case '+':
		v = l + r
	case '-':
		v = l - r
	case '*':
		v = l * r
	default:
		if r == 0 {
			return 0, fmt.Errorf("division by zero")
		}
		v = l / r
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("the value overflows")
	}
	return v, nil
}

// maxExprDepth bounds nesting, so a hostile map cannot exhaust the stack.
const maxExprDepth = 64

type exprParser struct {
	s      string
	pos    int
	depth  int
	column func(name string) (int, error)
}

// parseExpr compiles s; column resolves a column name to its index.
func parseExpr(s string, column func(string) (int, error)) (expr, error) {
	p := &exprParser{s: s, column: column}
	e, err := p.sum()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.pos:], p.pos)
	}
	return e, nil
}

func (p *exprParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *exprParser) sum() (expr, error) {
	l, err := p.product()
	for err == nil {
		p.space()
		if p.pos >= len(p.s) || (p.s[p.pos] != '+' && p.s[p.pos] != '-') {
			return l, nil
		}
		op := p.s[p.pos]
		p.pos++
		var r expr
		if r, err = p.product(); err == nil {
			l = binary{op: op, l: l, r: r}
		}
	}
	return nil, err
}

func (p *exprParser) product() (expr, error) {
	l, err := p.factor()
	for err == nil {
		p.space()
		if p.pos >= len(p.s) || (p.s[p.pos] != '*' && p.s[p.pos] != '/') {
			return l, nil
		}
		op := p.s[p.pos]
		p.pos++
		var r expr
		if r, err = p.factor(); err == nil {
			l = binary{op: op, l: l, r: r}
		}
	}
	return nil, err
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func (p *exprParser) factor() (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxExprDepth {
		return nil, fmt.Errorf("nested more than %d levels", maxExprDepth)
	}
	p.space()
	if p.pos >= len(p.s) {
		return nil, fmt.Errorf("unexpected end, want a number, a column or '('")
	}
	switch c := p.s[p.pos]; {
	case c == '-':
		p.pos++
		x, err := p.factor()
		if err != nil {
			return nil, err
		}
		return neg{x}, nil
	case c == '(':
		p.pos++
		e, err := p.sum()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			return nil, fmt.Errorf("missing ')' at offset %d", p.pos)
		}
		p.pos++
		return e, nil
	case c == '[':
		end := strings.IndexByte(p.s[p.pos:], ']')
		if end < 0 {
			return nil, fmt.Errorf("missing ']' after offset %d", p.pos)
		}
		name := p.s[p.pos+1 : p.pos+end]
		p.pos += end + 1
		return p.col(name)
	case c >= '0' && c <= '9':
		start := p.pos
		for p.pos < len(p.s) && isNameByte(p.s[p.pos]) {
			p.pos++
		}
		v, err := strconv.ParseFloat(p.s[start:p.pos], 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("%q is not a finite number", p.s[start:p.pos])
		}
		return num(v), nil
	case isNameByte(c):
		start := p.pos
		for p.pos < len(p.s) && isNameByte(p.s[p.pos]) {
			p.pos++
		}
		return p.col(p.s[start:p.pos])
	default:
		return nil, fmt.Errorf("unexpected %q at offset %d", c, p.pos)
	}
}

func (p *exprParser) col(name string) (expr, error) {
	i, err := p.column(name)
	if err != nil {
		return nil, err
	}
	return col{name: name, idx: i}, nil
}
