package scorer

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

func mustTime(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return tm.UnixNano()
}

func TestDecodeEventOK(t *testing.T) {
	f := func(in string, want Event) {
		t.Helper()
		got, err := DecodeEvent([]byte(in))
		if err != nil {
			t.Fatalf("DecodeEvent(%s): unexpected error %v", in, err)
		}
		if got != want {
			t.Fatalf("DecodeEvent(%s)\ngot  %+v\nwant %+v", in, got, want)
		}
	}
	ts := mustTime(t, "2026-11-20T10:00:00Z")

	// The example.
	f(`{"id":"evt-1","customer_id":"acme","type":"login","time":"2026-11-20T10:00:00Z","value":1,"segment":"enterprise","attributes":{}}`,
		Event{ID: "evt-1", CustomerID: "acme", Type: "login", Time: ts, HasTime: true, Value: 1, Segment: "enterprise"})
	// Minimal: value defaults to 1, no time.
	f(`{"customer_id":"a","type":"t"}`, Event{CustomerID: "a", Type: "t", Value: 1})
	// Whitespace everywhere.
	f(" \t\r\n{ \"customer_id\" : \"a\" ,\n\"type\":\"t\" , \"value\" : -2.5e1 }\n ", Event{CustomerID: "a", Type: "t", Value: -25})
	// Null fields count as absent.
	f(`{"id":null,"customer_id":"a","type":"t","time":null,"value":null,"segment":null,"attributes":null}`,
		Event{CustomerID: "a", Type: "t", Value: 1})
	// value 0 is kept (not the default).
	f(`{"customer_id":"a","type":"t","value":0}`, Event{CustomerID: "a", Type: "t", Value: 0})
	// Tiny values underflow to 0 like encoding/json; that is finite.
	f(`{"customer_id":"a","type":"t","value":1e-400}`, Event{CustomerID: "a", Type: "t", Value: 0})
	// Unknown fields of any shape are ignored, including nested ones.
	f(`{"x":[1,{"y":[true,false,null,"z\"",-0.5e-3]}],"customer_id":"a","Customer_ID":5,"type":"t","n":{}}`,
		Event{CustomerID: "a", Type: "t", Value: 1})
	// Attributes: any object.
	f(`{"customer_id":"a","type":"t","attributes":{"plan":"pro","seats":[1,2],"o":{"k":null}}}`,
		Event{CustomerID: "a", Type: "t", Value: 1})
	// Escapes in values and keys, including a surrogate pair.
	f(`{"customer_id":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00","typ\u0065":"t"}`,
		Event{CustomerID: "a\"b\\c/d\b\f\n\r\t\u00e9\u20ac\U0001F600", Type: "t", Value: 1})
	// Raw UTF-8 is fine.
	f(`{"customer_id":"Zürich-株式会社","type":"t"}`, Event{CustomerID: "Zürich-株式会社", Type: "t", Value: 1})
	// The last of repeated keys wins, including null.
	f(`{"customer_id":"a","customer_id":"b","type":"t","value":5,"value":null}`, Event{CustomerID: "b", Type: "t", Value: 1})
	// Exactly 256 bytes.
	id := strings.Repeat("é", 128)
	f(`{"customer_id":"`+id+`","type":"t"}`, Event{CustomerID: id, Type: "t", Value: 1})
	// Offsets and fractional seconds.
	f(`{"customer_id":"a","type":"t","time":"2026-11-20T11:00:00.5+01:00"}`,
		Event{CustomerID: "a", Type: "t", Value: 1, Time: ts + 5e8, HasTime: true})
	// Overrides read reason, expires_at and attributes.by; the type may come
	// last, and other types ignore those fields whatever their shape.
	f(`{"id":"o1","customer_id":"a","value":55.5,"reason":"renewal call","expires_at":"2026-11-27T10:00:00Z","attributes":{"x":[1],"by":"ana@example.com"},"type":"health.override"}`,
		Event{ID: "o1", CustomerID: "a", Type: TypeOverride, Value: 55.5, Reason: "renewal call", ExpiresAt: ts + 7*day, HasExpiresAt: true, By: "ana@example.com"})
	f(`{"customer_id":"a","type":"health.override","value":0,"reason":null,"expires_at":null,"attributes":{"by":null}}`,
		Event{CustomerID: "a", Type: TypeOverride, Value: 0})
	f(`{"customer_id":"a","type":"health.override","value":100,"attributes":{"by":"x","b\u0079":"y"}}`,
		Event{CustomerID: "a", Type: TypeOverride, Value: 100, By: "y"})
	f(`{"customer_id":"a","type":"t","value":500,"reason":5,"expires_at":"soon","attributes":{"by":7}}`,
		Event{CustomerID: "a", Type: "t", Value: 500})
}

func TestDecodeEventErrors(t *testing.T) {
	f := func(in, reason, field string) {
		t.Helper()
		ev, err := DecodeEvent([]byte(in))
		if err == nil {
			t.Fatalf("DecodeEvent(%q): want error %s, got %+v", in, reason, ev)
		}
		de, ok := AsDecodeError(err)
		if !ok {
			t.Fatalf("DecodeEvent(%q): error %v is not a *DecodeError", in, err)
		}
		if de.Reason != reason || de.Field != field {
			t.Fatalf("DecodeEvent(%q): got reason %q field %q (%v), want %q %q", in, de.Reason, de.Field, err, reason, field)
		}
		if ev != (Event{}) {
			t.Fatalf("DecodeEvent(%q): event must be zero on error, got %+v", in, ev)
		}
	}
	// Overrides: value 0–100 required; reason, expires_at, attributes.by.
	const ov = `{"customer_id":"a","type":"health.override",`
	f(ov+`"value":100.01}`, ReasonInvalidValue, "value")
	f(ov+`"value":-1}`, ReasonInvalidValue, "value")
	f(ov+`"reason":"r"}`, ReasonInvalidValue, "value")
	f(ov+`"value":null}`, ReasonInvalidValue, "value")
	f(ov+`"value":50,"reason":1}`, ReasonInvalidField, "reason")
	f(ov+`"value":50,"expires_at":"tomorrow"}`, ReasonInvalidTime, "expires_at")
	f(ov+`"value":50,"expires_at":1}`, ReasonInvalidField, "expires_at")
	f(ov+`"value":50,"attributes":{"by":["x"]}}`, ReasonInvalidField, "attributes.by")
	f(ov+`"value":50,"attributes":{"by":"x"`, ReasonInvalidJSON, "")
	// missing_customer_id
	f(`{"type":"t"}`, ReasonMissingCustomerID, "customer_id")
	f(`{"customer_id":"","type":"t"}`, ReasonMissingCustomerID, "customer_id")
	f(`{"customer_id":null,"type":"t"}`, ReasonMissingCustomerID, "customer_id")
	f(`{"customer_id":"a","customer_id":null,"type":"t"}`, ReasonMissingCustomerID, "customer_id")
	// invalid_customer_id: 257 bytes.
	f(`{"customer_id":"`+strings.Repeat("x", 257)+`","type":"t"}`, ReasonInvalidCustomerID, "customer_id")
	f(`{"customer_id":"`+strings.Repeat("é", 128)+`x","type":"t"}`, ReasonInvalidCustomerID, "customer_id")
	// missing_type
	f(`{"customer_id":"a"}`, ReasonMissingType, "type")
	f(`{"customer_id":"a","type":""}`, ReasonMissingType, "type")
	// invalid_field: non-string strings, non-object attributes.
	f(`{"customer_id":5,"type":"t"}`, ReasonInvalidField, "customer_id")
	f(`{"customer_id":"a","type":["t"]}`, ReasonInvalidField, "type")
	f(`{"customer_id":"a","type":"t","id":1}`, ReasonInvalidField, "id")
	f(`{"customer_id":"a","type":"t","segment":true}`, ReasonInvalidField, "segment")
	f(`{"customer_id":"a","type":"t","time":1700000000}`, ReasonInvalidField, "time")
	f(`{"customer_id":"a","type":"t","attributes":[]}`, ReasonInvalidField, "attributes")
	f(`{"customer_id":"a","type":"t","attributes":"x"}`, ReasonInvalidField, "attributes")
	f(`{"customer_id":"a","type":"t","attributes":0}`, ReasonInvalidField, "attributes")
	// invalid_time
	f(`{"customer_id":"a","type":"t","time":"2026-11-20"}`, ReasonInvalidTime, "time")
	f(`{"customer_id":"a","type":"t","time":"2026-11-20 10:00:00Z"}`, ReasonInvalidTime, "time")
	f(`{"customer_id":"a","type":"t","time":"2026-13-20T10:00:00Z"}`, ReasonInvalidTime, "time")
	f(`{"customer_id":"a","type":"t","time":""}`, ReasonInvalidTime, "time")
	f(`{"customer_id":"a","type":"t","time":"1600-01-01T00:00:00Z"}`, ReasonInvalidTime, "time")
	f(`{"customer_id":"a","type":"t","time":"2300-01-01T00:00:00Z"}`, ReasonInvalidTime, "time")
	// invalid_value
	f(`{"customer_id":"a","type":"t","value":"1"}`, ReasonInvalidValue, "value")
	f(`{"customer_id":"a","type":"t","value":true}`, ReasonInvalidValue, "value")
	f(`{"customer_id":"a","type":"t","value":{}}`, ReasonInvalidValue, "value")
	f(`{"customer_id":"a","type":"t","value":1e400}`, ReasonInvalidValue, "value")
	f(`{"customer_id":"a","type":"t","value":-1e400}`, ReasonInvalidValue, "value")
	// invalid_utf8: raw bytes and unpaired surrogate escapes (anywhere).
	f("{\"customer_id\":\"a\xff\",\"type\":\"t\"}", ReasonInvalidUTF8, "")
	f("{\"customer_id\":\"a\",\"type\":\"t\",\"x\":\"\xc3\"}", ReasonInvalidUTF8, "")
	f(`{"customer_id":"a\ud800","type":"t"}`, ReasonInvalidUTF8, "")
	f(`{"customer_id":"a\udc00","type":"t"}`, ReasonInvalidUTF8, "")
	f(`{"customer_id":"a\ud800\u0041","type":"t"}`, ReasonInvalidUTF8, "")
	f(`{"customer_id":"a","type":"t","attributes":{"k":"\ude00\ud83d"}}`, ReasonInvalidUTF8, "")
	// invalid_json: grammar, trailing garbage, non-objects, depth.
	for _, in := range []string{
		``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `{"customer_id":"a","type":"t"`, `{"customer_id":"a","type":"t",}`,
		`{"customer_id":"a","type":"t"}x`, `{"customer_id":"a","type":"t"}{}`, `{"customer_id":"a","type":"t"} null`,
		`{"customer_id":'a',"type":"t"}`, `{customer_id:"a","type":"t"}`, `{"customer_id" "a","type":"t"}`,
		`{"customer_id":"a";"type":"t"}`, `{"customer_id":"a","type":"t","value":01}`, `{"customer_id":"a","type":"t","value":1.}`,
		`{"customer_id":"a","type":"t","value":.5}`, `{"customer_id":"a","type":"t","value":+1}`, `{"customer_id":"a","type":"t","value":1e}`,
		`{"customer_id":"a","type":"t","value":NaN}`, `{"customer_id":"a","type":"t","value":-}`, `{"customer_id":"a","type":"t","x":tru}`,
		`{"customer_id":"a","type":"t","x":nul}`, `{"customer_id":"a","type":"t","x":[1,]}`, `{"customer_id":"a","type":"t","x":{"k"}}`,
		"{\"customer_id\":\"a\tb\",\"type\":\"t\"}", `{"customer_id":"a\x","type":"t"}`, `{"customer_id":"a\u12","type":"t"}`,
		`{"customer_id":"a\u12G4","type":"t"}`, `{"customer_id":"a\`, `{"customer_id":"a","type":"t","value":nullx}`,
		`{"customer_id":"a","type":"t","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		// A field error does not hide broken JSON after it.
		`{"value":"x","customer_id":"a","type":"t"`,
	} {
		f(in, ReasonInvalidJSON, "")
	}
}

// TestDecodeEventRepeatedKeys checks that the last of repeated keys wins for
// errors too: an invalid early value replaced by a valid one is accepted
// (encoding/json into a map behaves the same way), and vice versa.
func TestDecodeEventRepeatedKeys(t *testing.T) {
	for _, in := range []string{
		`{"customer_id":5,"customer_id":"a","type":"t"}`,
		`{"customer_id":"a","type":"t","value":"x","value":2}`,
		`{"customer_id":"a","type":"t","time":"bad","time":"2026-11-20T10:00:00Z"}`,
		`{"customer_id":"a","type":"t","attributes":1,"attributes":{}}`,
		`{"customer_id":"a","type":"t","value":1e400,"value":null}`,
	} {
		if _, err := DecodeEvent([]byte(in)); err != nil {
			t.Errorf("DecodeEvent(%s): %v; want the last key to win", in, err)
		}
		if _, reason, _ := refDecodeEvent([]byte(in)); reason != "" {
			t.Errorf("reference decoder rejects %s: %s", in, reason)
		}
	}
	for _, in := range []string{
		`{"customer_id":"a","customer_id":5,"type":"t"}`,
		`{"customer_id":"a","type":"t","value":2,"value":"x"}`,
	} {
		if _, err := DecodeEvent([]byte(in)); err == nil {
			t.Errorf("DecodeEvent(%s) accepted; want the last (invalid) key to win", in)
		}
	}
}

// refDecodeEvent is an independent reference decoder built on encoding/json:
// exact-case keys through map[string]json.RawMessage, where the last of
// repeated keys wins. It returns the reason code of a rejection ("" when
// accepted) and the field. Field errors are reported in the order id,
// customer_id, type, time, value, segment, attributes, then the required
// fields.
func refDecodeEvent(data []byte) (Event, string, string) {
	if !utf8.Valid(data) {
		return Event{}, ReasonInvalidUTF8, ""
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, ReasonInvalidJSON, ""
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return Event{}, ReasonInvalidJSON, ""
	}
	ev := Event{Value: 1}
	str := func(name string, dst *string) string {
		raw, ok := m[name]
		if !ok || string(raw) == "null" {
			return ""
		}
		if raw[0] != '"' {
			return ReasonInvalidField
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			panic(err) // a valid JSON string always unmarshals
		}
		return ""
	}
	if r := str("id", &ev.ID); r != "" {
		return Event{}, r, "id"
	}
	if r := str("customer_id", &ev.CustomerID); r != "" {
		return Event{}, r, "customer_id"
	}
	if r := str("type", &ev.Type); r != "" {
		return Event{}, r, "type"
	}
	var ts string
	if r := str("time", &ts); r != "" {
		return Event{}, r, "time"
	}
	if raw, ok := m["time"]; ok && string(raw) != "null" {
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || tm.Year() < 1678 || tm.Year() > 2261 {
			return Event{}, ReasonInvalidTime, "time"
		}
		ev.Time, ev.HasTime = tm.UnixNano(), true
	}
	if raw, ok := m["value"]; ok && string(raw) != "null" {
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return Event{}, ReasonInvalidValue, "value"
		}
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return Event{}, ReasonInvalidValue, "value"
		}
		ev.Value = v
	}
	if r := str("segment", &ev.Segment); r != "" {
		return Event{}, r, "segment"
	}
	if raw, ok := m["attributes"]; ok && string(raw) != "null" && raw[0] != '{' {
		return Event{}, ReasonInvalidField, "attributes"
	}
	switch {
	case ev.CustomerID == "":
		return Event{}, ReasonMissingCustomerID, "customer_id"
	case len(ev.CustomerID) > 256:
		return Event{}, ReasonInvalidCustomerID, "customer_id"
	case ev.Type == "":
		return Event{}, ReasonMissingType, "type"
	}
	if ev.Type == TypeOverride {
		if r := str("reason", &ev.Reason); r != "" {
			return Event{}, r, "reason"
		}
		var exp string
		if r := str("expires_at", &exp); r != "" {
			return Event{}, r, "expires_at"
		}
		if raw, ok := m["expires_at"]; ok && string(raw) != "null" {
			tm, err := time.Parse(time.RFC3339Nano, exp)
			if err != nil || tm.Year() < 1678 || tm.Year() > 2261 {
				return Event{}, ReasonInvalidTime, "expires_at"
			}
			ev.ExpiresAt, ev.HasExpiresAt = tm.UnixNano(), true
		}
		if raw, ok := m["attributes"]; ok && string(raw) != "null" {
			var attrs map[string]json.RawMessage
			if err := json.Unmarshal(raw, &attrs); err != nil {
				panic(err) // validated above
			}
			if by, ok := attrs["by"]; ok && string(by) != "null" {
				if by[0] != '"' {
					return Event{}, ReasonInvalidField, "attributes.by"
				}
				if err := json.Unmarshal(by, &ev.By); err != nil {
					panic(err)
				}
			}
		}
		if raw, ok := m["value"]; !ok || string(raw) == "null" || !(ev.Value >= 0 && ev.Value <= 100) {
			return Event{}, ReasonInvalidValue, "value"
		}
	}
	return ev, "", ""
}

// hasUnpairedSurrogateEscape reports whether a JSON text has a \u escape of
// a UTF-16 surrogate that is not a valid high+low pair. encoding/json turns
// those into U+FFFD; DecodeEvent rejects them as invalid_utf8.
func hasUnpairedSurrogateEscape(data []byte) bool {
	inStr := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inStr {
			inStr = c == '"'
			continue
		}
		switch c {
		case '"':
			inStr = false
		case '\\':
			if i+1 < len(data) && data[i+1] == 'u' {
				r, ok := hex4(data[i+2:])
				if !ok {
					i++
					continue
				}
				i += 5
				if !utf16.IsSurrogate(r) {
					continue
				}
				if r >= 0xdc00 || i+6 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return true
				}
				r2, ok := hex4(data[i+3:])
				if !ok || r2 < 0xdc00 || r2 > 0xdfff {
					return true
				}
				i += 6
			} else {
				i++
			}
		}
	}
	return false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(v), err == nil
}

// maxNesting is the deepest bracket nesting in a JSON text (the top-level
// object counts as 1).
func maxNesting(data []byte) int {
	depth, deepest, inStr := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// checkDecodeEvent runs DecodeEvent and the reference decoder on in and
// fails unless they agree on acceptance, reason, field and every decoded
// field. Allowed divergences: an unpaired surrogate escape (we reject it as
// invalid_utf8, encoding/json substitutes U+FFFD) and nesting deeper than
// our cap of 64 levels below a field (we reject it as invalid_json).
func checkDecodeEvent(t *testing.T, in []byte) {
	t.Helper()
	got, err := DecodeEvent(in)
	want, wantReason, wantField := refDecodeEvent(in)
	if err != nil {
		de, ok := AsDecodeError(err)
		if !ok {
			t.Fatalf("DecodeEvent(%q): error %v is not a *DecodeError", in, err)
		}
		if de.Reason == ReasonInvalidUTF8 && wantReason != ReasonInvalidUTF8 && hasUnpairedSurrogateEscape(in) {
			return
		}
		if strings.Contains(de.Detail, "nesting too deep") {
			if maxNesting(in) <= maxDepth {
				t.Fatalf("DecodeEvent(%q): nesting too deep at depth %d", in, maxNesting(in))
			}
			return
		}
		if de.Reason != wantReason || de.Field != wantField {
			t.Fatalf("DecodeEvent(%q): got %v, reference says reason %q field %q", in, err, wantReason, wantField)
		}
		return
	}
	// A success must satisfy the contract.
	if got.CustomerID == "" || len(got.CustomerID) > MaxCustomerIDLen || got.Type == "" ||
		!utf8.ValidString(got.CustomerID) || !utf8.ValidString(got.Type) || !utf8.ValidString(got.ID) || !utf8.ValidString(got.Segment) ||
		math.IsNaN(got.Value) || math.IsInf(got.Value, 0) || (!got.HasTime && got.Time != 0) {
		t.Fatalf("DecodeEvent(%q) accepted an event that breaks the contract: %+v", in, got)
	}
	if wantReason != "" {
		t.Fatalf("DecodeEvent(%q) = %+v, but the reference rejects it: %s %s", in, got, wantReason, wantField)
	}
	g, w := got, want
	g.Value, w.Value = 0, 0
	if g != w || math.Float64bits(got.Value) != math.Float64bits(want.Value) {
		t.Fatalf("DecodeEvent(%q)\ngot  %+v\nwant %+v", in, got, want)
	}
}

func TestDecodeEventDifferentialCorpus(t *testing.T) {
	for _, in := range eventSeeds(t) {
		checkDecodeEvent(t, in)
		for k := 0; k <= len(in); k++ {
			checkDecodeEvent(t, in[:k])
		}
	}
}

func TestSurrogateHelper(t *testing.T) {
	f := func(in string, want bool) {
		t.Helper()
		if got := hasUnpairedSurrogateEscape([]byte(in)); got != want {
			t.Fatalf("hasUnpairedSurrogateEscape(%s) = %v", in, got)
		}
	}
	f(`{"a":"\ud83d\ude00"}`, false)
	f(`{"a":"\u0041\\ud800"}`, false)
	f(`{"a":"\ud800"}`, true)
	f(`{"a":"\udc00\ud800"}`, true)
	f(`{"a":"\ud800\u0041"}`, true)
	f(`{"\ud800":1}`, true)
}

func eventSeeds(t testing.TB) [][]byte {
	t.Helper()
	paths, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed events in testdata/events: %v", err)
	}
	var seeds [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecodeEvent: DecodeEvent never panics, accepts only events that satisfy
// the contract, agrees with an encoding/json reference decoder, and a prefix
// of the input is either rejected or itself a valid object.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range eventSeeds(f) {
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		checkDecodeEvent(t, data)
		if len(data) > 0 {
			checkDecodeEvent(t, data[:int(split)%len(data)])
		}
	})
}

var benchEvents = [][]byte{
	[]byte(`{"id":"evt-1","customer_id":"acme-000123","type":"login","time":"2026-11-20T10:00:00Z","value":1,"segment":"enterprise","attributes":{}}`),
	[]byte(`{"id":"evt-2","customer_id":"acme-004711","type":"feature_used","time":"2026-11-20T10:00:01.123Z","attributes":{"feature":"reports","plan":"pro"}}`),
	[]byte(`{"customer_id":"acme-000042","type":"nps_submitted","time":"2026-11-20T10:00:02Z","value":9}`),
}

func BenchmarkDecodeEvent(b *testing.B) {
	b.ReportAllocs()
	n := 0
	for _, e := range benchEvents {
		n += len(e)
	}
	b.SetBytes(int64(n / len(benchEvents)))
	for i := 0; b.Loop(); i++ {
		if _, err := DecodeEvent(benchEvents[i%len(benchEvents)]); err != nil {
			b.Fatal(err)
		}
	}
}
