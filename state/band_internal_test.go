package state

import (
	"fmt"
	"slices"
	"testing"
)

// TestLowestKeepsOneCopy: lowest keeps the limit lowest members by score
// then id, one copy of each id, whatever the order and repeats of offers (a
// ZSCAN may return a member twice).
func TestLowestKeepsOneCopy(t *testing.T) {
	var offers []Member
	for i := range 50 {
		offers = append(offers, Member{ID: fmt.Sprintf("m%02d", i), Score: float64(i % 10)})
	}
	offers = append(offers, offers[3], offers[0], offers[40], offers[10]) // repeats
	slices.Reverse(offers)
	h := &lowest{kept: map[string]bool{}}
	for _, m := range offers {
		h.offer(m, 6)
	}
	got := h.ms
	slices.SortFunc(got, compareMembers)
	var ids []string
	for _, m := range got {
		ids = append(ids, m.ID)
	}
	// Scores 0: m00 m10 m20 m30 m40; score 1: m01 first.
	if want := []string{"m00", "m10", "m20", "m30", "m40", "m01"}; !slices.Equal(ids, want) {
		t.Fatalf("kept %v, want %v", ids, want)
	}
}
