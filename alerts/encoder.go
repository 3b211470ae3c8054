package alerts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

// CloudEvents types of the output events.
const (
	TypeScoreChanged = "health.score_changed" // on Config.ScoreTopic
	TypeLow          = "health.low"           // on Config.AlertTopic: entered red
	TypeRecovered    = "health.recovered"     // on Config.AlertTopic: left red
	TypeDropped      = "health.dropped"       // on Config.AlertTopic: fell below its baseline
)

// Labels TypeOf returns for records that are not output events.
const (
	LabelDeadLetter = "dead_letter"
	LabelUnknown    = "unknown"
)

// The content-type header of every output record (structured-mode
// CloudEvents, Kafka protocol binding).
const (
	HeaderContentType = "content-type"
	ContentType       = "application/cloudevents+json"
)

// Cause identifies the input record that caused an output: the latest-time
// event of the customer in the batch; or, with Decay, the sweeper's
// evaluation of a customer whose score moved with time alone.
type Cause struct {
	EventID   string // the input event's "id"; may be empty
	Topic     string
	Partition int32
	Offset    int64

	Decay  bool  // a decay-driven evaluation: the fields above are unset
	Reload bool  // a rescoring after a model reload: likewise
	At     int64 // with Decay or Reload: the evaluation instant, Unix ns
}

// Change is one customer's evaluation outcome to publish.
type Change struct {
	CustomerID string
	Outcome    scorer.Outcome // from (*scorer.Model).Step
	Model      *scorer.Model  // for its name and version
	EventTime  int64          // Unix ns of the latest event (the evaluation instant)
	Cause      Cause
}

// Encoder turns changes into Kafka records. It is immutable and safe for
// concurrent use.
type Encoder struct {
	cfg     Config
	source  []byte             // the JSON-encoded source
	headers []kgo.RecordHeader // shared by every output record; read-only
}

// NewEncoder validates cfg (filling in defaults) and returns an Encoder.
func NewEncoder(cfg Config) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create alerts encoder: %w", err)
	}
	h := []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(ContentType)}}
	return &Encoder{cfg: cfg, source: appendString(nil, cfg.Source), headers: h[:1:1]}, nil
}

// Config returns the validated configuration, with defaults filled in.
func (e *Encoder) Config() Config { return e.cfg }

// scratchPool holds AppendRecords' buffers for the values of one call.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Output is one record a Change calls for, before encoding.
type Output struct {
	Type  string // one of the Type* constants
	Topic string // Config.ScoreTopic or Config.AlertTopic
}

// Outputs returns the records c calls for, n of them (at most 3), in the
// order AppendRecords appends them (see there). With AppendValue and Headers
// it lets a caller write the records' values into memory of its own (the
// consumer writes them straight into its outbox) instead of into the
// allocation AppendRecords makes.
func (e *Encoder) Outputs(c *Change) (outs [3]Output, n int) {
	o := &c.Outcome
	if !o.Eval.HasScore {
		return outs, 0
	}
	if o.Changed {
		outs[n] = Output{TypeScoreChanged, e.cfg.ScoreTopic}
		n++
	}
	switch o.Alert {
	case scorer.AlertLow:
		outs[n] = Output{TypeLow, e.cfg.AlertTopic}
		n++
	case scorer.AlertRecovered:
		outs[n] = Output{TypeRecovered, e.cfg.AlertTopic}
		n++
	}
	if o.Dropped {
		outs[n] = Output{TypeDropped, e.cfg.AlertTopic}
		n++
	}
	return outs, n
}

// AppendValue appends to b the value of c's record of type typ (one of
// Outputs' types): the structured-mode CloudEvent JSON. It allocates only to
// grow b.
func (e *Encoder) AppendValue(b []byte, typ string, c *Change) []byte {
	var hin [256]byte // the id's hash input, on the stack unless the customer id is long
	return e.appendEvent(b, hin[:0], typ, c)
}

// Headers returns the headers of every output record: one read-only slice
// shared by all of them; do not modify it.
func (e *Encoder) Headers() []kgo.RecordHeader { return e.headers }

// AppendRecords appends the records c calls for to dst and returns it: a
// TypeScoreChanged event on the score topic when c.Outcome.Changed, a
// TypeLow or TypeRecovered event on the alert topic per c.Outcome.Alert,
// and a TypeDropped event on the alert topic when c.Outcome.Dropped, in that
// order. Nothing is appended when the evaluation has no score.
//
// Each record has Topic set, Key = customer_id, Value = the CloudEvent JSON
// and one header, content-type: application/cloudevents+json. Partition and
// Timestamp are left to the producer. The records of one call share one
// allocation for their keys and values, and every record shares one
// read-only Headers slice: do not modify them in place.
func (e *Encoder) AppendRecords(dst []*kgo.Record, c *Change) []*kgo.Record {
	outs, n := e.Outputs(c)
	if n == 0 {
		return dst
	}
	s := scratchPool.Get().(*[]byte)
	buf := (*s)[:0]
	var ends [3]int
	for i := range n {
		buf = e.AppendValue(buf, outs[i].Type, c)
		ends[i] = len(buf)
	}
	k := len(c.CustomerID)
	mem := make([]byte, k+len(buf))
	copy(mem, c.CustomerID)
	copy(mem[k:], buf)
	if cap(buf) <= 64<<10 { // do not keep huge buffers alive
		*s = buf
	}
	scratchPool.Put(s)

	recs := make([]kgo.Record, n)
	key := mem[:k:k]
	start := k
	for i := range n {
		end := k + ends[i]
		recs[i] = kgo.Record{Topic: outs[i].Topic, Key: key, Value: mem[start:end:end], Headers: e.headers}
		dst = append(dst, &recs[i])
		start = end
	}
	return dst
}

// appendEvent writes one structured-mode CloudEvent; hin is scratch space
// for the id's hash input.
func (e *Encoder) appendEvent(b, hin []byte, typ string, c *Change) []byte {
	o := &c.Outcome
	ev := &o.Eval
	b = append(b, `{"specversion":"1.0","type":"`...)
	b = append(b, typ...) // constant, no escaping needed
	b = append(b, `","source":`...)
	b = append(b, e.source...)
	b = append(b, `,"id":"`...)
	sum := sha256.Sum256(appendIDInput(hin, typ, c.CustomerID, &c.Cause))
	b = hex.AppendEncode(b, sum[:16])
	b = append(b, `","subject":`...)
	b = appendString(b, c.CustomerID)
	b = append(b, `,"time":"`...)
	b = appendTime(b, c.EventTime)
	b = append(b, `","datacontenttype":"application/json","data":{"customer_id":`...)
	b = appendString(b, c.CustomerID)
	b = append(b, `,"score":`...)
	b = appendRound2(b, ev.Score)
	b = append(b, `,"previous_score":`...)
	if o.HadPrevious {
		b = appendRound2(b, o.PrevScore)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"band":"`...)
	b = append(b, ev.Band.String()...) // a fixed lower-case word
	b = append(b, `","previous_band":`...)
	if o.PrevBand != scorer.BandNone {
		b = append(b, '"')
		b = append(b, o.PrevBand.String()...)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"segment":`...)
	b = appendString(b, ev.Segment)
	b = append(b, `,"model":`...)
	if c.Model != nil {
		b = append(b, `{"name":`...)
		b = appendString(b, c.Model.Name)
		b = append(b, `,"version":`...)
		b = appendString(b, c.Model.Version)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"event_time":"`...)
	b = appendTime(b, c.EventTime)
	b = append(b, `","cause":{`...)
	switch {
	case c.Cause.Decay:
		b = append(b, `"decay":true,"at":"`...)
		b = appendTime(b, c.Cause.At)
		b = append(b, `"`...)
	case c.Cause.Reload:
		b = append(b, `"model_reload":true,"at":"`...)
		b = appendTime(b, c.Cause.At)
		b = append(b, `"`...)
	default:
		b = appendEventCause(b, &c.Cause)
	}
	b = append(b, '}')
	if ov := ev.Override; ov != nil {
		b = append(b, `,"overridden":{"value":`...)
		b = appendRound2(b, ov.Value)
		b = append(b, `,"by":`...)
		b = appendString(b, ov.By)
		b = append(b, `,"reason":`...)
		b = appendString(b, ov.Reason)
		b = append(b, `,"expires_at":`...)
		if ov.Expires != scorer.NoExpiry {
			b = append(b, '"')
			b = appendTime(b, ov.Expires)
			b = append(b, '"')
		} else {
			b = append(b, "null"...)
		}
		b = append(b, '}')
	}
	if typ == TypeDropped {
		b = append(b, `,"baseline":`...)
		b = appendRound2(b, o.Baseline)
		b = append(b, `,"drop":`...)
		b = appendRound2(b, o.Baseline-ev.Score)
		b = append(b, `,"cooldown_until":"`...)
		b = appendTime(b, o.CooldownUntil)
		b = append(b, '"')
	}
	b = append(b, `,"drivers":[`...)
	for i := range o.Drivers {
		d := &o.Drivers[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"category":`...)
		b = appendString(b, d.Category)
		b = append(b, `,"signal":`...)
		b = appendString(b, d.Signal)
		b = append(b, `,"points":`...)
		b = appendRound2(b, d.Points)
		b = append(b, '}')
	}
	b = append(b, ']')
	if typ == TypeScoreChanged {
		b = append(b, `,"categories":[`...)
		for i := range ev.Categories {
			cs := &ev.Categories[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, cs.Name)
			b = append(b, `,"score":`...)
			if cs.HasData {
				b = appendRound2(b, 100*cs.Score)
			} else {
				b = append(b, "null"...)
			}
			b = append(b, `,"weight":`...)
			b = appendFloat(b, cs.Weight)
			b = append(b, `,"points":`...)
			b = appendRound2(b, cs.Points)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, "}}"...)
}

func appendTime(b []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(b, time.RFC3339Nano)
}

// EventID returns the CloudEvents id of the event of type typ for customer
// customerID caused by the input record cause: the lower-case hex of the
// first 16 bytes (128 bits) of the SHA-256 of
//
//	type NUL topic NUL partition NUL offset NUL customer_id
//
// with partition and offset in decimal. Only the customer id may contain a
// NUL byte and it comes last, so the input is unambiguous. A decay cause
// hashes type NUL NUL "decay" NUL at NUL customer_id instead (at in Unix ns;
// Kafka topics are never empty), a reload cause the same with "reload". The cause's
// EventID is not part of it: the Kafka coordinates identify the input.
func EventID(typ, customerID string, cause Cause) string {
	sum := sha256.Sum256(appendIDInput(nil, typ, customerID, &cause))
	return hex.EncodeToString(sum[:16])
}

func appendIDInput(b []byte, typ, customerID string, c *Cause) []byte {
	b = append(b, typ...)
	b = append(b, 0)
	if c.Decay || c.Reload { // an empty topic, which no Kafka record has, marks these
		kind := "decay"
		if c.Reload {
			kind = "reload"
		}
		b = append(b, 0)
		b = append(b, kind...)
		b = append(b, 0)
		b = strconv.AppendInt(b, c.At, 10)
		b = append(b, 0)
		return append(b, customerID...)
	}
	b = append(b, c.Topic...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(c.Partition), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, c.Offset, 10)
	b = append(b, 0)
	return append(b, customerID...)
}

// typePrefix is how every output event starts; TypeOf relies on it.
const typePrefix = `{"specversion":"1.0","type":"`

// TypeOf returns the CloudEvents type of an output record made by an
// Encoder (one of the Type* constants), LabelDeadLetter for a dead letter,
// or LabelUnknown. It reads only the start of the value, so it is cheap
// enough for a metric label, and its result has a fixed small set of values.
func TypeOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == HeaderDLQReason {
			return LabelDeadLetter // even when the copied value looks like an event
		}
	}
	if v := r.Value; bytes.HasPrefix(v, []byte(typePrefix)) {
		v = v[len(typePrefix):]
		for _, t := range [...]string{TypeScoreChanged, TypeLow, TypeRecovered, TypeDropped} {
			if len(v) > len(t) && string(v[:len(t)]) == t && v[len(t)] == '"' {
				return t
			}
		}
	}
	return LabelUnknown
}

// appendEventCause writes the fields of an event cause.
func appendEventCause(b []byte, c *Cause) []byte {
	if c.EventID != "" {
		b = append(b, `"event_id":`...)
		b = appendString(b, c.EventID)
		b = append(b, ',')
	}
	b = append(b, `"topic":`...)
	b = appendString(b, c.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(c.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, c.Offset, 10)
	return b
}
