package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

// ref is a compiled field path. For CloudEvents, attr names an attribute,
// or data is set and keys lead into the event's data; for Segment, keys
// lead from the top of the call.
type ref struct {
	text string // as configured, for messages
	attr string
	data bool
	keys []string
}

func (r ref) none() bool { return r.text == "" }

// mapping is a compiled mapping of one kind of record to an event.
type mapping struct {
	customer  []ref
	typ       ref    // where the type is; unset when fixedType is
	fixedType string // the type of calls that carry none (identify, group)
	value     ref
	segment   ref
	id        ref
	time      ref
	types     map[string]string
}

// field is one value read from a record: raw JSON, or the text of a Kafka
// header.
type field struct {
	raw    json.RawMessage
	text   string
	isText bool
}

// source reads fields of one record.
type source interface {
	get(r ref) (field, bool, error)
}

// object is a JSON object whose values are parsed on demand.
type object map[string]json.RawMessage

var jsonNull = []byte("null")

// parseObject parses a JSON object; ok is false when data is valid JSON of
// another kind, err set when it is not JSON.
func parseObject(data []byte) (object, bool, error) {
	var o object
	err := json.Unmarshal(data, &o)
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return o, o != nil, nil
}

// lookup follows keys from raw (a JSON value); a missing key, a null, or a
// step into something that is not an object counts as absent.
func lookup(raw json.RawMessage, keys []string) (json.RawMessage, bool) {
	for _, k := range keys {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, false
		}
		var o object
		if json.Unmarshal(raw, &o) != nil {
			return nil, false
		}
		v, ok := o[k]
		if !ok {
			return nil, false
		}
		raw = v
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return nil, false
	}
	return raw, true
}

// lookupIn is lookup starting from a parsed object.
func lookupIn(o object, keys []string) (json.RawMessage, bool) {
	if len(keys) == 0 {
		return nil, false
	}
	v, ok := o[keys[0]]
	if !ok {
		return nil, false
	}
	return lookup(v, keys[1:])
}

// tree is a parsed JSON object that keeps the objects of its first level
// once parsed, since several paths usually start alike (context.groupId,
// context.traits.segment; data.value, data.segment).
type tree struct {
	root object
	subs map[string]object
}

func (t *tree) get(keys []string) (json.RawMessage, bool) {
	if len(keys) < 2 {
		return lookupIn(t.root, keys)
	}
	sub, ok := t.subs[keys[0]]
	if !ok {
		raw, present := t.root[keys[0]]
		if present {
			sub, _, _ = parseObject(raw) // not an object: nil, every path under it absent
		}
		if t.subs == nil {
			t.subs = make(map[string]object, 2)
		}
		t.subs[keys[0]] = sub
	}
	return lookupIn(sub, keys[1:])
}

// failure builds the DecodeError of a record that looked like kind.
func failure(reason, field, kind, format string, args ...any) *scorer.DecodeError {
	return &scorer.DecodeError{Reason: reason, Field: field, Detail: kind + " but " + fmt.Sprintf(format, args...)}
}

func (f field) str(kind string, r ref) (string, error) {
	if f.isText {
		return f.text, nil
	}
	var s string
	if err := json.Unmarshal(f.raw, &s); err != nil {
		return "", failure(scorer.ReasonInvalidField, r.text, kind, "its %s is not a string", r.text)
	}
	return s, nil
}

func (f field) number(kind string, r ref) (float64, error) {
	var v float64
	if f.isText {
		var err error
		if v, err = strconv.ParseFloat(strings.TrimSpace(f.text), 64); err != nil {
			return 0, failure(scorer.ReasonInvalidValue, r.text, kind, "its %s %q is not a number", r.text, f.text)
		}
	} else if f.raw[0] == '"' || json.Unmarshal(f.raw, &v) != nil {
		return 0, failure(scorer.ReasonInvalidValue, r.text, kind, "its %s is not a number", r.text)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, failure(scorer.ReasonInvalidValue, r.text, kind, "its %s is not a finite number", r.text)
	}
	return v, nil
}

// optString reads an optional string field.
func optString(src source, kind string, r ref) (string, bool, error) {
	if r.none() {
		return "", false, nil
	}
	f, ok, err := src.get(r)
	if err != nil || !ok {
		return "", false, err
	}
	s, err := f.str(kind, r)
	return s, err == nil, err
}

// orList names paths as "a, b or c".
func orList(rs []ref) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.text
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// event maps the fields of a record that looks like kind.
func (m *mapping) event(src source, kind string) (scorer.Event, error) {
	var ev scorer.Event
	for _, r := range m.customer {
		s, ok, err := optString(src, kind, r)
		if err != nil {
			return scorer.Event{}, err
		}
		if ok && s != "" {
			ev.CustomerID = s
			break
		}
	}
	switch {
	case ev.CustomerID == "":
		return scorer.Event{}, failure(scorer.ReasonMissingCustomerID, m.customer[0].text, kind, "has no %s (the customer id)", orList(m.customer))
	case len(ev.CustomerID) > scorer.MaxCustomerIDLen:
		return scorer.Event{}, failure(scorer.ReasonInvalidCustomerID, m.customer[0].text, kind, "its customer id is %d bytes long; at most %d are allowed", len(ev.CustomerID), scorer.MaxCustomerIDLen)
	}
	ev.Type = m.fixedType
	if ev.Type == "" {
		s, _, err := optString(src, kind, m.typ)
		if err != nil {
			return scorer.Event{}, err
		}
		if s == "" {
			return scorer.Event{}, failure(scorer.ReasonMissingType, m.typ.text, kind, "has no %s (the event type)", m.typ.text)
		}
		ev.Type = s
	}
	if t, ok := m.types[ev.Type]; ok {
		ev.Type = t
	}
	if ev.Type == scorer.TypeOverride {
		field := m.typ.text
		if field == "" {
			field = "type"
		}
		return scorer.Event{}, failure(scorer.ReasonInvalidField, field, kind, "its type is %s: manual overrides are read only in the native format (docs/events.md)", scorer.TypeOverride)
	}
	ev.Value = 1
	if !m.value.none() {
		f, ok, err := src.get(m.value)
		if err != nil {
			return scorer.Event{}, err
		}
		if ok {
			if ev.Value, err = f.number(kind, m.value); err != nil {
				return scorer.Event{}, err
			}
		}
	}
	var err error
	if ev.Segment, _, err = optString(src, kind, m.segment); err != nil {
		return scorer.Event{}, err
	}
	if ev.ID, _, err = optString(src, kind, m.id); err != nil {
		return scorer.Event{}, err
	}
	s, ok, err := optString(src, kind, m.time)
	if err != nil {
		return scorer.Event{}, err
	}
	if ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return scorer.Event{}, failure(scorer.ReasonInvalidTime, m.time.text, kind, "its %s is not RFC 3339 like 2026-11-20T10:00:00Z: %q", m.time.text, s)
		}
		if t.Year() < scorer.MinYear || t.Year() > scorer.MaxYear {
			return scorer.Event{}, failure(scorer.ReasonInvalidTime, m.time.text, kind, "its %s is in year %d, outside %d–%d", m.time.text, t.Year(), scorer.MinYear, scorer.MaxYear)
		}
		ev.Time, ev.HasTime = t.UnixNano(), true
	}
	return ev, nil
}

// splitPath splits a dotted path, rejecting empty steps.
func splitPath(name, p string) ([]string, error) {
	keys := strings.Split(p, ".")
	for _, k := range keys {
		if k == "" || strings.TrimSpace(k) != k {
			return nil, fmt.Errorf("%s: %q is not a field path: write dotted JSON keys like properties.value", name, p)
		}
	}
	return keys, nil
}

// ceRef compiles a CloudEvents path: an attribute name, or data[.keys].
func ceRef(name, p string) (ref, error) {
	if p == "" {
		return ref{}, nil
	}
	keys, err := splitPath(name, p)
	if err != nil {
		return ref{}, err
	}
	if keys[0] == "data" {
		return ref{text: p, data: true, keys: keys[1:]}, nil
	}
	if len(keys) > 1 {
		return ref{}, fmt.Errorf("%s: %q: a CloudEvents attribute has no fields; write an attribute name (subject, or an extension such as customerid) or data.<field>", name, p)
	}
	for _, c := range p {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return ref{}, fmt.Errorf("%s: %q is not a CloudEvents attribute name (lower-case letters and digits only) nor data.<field>", name, p)
		}
	}
	return ref{text: p, attr: p}, nil
}

func segRef(name, p string) (ref, error) {
	if p == "" {
		return ref{}, nil
	}
	keys, err := splitPath(name, p)
	if err != nil {
		return ref{}, err
	}
	return ref{text: p, keys: keys}, nil
}

// compileRefs compiles the required and optional paths of a mapping.
func compileRefs(compile func(name, p string) (ref, error), customer Paths, typ string, opt map[string]string) (mapping, map[string]ref, error) {
	var m mapping
	if len(customer) == 0 {
		return m, nil, fmt.Errorf("customer: required: the path (or paths, first present wins) of the customer id")
	}
	for _, p := range customer {
		if p == "" {
			return m, nil, fmt.Errorf("customer: a path is empty")
		}
		r, err := compile("customer", p)
		if err != nil {
			return m, nil, err
		}
		m.customer = append(m.customer, r)
	}
	if typ == "" {
		return m, nil, fmt.Errorf("type: required: the path of the event type")
	}
	var err error
	if m.typ, err = compile("type", typ); err != nil {
		return m, nil, err
	}
	refs := map[string]ref{}
	for name, p := range opt {
		if refs[name], err = compile(name, p); err != nil {
			return m, nil, err
		}
	}
	return m, refs, nil
}

func checkTypes(types map[string]string) error {
	for from, to := range types {
		if from == "" || to == "" {
			return fmt.Errorf("types: %q: %q: both the incoming type and the model's type must be non-empty", from, to)
		}
	}
	return nil
}

func compileCloudEvents(c CloudEventsMapping) (*mapping, error) {
	m, refs, err := compileRefs(ceRef, c.Customer, c.Type, map[string]string{"value": c.Value, "segment": c.Segment, "id": c.ID, "time": c.Time})
	if err != nil {
		return nil, err
	}
	if err := checkTypes(c.Types); err != nil {
		return nil, err
	}
	m.value, m.segment, m.id, m.time, m.types = refs["value"], refs["segment"], refs["id"], refs["time"], c.Types
	return &m, nil
}

// segmentMappings are the compiled mappings of the three calls read.
type segmentMappings struct {
	track, identify, group mapping
}

func compileSegment(c SegmentMapping) (*segmentMappings, error) {
	m, refs, err := compileRefs(segRef, c.Customer, c.Type, map[string]string{"value": c.Value, "track_segment": c.TrackSegment, "segment": c.Segment, "id": c.ID, "time": c.Time})
	if err != nil {
		return nil, err
	}
	if err := checkTypes(c.Types); err != nil {
		return nil, err
	}
	m.id, m.time, m.types = refs["id"], refs["time"], c.Types
	track, identify := m, m
	track.value, track.segment = refs["value"], refs["track_segment"]
	identify.typ, identify.segment = ref{}, refs["segment"]
	group := identify
	identify.fixedType, group.fixedType = SegmentIdentifyType, SegmentGroupType
	return &segmentMappings{track: track, identify: identify, group: group}, nil
}
