package bench

import (
	"errors"
	"math"
)

// rateSearch bounds the search for the highest paced rate the pipeline
// sustains.
type rateSearch struct {
	start    float64 // first rate tried (events/s)
	min, max float64 // rates below min count as "none sustained"; none above max is tried
	// ratio ends the bisection once the highest sustained and the lowest
	// failed rate are within this factor (e.g. 1.15).
	ratio  float64
	trials int // at most this many trials
}

// rateTrial is one rate tried and whether it was sustained.
type rateTrial struct {
	Rate      float64 `json:"rate_per_s"`
	Sustained bool    `json:"sustained"`
	// Why says what decided it: the largest lag, its growth, the rate the
	// harness managed to offer.
	Why string `json:"why"`
}

// errNoTrialTime is what a trial function returns when the time budget
// does not allow another trial; the search then ends with what it has.
var errNoTrialTime = errors.New("no time left for another trial")

// search finds the highest rate in [s.min, s.max] that try reports as
// sustained, assuming that a sustained rate's lower rates are sustained too.
// It brackets from s.start by factors of 2 (up while sustained, down while
// not), then bisects geometrically until the bracket is within s.ratio or
// the trials run out. It returns the highest sustained rate (0 if none
// was) and every trial, in order. An error of try other than
// errNoTrialTime ends the search with that error.
//
// search is pure: try is the only effect (a fake in tests).
func (s rateSearch) search(try func(rate float64) (ok bool, why string, err error)) (best float64, trials []rateTrial, err error) {
	lo, hi := 0.0, math.Inf(1) // highest sustained, lowest failed
	run := func(r float64) (bool, error) {
		ok, why, err := try(r)
		if err != nil {
			return false, err
		}
		trials = append(trials, rateTrial{Rate: r, Sustained: ok, Why: why})
		if ok {
			lo = max(lo, r)
		} else {
			hi = min(hi, r)
		}
		return ok, nil
	}
	done := func(err error) (float64, []rateTrial, error) {
		if errors.Is(err, errNoTrialTime) {
			err = nil
		}
		return lo, trials, err
	}
	if s.trials < 1 || s.max <= 0 || s.min > s.max {
		return 0, nil, nil
	}
	r := min(max(s.start, s.min), s.max)
	// Bracket.
	for len(trials) < s.trials {
		ok, err := run(r)
		if err != nil {
			return done(err)
		}
		switch {
		case ok && r >= s.max:
			return done(nil) // sustained at the ceiling
		case ok && !math.IsInf(hi, 1):
			// Sustained below a failed rate: bracketed.
		case ok:
			r = min(2*r, s.max)
			continue
		case lo > 0:
			// Failed above a sustained rate: bracketed.
		case r <= s.min:
			return done(nil) // nothing sustained
		default:
			r = max(r/2, s.min)
			continue
		}
		break
	}
	// Bisect.
	for len(trials) < s.trials && lo > 0 && hi/lo > s.ratio {
		if _, err := run(math.Sqrt(lo * hi)); err != nil {
			return done(err)
		}
	}
	return done(nil)
}
