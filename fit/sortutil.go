package fit

import "sort"

func sortByScore(idx []int, score []float64) {
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] < score[idx[b]] })
}
