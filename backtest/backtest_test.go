package backtest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ev(cust, typ string, day float64, value float64) string {
	at := t0.Add(time.Duration(day * float64(24*time.Hour)))
	return fmt.Sprintf(`{"customer_id":%q,"type":%q,"time":%q,"value":%v}`, cust, typ, at.Format(time.RFC3339Nano), value)
}

func dayNs(d float64) int64 { return t0.Add(time.Duration(d * float64(24*time.Hour))).UnixNano() }

// tb is what load needs of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(...any)
}

func load(t tb, lines []string, opt LoadOptions) (*Data, []string) {
	t.Helper()
	var errs []string
	opt.OnError = func(e *offline.LineError) { errs = append(errs, e.Error()) }
	d, err := Load([]offline.Input{{Name: "ev.jsonl", R: strings.NewReader(strings.Join(lines, "\n") + "\n")}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return d, errs
}

const retailModel = `name: retail
version: "1"
bands: {red: 40, yellow: 70}
categories:
  - name: buying
    weight: 1
    signals:
      - {name: purchases, event: purchase, kind: count, half_life: 30d, target: 3}
      - {name: last_purchase, event: purchase, kind: recency, half_life: 10d}
`

func model(t testing.TB) *scorer.Model {
	m, err := scorer.ParseModel("m.yaml", []byte(retailModel))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChurnIfNo(t *testing.T) {
	lines := []string{
		ev("a", "purchase", 1, 10), ev("a", "purchase", 12, 5), // bought again within the horizon
		ev("b", "purchase", 2, 7),                             //                              silent: churned
		ev("c", "purchase", 3, 1), ev("c", "purchase", 16, 1), //  bought again only after the horizon: churned
		ev("d", "purchase", 10, 1),                         //                              first event exactly at T: not in the population
		ev("e", "login", 4, 1), ev("e", "purchase", 15, 1), //      a login before T; a purchase at T+horizon exactly counts
		ev("f", "login", 5, 1), ev("f", "login", 11, 1), //         no purchase in the window (logins do not count): churned
		ev("h", "purchase", 6, 1), ev("h", "purchase", 10, 1), //   a purchase at T exactly: neither history nor window, churned
		`{"customer_id":"g","type":"purchase"}`,
		`not json`,
	}
	d, errs := load(t, lines, LoadOptions{At: dayNs(10), Horizon: 5 * 24 * time.Hour, ChurnIfNo: "purchase"})
	if !slices.Equal(d.IDs, []string{"a", "b", "c", "e", "f", "h"}) || fmt.Sprint(d.Churned) != "[false true true false true true]" {
		t.Fatalf("ids %v churned %v", d.IDs, d.Churned)
	}
	if d.EventsBefore != 6 || d.BadLines != 2 || len(errs) != 2 || !strings.HasPrefix(errs[0], "ev.jsonl:13: missing_time") || !strings.HasPrefix(errs[1], "ev.jsonl:14: invalid_json") {
		t.Fatalf("events before %d, bad %d, errors %q", d.EventsBefore, d.BadLines, errs)
	}
}

func TestLabelsFile(t *testing.T) {
	lines := []string{
		ev("a", "purchase", 1, 1), ev("b", "purchase", 1, 1), ev("c", "purchase", 1, 1),
		ev("e", "purchase", 1, 1), ev("f", "purchase", 1, 1), ev("g", "purchase", 1, 1),
		ev("a", "purchase", 12, 1), // after T: irrelevant with labels
	}
	csv := "customer_id,segment,churned,churn_time\n" +
		"a,smb,true," + scorer.FormatTime(dayNs(12)) + "\n" + // in the window: churned
		"b,smb,true," + scorer.FormatTime(dayNs(10)) + "\n" + // at T: already gone, excluded
		"c,smb,false,\n" +
		"e,smb,true," + scorer.FormatTime(dayNs(20)) + "\n" + // after the window: not churned
		"g,smb,1,\n" + // churned, time unknown: churned
		"z,smb,true,\n" // never seen before T: not in the population
	for _, src := range []string{csv, csvToJSONL(t, csv)} {
		labels, err := ReadLabels("l", strings.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		d, _ := load(t, lines, LoadOptions{At: dayNs(10), Horizon: 5 * 24 * time.Hour, Labels: labels})
		if !slices.Equal(d.IDs, []string{"a", "c", "e", "g"}) || fmt.Sprint(d.Churned) != "[true false false true]" || d.AlreadyChurned != 1 || d.Unlabelled != 1 {
			t.Fatalf("ids %v churned %v already %d unlabelled %d", d.IDs, d.Churned, d.AlreadyChurned, d.Unlabelled)
		}
	}
}

// csvToJSONL rewrites a labels CSV as JSON lines.
func csvToJSONL(t *testing.T, csv string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(csv), "\n")[1:] {
		f := strings.Split(l, ",")
		churned := f[2] == "true" || f[2] == "1"
		fmt.Fprintf(&b, "{\"customer_id\":%q,\"churned\":%v,\"churn_time\":%q}\n", f[0], churned, f[3])
	}
	return b.String()
}

func TestLabelErrors(t *testing.T) {
	for src, want := range map[string]string{
		"id,churned\na,true\n":                        "l:1: the header must name customer_id and churned",
		"customer_id,churned\na,maybe\n":              `l:2: churned "maybe": want true, false, 1 or 0`,
		"customer_id,churned,churn_time\na,true,x\n":  `l:2: churn_time "x" is not RFC 3339`,
		"customer_id,churned\na,true\na,false\n":      `l:3: customer "a" is labelled twice`,
		"customer_id,churned\n,true\n":                "l:2: customer_id is empty",
		"customer_id,churned\na,true,extra\n":         "l: record on line 2: wrong number of fields",
		"":                                            "l:1: cannot read the header",
		"{\"customer_id\":\"a\"}\n":                   "l:1: churned is required",
		"{\"customer_id\":\"a\",\"churned\":true}\n{": "l:2: unexpected end of JSON input",
	} {
		_, err := ReadLabels("l", strings.NewReader(src))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: got %v, want %s…", src, err, want)
		}
	}
	if _, err := ReadRisks("o", strings.NewReader("customer_id,risk\na,x\n")); err == nil || err.Error() != `o:2: risk "x" is not a number` {
		t.Errorf("risk error: %v", err)
	}
	if _, err := ReadRisks("o", strings.NewReader("customer,risk\n")); err == nil || !strings.HasPrefix(err.Error(), "o:1: the header must name customer_id and risk") {
		t.Errorf("risk header error: %v", err)
	}
	if _, err := Load(nil, LoadOptions{Horizon: time.Hour}); err == nil {
		t.Error("Load without a label source must fail")
	}
}

// TestEvaluate checks the RFM definition and the band figures by hand.
func TestEvaluate(t *testing.T) {
	lines := []string{
		ev("a", "purchase", 9, 100), ev("a", "purchase", 8, 100), ev("a", "purchase", 7, 100), // recent, frequent, big
		ev("b", "purchase", 1, 50),                                                         //                                                           old, once
		ev("c", "purchase", 5, 10), ev("c", "purchase", 6, 10), ev("c", "login", 9.5, 999), //    the login is not RFM's type
		ev("d", "login", 2, 1), //                                                                no purchase at all
	}
	d, _ := load(t, lines, LoadOptions{At: dayNs(10), Horizon: 30 * 24 * time.Hour, ChurnIfNo: "purchase"})
	// Nobody buys after T: everybody churned, so AUC is undefined.
	r := Evaluate(d, model(t), Options{RFMType: "purchase"})
	if r.Customers != 4 || r.Churned != 4 || !math.IsNaN(float64(r.AUC)) {
		t.Fatalf("%+v", r)
	}
	// Recency ranks: d (none) 1, b 2, c 3, a 4; frequency: d 1, b 2, c 3, a 4;
	// monetary: d 1, c (20) 2, b (50) 3, a 4.
	if got := d.RFM("purchase"); !slices.Equal(got, []float64{12, 7, 8, 3}) {
		t.Fatalf("RFM = %v, want [12 7 8 3]", got)
	}
	// Every type: c's login is its latest event and adds 999. Recency:
	// b 1, d 2, a 3, c 4; frequency: b and d 1.5, a and c 3.5; monetary:
	// d (1) 1, b (50) 2, a (300) 3, c (1019) 4.
	if got := d.RFM(""); !slices.Equal(got, []float64{3 + 3.5 + 3, 1 + 1.5 + 2, 4 + 3.5 + 4, 2 + 1.5 + 1}) {
		t.Fatalf("RFM of every type = %v", got)
	}
	// Only a stayed: scores are model scores, bands by the model.
	d.Churned = []bool{false, true, true, true}
	r = Evaluate(d, model(t), Options{RFMType: "purchase"})
	scores, bands, _ := d.Scores(model(t))
	var red, redHit int
	for i, b := range bands {
		if b == scorer.BandRed {
			red++
			if d.Churned[i] {
				redHit++
			}
		}
	}
	if float64(r.RedPrecision) != float64(redHit)/float64(red) || float64(r.RedRecall) != float64(redHit)/3 {
		t.Fatalf("red precision %v recall %v; %d red, %d churned of them", r.RedPrecision, r.RedRecall, red, redHit)
	}
	if float64(r.AUC) != AUC(scores, d.Churned) || float64(r.BaselineAUC) != 1 { // a alone stayed and has the top rank-sum
		t.Fatalf("auc %v baseline %v", r.AUC, r.BaselineAUC)
	}
	n := 0
	for k, b := range r.BaselineBands {
		n += b.Customers
		if b.Customers != r.Bands[k].Customers {
			t.Fatalf("baseline band %s has %d customers, the model's %d", b.Band, b.Customers, r.Bands[k].Customers)
		}
	}
	if n != 4 {
		t.Fatalf("bands hold %d customers", n)
	}
}

// An event at or after T never changes the scores, the baseline or the
// population; with a labels file, it changes nothing at all.
func TestNoLeakage(t *testing.T) {
	m := model(t)
	rapid.Check(t, func(rt *rapid.T) {
		at := rapid.Float64Range(5, 25).Draw(rt, "at")
		custs := []string{"a", "b", "c", "d"}
		types := []string{"purchase", "cancellation", "login"}
		var past, future []string
		for range rapid.IntRange(1, 30).Draw(rt, "n") {
			day := rapid.Float64Range(0, at).Draw(rt, "day")
			if day >= at {
				continue
			}
			past = append(past, ev(rapid.SampledFrom(custs).Draw(rt, "c"), rapid.SampledFrom(types).Draw(rt, "t"), day, rapid.Float64Range(-50, 500).Draw(rt, "v")))
		}
		for range rapid.IntRange(1, 20).Draw(rt, "m") {
			day := at + rapid.Float64Range(0, 60).Draw(rt, "later")
			cust := rapid.SampledFrom(append(custs, "new")).Draw(rt, "c")
			future = append(future, ev(cust, rapid.SampledFrom(types).Draw(rt, "t"), day, rapid.Float64Range(-50, 500).Draw(rt, "v")))
		}
		mixed := append(slices.Clone(past), future...)
		rapid.Permutation(mixed).Draw(rt, "order")
		labels := map[string]Label{"a": {Churned: true, Time: dayNs(at + 3)}, "b": {}, "c": {Churned: true}, "d": {}, "new": {}}
		report := func(lines []string, opt LoadOptions) (*Data, string) {
			opt.At, opt.Horizon = dayNs(at), 30*24*time.Hour
			d, errs := load(rt, lines, opt)
			if len(errs) > 0 {
				rt.Fatal(errs)
			}
			var b bytes.Buffer
			r := Evaluate(d, m, Options{RFMType: "purchase"})
			_ = r.WriteJSON(&b)
			_ = r.WriteSVG(&b)
			return d, b.String()
		}
		_, a := report(past, LoadOptions{Labels: labels})
		_, b := report(mixed, LoadOptions{Labels: labels})
		if a != b {
			rt.Fatalf("events after T changed the backtest with a labels file:\n%s\n%s", a, b)
		}
		d1, _ := report(past, LoadOptions{ChurnIfNo: "purchase"})
		d2, _ := report(mixed, LoadOptions{ChurnIfNo: "purchase"})
		s1, _, _ := d1.Scores(m)
		s2, _, _ := d2.Scores(m)
		if !slices.Equal(d1.IDs, d2.IDs) || !slices.Equal(s1, s2) || !slices.Equal(d1.RFM("purchase"), d2.RFM("purchase")) {
			rt.Fatalf("events after T changed the population or the scores: %v %v, %v %v", d1.IDs, d2.IDs, s1, s2)
		}
	})
}

func TestChartAndTable(t *testing.T) {
	lines := []string{ev("a<&>", "purchase", 1, 1), ev("b", "purchase", 2, 1), ev("b", "purchase", 3, 1), ev("c", "purchase", 4, 1), ev("c", "purchase", 12, 1)}
	d, _ := load(t, lines, LoadOptions{At: dayNs(10), Horizon: 5 * 24 * time.Hour, ChurnIfNo: "purchase"})
	for _, oracle := range []map[string]float64{nil, {"a<&>": 0.9, "b": 0.5}} {
		r := Evaluate(d, model(t), Options{RFMType: "purchase", Oracle: oracle, ChurnRule: `no "purchase" <in> (T, T+5d]`})
		var svg bytes.Buffer
		if err := r.WriteSVG(&svg); err != nil {
			t.Fatal(err)
		}
		polylines, rects := 0, 0
		dec := xml.NewDecoder(&svg)
		dec.Strict = true
		root := ""
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chart is not well-formed XML: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if root == "" {
					root = se.Name.Space + " " + se.Name.Local
				}
				switch se.Name.Local {
				case "polyline":
					polylines++
				case "rect":
					rects++
				}
			}
		}
		wantLines := 2
		if oracle != nil {
			wantLines = 3
			if r.OracleMissing != 1 {
				t.Errorf("oracle missing %d, want 1", r.OracleMissing)
			}
		}
		if root != "http://www.w3.org/2000/svg svg" || polylines != wantLines || rects != 2+6 {
			t.Fatalf("root %q, %d polylines, %d rects", root, polylines, rects)
		}
		var tab bytes.Buffer
		if err := r.WriteTable(&tab); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"customers 3 (with events before the cut-off), churned 2 (66.7%)", "\nAUC ", "\ntop-decile lift ", "\nred ", "\ngreen "} {
			if !strings.Contains(tab.String(), want) {
				t.Fatalf("table lacks %q:\n%s", want, tab.String())
			}
		}
	}
	// Undefined figures are JSON null and the chart is still well-formed.
	d.Churned = []bool{false, false, false}
	r := Evaluate(d, model(t), Options{})
	var js, svg bytes.Buffer
	if err := r.WriteJSON(&js); err != nil || !strings.Contains(js.String(), `"auc": null`) || !strings.Contains(js.String(), `"customers": 3`) {
		t.Fatalf("json %v:\n%s", err, js.String())
	}
	_ = r.WriteSVG(&svg)
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Fatalf("chart without churn: %v", err)
	}
}

// FuzzReadLabels: any labels text either reads or fails with an error
// naming the file; labels read are never empty ids.
func FuzzReadLabels(f *testing.F) {
	f.Add("customer_id,segment,churned,churn_time\na,smb,true,2026-01-01T00:00:00Z\nb,smb,false,\n")
	f.Add("{\"customer_id\":\"a\",\"churned\":true,\"churn_time\":\"2026-01-01T00:00:00Z\"}\n")
	f.Add("\ufeffcustomer_id,churned\n\"a,b\",1\n")
	f.Fuzz(func(t *testing.T, src string) {
		labels, err := ReadLabels("l", strings.NewReader(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "l") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for id := range labels {
			if id == "" {
				t.Fatal("empty customer id accepted")
			}
		}
	})
}
