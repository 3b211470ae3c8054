package httpapi

import (
	"strconv"
	"testing"
	"time"
)

// FuzzParseWithin checks the forecast's window parser against a plain
// reading of its grammar: a positive decimal count without a leading zero
// (at most six digits) and a unit h or d; accepted only from one hour to
// maxWithin, and then exactly count hours or days.
func FuzzParseWithin(f *testing.F) {
	for _, s := range []string{"7d", "36h", "1h", "365d", "366d", "0h", "07d", "1w", "", "d", "999999h", "1000000h", "-1d", "1.5d", "7D", " 7d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseWithin(s)
		want, wantOK := within(s)
		if ok != wantOK || (ok && d != want) {
			t.Fatalf("parseWithin(%q) = %v, %v; want %v, %v", s, d, ok, want, wantOK)
		}
	})
}

// within is the oracle: the grammar read character by character.
func within(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 7 || s[0] == '0' {
		return 0, false
	}
	unit := time.Hour
	switch s[len(s)-1] {
	case 'h':
	case 'd':
		unit = 24 * time.Hour
	default:
		return 0, false
	}
	n := 0
	for _, c := range s[:len(s)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = 10*n + int(c-'0')
	}
	d := time.Duration(n) * unit
	if d < time.Hour || d > maxWithin {
		return 0, false
	}
	if strconv.Itoa(n)+s[len(s)-1:] != s {
		return 0, false
	}
	return d, true
}
