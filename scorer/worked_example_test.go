package scorer

import (
	"os"
	"strings"
	"testing"
)

// workedModel is the model of the worked example in docs/model.md; keep them
// in sync (TestWorkedExampleInDocs checks the doc quotes it verbatim).
const workedModel = `name: example
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 2
change_min_delta: 1
categories:
  - name: engagement
    weight: 3
    signals:
      - {name: logins, event: login, kind: count, half_life: 7d, target: 4}
      - {name: last_login, event: login, kind: recency, half_life: 7d}
  - name: support
    weight: 1
    signals:
      - {name: tickets, event: ticket_opened, kind: count, half_life: 7d, target: 2, direction: negative}
  - name: sentiment
    weight: 1
    signals:
      - {name: nps, event: nps_submitted, kind: average, half_life: 30d, min: 0, max: 10}
`

// TestWorkedExample asserts every number of the worked example in
// docs/model.md, computed there by hand.
func TestWorkedExample(t *testing.T) {
	m := mustModel(t, workedModel)
	at := func(s string) int64 { return mustTime(t, s) }
	decode := func(s string) Event {
		e, err := DecodeEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	st := m.NewState()
	for _, line := range []string{
		`{"id":"e1","customer_id":"acme","type":"login","time":"2026-11-06T10:00:00Z"}`,
		`{"id":"e2","customer_id":"acme","type":"login","time":"2026-11-13T10:00:00Z"}`,
		`{"id":"e3","customer_id":"acme","type":"ticket_opened","time":"2026-11-13T10:00:00Z"}`,
	} {
		e := decode(line)
		m.Apply(st, &e)
	}
	check := func(what string, got, want float64) {
		t.Helper()
		if !approx(got, want, 1e-12) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	sub := func(e *Evaluation, name string) SignalScore {
		s, _ := signalScore(e, name)
		return s
	}

	// Step 1: 2026-11-20T10:00:00Z.
	o := m.Step(st, at("2026-11-20T10:00:00Z"))
	e := &o.Eval
	check("logins sub", sub(e, "logins").Sub, 0.1875)
	check("last_login sub", sub(e, "last_login").Sub, 0.5)
	check("tickets sub", sub(e, "tickets").Sub, 0.75)
	if sub(e, "nps").HasData || e.Categories[2].HasData {
		t.Fatal("nps must have no data")
	}
	check("engagement", e.Categories[0].Score, 0.34375)
	check("score 1", e.Score, 44.53125)
	check("engagement points", e.Categories[0].Points, 25.78125)
	check("support points", e.Categories[1].Points, 18.75)
	check("logins points", sub(e, "logins").Points, 7.03125)
	check("last_login points", sub(e, "last_login").Points, 18.75)
	if !o.FirstScore || !o.Changed || e.Band != BandYellow || o.Alert != AlertNone {
		t.Fatalf("step 1: %+v", o)
	}

	// Step 2: an NPS answer of 3 at the same instant.
	e4 := decode(`{"id":"e4","customer_id":"acme","type":"nps_submitted","time":"2026-11-20T10:00:00Z","value":3}`)
	m.Apply(st, &e4)
	o = m.Step(st, at("2026-11-20T10:00:00Z"))
	e = &o.Eval
	check("nps sub", sub(e, "nps").Sub, 0.3)
	check("score 2", e.Score, 41.625)
	check("engagement points 2", e.Categories[0].Points, 20.625)
	check("support points 2", e.Categories[1].Points, 15)
	check("sentiment points 2", e.Categories[2].Points, 6)
	check("delta 2", o.ScoreDelta, -2.90625)
	if !o.Changed || e.Band != BandYellow || o.BandChanged || len(o.Drivers) != 3 {
		t.Fatalf("step 2: %+v", o)
	}
	wantDrivers := []Driver{{"sentiment", "nps", 6}, {"engagement", "last_login", -3.75}, {"support", "tickets", -3.75}}
	for i, d := range wantDrivers {
		if o.Drivers[i].Signal != d.Signal || o.Drivers[i].Category != d.Category || !approx(o.Drivers[i].Points, d.Points, 1e-12) {
			t.Fatalf("step 2 drivers %+v, want %+v", o.Drivers, wantDrivers)
		}
	}

	// Step 3: a week later, no new events.
	o = m.Step(st, at("2026-11-27T10:00:00Z"))
	e = &o.Eval
	check("logins sub 3", sub(e, "logins").Sub, 0.09375)
	check("last_login sub 3", sub(e, "last_login").Sub, 0.25)
	check("tickets sub 3", sub(e, "tickets").Sub, 0.875)
	check("nps sub 3", sub(e, "nps").Sub, 0.3)
	check("score 3", e.Score, 33.8125)
	if !o.Changed || e.Band != BandRed || o.Alert != AlertLow || !o.BandChanged {
		t.Fatalf("step 3: %+v", o)
	}
	wantDrivers = []Driver{{"engagement", "last_login", -7.5}, {"engagement", "logins", -2.8125}, {"support", "tickets", 2.5}}
	for i, d := range wantDrivers {
		if o.Drivers[i].Signal != d.Signal || !approx(o.Drivers[i].Points, d.Points, 1e-12) {
			t.Fatalf("step 3 drivers %+v, want %+v", o.Drivers, wantDrivers)
		}
	}
}

// TestWorkedExampleInDocs checks that docs/model.md quotes the worked
// example's model verbatim.
func TestWorkedExampleInDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/model.md")
	if err != nil {
		t.Skipf("docs/model.md: %v", err)
	}
	if !strings.Contains(string(doc), workedModel) {
		t.Fatal("docs/model.md does not contain the worked example model (workedModel) verbatim")
	}
}
