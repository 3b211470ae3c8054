package consumer

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func FuzzDecodeOutbox(f *testing.F) {
	f.Add(encodeOutbox([]*kgo.Record{
		{Topic: "customer-health", Key: []byte("acme"), Value: []byte(`{"specversion":"1.0"}`), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}},
		{Topic: "customer-health-alerts", Key: []byte("acme"), Value: []byte(`{}`)},
	}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeOutbox(b)
		if err != nil {
			return
		}
		again := encodeOutbox(recs)
		if len(recs) == 0 {
			return
		}
		recs2, err := decodeOutbox(again)
		if err != nil {
			t.Fatalf("re-encoded outbox does not decode: %v", err)
		}
		if !bytes.Equal(encodeOutbox(recs2), again) {
			t.Fatal("outbox does not round-trip")
		}
	})
}

func TestOutboxRoundTrip(t *testing.T) {
	in := []*kgo.Record{
		{Topic: "a", Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Topic: "b", Value: []byte("w")},
	}
	out, err := decodeOutbox(encodeOutbox(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Topic != "a" || string(out[0].Key) != "k" || string(out[0].Value) != "v" ||
		len(out[0].Headers) != 1 || out[0].Headers[0].Key != "h" || string(out[0].Headers[0].Value) != "x" ||
		out[1].Topic != "b" || len(out[1].Key) != 0 || string(out[1].Value) != "w" || len(out[1].Headers) != 0 {
		t.Fatalf("round trip changed the records: %+v %+v", out[0], out[1])
	}
	if _, err := decodeOutbox([]byte{2, 0}); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := decodeOutbox(append(encodeOutbox(in), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}
