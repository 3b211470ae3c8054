package scorer

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const sec = int64(time.Second)

// needsPublication is NextChange's condition computed independently, with
// Evaluate: the band or a move of max(decay_step, change_min_delta).
func needsPublication(m *Model, st *State, at int64) bool {
	e := m.Evaluate(st, at)
	if !e.HasScore {
		return false
	}
	return e.Band != st.Band || math.Abs(e.Score-st.Score) >= math.Max(m.DecayStep, m.ChangeMinDelta)
}

// bruteNextChange scans from from on: every minute, then every second of
// the minute before the first hit.
func bruteNextChange(m *Model, st *State, from, horizon int64) (int64, bool) {
	for t := from + time.Minute.Nanoseconds(); t <= from+horizon; t += time.Minute.Nanoseconds() {
		if needsPublication(m, st, t) {
			for u := max(from+sec, t-time.Minute.Nanoseconds()); u <= t; u += sec {
				if needsPublication(m, st, u) {
					return u, true
				}
			}
		}
	}
	return 0, false
}

// oneSignal is a model of one count signal, so the score is
// 100·min(S·2^(−Δ/h)/target, 1) (negative: 100 minus that).
func oneSignal(t *testing.T, extra, direction string) *Model {
	return mustModel(t, fmt.Sprintf(`name: one
version: "1"
bands: {red: 40, yellow: 70}
%s
categories:
  - name: c
    weight: 1
    signals:
      - {name: logins, event: login, kind: count, half_life: 1d, target: 4, direction: %s}
`, extra, direction))
}

func TestNextChangeHandComputed(t *testing.T) {
	// f folds n logins at t0, steps at t0 and checks that NextChange from t0
	// is within a second after t0 + h·log2(n/(target·x)), the instant the
	// sub-score S·2^(−Δ/h)/target reaches x.
	f := func(m *Model, n int, x float64, wantBand Band) {
		t.Helper()
		st := m.NewState()
		for range n {
			e := ev("login", 0, 1)
			m.Apply(st, &e)
		}
		m.Step(st, t0)
		got, ok := m.NextChange(st, t0)
		want := t0 + int64(float64(day)*math.Log2(float64(n)/(4*x)))
		if !ok || got < want || got > want+sec {
			t.Fatalf("%d logins, sub %v: NextChange %v (%v), want %v", n, x, time.Duration(got-t0), ok, time.Duration(want-t0))
		}
		if o := m.Step(st, got); !o.Changed || o.Eval.Band != wantBand {
			t.Fatalf("Step at NextChange: %+v", o)
		}
	}
	// Band only (decay_step 100): green → yellow below 70, yellow → red
	// below 40.
	m := oneSignal(t, "decay_step: 100", "positive")
	f(m, 4, 0.7, BandYellow)
	f(m, 8, 0.7, BandYellow) // clamped at 1 until S/target falls to 1
	f(m, 3, 0.7, BandYellow) // first score 75 is green
	f(m, 2, 0.4, BandRed)    // first score 50 is yellow
	// With hysteresis 2 the band moves at 68 and 38.
	m = oneSignal(t, "hysteresis: 2\ndecay_step: 100", "positive")
	f(m, 4, 0.68, BandYellow)
	// decay_step 5 (the default): 100 → 95.
	m = oneSignal(t, "", "positive")
	f(m, 4, 0.95, BandGreen)
	f(m, 40, 0.95, BandGreen)
	// change_min_delta above decay_step wins.
	m = oneSignal(t, "change_min_delta: 12", "positive")
	f(m, 4, 0.88, BandGreen)

	// The band chain: step at each predicted instant until red.
	m = oneSignal(t, "hysteresis: 2\ndecay_step: 100", "positive")
	st := fold(m, []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)})
	m.Step(st, t0)
	y, _ := m.NextChange(st, t0)
	m.Step(st, y)
	r, ok := m.NextChange(st, y)
	if want := t0 + int64(float64(day)*math.Log2(1/0.38)); !ok || r < want || r > want+sec || st.Band != BandYellow {
		t.Fatalf("red at %v, want %v", time.Duration(r-t0), time.Duration(want-t0))
	}
	if o := m.Step(st, r); o.Alert != AlertLow {
		t.Fatalf("no low alert: %+v", o)
	}
	// In red at score 38 − ε the score only falls, by at most 38 points:
	// no band change and no 100-point move ever.
	if at, ok := m.NextChange(st, r); ok {
		t.Fatalf("red customer changes again at %v", time.Duration(at-r))
	}

	// A negative signal rises: 4 tickets of target 4 score 0 (red); the
	// score reaches 5 when the sub-score falls to 0.95.
	m = oneSignal(t, "", "negative")
	f(m, 4, 0.95, BandRed)
	// … and yellow (no hysteresis) at 40, when it falls to 0.6.
	m = oneSignal(t, "decay_step: 100", "negative")
	f(m, 4, 0.6, BandYellow)
}

func TestNextChangeNoScore(t *testing.T) {
	m := mustModel(t, evalModel)
	st := m.NewState()
	if _, ok := m.NextChange(st, t0); ok {
		t.Fatal("unpublished state has a next change")
	}
	if _, ok := m.ScoreAt(st, t0); !ok {
		t.Fatal("counts without events still score")
	}
	avg := mustModel(t, `name: avg
version: "1"
bands: {red: 40, yellow: 70}
categories:
  - name: a
    weight: 1
    signals:
      - {event: nps, kind: average, half_life: 1d, min: 0, max: 10}
`)
	st = avg.NewState()
	if _, ok := avg.ScoreAt(st, t0); ok {
		t.Fatal("score without data")
	}
	// An average never moves with time.
	st = fold(avg, []Event{ev("nps", 0, 3)})
	avg.Step(st, t0)
	if at, ok := avg.NextChange(st, t0); ok {
		t.Fatalf("an average changes at %v", at)
	}
}

// TestNextChangeSilentCustomer: a week of daily logins, then silence. The
// customer goes red at the predicted instant, equal to a scan at 1 s
// resolution, and each prediction on the way is a publication.
func TestNextChangeSilentCustomer(t *testing.T) {
	m := DefaultModel()
	st := m.NewState()
	for d := range 7 {
		e := ev("login", int64(d)*day, 1)
		m.Apply(st, &e)
		m.Step(st, e.Time)
	}
	from := st.LastEvent
	if o := m.Step(st, from); st.Band != BandYellow {
		t.Fatalf("after a week of logins: %+v", o.Eval)
	}
	lows := 0
	for i := 0; st.Band != BandRed; i++ {
		if i > 20 {
			t.Fatal("never red")
		}
		at, ok := m.NextChange(st, from)
		if !ok {
			t.Fatalf("no next change from %v (score %v)", time.Duration(from-t0), st.Score)
		}
		want, _ := bruteNextChange(m, st, from, 60*day)
		if at < want-sec || at > want+sec {
			t.Fatalf("NextChange %v, scan %v", time.Duration(at-t0), time.Duration(want-t0))
		}
		o := m.Step(st, at)
		if !o.Changed {
			t.Fatalf("Step at NextChange did not publish: %+v", o)
		}
		if o.Alert == AlertLow {
			lows++
		}
		from = at
	}
	if lows != 1 {
		t.Fatalf("%d low alerts", lows)
	}
}

// Property: for random states, the condition holds at the returned instant
// and at no instant of a fine grid before it (a second's tolerance); without
// a result it holds nowhere on the grid up to the horizon.
// wakeUpModels are the models the wake-up properties run on: decay_step
// at its default, and small.
var wakeUpModels = []string{propModel, strings.Replace(propModel, "change_min_delta: 0.5", "change_min_delta: 0.5\ndecay_step: 1.5", 1)}

// publishedState draws a customer's events, folds them, publishes a step
// some time after the last one, and draws an instant from a little later.
func publishedState(t *rapid.T, m *Model) (st *State, from int64) {
	evs := genEvents(t, "ev", 30)
	st = fold(m, evs)
	stepAt := lastTime(evs) + rapid.Int64Range(0, 3*day).Draw(t, "step")
	m.Step(st, stepAt)
	return st, stepAt + rapid.Int64Range(0, 2*day).Draw(t, "from")
}

func TestPropertyNextChange(t *testing.T) {
	for _, src := range wakeUpModels {
		m := mustModel(t, src)
		rapid.Check(t, func(t *rapid.T) {
			st, from := publishedState(t, m)
			at, ok := m.NextChange(st, from)
			end := from + int64(MaxHorizon)
			if ok {
				if at <= from || at > end {
					t.Fatalf("NextChange %d outside (from, from+horizon]", at-from)
				}
				if !needsPublication(m, st, at) {
					t.Fatalf("no change at NextChange (+%v): score %v", time.Duration(at-from), m.Evaluate(st, at).Score)
				}
				end = at - sec
			}
			const n = 1000
			for k := 1; k < n && end > from; k++ {
				u := from + (end-from)/n*int64(k)
				if needsPublication(m, st, u) {
					t.Fatalf("change at +%v, before NextChange +%v (%v)", time.Duration(u-from), time.Duration(at-from), ok)
				}
			}
		})
	}
}

// TestScoreAtMatchesEvaluate: the lean score is Evaluate's, bit for bit.
func TestScoreAtMatchesEvaluate(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		st := fold(m, genEvents(t, "ev", 30))
		at := t0 + rapid.Int64Range(-20*day, 400*day).Draw(t, "at")
		e := m.Evaluate(st, at)
		s, ok := m.ScoreAt(st, at)
		if ok != e.HasScore || math.Float64bits(s) != math.Float64bits(e.Score) {
			t.Fatalf("ScoreAt %v (%v), Evaluate %v (%v)", s, ok, e.Score, e.HasScore)
		}
	})
}

func BenchmarkNextChange(b *testing.B) { benchWakeUp(b, (*Model).NextChange) }

func BenchmarkEarliestChange(b *testing.B) { benchWakeUp(b, (*Model).EarliestChange) }

// benchWakeUp times one wake-up computation for the benchmark state, just
// published.
func benchWakeUp(b *testing.B, wakeUp func(*Model, *State, int64) (int64, bool)) {
	m := DefaultModel()
	st := benchState(m)
	m.Step(st, st.LastEvent)
	b.ReportAllocs()
	for b.Loop() {
		wakeUp(m, st, st.LastEvent)
	}
}

func BenchmarkScoreAt(b *testing.B) {
	m := DefaultModel()
	st := benchState(m)
	b.ReportAllocs()
	for b.Loop() {
		m.ScoreAt(st, st.LastEvent)
	}
}

// TestPropertyEarliestChange: the cheap bound is never after NextChange,
// and says "never" only when NextChange does.
func TestPropertyEarliestChange(t *testing.T) {
	for _, src := range wakeUpModels {
		m := mustModel(t, src)
		rapid.Check(t, func(t *rapid.T) {
			st, from := publishedState(t, m)
			exact, okExact := m.NextChange(st, from)
			early, okEarly := m.EarliestChange(st, from)
			if okExact && (!okEarly || early > exact) {
				t.Fatalf("EarliestChange +%v (%v) after NextChange +%v", time.Duration(early-from), okEarly, time.Duration(exact-from))
			}
			if okEarly && early <= from {
				t.Fatalf("EarliestChange +%v not after from", time.Duration(early-from))
			}
		})
	}
}

// TestPropertyStepLeanPath: Step decides from the lean score and builds the
// explanation only for an output; its outcome still agrees with Evaluate on
// the score, the band and whether anything is published, and the state it
// leaves is the same as after a full evaluation (nothing changes when
// nothing is published).
func TestPropertyStepLeanPath(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 30)
		st := fold(m, evs)
		at := lastTime(evs) + rapid.Int64Range(0, 3*day).Draw(t, "first")
		m.Step(st, at) // publish once, so later steps compare against it
		for k := range 3 {
			at += rapid.Int64Range(0, 20*day).Draw(t, fmt.Sprintf("at%d", k))
			before := m.AppendState(nil, st)
			e := m.Evaluate(st, at)
			wantChanged := e.HasScore && (!st.Published || e.Band != st.Band || math.Abs(e.Score-st.Score) >= m.ChangeMinDelta)
			o := m.Step(st, at)
			if o.Eval.HasScore != e.HasScore || (e.HasScore && (math.Float64bits(o.Eval.Score) != math.Float64bits(e.Score) || o.Eval.Band != e.Band)) {
				t.Fatalf("Step's evaluation %v %v %v, Evaluate's %v %v %v", o.Eval.HasScore, o.Eval.Score, o.Eval.Band, e.HasScore, e.Score, e.Band)
			}
			if o.Changed != wantChanged {
				t.Fatalf("Changed %v, want %v", o.Changed, wantChanged)
			}
			if o.Changed && len(o.Eval.Categories) == 0 {
				t.Fatal("a published outcome has no explanation")
			}
			if !o.Changed && !o.Dropped && string(m.AppendState(nil, st)) != string(before) {
				t.Fatal("a step that published nothing changed the state")
			}
		}
	})
}

// activeUntil2261 is a customer with a week of daily logins ending on
// December 1 of the last accepted year (MaxYear), its score published.
func activeUntil2261() (*Model, *State) {
	m := DefaultModel()
	st := m.NewState()
	last := time.Date(MaxYear, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano() - t0 // ev's offsets are from t0
	for d := range 7 {
		e := ev("login", last-int64(6-d)*day, 1)
		m.Apply(st, &e)
		m.Step(st, e.Time)
	}
	return m, st
}

// TestNextChangeNearTheEndOfTime: for a customer whose events are in the
// last accepted year (2261), the horizon reaches past the last int64
// nanosecond; NextChange must cut it there, not wrap to the past: the
// wake-up it returns is after from, and the score does change by then.
func TestNextChangeNearTheEndOfTime(t *testing.T) {
	m, st := activeUntil2261()
	from := st.LastEvent
	at, ok := m.NextChange(st, from)
	if !ok {
		t.Fatal("no wake-up for a customer who goes silent in December 2261, whose score decays within weeks")
	}
	if at <= from {
		t.Fatalf("wake-up %v is not after %v", time.Unix(0, at).UTC(), time.Unix(0, from).UTC())
	}
	if o := m.Step(st, at); !o.Changed {
		t.Fatalf("Step at the wake-up %v did not publish: %+v", time.Unix(0, at).UTC(), o)
	}
}

// TestEarliestChangeNearTheEndOfTime: the bound after events must cut its
// horizon at the last int64 nanosecond too. It computed from + MaxHorizon
// unguarded, which wraps to the past for events in December 2261, and
// then reported no wake-up (or one before from) where NextChange has one.
func TestEarliestChangeNearTheEndOfTime(t *testing.T) {
	m, st := activeUntil2261()
	from := st.LastEvent
	exact, ok := m.NextChange(st, from)
	if !ok {
		t.Fatal("NextChange: no wake-up")
	}
	at, ok := m.EarliestChange(st, from)
	if !ok || at <= from || at > exact {
		t.Fatalf("EarliestChange = %v, %v; want an instant in (%v, %v]", time.Unix(0, at).UTC(), ok, time.Unix(0, from).UTC(), time.Unix(0, exact).UTC())
	}
}
