// Package demo owns the synthetic customers of `healthscore run --demo`: a
// seeded simulation of a B2B SaaS customer base (healthy accounts, accounts
// sliding into churn, small accounts) whose events are produced to the input
// topic, sending the first 30 of 90 days at once and replaying the rest in
// about a minute, then continuing in real time, plus a watcher that logs the alerts the pipeline publishes so that a
// newcomer sees them in the log.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
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

type persona int

const (
	healthy persona = iota
	churning
	small
)

type customer struct {
	id         string
	persona    persona
	segment    string
	churnStart time.Time // churning: when usage starts to fade
}

// event is the input event schema (see docs/events.md).
type event struct {
	ID         string  `json:"id"`
	CustomerID string  `json:"customer_id"`
	Type       string  `json:"type"`
	Time       string  `json:"time"`
	Value      float64 `json:"value"`
	Segment    string  `json:"segment,omitempty"`
}

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
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6865616c7468))
	start := cfg.Now().Add(-cfg.History).Truncate(time.Hour)
	customers := make([]customer, cfg.Customers)
	for i := range customers {
		c := customer{id: fmt.Sprintf("demo-%03d", i+1), segment: "enterprise"}
		switch r := rng.Float64(); {
		case r < 0.5:
			c.persona = healthy
		case r < 0.75:
			c.persona = churning
			c.churnStart = start.Add(time.Duration(20+rng.IntN(40)) * 24 * time.Hour)
		default:
			c.persona, c.segment = small, "smb"
		}
		customers[i] = c
	}
	cfg.Logger.Info("demo: producing synthetic customers",
		zap.Int("customers", cfg.Customers), zap.Duration("history", cfg.History), zap.Duration("replay", cfg.Replay))
	const step = time.Hour
	// The first third of the history is sent at once, so customers have a
	// past before their first scores (one event alone scores low).
	backfillEnd := start.Add(cfg.History / 3)
	tick := time.Duration(float64(cfg.Replay) / (float64(cfg.History-cfg.History/3) / float64(step)))
	sim := start
	seq := 0
	replayed := false
	var backfill []*kgo.Record
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
		var recs []*kgo.Record
		for i := range customers {
			for _, ev := range customers[i].hour(rng, sim, start) {
				seq++
				ev.ID = fmt.Sprintf("demo-evt-%d", seq)
				v, err := json.Marshal(ev)
				if err != nil {
					return fmt.Errorf("cannot encode demo event: %w", err)
				}
				recs = append(recs, &kgo.Record{Topic: cfg.Topic, Key: []byte(ev.CustomerID), Value: v})
			}
		}
		if sim.Before(backfillEnd) {
			backfill = append(backfill, recs...)
			sim = sim.Add(step)
			continue
		}
		if backfill != nil {
			recs = append(backfill, recs...)
			backfill = nil
			cfg.Logger.Info("demo: sent the first 30 days at once; replaying the rest", zap.Int("events", len(recs)))
		}
		if len(recs) > 0 {
			if err := cfg.Client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("cannot produce demo events: %w", err)
			}
		}
		sim = sim.Add(step)
		if !replayed {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(tick):
			}
		}
	}
}

// hour returns the events of one simulated hour.
func (c *customer) hour(rng *rand.Rand, t, start time.Time) []event {
	// Events per day by type, in a fixed order so a seed replays exactly.
	login, feature, kb, tickets, escalations := 3.0, 12.0, 0.3, 0.03, 0.0
	nps := 9.0
	switch c.persona {
	case small:
		login, feature, nps = 1, 4, 8
	case churning:
		if t.After(c.churnStart) {
			days := t.Sub(c.churnStart).Hours() / 24
			fade := max(0.02, 1-days/14) // usage fades to almost nothing in two weeks
			login, feature = login*fade, feature*fade
			tickets, escalations, nps = 0.4, 0.1, 3
		}
	}
	perDay := []struct {
		typ  string
		rate float64
	}{{"login", login}, {"feature_used", feature}, {"kb_viewed", kb}, {"ticket_opened", tickets}, {"ticket_escalated", escalations}}
	var out []event
	emit := func(typ string, value float64) {
		ts := t.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		out = append(out, event{CustomerID: c.id, Type: typ, Time: ts.UTC().Format(time.RFC3339), Value: value, Segment: c.segment})
	}
	for _, p := range perDay {
		if rng.Float64() < p.rate/24 {
			emit(p.typ, 1)
		}
	}
	if rng.Float64() < 1.0/(24*30) { // about monthly
		emit("nps_submitted", min(10, max(0, nps+rng.NormFloat64())))
	}
	if t.Sub(start) >= 0 && int(t.Sub(start).Hours())%(24*30) == 0 {
		if c.persona == churning && t.After(c.churnStart.Add(10*24*time.Hour)) {
			emit("payment_failed", 1)
		} else {
			emit("payment_succeeded", 1)
		}
	}
	return out
}

// Watch logs every alert published on topic until ctx ends. opts are more
// client options (TLS, SASL).
func Watch(ctx context.Context, brokers []string, topic string, log *zap.Logger, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd())}, opts...)...)
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
