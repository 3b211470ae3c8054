// Command kafka-go-producer shows how a product team emits customer events
// to healthscore with github.com/segmentio/kafka-go, the client many Go
// product apps already use.
//
// Three settings matter, and kafka-go's defaults get all three wrong for us:
//   - Balancer: kafka.Murmur2Balancer{} partitions by key like the Java
//     client and franz-go, so one customer's events stay on one partition
//     (kafka-go's default, round robin, ignores keys; healthscore is still
//     exact then, but ordering and load per customer are lost);
//   - RequiredAcks: kafka.RequireAll, so an event is acknowledged only once
//     every in-sync replica has it (the default is no acknowledgement);
//   - BatchTimeout: a few milliseconds (the default, 1 s, delays every
//     synchronous write by up to a second).
//
// Usage:
//
//	go run ./examples/kafka-go-producer --brokers localhost:9092 --customers 20 --events 500
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Event is healthscore's input event (docs/events.md).
type Event struct {
	ID         string  `json:"id"`
	CustomerID string  `json:"customer_id"`
	Type       string  `json:"type"`
	Time       string  `json:"time"`
	Value      float64 `json:"value,omitempty"`
	Segment    string  `json:"segment,omitempty"`
}

func main() {
	brokers := flag.String("brokers", "localhost:9092", "Kafka brokers, comma separated")
	topic := flag.String("topic", "customer-events", "input topic of healthscore")
	customers := flag.Int("customers", 20, "customers to simulate")
	events := flag.Int("events", 500, "events to send")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(context.Background(), strings.Split(*brokers, ","), *topic, *customers, *events, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-go-producer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, brokers []string, topic string, customers, events int, seed uint64) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()

	rng := rand.New(rand.NewPCG(seed, 7))
	types := []string{"login", "login", "feature_used", "feature_used", "feature_used", "kb_viewed", "ticket_opened", "nps_submitted"}
	start := time.Now().Add(-7 * 24 * time.Hour)
	msgs := make([]kafka.Message, 0, events)
	for i := range events {
		ev := Event{
			ID:         fmt.Sprintf("example-%d", i),
			CustomerID: fmt.Sprintf("customer-%03d", rng.IntN(customers)),
			Type:       types[rng.IntN(len(types))],
			Time:       start.Add(time.Duration(rng.Int64N(int64(7 * 24 * time.Hour)))).UTC().Format(time.RFC3339Nano),
		}
		if ev.Type == "nps_submitted" {
			ev.Value = float64(rng.IntN(11))
		}
		v, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("cannot encode event: %w", err)
		}
		// The key is the customer id: with the murmur2 balancer a customer's
		// events stay in order on one partition.
		msgs = append(msgs, kafka.Message{Key: []byte(ev.CustomerID), Value: v})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write events: %w", err)
	}
	fmt.Printf("sent %d events for %d customers to %s\n", events, customers, topic)
	return nil
}
