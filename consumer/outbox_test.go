package consumer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// outboxChange is a change that calls for two outputs (a score change and a
// low alert) for customer "acme".
func outboxChange(t testing.TB) (*alerts.Encoder, *alerts.Change) {
	t.Helper()
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := scorer.DefaultModel()
	st := m.NewState()
	at := planT0.UnixNano()
	e := scorer.Event{ID: "e1", CustomerID: "acme", Type: "ticket_escalated", Time: at, HasTime: true, Value: 1}
	m.Apply(st, &e)
	c := &alerts.Change{CustomerID: "acme", Outcome: m.Step(st, at), Model: m, EventTime: at,
		Cause: alerts.Cause{EventID: "e1", Topic: "in", Partition: 2, Offset: 7}}
	if _, n := enc.Outputs(c); n != 2 {
		t.Fatalf("%d outputs, want a score change and an alert", n)
	}
	return enc, c
}

func sameRecords(t *testing.T, got, want []*kgo.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Topic != w.Topic || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d = %s %q %s, want %s %q %s", i, g.Topic, g.Key, g.Value, w.Topic, w.Key, w.Value)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d = %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

// The outbox writer makes the same records as the encoder and the same
// outbox bytes as encodeOutbox of them (the stored format is unchanged),
// with or without pending records of an earlier attempt, and its records
// alias the outbox rather than a copy.
func TestOutboxWriterMatchesEncoder(t *testing.T) {
	enc, c := outboxChange(t)
	pending := []*kgo.Record{{Topic: "t", Key: []byte("acme"), Value: []byte("left"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}}
	var ow outboxWriter
	for _, pend := range [][]*kgo.Record{nil, pending} {
		want := append(append([]*kgo.Record(nil), pend...), enc.AppendRecords(nil, c)...)
		b, got := ow.write(pend, enc, c)
		sameRecords(t, got, want)
		if !bytes.Equal(b, encodeOutbox(want)) {
			t.Fatalf("outbox with %d pending differs from encodeOutbox of the same records", len(pend))
		}
		decoded, err := decodeOutbox(b)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, decoded, want)
		for _, r := range got[len(pend):] {
			if !aliases(b, r.Key) || !aliases(b, r.Value) {
				t.Fatalf("record %s: key or value is not in the outbox", r.Topic)
			}
		}
	}
	if b, got := ow.write(pending, enc, nil); !bytes.Equal(b, encodeOutbox(pending)) || len(got) != 1 {
		t.Fatal("no change: the outbox is not the pending records'")
	}
	if b, got := ow.write(nil, enc, nil); b != nil || got != nil {
		t.Fatal("nothing to write made an outbox")
	}
}

// aliases reports whether p lies within b's array.
func aliases(b, p []byte) bool {
	if len(p) == 0 || cap(b) == 0 {
		return false
	}
	full := b[:cap(b)]
	for i := range full {
		if &full[i] == &p[0] {
			return i+len(p) <= len(b)
		}
	}
	return false
}

// A customer's outputs and their outbox take three allocations (the outbox
// holding the keys and values, the records, the slice of pointers to them)
// and one copy of the values, where the encoder's records and then their
// copy into the outbox took five (values and keys twice) before.
func TestOutboxWriterAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not stable under the race detector; scripts/test.sh runs this test without -race")
	}
	enc, c := outboxChange(t)
	var ow outboxWriter
	ow.write(nil, enc, c) // warm the scratch buffer up
	allocs := testing.AllocsPerRun(100, func() { ow.write(nil, enc, c) })
	if allocs > 3 {
		t.Errorf("outboxWriter.write allocates %v times per customer, want at most 3", allocs)
	}
}

func BenchmarkOutboxWriter(b *testing.B) {
	enc, c := outboxChange(b)
	var ow outboxWriter
	for b.Loop() {
		ow.write(nil, enc, c)
	}
}

// The encoding of the outbox the consumer used before the outbox writer:
// the encoder's records, then their copy into the outbox.
func BenchmarkOutboxEncodeRecords(b *testing.B) {
	enc, c := outboxChange(b)
	for b.Loop() {
		var fresh []*kgo.Record
		fresh = enc.AppendRecords(fresh, c)
		outputs := append([]*kgo.Record(nil), fresh...)
		encodeOutbox(outputs)
	}
}

// fakeStore is a Store for tests that never bind.
type fakeStore struct{}

func (fakeStore) Bind(context.Context) (state.Bound, error) { return nil, errors.New("no store") }

// Config.ProducerCompression: empty is the default, an unknown codec is
// refused before any client is made.
func TestProducerCompressionConfig(t *testing.T) {
	enc, _ := outboxChange(t)
	cfg := func(name string) *Config {
		return &Config{Brokers: []string{"127.0.0.1:1"}, Model: scorer.DefaultModel(), Store: fakeStore{}, Encoder: enc,
			Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(), ProducerCompression: name}
	}
	c := cfg("")
	if err := c.validate(); err != nil || c.ProducerCompression != DefaultProducerCompression || len(c.compression) != 2 {
		t.Fatalf("default: %v, %q, %d codecs", err, c.ProducerCompression, len(c.compression))
	}
	for _, name := range ProducerCompressions {
		if err := cfg(name).validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := cfg("gzip").validate(); err == nil || !strings.Contains(err.Error(), `"gzip"`) {
		t.Errorf("gzip: %v, want an error naming it", err)
	}
}
