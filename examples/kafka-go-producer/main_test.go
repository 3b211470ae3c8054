package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/scorer"
)

// TestExampleProducer builds the example, runs it against a broker and reads
// the events back: every one decodes as a valid healthscore event, is keyed
// by its customer, and each customer's events are on a single partition.
func TestExampleProducer(t *testing.T) {
	brokers := testenv.Kafka(t, map[string]int32{"customer-events": 4})
	bin := filepath.Join(t.TempDir(), "kafka-go-producer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const events = 300
	out, err := exec.Command(bin, "--brokers", strings.Join(brokers, ","), "--customers", "15", "--events", "300").CombinedOutput()
	if err != nil {
		t.Fatalf("example failed: %v\n%s", err, out)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("customer-events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// franz-go's default partitioner hashes keys with murmur2 like the Java
	// client: kafka-go's Murmur2Balancer must agree with it.
	kgoPartitioner := kgo.StickyKeyPartitioner(nil).ForTopic("customer-events")
	partitionOf := map[string]int32{}
	n := 0
	for n < events {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d events: %v", n, events, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			ev, err := scorer.DecodeEvent(r.Value)
			if err != nil {
				t.Errorf("offset %d: %v", r.Offset, err)
				return
			}
			if string(r.Key) != ev.CustomerID {
				t.Errorf("key %q, customer_id %q", r.Key, ev.CustomerID)
			}
			if p, ok := partitionOf[ev.CustomerID]; ok && p != r.Partition {
				t.Errorf("customer %s on partitions %d and %d", ev.CustomerID, p, r.Partition)
			}
			partitionOf[ev.CustomerID] = r.Partition
			if want := int32(kgoPartitioner.Partition(&kgo.Record{Key: r.Key}, 4)); want != r.Partition {
				t.Errorf("customer %s on partition %d; franz-go's key partitioner picks %d", ev.CustomerID, r.Partition, want)
			}
		})
	}
	used := map[int32]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	if len(used) < 2 {
		t.Errorf("15 customers landed on %d partition(s); keys are not spread", len(used))
	}
}
