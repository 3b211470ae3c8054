package scorer

import (
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// trendModel: logins (positive) and tickets (negative), a trend section.
const trendModel = `name: trend
version: "1"
bands: {red: 60, yellow: 80}
trend: {drop_points: 15, baseline_half_life: 14d, cooldown: 7d}
categories:
  - name: c
    weight: 1
    signals:
      - {name: logins, event: login, kind: count, half_life: 1d, target: 4}
      - {name: tickets, event: ticket, kind: count, half_life: 1d, target: 4, direction: negative}
`

func TestParseTrend(t *testing.T) {
	m := mustModel(t, trendModel)
	if m.Trend == nil || *m.Trend != (Trend{DropPoints: 15, BaselineHalfLife: 14 * 24 * time.Hour, Cooldown: 7 * 24 * time.Hour}) {
		t.Fatalf("trend %+v", m.Trend)
	}
	if mustModel(t, evalModel).Trend != nil {
		t.Fatal("trend without a trend section")
	}
	f := func(trend, want string) {
		t.Helper()
		_, err := ParseModel("m.yaml", []byte(strings.Replace(trendModel, "trend: {drop_points: 15, baseline_half_life: 14d, cooldown: 7d}", trend, 1)))
		if err == nil || err.Error() != want {
			t.Fatalf("%s: got %v, want %s", trend, err, want)
		}
	}
	f("trend: {baseline_half_life: 14d, cooldown: 7d}", "m.yaml:4: trend: drop_points is required, e.g. 15")
	f("trend: {drop_points: 0, baseline_half_life: 14d, cooldown: 7d}", "m.yaml:4: trend: drop_points must be > 0 and <= 100 points, got 0")
	f("trend:\n  drop_points: 15\n  baseline_half_life: 14\n  cooldown: 7d", `m.yaml:6: trend: baseline_half_life: "14" needs a unit: m, h or d (e.g. 7d)`)
	f("trend:\n  drop_points: 15\n  baseline_half_life: 14d", "m.yaml:5: trend: cooldown: is required, e.g. 7d, 12h or 30m")
	f("trend: {drop_points: 15, baseline_half_life: 14d, cooldown: 7d, x: 1}", "m.yaml:4: unknown field \"x\"")
}

func TestTrendDropped(t *testing.T) {
	m := mustModel(t, trendModel)
	st := fold(m, []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)})
	// First score 100·(1 + 1)/2 = 100: the baseline starts there.
	if o := m.Step(st, t0); o.Dropped || !st.HasBaseline || st.Baseline != 100 || st.BaselineAt != t0 {
		t.Fatalf("first: %+v %+v", o, st)
	}
	// Silence: follow the timers. The baseline is the documented average
	// of the published scores; a dropped alert comes when it is 15 above
	// the score, then not again for 7 days.
	B, tB := 100.0, t0
	from := t0
	var drops []int64
	for {
		at, ok := m.NextChange(st, from)
		if !ok || at > t0+10*day {
			break
		}
		prevB := st.Baseline
		o := m.Step(st, at)
		if !o.Changed && !o.Dropped {
			t.Fatalf("timer at +%v did nothing: %+v", time.Duration(at-t0), o)
		}
		if o.Dropped {
			if o.Baseline != prevB || prevB-o.Eval.Score < 15 || o.CooldownUntil != at+7*day {
				t.Fatalf("dropped: %+v (baseline %v)", o, prevB)
			}
			drops = append(drops, at)
		}
		if o.Changed {
			w := math.Exp2(-float64(at-tB) / float64(14*day))
			B, tB = B*w+o.Eval.Score*(1-w), at
		}
		if !approx(st.Baseline, B, 1e-12) || st.BaselineAt != tB {
			t.Fatalf("baseline %v at %v, want %v at %v", st.Baseline, st.BaselineAt, B, tB)
		}
		from = at
	}
	// The score halves daily towards 50: one drop within hours, a second
	// exactly when the cooldown ends (the baseline is still far above).
	if len(drops) != 2 || drops[0]-t0 > day || drops[1] != drops[0]+7*day {
		t.Fatalf("drops at %v", drops)
	}

	// Low and dropped in one evaluation: 8 tickets an hour later.
	st = fold(m, []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1)})
	m.Step(st, t0)
	for range 8 {
		e := ev("ticket", hour, 1)
		m.Apply(st, &e)
	}
	o := m.Step(st, t0+hour)
	if o.Alert != AlertLow || !o.Dropped || !o.Changed || o.Baseline != 100 {
		t.Fatalf("low and dropped: %+v", o)
	}
}

func TestOverride(t *testing.T) {
	m := mustModel(t, trendModel)
	ovr := func(off int64, value float64, by, id string, expires int64) Event {
		e := ev(TypeOverride, off, value)
		e.By, e.ID, e.Reason = by, id, "because"
		if expires != 0 {
			e.ExpiresAt, e.HasExpiresAt = t0+expires, true
		}
		return e
	}
	if !m.Reads(TypeOverride) || !m.Reads("login") || m.Reads("other") {
		t.Fatal("Reads")
	}
	// Logins and no tickets: 100. An override of 30 by ana wins.
	st := fold(m, []Event{ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ev("login", 0, 1), ovr(0, 30, "ana", "o1", 2*day)})
	o := m.Step(st, t0)
	if o.Eval.Score != 30 || o.Eval.Band != BandRed || o.Alert != AlertLow || o.Eval.Override == nil ||
		o.Eval.Override.By != "ana" || o.Eval.Override.Reason != "because" || o.Eval.Computed != 100 || !o.Eval.HasComputed {
		t.Fatalf("set: %+v", o.Eval)
	}
	if s, _ := m.ScoreAt(st, t0); s != 30 {
		t.Fatalf("ScoreAt %v", s)
	}
	// An older override arriving later does not win; a newer one does, and
	// without attributes.by the event id names the emitter.
	e := ovr(-hour, 90, "bob", "o0", 0)
	m.Apply(st, &e)
	if o := m.Step(st, t0); o.Eval.Score != 30 || o.Changed {
		t.Fatalf("older override won: %+v", o.Eval)
	}
	e = ovr(hour, 70, "", "o2", 3*day)
	m.Apply(st, &e)
	if o := m.Step(st, t0+hour); o.Eval.Score != 70 || o.Eval.Override.By != "o2" || o.Eval.Band != BandYellow || o.Alert != AlertRecovered {
		t.Fatalf("replace: %+v", o.Eval)
	}
	// Events fold underneath: tickets lower the computed score only.
	for range 2 {
		e := ev("ticket", 2*hour, 1)
		m.Apply(st, &e)
	}
	o = m.Step(st, t0+2*hour)
	if o.Eval.Score != 70 || o.Changed || o.Eval.Computed >= 80 {
		t.Fatalf("underneath: %+v", o.Eval)
	}
	// The expiry is a change instant: then the computed score shows.
	at, ok := m.NextChange(st, t0+2*hour)
	if !ok || at != t0+3*day {
		t.Fatalf("NextChange %v, want the expiry", time.Duration(at-t0))
	}
	o = m.Step(st, at)
	if o.Eval.Override != nil || o.Eval.Score != o.Eval.Computed || !o.Changed {
		t.Fatalf("expired: %+v", o.Eval)
	}
	// Order independence of overrides: any permutation gives the same one.
	a := fold(m, []Event{ovr(0, 10, "x", "", 0), ovr(0, 20, "a", "", 0), ovr(-day, 99, "z", "", 0)})
	b := fold(m, []Event{ovr(-day, 99, "z", "", 0), ovr(0, 20, "a", "", 0), ovr(0, 10, "x", "", 0)})
	if *a.Override != *b.Override || a.Override.Value != 20 {
		t.Fatalf("overrides %+v vs %+v", a.Override, b.Override)
	}
	// An override alone scores a model without data.
	avg := mustModel(t, "name: a\nversion: \"1\"\nbands: {red: 40, yellow: 70}\ncategories:\n  - name: a\n    weight: 1\n    signals:\n      - {event: nps, kind: average, half_life: 1d, min: 0, max: 10}\n")
	sa := fold(avg, []Event{ovr(0, 50, "", "", 0)})
	if o := avg.Step(sa, t0); !o.Eval.HasScore || o.Eval.Score != 50 || o.Eval.HasComputed || !o.FirstScore {
		t.Fatalf("override without data: %+v", o.Eval)
	}
}

// oldStateEncoding was written by AppendState before the extension block
// existed (commit 444f7a7) for the state of TestStateCodecCompat.
const oldStateEncoding = "\x01\x04\x80\x80\xea\xbd\xe5\xa0\xdc\xe91\x03big\x00\x01@R\x92\x14'\xf9w\x89\x02t6\xc9<\b?\x0e8\xe4@'i}A1\xc7\x1cA\xb1\xc7\x1cA\xb1\xc7\x1cAx\xe3\x8e\x00\x00\x00\x00\x00\x00\x00\x00\x05<\x8e\x1e\xd0\x00?\xf0\x00\x00\x00\x00\x00\x00Zj\x1c\xbd\x80\x80ŋ\xc6\xd1\x01@(\x00\x00\x00\x00\x00\x00\xb5{\x82{\x00!\xfe4\x16\x80\x80\xf8\x94\x92\xa5'@\x1c\x00\x00\x00\x00\x00\x00?\xf0\x00\x00\x00\x00\x00\x00\xf5\xf0\x16\x9b\x80\x80\xf0\xa9\xa4\xcaN"

func TestStateCodecCompat(t *testing.T) {
	m := mustModel(t, propModel)
	st := fold(m, []Event{segEv("login", 0, "big"), ev("nps", -day, 7), ev("pay", -hour, 12), ev("alarm", -2*day, 1)})
	m.Step(st, t0)
	got, err := m.DecodeState([]byte(oldStateEncoding))
	if err != nil {
		t.Fatal(err)
	}
	if got.Score != st.Score || got.Band != st.Band || got.Events != 4 || got.HasBaseline || got.Override != nil {
		t.Fatalf("old encoding: %+v", got)
	}
	// Its float32 points decode rounded as Step keeps them, so it decodes
	// to the state it was written for and re-encodes as that state does
	// (format 2, points in ten-thousandths: shorter).
	checkSameState(t, m, got, st)
	base := m.AppendState(nil, st)
	if enc := m.AppendState(nil, got); string(enc) != string(base) || base[0] != stateFormat || len(base) >= len(oldStateEncoding) {
		t.Fatalf("re-encoded old state:\n%q\n%q", enc, base)
	}
	// With them it round-trips, and every truncation fails.
	st.HasBaseline, st.Baseline, st.BaselineAt, st.HasDropped, st.DroppedAt = true, 71.5, t0-day, true, t0-hour
	for _, o := range []*Override{
		{Value: 12, By: "ana", Reason: "renewal", At: t0 - 2*day, Expires: t0 + day},
		{Value: 0, At: t0, Expires: NoExpiry},
	} {
		st.Override = o
		enc := m.AppendState(nil, st)
		got, err := m.DecodeState(enc)
		if err != nil {
			t.Fatal(err)
		}
		checkSameState(t, m, got, st)
		for n := len(base) + 1; n < len(enc); n++ {
			if _, err := m.DecodeState(enc[:n]); err == nil {
				t.Fatalf("truncated to %d of %d bytes: decoded", n, len(enc))
			}
		}
	}
	// Unknown or empty flags, and an override value out of range, are
	// corrupt.
	for _, ext := range []string{"\x00", "\x10", "\x08", "\x04" + "\x40\x59\x00\x00\x00\x00\x00\x01" + "\x00\x00\x00"} {
		if _, err := m.DecodeState([]byte(oldStateEncoding + ext)); err == nil {
			t.Fatalf("extension %q decoded", ext)
		}
	}
}

// Property: with a trend and overrides, Step keeps the baseline within the
// published scores' range, the state round-trips, and NextChange's instant
// calls for an output.
func TestPropertyTrendOverride(t *testing.T) {
	m := mustModel(t, strings.Replace(propModel, "change_min_delta: 0.5\n", "change_min_delta: 0.5\ntrend: {drop_points: 10, baseline_half_life: 2d, cooldown: 1d}\n", 1))
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 30)
		for range rapid.IntRange(0, 3).Draw(t, "overrides") {
			e := ev(TypeOverride, -rapid.Int64Range(0, 10*day).Draw(t, "ovr.at"), rapid.Float64Range(0, 100).Draw(t, "ovr.value"))
			if rapid.Bool().Draw(t, "ovr.expires") {
				e.ExpiresAt, e.HasExpiresAt = e.Time+rapid.Int64Range(0, 5*day).Draw(t, "ovr.ttl"), true
			}
			evs = append(evs, e)
		}
		st := m.NewState()
		lo, hi := 100.0, 0.0
		for i := range evs {
			m.Apply(st, &evs[i])
			if rapid.IntRange(0, 3).Draw(t, "step") == 0 {
				if o := m.Step(st, st.LastEvent); o.Changed {
					lo, hi = math.Min(lo, o.Eval.Score), math.Max(hi, o.Eval.Score)
				}
			}
		}
		if st.HasBaseline && (st.Baseline < lo-1e-9 || st.Baseline > hi+1e-9) {
			t.Fatalf("baseline %v outside published [%v, %v]", st.Baseline, lo, hi)
		}
		got, err := m.DecodeState(m.AppendState(nil, st))
		if err != nil {
			t.Fatal(err)
		}
		if got.Override != nil && *got.Override != *st.Override || got.Baseline != st.Baseline || got.DroppedAt != st.DroppedAt {
			t.Fatalf("round trip: %+v vs %+v", got, st)
		}
		from := lastTime(evs) + rapid.Int64Range(0, 3*day).Draw(t, "from")
		m.Step(st, from)
		if at, ok := m.NextChange(st, from); ok {
			cp := *st
			if o := m.Step(&cp, at); !o.Changed && !o.Dropped {
				t.Fatalf("nothing at NextChange +%v: %+v", time.Duration(at-from), o.Eval)
			}
		}
	})
}
