package scorer

import (
	"math"
	"time"
)

// ForecastHorizon is how far ahead Forecast looks.
const ForecastHorizon = 365 * 24 * time.Hour

// Forecast is when a customer's band would worsen if nothing more happens:
// the first instants after At at which the band the pipeline would publish
// is yellow or worse (YellowAt), and red (RedAt). Instants are Unix ns on
// the Grid (whole milliseconds); each is valid only with its Has flag.
type Forecast struct {
	At        int64
	Band      Band // the band at At, as Evaluate gives it; BandNone without a score
	YellowAt  int64
	HasYellow bool // false when already yellow or red at At, or not within the horizon
	RedAt     int64
	HasRed    bool // false when already red at At, or not within the horizon
}

// Forecast returns when st, receiving no new events, turns yellow and red
// after at, within ForecastHorizon (see Reach). Cost: two searches of
// O(signals · log2(ForecastHorizon/Grid)); no allocations.
func (m *Model) Forecast(st *State, at int64) Forecast {
	f := Forecast{At: at}
	b, ok := m.bandAt(st, at)
	if !ok {
		return f
	}
	f.Band = b
	if b > BandYellow {
		f.YellowAt, f.HasYellow = m.reach(st, at, b, BandYellow, ForecastHorizon)
	}
	if b > BandRed {
		// Red is never reached before yellow or worse: search from there.
		from := at
		if f.HasYellow {
			from = max(at, f.YellowAt-Grid) // not yellow there, so not red
		}
		if f.HasYellow || b == BandYellow {
			f.RedAt, f.HasRed = m.reach(st, from, b, BandRed, time.Duration(at-from)+ForecastHorizon)
		}
	}
	return f
}

// Reach returns the first instant T in (at, at+within], on the Grid, at
// which the band of st with no new event is target or worse (BandYellow:
// yellow or red), with the band's hysteresis as the pipeline publishes it;
// ok is false when the band is already there at at, st has no score, or T
// is not within. An active override holds the score at its value until it
// expires; from then on the score is the events' again.
//
// The band at at is Evaluate's (hysteresis against st.Band, the last
// published band). From a band better than target, the band first becomes
// target or worse exactly when the score falls below target's upper
// boundary minus the hysteresis; which bands it passes on the way does not
// matter. So T
// is the first grid instant where that holds, found like NextChange finds
// its instant: bisection of (at, at+within] split at the override's expiry,
// pruned by the rate bound of scoreRate, exact on the grid.
func (m *Model) Reach(st *State, at int64, target Band, within time.Duration) (int64, bool) {
	if target != BandRed && target != BandYellow {
		return 0, false
	}
	b, ok := m.bandAt(st, at)
	if !ok {
		return 0, false
	}
	return m.reach(st, at, b, target, within)
}

// bandAt is Evaluate(st, at).Band and HasScore, without the explanation.
func (m *Model) bandAt(st *State, at int64) (Band, bool) {
	_, b, ok := m.BandAt(st, at)
	return b, ok
}

// BandAt returns Evaluate(st, at)'s Score, Band and HasScore, without
// building the explanation.
func (m *Model) BandAt(st *State, at int64) (float64, Band, bool) {
	s, ok := m.ScoreAt(st, at)
	if !ok {
		return 0, BandNone, false
	}
	return s, m.band(s, st.Band, m.profileFor(st.Segment).bands), true
}

// reach is Reach from band b at at.
func (m *Model) reach(st *State, at int64, b, target Band, within time.Duration) (int64, bool) {
	if b <= target || within <= 0 {
		return 0, false
	}
	p := m.profileFor(st.Segment)
	boundary := p.bands.Red
	if target == BandYellow {
		boundary = p.bands.Yellow
	}
	c := changeCond{m: m, st: st, p: p, slack: 1e-9, reach: target, from: b,
		hi: math.Inf(1), loBand: boundary - m.Hysteresis}
	end := at + int64(within)
	var bps []int64
	var one [1]int64
	if o := st.Override; o.Active(at) && o.Expires < end {
		one[0] = o.Expires
		bps = one[:]
	}
	return c.search(at, end, bps)
}
