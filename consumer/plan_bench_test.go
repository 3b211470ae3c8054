package consumer

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// BenchmarkPlan: one paced batch's decisions, as at the bench's paced
// load: 64 customers with a stored record (a month of daily activity, with
// score history), each with one new event. Its allocations per customer
// are what the pipeline's garbage collector has to follow per evaluation,
// besides the I/O around plan. In "publish" every customer's new event
// (after a day's silence) moves its score enough to publish an output; in
// "quiet" none does (the event comes a minute after the customer's last
// one). The bench's paced phase is between: about 30% of its events
// cause an output.
func BenchmarkPlan(b *testing.B) {
	for _, quiet := range []bool{false, true} {
		name := "publish"
		if quiet {
			name = "quiet"
		}
		b.Run(name, func(b *testing.B) { benchPlan(b, quiet) })
	}
}

func benchPlan(b *testing.B, quiet bool) {
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		b.Fatal(err)
	}
	pc := planConfig{model: scorer.DefaultModel(), encoder: enc, historyDays: 90, schedule: true}
	const n = 64
	types := []string{"login", "feature_used", "ticket_opened", "kb_viewed", "payment_succeeded"}
	evAt := func(id string, k int, at time.Time) *inEvent {
		typ := types[k%len(types)]
		return &inEvent{
			ev:  scorer.Event{ID: fmt.Sprintf("%s-%d", id, k), CustomerID: id, Type: typ, Time: at.UnixNano(), HasTime: true, Value: 1},
			rec: &kgo.Record{Topic: "customer-events", Partition: 0, Offset: int64(k), Timestamp: at},
		}
	}
	next := planT0.Add(30*24*time.Hour + time.Hour)
	// Each customer's record: 30 days with an event a day (and, when quiet,
	// one a minute before the new event), saved batch by batch.
	loaded := make([]state.Record, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("customer-%04d", i)
		var evs []*inEvent
		for d := range 30 {
			evs = append(evs, evAt(ids[i], d, planT0.Add(time.Duration(d)*24*time.Hour+time.Duration(i)*time.Minute)))
		}
		if quiet {
			evs = append(evs, evAt(ids[i], 30, next.Add(-time.Minute)))
		}
		var rec state.Record
		for _, e := range evs {
			p := plan(pc, []*customerBatch{{id: ids[i], events: []*inEvent{e}}}, []state.Record{rec})
			if w := p.outcomes[0].write; w != nil {
				rec = saved(w)
			}
		}
		loaded[i] = rec
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		customers := make([]*customerBatch, n)
		for i := range n {
			customers[i] = &customerBatch{id: ids[i], events: []*inEvent{evAt(ids[i], 31, next)}}
		}
		b.StartTimer()
		p := plan(pc, customers, loaded)
		if len(p.writes) != n {
			b.Fatalf("%d writes, want %d", len(p.writes), n)
		}
		outs := 0
		for _, w := range p.writes {
			if len(w.outputs) > 0 {
				outs++
			}
		}
		b.ReportMetric(float64(outs)/n, "published/customer")
	}
}
