package scorer

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// MaxCustomerIDLen is the longest customer_id accepted, in bytes.
const MaxCustomerIDLen = 256

// Event is one customer interaction, as product teams emit it.
type Event struct {
	ID         string  // optional; echoed as the cause of outputs
	CustomerID string  // required
	Type       string  // required; events of types no signal reads are ignored
	Time       int64   // Unix nanoseconds; 0 when the input had no "time" (see HasTime)
	HasTime    bool    // whether the input carried a "time"
	Value      float64 // default 1
	Segment    string  // optional; the segment of the latest event wins

	// TypeOverride events only (empty otherwise):
	Reason       string // "reason"
	By           string // "attributes"."by"
	ExpiresAt    int64  // "expires_at", Unix ns
	HasExpiresAt bool
}

// TypeOverride is the event type of a manual override: "value" (0–100,
// required) becomes the customer's score until "expires_at" (optional,
// RFC 3339) or a newer override; "reason" and "attributes"."by" (optional
// strings) are echoed in the outputs.
const TypeOverride = "health.override"

// At returns the event time as a time.Time in UTC.
func (e Event) At() time.Time { return time.Unix(0, e.Time).UTC() }

// Reason codes of DecodeError. They are stable: dead-letter headers and
// metric labels use them.
const (
	ReasonInvalidJSON       = "invalid_json"
	ReasonInvalidUTF8       = "invalid_utf8"
	ReasonMissingCustomerID = "missing_customer_id"
	ReasonInvalidCustomerID = "invalid_customer_id"
	ReasonMissingType       = "missing_type"
	ReasonInvalidField      = "invalid_field"
	ReasonMissingTime       = "missing_time"
	ReasonInvalidTime       = "invalid_time"
	ReasonInvalidValue      = "invalid_value"

	// Reasons of the other input formats (package ingest): a record that
	// looks like a CloudEvent or a Segment call but is not a usable one.
	// Their mapped fields use the reasons above.
	ReasonInvalidCloudEvent      = "invalid_cloudevent"
	ReasonInvalidSegmentCall     = "invalid_segment_call"
	ReasonUnsupportedSegmentCall = "unsupported_segment_call"
)

// DecodeReasons returns every Reason* code of DecodeError, so that metrics
// can show each one at 0 before it first happens.
func DecodeReasons() []string {
	return []string{ReasonInvalidJSON, ReasonInvalidUTF8, ReasonMissingCustomerID, ReasonInvalidCustomerID,
		ReasonMissingType, ReasonInvalidField, ReasonMissingTime, ReasonInvalidTime, ReasonInvalidValue,
		ReasonInvalidCloudEvent, ReasonInvalidSegmentCall, ReasonUnsupportedSegmentCall}
}

// DecodeError says what is wrong with an input event: which field and why.
type DecodeError struct {
	Reason string // one of the Reason* codes
	Field  string // JSON field, empty when the record as a whole is bad
	Detail string // human-readable explanation
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	return fmt.Sprintf("%s: field %q: %s", e.Reason, e.Field, e.Detail)
}

// AsDecodeError returns the DecodeError in err's chain, if any.
func AsDecodeError(err error) (*DecodeError, bool) {
	var de *DecodeError
	ok := errors.As(err, &de)
	return de, ok
}

// Known event fields, in the order their errors are reported.
const (
	fieldID = iota
	fieldCustomerID
	fieldType
	fieldTime
	fieldValue
	fieldSegment
	fieldAttributes
	numEventFields
)

func badField(reason, field, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// DecodeEvent decodes and validates one JSON event. Unknown top-level fields
// are ignored (producers may add fields); "attributes" must be an object or
// null and is not interpreted, except for TypeOverride events, which also
// read "reason", "expires_at" and "attributes"."by" (see TypeOverride) and
// need a "value" between 0 and 100. A null field counts as absent. When a key is
// repeated, the last one wins. The whole input must be valid UTF-8.
//
// DecodeEvent does not require "time": callers that need one (the offline
// scorer) check HasTime; the streaming side defaults it to the record time.
func DecodeEvent(data []byte) (Event, error) {
	var ev Event
	if !utf8.Valid(data) {
		return ev, badField(ReasonInvalidUTF8, "", "input is not valid UTF-8")
	}
	d := decoder{data: data}
	hasValue := false
	// Fields read only for TypeOverride, whose type may come last: their
	// raw JSON values, checked once the type is known.
	var rawReason, rawExpires, rawBy []byte
	// A repeated key replaces the earlier value and its error, so field
	// errors are kept per field and reported once the whole object has been
	// read; syntax and UTF-8 errors (no field) end decoding at once.
	var errs [numEventFields]*DecodeError
	keep := func(i int, err error) error {
		errs[i] = nil
		if de, ok := err.(*DecodeError); ok && de.Field != "" {
			errs[i] = de
			return nil
		}
		return err
	}
	err := d.object(func(key []byte) error {
		switch string(key) {
		case "id":
			s, _, err := d.optString("id")
			ev.ID = s
			return keep(fieldID, err)
		case "customer_id":
			s, _, err := d.optString("customer_id")
			ev.CustomerID = s
			return keep(fieldCustomerID, err)
		case "type":
			s, _, err := d.optString("type")
			ev.Type = s
			return keep(fieldType, err)
		case "segment":
			s, _, err := d.optString("segment")
			ev.Segment = s
			return keep(fieldSegment, err)
		case "time":
			ev.Time, ev.HasTime = 0, false
			s, ok, err := d.optString("time")
			if err != nil || !ok {
				return keep(fieldTime, err)
			}
			t, err := parseTime("time", s)
			if err != nil {
				return keep(fieldTime, err)
			}
			ev.Time, ev.HasTime = t, true
			return keep(fieldTime, nil)
		case "value":
			v, ok, err := d.optNumber("value")
			ev.Value, hasValue = v, ok && err == nil
			return keep(fieldValue, err)
		case "attributes":
			rawBy = nil
			return keep(fieldAttributes, d.attributes(&rawBy))
		case "reason":
			return d.rawValue(&rawReason)
		case "expires_at":
			return d.rawValue(&rawExpires)
		default:
			return d.skipValue()
		}
	})
	if err != nil {
		return Event{}, err
	}
	for _, e := range errs {
		if e != nil {
			return Event{}, e
		}
	}
	if !hasValue {
		ev.Value = 1
	}
	switch {
	case ev.CustomerID == "":
		return Event{}, badField(ReasonMissingCustomerID, "customer_id", "is required and must be a non-empty string")
	case len(ev.CustomerID) > MaxCustomerIDLen:
		return Event{}, badField(ReasonInvalidCustomerID, "customer_id", "is %d bytes long; at most %d are allowed", len(ev.CustomerID), MaxCustomerIDLen)
	case ev.Type == "":
		return Event{}, badField(ReasonMissingType, "type", "is required and must be a non-empty string")
	case math.IsNaN(ev.Value) || math.IsInf(ev.Value, 0):
		return Event{}, badField(ReasonInvalidValue, "value", "must be a finite number")
	}
	if ev.Type == TypeOverride {
		if err := ev.overrideFields(hasValue, rawReason, rawExpires, rawBy); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

// overrideFields checks and sets the fields of a TypeOverride event.
func (ev *Event) overrideFields(hasValue bool, rawReason, rawExpires, rawBy []byte) error {
	str := func(raw []byte, field string) (string, bool, error) {
		if raw == nil {
			return "", false, nil
		}
		d := decoder{data: raw}
		return d.optString(field)
	}
	var err error
	if ev.Reason, _, err = str(rawReason, "reason"); err != nil {
		return err
	}
	s, ok, err := str(rawExpires, "expires_at")
	if err != nil {
		return err
	}
	if ok {
		t, err := parseTime("expires_at", s)
		if err != nil {
			return err
		}
		ev.ExpiresAt, ev.HasExpiresAt = t, true
	}
	if ev.By, _, err = str(rawBy, "attributes.by"); err != nil {
		return err
	}
	if !hasValue || !(ev.Value >= 0 && ev.Value <= 100) {
		return badField(ReasonInvalidValue, "value", "a %s event needs a value between 0 and 100", TypeOverride)
	}
	return nil
}

// MinYear and MaxYear bound the instants the scorer represents: Unix
// nanoseconds in an int64 reach from 1677-09-21 to 2262-04-11, so only whole
// years inside that range are accepted.
const (
	MinYear = 1678
	MaxYear = 2261
)

// parseTime parses an RFC 3339 field within the range of int64 nanoseconds.
func parseTime(field, s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, badField(ReasonInvalidTime, field, "want RFC 3339 like 2026-11-20T10:00:00Z, got %q", s)
	}
	if t.Year() < MinYear || t.Year() > MaxYear { // outside int64 nanoseconds
		return 0, badField(ReasonInvalidTime, field, "year %d is out of range", t.Year())
	}
	return t.UnixNano(), nil
}
