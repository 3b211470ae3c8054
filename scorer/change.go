package scorer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Change is a band change or an alert kept in a customer's score history
// (the last few are stored compactly with the customer, see AppendChange,
// and served by the history endpoint).
type Change struct {
	Type     string // one of ChangeTypes
	At       int64  // Unix ns of the evaluation
	Score    float64
	Band     Band
	PrevBand Band // BandNone before the first score
	Drivers  []Driver
}

// ChangeTypes are the output types a Change can have: the CloudEvents types
// of a score change that changed the band and of the alerts.
var ChangeTypes = []string{"health.score_changed", "health.low", "health.recovered", "health.dropped"}

// ChangeView is the JSON shape of a Change.
type ChangeView struct {
	Type     string   `json:"type"`
	Time     string   `json:"time"`
	Score    float64  `json:"score"`
	Band     string   `json:"band"`
	PrevBand *string  `json:"prev_band"`
	Drivers  []Driver `json:"drivers"`
}

// View renders c (scores and points to 2 decimals).
func (c *Change) View() ChangeView {
	v := ChangeView{Type: c.Type, Time: FormatTime(c.At), Score: Round2(c.Score), Band: c.Band.String(), Drivers: make([]Driver, len(c.Drivers))}
	if c.PrevBand != BandNone {
		pb := c.PrevBand.String()
		v.PrevBand = &pb
	}
	for i, d := range c.Drivers {
		d.Points = Round2(d.Points)
		v.Drivers[i] = d
	}
	return v
}

// maxChangeName bounds a driver's category and signal names in a Change.
const maxChangeName = 1 << 10

// AppendChange appends the binary encoding of c: the type's index in
// ChangeTypes (byte, from 1), varint At, uint16 score in hundredths, a byte
// with the band in its low and the previous band in its high nibble, then
// uvarint the number of drivers and per driver: category and signal (uvarint
// length, bytes) and varint points in hundredths.
func AppendChange(b []byte, c *Change) ([]byte, error) {
	t := 0
	for i, n := range ChangeTypes {
		if n == c.Type {
			t = i + 1
		}
	}
	switch {
	case t == 0:
		return nil, fmt.Errorf("unknown change type %q", c.Type)
	case !(c.Score >= 0 && c.Score <= 100):
		return nil, fmt.Errorf("change score %v is outside 0–100", c.Score)
	case c.Band > BandGreen || c.PrevBand > BandGreen:
		return nil, errors.New("invalid change band")
	}
	b = append(b, byte(t))
	b = binary.AppendVarint(b, c.At)
	b = binary.BigEndian.AppendUint16(b, uint16(math.Round(c.Score*100)))
	b = append(b, byte(c.Band)|byte(c.PrevBand)<<4)
	b = binary.AppendUvarint(b, uint64(len(c.Drivers)))
	for _, d := range c.Drivers {
		if len(d.Category) > maxChangeName || len(d.Signal) > maxChangeName || !finite(d.Points) || math.Abs(d.Points) > 1e6 {
			return nil, fmt.Errorf("invalid driver %+v", d)
		}
		b = binary.AppendUvarint(b, uint64(len(d.Category)))
		b = append(b, d.Category...)
		b = binary.AppendUvarint(b, uint64(len(d.Signal)))
		b = append(b, d.Signal...)
		b = binary.AppendVarint(b, int64(math.Round(d.Points*100)))
	}
	return b, nil
}

// ErrCorruptChange is returned (wrapped) for change bytes that cannot be
// decoded.
var ErrCorruptChange = errors.New("corrupt change")

// DecodeChange decodes bytes written by AppendChange.
func DecodeChange(data []byte) (Change, error) {
	r := &reader{b: data}
	var c Change
	if t := r.bytes(1, "change type"); len(t) == 1 {
		if t[0] == 0 || int(t[0]) > len(ChangeTypes) {
			r.fail("change type")
		} else {
			c.Type = ChangeTypes[t[0]-1]
		}
	}
	c.At = r.varint("change time")
	score := r.u16("change score")
	c.Score = float64(score) / 100
	if bands := r.bytes(1, "change bands"); len(bands) == 1 {
		c.Band, c.PrevBand = Band(bands[0]&15), Band(bands[0]>>4)
	}
	if score > 10000 || c.Band > BandGreen || c.PrevBand > BandGreen {
		r.fail("change score or bands")
	}
	n := r.uvarint("driver count")
	if n > uint64(len(r.b))/3 {
		r.fail("driver count")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		var d Driver
		d.Category = string(r.bytes(r.uvarint("driver category length"), "driver category"))
		d.Signal = string(r.bytes(r.uvarint("driver signal length"), "driver signal"))
		d.Points = float64(r.varint("driver points")) / 100
		if len(d.Category) > maxChangeName || len(d.Signal) > maxChangeName || math.Abs(d.Points) > 1e6 {
			r.fail("driver")
		}
		c.Drivers = append(c.Drivers, d)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("change (trailing bytes)")
	}
	if r.err != nil {
		return Change{}, fmt.Errorf("%w: %w", ErrCorruptChange, r.err)
	}
	return c, nil
}
