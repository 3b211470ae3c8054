package scorer

import (
	"math"
	"time"
)

// DefaultDecayStep is decay_step when the model does not set it, in points.
const DefaultDecayStep = 5

// MaxHorizon is how far ahead NextChange looks.
const MaxHorizon = 400 * 24 * time.Hour

// changeResolution is how soon NextChange and EarliestChange put an output
// that is due at once (the condition already holds at from).
const changeResolution = int64(time.Second)

// ScoreAt returns the score of st at instant at (Unix ns) as Evaluate
// would (an active override's value, else the score from events), without
// building an explanation and without allocating. ok is false when st has
// no score.
func (m *Model) ScoreAt(st *State, at int64) (score float64, ok bool) {
	if o := st.Override; o.Active(at) {
		return o.Value, true
	}
	score, _, ok = m.scoreRate(st, m.profileFor(st.Segment), at)
	return score, ok
}

// scoreRate is the score of st at at, bit for bit as Evaluate computes it,
// and a bound on how fast it can move (points per ns, either way) at any
// instant from at on, with no new events.
//
// The bound: a count or sum sub-score S·2^(−Δ/h)/target moves at
// ln2/h · min(x, 1) at most (x its unclamped value; 0 while clamped at 1,
// and x only falls), a recency sub-score at ln2/h · 2^(−Δ/h); averages do not
// move, direction does not change the speed, and which categories have data
// does not change with time. Each term only shrinks as time passes, so the
// bound at at holds for every later instant.
func (m *Model) scoreRate(st *State, p *profile, at int64) (score, rate float64, ok bool) {
	var wsum, acc, racc float64
	i := 0
	for ci := range m.Categories {
		end := i + len(m.Categories[ci].Signals)
		w := p.weights[ci]
		n, sum, rsum := 0, 0.0, 0.0
		for ; i < end; i++ {
			sig := &m.signals[i]
			s := &st.Signals[i]
			var v, r float64
			switch sig.Kind {
			case KindCount, KindSum:
				if s.Seen {
					x := s.S * decay(at-s.Ref, sig.hl) / p.targets[i]
					v = clamp01(x)
					if x > 0 {
						r = math.Ln2 / sig.hl * math.Min(x, 1)
					}
				}
			case KindAverage:
				if !s.Seen || !(s.W > 0) {
					continue
				}
				v = clamp01((s.S/s.W - sig.Min) / (sig.Max - sig.Min))
			case KindRecency:
				if s.Seen {
					v = decay(at-s.Ref, sig.hl)
					r = math.Ln2 / sig.hl * v
				}
			}
			if sig.Negative {
				v = 1 - v
			}
			n++
			sum += v
			rsum += r
		}
		if n > 0 && w > 0 {
			wsum += w
			acc += w * (sum / float64(n))
			racc += w * (rsum / float64(n))
		}
	}
	if wsum == 0 {
		return 0, 0, false
	}
	return 100 * acc / wsum, 100 * racc / wsum, true
}

// changeCond is what NextChange looks for, fixed for one call, and the
// regime of the piece of time being searched: whether the override is in
// force and whether a dropped alert may fire.
type changeCond struct {
	m      *Model
	st     *State
	p      *profile
	step   float64 // max(decay_step, change_min_delta)
	hi     float64 // the lowest score that surely changes something upwards
	lo     float64 // the highest score that surely changes something downwards
	loBand float64
	slack  float64

	overridden bool
	dropOK     bool

	// reach, when not BandNone, makes the condition "the band against
	// from is reach or worse" (see Reach) instead of "an output is due".
	reach Band
	from  Band
}

func (m *Model) newChangeCond(st *State) changeCond {
	p := m.profileFor(st.Segment)
	c := changeCond{m: m, st: st, p: p, step: math.Max(m.DecayStep, m.ChangeMinDelta), slack: 1e-9}
	// Band boundaries with hysteresis (see band): up at boundary + h,
	// down below boundary − h.
	up, down := math.Inf(1), math.Inf(-1)
	switch st.Band {
	case BandRed:
		up = p.bands.Red + m.Hysteresis
	case BandYellow:
		up, down = p.bands.Yellow+m.Hysteresis, p.bands.Red-m.Hysteresis
	case BandGreen:
		down = p.bands.Yellow - m.Hysteresis
	}
	c.hi = math.Min(up, st.Score+c.step)
	c.loBand = math.Max(down, st.Score-c.step)
	return c
}

// enter sets the regime in force from instant t on (until the next
// breakpoint).
func (c *changeCond) enter(t int64) {
	c.overridden = c.st.Override.Active(t)
	c.dropOK = c.reach == BandNone && c.m.dropEligible(c.st, t)
	c.lo = c.loBand
	if c.dropOK {
		c.lo = math.Max(c.lo, c.st.Baseline-c.m.Trend.DropPoints)
	}
}

// score is the score at t and its rate bound, in the current regime.
func (c *changeCond) score(t int64) (float64, float64, bool) {
	if c.overridden {
		return c.st.Override.Value, 0, true
	}
	return c.m.scoreRate(c.st, c.p, t)
}

// holds reports whether score s calls for an output in the current regime:
// the exact tests of Step.
func (c *changeCond) holds(s float64) bool {
	if c.reach != BandNone {
		return c.m.band(s, c.from, c.p.bands) <= c.reach
	}
	st := c.st
	return c.m.band(s, st.Band, c.p.bands) != st.Band || math.Abs(s-st.Score) >= c.step ||
		(c.dropOK && st.Baseline-s >= c.m.Trend.DropPoints)
}

// mayHold reports whether the condition can hold somewhere strictly inside
// (a, b), given the scores sa, sb at the ends and the rate bound r from a
// on: the score stays under (sa + sb + r·(b − a))/2 and over
// (sa + sb − r·(b − a))/2.
//
// When the score can move less than slack in the whole interval, a crossing
// inside would be an excursion of less than slack points, which does not
// count: without this, a score that levels off within slack of a threshold
// (it approaches an asymptote there) could not be pruned anywhere and the
// search would visit every grid instant.
func (c *changeCond) mayHold(a, b int64, sa, sb, r float64) bool {
	reach := r * float64(b-a)
	if reach < c.slack {
		return false
	}
	return (sa+sb+reach)/2 >= c.hi-c.slack || (sa+sb-reach)/2 <= c.lo+c.slack
}

// NextChange returns the earliest instant T > from (Unix ns) at which st,
// receiving no new events, would need an output: the score evaluated at T
// would change the band (with hysteresis against st.Band), or would be at
// least max(DecayStep, ChangeMinDelta) points away from st.Score (the last
// published score), or would raise a dropped alert (see Step). So Step(st, T)
// publishes a change or raises a dropped alert. The score is the shown one:
// an active override's value until it expires.
//
// T is a whole millisecond (Grid, the unit of the schedule), and exact on
// that grid: the condition holds at T and at no earlier whole millisecond
// after from (an excursion across a threshold shallower than 1e-9 points
// is not counted, see mayHold). When the condition already holds at from,
// T is from plus a second: due at once. ok is false when that does not
// happen within MaxHorizon, or st has no published score. The score need not be
// monotone (decaying negative signals raise it while positive ones lower
// it), so the search does not assume it is: it bisects [from, from +
// MaxHorizon], split at the instants where the rules change (an override's
// expiry, the end of the dropped-alert cooldown), discarding an interval
// only when the rate bound of scoreRate proves the score cannot reach a
// threshold inside it.
//
// Cost: O(signals · log2(MaxHorizon/Grid)) for a typical state; no
// allocations.
func (m *Model) NextChange(st *State, from int64) (at int64, ok bool) {
	if !st.Published {
		return 0, false
	}
	c := m.newChangeCond(st)
	end := addSat(from, int64(MaxHorizon))
	// Breakpoints after from, in order: at each the regime may change.
	var bps [2]int64
	n := 0
	add := func(t int64) {
		if t > from && t < end {
			bps[n] = t
			n++
		}
	}
	cool := int64(math.MaxInt64)
	if m.Trend != nil && st.HasDropped {
		cool = addSat(st.DroppedAt, int64(m.Trend.Cooldown))
	}
	exp := int64(math.MaxInt64)
	if o := st.Override; o.Active(from) {
		exp = o.Expires
	}
	add(min(cool, exp))
	if max(cool, exp) != min(cool, exp) {
		add(max(cool, exp))
	}
	c.enter(from)
	if sa, _, ok := c.score(from); ok && c.holds(sa) {
		// Not stepped at from: the output is due at once.
		return from + changeResolution, true
	}
	return c.search(from, end, bps[:n])
}

// addSat is t + d (d ≥ 0) capped at the last representable instant: the
// horizon of a state near 2262, where int64 nanoseconds end, is cut there
// rather than wrapping to the past.
func addSat(t, d int64) int64 {
	if t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}

// Grid is the resolution of NextChange and Reach: their instants are whole
// milliseconds (Unix ns divisible by Grid), the unit of the schedule.
const Grid = int64(time.Millisecond)

// ceilGrid is the first grid instant at or after t; floorGrid the last at
// or before t.
func ceilGrid(t int64) int64 {
	r := t % Grid
	if r > 0 {
		r -= Grid
	}
	return t - r
}

func floorGrid(t int64) int64 {
	r := t % Grid
	if r < 0 {
		r += Grid
	}
	return t - r
}

// search returns the earliest grid instant in (from, end] at which the
// condition holds, given that it does not hold at from. The rules change at
// the breakpoints bps (sorted, inside (from, end)): each piece [bp_k,
// bp_k+1) is searched in its own regime.
func (c *changeCond) search(from, end int64, bps []int64) (int64, bool) {
	a := from
	for k := 0; k <= len(bps); k++ {
		stop := end + 1 // the piece is [a, stop)
		if k < len(bps) {
			stop = bps[k]
		}
		g := a // the piece's first instant not yet known to miss
		if k > 0 {
			if g = ceilGrid(a); g >= stop {
				a = stop
				continue // no grid instant in this piece
			}
		}
		c.enter(g)
		sg, rg, ok := c.score(g)
		if ok {
			if k > 0 && c.holds(sg) {
				return g, true
			}
			if last := floorGrid(stop - 1); last > g {
				sl, _, _ := c.score(last)
				if t, found := c.first(g, last, sg, rg, sl, c.holds(sl)); found {
					return t, true
				}
			}
		}
		a = stop
	}
	return 0, false
}

// first returns the earliest grid instant in (a, b] where the condition
// holds, given that it does not hold at a (any instant) and b is a grid
// instant after a; sa and ra are the score and rate bound at a, sb the score
// at b and hb whether the condition holds at b.
func (c *changeCond) first(a, b int64, sa, ra, sb float64, hb bool) (int64, bool) {
	lo := ceilGrid(a + 1) // the first grid instant after a
	if lo >= b {
		return b, hb
	}
	if !hb && !c.mayHold(a, b, sa, sb, ra) {
		return 0, false
	}
	mid := max(floorGrid(a+(b-a)/2), lo)
	sm, rm, _ := c.score(mid)
	hm := c.holds(sm)
	if t, ok := c.first(a, mid, sa, ra, sm, hm); ok {
		return t, true
	}
	return c.first(mid, b, sm, rm, sb, hb)
}

// EarliestChange returns an instant no later than NextChange(st, from): a
// wake-up that is never late, from one evaluation instead of a search. ok
// is false only when NextChange's is. The bound: in the rules in force at
// from, the score moves at most at the rate bound of scoreRate, so it cannot
// reach a threshold sooner than distance/rate; the next change of rules (an
// override's expiry, the end of the dropped-alert cooldown) comes no later
// than it is reached. Use it where the customer will probably be evaluated
// again before then anyway (a stream of events), and NextChange at the
// wake-up: a customer left alone then gets one early, silent wake-up before
// the exact one.
func (m *Model) EarliestChange(st *State, from int64) (at int64, ok bool) {
	if !st.Published {
		return 0, false
	}
	c := m.newChangeCond(st)
	end := addSat(from, int64(MaxHorizon)) // cut at the end of time (April 2262), as NextChange's
	bp := end                              // the first change of rules after from, or the horizon
	if m.Trend != nil && st.HasDropped {
		if cool := st.DroppedAt + int64(m.Trend.Cooldown); cool > from {
			bp = min(bp, cool)
		}
	}
	if o := st.Override; o.Active(from) && o.Expires > from {
		bp = min(bp, o.Expires)
	}
	c.enter(from)
	s, r, has := c.score(from)
	if has && c.holds(s) {
		return from + changeResolution, true
	}
	t := bp
	if has && r > 0 {
		d := math.Min(c.hi-s, s-c.lo) - c.slack
		if d <= 0 {
			// Within slack of a threshold: NextChange may be the very
			// next grid instant.
			return ceilGrid(from + 1), true
		}
		if dt := d / r; dt < float64(bp-from) {
			t = from + max(int64(dt), 1)
		}
	}
	if t >= end {
		return 0, false
	}
	return t, true
}
