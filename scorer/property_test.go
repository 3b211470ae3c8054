package scorer

import (
	"math"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// naiveSignal evaluates one signal straight from the formulas over the raw
// event list at T: S = Σ x_i·2^(−(T−t_i)/h), W = Σ 2^(−(T−t_i)/h), and
// abs = Σ |x_i|·2^(−(T−t_i)/h), the scale against which S's rounding error
// is measured. last is the latest event time; n counts the events.
func naiveSignal(s Signal, evs []Event, T int64) (S, W, abs float64, last int64, n int) {
	h := float64(s.HalfLife)
	for _, e := range evs {
		if e.Type != s.Event || e.Time > T {
			continue
		}
		x := 1.0
		if s.Kind != KindCount {
			x = e.Value
		}
		d := math.Exp2(-float64(T-e.Time) / h)
		S += x * d
		W += d
		abs += math.Abs(x) * d
		if n == 0 || e.Time > last {
			last = e.Time
		}
		n++
	}
	return
}

// naiveSegment: the segment of the latest event naming one, ties to the
// larger name, among events some signal reads.
func naiveSegment(m *Model, evs []Event) string {
	seg, at := "", int64(0)
	for _, e := range evs {
		if e.Segment == "" { // any type names the segment, overrides too
			continue
		}
		if seg == "" || e.Time > at || (e.Time == at && e.Segment > seg) {
			seg, at = e.Segment, e.Time
		}
	}
	return seg
}

// naiveEvaluate is an independent O(n) evaluation of the documented math,
// using only the model's public fields.
func naiveEvaluate(m *Model, evs []Event, T int64) (score float64, has bool, subs map[string]float64) {
	seg := naiveSegment(m, evs)
	so, segOK := m.Segments[seg]
	subs = map[string]float64{}
	var wsum, acc float64
	for _, c := range m.Categories {
		w := c.Weight
		if segOK {
			if sw, ok := so.Weights[c.Name]; ok {
				w = sw
			}
		}
		n, sum := 0, 0.0
		for _, s := range c.Signals {
			S, W, _, last, cnt := naiveSignal(s, evs, T)
			var v float64
			switch s.Kind {
			case KindCount, KindSum:
				target := s.Target
				if segOK {
					if t, ok := so.Targets[s.Name]; ok {
						target = t
					}
				}
				v = math.Min(1, math.Max(0, S/target))
			case KindAverage:
				if cnt == 0 {
					continue
				}
				v = math.Min(1, math.Max(0, (S/W-s.Min)/(s.Max-s.Min)))
			case KindRecency:
				if cnt > 0 {
					v = math.Exp2(-float64(T-last) / float64(s.HalfLife))
				}
			}
			if s.Negative {
				v = 1 - v
			}
			subs[s.Name] = v
			n++
			sum += v
		}
		if n > 0 && w > 0 {
			wsum += w
			acc += w * sum / float64(n)
		}
	}
	if wsum == 0 {
		return 0, false, subs
	}
	return 100 * acc / wsum, true, subs
}

// propModel: every kind, both directions, short half-lives so that a few
// days of random events exercise decay, and segments.
const propModel = `name: prop
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 3
change_min_delta: 0.5
categories:
  - name: usage
    weight: 3
    signals:
      - {name: logins, event: login, kind: count, half_life: 1d, target: 5}
      - {name: spend, event: pay, kind: sum, half_life: 36h, target: 50}
      - {name: seen, event: login, kind: recency, half_life: 12h}
  - name: support
    weight: 1.5
    signals:
      - {name: tickets, event: ticket, kind: count, half_life: 2d, target: 3, direction: negative}
      - {name: refunds, event: refund, kind: sum, half_life: 90m, target: 20, direction: negative}
  - name: sentiment
    weight: 2
    signals:
      - {name: nps, event: nps, kind: average, half_life: 3d, min: 0, max: 10}
      - {name: csat_bad, event: csat, kind: average, half_life: 1d, min: 1, max: 5, direction: negative}
  - name: quiet
    weight: 0.5
    signals:
      - {name: alarms, event: alarm, kind: recency, half_life: 6h, direction: negative}
segments:
  big:
    bands: {red: 50, yellow: 80}
    weights: {support: 4, quiet: 0}
    targets: {logins: 20, refunds: 60}
  small:
    targets: {spend: 5}
`

var propTypes = []string{"login", "pay", "ticket", "refund", "nps", "csat", "alarm", "other"}

func genEvent(t *rapid.T, label string) Event {
	return Event{
		CustomerID: "c",
		Type:       rapid.SampledFrom(propTypes).Draw(t, label+".type"),
		Time:       t0 + rapid.Int64Range(-10*day, 0).Draw(t, label+".time"),
		HasTime:    true,
		Value:      rapid.Float64Range(-5, 12).Draw(t, label+".value"),
		Segment:    rapid.SampledFrom([]string{"", "", "big", "small", "unknown"}).Draw(t, label+".segment"),
	}
}

func genEvents(t *rapid.T, label string, maxN int) []Event {
	n := rapid.IntRange(0, maxN).Draw(t, label+".n")
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = genEvent(t, label)
	}
	return evs
}

func lastTime(evs []Event) int64 {
	last := t0 - 10*day
	for _, e := range evs {
		last = max(last, e.Time)
	}
	return last
}

// sumsClose compares two folded sums: relative error ≤ 1e-9 against scale,
// the sum of magnitudes (mixed-sign sums may cancel to ~0).
func sumsClose(a, b, scale float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(scale, math.Max(math.Abs(a), math.Abs(b)))+1e-300
}

// equalStates checks two states folded from the same events in any order.
func equalStates(t *rapid.T, m *Model, a, b *State, evs []Event) {
	if a.Segment != b.Segment || a.SegmentTime != b.SegmentTime || a.Events != b.Events || a.LastEvent != b.LastEvent {
		t.Fatalf("state headers differ: %+v vs %+v", a, b)
	}
	for i := range a.Signals {
		sa, sb := a.Signals[i], b.Signals[i]
		_, _, abs, _, _ := naiveSignal(m.signals[i].Signal, evs, sa.Ref)
		if sa.Seen != sb.Seen || sa.Ref != sb.Ref || !sumsClose(sa.S, sb.S, abs) || !sumsClose(sa.W, sb.W, abs) {
			t.Fatalf("signal %s differs: %+v vs %+v", m.SignalName(i), sa, sb)
		}
	}
}

// Property 1: arrival order does not change the state or the score.
func TestPropertyOrderIndependent(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 40)
		perm := rapid.Permutation(evs).Draw(t, "perm")
		a, b := fold(m, evs), fold(m, perm)
		equalStates(t, m, a, b, evs)
		at := lastTime(evs) + rapid.Int64Range(0, 5*day).Draw(t, "later")
		ea, eb := m.Evaluate(a, at), m.Evaluate(b, at)
		if ea.HasScore != eb.HasScore || !approx(ea.Score, eb.Score, 1e-9) {
			t.Fatalf("scores differ: %v vs %v", ea.Score, eb.Score)
		}
	})
}

// Property 2: a count signal below its target halves every half-life.
func TestPropertyCountHalves(t *testing.T) {
	m := mustModel(t, propModel)
	logins := m.SignalsFor("login")[0]
	hl := int64(m.signals[logins].HalfLife)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 30)
		st := fold(m, evs)
		at := lastTime(evs) + rapid.Int64Range(0, 3*day).Draw(t, "later")
		e1, e2 := m.Evaluate(st, at), m.Evaluate(st, at+hl)
		s1, _ := signalScore(&e1, "logins")
		s2, _ := signalScore(&e2, "logins")
		if s1.Sub >= 1 {
			if s2.Sub > 1 || s2.Sub < 0.5 {
				t.Fatalf("at target: %v then %v", s1.Sub, s2.Sub)
			}
			return
		}
		if !approx(s2.Sub, s1.Sub/2, 1e-9) {
			t.Fatalf("sub %v one half-life later is %v, want %v", s1.Sub, s2.Sub, s1.Sub/2)
		}
	})
}

// Property 3: folding A then B equals folding the union in any
// interleaving.
func TestPropertyFoldUnion(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		a, b := genEvents(t, "a", 25), genEvents(t, "b", 25)
		st1 := fold(m, a)
		for i := range b {
			m.Apply(st1, &b[i])
		}
		// A random interleaving keeping each list's own order.
		var mixed []Event
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			if j == len(b) || (i < len(a) && rapid.Bool().Draw(t, "fromA")) {
				mixed = append(mixed, a[i])
				i++
			} else {
				mixed = append(mixed, b[j])
				j++
			}
		}
		all := append(append([]Event(nil), a...), b...)
		equalStates(t, m, st1, fold(m, mixed), all)
	})
}

// Property 4: the incremental fold equals the naive formula evaluation.
func TestPropertyMatchesNaive(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 40)
		st := fold(m, evs)
		at := lastTime(evs) + rapid.Int64Range(0, 5*day).Draw(t, "later")
		got := m.Evaluate(st, at)
		want, has, subs := naiveEvaluate(m, evs, at)
		if got.Segment != naiveSegment(m, evs) {
			t.Fatalf("segment %q, naive %q", got.Segment, naiveSegment(m, evs))
		}
		if got.HasScore != has || !approx(got.Score, want, 1e-9) {
			t.Fatalf("score %v (%v), naive %v (%v)", got.Score, got.HasScore, want, has)
		}
		for _, c := range got.Categories {
			for _, s := range c.Signals {
				ws, ok := subs[s.Name]
				if s.HasData != ok || !approx(s.Sub, ws, 1e-9) {
					t.Fatalf("signal %s: %+v, naive %v (%v)", s.Name, s, ws, ok)
				}
			}
		}
		// And the folded sums themselves, decayed to at.
		for i := range st.Signals {
			sig := m.signals[i]
			S, W, abs, last, n := naiveSignal(sig.Signal, evs, st.Signals[i].Ref)
			s := st.Signals[i]
			if s.Seen != (n > 0) || (n > 0 && s.Ref != last) {
				t.Fatalf("signal %s: seen %v ref %d, naive %d events, last %d", sig.Name, s.Seen, s.Ref, n, last)
			}
			if sig.Kind == KindCount || sig.Kind == KindSum || sig.Kind == KindAverage {
				if !sumsClose(s.S, S, abs) {
					t.Fatalf("signal %s: S %v, naive %v", sig.Name, s.S, S)
				}
			}
			if sig.Kind == KindAverage && !sumsClose(s.W, W, W) {
				t.Fatalf("signal %s: W %v, naive %v", sig.Name, s.W, W)
			}
		}
	})
}

// Property 5: the score is always finite and within [0, 100], whatever the
// instant (even before the latest event).
func TestPropertyScoreRange(t *testing.T) {
	m := mustModel(t, propModel)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 40)
		st := fold(m, evs)
		at := t0 + rapid.Int64Range(-20*day, 400*day).Draw(t, "at")
		e := m.Evaluate(st, at)
		if !e.HasScore {
			return
		}
		if math.IsNaN(e.Score) || e.Score < 0 || e.Score > 100 {
			t.Fatalf("score %v", e.Score)
		}
		total := 0.0
		for _, c := range e.Categories {
			if c.Score < 0 || c.Score > 1 {
				t.Fatalf("category %s score %v", c.Name, c.Score)
			}
			total += c.Points
		}
		if !approx(total, e.Score, 1e-9) {
			t.Fatalf("points add up to %v, score %v", total, e.Score)
		}
	})
}

// Property 6: with only positive count, sum and recency signals (and
// averages, which do not move with time), time alone never raises the score.
// Negative-direction signals are excluded on purpose: their sub-score is
// 1 − sub, and sub decays, so a customer's tickets or alarms fading away
// raise the score with time alone, as they should.
func TestPropertyTimeNeverRaises(t *testing.T) {
	m := positiveModel(t)
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 30)
		st := fold(m, evs)
		at := lastTime(evs) + rapid.Int64Range(0, 5*day).Draw(t, "at")
		later := at + rapid.Int64Range(0, 30*day).Draw(t, "dt")
		e1, e2 := m.Evaluate(st, at), m.Evaluate(st, later)
		if e1.HasScore != e2.HasScore || e2.Score > e1.Score+1e-9 {
			t.Fatalf("score rose from %v to %v", e1.Score, e2.Score)
		}
	})
}

// Property 7: AppendState → DecodeState round-trips the state exactly
// (Step keeps published points in ten-thousandths, as they are stored), and a model that lost a signal
// or changed its half-life drops just that signal's history.
func TestPropertyStateRoundTrip(t *testing.T) {
	m := mustModel(t, propModel)
	dropped := mustModel(t, strings.Replace(strings.Replace(propModel,
		"      - {name: spend, event: pay, kind: sum, half_life: 36h, target: 50}\n", "", 1),
		"    targets: {spend: 5}\n", "", 1))
	rehalved := mustModel(t, strings.Replace(propModel,
		"{name: nps, event: nps, kind: average, half_life: 3d,", "{name: nps, event: nps, kind: average, half_life: 4d,", 1))
	rapid.Check(t, func(t *rapid.T) {
		evs := genEvents(t, "ev", 30)
		st := m.NewState()
		for i := range evs {
			m.Apply(st, &evs[i])
			if rapid.IntRange(0, 4).Draw(t, "step") == 0 {
				m.Step(st, evs[i].Time)
			}
		}
		buf := m.AppendState([]byte("prefix"), st)
		if string(buf[:6]) != "prefix" {
			t.Fatal("AppendState clobbered buf")
		}
		got, err := m.DecodeState(buf[6:])
		if err != nil {
			t.Fatal(err)
		}
		checkSameState(t, m, got, st)

		for _, m2 := range []*Model{dropped, rehalved} {
			st2, err := m2.DecodeState(buf[6:])
			if err != nil {
				t.Fatal(err)
			}
			if st2.Segment != st.Segment || st2.Events != st.Events || st2.LastEvent != st.LastEvent ||
				st2.Published != st.Published || st2.Score != st.Score || st2.Band != st.Band || st2.Points != nil {
				t.Fatalf("header after model change: %+v vs %+v", st2, st)
			}
			for i := range m2.signals {
				j := indexOfSignal(m, m2.signals[i].Name)
				want := st.Signals[j]
				if m2.signals[i].HalfLife != m.signals[j].HalfLife {
					want = SignalState{}
				}
				if st2.Signals[i] != want {
					t.Fatalf("%s after model change: %+v, want %+v", m2.signals[i].Name, st2.Signals[i], want)
				}
			}
		}
	})
}

func indexOfSignal(m *Model, name string) int {
	for i := range m.signals {
		if m.signals[i].Name == name {
			return i
		}
	}
	panic("no signal " + name)
}

type fataler interface {
	Fatalf(format string, args ...any)
}

func checkSameState(t fataler, m *Model, got, want *State) {
	if got.Events != want.Events || got.LastEvent != want.LastEvent || got.Segment != want.Segment ||
		got.SegmentTime != want.SegmentTime || got.Published != want.Published ||
		math.Float64bits(got.Score) != math.Float64bits(want.Score) || got.Band != want.Band ||
		len(got.Points) != len(want.Points) || len(got.Signals) != len(want.Signals) ||
		got.HasBaseline != want.HasBaseline || math.Float64bits(got.Baseline) != math.Float64bits(want.Baseline) ||
		got.BaselineAt != want.BaselineAt || got.HasDropped != want.HasDropped || got.DroppedAt != want.DroppedAt ||
		(got.Override == nil) != (want.Override == nil) || (got.Override != nil && *got.Override != *want.Override) ||
		got.HasDay != want.HasDay || got.Day != want.Day {
		t.Fatalf("state differs:\ngot  %+v\nwant %+v", got, want)
	}
	for i := range got.Points {
		if math.Float64bits(got.Points[i]) != math.Float64bits(want.Points[i]) {
			t.Fatalf("point %d: %v, want %v", i, got.Points[i], want.Points[i])
		}
	}
	for i := range got.Signals {
		g, w := got.Signals[i], want.Signals[i]
		if g.Seen != w.Seen || g.Ref != w.Ref || math.Float64bits(g.S) != math.Float64bits(w.S) || math.Float64bits(g.W) != math.Float64bits(w.W) {
			t.Fatalf("signal %s: %+v, want %+v", m.SignalName(i), g, w)
		}
	}
}

func TestDecodeStateErrors(t *testing.T) {
	m := mustModel(t, propModel)
	st, err := m.DecodeState(nil)
	if err != nil || st.Events != 0 || len(st.Signals) != m.Signals() {
		t.Fatalf("empty: %+v %v", st, err)
	}
	full := fold(m, []Event{segEv("login", 0, "big"), ev("nps", -day, 7), ev("pay", -hour, 12)})
	m.Step(full, t0)
	buf := m.AppendState(nil, full)
	for n := 1; n < len(buf); n++ {
		if _, err := m.DecodeState(buf[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: decoded", n, len(buf))
		}
	}
	if _, err := m.DecodeState(append(buf, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	bad := append([]byte{3}, buf[1:]...)
	if _, err := m.DecodeState(bad); err == nil || !strings.Contains(err.Error(), "unknown format 3") {
		t.Fatalf("format 3: %v", err)
	}
	// Sorted keys make the test independent of map order.
	keys := make([]uint32, 0, len(m.byKey))
	for k := range m.byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	if len(keys) != m.Signals() {
		t.Fatal("signal keys collide")
	}
}

func FuzzDecodeState(f *testing.F) {
	m := mustModel(f, propModel)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Add([]byte(oldStateEncoding)) // format 1: float32 points
	st := fold(m, []Event{segEv("login", 0, "big"), ev("nps", -day, 7), ev("pay", -hour, 12), ev("alarm", -2*day, 1)})
	f.Add(m.AppendState(nil, st))
	m.Step(st, t0)
	f.Add(m.AppendState(nil, st))
	st.HasBaseline, st.Baseline, st.BaselineAt, st.HasDropped, st.DroppedAt = true, 71.5, t0-day, true, t0-hour
	st.Override = &Override{Value: 12, By: "ana", Reason: "why", At: t0 - 2*day, Expires: t0 + day}
	f.Add(m.AppendState(nil, st))
	st.HasDay, st.Day = true, DayPoint{Day: DayOf(t0), At: t0, Score: 42.03, Band: BandYellow, Min: 41.9}
	f.Add(m.AppendState(nil, st))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := m.DecodeState(data)
		if err != nil {
			if st != nil {
				t.Fatal("state and error")
			}
			return
		}
		// What decodes re-encodes to a canonical form that decodes to the
		// same state and re-encodes to the same bytes.
		enc := m.AppendState(nil, st)
		st2, err := m.DecodeState(enc)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		checkSameState(t, m, st2, st)
		if enc2 := m.AppendState(nil, st2); string(enc2) != string(enc) {
			t.Fatal("encoding is not stable")
		}
		// Scoring a decoded state never panics.
		m.Step(st2, st2.LastEvent)
	})
}
