package scorer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
)

// The first byte of an encoded State: stateFormat since the published
// points are stored in ten-thousandths (varints, 1–3 bytes each instead of
// 4), stateFormatV1 for encodings with float32 points, still read (their
// points are rounded to ten-thousandths when decoded, as Step keeps them).
const (
	stateFormatV1 = 1
	stateFormat   = 2
)

// signalKey identifies a signal across model versions. It covers everything
// that gives the folded sums their meaning (name, event, kind, half-life), so
// a signal whose half-life changes starts afresh instead of mixing decay
// rates, and a removed signal's data is dropped on the next save.
func signalKey(s *Signal) uint32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", s.Name, s.Event, s.Kind, s.HalfLife)
	// The low two bits carry the kind, so a decoder that no longer knows the
	// signal still knows how many bytes its entry has.
	return h.Sum32()&^3 | uint32(s.Kind-1)
}

// computeLayoutKey identifies the model's signal order, for the published
// points. ParseModel stores it in m.layout.
func (m *Model) computeLayoutKey() uint32 {
	h := fnv.New32a()
	for i := range m.signals {
		binary.Write(h, binary.LittleEndian, signalKey(&m.signals[i].Signal)) //nolint:errcheck // hash writes cannot fail
	}
	return h.Sum32()
}

// AppendState appends the binary encoding of st to buf.
//
// Layout: format byte; uvarint events; varint last event (ns); segment
// (uvarint length, bytes) and varint last-event − segment-time; published
// flag with score (float64), band byte, layout key and the points (uvarint
// count, then each a varint in ten-thousandths; float32 in format 1); then
// the seen signals: key (uint32), uvarint last-event − ref, S (float64) and,
// for average signals, W (float64). Count and sum signals store S only (they keep no W),
// recency signals store no sums.
//
// Then, only when the state has any of them, an extension block: a flags
// byte (extBaseline, extDropped, extOverride, extExpires; never 0) and, in
// that order, the trend baseline (float64, varint last-event − baseline
// time), the last dropped alert (varint last-event − its time), and the
// override (float64 value, varint last-event − its time, with extExpires a
// varint last-event − expiry, then by and reason as uvarint length and
// bytes), the published time (extPublishedAt, uvarint published − last
// event) and the current day's history point (extDay: varint day, varint
// last-event − its time, uint16 score in hundredths, uint16 min in
// hundredths with the band in its top two bits). A state without them encodes exactly as before the block existed,
// and encodings without the block still decode.
func (m *Model) AppendState(buf []byte, st *State) []byte {
	buf = append(buf, stateFormat)
	buf = binary.AppendUvarint(buf, st.Events)
	buf = binary.AppendVarint(buf, st.LastEvent)
	buf = binary.AppendUvarint(buf, uint64(len(st.Segment)))
	buf = append(buf, st.Segment...)
	buf = binary.AppendVarint(buf, st.LastEvent-st.SegmentTime)
	if st.Published {
		buf = append(buf, 1)
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(st.Score))
		buf = append(buf, byte(st.Band))
		buf = binary.BigEndian.AppendUint32(buf, m.layout)
		buf = binary.AppendUvarint(buf, uint64(len(st.Points)))
		for _, p := range st.Points {
			buf = binary.AppendVarint(buf, pointUnits(p))
		}
	} else {
		buf = append(buf, 0)
	}
	n := 0
	for i := range st.Signals {
		if st.Signals[i].Seen {
			n++
		}
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	for i := range st.Signals {
		s := &st.Signals[i]
		if !s.Seen {
			continue
		}
		sig := &m.signals[i]
		buf = binary.BigEndian.AppendUint32(buf, sig.key)
		buf = binary.AppendVarint(buf, st.LastEvent-s.Ref)
		switch sig.Kind {
		case KindCount, KindSum:
			buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(s.S))
		case KindAverage:
			buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(s.S))
			buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(s.W))
		}
	}
	return appendExtension(buf, st)
}

// Flags of the extension block.
const (
	extBaseline = 1 << iota
	extDropped
	extOverride
	extExpires
	extPublishedAt
	extDay
	extAll = extBaseline | extDropped | extOverride | extExpires | extPublishedAt | extDay
)

func appendExtension(buf []byte, st *State) []byte {
	var flags byte
	if st.HasBaseline {
		flags |= extBaseline
	}
	if st.HasDropped {
		flags |= extDropped
	}
	o := st.Override
	if o != nil {
		flags |= extOverride
		if o.Expires != NoExpiry {
			flags |= extExpires
		}
	}
	if st.PublishedAt > st.LastEvent {
		flags |= extPublishedAt
	}
	if st.HasDay {
		flags |= extDay
	}
	if flags == 0 {
		return buf
	}
	buf = append(buf, flags)
	if st.HasBaseline {
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(st.Baseline))
		buf = binary.AppendVarint(buf, st.LastEvent-st.BaselineAt)
	}
	if st.HasDropped {
		buf = binary.AppendVarint(buf, st.LastEvent-st.DroppedAt)
	}
	if o != nil {
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(o.Value))
		buf = binary.AppendVarint(buf, st.LastEvent-o.At)
		if o.Expires != NoExpiry {
			buf = binary.AppendVarint(buf, st.LastEvent-o.Expires)
		}
		buf = binary.AppendUvarint(buf, uint64(len(o.By)))
		buf = append(buf, o.By...)
		buf = binary.AppendUvarint(buf, uint64(len(o.Reason)))
		buf = append(buf, o.Reason...)
	}
	if flags&extPublishedAt != 0 {
		buf = binary.AppendUvarint(buf, uint64(st.PublishedAt-st.LastEvent))
	}
	if st.HasDay {
		d := &st.Day
		buf = binary.AppendVarint(buf, d.Day)
		buf = binary.AppendVarint(buf, st.LastEvent-d.At)
		buf = binary.BigEndian.AppendUint16(buf, hundredths(d.Score))
		buf = binary.BigEndian.AppendUint16(buf, hundredths(d.Min)|uint16(d.Band)<<14)
	}
	return buf
}

// pointUnits is a signal's points as a whole number of ten-thousandths
// (pointScale). Step keeps published points rounded so, which makes this
// exact for them; it bounds what it cannot represent (published points lie
// within ±100). Ten-thousandths, not the hundredths drivers are published
// with: a driver is the difference of two points, and hundredths would move
// published drivers (5.625 → 2.8125 gives −2.81, but 5.63 → 2.8125 −2.82).
func pointUnits(p float64) int64 {
	if !finite(p) {
		return 0
	}
	return int64(math.Round(min(max(p, -maxPoints), maxPoints) * pointScale))
}

const (
	pointScale = 1e4
	maxPoints  = 1e6 // bounds a decoded point (a signal contributes at most 100)
)

// roundPoint is p rounded to ten-thousandths, as stored: float64(n)/pointScale
// decodes to the same bits as it encodes.
func roundPoint(p float64) float64 { return float64(pointUnits(p)) / pointScale }

// hundredths is a score 0–100 as a whole number of hundredths (0–10000,
// 14 bits).
func hundredths(x float64) uint16 { return uint16(math.Round(min(max(x, 0), 100) * 100)) }

func (r *reader) extension(st *State) {
	flags := r.bytes(1, "extension flags")
	if len(flags) == 0 {
		return
	}
	f := flags[0]
	if f == 0 || f&^extAll != 0 || (f&extExpires != 0 && f&extOverride == 0) {
		r.fail("extension flags")
		return
	}
	if f&extBaseline != 0 {
		st.HasBaseline, st.Baseline = true, r.f64("baseline")
		st.BaselineAt = st.LastEvent - r.varint("baseline time")
		if !finite(st.Baseline) {
			r.fail("baseline")
		}
	}
	if f&extDropped != 0 {
		st.HasDropped, st.DroppedAt = true, st.LastEvent-r.varint("dropped time")
	}
	if f&extOverride != 0 {
		o := &Override{Value: r.f64("override value"), At: st.LastEvent - r.varint("override time"), Expires: NoExpiry}
		if !(o.Value >= 0 && o.Value <= 100) {
			r.fail("override value")
		}
		if f&extExpires != 0 {
			if o.Expires = st.LastEvent - r.varint("override expiry"); o.Expires == NoExpiry {
				r.fail("override expiry")
			}
		}
		o.By = string(r.bytes(r.uvarint("override by length"), "override by"))
		o.Reason = string(r.bytes(r.uvarint("override reason length"), "override reason"))
		st.Override = o
	}
	if f&extPublishedAt != 0 {
		d := r.uvarint("published time")
		if d == 0 || d > math.MaxInt64/2 {
			r.fail("published time")
		}
		st.PublishedAt = st.LastEvent + int64(d)
	}
	if f&extDay != 0 {
		d := DayPoint{Day: r.varint("history day")}
		d.At = st.LastEvent - r.varint("history time")
		score, low := r.u16("history score"), r.u16("history min")
		d.Score, d.Min, d.Band = float64(score)/100, float64(low&0x3fff)/100, Band(low>>14)
		if score > 10000 || low&0x3fff > 10000 || d.Band == BandNone || d.Min > d.Score || DayOf(d.At) != d.Day {
			r.fail("history point")
		}
		st.HasDay, st.Day = true, d
	}
}

// ErrCorruptState is returned (wrapped) for state bytes that cannot be decoded.
var ErrCorruptState = errors.New("corrupt state")

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or invalid %s", ErrCorruptState, what)
	}
}

func (r *reader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64, what string) []byte {
	if uint64(len(r.b)) < n {
		r.fail(what)
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32(what string) uint32 {
	b := r.bytes(4, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u16(what string) uint16 {
	b := r.bytes(2, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) f64(what string) float64 {
	b := r.bytes(8, what)
	if b == nil {
		return 0
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b))
}

// DecodeState decodes bytes written by AppendState, possibly by another
// version of the model: signals the model no longer has (or whose event,
// kind or half-life changed) are dropped; published points from another
// signal layout are dropped. An empty input gives an empty state.
func (m *Model) DecodeState(data []byte) (*State, error) {
	st := m.NewState()
	if len(data) == 0 {
		return st, nil
	}
	format := data[0]
	if format != stateFormat && format != stateFormatV1 {
		return nil, fmt.Errorf("%w: unknown format %d", ErrCorruptState, data[0])
	}
	r := &reader{b: data[1:]}
	st.Events = r.uvarint("event count")
	st.LastEvent = r.varint("last event time")
	st.Segment = string(r.bytes(r.uvarint("segment length"), "segment"))
	st.SegmentTime = st.LastEvent - r.varint("segment time")
	if pub := r.bytes(1, "published flag"); len(pub) == 1 && pub[0] == 1 {
		st.Published = true
		st.Score = r.f64("score")
		band := r.bytes(1, "band")
		if len(band) == 1 {
			if band[0] > byte(BandGreen) {
				r.fail("band")
			}
			st.Band = Band(band[0])
		}
		layout := r.u32("layout")
		n := r.uvarint("points count")
		size := uint64(1) // a varint takes at least a byte
		if format == stateFormatV1 {
			size = 4
		}
		if n > uint64(len(r.b))/size {
			r.fail("points count")
		}
		pts := make([]float64, 0, min(n, 1024))
		for i := uint64(0); i < n && r.err == nil; i++ {
			if format == stateFormatV1 {
				pts = append(pts, roundPoint(float64(math.Float32frombits(r.u32("points")))))
				continue
			}
			u := r.varint("points")
			if u < -maxPoints*pointScale || u > maxPoints*pointScale {
				r.fail("points")
			}
			pts = append(pts, float64(u)/pointScale)
		}
		if layout == m.layout && len(pts) == len(m.signals) {
			st.Points = pts
		}
	}
	n := r.uvarint("signal count")
	for i := uint64(0); i < n && r.err == nil; i++ {
		key := r.u32("signal key")
		s := SignalState{Seen: true, Ref: st.LastEvent - r.varint("signal time")}
		idx, ok := m.byKey[key]
		switch Kind(key&3) + 1 {
		case KindCount, KindSum:
			s.S = r.f64("signal sum")
		case KindAverage:
			s.S, s.W = r.f64("signal sum"), r.f64("signal weight")
		}
		if ok {
			st.Signals[idx] = s
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.extension(st)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorruptState, len(r.b))
	}
	return st, nil
}
