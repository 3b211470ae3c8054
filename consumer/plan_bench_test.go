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
// load: 64 customers with a stored record (a month of activity, with score
// history), each with one new event. Its allocations per customer are what
// the pipeline's garbage collector has to follow per evaluation, besides
// the I/O around plan.
func BenchmarkPlan(b *testing.B) {
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
	// Each customer's record: 30 days with an event a day, saved batch by batch.
	loaded := make([]state.Record, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("customer-%04d", i)
		var rec state.Record
		for d := range 30 {
			p := plan(pc, []*customerBatch{{id: ids[i], events: []*inEvent{evAt(ids[i], d, planT0.Add(time.Duration(d)*24*time.Hour+time.Duration(i)*time.Minute))}}}, []state.Record{rec})
			if w := p.outcomes[0].write; w != nil {
				rec = saved(w)
			}
		}
		loaded[i] = rec
	}
	next := planT0.Add(30*24*time.Hour + time.Hour)
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
	}
}
