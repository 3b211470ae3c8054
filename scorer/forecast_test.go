package scorer

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const ms = Grid

// reachedAt reports, with Evaluate, whether the band at t of st, seen from
// band b (the band at the forecast's start, against which hysteresis
// applies), is target or worse.
func reachedAt(m *Model, st *State, b Band, t int64, target Band) bool {
	cp := *st
	cp.Band = b
	e := m.Evaluate(&cp, t)
	return e.HasScore && e.Band <= target
}

// forecastState draws a customer's events, sometimes an override (with or
// without expiry), folds them and publishes a step some time after the last
// one, like the pipeline; from is that instant or a little later.
func forecastState(t *rapid.T, m *Model) (st *State, from int64) {
	evs := genEvents(t, "ev", 30)
	if rapid.Bool().Draw(t, "override") {
		o := Event{CustomerID: "c", Type: TypeOverride, Time: t0 + rapid.Int64Range(-10*day, 0).Draw(t, "override.time"), HasTime: true,
			Value: rapid.Float64Range(0, 100).Draw(t, "override.value"), By: "ana"}
		if rapid.Bool().Draw(t, "override.expires") {
			o.ExpiresAt, o.HasExpiresAt = o.Time+rapid.Int64Range(1, 40*day).Draw(t, "override.for"), true
		}
		evs = append(evs, o)
	}
	st = fold(m, evs)
	stepAt := lastTime(evs) + rapid.Int64Range(0, 3*day).Draw(t, "step")
	m.Step(st, stepAt)
	return st, stepAt + rapid.Int64Range(0, 2*day).Draw(t, "from")
}

// TestPropertyReachExact: Reach's instant is a whole millisecond inside the
// horizon at which the band (Evaluate's, hysteresis against the band at
// from) is the target or worse, and it is not at the millisecond before nor
// at any millisecond of a fine grid from from on; without an instant, no
// millisecond of the grid up to the horizon reaches it.
func TestPropertyReachExact(t *testing.T) {
	for _, src := range wakeUpModels {
		m := mustModel(t, src)
		rapid.Check(t, func(t *rapid.T) {
			st, from := forecastState(t, m)
			target := rapid.SampledFrom([]Band{BandYellow, BandRed}).Draw(t, "target")
			within := time.Duration(rapid.Int64Range(int64(time.Hour), int64(ForecastHorizon)).Draw(t, "within"))
			e := m.Evaluate(st, from)
			at, ok := m.Reach(st, from, target, within)
			if !e.HasScore || e.Band <= target {
				if ok {
					t.Fatalf("band %v at from (score %v), target %v: Reach says +%v", e.Band, e.HasScore, target, time.Duration(at-from))
				}
				return
			}
			b := e.Band
			end := from + int64(within)
			if ok {
				if at <= from || at > end || at%ms != 0 {
					t.Fatalf("Reach +%v outside (from, from+%v] or not a whole millisecond", time.Duration(at-from), within)
				}
				if !reachedAt(m, st, b, at, target) {
					t.Fatalf("not %v at Reach (+%v): score %v", target, time.Duration(at-from), m.Evaluate(st, at).Score)
				}
				if before := at - ms; before > from && reachedAt(m, st, b, before, target) {
					t.Fatalf("already %v a millisecond before Reach (+%v)", target, time.Duration(at-from))
				}
				end = at - ms
			}
			const n = 1000
			for k := 1; k < n && end > from; k++ {
				u := floorGrid(from + (end-from)/n*int64(k))
				if u > from && reachedAt(m, st, b, u, target) {
					t.Fatalf("%v at +%v, before Reach +%v (%v)", target, time.Duration(u-from), time.Duration(at-from), ok)
				}
			}
		})
	}
}

// TestPropertyForecastMonotone: with no event, a later start never gives an
// earlier forecast, and a start before the forecast instant gives the same
// instant.
func TestPropertyForecastMonotone(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		st, from := forecastState(t, m)
		f1 := m.Forecast(st, from)
		from2 := from + rapid.Int64Range(0, 30*day).Draw(t, "later")
		f2 := m.Forecast(st, from2)
		check := func(name string, h1 bool, t1 int64, h2 bool, t2 int64) {
			if !h1 || !h2 {
				return
			}
			if t2 < t1 {
				t.Fatalf("%s: from +%v gives %v, earlier than %v from from", name, time.Duration(from2-from), time.Duration(t2-from), time.Duration(t1-from))
			}
			if from2 < t1 && t2 != t1 {
				t.Fatalf("%s: from +%v (before it) gives %v, not %v", name, time.Duration(from2-from), time.Duration(t2-from), time.Duration(t1-from))
			}
		}
		check("yellow", f1.HasYellow, f1.YellowAt, f2.HasYellow, f2.YellowAt)
		check("red", f1.HasRed, f1.RedAt, f2.HasRed, f2.RedAt)
		if f1.HasYellow && f1.HasRed && f1.RedAt < f1.YellowAt {
			t.Fatalf("red at %v before yellow at %v", f1.RedAt, f1.YellowAt)
		}
	})
}

// TestPropertyForecastIsWhatThePipelinePublishes: stepping a customer the
// way the sweeper does (at each NextChange, until the horizon), the first
// publication in yellow or worse is at YellowAt and the health.low alert at
// RedAt, to the nanosecond; without a forecast, neither happens.
func TestPropertyForecastIsWhatThePipelinePublishes(t *testing.T) {
	for _, src := range wakeUpModels {
		m := mustModel(t, src)
		rapid.Check(t, func(t *rapid.T) {
			st, from := forecastState(t, m)
			m.Step(st, from) // in sync at from, as after the sweeper's evaluation
			f := m.Forecast(st, from)
			end := from + int64(ForecastHorizon)
			var yellowAt, redAt int64
			startBand := st.Band
			for at, i := from, 0; redAt == 0; i++ {
				if i > 2000 {
					t.Fatal("more than 2000 publications")
				}
				next, ok := m.NextChange(st, at)
				if !ok || next > end {
					break
				}
				o := m.Step(st, next)
				if !o.Changed && !o.Dropped {
					t.Fatalf("nothing published at NextChange +%v", time.Duration(next-from))
				}
				if yellowAt == 0 && o.Changed && o.Eval.Band <= BandYellow && startBand > BandYellow {
					yellowAt = next
				}
				if o.Alert == AlertLow {
					redAt = next
				}
				at = next
			}
			if startBand > BandYellow && (f.HasYellow != (yellowAt != 0) || (f.HasYellow && f.YellowAt != yellowAt)) {
				t.Fatalf("forecast yellow %v at +%v; the pipeline publishes it at +%v", f.HasYellow, time.Duration(f.YellowAt-from), time.Duration(yellowAt-from))
			}
			if startBand > BandRed && (f.HasRed != (redAt != 0) || (f.HasRed && f.RedAt != redAt)) {
				t.Fatalf("forecast red %v at +%v; the pipeline publishes health.low at +%v", f.HasRed, time.Duration(f.RedAt-from), time.Duration(redAt-from))
			}
		})
	}
}

// TestForecastHandComputed: one count signal, 4 logins at target 4, a
// one-day half-life and hysteresis 2: the score is 100·2^(−Δ/1d), yellow
// below 68 and red below 38, at the first whole millisecond after
// Δ = log2(100/68) d and log2(100/38) d.
func TestForecastHandComputed(t *testing.T) {
	m := oneSignal(t, "hysteresis: 2", "positive")
	st := fold(m, []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)})
	m.Step(st, t0)
	f := m.Forecast(st, t0)
	want := func(x float64) int64 { return ceilGrid(t0 + int64(math.Ceil(float64(day)*math.Log2(1/x)))) }
	if !f.HasYellow || f.YellowAt != want(0.68) || !f.HasRed || f.RedAt != want(0.38) || f.Band != BandGreen {
		t.Fatalf("forecast %+v; want green, yellow at +%v, red at +%v", f, time.Duration(want(0.68)-t0), time.Duration(want(0.38)-t0))
	}
	v := f.View()
	if v.HorizonDays != 365 || *v.YellowAt != FormatTime(f.YellowAt) || *v.RedAt != FormatTime(f.RedAt) {
		t.Fatalf("view %+v", v)
	}
	// Already yellow: no yellow_at; red as before. The instants do not
	// depend on when the forecast starts.
	if g := m.Forecast(st, want(0.68)); g.HasYellow || !g.HasRed || g.RedAt != f.RedAt || g.Band != BandYellow {
		t.Fatalf("forecast from yellow %+v", g)
	}
	// Already red: nothing.
	if g := m.Forecast(st, want(0.38)); g.HasYellow || g.HasRed || g.Band != BandRed {
		t.Fatalf("forecast from red %+v", g)
	}
	// Beyond the horizon: with a 300-day half-life the score reaches 68
	// after 167 days and 38 after 419.
	slow := mustModel(t, `name: one
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 2
categories:
  - name: c
    weight: 1
    signals:
      - {name: logins, event: login, kind: count, half_life: 300d, target: 4}
`)
	st = fold(slow, []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)})
	slow.Step(st, t0)
	if g := slow.Forecast(st, t0); !g.HasYellow || g.HasRed {
		t.Fatalf("300-day half-life: %+v; want yellow within a year, red not", g)
	}
	if _, ok := m.Reach(st, t0, BandGreen, ForecastHorizon); ok {
		t.Fatal("Reach accepts green as a target")
	}
}

// TestForecastOverride: an override holds the score at its value until it
// expires; then the events' score applies at once.
func TestForecastOverride(t *testing.T) {
	m := oneSignal(t, "hysteresis: 2", "positive")
	evs := []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)}
	o := ev(TypeOverride, 0, 95)
	o.By, o.Reason = "ana@example.com", "renewal signed"
	o.ExpiresAt, o.HasExpiresAt = t0+3*day+1, true // 1 ns past: the first whole millisecond after
	evs = append(evs, o)
	st := fold(m, evs)
	m.Step(st, t0)
	f := m.Forecast(st, t0)
	// At expiry the events give 100·2^−3 = 12.5: red at once.
	if f.Band != BandGreen || !f.HasYellow || !f.HasRed || f.YellowAt != t0+3*day+ms || f.RedAt != f.YellowAt {
		t.Fatalf("forecast %+v; want yellow and red at expiry (+%v)", f, 3*day+ms)
	}
	// Without expiry: never.
	st.Override.Expires = NoExpiry
	if f := m.Forecast(st, t0); f.HasYellow || f.HasRed {
		t.Fatalf("a permanent override: %+v", f)
	}
	// The view shows the override and the events' score beside it.
	st.Override.Expires = t0 + 3*day
	e := m.Evaluate(st, t0+day)
	v := m.View("c", st, &e, true)
	if *v.Score != 95 || *v.Band != "green" || *v.EventScore != 50 || *v.EventBand != "yellow" || v.Override == nil ||
		v.Override.By != "ana@example.com" || v.Override.Reason != "renewal signed" || v.Override.Score != 95 ||
		v.Override.SetAt != FormatTime(t0) || *v.Override.ExpiresAt != FormatTime(t0+3*day) {
		t.Fatalf("view %+v, override %+v", v, v.Override)
	}
	sum := 0.0
	for _, c := range v.Categories {
		sum += c.Contribution
	}
	if math.Abs(sum-*v.EventScore) > 0.01 {
		t.Fatalf("categories add up to %v, event score %v", sum, *v.EventScore)
	}
	// After expiry: no override, event score = score.
	e = m.Evaluate(st, t0+4*day)
	if v := m.View("c", st, &e, false); v.Override != nil || *v.EventScore != *v.Score || *v.EventBand != *v.Band {
		t.Fatalf("after expiry %+v", v)
	}
}

func BenchmarkForecast(b *testing.B) {
	m := DefaultModel()
	st := benchState(m)
	m.Step(st, st.LastEvent)
	b.ReportAllocs()
	for b.Loop() {
		m.Forecast(st, st.LastEvent)
	}
}
