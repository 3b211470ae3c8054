package bench

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// threshold is a fake pipeline that sustains every rate up to t.
func threshold(t float64, tried *[]float64) func(float64) (bool, string, error) {
	return func(r float64) (bool, string, error) {
		*tried = append(*tried, r)
		return r <= t, "", nil
	}
}

// TestRateSearchFindsThreshold: for thresholds anywhere in and around the
// range, the search returns a sustained rate within the ratio of the
// threshold (or the ceiling, or 0), never a failed one, and stays within
// its trials, never trying a rate twice.
func TestRateSearchFindsThreshold(t *testing.T) {
	s := rateSearch{start: 50_000, min: 1_000, max: 120_000, ratio: 1.15, trials: 12}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []float64{500, 1_000, 1_001, 3_000, 24_999, 50_000, 50_001, 99_000, 119_999, 120_000, 1e6}
	for range 200 {
		cases = append(cases, 500+rng.Float64()*150_000)
	}
	for _, th := range cases {
		var tried []float64
		best, trials, err := s.search(threshold(th, &tried))
		if err != nil {
			t.Fatalf("threshold %g: %v", th, err)
		}
		if len(trials) != len(tried) || len(trials) > s.trials {
			t.Fatalf("threshold %g: %d trials reported, %d run, limit %d", th, len(trials), len(tried), s.trials)
		}
		seen := map[float64]bool{}
		for i, tr := range trials {
			if seen[tr.Rate] {
				t.Fatalf("threshold %g: rate %g tried twice (trials %+v)", th, tr.Rate, trials)
			}
			seen[tr.Rate] = true
			if tr.Rate != tried[i] || tr.Sustained != (tr.Rate <= th) || tr.Rate < s.min || tr.Rate > s.max {
				t.Fatalf("threshold %g: trial %d = %+v (tried %g)", th, i, tr, tried[i])
			}
		}
		switch {
		case th < s.min:
			if best != 0 {
				t.Errorf("threshold %g below the minimum: best %g, want 0", th, best)
			}
		case th >= s.max:
			if best != s.max {
				t.Errorf("threshold %g above the maximum: best %g, want %g", th, best, s.max)
			}
		default:
			if best > th || best*s.ratio < th {
				t.Errorf("threshold %g: best %g not within %g below it (trials %+v)", th, best, s.ratio, trials)
			}
		}
	}
}

// TestRateSearchBudget: the search stops at its trial limit and when a
// trial says the time is up, keeping what it found; other errors end it
// with the error.
func TestRateSearchBudget(t *testing.T) {
	s := rateSearch{start: 50_000, min: 1_000, max: 120_000, ratio: 1.01, trials: 4}
	var tried []float64
	best, trials, err := s.search(threshold(60_000, &tried))
	if err != nil || len(trials) != 4 {
		t.Fatalf("limit 4: %d trials, err %v", len(trials), err)
	}
	// 50k sustained, 100k not, √(50k·100k) ≈ 70.7k not, √(50k·70.7k) ≈ 59.5k sustained.
	if best < 59_000 || best > 60_000 || trials[3].Rate != best {
		t.Errorf("best %g after 4 trials %+v, want ≈ 59.5k", best, trials)
	}

	n := 0
	best, trials, err = s.search(func(r float64) (bool, string, error) {
		n++
		if n == 3 {
			return false, "", errNoTrialTime
		}
		return r <= 60_000, "", nil
	})
	if err != nil || len(trials) != 2 || best != 50_000 {
		t.Errorf("out of time at trial 3: best %g, %d trials, err %v; want 50000, 2, nil", best, len(trials), err)
	}

	boom := errors.New("broker gone")
	_, _, err = s.search(func(float64) (bool, string, error) { return false, "", boom })
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want %v", err, boom)
	}

	if best, trials, err := (rateSearch{start: 1, min: 1, max: 10, ratio: 1.1}).search(threshold(5, &tried)); best != 0 || trials != nil || err != nil {
		t.Errorf("no trials allowed: %g %v %v", best, trials, err)
	}
}

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	for _, c := range []struct {
		ys   []float64
		want float64
	}{
		{[]float64{5, 7, 9, 11, 13}, 2},
		{[]float64{3, 3, 3, 3, 3}, 0},
		{[]float64{10, 0, 10, 0, 10}, 0},
		{[]float64{4, 3, 2, 1, 0}, -1},
	} {
		if got := slope(xs, c.ys); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("slope(%v) = %g, want %g", c.ys, got, c.want)
		}
	}
	if slope([]float64{1}, []float64{2}) != 0 || slope([]float64{1, 1}, []float64{0, 5}) != 0 {
		t.Error("slope of a single x is not 0")
	}
}
