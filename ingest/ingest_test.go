package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

func mustDecoder(t testing.TB, cfg Config) *Decoder {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func at(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

func hdrs(kv ...string) []Header {
	var hs []Header
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

// binaryHeaders are the ce_ headers of a binary-mode CloudEvent.
func binaryHeaders(extra ...string) []Header {
	return hdrs(append([]string{"ce_specversion", "1.0", "ce_id", "e-1", "ce_source", "/app", "ce_type", "login",
		"ce_subject", "acme", "ce_time", "2026-11-20T10:00:00Z", "content-type", "application/json"}, extra...)...)
}

// TestDecodeAuto: each format is detected and folds into the same event.
func TestDecodeAuto(t *testing.T) {
	d := mustDecoder(t, Config{})
	want := scorer.Event{ID: "e-1", CustomerID: "acme", Type: "login", Time: at("2026-11-20T10:00:00Z"), HasTime: true, Value: 2, Segment: "enterprise"}
	for _, tc := range []struct {
		name   string
		rec    Record
		format Format
		want   scorer.Event
	}{
		{"native", Record{Value: []byte(`{"id":"e-1","customer_id":"acme","type":"login","time":"2026-11-20T10:00:00Z","value":2,"segment":"enterprise"}`)}, FormatNative, want},
		{"cloudevents structured, by content-type", Record{
			Value:   []byte(`{"specversion":"1.0","id":"e-1","source":"/app","type":"login","subject":"acme","time":"2026-11-20T10:00:00Z","data":{"value":2,"segment":"enterprise"}}`),
			Headers: hdrs("content-type", "application/cloudevents+json; charset=UTF-8"),
		}, FormatCloudEvents, want},
		{"cloudevents structured, by specversion", Record{
			Value: []byte(`{"specversion":"1.0","id":"e-1","source":"/app","type":"login","subject":"acme","time":"2026-11-20T10:00:00Z","datacontenttype":"application/json","data":{"value":2,"segment":"enterprise"}}`),
		}, FormatCloudEvents, want},
		{"cloudevents structured, data_base64", Record{
			Value: []byte(`{"specversion":"1.0","id":"e-1","source":"/app","type":"login","subject":"acme","time":"2026-11-20T10:00:00Z","data_base64":"eyJ2YWx1ZSI6Miwic2VnbWVudCI6ImVudGVycHJpc2UifQ=="}`),
		}, FormatCloudEvents, want},
		{"cloudevents binary", Record{Value: []byte(`{"value":2,"segment":"enterprise"}`), Headers: binaryHeaders()}, FormatCloudEvents, want},
		{"cloudevents binary, no data", Record{Headers: binaryHeaders()}, FormatCloudEvents,
			scorer.Event{ID: "e-1", CustomerID: "acme", Type: "login", Time: at("2026-11-20T10:00:00Z"), HasTime: true, Value: 1}},
		{"segment track by groupId", Record{Value: []byte(`{"type":"track","event":"login","messageId":"e-1","userId":"u-9","groupId":"acme","timestamp":"2026-11-20T10:00:00Z","properties":{"value":2}}`)}, FormatSegment,
			scorer.Event{ID: "e-1", CustomerID: "acme", Type: "login", Time: at("2026-11-20T10:00:00Z"), HasTime: true, Value: 2}},
		{"segment track by context.groupId", Record{Value: []byte(`{"type":"track","event":"login","userId":"u-9","context":{"groupId":"acme"}}`)}, FormatSegment,
			scorer.Event{CustomerID: "acme", Type: "login", Value: 1}},
		{"segment track by userId", Record{Value: []byte(`{"type":"track","event":"login","userId":"acme","groupId":null}`)}, FormatSegment,
			scorer.Event{CustomerID: "acme", Type: "login", Value: 1}},
		{"segment identify", Record{Value: []byte(`{"type":"identify","userId":"acme","traits":{"segment":"enterprise","email":"a@example.com"}}`)}, FormatSegment,
			scorer.Event{CustomerID: "acme", Type: SegmentIdentifyType, Value: 1, Segment: "enterprise"}},
		{"segment group", Record{Value: []byte(`{"type":"group","userId":"u-9","groupId":"acme","traits":{"segment":"enterprise"},"timestamp":"2026-11-20T10:00:00Z"}`)}, FormatSegment,
			scorer.Event{CustomerID: "acme", Type: SegmentGroupType, Value: 1, Segment: "enterprise", Time: at("2026-11-20T10:00:00Z"), HasTime: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, f, err := d.Decode(tc.rec)
			if err != nil || f != tc.format || ev != tc.want {
				t.Errorf("got %+v, %s, %v\nwant %+v, %s", ev, f, err, tc.want, tc.format)
			}
		})
	}
}

// TestDecodeErrors: a record that looks like a format but is not a usable
// one gets a reason, the path of the field, and a detail naming the format
// and what is missing.
func TestDecodeErrors(t *testing.T) {
	d := mustDecoder(t, Config{})
	for _, tc := range []struct {
		name   string
		rec    Record
		reason string
		field  string
		detail string
	}{
		{"native bad JSON stays native", Record{Value: []byte(`{"customer_id":`)}, scorer.ReasonInvalidJSON, "", ""},
		{"native without customer", Record{Value: []byte(`{"type":"login"}`)}, scorer.ReasonMissingCustomerID, "customer_id", "is required"},
		{"native with a bad field and type track", Record{Value: []byte(`{"customer_id":"a","type":"track","time":"yesterday"}`)}, scorer.ReasonInvalidTime, "time", "RFC 3339"},
		{"segment track without account", Record{Value: []byte(`{"type":"track","event":"login","anonymousId":"x"}`)}, scorer.ReasonMissingCustomerID, "groupId",
			"looks like a Segment track call but has no groupId, context.groupId or userId"},
		{"segment track without event", Record{Value: []byte(`{"type":"track","userId":"acme"}`)}, scorer.ReasonMissingType, "event", "looks like a Segment track call but has no event"},
		{"segment page", Record{Value: []byte(`{"type":"page","userId":"acme","name":"Home"}`)}, ReasonUnsupportedSegmentCall, "type", "page calls are not read"},
		{"segment value not a number", Record{Value: []byte(`{"type":"track","event":"x","userId":"acme","properties":{"value":"3"}}`)}, scorer.ReasonInvalidValue, "properties.value", "is not a number"},
		{"segment bad timestamp", Record{Value: []byte(`{"type":"track","event":"x","userId":"acme","timestamp":"2026-11-20 10:00"}`)}, scorer.ReasonInvalidTime, "timestamp", "not RFC 3339"},
		{"segment userId not a string", Record{Value: []byte(`{"type":"identify","userId":42}`)}, scorer.ReasonInvalidField, "userId", "is not a string"},
		{"segment override refused", Record{Value: []byte(`{"type":"track","event":"health.override","userId":"acme","properties":{"value":50}}`)}, scorer.ReasonInvalidField, "event", "only in the native format"},
		{"ce structured without subject", Record{Value: []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"login"}`)}, scorer.ReasonMissingCustomerID, "subject",
			"looks like a CloudEvent in structured mode (a specversion field) but has no subject"},
		{"ce structured old version", Record{Value: []byte(`{"specversion":"0.3","subject":"a","type":"login"}`)}, ReasonInvalidCloudEvent, "specversion", `specversion is "0.3"`},
		{"ce structured no type", Record{Value: []byte(`{"specversion":"1.0","subject":"a"}`)}, scorer.ReasonMissingType, "type", "has no type"},
		{"ce structured not JSON", Record{Value: []byte(`nope`), Headers: hdrs("Content-Type", "application/cloudevents+json")}, scorer.ReasonInvalidJSON, "", "looks like a CloudEvent in structured mode (content-type application/cloudevents+json) but is not valid JSON"},
		{"ce structured avro", Record{Value: []byte(`x`), Headers: hdrs("content-type", "application/cloudevents+avro")}, ReasonInvalidCloudEvent, "", "event format application/cloudevents+avro is not read"},
		{"ce batch", Record{Value: []byte(`[]`), Headers: hdrs("content-type", "application/cloudevents-batch+json")}, ReasonInvalidCloudEvent, "", "batched mode"},
		{"ce structured xml data", Record{Value: []byte(`{"specversion":"1.0","subject":"a","type":"t","datacontenttype":"application/xml","data":"<v/>"}`)}, ReasonInvalidCloudEvent, "data.value", "its data is application/xml, not JSON"},
		{"ce binary without subject", Record{Headers: hdrs("ce_specversion", "1.0", "ce_type", "login")}, scorer.ReasonMissingCustomerID, "subject", "looks like a CloudEvent in binary mode (a ce_specversion header) but has no subject"},
		{"ce binary bad json data", Record{Value: []byte(`{"value":`), Headers: binaryHeaders()}, scorer.ReasonInvalidJSON, "data", "not valid JSON"},
		{"ce binary bad version", Record{Headers: hdrs("ce_specversion", "2.0")}, ReasonInvalidCloudEvent, "specversion", "only 1.0 is read"},
		{"ce binary time out of range", Record{Headers: hdrs("ce_specversion", "1.0", "ce_type", "login", "ce_subject", "a", "ce_time", "3000-01-01T00:00:00Z")}, scorer.ReasonInvalidTime, "time", "year 3000"},
		{"ce binary long subject", Record{Headers: hdrs("ce_specversion", "1.0", "ce_type", "login", "ce_subject", strings.Repeat("x", 300))}, scorer.ReasonInvalidCustomerID, "subject", "300 bytes"},
		{"ce binary data not utf8", Record{Value: []byte("{\"value\":\"\xff\"}"), Headers: binaryHeaders()}, scorer.ReasonInvalidUTF8, "data", "not valid UTF-8"},
		{"ce override refused", Record{Headers: hdrs("ce_specversion", "1.0", "ce_type", scorer.TypeOverride, "ce_subject", "a")}, scorer.ReasonInvalidField, "type", "manual overrides are read only in the native format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, _, err := d.Decode(tc.rec)
			de, ok := scorer.AsDecodeError(err)
			if !ok {
				t.Fatalf("%+v, %v; want a DecodeError", ev, err)
			}
			if de.Reason != tc.reason || de.Field != tc.field || !strings.Contains(de.Detail, tc.detail) {
				t.Errorf("got %s / %q / %q\nwant %s / %q / …%q…", de.Reason, de.Field, de.Detail, tc.reason, tc.field, tc.detail)
			}
			if ev != (scorer.Event{}) {
				t.Errorf("an error came with an event: %+v", ev)
			}
		})
	}
}

// TestConfiguredFormats: a topic's format is used without detection, and
// its mapping reads elsewhere.
func TestConfiguredFormats(t *testing.T) {
	cfg, err := ParseConfig("input.yaml", []byte(`
format: native
cloudevents:
  customer: [customerid, data.account.id]
  value: amount
  types: {com.example.login: login}
  segment: plan
segment:
  customer: context.groupId
  track_segment: properties.plan
  value: ""
topics:
  ce-events: {format: cloudevents}
  seg-events:
    format: segment
    segment: {time: sentAt}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := mustDecoder(t, cfg)
	for _, tc := range []struct {
		name string
		rec  Record
		want scorer.Event
		err  string
	}{
		{"native topic takes no CloudEvent", Record{Topic: "other", Value: []byte(`{"specversion":"1.0","subject":"a","type":"login"}`)}, scorer.Event{}, scorer.ReasonMissingCustomerID},
		{"extension attribute", Record{Topic: "ce-events", Headers: hdrs("ce_specversion", "1.0", "ce_type", "com.example.login", "ce_customerid", "acme", "ce_amount", " 3.5", "ce_plan", "smb")},
			scorer.Event{CustomerID: "acme", Type: "login", Value: 3.5, Segment: "smb"}, ""},
		{"value from an attribute", Record{Topic: "ce-events", Headers: hdrs("ce_specversion", "1.0", "ce_type", "x", "ce_customerid", "acme", "ce_amount", "NaN")},
			scorer.Event{}, scorer.ReasonInvalidValue},
		{"second customer path", Record{Topic: "ce-events", Value: []byte(`{"specversion":"1.0","type":"x","amount":2,"data":{"account":{"id":"acme"}}}`)},
			scorer.Event{CustomerID: "acme", Type: "x", Value: 2}, ""},
		{"structured without specversion", Record{Topic: "ce-events", Value: []byte(`{"customer_id":"a","type":"login"}`)}, scorer.Event{}, ReasonInvalidCloudEvent},
		{"segment mapping", Record{Topic: "seg-events", Value: []byte(`{"type":"track","event":"login","groupId":"nope","context":{"groupId":"acme"},"sentAt":"2026-11-20T10:00:00Z","properties":{"value":5,"plan":"smb"}}`)},
			scorer.Event{CustomerID: "acme", Type: "login", Value: 1, Segment: "smb", Time: at("2026-11-20T10:00:00Z"), HasTime: true}, ""},
		{"segment topic refuses native", Record{Topic: "seg-events", Value: []byte(`{"customer_id":"a","type":"login"}`)}, scorer.Event{}, ReasonInvalidSegmentCall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, _, err := d.Decode(tc.rec)
			if tc.err != "" {
				de, ok := scorer.AsDecodeError(err)
				if !ok || de.Reason != tc.err {
					t.Fatalf("%v; want %s", err, tc.err)
				}
				return
			}
			if err != nil || ev != tc.want {
				t.Errorf("got %+v, %v; want %+v", ev, err, tc.want)
			}
		})
	}
	if d.Format("seg-events") != FormatSegment || d.Format("x") != FormatNative {
		t.Errorf("formats: %s, %s", d.Format("seg-events"), d.Format("x"))
	}
}

// TestConfigErrors: each mistake is named with where it is and what to
// write instead.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"format: json\n", `format: "json" is not a format; use one of auto, native, cloudevents, segment`},
		{"topics:\n  a: {format: xml}\n", `topics.a.format: "xml" is not a format`},
		{"cloudevents:\n  customer: subject.id\n", "cloudevents.customer: \"subject.id\": a CloudEvents attribute has no fields"},
		{"cloudevents:\n  type: Type\n", `cloudevents.type: "Type" is not a CloudEvents attribute name`},
		{"cloudevents:\n  customer: []\n", "cloudevents.customer: required"},
		{"segment:\n  type: \"\"\n", "segment.type: required"},
		{"segment:\n  value: properties..value\n", `segment.value: "properties..value" is not a field path`},
		{"segment:\n  types: {Signed In: \"\"}\n", "segment.types"},
		{"segment:\n  customer: {a: b}\n", "customer: want a field path or a list"},
		{"formt: auto\n", "input.yaml:1:"},
	} {
		_, err := ParseConfig("input.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want …%s…", tc.yaml, err, tc.want)
		}
	}
	c := Config{Topics: map[string]TopicConfig{"events": {}, "evnets": {}}}
	if err := c.CheckTopics([]string{"events"}); err == nil || !strings.Contains(err.Error(), "evnets") || strings.Contains(err.Error(), "events,") {
		t.Errorf("CheckTopics: %v", err)
	}
	if _, err := ParseFormat("cloudevent"); err == nil || !strings.Contains(err.Error(), "use one of") {
		t.Errorf("ParseFormat: %v", err)
	}
	if _, err := New(Config{Default: TopicConfig{Format: "x"}}); err == nil {
		t.Error("New accepted an unknown format")
	}
}

// TestConfigInherits: a topic's block changes only the fields it names; an
// empty string turns an optional field off.
func TestConfigInherits(t *testing.T) {
	cfg, err := ParseConfig("f", []byte("segment:\n  id: \"\"\n  time: originalTimestamp\ntopics:\n  t:\n    segment: {time: sentAt}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Topics["t"].Segment
	want := DefaultSegment()
	want.ID, want.Time = "", "sentAt"
	if got.ID != want.ID || got.Time != want.Time || got.Type != "event" || len(got.Customer) != 3 || cfg.Default.Segment.Time != "originalTimestamp" {
		t.Errorf("topic t: %+v\ndefault: %+v", got, cfg.Default.Segment)
	}
	if cfg.Default.Format != FormatAuto {
		t.Errorf("default format %q", cfg.Default.Format)
	}
}
