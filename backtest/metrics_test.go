package backtest

import (
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestAUCHandComputed(t *testing.T) {
	T, F := true, false
	for _, c := range []struct {
		scores  []float64
		churned []bool
		want    float64
	}{
		// Pairs (stayed, churned): (2,1) ✓ (2,3) ✗ (4,1) ✓ (4,3) ✓ → 3/4.
		{[]float64{1, 2, 3, 4}, []bool{T, F, T, F}, 0.75},
		// (1,1) ½ (1,2) 0 (2,1) 1 (2,2) ½ → 2/4.
		{[]float64{1, 1, 2, 2}, []bool{T, F, T, F}, 0.5},
		// (2,1) 1 (2,2) ½ (3,1) 1 (3,2) 1 → 3.5/4.
		{[]float64{1, 2, 2, 3}, []bool{T, T, F, F}, 0.875},
		{[]float64{5, 5, 5}, []bool{T, F, F}, 0.5},
		{[]float64{9, 1}, []bool{T, F}, 0},
		{[]float64{1, 9}, []bool{T, F}, 1},
		// Order of the input does not matter: (30,10) ✓ (30,20) ✓ (20,10) ✓ (20,20) ½ (25,…) ✓✓ → 5.5/6.
		{[]float64{20, 30, 10, 25, 20}, []bool{T, F, T, F, F}, 5.5 / 6},
	} {
		if got := AUC(c.scores, c.churned); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("AUC(%v, %v) = %v, want %v", c.scores, c.churned, got, c.want)
		}
	}
	if !math.IsNaN(AUC([]float64{1, 2}, []bool{T, T})) || !math.IsNaN(AUC(nil, nil)) {
		t.Error("AUC with one class must be NaN")
	}
}

func TestROCHandComputed(t *testing.T) {
	got := ROC([]float64{1, 2, 3, 4}, []bool{true, false, true, false})
	want := []Point{{0, 0}, {0, 0.5}, {0.5, 0.5}, {0.5, 1}, {1, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("ROC = %v, want %v", got, want)
	}
	// Ties make one diagonal step.
	got = ROC([]float64{1, 1, 2}, []bool{true, false, false})
	want = []Point{{0, 0}, {0.5, 1}, {1, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("ROC with ties = %v, want %v", got, want)
	}
	if ROC([]float64{1}, []bool{false}) != nil {
		t.Fatal("ROC with one class must be nil")
	}
}

func TestLiftHandComputed(t *testing.T) {
	scores := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	churned := make([]bool, 10)
	churned[0], churned[4] = true, true
	// Riskiest tenth: the score-1 customer, churned: rate 1 over 0.2.
	if got := TopDecileLift(scores, churned); got != 5 {
		t.Errorf("lift = %v, want 5", got)
	}
	// Riskiest fifth: scores 1 and 2, one churned: 0.5 / 0.2.
	if got := Lift(scores, churned, 0.2); got != 2.5 {
		t.Errorf("lift 0.2 = %v, want 2.5", got)
	}
	// A tie straddling the boundary counts in proportion: scores 1,1 (one
	// churned) for a tenth of 10 → 0.5 churned of 1 → 0.5 / 0.2.
	scores[1] = 1
	if got := TopDecileLift(scores, churned); got != 2.5 {
		t.Errorf("lift with a tie = %v, want 2.5", got)
	}
	// 20 customers, tenth = 2: scores 1 (churned) then a tie of three at 2
	// with one churned → 1 + 1/3 churned of 2, over a rate of 2/20.
	s20 := make([]float64, 20)
	c20 := make([]bool, 20)
	for i := range s20 {
		s20[i] = float64(i + 3)
	}
	s20[0], s20[1], s20[2], s20[3] = 1, 2, 2, 2
	c20[0], c20[3] = true, true
	if got, want := TopDecileLift(s20, c20), (4.0/3/2)/(2.0/20); math.Abs(got-want) > 1e-12 {
		t.Errorf("lift 20 = %v, want %v", got, want)
	}
	if !math.IsNaN(TopDecileLift(scores, make([]bool, 10))) {
		t.Error("lift without churn must be NaN")
	}
}

func TestRanks(t *testing.T) {
	if got := Ranks([]float64{3, 1, 3, 2}); !slices.Equal(got, []float64{3.5, 1, 3.5, 2}) {
		t.Fatalf("Ranks = %v", got)
	}
}

// Properties: AUC(−x) = 1 − AUC(x); AUC and lift are invariant under
// strictly increasing transforms; the trapezoid area of ROC is AUC; the
// lift of the whole population is 1.
func TestMetricProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 60).Draw(t, "n")
		scores := make([]float64, n)
		churned := make([]bool, n)
		for i := range n {
			scores[i] = float64(rapid.IntRange(-20, 20).Draw(t, "s")) // small range: many ties
			churned[i] = rapid.Bool().Draw(t, "c")
		}
		churned[0], churned[1] = true, false
		auc := AUC(scores, churned)
		if auc < 0 || auc > 1 {
			t.Fatalf("AUC %v out of [0, 1]", auc)
		}
		neg := make([]float64, n)
		mono := make([]float64, n)
		for i, s := range scores {
			neg[i] = -s
			mono[i] = s*s*s + 3*s + 100 // strictly increasing, exact on these integers
		}
		if got := AUC(neg, churned); math.Abs(got-(1-auc)) > 1e-12 {
			t.Fatalf("AUC(-x) = %v, 1 - AUC(x) = %v", got, 1-auc)
		}
		if got := AUC(mono, churned); got != auc {
			t.Fatalf("AUC after a monotone transform %v, before %v", got, auc)
		}
		if a, b := TopDecileLift(scores, churned), TopDecileLift(mono, churned); a != b {
			t.Fatalf("lift after a monotone transform %v, before %v", b, a)
		}
		if got := Lift(scores, churned, 1); math.Abs(got-1) > 1e-12 {
			t.Fatalf("lift of everyone = %v", got)
		}
		pts := ROC(scores, churned)
		var area float64
		for i := 1; i < len(pts); i++ {
			area += (pts[i].FPR - pts[i-1].FPR) * (pts[i].TPR + pts[i-1].TPR) / 2
		}
		if math.Abs(area-auc) > 1e-12 || pts[len(pts)-1] != (Point{1, 1}) {
			t.Fatalf("ROC area %v, AUC %v, last point %v", area, auc, pts[len(pts)-1])
		}
	})
}
