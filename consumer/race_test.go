//go:build race

package consumer

// raceEnabled: the race detector adds allocations of its own, so allocation
// counts are asserted only in builds without it (scripts/test.sh runs the
// allocation tests once without -race).
const raceEnabled = true
