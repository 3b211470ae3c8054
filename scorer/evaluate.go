package scorer

import (
	"math"
	"sort"
)

// SignalScore explains one signal in an evaluation.
type SignalScore struct {
	Name    string
	HasData bool
	Sub     float64 // 0..1, direction applied
	Points  float64 // contribution to the score, in points
}

// CategoryScore explains one category in an evaluation.
type CategoryScore struct {
	Name    string
	Weight  float64 // effective weight (the customer's segment)
	HasData bool
	Score   float64 // 0..1: mean of its signals that have data
	Points  float64 // contribution to the score, in points; they add up to the score
	Signals []SignalScore
}

// Evaluation is a customer's score at one instant, with its explanation.
type Evaluation struct {
	At       int64 // Unix ns
	HasScore bool  // false when no category has data and no override is active
	Score    float64
	Band     Band // with hysteresis against the state's band
	Segment  string
	// Override is the active override, nil when none: Score is then its
	// value, and Computed (with the categories) is the score from events.
	Override    *Override
	Computed    float64
	HasComputed bool
	// Categories in model order.
	Categories []CategoryScore
}

// Evaluate scores st at instant at (Unix ns). Signals decay from their
// latest event to at; at should not be before st.LastEvent (an earlier
// instant is treated as the signal's own latest event time).
func (m *Model) Evaluate(st *State, at int64) Evaluation {
	p := m.profileFor(st.Segment)
	ev := Evaluation{At: at, Segment: st.Segment, Categories: make([]CategoryScore, len(m.Categories))}
	subs := make([]float64, len(m.signals))
	has := make([]bool, len(m.signals))
	for i := range m.signals {
		subs[i], has[i] = m.sub(i, &st.Signals[i], p, at)
	}
	var wsum, acc float64
	si := 0
	for ci, c := range m.Categories {
		cs := &ev.Categories[ci]
		cs.Name, cs.Weight = c.Name, p.weights[ci]
		cs.Signals = make([]SignalScore, len(c.Signals))
		n, sum := 0, 0.0
		for k := range c.Signals {
			cs.Signals[k] = SignalScore{Name: c.Signals[k].Name, HasData: has[si], Sub: subs[si]}
			if has[si] {
				n++
				sum += subs[si]
			}
			si++
		}
		if n > 0 && cs.Weight > 0 {
			cs.HasData, cs.Score = true, sum/float64(n)
			wsum += cs.Weight
			acc += cs.Weight * cs.Score
		}
	}
	if o := st.Override; o.Active(at) {
		ev.Override, ev.HasScore, ev.Score = o, true, o.Value
		ev.Band = m.band(ev.Score, st.Band, p.bands)
	}
	if wsum == 0 {
		return ev
	}
	ev.HasComputed, ev.Computed = true, 100*acc/wsum
	if ev.Override == nil {
		ev.HasScore, ev.Score = true, ev.Computed
	}
	for ci := range ev.Categories {
		cs := &ev.Categories[ci]
		if !cs.HasData {
			continue
		}
		cs.Points = 100 * cs.Weight * cs.Score / wsum // they add up to Computed
		n := 0
		for _, s := range cs.Signals {
			if s.HasData {
				n++
			}
		}
		for k := range cs.Signals {
			if cs.Signals[k].HasData {
				cs.Signals[k].Points = 100 * cs.Weight * cs.Signals[k].Sub / float64(n) / wsum
			}
		}
	}
	if ev.Override == nil {
		ev.Band = m.band(ev.Score, st.Band, p.bands)
	}
	return ev
}

// sub is signal i's sub-score at instant at, and whether it has data.
func (m *Model) sub(i int, s *SignalState, p *profile, at int64) (float64, bool) {
	sig := &m.signals[i]
	var v float64
	switch sig.Kind {
	case KindCount, KindSum:
		if s.Seen {
			v = clamp01(s.S * decay(at-s.Ref, sig.hl) / p.targets[i])
		}
	case KindAverage:
		// S/W does not change with decay: both decay by the same factor.
		if !s.Seen || !(s.W > 0) {
			return 0, false
		}
		v = clamp01((s.S/s.W - sig.Min) / (sig.Max - sig.Min))
	case KindRecency:
		if s.Seen {
			v = decay(at-s.Ref, sig.hl)
		}
	}
	if sig.Negative {
		v = 1 - v
	}
	return v, true
}

func clamp01(x float64) float64 {
	switch {
	case x > 1:
		return 1
	case x >= 0:
		return x
	default: // negative or NaN
		return 0
	}
}

// RawBand is the band of a score without hysteresis, for the given segment.
func (m *Model) RawBand(score float64, segment string) Band {
	return rawBand(score, m.profileFor(segment).bands)
}

func rawBand(score float64, b Bands) Band {
	switch {
	case score < b.Red:
		return BandRed
	case score < b.Yellow:
		return BandYellow
	default:
		return BandGreen
	}
}

// band applies hysteresis: moving to a healthier band needs the score to be
// at least boundary + hysteresis, moving to a worse one below boundary −
// hysteresis; otherwise the previous band stays.
func (m *Model) band(score float64, prev Band, b Bands) Band {
	if prev == BandNone {
		return rawBand(score, b)
	}
	h := m.Hysteresis
	if up := rawBand(score-h, b); up > prev {
		return up
	}
	if down := rawBand(score+h, b); down < prev {
		return down
	}
	return prev
}

// Driver is one signal's part in a score change.
type Driver struct {
	Category string  `json:"category"`
	Signal   string  `json:"signal"`
	Points   float64 `json:"points"` // signed change of the signal's contribution
}

// Drivers returns the top n signals by absolute change of their contribution
// between prev (per-signal points, as in Points) and cur. Ties keep model
// order. Signals that did not move are left out.
func (m *Model) Drivers(prev []float64, cur *Evaluation, n int) []Driver {
	curPts := cur.SignalPoints()
	var ds []Driver
	si := 0
	for _, c := range cur.Categories {
		for _, s := range c.Signals {
			var before float64
			if si < len(prev) {
				before = prev[si]
			}
			if d := curPts[si] - before; math.Abs(d) >= driverEpsilon {
				ds = append(ds, Driver{Category: c.Name, Signal: s.Name, Points: d})
			}
			si++
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return math.Abs(ds[i].Points) > math.Abs(ds[j].Points) })
	if len(ds) > n {
		ds = ds[:n]
	}
	return ds
}

// SignalPoints flattens each signal's contribution, in model order.
func (e *Evaluation) SignalPoints() []float64 {
	var pts []float64
	for _, c := range e.Categories {
		for _, s := range c.Signals {
			pts = append(pts, s.Points)
		}
	}
	return pts
}

// Alert is a band transition worth alerting on.
type Alert uint8

// Alerts.
const (
	AlertNone      Alert = iota
	AlertLow             // entered red (including a first score in red)
	AlertRecovered       // left red
)

// Outcome is what one evaluation means for the outputs.
type Outcome struct {
	Eval        Evaluation
	Changed     bool // publish a score change
	PrevScore   float64
	PrevBand    Band
	HadPrevious bool
	Alert       Alert
	Drivers     []Driver
	BandChanged bool
	FirstScore  bool
	ScoreDelta  float64

	// Dropped is a trend alert (models with a trend section), independent
	// of Alert: one evaluation may raise both a low and a dropped alert.
	// Baseline is the baseline the score was compared with (before this
	// evaluation updated it), CooldownUntil the instant before which no
	// further dropped alert is raised.
	Dropped       bool
	Baseline      float64
	CooldownUntil int64
}

// MaxDrivers is how many drivers an outcome names.
const MaxDrivers = 3

// Step evaluates st at at and decides the outputs: a score change when the
// score moved by at least change_min_delta from the last published score, the
// band changed, or this is the first score; a low alert when the band enters
// red, a recovered alert when it leaves red; a dropped alert when the model
// has a trend, baseline − score >= drop_points and the last dropped alert
// is at least cooldown old. When Changed, st records the publication (score,
// band, points, and the baseline: B ← B·w + score·(1 − w) with
// w = 2^(−(at − t_B)/h), the first publication sets B = score), so Step is
// the one place that advances what was published. The baseline is compared
// before it is updated.
func (m *Model) Step(st *State, at int64) Outcome {
	// Most evaluations publish nothing: decide that from the lean score
	// (ScoreAt, bit for bit Evaluate's, no allocation) and build the
	// explanation only for an output. The lean outcome's Eval has no
	// categories.
	if score, has := m.ScoreAt(st, at); !has || (st.Published && !m.dropDue(st, score, at)) {
		lean := Evaluation{At: at, HasScore: has, Score: score, Segment: st.Segment}
		if o := st.Override; o.Active(at) {
			lean.Override = o
		}
		if has {
			lean.Band = m.band(score, st.Band, m.profileFor(st.Segment).bands)
		}
		if !has || (lean.Band == st.Band && math.Abs(score-st.Score) < m.ChangeMinDelta) {
			o := Outcome{Eval: lean, PrevScore: st.Score, PrevBand: st.Band, HadPrevious: st.Published}
			if has {
				o.ScoreDelta = score - st.Score
			}
			return o
		}
	}
	ev := m.Evaluate(st, at)
	o := Outcome{Eval: ev, PrevScore: st.Score, PrevBand: st.Band, HadPrevious: st.Published}
	if !ev.HasScore {
		return o
	}
	o.ScoreDelta = ev.Score - st.Score
	o.FirstScore = !st.Published
	o.BandChanged = ev.Band != st.Band
	o.Changed = o.FirstScore || o.BandChanged || math.Abs(o.ScoreDelta) >= m.ChangeMinDelta
	switch {
	case ev.Band == BandRed && st.Band != BandRed:
		o.Alert = AlertLow
	case ev.Band != BandRed && st.Band == BandRed:
		o.Alert = AlertRecovered
	}
	if m.dropDue(st, ev.Score, at) {
		o.Dropped, o.Baseline = true, st.Baseline
		o.CooldownUntil = at + int64(m.Trend.Cooldown)
		st.HasDropped, st.DroppedAt = true, at
	}
	if !o.Changed {
		return o
	}
	o.Drivers = m.Drivers(st.Points, &ev, MaxDrivers)
	// The points are kept in ten-thousandths (roundPoint): the state stores
	// them so (about 3 bytes a signal instead of 4), and a state that was
	// saved and reloaded then gives the same drivers as one kept in memory.
	pts := ev.SignalPoints()
	for i, p := range pts {
		pts[i] = roundPoint(p)
	}
	st.Published, st.Score, st.Band, st.Points = true, ev.Score, ev.Band, pts
	if at > st.LastEvent && at > st.PublishedAt {
		st.PublishedAt = at
	}
	if m.Trend != nil {
		if !st.HasBaseline {
			st.HasBaseline, st.Baseline, st.BaselineAt = true, ev.Score, at
		} else if at > st.BaselineAt {
			w := decay(at-st.BaselineAt, float64(m.Trend.BaselineHalfLife))
			st.Baseline, st.BaselineAt = st.Baseline*w+ev.Score*(1-w), at
		}
	}
	return o
}

// dropEligible reports whether a dropped alert may be raised at at (the
// cooldown has passed); dropDue whether score at at raises one.
func (m *Model) dropEligible(st *State, at int64) bool {
	return m.Trend != nil && st.HasBaseline && (!st.HasDropped || at-st.DroppedAt >= int64(m.Trend.Cooldown))
}

func (m *Model) dropDue(st *State, score float64, at int64) bool {
	return m.dropEligible(st, at) && st.Baseline-score >= m.Trend.DropPoints
}

// driverEpsilon is the smallest change of a signal's points that counts as a
// driver. Published points are stored as float32, so smaller differences are
// storage noise, and they would round to 0.00 in any display anyway.
const driverEpsilon = 0.005
