package scorer

import (
	"math"
	"strings"
	"testing"
	"time"
)

const hour = int64(time.Hour)
const day = 24 * hour

// t0 is an arbitrary evaluation origin.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano()

// evalModel has one signal of every kind, both directions and a segment.
const evalModel = `name: eval
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 2
change_min_delta: 1
categories:
  - name: usage
    weight: 3
    signals:
      - {name: logins, event: login, kind: count, half_life: 1d, target: 4}
      - {name: spend, event: pay, kind: sum, half_life: 2d, target: 100}
  - name: support
    weight: 1
    signals:
      - {name: tickets, event: ticket, kind: count, half_life: 1d, target: 2, direction: negative}
      - {name: refunds, event: refund, kind: sum, half_life: 1d, target: 50, direction: negative}
  - name: sentiment
    weight: 1
    signals:
      - {name: nps, event: nps, kind: average, half_life: 1d, min: 0, max: 10}
      - {name: csat_bad, event: csat, kind: average, half_life: 1d, min: 1, max: 5, direction: negative}
  - name: activity
    weight: 1
    signals:
      - {name: seen, event: login, kind: recency, half_life: 12h}
      - {name: quiet, event: alarm, kind: recency, half_life: 12h, direction: negative}
segments:
  big:
    bands: {red: 50, yellow: 80}
    weights: {support: 3, activity: 0}
    targets: {logins: 8, refunds: 100}
`

func mustModel(t testing.TB, src string) *Model {
	t.Helper()
	m, err := ParseModel("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ev is a compact event: type, time offset from t0 and value.
func ev(typ string, off int64, value float64) Event {
	return Event{CustomerID: "c", Type: typ, Time: t0 + off, HasTime: true, Value: value}
}

func segEv(typ string, off int64, seg string) Event {
	e := ev(typ, off, 1)
	e.Segment = seg
	return e
}

func fold(m *Model, evs []Event) *State {
	st := m.NewState()
	for i := range evs {
		m.Apply(st, &evs[i])
	}
	return st
}

func approx(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func signalScore(e *Evaluation, name string) (SignalScore, bool) {
	for _, c := range e.Categories {
		for _, s := range c.Signals {
			if s.Name == name {
				return s, true
			}
		}
	}
	return SignalScore{}, false
}

func TestSubScores(t *testing.T) {
	m := mustModel(t, evalModel)
	// f folds evs, evaluates at t0+at and checks signal name's sub-score;
	// want < 0 means "no data".
	f := func(name string, evs []Event, at int64, want float64) {
		t.Helper()
		e := m.Evaluate(fold(m, evs), t0+at)
		s, ok := signalScore(&e, name)
		if !ok {
			t.Fatalf("no signal %q", name)
		}
		if want < 0 {
			if s.HasData || s.Sub != 0 {
				t.Fatalf("%s: want no data, got %+v", name, s)
			}
			return
		}
		if !s.HasData || !approx(s.Sub, want, 1e-12) {
			t.Fatalf("%s: got %+v, want sub %v", name, s, want)
		}
	}
	// count: S = Σ 2^(−age/h), sub = S/target clamped.
	f("logins", nil, 0, 0)
	f("logins", []Event{ev("login", 0, 1)}, 0, 0.25)
	f("logins", []Event{ev("login", -day, 1), ev("login", 0, 1)}, 0, 1.5/4)
	f("logins", []Event{ev("login", -day, 1), ev("login", 0, 1)}, day, 0.75/4)
	f("logins", []Event{ev("login", -2*day, 7)}, 0, 0.25/4) // value ignored
	f("logins", []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)}, 0, 1)
	f("logins", []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)}, day, 0.625)
	// sum: values decay.
	f("spend", []Event{ev("pay", -2*day, 50), ev("pay", 0, 30)}, 0, 0.55)
	f("spend", []Event{ev("pay", -2*day, 50), ev("pay", 0, 30)}, 2*day, 0.275)
	f("spend", []Event{ev("pay", 0, 500)}, 0, 1)
	f("spend", []Event{ev("pay", 0, -20)}, 0, 0)
	f("spend", []Event{ev("pay", -2*day, 80), ev("pay", 0, -20)}, 0, 0.2)
	// negative count and sum: 1 − sub.
	f("tickets", nil, 0, 1)
	f("tickets", []Event{ev("ticket", -day, 1)}, 0, 0.75)
	f("tickets", []Event{ev("ticket", 0, 1), ev("ticket", 0, 1), ev("ticket", 0, 1)}, 0, 0)
	f("refunds", []Event{ev("refund", -day, 40)}, 0, 0.6)
	// average: S/W between min and max; no data without events.
	f("nps", nil, 0, -1)
	f("nps", []Event{ev("nps", 0, 7)}, 0, 0.7)
	f("nps", []Event{ev("nps", 0, 7)}, 30*day, 0.7) // decay does not change a mean
	f("nps", []Event{ev("nps", -day, 10), ev("nps", 0, 4)}, 0, 0.6)
	f("nps", []Event{ev("nps", -day, 10), ev("nps", 0, 4)}, 5*day, 0.6)
	f("nps", []Event{ev("nps", 0, 11)}, 0, 1)
	f("nps", []Event{ev("nps", 0, -3)}, 0, 0)
	// negative average: 1 − (mean − min)/(max − min).
	f("csat_bad", nil, 0, -1)
	f("csat_bad", []Event{ev("csat", 0, 2)}, 0, 0.75)
	f("csat_bad", []Event{ev("csat", -day, 5), ev("csat", 0, 2)}, 0, 1-(2.5+2)/1.5/4+0.25)
	// recency: 2^(−(T − t_last)/h), 0 without events.
	f("seen", nil, 0, 0)
	f("seen", []Event{ev("login", 0, 1)}, 0, 1)
	f("seen", []Event{ev("login", 0, 1)}, 12*hour, 0.5)
	f("seen", []Event{ev("login", -day, 1)}, 0, 0.25)
	f("seen", []Event{ev("login", 0, 1), ev("login", -day, 1)}, 12*hour, 0.5) // latest wins, late events too
	// negative recency: 1 − recency; 1 without events.
	f("quiet", nil, 0, 1)
	f("quiet", []Event{ev("alarm", -12*hour, 1)}, 0, 0.5)
	f("quiet", []Event{ev("alarm", 0, 1)}, 0, 0)
	// Segment target override: logins target 8 for big.
	big := func(evs ...Event) []Event { return append(evs, segEv("login", -100*day, "big")) }
	f("logins", big(ev("login", 0, 1), ev("login", 0, 1)), 0, 2.0/8)
	f("refunds", big(ev("refund", 0, 40)), 0, 0.6)
	// Unknown segment: base targets.
	f("logins", []Event{segEv("login", 0, "nope"), ev("login", 0, 1)}, 0, 0.5)
}

func TestEvaluateScore(t *testing.T) {
	m := mustModel(t, evalModel)
	// Base profile. At t0:
	//   usage:     logins 1.5/4 = .375, spend .55        -> .4625, weight 3
	//   support:   tickets 1 − .5/2 = .75, refunds 1     -> .875, weight 1
	//   sentiment: nps .6; csat_bad no data               -> .6, weight 1
	//   activity:  seen 1, quiet 1 (no alarm)             -> 1, weight 1
	// score = 100·(3·.4625 + .875 + .6 + 1)/6 = 100·3.8625/6 = 64.375
	evs := []Event{
		ev("login", -day, 1), ev("login", 0, 1), ev("pay", -2*day, 50), ev("pay", 0, 30),
		ev("ticket", -day, 1), ev("nps", -day, 10), ev("nps", 0, 4), ev("unrelated", 0, 1),
	}
	st := fold(m, evs)
	e := m.Evaluate(st, t0)
	if !e.HasScore || !approx(e.Score, 64.375, 1e-12) || e.Band != BandYellow || e.Segment != "" || e.At != t0 {
		t.Fatalf("got %+v", e)
	}
	wantCats := []struct {
		score, points float64
	}{{0.4625, 100 * 3 * 0.4625 / 6}, {0.875, 100 * 0.875 / 6}, {0.6, 100 * 0.6 / 6}, {1, 100.0 / 6}}
	total := 0.0
	for i, w := range wantCats {
		c := e.Categories[i]
		if !c.HasData || !approx(c.Score, w.score, 1e-12) || !approx(c.Points, w.points, 1e-12) {
			t.Errorf("category %s: %+v, want %+v", c.Name, c, w)
		}
		sum := 0.0
		for _, s := range c.Signals {
			sum += s.Points
		}
		if !approx(sum, c.Points, 1e-12) {
			t.Errorf("category %s: signal points %v != %v", c.Name, sum, c.Points)
		}
		total += c.Points
	}
	if !approx(total, e.Score, 1e-12) {
		t.Fatalf("points add up to %v, score %v", total, e.Score)
	}
	// csat_bad has no data and no points; nps carries its category alone.
	if s, _ := signalScore(&e, "csat_bad"); s.HasData || s.Points != 0 {
		t.Fatalf("csat_bad: %+v", s)
	}
	if s, _ := signalScore(&e, "nps"); !approx(s.Points, 10, 1e-12) {
		t.Fatalf("nps points: %+v", s)
	}

	// Segment big: weights support 3, activity 0 (left out), logins target 8,
	// bands 50/80.
	//   usage .5·(1.5/8 + .55) = .36875; support .875; sentiment .6
	//   score = 100·(3·.36875 + 3·.875 + .6)/7 = 61.875 -> yellow (50..80)
	st = fold(m, append(evs, segEv("ticket", -3*day, "big")))
	// The extra old ticket adds 1/8 to tickets' S: 1 − (.5+.125)/2 = .6875.
	// support = (.6875 + 1)/2 = .84375; score = 100·(1.10625 + 2.53125 + .6)/7.
	e = m.Evaluate(st, t0)
	want := 100 * (3*0.36875 + 3*0.84375 + 0.6) / 7
	if e.Segment != "big" || !approx(e.Score, want, 1e-12) || e.Band != BandYellow {
		t.Fatalf("big: got %v %v %v, want %v", e.Segment, e.Score, e.Band, want)
	}
	if a := e.Categories[3]; a.HasData || a.Points != 0 || a.Weight != 0 {
		t.Fatalf("weight-0 category must be left out: %+v", a)
	}
	if e.Categories[1].Weight != 3 || e.Categories[0].Weight != 3 {
		t.Fatalf("segment weights: %+v", e.Categories)
	}
	// Band by segment: 45 is red for big, yellow for the base.
	if m.RawBand(45, "big") != BandRed || m.RawBand(45, "") != BandYellow || m.RawBand(45, "nope") != BandYellow {
		t.Fatal("RawBand ignores segment bands")
	}
}

func TestEvaluateNoData(t *testing.T) {
	m := mustModel(t, `name: avg
version: "1"
bands: {red: 40, yellow: 70}
categories:
  - name: a
    weight: 1
    signals:
      - {event: nps, kind: average, half_life: 1d, min: 0, max: 10}
  - name: b
    weight: 3
    signals:
      - {event: csat, kind: average, half_life: 1d, min: 0, max: 10}
segments:
  only_b:
    weights: {a: 0}
`)
	// No events at all: no category has data, no score, no band.
	e := m.Evaluate(m.NewState(), t0)
	if e.HasScore || e.Score != 0 || e.Band != BandNone {
		t.Fatalf("empty: %+v", e)
	}
	// Events no signal reads change nothing.
	st := m.NewState()
	if m.Apply(st, &Event{Type: "login", Time: t0}) || st.Events != 0 {
		t.Fatal("unread event applied")
	}
	// One category with data: the score is that category alone.
	st = fold(m, []Event{ev("nps", 0, 8)})
	e = m.Evaluate(st, t0)
	if !e.HasScore || !approx(e.Score, 80, 1e-12) || e.Band != BandGreen || e.Categories[1].HasData {
		t.Fatalf("one category: %+v", e)
	}
	o := m.Step(m.NewState(), t0)
	if o.Changed || o.Alert != AlertNone || o.FirstScore || o.Eval.HasScore {
		t.Fatalf("Step without data: %+v", o)
	}
	// The only category with data has weight 0 in the segment: no score.
	st = fold(m, []Event{segEv("nps", 0, "only_b")})
	e = m.Evaluate(st, t0)
	if e.HasScore || e.Band != BandNone {
		t.Fatalf("weight-0 only: %+v", e)
	}
}

func TestHysteresis(t *testing.T) {
	m := mustModel(t, evalModel) // bands 40/70, hysteresis 2; big 50/80
	f := func(prev Band, score float64, want Band) {
		t.Helper()
		if got := m.band(score, prev, m.base.bands); got != want {
			t.Fatalf("band(%v, prev %v) = %v, want %v", score, prev, got, want)
		}
	}
	// First score: no hysteresis.
	f(BandNone, 0, BandRed)
	f(BandNone, 39.999, BandRed)
	f(BandNone, 40, BandYellow)
	f(BandNone, 69.999, BandYellow)
	f(BandNone, 70, BandGreen)
	f(BandNone, 100, BandGreen)
	// Up from red: needs ≥ boundary + 2.
	f(BandRed, 40, BandRed)
	f(BandRed, 41.999, BandRed)
	f(BandRed, 42, BandYellow)
	f(BandRed, 71.999, BandYellow)
	f(BandRed, 72, BandGreen)
	// Yellow: down needs < 38, up needs ≥ 72.
	f(BandYellow, 38, BandYellow)
	f(BandYellow, 37.999, BandRed)
	f(BandYellow, 39.5, BandYellow)
	f(BandYellow, 70, BandYellow)
	f(BandYellow, 71.999, BandYellow)
	f(BandYellow, 72, BandGreen)
	// Down from green: needs < 68 for yellow, < 38 for red.
	f(BandGreen, 69, BandGreen)
	f(BandGreen, 68, BandGreen)
	f(BandGreen, 67.999, BandYellow)
	f(BandGreen, 38, BandYellow)
	f(BandGreen, 37.999, BandRed)
	// Segment bands.
	big := m.profiles["big"].bands
	if m.band(51, BandRed, big) != BandRed || m.band(52, BandRed, big) != BandYellow || m.band(47.9, BandYellow, big) != BandRed {
		t.Fatal("segment hysteresis")
	}
	// Without hysteresis the raw boundaries apply.
	m0 := mustModel(t, strings.Replace(evalModel, "hysteresis: 2", "hysteresis: 0", 1))
	if m0.band(70, BandGreen, m0.base.bands) != BandGreen || m0.band(69.999, BandGreen, m0.base.bands) != BandYellow ||
		m0.band(40, BandRed, m0.base.bands) != BandYellow {
		t.Fatal("hysteresis 0")
	}
}

func TestDrivers(t *testing.T) {
	m := mustModel(t, evalModel)
	cur := Evaluation{Categories: []CategoryScore{
		{Name: "usage", Signals: []SignalScore{{Name: "logins", Points: 10}, {Name: "spend", Points: 5}}},
		{Name: "support", Signals: []SignalScore{{Name: "tickets", Points: 1}, {Name: "refunds", Points: 2}}},
		{Name: "sentiment", Signals: []SignalScore{{Name: "nps", Points: 3}, {Name: "csat_bad", Points: 0}}},
		{Name: "activity", Signals: []SignalScore{{Name: "seen", Points: 4}, {Name: "quiet", Points: 0}}},
	}}
	prev := []float64{12, 5.004, 4, 1, 3.006, 0, 4.0049, 0}
	got := m.Drivers(prev, &cur, 3)
	want := []Driver{{"support", "tickets", -3}, {"usage", "logins", -2}, {"support", "refunds", 1}}
	if len(got) != len(want) {
		t.Fatalf("drivers %+v", got)
	}
	for i := range want {
		if got[i].Category != want[i].Category || got[i].Signal != want[i].Signal || !approx(got[i].Points, want[i].Points, 1e-12) {
			t.Fatalf("drivers %+v, want %+v", got, want)
		}
	}
	// All drivers: nps moved by −0.006 (kept); spend −0.004 and
	// seen −0.0049 ignored.
	all := m.Drivers(prev, &cur, 10)
	if len(all) != 4 || all[3].Signal != "nps" {
		t.Fatalf("all drivers %+v", all)
	}
	// Ties keep model order; nil prev counts as zero.
	tie := Evaluation{Categories: []CategoryScore{{Name: "c", Signals: []SignalScore{{Name: "a", Points: -2}, {Name: "b", Points: 2}, {Name: "x", Points: 3}}}}}
	got = m.Drivers(nil, &tie, 3)
	if len(got) != 3 || got[0].Signal != "x" || got[1].Signal != "a" || got[2].Signal != "b" {
		t.Fatalf("tie drivers %+v", got)
	}
}

func TestStep(t *testing.T) {
	m := mustModel(t, evalModel)
	st := m.NewState()
	apply := func(evs ...Event) {
		for i := range evs {
			m.Apply(st, &evs[i])
		}
	}
	// First score from an nps of 5 and a ticket at t0: usage 0 (no logins,
	// no spend), support (1 − 1/2 + 1)/2 = .75, sentiment .5, activity
	// (0 + 1)/2 = .5 → 100·(3·0 + .75 + .5 + .5)/6 = 29.1666…: red, and a
	// first score in red raises a low alert.
	apply(ev("nps", 0, 5), ev("ticket", 0, 1))
	o := m.Step(st, t0)
	if !o.Changed || !o.FirstScore || o.HadPrevious || !o.BandChanged || o.Alert != AlertLow || o.Eval.Band != BandRed ||
		!approx(o.Eval.Score, 100*1.75/6, 1e-12) || !approx(o.ScoreDelta, o.Eval.Score, 1e-12) {
		t.Fatalf("first: %+v", o)
	}
	// First drivers: every signal with points, largest first.
	// Points: tickets 100·.5/2/6 = 4.1667, refunds 8.333, nps 8.333, quiet 8.333.
	if len(o.Drivers) != 3 || o.Drivers[0].Signal != "refunds" || o.Drivers[1].Signal != "nps" || o.Drivers[2].Signal != "quiet" {
		t.Fatalf("first drivers: %+v", o.Drivers)
	}
	if !st.Published || st.Band != BandRed || st.Score != o.Eval.Score || len(st.Points) != m.Signals() {
		t.Fatalf("state after first: %+v", st)
	}
	// Re-evaluating without change publishes nothing and raises no alert.
	o = m.Step(st, t0)
	if o.Changed || o.Alert != AlertNone || !o.HadPrevious || o.PrevBand != BandRed || o.Drivers != nil {
		t.Fatalf("repeat: %+v", o)
	}
	// Small moves below change_min_delta (1) are not published, and the
	// delta is measured from the last published score, so they accumulate.
	// Let time pass hour by hour (the ticket decays, so the score rises
	// slowly) and check the bookkeeping at every step.
	prevScore := st.Score
	var steps int
	for at := t0 + hour; at < t0+10*day; at += hour {
		o = m.Step(st, at)
		if o.Changed {
			steps++
			if math.Abs(o.Eval.Score-prevScore) < 1 && !o.BandChanged {
				t.Fatalf("published a move of %v", o.Eval.Score-prevScore)
			}
			if o.PrevScore != prevScore || !approx(o.ScoreDelta, o.Eval.Score-prevScore, 1e-12) {
				t.Fatalf("prev score bookkeeping: %+v", o)
			}
			prevScore = o.Eval.Score
		} else if math.Abs(o.Eval.Score-prevScore) >= 1 {
			t.Fatalf("unpublished move of %v", o.Eval.Score-prevScore)
		}
		if st.Score != prevScore {
			t.Fatal("state score is not the last published one")
		}
	}
	if steps == 0 {
		t.Fatal("time never moved the score by 1 point")
	}
	// Recovery: lots of logins, spend and a green nps → leaves red.
	at := t0 + 10*day
	for i := 0; i < 10; i++ {
		apply(ev("login", 10*day, 1))
	}
	apply(ev("pay", 10*day, 200), ev("nps", 10*day, 10), ev("nps", 10*day, 10))
	o = m.Step(st, at)
	if !o.Changed || !o.BandChanged || o.Alert != AlertRecovered || o.PrevBand != BandRed || o.Eval.Band == BandRed {
		t.Fatalf("recovery: %+v", o)
	}
	// Drivers point the right way: logins and spend rose.
	for _, d := range o.Drivers {
		if (d.Signal == "logins" || d.Signal == "spend" || d.Signal == "seen") && d.Points <= 0 {
			t.Fatalf("driver sign: %+v", o.Drivers)
		}
	}
	if len(o.Drivers) != 3 || math.Abs(o.Drivers[0].Points) < math.Abs(o.Drivers[1].Points) || math.Abs(o.Drivers[1].Points) < math.Abs(o.Drivers[2].Points) {
		t.Fatalf("driver order: %+v", o.Drivers)
	}
	// Band change with a tiny score move is published: green (≥ 72) then
	// just under 68 with hysteresis is yellow.
	m0 := mustModel(t, strings.Replace(evalModel, "change_min_delta: 1", "change_min_delta: 50", 1))
	st0 := m0.NewState()
	st0.Published, st0.Score, st0.Band = true, 68.5, BandGreen
	st0.Points = make([]float64, m0.Signals())
	// Logins at target, spend .55, no tickets or refunds, no sentiment
	// data, seen 1, quiet 1 → usage .775, support 1, activity 1 →
	// 100·(2.325 + 1 + 1)/5 = 86.5.
	for i := 0; i < 4; i++ {
		e := ev("login", 0, 1)
		m0.Apply(st0, &e)
	}
	e := ev("pay", 0, 55)
	m0.Apply(st0, &e)
	o = m0.Step(st0, t0)
	if want := 100 * (3*0.775 + 2) / 5; !approx(o.Eval.Score, want, 1e-12) || o.Eval.Band != BandGreen || o.Changed {
		t.Fatalf("green hold: %+v want %v", o, want)
	}
	// A day later: logins .5, spend .55/√2, seen .25 → usage ≈ .4445,
	// activity .625 → ≈ 59.17: yellow (band change, delta below 50):
	// published, no low alert.
	o = m0.Step(st0, t0+day)
	if !o.Changed || !o.BandChanged || o.Eval.Band != BandYellow || o.Alert != AlertNone || math.Abs(o.ScoreDelta) >= 50 {
		t.Fatalf("band change: %+v", o)
	}
	// change_min_delta 0 publishes every evaluation.
	mz := mustModel(t, strings.Replace(evalModel, "change_min_delta: 1", "change_min_delta: 0", 1))
	stz := fold(mz, []Event{ev("nps", 0, 5)})
	for i := 0; i < 3; i++ {
		if o := mz.Step(stz, t0); !o.Changed {
			t.Fatalf("change_min_delta 0, step %d not published", i)
		}
	}
	// A first score in green raises no alert.
	stg := fold(m, []Event{ev("nps", 0, 10), ev("pay", 0, 100), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)})
	if o := m.Step(stg, t0); !o.FirstScore || o.Alert != AlertNone || o.Eval.Band != BandGreen {
		t.Fatalf("first green: %+v", o)
	}
}

func TestSegmentLatestWins(t *testing.T) {
	m := mustModel(t, evalModel)
	f := func(want string, evs ...Event) {
		t.Helper()
		// Every permutation order must agree; check forward and reverse.
		st := fold(m, evs)
		rev := make([]Event, len(evs))
		for i := range evs {
			rev[len(evs)-1-i] = evs[i]
		}
		st2 := fold(m, rev)
		if st.Segment != want || st2.Segment != want || st.SegmentTime != st2.SegmentTime {
			t.Fatalf("segment %q / %q (reversed), want %q", st.Segment, st2.Segment, want)
		}
	}
	f("")
	f("", ev("login", 0, 1))
	f("a", segEv("login", 0, "a"))
	f("a", segEv("login", 2, "a"), segEv("login", 1, "b"))
	f("b", segEv("login", 1, "a"), segEv("login", 2, "b"))
	f("b", segEv("login", 3, "a"), segEv("login", 3, "b")) // tie: larger name
	f("b", segEv("login", 3, "b"), segEv("login", 3, "a"))
	f("a", segEv("login", 1, "a"), ev("login", 5, 1)) // events without a segment keep it
	// An event of a type no signal reads still names the segment (issue 16:
	// an account_updated event announcing the plan).
	f("b", segEv("login", 1, "a"), segEv("unread", 5, "b"))
	f("a", segEv("unread", 1, "b"), segEv("login", 5, "a"))
	f("b", segEv("unread", 1, "b"))
	f("z", segEv("login", -5, "z"), segEv("ticket", -9, "a"), segEv("nps", -7, "m"))
}

// TestFolds: what Apply changes is what Folds says, so the stream and the
// offline scorer can drop the rest before loading a state.
func TestFolds(t *testing.T) {
	m := mustModel(t, evalModel)
	for _, tc := range []struct {
		ev   Event
		want bool
	}{
		{ev("login", 0, 1), true},
		{segEv("login", 0, "big"), true},
		{ev("unread", 0, 1), false},
		{segEv("unread", 0, "big"), true},
		{Event{CustomerID: "c", Type: TypeOverride, Time: t0, HasTime: true, Value: 50}, true},
	} {
		st := m.NewState()
		if got := m.Folds(&tc.ev); got != tc.want {
			t.Errorf("Folds(%s %q) = %v, want %v", tc.ev.Type, tc.ev.Segment, got, tc.want)
		}
		if got := m.Apply(st, &tc.ev); got != tc.want || (st.Events == 1) != tc.want {
			t.Errorf("Apply(%s %q) = %v with %d events, want %v", tc.ev.Type, tc.ev.Segment, got, st.Events, tc.want)
		}
	}
	// The segment an unread event names switches the segment's overrides on.
	st := fold(m, []Event{ev("login", 0, 1), segEv("account_updated", 1, "big")})
	if e := m.Evaluate(st, t0+1); e.Segment != "big" {
		t.Errorf("evaluated with segment %q, want big", e.Segment)
	}
}
