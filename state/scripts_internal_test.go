package state

import (
	"encoding/binary"
	"strings"
	"testing"
)

// TestScriptsTakeCodecOffsets: the save scripts read the record's format,
// version and band at the byte positions the codec writes them
// (luaCodec), and no placeholder is left in their text.
func TestScriptsTakeCodecOffsets(t *testing.T) {
	for name, src := range map[string]string{"save": saveLua, "batch save": batchSaveLua} {
		if i := strings.Index(src, "$"); i >= 0 {
			t.Errorf("%s script: placeholder left: %q", name, src[i:min(len(src), i+20)])
		}
	}
	// The single-key script, expanded, as Redis sees it (1-based).
	src := saveLua
	for _, want := range []string{"string.sub(cur, 2, 9)", "string.rep(string.char(0), 8)", "string.byte(cur, 1) == 2"} {
		if !strings.Contains(src, want) {
			t.Errorf("save script lacks %q", want)
		}
	}
	for _, want := range []string{"string.byte(val, 18)", "string.byte(cur, 18)"} {
		if !strings.Contains(batchSaveLua, want) {
			t.Errorf("batch save script lacks %q (the band byte)", want)
		}
	}
	rec := Record{Version: 0x0102030405060708, Score: 42.5, Band: BandGreen, Pending: []byte("o")}
	b, err := encodeRecord(nil, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	lua := func(first, last int) []byte { return b[first-1 : last] } // Lua's string.sub
	if b[formatOffset] != formatV2 {
		t.Errorf("format byte %d at %d, want %d", b[formatOffset], formatOffset, formatV2)
	}
	if got := binary.BigEndian.Uint64(lua(versionOffset+1, versionOffset+versionLen)); got != rec.Version {
		t.Errorf("version at the scripts' bytes: %x", got)
	}
	if got := lua(bandOffset+1, bandOffset+1)[0]; got != 3 {
		t.Errorf("band byte at the scripts' position: %d, want 3 (green)", got)
	}
	// Format 4: the batch script reads the call's name (one length byte,
	// then the name) to lower that call's count.
	rec.OutboxCall, rec.outboxAt, rec.outboxLen = "n0nce:7", 10, 1
	if b, err = encodeRecord(nil, rec, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(batchSaveLua, "string.byte(cur, 19)") || !strings.Contains(batchSaveLua, "string.sub(cur, 19 + 1, 19 + n)") {
		t.Error("batch save script does not read the call's name at byte 19")
	}
	if n := int(b[18]); b[formatOffset] != formatV4 || string(b[19:19+n]) != rec.OutboxCall {
		t.Errorf("format %d, call %q at the script's position, want format 4 and %q", b[formatOffset], b[19:19+int(b[18])], rec.OutboxCall)
	}
}

// TestInfoField reads fields of an INFO reply as Redis sends it (CRLF line
// ends, section headers), without taking a field whose name only starts
// with the one asked for.
func TestInfoField(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nrun_id_old:x\r\nrun_id:4f2a\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
	for name, want := range map[string]string{"run_id": "4f2a", "connected_slaves": "2", "role": "master", "master_host": "", "run": ""} {
		if got := infoField(info, name); got != want {
			t.Errorf("infoField(%q) = %q, want %q", name, got, want)
		}
	}
}
