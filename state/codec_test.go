package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func sampleRecord() Record {
	return Record{
		Version: 42,
		Offsets: map[Partition]int64{
			{Topic: "events", Partition: 0}:   17,
			{Topic: "events", Partition: 11}:  1 << 40,
			{Topic: "billing", Partition: 3}:  0,
			{Topic: "", Partition: -1}:        -1,
			{Topic: "ünïcode", Partition: 7}:  math.MaxInt64,
			{Topic: "events", Partition: 300}: 5,
		},
		Score: 0.4375,
		Band:  BandYellow,
		Data:  []byte{0, 1, 2, 0xff},
	}
}

func equalRecords(a, b Record) bool {
	return a.Version == b.Version &&
		math.Float64bits(a.Score) == math.Float64bits(b.Score) &&
		a.Band == b.Band &&
		bytes.Equal(a.Data, b.Data) &&
		len(a.Offsets) == len(b.Offsets) &&
		(len(a.Offsets) == 0 || reflect.DeepEqual(a.Offsets, b.Offsets))
}

func TestCodecRoundTrip(t *testing.T) {
	for name, r := range map[string]Record{
		"zero":     {},
		"sample":   sampleRecord(),
		"red":      {Version: 1, Score: math.Copysign(0, -1), Band: BandRed},
		"green":    {Version: math.MaxUint64, Score: math.Inf(1), Band: BandGreen},
		"neg inf":  {Score: math.Inf(-1)},
		"big data": {Data: bytes.Repeat([]byte("x"), 1<<16)},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := encodeRecord(nil, r, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, stored, err := decodeRecord(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !equalRecords(got, r) || stored {
				t.Fatalf("round trip:\n got %+v (outbox stored %v)\nwant %+v", got, stored, r)
			}
			again, err := encodeRecord(nil, got, nil)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("encoding is not deterministic: %x vs %x (%v)", again, b, err)
			}
		})
	}
}

func TestCodecVersionAtFixedPosition(t *testing.T) {
	// The save script compares bytes [1:9] (Lua string.sub(v, 2, 9)).
	b, err := encodeRecord(nil, Record{Version: 0x0102030405060708, Data: []byte("d")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != formatV1 {
		t.Fatalf("format byte = %d", b[0])
	}
	if got := binary.BigEndian.Uint64(b[1:9]); got != 0x0102030405060708 {
		t.Fatalf("version bytes = %x", b[1:9])
	}
}

// TestOutboxFormat: a record with an outbox is format 2 and does not carry
// the outbox (the store keeps it under its own key); a format-1 record with
// the outbox inside, as earlier versions wrote it, still decodes.
func TestOutboxFormat(t *testing.T) {
	r := sampleRecord()
	r.Pending = []byte("outbox")
	b, err := encodeRecord(nil, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := encodeRecord(nil, sampleRecord(), nil)
	if b[0] != formatV2 || !bytes.Equal(b[1:], plain[1:]) {
		t.Fatalf("with an outbox: % x\nwithout:        % x", b, plain)
	}
	got, stored, err := decodeRecord(b, nil)
	if err != nil || !stored || got.Pending != nil || !equalRecords(got, sampleRecord()) {
		t.Fatalf("format 2 decoded as %+v, stored %v, %v", got, stored, err)
	}
	legacy := binary.AppendUvarint(bytes.Clone(plain), 6)
	legacy = append(legacy, "outbox"...)
	got, stored, err = decodeRecord(legacy, nil)
	if err != nil || stored || string(got.Pending) != "outbox" || !equalRecords(got, sampleRecord()) {
		t.Fatalf("format 1 with an outbox inside decoded as %+v, stored %v, %v", got, stored, err)
	}
	if _, _, err := decodeRecord(append(bytes.Clone(b), 1, 'x'), nil); !errors.Is(err, errCorrupt) {
		t.Fatalf("format 2 with an outbox inside: got %v, want errCorrupt", err)
	}

	// Format 3: the outbox is a field of a save call's hash, which the
	// record names right after the fixed header.
	r.OutboxCall = "n0nce:1z"
	b3, err := encodeRecord(nil, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{formatV3}, plain[1:headerLen]...)
	want = append(append(want, byte(len(r.OutboxCall))), r.OutboxCall...)
	want = append(want, plain[headerLen:]...)
	if !bytes.Equal(b3, want) {
		t.Fatalf("format 3: % x\nwant      % x", b3, want)
	}
	got, stored, err = decodeRecord(b3, nil)
	if err != nil || !stored || got.Pending != nil || got.OutboxCall != r.OutboxCall || !equalRecords(got, sampleRecord()) {
		t.Fatalf("format 3 decoded as %+v, stored %v, %v", got, stored, err)
	}
	empty := append(append([]byte{formatV3}, plain[1:headerLen]...), 0)
	if _, _, err := decodeRecord(append(empty, plain[headerLen:]...), nil); !errors.Is(err, errCorrupt) {
		t.Fatalf("format 3 naming no call: got %v, want errCorrupt", err)
	}
	// Format 3 with interned topics: the call, then the marker.
	tt := tableOf("", "billing", "events", "ünïcode")
	b3i, err := encodeRecord(nil, r, tt)
	if err != nil {
		t.Fatal(err)
	}
	if at := headerLen + 1 + len(r.OutboxCall); len(b3i) < at+2 || b3i[at] != internedMarker[0] || b3i[at+1] != internedMarker[1] {
		t.Fatalf("format 3 interned: % x, want the marker after the call", b3i)
	}
	if got, stored, err := decodeRecord(b3i, tt); err != nil || !stored || got.OutboxCall != r.OutboxCall || !equalRecords(got, sampleRecord()) {
		t.Fatalf("format 3 interned decoded as %+v, stored %v, %v", got, stored, err)
	}
	// Format 4: the outbox is a range of a save call's string: the call,
	// then the range's offset and length, then the offsets.
	r.outboxAt, r.outboxLen = 300, len(r.Pending)
	b4, err := encodeRecord(nil, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = append([]byte{formatV4}, plain[1:headerLen]...)
	want = append(append(want, byte(len(r.OutboxCall))), r.OutboxCall...)
	want = append(binary.AppendUvarint(binary.AppendUvarint(want, 300), uint64(len(r.Pending))), plain[headerLen:]...)
	if !bytes.Equal(b4, want) {
		t.Fatalf("format 4: % x\nwant      % x", b4, want)
	}
	got, stored, err = decodeRecord(b4, nil)
	if err != nil || !stored || got.Pending != nil || got.OutboxCall != r.OutboxCall || got.outboxAt != 300 || got.outboxLen != len(r.Pending) || !equalRecords(got, sampleRecord()) {
		t.Fatalf("format 4 decoded as %+v, stored %v, %v", got, stored, err)
	}
	for name, bad := range map[string]Record{
		"range of another length": {Pending: r.Pending, OutboxCall: "c", outboxAt: 10, outboxLen: len(r.Pending) + 1},
		"call of 128 bytes":       {Pending: r.Pending, OutboxCall: strings.Repeat("c", 128), outboxAt: 10, outboxLen: len(r.Pending)},
	} {
		if _, err := encodeRecord(nil, bad, nil); err == nil {
			t.Errorf("format 4, %s: encoded", name)
		}
	}
	zeroLen := append(append([]byte{formatV4}, plain[1:headerLen]...), 1, 'c', 10, 0)
	if _, _, err := decodeRecord(append(zeroLen, plain[headerLen:]...), nil); !errors.Is(err, errCorrupt) {
		t.Fatalf("format 4 with an empty range: got %v, want errCorrupt", err)
	}
	r.outboxAt, r.outboxLen = 0, 0

	// Without an outbox the call is not stored.
	r.Pending = nil
	if b, _ := encodeRecord(nil, r, nil); !bytes.Equal(b, plain) {
		t.Fatalf("no outbox, a call set: % x, want % x", b, plain)
	}
}

func TestEncodeRejects(t *testing.T) {
	for name, r := range map[string]Record{
		"nan score":    {Score: math.NaN()},
		"unknown band": {Band: "purple"},
		"band case":    {Band: "Red"},
	} {
		if _, err := encodeRecord(nil, r, nil); err == nil {
			t.Errorf("%s: encode succeeded", name)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := encodeRecord(nil, sampleRecord(), nil)
	if err != nil {
		t.Fatal(err)
	}
	header := valid[:headerLen]
	nanScore := bytes.Clone(valid)
	binary.BigEndian.PutUint64(nanScore[9:], math.Float64bits(math.NaN()))
	badBand := bytes.Clone(valid)
	badBand[17] = 4
	badFormat := bytes.Clone(valid)
	badFormat[0] = 3
	dup := append(bytes.Clone(header),
		1,      // one topic
		1, 't', // name
		2,          // two partitions
		0, 2, 0, 4, // partition 0 twice
		0) // no data
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short header":   valid[:headerLen-1],
		"header only":    header,
		"format":         badFormat,
		"nan":            nanScore,
		"band":           badBand,
		"truncated":      valid[:len(valid)-1],
		"trailing":       append(bytes.Clone(valid), 0),
		"duplicate":      dup,
		"huge count":     append(bytes.Clone(header), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"huge data len":  append(bytes.Clone(header), 0, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"partition >i32": append(bytes.Clone(header), 1, 1, 't', 1, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0),
	} {
		if _, _, err := decodeRecord(b, nil); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: got %v, want errCorrupt", name, err)
		}
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	b, _ := encodeRecord(nil, Record{Data: []byte("abc")}, nil)
	r, _, err := decodeRecord(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'X'
	if string(r.Data) != "abc" {
		t.Fatalf("Data aliases the input: %q", r.Data)
	}
}

// tableOf is a topic table with ids 1, 2, ... for topics, in order.
func tableOf(topics ...string) *topicTable {
	tt := &topicTable{ids: map[string]uint64{}, names: map[uint64]string{}}
	for i, t := range topics {
		tt.ids[t], tt.names[uint64(i+1)] = uint64(i+1), t
	}
	return tt
}

// sampleTopics interns sampleRecord's topics (ids 1–4, and 5 unused).
var sampleTopics = tableOf("events", "billing", "", "ünïcode", "unused")

// TestCodecInterned: with a topic table the offsets name topics by id (the
// layout marked 0x80 0x00 after the header), which round-trips and is
// shorter; named records still decode with a table; an id the table lacks
// is corrupt (errUnknownTopic), as is a topic id listed twice; a topic the
// table lacks cannot be encoded (errNotInterned).
func TestCodecInterned(t *testing.T) {
	r := sampleRecord()
	named, err := encodeRecord(nil, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodeRecord(nil, r, sampleTopics)
	if err != nil {
		t.Fatal(err)
	}
	if b[headerLen] != 0x80 || b[headerLen+1] != 0 || !bytes.Equal(b[:headerLen], named[:headerLen]) {
		t.Fatalf("interned layout: % x", b)
	}
	if saved := len(named) - len(b); saved != len("events")+len("billing")+len("ünïcode")-2 {
		t.Fatalf("interned record %d bytes, named %d", len(b), len(named))
	}
	for _, enc := range [][]byte{b, named} {
		got, _, err := decodeRecord(enc, sampleTopics)
		if err != nil || !equalRecords(got, r) {
			t.Fatalf("round trip: %+v %v", got, err)
		}
	}
	for name, tt := range map[string]*topicTable{"no table": nil, "without billing": {names: map[uint64]string{1: "events", 3: "", 4: "ünïcode"}}} {
		if _, _, err := decodeRecord(b, tt); !errors.Is(err, errUnknownTopic) || !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want an unknown topic id", name, err)
		}
	}
	if _, err := encodeRecord(nil, r, tableOf("events")); !errors.Is(err, errNotInterned) {
		t.Errorf("encoding without ids: %v", err)
	}
	// Topic 1 listed twice, with different partitions.
	dup := append(bytes.Clone(b[:headerLen]), 0x80, 0, 2, 1, 1, 0, 2, 1, 1, 2, 4, 0)
	if _, _, err := decodeRecord(dup, sampleTopics); !errors.Is(err, errCorrupt) || errors.Is(err, errUnknownTopic) {
		t.Errorf("duplicate topic id: %v", err)
	}
	dup[headerLen+7] = 2 // topic 2: valid
	if got, _, err := decodeRecord(dup, sampleTopics); err != nil || len(got.Offsets) != 2 {
		t.Errorf("two topics: %+v %v", got, err)
	}
	// No offsets: the named layout's single byte.
	if e, _ := encodeRecord(nil, Record{Data: []byte("d")}, sampleTopics); len(e) != headerLen+3 {
		t.Errorf("no offsets: % x", e)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []Record{{}, sampleRecord(), {Version: 3, Band: BandRed, Score: 12.5, Data: []byte("s")}} {
		for _, tt := range []*topicTable{nil, sampleTopics} {
			b, err := encodeRecord(nil, r, tt)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	v4 := sampleRecord()
	v4.Pending, v4.OutboxCall, v4.outboxAt, v4.outboxLen = []byte("outbox"), "n0nce:1z", 10, 6
	if b, err := encodeRecord(nil, v4, sampleTopics); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, err := decodeRecord(b, sampleTopics)
		if err != nil {
			return
		}
		// A named record may hold topics without an id.
		tt := sampleTopics
		enc, err := encodeRecord(nil, r, tt)
		if errors.Is(err, errNotInterned) {
			tt = nil
			enc, err = encodeRecord(nil, r, tt)
		}
		if err != nil {
			t.Fatalf("cannot encode decoded record %+v: %v", r, err)
		}
		r2, _, err := decodeRecord(enc, tt)
		if err != nil {
			t.Fatalf("cannot decode re-encoded record: %v", err)
		}
		if !equalRecords(r, r2) {
			t.Fatalf("decode→encode→decode changed the record:\n%+v\n%+v", r, r2)
		}
		if !bytes.Equal(enc[1:9], b[1:9]) {
			t.Fatalf("version bytes moved: %x vs %x", enc[1:9], b[1:9])
		}
	})
}

func FuzzEncodeRecord(f *testing.F) {
	f.Add(uint64(1), 0.5, byte(1), "events", int32(0), int64(10), "events", int32(1), int64(-1), []byte("data"))
	f.Add(uint64(0), 0.0, byte(0), "", int32(0), int64(0), "", int32(0), int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, v uint64, score float64, band byte, t1 string, p1 int32, o1 int64, t2 string, p2 int32, o2 int64, data []byte) {
		bandName, ok := byteBand(band % 4)
		if !ok || math.IsNaN(score) {
			t.Skip()
		}
		r := Record{
			Version: v,
			Offsets: map[Partition]int64{{t1, p1}: o1, {t2, p2}: o2},
			Score:   score,
			Band:    bandName,
			Data:    data,
		}
		tt := tableOf(t1, t2)
		b, err := encodeRecord(nil, r, tt)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := decodeRecord(b, tt)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			r.Data = nil
		}
		if !equalRecords(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	})
}
