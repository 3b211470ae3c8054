package state

import (
	"encoding/binary"
	"slices"
	"testing"
)

// encodeHistory is the stored form of days and changes (newest first): the
// save script's output, for tests.
func encodeHistory(t *testing.T, days []Day, changes [][]byte) []byte {
	t.Helper()
	var b []byte
	if len(days) == 0 {
		b = make([]byte, 6)
	} else {
		pts, err := encodeDays(days)
		if err != nil {
			t.Fatal(err)
		}
		n := days[len(days)-1].Day - days[0].Day + 1
		b = append(binary.BigEndian.AppendUint16(pts[:4:4], uint16(n)), pts[4:]...)
	}
	oldestFirst := slices.Clone(changes)
	slices.Reverse(oldestFirst)
	framed, err := frameChanges(oldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, framed...)
}

func TestHistoryValue(t *testing.T) {
	days := []Day{{Day: 20777, Score: 42.03, Min: 41.9, Band: BandYellow}, {Day: 20779, Score: 100, Min: 0, Band: BandGreen}}
	changes := [][]byte{[]byte("newer"), []byte("older")}
	b := encodeHistory(t, days, changes)
	if len(b) != 6+3*4+2*(2+5) {
		t.Fatalf("%d bytes", len(b))
	}
	h, err := decodeHistory(b)
	if err != nil || !slices.Equal(h.Days, days) || len(h.Changes) != 2 || string(h.Changes[0]) != "newer" || string(h.Changes[1]) != "older" {
		t.Fatalf("decoded %+v %q %v", h.Days, h.Changes, err)
	}
	for n := 1; n < 6+3*4; n++ {
		if _, err := decodeHistory(b[:n]); err == nil {
			t.Fatalf("cut to %d bytes: decoded", n)
		}
	}
	if _, err := decodeHistory(b[:len(b)-1]); err == nil {
		t.Fatal("changes cut short: decoded")
	}
}

// FuzzDecodeHistory: decodeHistory never panics, and what it decodes
// encodes back to a value that decodes the same.
func FuzzDecodeHistory(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0x10, 0, 1, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 2, 0x20, 0, 0x20, 0, 0x20, 0, 0x20, 0}) // days past the uint32 range
	f.Add([]byte{0, 0x15, 0x10, 0x29, 0, 3, 0x10, 0x6b, 0x90, 0x5e, 0xff, 0xff, 0xff, 0xff, 0x27, 0x10, 0xc0, 0, 0, 5, 'n', 'e', 'w', 'e', 'r'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHistory(b)
		if err != nil {
			return
		}
		again, err := decodeHistory(encodeHistory(t, h.Days, h.Changes))
		if err != nil || !slices.Equal(again.Days, h.Days) || !slices.EqualFunc(again.Changes, h.Changes, slices.Equal) {
			t.Fatalf("round trip: %+v %v, want %+v", again, err, h)
		}
	})
}
