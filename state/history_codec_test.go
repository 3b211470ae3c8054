package state

import (
	"slices"
	"testing"
)

// FuzzDecodeDays: decodeDays never panics, and what it decodes encodes
// back to days that decode the same.
func FuzzDecodeDays(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0x10, 0, 1})
	if b, err := encodeDays([]Day{{Day: 20777, Score: 42.03, Min: 41.9, Band: BandYellow}, {Day: 20779, Score: 100, Min: 0, Band: BandGreen}}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		days, err := decodeDays(b)
		if err != nil || len(days) == 0 {
			return
		}
		enc, err := encodeDays(days)
		if err != nil {
			t.Fatalf("decoded days %+v do not encode: %v", days, err)
		}
		again, err := decodeDays(enc)
		if err != nil || !slices.Equal(again, days) {
			t.Fatalf("round trip: %+v %v, want %+v", again, err, days)
		}
	})
}
