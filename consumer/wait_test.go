package consumer

import (
	"testing"
	"time"
)

// waitFor checks cond every few milliseconds until it holds, and fails the
// test, saying what it waited for, when it still does not after timeout.
// It is how the package's tests wait: for an observable effect, with a
// deadline, never for a fixed time.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !eventually(timeout, cond) {
		tb.Fatalf("%s: not within %s", what, timeout)
	}
}

// eventually checks cond every few milliseconds until it holds or timeout
// passes, and reports whether it held (for goroutines other than the
// test's, which must not call Fatal).
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// waitSwept waits until c completed a sweep round that started at or after
// the clock's time at:  the sweeper ran at that time, so whatever it did
// not do there, it decided not to do.
func waitSwept(tb testing.TB, c *Consumer, at time.Time) {
	tb.Helper()
	waitFor(tb, 10*time.Second, "a sweep round at "+at.String(), func() bool { return c.swept.Load() >= at.UnixNano() })
}
