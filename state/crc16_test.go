package state

import "testing"

// TestCRC16MatchesRedis checks the slot hash against values Redis gives:
// the CRC-16/XMODEM check value, and CLUSTER KEYSLOT of a few keys.
func TestCRC16MatchesRedis(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	for key, slot := range map[string]uint16{"foo": 12182, "bar": 5061, "hello": 866} {
		if got := crc16(key) % 16384; got != slot {
			t.Errorf("slot of %q = %d, want %d", key, got, slot)
		}
	}
	for _, r := range [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}, {100, 100}} {
		tag := tagForSlots(r[0], r[1])
		if sl := int(crc16(tag) % 16384); sl < r[0] || sl > r[1] {
			t.Errorf("tagForSlots(%d, %d) = %q in slot %d", r[0], r[1], tag, sl)
		}
	}
}
