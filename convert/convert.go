// Package convert owns turning tabular logs into healthscore's input events:
// `healthscore convert csv --map FILE`. A Map (YAML) names the customer and
// time columns, computes the value with a small arithmetic expression,
// chooses the type by rules, and may group rows (e.g. the lines of an
// invoice) into one event. Bad rows are reported as FILE:LINE: reason and
// never stop the run.
//
// Non-goals: scoring (package offline) and formats other than CSV.
package convert

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

// Event is one output line, in the input event schema of docs/model.md.
type Event struct {
	ID         string  `json:"id,omitempty"`
	CustomerID string  `json:"customer_id"`
	Type       string  `json:"type"`
	Time       string  `json:"time"`
	Value      float64 `json:"value"`
	Segment    string  `json:"segment,omitempty"`
}

// Stats counts what a conversion did.
type Stats struct {
	Rows       int // data rows read (headers excluded)
	Events     int // events written
	NoCustomer int // rows skipped because the customer column was empty
	BadRows    int // rows reported to OnError
}

// Options control a conversion.
type Options struct {
	// OnError receives every bad row; it may be nil.
	OnError func(*offline.LineError)
	// Progress, when set, is called every ProgressEvery rows.
	Progress      func(rows int)
	ProgressEvery int
}

// plan is a Map bound to one file's header.
type plan struct {
	customer, timeCol, group, id, segment int // -1 when absent
	value                                 expr
	rules                                 []boundRule
	loc                                   *time.Location
}

type boundRule struct {
	col int
	Rule
}

func (m *Map) bind(header []string) (*plan, error) {
	idx := make(map[string]int, len(header))
	dup := map[string]bool{}
	for i, h := range header {
		if _, ok := idx[h]; ok {
			dup[h] = true
		}
		idx[h] = i
	}
	column := func(name string) (int, error) {
		i, ok := idx[name]
		switch {
		case !ok:
			return 0, fmt.Errorf("column %q named by the map is not in the header (columns: %s)", name, strings.Join(header, ", "))
		case dup[name]:
			return 0, fmt.Errorf("column %q appears more than once in the header", name)
		}
		return i, nil
	}
	optional := func(name string) (int, error) {
		if name == "" {
			return -1, nil
		}
		return column(name)
	}
	p := &plan{loc: time.UTC}
	var err error
	if p.customer, err = column(m.Customer); err != nil {
		return nil, err
	}
	if p.timeCol, err = column(m.Time.Column); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{m.GroupBy, &p.group}, {m.ID, &p.id}, {m.Segment, &p.segment}} {
		if *f.dst, err = optional(f.name); err != nil {
			return nil, err
		}
	}
	src := m.Value.Expr
	if src == "" {
		src = "1"
	}
	if p.value, err = parseExpr(src, column); err != nil {
		return nil, fmt.Errorf("value.expr: %w", err)
	}
	for _, r := range m.Type.When {
		i, err := column(r.Column)
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, boundRule{col: i, Rule: r})
	}
	if m.Time.Zone != "" {
		if p.loc, err = time.LoadLocation(m.Time.Zone); err != nil {
			return nil, fmt.Errorf("time.zone: %w", err)
		}
	}
	return p, nil
}

// row is one parsed data row.
type row struct {
	customer, typ, id, segment, key string
	time                            int64
	value                           float64
}

func (m *Map) parseRow(p *plan, rec []string) (row, error) {
	r := row{customer: strings.TrimSpace(rec[p.customer])}
	if r.customer == "" {
		return r, nil
	}
	if len(r.customer) > scorer.MaxCustomerIDLen {
		return r, fmt.Errorf("column %q: the customer id is longer than %d bytes", m.Customer, scorer.MaxCustomerIDLen)
	}
	layout := m.Time.Layout
	if layout == "" {
		layout = time.RFC3339Nano
	}
	ts := strings.TrimSpace(rec[p.timeCol])
	t, err := time.ParseInLocation(layout, ts, p.loc)
	if err != nil {
		return r, fmt.Errorf("column %q: %q does not match the layout %q", m.Time.Column, ts, layout)
	}
	if y := t.Year(); y < 1678 || y > 2261 {
		return r, fmt.Errorf("column %q: %q is outside the years 1678–2261", m.Time.Column, ts)
	}
	r.time = t.UnixNano()
	if r.value, err = p.value.eval(rec); err != nil {
		return r, fmt.Errorf("value: %w", err)
	}
	r.typ = m.Type.Default
	for _, rule := range p.rules {
		v := rec[rule.col]
		if rule.Prefix != nil && strings.HasPrefix(v, *rule.Prefix) || rule.Equals != nil && v == *rule.Equals {
			r.typ = rule.Type
			break
		}
	}
	if r.typ == "" {
		return r, errors.New("no type: no rule of type.when matches and there is no type.default")
	}
	if p.id >= 0 {
		r.id = rec[p.id]
	}
	if p.segment >= 0 {
		r.segment = strings.TrimSpace(rec[p.segment])
	}
	if p.group >= 0 {
		r.key = rec[p.group]
		if r.id == "" && p.id < 0 {
			r.id = r.key
		}
	}
	for _, f := range []string{r.customer, r.typ, r.id, r.segment} {
		if !utf8.ValidString(f) {
			return r, errors.New("the row is not valid UTF-8")
		}
	}
	return r, nil
}

// group is one event being assembled from rows.
type group struct {
	row       // first row's fields; time is the earliest, value the aggregate
	line  int // first row's line, for error messages
	file  string
	nrows int
}

// Convert reads every input as CSV with a header line and writes one JSON
// event per line to w: with GroupBy, one per group in order of first
// appearance (after all inputs are read); otherwise one per row, as rows
// are read. It returns an error only for I/O failures and unusable headers;
// bad rows go to OnError and are counted.
func Convert(inputs []offline.Input, m *Map, w io.Writer, opt Options) (Stats, error) {
	var st Stats
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	groups := map[string]*group{}
	var order []*group
	round := func(v float64) float64 {
		if m.Value.Round == nil {
			return v
		}
		f := math.Pow10(*m.Value.Round)
		return math.Round(v*f) / f
	}
	write := func(g *group) error {
		ev := Event{ID: g.id, CustomerID: g.customer, Type: g.typ, Time: scorer.FormatTime(g.time), Value: round(g.value), Segment: g.segment}
		if m.Value.Aggregate == AggCount {
			ev.Value = float64(g.nrows)
		}
		st.Events++
		if err := enc.Encode(ev); err != nil {
			return fmt.Errorf("cannot write events: %w", err)
		}
		return nil
	}
	for _, in := range inputs {
		cr := csv.NewReader(in.R)
		cr.ReuseRecord = true
		header, err := cr.Read()
		if err == io.EOF {
			return st, fmt.Errorf("%s: empty file: want a header line", in.Name)
		}
		if err != nil {
			return st, fmt.Errorf("%s: cannot read the header: %w", in.Name, err)
		}
		header = slices.Clone(header)
		if len(header) > 0 {
			header[0] = strings.TrimPrefix(header[0], "\ufeff")
		}
		p, err := m.bind(header)
		if err != nil {
			return st, fmt.Errorf("%s:1: %w", in.Name, err)
		}
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			line := 0
			bad := func(err error) {
				st.BadRows++
				if opt.OnError != nil {
					opt.OnError(&offline.LineError{File: in.Name, Line: line, Err: err})
				}
			}
			if err != nil {
				var pe *csv.ParseError
				if !errors.As(err, &pe) {
					return st, fmt.Errorf("cannot read %s: %w", in.Name, err)
				}
				st.Rows++
				line = pe.StartLine
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					bad(fmt.Errorf("%d fields, the header has %d", len(rec), len(header)))
				} else {
					bad(fmt.Errorf("malformed CSV: %w", pe.Err))
				}
				continue
			}
			st.Rows++
			line, _ = cr.FieldPos(0)
			if opt.Progress != nil && opt.ProgressEvery > 0 && st.Rows%opt.ProgressEvery == 0 {
				opt.Progress(st.Rows)
			}
			r, err := m.parseRow(p, rec)
			if err != nil {
				bad(err)
				continue
			}
			if r.customer == "" {
				st.NoCustomer++
				continue
			}
			if p.group < 0 {
				if err := write(&group{row: r, nrows: 1}); err != nil {
					return st, err
				}
				continue
			}
			g := groups[r.key]
			if g == nil {
				g = &group{row: r, line: line, file: in.Name, nrows: 1}
				groups[r.key] = g
				order = append(order, g)
				continue
			}
			if g.customer != r.customer {
				bad(fmt.Errorf("group %q has customer %q (%s:%d), this row %q", r.key, g.customer, g.file, g.line, r.customer))
				continue
			}
			g.nrows++
			g.time = min(g.time, r.time)
			switch m.Value.Aggregate {
			case "", AggSum:
				if v := g.value + r.value; !math.IsInf(v, 0) {
					g.value = v
				} else {
					bad(fmt.Errorf("the sum of group %q overflows; the row is left out", r.key))
				}
			}
		}
	}
	for _, g := range order {
		if err := write(g); err != nil {
			return st, err
		}
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("cannot write events: %w", err)
	}
	return st, nil
}
