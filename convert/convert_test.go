package convert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

const retailHeader = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

func retailMap(t testing.TB) *Map {
	t.Helper()
	data, err := os.ReadFile("../examples/online-retail/map.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMap("map.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run converts csv and returns the events, the stats and the row errors.
func run(t testing.TB, m *Map, csv string) ([]Event, Stats, []string, error) {
	t.Helper()
	var out bytes.Buffer
	var errs []string
	st, err := Convert([]offline.Input{{Name: "in.csv", R: strings.NewReader(csv)}}, m, &out,
		Options{OnError: func(e *offline.LineError) { errs = append(errs, e.Error()) }})
	var evs []Event
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var e Event
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.DisallowUnknownFields()
		if derr := d.Decode(&e); derr != nil {
			t.Fatalf("bad output line %s: %v", sc.Text(), derr)
		}
		if _, derr := scorer.DecodeEvent(sc.Bytes()); derr != nil {
			t.Fatalf("output line %s is not a valid input event: %v", sc.Text(), derr)
		}
		evs = append(evs, e)
	}
	return evs, st, errs, err
}

func TestRetailInvoices(t *testing.T) {
	csv := retailHeader +
		"536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n" +
		"536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850,United Kingdom\n" +
		"536365,71053,\"LANTERN, WHITE\",6,2010-12-01 08:27:00,3.39,17850,United Kingdom\n" + // same invoice, a minute later
		"536367,84879,BIRD,32,2010-12-01 08:34:00,1.69,,United Kingdom\n" + // no customer
		"C536379,D,Discount,-1,2011-06-01 09:41:00,27.5,14527,United Kingdom\n"
	evs, st, errs, err := run(t, retailMap(t), csv)
	if err != nil || len(errs) > 0 {
		t.Fatalf("err %v, row errors %v", err, errs)
	}
	want := []Event{
		{ID: "536365", CustomerID: "17850", Type: "purchase", Time: "2010-12-01T08:26:00Z", Value: 35.64, Segment: "United Kingdom"}, // 6·2.55 + 6·3.39; GMT in winter
		{ID: "536366", CustomerID: "17850", Type: "purchase", Time: "2010-12-01T08:28:00Z", Value: 11.1, Segment: "United Kingdom"},
		{ID: "C536379", CustomerID: "14527", Type: "cancellation", Time: "2011-06-01T08:41:00Z", Value: -27.5, Segment: "United Kingdom"}, // BST
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Fatalf("events\n got %v\nwant %v", evs, want)
	}
	if st != (Stats{Rows: 5, Events: 3, NoCustomer: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestPerRowAndAggregates(t *testing.T) {
	csv := "user,when,amount,kind\nu1,2026-11-01T10:00:00Z,3,a\nu1,2026-11-01T09:00:00+01:00,4,b\nu2,2026-11-02T10:00:00Z,5,x\n"
	m, err := ParseMap("m", []byte("customer: user\ntime: {column: when}\nvalue: {expr: amount * 2}\ntype: {when: [{column: kind, equals: a, type: alpha}], default: other}\n"))
	if err != nil {
		t.Fatal(err)
	}
	evs, st, errs, err := run(t, m, csv)
	if err != nil || len(errs) > 0 || st.Events != 3 {
		t.Fatalf("%v %v %+v", err, errs, st)
	}
	if evs[0].Type != "alpha" || evs[0].Value != 6 || evs[1].Type != "other" || evs[1].Time != "2026-11-01T08:00:00Z" || evs[1].ID != "" {
		t.Fatalf("per row: %v", evs)
	}
	for agg, want := range map[string][]float64{"count": {2, 1}, "first": {3, 5}, "sum": {7, 5}} {
		m, err := ParseMap("m", []byte("customer: user\ntime: {column: when}\ngroup_by: user\nid: kind\nvalue: {expr: amount, aggregate: "+agg+"}\ntype: {default: t}\n"))
		if err != nil {
			t.Fatal(err)
		}
		evs, _, errs, err := run(t, m, csv)
		if err != nil || len(errs) > 0 || len(evs) != 2 || evs[0].Value != want[0] || evs[1].Value != want[1] {
			t.Fatalf("%s: %v %v %v", agg, evs, errs, err)
		}
		if evs[0].Time != "2026-11-01T08:00:00Z" || evs[0].ID != "a" { // earliest time, first row's id
			t.Fatalf("%s: group event %v", agg, evs[0])
		}
	}
}

func TestRowErrors(t *testing.T) {
	m := retailMap(t)
	cases := []struct{ row, want string }{
		{"1,A,d,6,2010-12-01 08:26,2.55,17850,UK", `in.csv:2: column "InvoiceDate": "2010-12-01 08:26" does not match the layout "2006-01-02 15:04:05"`},
		{"1,A,d,six,2010-12-01 08:26:00,2.55,17850,UK", `in.csv:2: value: column "Quantity": "six" is not a finite number`},
		{"1,A,d,,2010-12-01 08:26:00,2.55,17850,UK", `in.csv:2: value: column "Quantity" is empty, want a number`},
		{"1,A,d,1e308,2010-12-01 08:26:00,1e308,17850,UK", `in.csv:2: value: the value overflows`},
		{"1,A,d,6,2010-12-01 08:26:00,2.55,17850", `in.csv:2: 7 fields, the header has 8`},
		{"1,A,\"d,6,2010-12-01 08:26:00,2.55,17850,UK", `in.csv:2: malformed CSV: extraneous or missing " in quoted-field`},
		{"1,A,d,6,1500-12-01 08:26:00,2.55,17850,UK", `in.csv:2: column "InvoiceDate": "1500-12-01 08:26:00" is outside the years 1678–2261`},
		{"1,A,d,6,2010-12-01 08:26:00,2.55," + strings.Repeat("x", 257) + ",UK", `in.csv:2: column "CustomerID": the customer id is longer than 256 bytes`},
		{"1,A,d,6,2010-12-01 08:26:00,2.55,17850,U\xffK", `in.csv:2: the row is not valid UTF-8`},
	}
	for _, c := range cases {
		_, st, errs, err := run(t, m, retailHeader+c.row+"\n")
		if err != nil || len(errs) != 1 || errs[0] != c.want || st.BadRows != 1 || st.Events != 0 {
			t.Errorf("row %q: err %v, stats %+v, errors %q; want %q", c.row, err, st, errs, c.want)
		}
	}
	// A group whose rows disagree on the customer; the next rows still convert.
	csv := retailHeader + "1,A,d,1,2010-12-01 08:26:00,2,17850,UK\n1,A,d,1,2010-12-01 08:26:00,2,99999,UK\n2,A,d,1,2010-12-01 08:26:00,3,99999,UK\n"
	evs, _, errs, _ := run(t, m, csv)
	if len(errs) != 1 || errs[0] != `in.csv:3: group "1" has customer "17850" (in.csv:2), this row "99999"` || len(evs) != 2 || evs[0].Value != 2 {
		t.Errorf("group customer mismatch: %q %v", errs, evs)
	}
	// Without a matching rule or default.
	m2, err := ParseMap("m", []byte("customer: c\ntime: {column: t}\ntype: {when: [{column: k, prefix: X, type: x}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, errs, _ := run(t, m2, "c,t,k\na,2026-01-01T00:00:00Z,Y\n"); len(errs) != 1 || !strings.Contains(errs[0], "in.csv:2: no type") {
		t.Errorf("no type: %q", errs)
	}
	// Division by zero.
	m3, err := ParseMap("m", []byte("customer: c\ntime: {column: t}\nvalue: {expr: 1 / (k - 1)}\ntype: {default: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, errs, _ := run(t, m3, "c,t,k\na,2026-01-01T00:00:00Z,1\n"); len(errs) != 1 || errs[0] != "in.csv:2: value: division by zero" {
		t.Errorf("division by zero: %q", errs)
	}
}

func TestHeaderErrors(t *testing.T) {
	m := retailMap(t)
	for csv, want := range map[string]string{
		"":                     "in.csv: empty file: want a header line",
		"InvoiceNo,Quantity\n": `in.csv:1: column "CustomerID" named by the map is not in the header (columns: InvoiceNo, Quantity)`,
		strings.Replace(retailHeader, "StockCode", "CustomerID", 1): `in.csv:1: column "CustomerID" appears more than once in the header`,
		strings.Replace(retailHeader, "Quantity", "Qty", 1):         `in.csv:1: value.expr: column "Quantity" named by the map is not in the header`,
		"a,\"b\n": "in.csv: cannot read the header",
	} {
		_, _, _, err := run(t, m, csv)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("header %q: got %v, want %s…", csv, err, want)
		}
	}
	// A byte order mark before the header is not part of the first name.
	evs, _, errs, err := run(t, m, "\ufeff"+retailHeader+"1,A,d,1,2010-12-01 08:26:00,2,17850,UK\n")
	if err != nil || len(errs) > 0 || len(evs) != 1 {
		t.Errorf("BOM: %v %v %v", err, errs, evs)
	}
}

func TestMapErrors(t *testing.T) {
	for src, want := range map[string]string{
		"customer: c\ntime: {column: t}\ntype: {default: x}\nbogus: 1\n":                                           "m:4: unknown field \"bogus\"",
		"time: {column: t}\ntype: {default: x}\n":                                                                  "m: customer: required",
		"customer: c\ntype: {default: x}\n":                                                                        "m: time.column: required",
		"customer: c\ntime: {column: t, zone: Mars/Olympus}\ntype: {default: x}\n":                                 `m: time.zone: unknown zone "Mars/Olympus"`,
		"customer: c\ntime: {column: t}\n":                                                                         "m: type: required",
		"customer: c\ntime: {column: t}\ntype: {when: [{prefix: C}]}\n":                                            "m: type.when[0].column: required; type.when[0].type: required",
		"customer: c\ntime: {column: t}\ntype: {when: [{column: a, type: b}]}\n":                                   "m: type.when[0]: give exactly one of prefix and equals",
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {aggregate: sum}\n":                            "m: value.aggregate: only with group_by",
		"customer: c\ntime: {column: t}\ntype: {default: x}\ngroup_by: g\nvalue: {aggregate: mean}\n":              `m: value.aggregate: "mean" is not sum, count or first`,
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {round: 12}\n":                                 "m: value.round: want 0 to 9 decimals, got 12",
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"a * (b\"}\n":                          "m: value.expr: missing ')' at offset 6",
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"a *\"}\n":                             "m: value.expr: unexpected end",
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"a $ b\"}\n":                           `m: value.expr: unexpected "$ b" at offset 2`,
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"[a\"}\n":                              "m: value.expr: missing ']'",
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"1e999\"}\n":                           `m: value.expr: "1e999" is not a finite number`,
		"customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"" + strings.Repeat("(", 70) + "\"}\n": "m: value.expr: nested more than 64 levels",
		"customer: [\n": "m:",
	} {
		_, err := ParseMap("m", []byte(src))
		var me *MapError
		if !errors.As(err, &me) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("map %q: got %v, want %s…", src, err, want)
		}
	}
}

func TestExpr(t *testing.T) {
	cols := map[string]int{"a": 0, "b": 1, "Unit Price": 2}
	for src, want := range map[string]float64{
		"a * b": 6, "a + b * 2": 8, "(a + b) * 2": 10, "-a - -b": 1, "a / b": 2.0 / 3, "[Unit Price] * 2": 1, "2 - 1 - 1": 0, "8 / 2 / 2": 2, "1.5e1": 15,
	} {
		e, err := parseExpr(src, func(n string) (int, error) {
			if i, ok := cols[n]; ok {
				return i, nil
			}
			return 0, fmt.Errorf("no column %q", n)
		})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got, err := e.eval([]string{"2", " 3 ", "0.5"}); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", src, got, err, want)
		}
	}
}

// FuzzConvert feeds arbitrary CSV through the retail map: it never panics,
// every output line is a valid input event, and rows are all accounted for.
func FuzzConvert(f *testing.F) {
	m := retailMap(f)
	f.Add(retailHeader + "536365,85123A,WHITE,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n")
	f.Add(retailHeader + "C1,\"a,\"\"b\",x,-1,2011-06-01 09:41:00,1e3,14527,UK\n1,2,3\n")
	f.Add(retailHeader + "1,A,d,1,2010-12-01 08:26:00,2,17850,UK\r\n1,A,d,1,2010-12-01 08:26:00,2,99,UK\n")
	f.Add("\ufeff" + retailHeader + "\"\n")
	f.Fuzz(func(t *testing.T, csv string) {
		evs, st, errs, err := run(t, m, csv)
		if err != nil {
			return
		}
		if len(errs) != st.BadRows || st.Events != len(evs) || st.BadRows+st.NoCustomer > st.Rows || len(evs) > st.Rows {
			t.Fatalf("stats %+v, %d errors, %d events", st, len(errs), len(evs))
		}
		for _, e := range errs {
			if !strings.HasPrefix(e, "in.csv:") {
				t.Fatalf("error without position: %s", e)
			}
		}
	})
}

// FuzzParseMap: any map text either parses or fails with a MapError, and a
// parsed map binds to its own column names without panicking.
func FuzzParseMap(f *testing.F) {
	data, _ := os.ReadFile("../examples/online-retail/map.yaml")
	f.Add(string(data))
	f.Add("customer: c\ntime: {column: t}\ntype: {default: x}\nvalue: {expr: \"(a+[b c])*-2/d\"}\n")
	f.Fuzz(func(t *testing.T, src string) {
		m, err := ParseMap("m", []byte(src))
		if err != nil {
			var me *MapError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a MapError", err)
			}
			return
		}
		header := []string{m.Customer, m.Time.Column, "x"}
		_, _ = m.bind(header)
	})
}

type failingIO struct{}

func (failingIO) Read([]byte) (int, error)  { return 0, errors.New("disk on fire") }
func (failingIO) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestMoreErrors(t *testing.T) {
	// A type rule naming a column the header lacks.
	m, err := ParseMap("m", []byte("customer: c\ntime: {column: t}\ntype: {when: [{column: kind, equals: a, type: x}], default: y}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := run(t, m, "c,t\n"); err == nil || !strings.HasPrefix(err.Error(), `in.csv:1: column "kind" named by the map is not in the header`) {
		t.Errorf("rule column: %v", err)
	}
	// A group whose sum overflows leaves the row out and says so.
	m2, err := ParseMap("m", []byte("customer: c\ntime: {column: t}\ngroup_by: g\nvalue: {expr: v}\ntype: {default: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	evs, _, errs, err := run(t, m2, "c,t,g,v\na,2026-01-01T00:00:00Z,1,1e308\na,2026-01-01T00:00:00Z,1,1e308\n")
	if err != nil || len(errs) != 1 || errs[0] != `in.csv:3: the sum of group "1" overflows; the row is left out` || len(evs) != 1 || evs[0].Value != 1e308 {
		t.Errorf("overflow: %v %q %v", err, errs, evs)
	}
	// I/O failures stop the run with the cause.
	if _, err := Convert([]offline.Input{{Name: "in.csv", R: strings.NewReader(retailHeader + "1,A,d,1,2010-12-01 08:26:00,2,17850,UK\n")}}, retailMap(t), failingIO{}, Options{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write failure: %v", err)
	}
	if _, err := Convert([]offline.Input{{Name: "in.csv", R: failingIO{}}}, retailMap(t), &bytes.Buffer{}, Options{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("read failure: %v", err)
	}
}
