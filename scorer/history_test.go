package scorer

import (
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// positiveModel is propModel without negative-direction signals: time alone
// never raises its score from events (see TestPropertyTimeNeverRaises).
func positiveModel(t testing.TB) *Model {
	src := propModel
	for _, line := range []string{
		"      - {name: tickets, event: ticket, kind: count, half_life: 2d, target: 3, direction: negative}\n",
		"      - {name: refunds, event: refund, kind: sum, half_life: 90m, target: 20, direction: negative}\n",
		"      - {name: csat_bad, event: csat, kind: average, half_life: 1d, min: 1, max: 5, direction: negative}\n",
	} {
		src = strings.Replace(src, line, "", 1)
	}
	src = strings.Replace(src, "      - {name: alarms, event: alarm, kind: recency, half_life: 6h, direction: negative}\n",
		"      - {name: alarms, event: alarm, kind: recency, half_life: 6h}\n", 1)
	src = strings.Replace(src, "    targets: {logins: 20, refunds: 60}\n", "    targets: {logins: 20}\n", 1)
	src = strings.Replace(src, "  - name: support\n    weight: 1.5\n    signals:\n", "", 1)
	src = strings.Replace(src, "support: 4, ", "", 1)
	m := mustModel(t, src)
	for _, s := range m.signals {
		if s.Negative {
			t.Fatalf("model still has negative signal %s", s.Name)
		}
	}
	return m
}

// histRun drives a state as the consumer does: each event of an
// evaluation through ApplyWithHistory, then BeginDay, Step at the
// evaluation clock and NoteDay; evaluations that are not saved are thrown
// away with their closed days.
type histRun struct {
	m      *Model
	st     *State
	keep   int
	closed []DayPoint
	evals  []int64 // instants of the saved evaluations (and of each event in them)
}

func (r *histRun) clone() *State {
	c := *r.st
	c.Signals = append([]SignalState(nil), r.st.Signals...)
	return &c
}

// eval applies evs (may be none: a decay evaluation at decayAt) and keeps
// the result when save.
func (r *histRun) eval(t *rapid.T, evs []Event, decayAt int64, save bool) {
	m := r.m
	st := r.clone()
	var closed []DayPoint
	var instants []int64
	applied := 0
	for i := range evs {
		var ok bool
		if closed, ok = m.ApplyWithHistory(st, &evs[i], r.keep, closed); ok {
			applied++
			if st.HasDay {
				instants = append(instants, st.Day.At)
			}
		}
	}
	// As the consumer: events that change nothing are not evaluated, nor
	// is a customer with no applied event.
	if (len(evs) > 0 && applied == 0) || st.Events == 0 {
		return
	}
	at := max(st.LastEvent, st.PublishedAt)
	if len(evs) == 0 {
		at = max(at, decayAt)
	}
	closed = m.BeginDay(closed, st, at, r.keep)
	o := m.Step(st, at)
	m.NoteDay(st, &o.Eval)
	if !save {
		return
	}
	// Saved states go through the codec, as in Redis.
	dec, err := m.DecodeState(m.AppendState(nil, st))
	if err != nil {
		t.Fatal(err)
	}
	r.st = dec
	r.closed = append(r.closed, closed...)
	r.evals = append(r.evals, instants...)
	if o.Eval.HasScore {
		r.evals = append(r.evals, at)
	}
	sort.Slice(r.evals, func(i, j int) bool { return r.evals[i] < r.evals[j] })
}

// points is the closed days then the current one.
func (r *histRun) points() []DayPoint {
	ps := append([]DayPoint(nil), r.closed...)
	if r.st.HasDay {
		ps = append(ps, r.st.Day)
	}
	return ps
}

// genOverride is an override event, with or without an expiry.
func genOverride(t *rapid.T, tm int64) Event {
	e := Event{CustomerID: "c", Type: TypeOverride, Time: tm, HasTime: true, Value: float64(rapid.IntRange(0, 100).Draw(t, "ov.value"))}
	if rapid.Bool().Draw(t, "ov.expires") {
		e.ExpiresAt, e.HasExpiresAt = tm+rapid.Int64Range(hour, 3*day).Draw(t, "ov.ttl"), true
	}
	return e
}

// bruteScore is the score at instant s from the events up to s (those at s
// included), folded from scratch.
func bruteScore(m *Model, evs []Event, s int64) (float64, bool) {
	st := m.NewState()
	for i := range evs {
		if evs[i].Time <= s {
			m.Apply(st, &evs[i])
		}
	}
	return m.ScoreAt(st, s)
}

// Property: with events arriving in time order, one evaluation each, decay
// evaluations in between (some not saved) and the state saved through the
// codec, the history has one point per day from the first score on, each
// closed day's score is the score at its close folded from scratch, its
// band is within hysteresis of that score, and its min is the lowest score
// over the day (sampled densely and at every event, just before it, before
// an override's expiry and at the close), to the hundredth.
func TestPropertyHistoryMatchesBruteForce(t *testing.T) {
	m := positiveModel(t)
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 25).Draw(t, "n")
		evs := make([]Event, n)
		for i := range evs {
			if rapid.IntRange(0, 9).Draw(t, "kind") == 0 {
				evs[i] = genOverride(t, t0+rapid.Int64Range(-10*day, 0).Draw(t, "ov.time"))
			} else {
				evs[i] = genEvent(t, "ev")
			}
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time < evs[j].Time })
		// Distinct instants: of two events at one instant the service
		// evaluates the first alone, which no from-scratch fold at an
		// instant sees (its lowest score is then that evaluation's).
		for i := 1; i < len(evs); i++ {
			evs[i].Time = max(evs[i].Time, evs[i-1].Time+1)
		}
		r := &histRun{m: m, st: m.NewState(), keep: 1000}
		// Batches of 1 to 4 events (a batch may span days), each followed
		// by a decay evaluation now and then.
		for i := 0; i < len(evs); {
			j := min(len(evs), i+rapid.IntRange(1, 4).Draw(t, "batch"))
			r.eval(t, evs[i:j], 0, true)
			next := t0 + 3*day
			if j < len(evs) {
				next = evs[j].Time
			}
			if gap := next - evs[j-1].Time; gap > 1 && rapid.IntRange(0, 2).Draw(t, "decay") == 0 {
				r.eval(t, nil, evs[j-1].Time+rapid.Int64Range(1, gap-1).Draw(t, "decayAt"), rapid.Bool().Draw(t, "save"))
			}
			i = j
		}
		r.eval(t, nil, t0+3*day, true) // a last decay evaluation closes the days up to it
		if len(r.evals) == 0 {
			if len(r.points()) != 0 {
				t.Fatalf("points without a score: %+v", r.points())
			}
			return
		}
		ps := r.points()
		first, last := DayOf(r.evals[0]), DayOf(r.evals[len(r.evals)-1])
		if len(ps) != int(last-first+1) {
			t.Fatalf("%d points for days %d..%d (first %+v)", len(ps), first, last, ps[0])
		}
		for k, p := range ps {
			d := first + int64(k)
			if p.Day != d {
				t.Fatalf("point %d is day %d, want %d", k, p.Day, d)
			}
			if !(p.Min <= p.Score && p.Min >= 0 && p.Score <= 100) {
				t.Fatalf("day %d: min %v score %v", d, p.Min, p.Score)
			}
			end := DayStart(d+1) - 1
			if d < last {
				want, ok := bruteScore(m, evs, end)
				if !ok || Hundredths(want) != p.Score || p.At != end {
					t.Fatalf("day %d closes at %v (at %d), brute force %v %v", d, p.Score, p.At, want, ok)
				}
			} else {
				end = r.evals[len(r.evals)-1]
			}
			var upTo []Event
			for _, e := range evs {
				if e.Time <= end {
					upTo = append(upTo, e)
				}
			}
			seg := fold(m, upTo).Segment
			if lo, hi := m.RawBand(p.Score-m.Hysteresis-0.01, seg), m.RawBand(p.Score+m.Hysteresis+0.01, seg); p.Band < lo || p.Band > hi {
				t.Fatalf("day %d: band %s for score %v", d, p.Band, p.Score)
			}
			// The lowest score over [from, end]: from the day's start, or
			// the first scored evaluation on the first day.
			from := max(DayStart(d), r.evals[0])
			samples := []int64{from, end}
			for s := from; s < end; s += 15 * 60 * 1e9 {
				samples = append(samples, s)
			}
			for _, e := range evs {
				for _, s := range []int64{e.Time - 1, e.Time, e.ExpiresAt - 1} {
					if s >= from && s <= end {
						samples = append(samples, s)
					}
				}
			}
			low := math.Inf(1)
			for _, s := range samples {
				if v, ok := bruteScore(m, evs, s); ok {
					low = min(low, Hundredths(v))
				}
			}
			if math.Abs(low-p.Min) > 0.0101 {
				t.Fatalf("day %d: min %v, brute force %v", d, p.Min, low)
			}
		}
	})
}

// Property: whatever the arrival order (late events), repeated and
// unsaved evaluations, days are closed once each, in order, never before
// the current point, and evaluating the same saved state again closes the
// same days (a retried save writes the same history).
func TestPropertyHistoryLateEventsAndReplay(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 30)
		keep := rapid.IntRange(1, 12).Draw(t, "keep")
		r := &histRun{m: m, st: m.NewState(), keep: keep}
		for i := 0; i < len(evs); {
			j := min(len(evs), i+rapid.IntRange(1, 3).Draw(t, "batch"))
			if rapid.IntRange(0, 3).Draw(t, "replay") == 0 {
				// The same evaluation from the same state twice: same days.
				a := &histRun{m: m, st: r.clone(), keep: keep}
				b := &histRun{m: m, st: r.clone(), keep: keep}
				a.eval(t, evs[i:j], 0, true)
				b.eval(t, evs[i:j], 0, true)
				if !sameDays(a.points(), b.points()) {
					t.Fatalf("replay differs: %+v vs %+v", a.points(), b.points())
				}
			}
			r.eval(t, evs[i:j], 0, rapid.IntRange(0, 4).Draw(t, "save") > 0)
			i = j
		}
		r.eval(t, nil, lastTime(evs)+rapid.Int64Range(0, 20*day).Draw(t, "end"), true)
		ps := r.points()
		for k := 1; k < len(ps); k++ {
			if ps[k].Day <= ps[k-1].Day {
				t.Fatalf("days not increasing: %+v", ps)
			}
		}
		for _, p := range ps {
			if !(p.Min <= p.Score && p.Min >= 0 && p.Score <= 100) || p.Band == BandNone {
				t.Fatalf("bad point %+v", p)
			}
		}
		// Each call closes at most keep-1 days, all within keep days of
		// the evaluation's day.
		if r.st.HasDay {
			for _, p := range r.closed {
				if p.Day >= r.st.Day.Day {
					t.Fatalf("closed day %d not before the current %d", p.Day, r.st.Day.Day)
				}
			}
		}
	})
}

func sameDays(a, b []DayPoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A silent stretch longer than the window closes only the window's days;
// an override that expires within a silent day lowers that day's min to
// its value when the value is below the close.
func TestBeginDayWindowAndOverrideExpiry(t *testing.T) {
	m := positiveModel(t)
	st := m.NewState()
	login := ev("login", 0, 1)
	m.Apply(st, &login)
	o := m.Step(st, t0)
	m.NoteDay(st, &o.Eval)
	if !st.HasDay || st.Day.Day != DayOf(t0) || st.Day.Min != st.Day.Score {
		t.Fatalf("first point %+v", st.Day)
	}
	closed := m.BeginDay(nil, st, t0+30*day, 5)
	if len(closed) != 4 || closed[0].Day != DayOf(t0)+26 || closed[3].Day != DayOf(t0)+29 {
		t.Fatalf("closed %+v, want the 4 days before the 30th", closed)
	}

	// An override of 1 until noon of the next day, then the event score
	// (higher): the next day's min is 1, its close the event score.
	st = m.NewState()
	m.Apply(st, &login)
	ov := Event{CustomerID: "c", Type: TypeOverride, Time: t0, HasTime: true, Value: 1, ExpiresAt: DayStart(DayOf(t0)+1) + 12*hour, HasExpiresAt: true}
	m.Apply(st, &ov)
	o = m.Step(st, t0)
	m.NoteDay(st, &o.Eval)
	if st.Day.Score != 1 {
		t.Fatalf("point under override %+v", st.Day)
	}
	closed = m.BeginDay(nil, st, t0+3*day, 10)
	if len(closed) != 3 {
		t.Fatalf("closed %+v", closed)
	}
	next := closed[1]
	want, _ := m.ScoreAt(st, DayStart(next.Day+1)-1)
	if next.Min != 1 || next.Score != Hundredths(want) || want <= 1 {
		t.Fatalf("day of the expiry %+v, close %v", next, want)
	}
	if closed[2].Min != closed[2].Score {
		t.Fatalf("silent day after the expiry %+v", closed[2])
	}
}

// The day point survives the codec; a state without one encodes as before
// history existed (no extension block), and an old encoding still decodes.
func TestDayPointCodec(t *testing.T) {
	m := mustModel(t, propModel)
	login := ev("login", 0, 1)
	st := m.NewState()
	m.Apply(st, &login)
	old := m.AppendState(nil, st)
	o := m.Step(st, t0)
	noDay := m.AppendState(nil, st)
	m.NoteDay(st, &o.Eval)
	withDay := m.AppendState(nil, st)
	if len(withDay) <= len(noDay) || len(withDay)-len(noDay) > 14 {
		t.Fatalf("day point costs %d bytes", len(withDay)-len(noDay))
	}
	got, err := m.DecodeState(withDay)
	if err != nil || !got.HasDay || got.Day != st.Day {
		t.Fatalf("decoded %+v %v, want %+v", got.Day, err, st.Day)
	}
	got.DropDay()
	if string(m.AppendState(nil, got)) != string(noDay) {
		t.Fatal("a state without a day point encodes differently")
	}
	if got, err := m.DecodeState(old); err != nil || got.HasDay {
		t.Fatalf("old state: %+v %v", got, err)
	}
	// A min above the score, or a day that does not hold its instant, is
	// corrupt.
	bad := *st
	bad.Day.Min = bad.Day.Score + 1
	if _, err := m.DecodeState(m.AppendState(nil, &bad)); err == nil {
		t.Fatal("min above score decoded")
	}
	bad = *st
	bad.Day.Day++
	if _, err := m.DecodeState(m.AppendState(nil, &bad)); err == nil {
		t.Fatal("day without its instant decoded")
	}
}

func TestDayOf(t *testing.T) {
	for _, c := range []struct {
		t    int64
		want int64
		s    string
	}{
		{0, 0, "1970-01-01"},
		{nsPerDay - 1, 0, "1970-01-01"},
		{nsPerDay, 1, "1970-01-02"},
		{-1, -1, "1969-12-31"},
		{-nsPerDay, -1, "1969-12-31"},
		{-nsPerDay - 1, -2, "1969-12-30"},
		{t0, 20777, "2026-11-20"},
	} {
		if got := DayOf(c.t); got != c.want || FormatDay(got) != c.s || DayStart(got) > c.t || DayStart(got+1) <= c.t {
			t.Errorf("DayOf(%d) = %d (%s), want %d (%s)", c.t, got, FormatDay(got), c.want, c.s)
		}
	}
}

func TestChangeCodec(t *testing.T) {
	c := Change{Type: "health.dropped", At: t0, Score: 41.27, Band: BandYellow, PrevBand: BandGreen,
		Drivers: []Driver{{Category: "engagement", Signal: "logins", Points: -12.34}, {Category: "ünïcode", Signal: "", Points: 0.01}}}
	b, err := AppendChange(nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 50 {
		t.Errorf("a change with two drivers takes %d bytes", len(b))
	}
	got, err := DecodeChange(b)
	if err != nil || got.Type != c.Type || got.At != c.At || got.Score != c.Score || got.Band != c.Band || got.PrevBand != c.PrevBand || !slices.Equal(got.Drivers, c.Drivers) {
		t.Fatalf("decoded %+v %v, want %+v", got, err, c)
	}
	for n := range len(b) {
		if _, err := DecodeChange(b[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: decoded", n)
		}
	}
	for _, bad := range []Change{{Type: "health.other"}, {Type: "health.low", Score: 101}, {Type: "health.low", Band: 7},
		{Type: "health.low", Drivers: []Driver{{Points: math.NaN()}}}} {
		if _, err := AppendChange(nil, &bad); err == nil {
			t.Errorf("change %+v encoded", bad)
		}
	}
	v := got.View()
	if v.Time != "2026-11-20T10:00:00Z" || v.PrevBand == nil || *v.PrevBand != "green" || v.Drivers[0].Points != -12.34 {
		t.Fatalf("view %+v", v)
	}
}

// FuzzDecodeChange: DecodeChange never panics, and what it decodes encodes
// back to the same bytes.
func FuzzDecodeChange(f *testing.F) {
	f.Add([]byte{})
	if b, err := AppendChange(nil, &Change{Type: "health.low", At: t0, Score: 28.1, Band: BandRed, PrevBand: BandYellow,
		Drivers: []Driver{{Category: "engagement", Signal: "last_login", Points: -12.5}}}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChange(b)
		if err != nil {
			return
		}
		enc, err := AppendChange(nil, &c)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", c, err)
		}
		if string(enc) != string(b) {
			// Varints have one canonical form per value; anything else
			// decodes to a change that re-encodes canonically.
			again, err := DecodeChange(enc)
			if err != nil || again.Type != c.Type || again.At != c.At || again.Score != c.Score || !slices.Equal(again.Drivers, c.Drivers) {
				t.Fatalf("round trip %+v %v, want %+v", again, err, c)
			}
		}
	})
}
