// Package demo owns the synthetic customers of `healthscore run --demo`: a
// seeded simulation of a B2B SaaS customer base by package simulate
// (customers whose hidden health drifts, some sliding into churn and going
// quiet before they cancel) whose events are produced to the input topic,
// sending the first 30 of 90 days at once and replaying the rest in about
// a minute, then continuing in real time for a simulated year, plus a
// watcher that logs the alerts the pipeline publishes so that a newcomer
// sees them in the log.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/simulate"
)

// Config configures the generator.
type Config struct {
	Client    *kgo.Client // producer
	Topic     string
	Customers int           // default 60
	History   time.Duration // simulated past to replay; default 90 days
	Replay    time.Duration // real time the replay takes; default 60 s
	Seed      uint64
	Logger    *zap.Logger
	Now       func() time.Time
}

// future is how long the simulated customers live on after the replay
// (the simulator's limit is 10 years in all).
const future = 3000 * 24 * time.Hour

// Run produces events until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Customers <= 0 {
		cfg.Customers = 60
	}
	if cfg.History <= 0 {
		cfg.History = 90 * 24 * time.Hour
	}
	if cfg.Replay <= 0 {
		cfg.Replay = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	const day = 24 * time.Hour
	start := cfg.Now().Add(-cfg.History).UTC().Truncate(day) // the simulator starts at midnight UTC
	history := cfg.Now().Sub(start)

	// The simulator runs in its own goroutine and hands over events in
	// time order, one at a time: memory stays flat however long the demo runs.
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan simulate.Event, 1024)
	simErr := make(chan error, 1)
	go func() {
		defer close(events)
		_, err := simulate.Generate(simulate.Config{Customers: cfg.Customers, Days: int((history + future) / day), Seed: cfg.Seed,
			Start: start, IDPrefix: "demo-", OraclePaths: 1}, func(ev *simulate.Event) error {
			select {
			case events <- *ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		simErr <- err
	}()
	defer func() {
		cancel()
		for range events { // let the simulator see the cancellation and end
		}
	}()

	cfg.Logger.Info("demo: producing synthetic customers",
		zap.Int("customers", cfg.Customers), zap.Duration("history", cfg.History), zap.Duration("replay", cfg.Replay))
	const step = time.Hour
	// The first third of the history is sent at once, so customers have a
	// past before their first scores (one event alone scores low).
	backfillEnd := start.Add(history / 3)
	tick := time.Duration(float64(cfg.Replay) / (float64(history-history/3) / float64(step)))
	sim := start
	replayed := false
	var pending *simulate.Event // the next event, read but not produced
	var buf []byte
	for {
		now := cfg.Now()
		if sim.After(now) {
			if !replayed {
				replayed = true
				cfg.Logger.Info("demo: history replayed; continuing in real time. Try: curl 'localhost:8080/v1/customers?band=red'")
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(sim.Sub(now)):
			}
		}
		end := sim.Add(step)
		if sim.Before(backfillEnd) {
			end = backfillEnd
		}
		var recs []*kgo.Record
		for {
			if pending == nil {
				ev, ok := <-events
				if !ok {
					if err := <-simErr; err != nil && ctx.Err() == nil {
						return fmt.Errorf("cannot simulate the demo customers: %w", err)
					}
					cfg.Logger.Info("demo: the simulated years are over; no more events")
					<-ctx.Done()
					return nil
				}
				pending = &ev
			}
			if pending.Time >= end.UnixNano() {
				break
			}
			buf = pending.AppendJSON(buf[:0])
			recs = append(recs, &kgo.Record{Topic: cfg.Topic, Key: []byte(pending.CustomerID), Value: append([]byte(nil), buf[:len(buf)-1]...)})
			pending = nil
		}
		if sim.Before(backfillEnd) {
			cfg.Logger.Info("demo: sending the first third of the history at once; replaying the rest", zap.Int("events", len(recs)))
		}
		if len(recs) > 0 {
			if err := cfg.Client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("cannot produce demo events: %w", err)
			}
		}
		sim = end
		if !replayed {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(tick):
			}
		}
	}
}

// Watch logs every alert published on topic until ctx ends.
func Watch(ctx context.Context, brokers []string, topic string, log *zap.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		return fmt.Errorf("cannot watch alerts: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ce struct {
				Type string `json:"type"`
				Data struct {
					CustomerID string   `json:"customer_id"`
					Score      *float64 `json:"score"`
					Band       string   `json:"band"`
				} `json:"data"`
			}
			if json.Unmarshal(r.Value, &ce) == nil {
				fields := []zap.Field{zap.String("type", ce.Type), zap.String("customer_id", ce.Data.CustomerID), zap.String("band", ce.Data.Band)}
				if ce.Data.Score != nil {
					fields = append(fields, zap.Float64("score", *ce.Data.Score))
				}
				log.Info("demo: alert published", fields...)
			}
		})
	}
}
