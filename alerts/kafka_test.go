package alerts

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/internal/testenv"
)

// TestKafkaWireForm produces encoded records to a broker and reads them back
// with a plain consumer: the wire form is what downstream consumers see.
func TestKafkaWireForm(t *testing.T) {
	suffix := fmt.Sprintf("-%d", time.Now().UnixNano()) // unique on shared external brokers
	cfg := Config{ScoreTopic: "customer-health" + suffix, AlertTopic: "customer-health-alerts" + suffix, DLQTopic: "customer-events-dlq" + suffix}
	e, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	brokers := testenv.Kafka(t, map[string]int32{cfg.ScoreTopic: 3, cfg.AlertTopic: 3, cfg.DLQTopic: 1})

	c := newStory("acme \"quoted\" \u2028", "").step(t0, "ticket_escalated")
	recs := e.AppendRecords(nil, c)
	bad := &kgo.Record{Topic: "customer-events", Partition: 2, Offset: 9, Key: []byte("k"), Value: []byte("{not json"),
		Timestamp: time.UnixMilli(1_790_000_000_000), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	recs = append(recs, e.DeadLetter(bad, "invalid_json", "want a JSON object at byte 0"))
	want := make(map[string]*kgo.Record)
	for _, r := range recs {
		want[r.Topic] = r
	}
	if len(want) != 3 {
		t.Fatalf("want one record per topic, got %d records on %d topics", len(recs), len(want))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("cannot produce: %v", err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(cfg.ScoreTopic, cfg.AlertTopic, cfg.DLQTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := make(map[string]*kgo.Record)
	for len(got) < len(want) {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(got), len(want), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if got[r.Topic] != nil {
				t.Errorf("second record on %s", r.Topic)
			}
			got[r.Topic] = r
		})
	}
	for topic, w := range want {
		g := got[topic]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) {
			t.Errorf("%s: key/value differ on the wire:\n got %q %q\nwant %q %q", topic, g.Key, g.Value, w.Key, w.Value)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("%s: headers %v, want %v", topic, g.Headers, w.Headers)
		}
		for i := range w.Headers {
			if g.Headers[i].Key != w.Headers[i].Key || !bytes.Equal(g.Headers[i].Value, w.Headers[i].Value) {
				t.Errorf("%s: header %d = %s=%q, want %s=%q", topic, i, g.Headers[i].Key, g.Headers[i].Value, w.Headers[i].Key, w.Headers[i].Value)
			}
		}
		if topic != cfg.DLQTopic {
			checkEvent(t, e, g, c)
		} else if TypeOf(g) != LabelDeadLetter {
			t.Errorf("dead letter read back as %q", TypeOf(g))
		}
	}
	// A customer's outputs land on the partition its key picks, the same for
	// every output type, so ordering per customer holds per topic.
	if s, a := got[cfg.ScoreTopic].Partition, got[cfg.AlertTopic].Partition; s != a {
		t.Errorf("score on partition %d, alert on %d: same key, same partition count", s, a)
	}
}
