package state

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Value layout, formats 1 to 4 (all integers big-endian or varint):
//
//	[0]      format byte: 1, or 2 when an outbox is stored with this version
//	         under its own key (see Redis.OutboxKey), 3 when it is a field
//	         of a save call's outbox hash (written before format 4, still
//	         read), or 4 when it is a range of a save call's outbox string
//	         (see Redis.CallOutboxKey and outboxHeaderLen)
//	[1:9]    record version, uint64 big-endian
//	[9:17]   score, IEEE-754 float64 bits, big-endian
//	[17]     band: 0 none, 1 red, 2 yellow, 3 green
//	formats 3 and 4: uvarint call length (> 0; below 128 in format 4, so
//	         one byte the save script reads), call bytes (Record.OutboxCall)
//	format 4 only: uvarint offset, uvarint length (> 0) of the outbox in
//	         the call's string
//	offsets, in one of two layouts:
//	  interned (written since topic ids exist, see topics.go):
//	    0x80 0x00 (the marker), uvarint number of topics, then per topic
//	    (sorted by name): uvarint topic id, uvarint number of partitions,
//	    then per partition (sorted): varint partition, varint offset
//	  named (written before; still read):
//	    uvarint number of topics, then per topic (sorted by name):
//	      uvarint name length, name bytes,
//	      uvarint number of partitions, then per partition (sorted):
//	        varint partition, varint offset
//	uvarint  data length, data bytes
//	format 1 only, optional: uvarint pending length (> 0), pending bytes
//
// The marker 0x80 0x00 is an overlong uvarint, which the named layout's
// encoder never wrote, so it tells the layouts apart without a format byte
// of its own (the format byte stays the outbox's). An interned id replaces
// a name of typically 10–30 bytes by one byte.
//
// Format 1 with a pending section is what earlier versions wrote: the
// outbox inside the record. It is still read; the next save moves the
// outbox to its own key.
//
// Every format keeps the version at bytes [1:9]: the save scripts compare
// those raw bytes without parsing the value, read the format byte to find a
// stored outbox, and compare the old and new band bytes ([17]) to move the
// band index only on a band change. The offsets below are the one place
// that says where those bytes are: the scripts get them through luaCodec
// (scripts.go).
const (
	formatV1      byte = 1
	formatV2      byte = 2 // an outbox is stored under its own key
	formatV3      byte = 3 // an outbox is a field of the save call's hash
	formatV4      byte = 4 // an outbox is a range of the save call's string
	formatOffset       = 0
	versionOffset      = formatOffset + 1
	versionLen         = 8
	scoreOffset        = versionOffset + versionLen
	scoreLen           = 8
	bandOffset         = scoreOffset + scoreLen
	headerLen          = bandOffset + 1
)

// Band names.
const (
	BandNone   = ""
	BandRed    = "red"
	BandYellow = "yellow"
	BandGreen  = "green"
)

// Bands lists the indexed bands.
var Bands = []string{BandRed, BandYellow, BandGreen}

var errCorrupt = errors.New("corrupt record")

// errUnknownTopic (wrapped with errCorrupt) reports a record naming a topic
// id the topic table does not hold; the store reloads its table once before
// it reports the record corrupt. errNotInterned reports a record to encode
// whose topic has no id in the table yet.
var (
	errUnknownTopic = errors.New("unknown topic id")
	errNotInterned  = errors.New("topic not interned")
)

// internedMarker starts the interned offsets layout.
var internedMarker = [2]byte{0x80, 0x00}

func bandByte(band string) (byte, error) {
	switch band {
	case BandNone:
		return 0, nil
	case BandRed:
		return 1, nil
	case BandYellow:
		return 2, nil
	case BandGreen:
		return 3, nil
	}
	return 0, fmt.Errorf("unknown band %q", band)
}

func byteBand(b byte) (string, bool) {
	switch b {
	case 0:
		return BandNone, true
	case 1:
		return BandRed, true
	case 2:
		return BandYellow, true
	case 3:
		return BandGreen, true
	}
	return "", false
}

// encodeRecord appends the encoding of r to dst. It rejects unknown bands and
// NaN scores (which the band index could not hold). r.Pending is not
// encoded: when it is set the format byte says so, and the caller stores it
// under the outbox key (format 2) or, when r.OutboxCall is set, at
// r.outboxAt of that call's outbox string (format 4, which names the call
// and the range; format 3, the call's hash, when the range is unset, as
// earlier versions wrote). With a topic table it writes topic ids (interned
// layout) and fails with errNotInterned for a topic the table lacks;
// without (nil), names.
func encodeRecord(dst []byte, r Record, tt *topicTable) ([]byte, error) {
	bb, err := bandByte(r.Band)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(r.Score) {
		return nil, errors.New("score is NaN")
	}
	ps := make([]Partition, 0, len(r.Offsets))
	size := headerLen + 2*binary.MaxVarintLen64 + len(r.Data)
	for p := range r.Offsets {
		ps = append(ps, p)
		if tt == nil {
			size += len(p.Topic)
		}
		size += 4 * binary.MaxVarintLen64
	}
	slices.SortFunc(ps, func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	format := formatV1
	if len(r.Pending) > 0 {
		format = formatV2
		switch {
		case r.OutboxCall != "" && r.outboxLen > 0:
			format = formatV4
		case r.OutboxCall != "":
			format = formatV3
		}
	}
	if format == formatV4 && (len(r.OutboxCall) >= 128 || r.outboxLen != len(r.Pending) || r.outboxAt < 0) {
		return nil, fmt.Errorf("outbox call %q: range at %d of %d bytes for an outbox of %d", r.OutboxCall, r.outboxAt, r.outboxLen, len(r.Pending))
	}
	dst = append(dst, format)
	dst = binary.BigEndian.AppendUint64(dst, r.Version)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(r.Score))
	dst = append(dst, bb)
	if format == formatV3 || format == formatV4 {
		dst = binary.AppendUvarint(dst, uint64(len(r.OutboxCall)))
		dst = append(dst, r.OutboxCall...)
	}
	if format == formatV4 {
		dst = binary.AppendUvarint(dst, uint64(r.outboxAt))
		dst = binary.AppendUvarint(dst, uint64(r.outboxLen))
	}
	topics := 0
	for i := range ps {
		if i == 0 || ps[i].Topic != ps[i-1].Topic {
			topics++
		}
	}
	if len(ps) == 0 {
		tt = nil // the named layout says "no topics" in one byte
	}
	if tt != nil {
		dst = append(dst, internedMarker[:]...)
	}
	dst = binary.AppendUvarint(dst, uint64(topics))
	for i := 0; i < len(ps); {
		j := i + 1
		for j < len(ps) && ps[j].Topic == ps[i].Topic {
			j++
		}
		if tt != nil {
			id, ok := tt.ids[ps[i].Topic]
			if !ok {
				return nil, fmt.Errorf("%w: %q", errNotInterned, ps[i].Topic)
			}
			dst = binary.AppendUvarint(dst, id)
		} else {
			dst = binary.AppendUvarint(dst, uint64(len(ps[i].Topic)))
			dst = append(dst, ps[i].Topic...)
		}
		dst = binary.AppendUvarint(dst, uint64(j-i))
		for _, p := range ps[i:j] {
			dst = binary.AppendVarint(dst, int64(p.Partition))
			dst = binary.AppendVarint(dst, r.Offsets[p])
		}
		i = j
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Data)))
	dst = append(dst, r.Data...)
	return dst, nil
}

// decodeRecord decodes a value written by encodeRecord (or by earlier
// versions). It never panics and rejects trailing bytes, duplicate
// partitions and topics, and unknown formats. Data is a copy and does not
// alias b. stored reports a format-2, 3 or 4 record, whose outbox
// (Pending) is stored under its outbox key, in its call's outbox hash or
// in its range of its call's outbox string (r.OutboxCall) and must be read
// from there. Topic ids are
// resolved with tt; an id it lacks (or any id, with tt nil) fails with
// errUnknownTopic.
func decodeRecord(b []byte, tt *topicTable) (r Record, stored bool, err error) {
	if len(b) < headerLen {
		return r, false, fmt.Errorf("%w: %d bytes, want at least %d", errCorrupt, len(b), headerLen)
	}
	if b[0] < formatV1 || b[0] > formatV4 {
		return r, false, fmt.Errorf("%w: unknown format %d", errCorrupt, b[0])
	}
	stored = b[formatOffset] != formatV1
	r.Version = binary.BigEndian.Uint64(b[versionOffset:])
	r.Score = math.Float64frombits(binary.BigEndian.Uint64(b[scoreOffset:]))
	if math.IsNaN(r.Score) {
		return Record{}, false, fmt.Errorf("%w: score is NaN", errCorrupt)
	}
	band, ok := byteBand(b[bandOffset])
	if !ok {
		return Record{}, false, fmt.Errorf("%w: unknown band %d", errCorrupt, b[bandOffset])
	}
	r.Band = band
	d := decoder{b: b[headerLen:]}
	if b[formatOffset] == formatV3 || b[formatOffset] == formatV4 {
		if r.OutboxCall = string(d.bytes()); d.err == nil && r.OutboxCall == "" {
			d.fail("empty outbox call")
		}
	}
	if b[formatOffset] == formatV4 {
		at, n := d.uvarint(), d.uvarint()
		switch {
		case d.err != nil:
		case len(r.OutboxCall) >= 128:
			d.fail("outbox call of %d bytes", len(r.OutboxCall))
		case n == 0 || at > math.MaxInt32 || n > math.MaxInt32:
			d.fail("outbox range at %d of %d bytes", at, n)
		default:
			r.outboxAt, r.outboxLen = int(at), int(n)
		}
	}

	interned := len(d.b) >= 2 && d.b[0] == internedMarker[0] && d.b[1] == internedMarker[1]
	if interned {
		d.b = d.b[2:]
	}
	nTopics := d.count(2) // a topic takes at least 2 bytes
	var seen map[string]bool
	if interned && nTopics > 1 {
		seen = make(map[string]bool, nTopics)
	}
	for range nTopics {
		var topic string
		if interned {
			id := d.uvarint()
			name, ok := tt.name(id)
			if d.err == nil && !ok {
				d.err = fmt.Errorf("%w: %w %d", errCorrupt, errUnknownTopic, id)
			}
			if d.err == nil && seen[name] {
				d.fail("duplicate topic id %d", id)
			}
			if seen != nil {
				seen[name] = true
			}
			topic = name
		} else {
			topic = string(d.bytes())
		}
		nParts := d.count(2)
		for range nParts {
			p := Partition{Topic: topic, Partition: d.int32()}
			off := d.varint()
			if d.err != nil {
				break
			}
			if r.Offsets == nil {
				r.Offsets = make(map[Partition]int64)
			}
			if _, dup := r.Offsets[p]; dup {
				d.fail("duplicate partition %s/%d", p.Topic, p.Partition)
				break
			}
			r.Offsets[p] = off
		}
		if d.err != nil {
			break
		}
	}
	if data := d.bytes(); len(data) > 0 {
		r.Data = slices.Clone(data)
	}
	if d.err == nil && len(d.b) > 0 && !stored {
		pending := d.bytes()
		if d.err == nil && len(pending) == 0 {
			d.fail("empty pending section")
		}
		r.Pending = slices.Clone(pending)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Record{}, false, d.err
	}
	return r, stored, nil
}

// decoder reads varints; the first error sticks and later reads return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("partition %d out of range", v)
		return 0
	}
	return int32(v)
}

// count reads an element count and checks that the remaining input can hold
// that many elements of at least minSize bytes each, so corrupt input cannot
// cause huge allocations or long loops.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minSize) {
		d.fail("count %d exceeds input", n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds input", n)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// String is for logs and test failures.
func (p Partition) String() string { return fmt.Sprintf("%s/%d", p.Topic, p.Partition) }
