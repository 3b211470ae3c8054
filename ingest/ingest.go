package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/healthscore/healthscore/scorer"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is what a Decoder reads of a Kafka record. Decode keeps no
// reference to it.
type Record struct {
	Topic   string
	Value   []byte
	Headers []Header
}

// Decoder decodes records of any configured format into events. It is safe
// for concurrent use.
type Decoder struct {
	def    *topicDecoder
	topics map[string]*topicDecoder
}

type topicDecoder struct {
	format Format
	ce     *mapping
	seg    *segmentMappings
}

// New validates cfg and compiles its mappings.
func New(cfg Config) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot use the input configuration: %w", err)
	}
	compile := func(t TopicConfig) *topicDecoder {
		t = t.withDefaults()
		ce, _ := compileCloudEvents(t.CloudEvents) // validated above
		seg, _ := compileSegment(t.Segment)
		return &topicDecoder{format: t.Format, ce: ce, seg: seg}
	}
	d := &Decoder{def: compile(cfg.Default)}
	for name, t := range cfg.Topics {
		if d.topics == nil {
			d.topics = make(map[string]*topicDecoder, len(cfg.Topics))
		}
		d.topics[name] = compile(t)
	}
	return d, nil
}

// Format returns the format configured for topic.
func (d *Decoder) Format(topic string) Format { return d.topic(topic).format }

func (d *Decoder) topic(name string) *topicDecoder {
	if t, ok := d.topics[name]; ok {
		return t
	}
	return d.def
}

// Names of the CloudEvents Kafka binding.
const (
	ceHeaderPrefix       = "ce_"
	headerContentType    = "content-type"
	mediaCloudEventsJSON = "application/cloudevents+json"
	mediaCloudEvents     = "application/cloudevents"
)

// Decode decodes one record with the format of its topic and returns the
// event and the format it was read in. The error, when not nil, is a
// *scorer.DecodeError. As with scorer.DecodeEvent, the event's time is
// unset (HasTime false) when the record names none.
func (d *Decoder) Decode(r Record) (scorer.Event, Format, error) {
	t := d.topic(r.Topic)
	switch t.format {
	case FormatNative:
		ev, err := scorer.DecodeEvent(r.Value)
		return ev, FormatNative, err
	case FormatCloudEvents:
		if _, ok := header(r.Headers, "ce_specversion"); ok {
			ev, err := t.binaryCloudEvent(r, "read as a CloudEvent in binary mode (the topic's format)")
			return ev, FormatCloudEvents, err
		}
		ev, err := t.structuredCloudEvent(r, nil, "read as a CloudEvent in structured mode (the topic's format)")
		return ev, FormatCloudEvents, err
	case FormatSegment:
		ev, err := t.segmentCall(r.Value, nil, "read as a Segment call (the topic's format)")
		return ev, FormatSegment, err
	}
	// Auto: the headers first, then the native decoder; a second look only
	// at records it refused.
	if _, ok := header(r.Headers, "ce_specversion"); ok {
		ev, err := t.binaryCloudEvent(r, "looks like a CloudEvent in binary mode (a ce_specversion header)")
		return ev, FormatCloudEvents, err
	}
	if ct, ok := header(r.Headers, headerContentType); ok && strings.HasPrefix(mediaType(string(ct)), mediaCloudEvents) {
		ev, err := t.structuredCloudEvent(r, nil, "looks like a CloudEvent in structured mode (content-type "+mediaType(string(ct))+")")
		return ev, FormatCloudEvents, err
	}
	ev, err := scorer.DecodeEvent(r.Value)
	if err == nil {
		return ev, FormatNative, nil
	}
	de, ok := scorer.AsDecodeError(err)
	if !ok || de.Reason == scorer.ReasonInvalidJSON || de.Reason == scorer.ReasonInvalidUTF8 {
		return ev, FormatNative, err
	}
	obj, isObject, _ := parseObject(r.Value)
	if _, ok := lookupIn(obj, []string{"customer_id"}); !isObject || ok {
		return scorer.Event{}, FormatNative, err // a native event with a bad field
	}
	if _, ok := lookupIn(obj, []string{"specversion"}); ok {
		ev, err := t.structuredCloudEvent(r, obj, "looks like a CloudEvent in structured mode (a specversion field)")
		return ev, FormatCloudEvents, err
	}
	var typ string
	if v, ok := lookupIn(obj, []string{"type"}); ok && json.Unmarshal(v, &typ) == nil && segmentCalls[typ] {
		ev, err := t.segmentCall(r.Value, obj, "looks like a Segment "+typ+" call")
		return ev, FormatSegment, err
	}
	return scorer.Event{}, FormatNative, err
}

// header returns the value of the first header named key (content-type in
// any case; the ce_ headers are lower case by the binding).
func header(hs []Header, key string) ([]byte, bool) {
	for i := range hs {
		if hs[i].Key == key || (key == headerContentType && strings.EqualFold(hs[i].Key, key)) {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// mediaType returns the lower-case media type of a content type, without
// parameters.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// isJSON reports whether a data content type is JSON: absent, application/
// json, text/json or any +json type.
func isJSON(mt string) bool {
	return mt == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// ---- CloudEvents

// ceSource reads a CloudEvent: attributes from the envelope (structured
// mode) or the ce_ headers (binary mode), data from the envelope's data (or
// data_base64) or the record value.
type ceSource struct {
	kind       string
	envelope   object   // structured mode
	headers    []Header // binary mode
	dataRaw    []byte   // the data's bytes, JSON when dataJSON
	hasData    bool
	dataType   string // media type of the data
	dataJSON   bool
	data       tree // dataRaw parsed, once dataParsed
	dataParsed bool
}

func (s *ceSource) get(r ref) (field, bool, error) {
	if !r.data {
		if s.envelope != nil {
			v, ok := lookupIn(s.envelope, []string{r.attr})
			return field{raw: v}, ok, nil
		}
		v, ok := header(s.headers, ceHeaderPrefix+r.attr)
		if !ok {
			return field{}, false, nil
		}
		if !utf8.Valid(v) {
			return field{}, false, failure(scorer.ReasonInvalidUTF8, r.text, s.kind, "its ce_%s header is not valid UTF-8", r.attr)
		}
		return field{text: string(v), isText: true}, true, nil
	}
	if !s.hasData {
		return field{}, false, nil
	}
	if !s.dataJSON {
		return field{}, false, failure(ReasonInvalidCloudEvent, r.text, s.kind, "its data is %s, not JSON, so %s cannot be read", s.dataType, r.text)
	}
	if len(r.keys) == 0 {
		v, ok := lookup(s.dataRaw, nil)
		return field{raw: v}, ok, nil
	}
	if !s.dataParsed {
		s.data.root, _, _ = parseObject(s.dataRaw) // not an object: every data.<field> is absent
		s.dataParsed = true
	}
	v, ok := s.data.get(r.keys)
	return field{raw: v}, ok, nil
}

// structuredCloudEvent reads a structured-mode CloudEvent; env, when not
// nil, is the record value already parsed.
func (t *topicDecoder) structuredCloudEvent(r Record, env object, kind string) (scorer.Event, error) {
	if ct, ok := header(r.Headers, headerContentType); ok {
		switch mt := mediaType(string(ct)); {
		case mt == "application/cloudevents-batch+json":
			return scorer.Event{}, failure(ReasonInvalidCloudEvent, "", kind, "batched mode (%s) is not read: produce one event per record", mt)
		case strings.HasPrefix(mt, mediaCloudEvents) && mt != mediaCloudEventsJSON:
			return scorer.Event{}, failure(ReasonInvalidCloudEvent, "", kind, "its event format %s is not read: only %s is", mt, mediaCloudEventsJSON)
		}
	}
	if env == nil {
		var err error
		if env, err = parseRecord(r.Value, kind, ReasonInvalidCloudEvent); err != nil {
			return scorer.Event{}, err
		}
	}
	s := &ceSource{kind: kind, envelope: env}
	sv, ok := lookupIn(env, []string{"specversion"})
	if !ok {
		return scorer.Event{}, failure(ReasonInvalidCloudEvent, "specversion", kind, "has no specversion (binary mode needs a ce_specversion header, structured mode a specversion field)")
	}
	if err := checkSpecVersion(field{raw: sv}, kind); err != nil {
		return scorer.Event{}, err
	}
	if v, ok := lookupIn(env, []string{"datacontenttype"}); ok {
		var ct string
		if json.Unmarshal(v, &ct) != nil {
			return scorer.Event{}, failure(scorer.ReasonInvalidField, "datacontenttype", kind, "its datacontenttype is not a string")
		}
		s.dataType = mediaType(ct)
	}
	s.dataJSON = isJSON(s.dataType)
	if b64, ok := lookupIn(env, []string{"data_base64"}); ok {
		var raw []byte // encoding/json decodes base64 into []byte
		if json.Unmarshal(b64, &raw) != nil {
			return scorer.Event{}, failure(ReasonInvalidCloudEvent, "data_base64", kind, "its data_base64 is not a base64 string")
		}
		if s.dataJSON && !json.Valid(raw) {
			return scorer.Event{}, failure(ReasonInvalidCloudEvent, "data_base64", kind, "its data_base64 is not JSON although its datacontenttype says so")
		}
		s.dataRaw, s.hasData = raw, true
	} else if v, ok := lookupIn(env, []string{"data"}); ok {
		s.dataRaw, s.hasData = v, true // with a non-JSON type, a JSON string holding the data: not read
	}
	return t.ce.event(s, kind)
}

func (t *topicDecoder) binaryCloudEvent(r Record, kind string) (scorer.Event, error) {
	s := &ceSource{kind: kind, headers: r.Headers}
	sv, _ := header(r.Headers, "ce_specversion")
	if err := checkSpecVersion(field{text: string(sv), isText: true}, kind); err != nil {
		return scorer.Event{}, err
	}
	if ct, ok := header(r.Headers, headerContentType); ok {
		if !utf8.Valid(ct) {
			return scorer.Event{}, failure(scorer.ReasonInvalidUTF8, "content-type", kind, "its content-type header is not valid UTF-8")
		}
		s.dataType = mediaType(string(ct))
	}
	s.dataJSON = isJSON(s.dataType)
	if len(r.Value) > 0 {
		s.dataRaw, s.hasData = r.Value, true
		if s.dataJSON {
			if !utf8.Valid(r.Value) {
				return scorer.Event{}, failure(scorer.ReasonInvalidUTF8, "data", kind, "its data (the record value) is not valid UTF-8")
			}
			if !json.Valid(r.Value) {
				return scorer.Event{}, failure(scorer.ReasonInvalidJSON, "data", kind, "its data (the record value) is not valid JSON")
			}
		}
	}
	return t.ce.event(s, kind)
}

func checkSpecVersion(f field, kind string) error {
	v := f.text
	if !f.isText && json.Unmarshal(f.raw, &v) != nil {
		return failure(ReasonInvalidCloudEvent, "specversion", kind, "its specversion is not a string")
	}
	if v != "1.0" {
		return failure(ReasonInvalidCloudEvent, "specversion", kind, "its specversion is %q; only 1.0 is read", v)
	}
	return nil
}

// parseRecord parses a record value that must be a JSON object; notObject
// is the reason when it is other JSON.
func parseRecord(value []byte, kind, notObject string) (object, error) {
	if !utf8.Valid(value) {
		return nil, failure(scorer.ReasonInvalidUTF8, "", kind, "the record is not valid UTF-8")
	}
	o, ok, err := parseObject(value)
	if err != nil {
		return nil, failure(scorer.ReasonInvalidJSON, "", kind, "is not valid JSON: %v", err)
	}
	if !ok {
		return nil, failure(notObject, "", kind, "is not a JSON object")
	}
	return o, nil
}

// ---- Segment

// segmentCalls are the types of the Segment spec's calls: detection knows
// them all, the decoder reads the first three.
var segmentCalls = map[string]bool{"track": true, "identify": true, "group": true, "page": true, "screen": true, "alias": true}

// segSource reads a Segment call.
type segSource struct{ call *tree }

func (s segSource) get(r ref) (field, bool, error) {
	v, ok := s.call.get(r.keys)
	return field{raw: v}, ok, nil
}

// segmentCall reads a Segment call; call, when not nil, is the record value
// already parsed.
func (t *topicDecoder) segmentCall(value []byte, call object, kind string) (scorer.Event, error) {
	if call == nil {
		var err error
		if call, err = parseRecord(value, kind, ReasonInvalidSegmentCall); err != nil {
			return scorer.Event{}, err
		}
	}
	var typ string
	if v, ok := lookupIn(call, []string{"type"}); ok {
		_ = json.Unmarshal(v, &typ)
	}
	var m *mapping
	switch typ {
	case "track":
		m = &t.seg.track
	case "identify":
		m = &t.seg.identify
	case "group":
		m = &t.seg.group
	case "page", "screen", "alias":
		return scorer.Event{}, failure(ReasonUnsupportedSegmentCall, "type", kind, "%s calls are not read: only track, identify and group are", typ)
	default:
		return scorer.Event{}, failure(ReasonInvalidSegmentCall, "type", kind, "its type is not track, identify or group")
	}
	if strings.HasPrefix(kind, "read as") {
		kind = "read as a Segment " + typ + " call (the topic's format)"
	}
	return m.event(segSource{&tree{root: call}}, kind)
}

// Reason codes of the formats read here, in the same list as scorer's
// (scorer.DecodeReasons).
const (
	ReasonInvalidCloudEvent      = scorer.ReasonInvalidCloudEvent
	ReasonInvalidSegmentCall     = scorer.ReasonInvalidSegmentCall
	ReasonUnsupportedSegmentCall = scorer.ReasonUnsupportedSegmentCall
)
