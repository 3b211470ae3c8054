package convert

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones like Europe/London on machines without a zoneinfo database

	"github.com/goccy/go-yaml"
)

// Map says how CSV rows become events. It is read from YAML (see ParseMap
// and docs/backtesting.md); column names are resolved against each file's
// header.
type Map struct {
	// Customer is the column holding customer_id (required). Rows where it
	// is empty are skipped and counted, not errors.
	Customer string `yaml:"customer"`
	// Time says where the event time comes from (required).
	Time TimeSpec `yaml:"time"`
	// GroupBy, when set, makes one event per distinct value of this column
	// (e.g. an invoice number) instead of one per row. The rows of a group
	// must have the same customer; the event's time is their earliest, its
	// type and segment come from the group's first row.
	GroupBy string `yaml:"group_by"`
	// ID is the column holding the event id; with GroupBy and no ID the id
	// is the group's key. Optional.
	ID string `yaml:"id"`
	// Segment is the column holding the segment. Optional.
	Segment string `yaml:"segment"`
	// Value computes the event value. Optional (default: 1 per row).
	Value ValueSpec `yaml:"value"`
	// Type chooses the event type (required).
	Type TypeSpec `yaml:"type"`
}

// TimeSpec locates and parses the time column.
type TimeSpec struct {
	Column string `yaml:"column"`
	// Layout is a Go time layout (default RFC 3339, which carries its own
	// offset), e.g. "2006-01-02 15:04:05".
	Layout string `yaml:"layout"`
	// Zone is an IANA zone name for layouts without an offset (default UTC).
	Zone string `yaml:"zone"`
}

// ValueSpec computes a value per row and combines the rows of a group.
type ValueSpec struct {
	// Expr is an arithmetic expression over columns (+ - * / and
	// parentheses), e.g. "Quantity * UnitPrice"; default "1".
	Expr string `yaml:"expr"`
	// Aggregate combines a group's rows: sum (default), count (rows) or
	// first. Only with group_by.
	Aggregate string `yaml:"aggregate"`
	// Round, when set, rounds the event value to this many decimals (0–9).
	Round *int `yaml:"round"`
}

// TypeSpec chooses the event type: the first rule that matches, else
// Default.
type TypeSpec struct {
	Default string `yaml:"default"`
	When    []Rule `yaml:"when"`
}

// Rule matches a row by one column: exactly one of Prefix and Equals.
type Rule struct {
	Column string  `yaml:"column"`
	Prefix *string `yaml:"prefix"`
	Equals *string `yaml:"equals"`
	Type   string  `yaml:"type"`
}

// Aggregates of ValueSpec.
const (
	AggSum   = "sum"
	AggCount = "count"
	AggFirst = "first"
)

// MapError is a problem in a map file.
type MapError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *MapError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ParseMap parses and validates a map. file names the source in errors.
// Column names are checked later, against each CSV header.
func ParseMap(file string, data []byte) (m *Map, err error) {
	defer func() { // goccy/go-yaml v1.19.2 panics on some malformed inputs
		if r := recover(); r != nil {
			m, err = nil, &MapError{File: file, Msg: fmt.Sprintf("invalid YAML (the parser failed: %v)", r)}
		}
	}()
	m = new(Map)
	if err := yaml.UnmarshalWithOptions(data, m, yaml.DisallowUnknownField(), yaml.Strict()); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) {
			line := 0
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				line = tk.Position.Line
			}
			return nil, &MapError{File: file, Line: line, Msg: ye.GetMessage()}
		}
		return nil, &MapError{File: file, Msg: err.Error()}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if m.Customer == "" {
		bad("customer: required: the column holding the customer id")
	}
	if m.Time.Column == "" {
		bad("time.column: required: the column holding the event time")
	}
	if m.Time.Zone != "" {
		if _, err := time.LoadLocation(m.Time.Zone); err != nil {
			bad("time.zone: unknown zone %q (use an IANA name such as Europe/London)", m.Time.Zone)
		}
	}
	if m.Type.Default == "" && len(m.Type.When) == 0 {
		bad("type: required: a default type and/or when rules")
	}
	for i, r := range m.Type.When {
		if r.Column == "" {
			bad("type.when[%d].column: required", i)
		}
		if (r.Prefix == nil) == (r.Equals == nil) {
			bad("type.when[%d]: give exactly one of prefix and equals", i)
		}
		if r.Type == "" {
			bad("type.when[%d].type: required: the event type when the rule matches", i)
		}
	}
	switch m.Value.Aggregate {
	case "":
	case AggSum, AggCount, AggFirst:
		if m.GroupBy == "" {
			bad("value.aggregate: only with group_by (one event per row needs no aggregate)")
		}
	default:
		bad("value.aggregate: %q is not sum, count or first", m.Value.Aggregate)
	}
	if r := m.Value.Round; r != nil && (*r < 0 || *r > 9) {
		bad("value.round: want 0 to 9 decimals, got %d", *r)
	}
	if m.Value.Expr != "" {
		if _, err := parseExpr(m.Value.Expr, func(string) (int, error) { return 0, nil }); err != nil {
			bad("value.expr: %v", err)
		}
	}
	if len(problems) > 0 {
		return nil, &MapError{File: file, Msg: strings.Join(problems, "; ")}
	}
	return m, nil
}
