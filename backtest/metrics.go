package backtest

import (
	"math"
	"sort"
)

// The metric functions take one score per customer, where a HIGHER score
// means HEALTHIER (a lower score means a higher churn risk), and whether
// the customer churned. They do not modify their arguments.

// AUC is the area under the ROC curve: the probability that a random
// customer who did not churn scores higher than a random one who churned,
// ties counting 1/2 (the Mann–Whitney U statistic divided by the number of
// pairs). It is NaN when either class is empty.
func AUC(scores []float64, churned []bool) float64 {
	idx := order(scores)
	var pos, neg float64 // churned, not churned
	for _, c := range churned {
		if c {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	var pairs, churnedBelow float64
	for i := 0; i < len(idx); {
		j, p, n := tieGroup(idx, i, scores, churned)
		pairs += n*churnedBelow + 0.5*n*p
		churnedBelow += p
		i = j
	}
	return pairs / (pos * neg)
}

// Point is one point of a ROC curve.
type Point struct {
	FPR float64 `json:"fpr"` // share of the customers who stayed that are flagged
	TPR float64 `json:"tpr"` // share of the churned customers that are flagged
}

// ROC returns the ROC curve: flagging every customer whose score is at most
// a threshold, for each distinct score from the lowest up, preceded by
// (0, 0); the last point is (1, 1). Its trapezoid area is AUC. Nil when a
// class is empty.
func ROC(scores []float64, churned []bool) []Point {
	idx := order(scores)
	var pos, neg float64
	for _, c := range churned {
		if c {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return nil
	}
	pts := []Point{{0, 0}}
	var tp, fp float64
	for i := 0; i < len(idx); {
		j, p, n := tieGroup(idx, i, scores, churned)
		tp, fp = tp+p, fp+n
		pts = append(pts, Point{FPR: fp / neg, TPR: tp / pos})
		i = j
	}
	return pts
}

// Lift is the churn rate among the riskiest share frac (0 < frac <= 1) of
// the customers divided by the overall churn rate. The riskiest share is
// exactly frac·n customers by lowest score; a group of equal scores that
// straddles the boundary counts in proportion (its churn rate times the
// part of it inside), which is the expected lift under random tie-breaking.
// NaN when nobody churned or n is 0.
func Lift(scores []float64, churned []bool, frac float64) float64 {
	n := float64(len(scores))
	idx := order(scores)
	var pos float64
	for _, c := range churned {
		if c {
			pos++
		}
	}
	if n == 0 || pos == 0 || frac <= 0 || frac > 1 {
		return math.NaN()
	}
	want := frac * n
	var taken, hits float64
	for i := 0; i < len(idx) && taken < want; {
		j, p, q := tieGroup(idx, i, scores, churned)
		size := p + q
		part := min(size, want-taken)
		hits += p * part / size
		taken += part
		i = j
	}
	return (hits / want) / (pos / n)
}

// TopDecileLift is Lift(scores, churned, 0.1).
func TopDecileLift(scores []float64, churned []bool) float64 { return Lift(scores, churned, 0.1) }

// order returns the indexes of scores sorted ascending (stable).
func order(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	return idx
}

// tieGroup returns the end j of the group of equal scores starting at
// idx[i], and how many in it churned (p) and did not (n).
func tieGroup(idx []int, i int, scores []float64, churned []bool) (j int, p, n float64) {
	for j = i; j < len(idx) && scores[idx[j]] == scores[idx[i]]; j++ {
		if churned[idx[j]] {
			p++
		} else {
			n++
		}
	}
	return j, p, n
}

// Ranks returns the rank of each value, 1 for the smallest, ties getting
// the mean of the ranks they span (mid-ranks).
func Ranks(values []float64) []float64 {
	idx := order(values)
	r := make([]float64, len(values))
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && values[idx[j]] == values[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			r[idx[k]] = mid
		}
		i = j
	}
	return r
}
