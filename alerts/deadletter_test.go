package alerts

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

func header(r *kgo.Record, key string) (string, int) {
	var v string
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			v = string(h.Value)
			n++
		}
	}
	return v, n
}

var dlqHeaders = []string{HeaderDLQReason, HeaderDLQDetail, HeaderDLQSourceTopic, HeaderDLQSourcePartition, HeaderDLQSourceOffset, HeaderDLQSourceTimestamp}

func TestDeadLetter(t *testing.T) {
	e := newEncoder(t)
	src := &kgo.Record{
		Topic: "customer-events", Partition: 7, Offset: 12345,
		Key:       []byte("acme\xff"),
		Value:     []byte("{\"customer_id\": \"acme\", \x00 not json"),
		Timestamp: time.Date(2026, 11, 20, 10, 0, 0, 5_000_000, time.FixedZone("CET", 3600)),
		Headers: []kgo.RecordHeader{
			{Key: "traceparent", Value: []byte("00-abc-def-01")},
			{Key: HeaderDLQReason, Value: []byte("stale")}, // from an earlier dead-lettering
		},
	}
	keyCopy, valueCopy := bytes.Clone(src.Key), bytes.Clone(src.Value)
	r := e.DeadLetter(src, scorer.ReasonInvalidJSON, "invalid_json: want ':' after object key at byte 25")
	if r.Topic != "customer-events-dlq" {
		t.Errorf("topic = %q", r.Topic)
	}
	if !bytes.Equal(r.Key, keyCopy) || !bytes.Equal(r.Value, valueCopy) {
		t.Errorf("key/value changed: %q %q", r.Key, r.Value)
	}
	if !bytes.Equal(src.Key, keyCopy) || !bytes.Equal(src.Value, valueCopy) || len(src.Headers) != 2 {
		t.Error("DeadLetter modified its source record")
	}
	if r.Partition != 0 || !r.Timestamp.IsZero() {
		t.Errorf("partition %d timestamp %v: want them left to the producer", r.Partition, r.Timestamp)
	}
	want := map[string]string{
		HeaderDLQReason:          "invalid_json",
		HeaderDLQDetail:          "invalid_json: want ':' after object key at byte 25",
		HeaderDLQSourceTopic:     "customer-events",
		HeaderDLQSourcePartition: "7",
		HeaderDLQSourceOffset:    "12345",
		HeaderDLQSourceTimestamp: "2026-11-20T09:00:00.005Z",
		"traceparent":            "00-abc-def-01",
	}
	for k, v := range want {
		got, n := header(r, k)
		if n != 1 || got != v {
			t.Errorf("header %s = %q (%d times), want %q once", k, got, n, v)
		}
	}
	if len(r.Headers) != len(want) {
		t.Errorf("headers = %v", r.Headers)
	}
	if TypeOf(r) != LabelDeadLetter {
		t.Errorf("TypeOf = %q", TypeOf(r))
	}

	// Nil key and value stay nil (null in Kafka); no timestamp gives an
	// empty header; long details are cut at a rune boundary.
	long := strings.Repeat("é", MaxDLQDetail)
	r = e.DeadLetter(&kgo.Record{Topic: "t"}, "too_large", long)
	if r.Key != nil || r.Value != nil {
		t.Errorf("nil key/value became %q/%q", r.Key, r.Value)
	}
	for _, k := range dlqHeaders {
		if _, n := header(r, k); n != 1 {
			t.Errorf("header %s present %d times", k, n)
		}
	}
	if ts, _ := header(r, HeaderDLQSourceTimestamp); ts != "" {
		t.Errorf("timestamp header %q for a record without one", ts)
	}
	d, _ := header(r, HeaderDLQDetail)
	if len(d) > MaxDLQDetail || !utf8.ValidString(d) || !strings.HasSuffix(d, "…") {
		t.Errorf("long detail: %d bytes, valid %v", len(d), utf8.ValidString(d))
	}
}
