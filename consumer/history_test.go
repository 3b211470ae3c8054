package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// withHistory makes the harness keep days of history: its store (same
// Redis, same prefix) and the consumers it runs.
func (h *harness) withHistory(days int) {
	h.t.Helper()
	store, err := state.NewRedis(h.rdb, state.Config{Prefix: h.prefix, Cache: 10000, HistoryDays: days})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store, h.historyDays = store, days
}

// produceKeyed sends records keyed by customer (franz-go's default
// partitioner), so each customer's events stay in order.
func (h *harness) produceKeyed(recs ...*kgo.Record) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.DefaultProduceTopic("customer-events"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// historyRaw is the stored history (days and changes) of a customer, as
// bytes.
func (h *harness) historyRaw(id string) string {
	h.t.Helper()
	b, err := h.rdb.Get(context.Background(), h.store.HistoryKey(id)).Result()
	if err != nil {
		h.t.Fatalf("history of %s: %v", id, err)
	}
	return fmt.Sprintf("%x", b)
}

// closedDaysMatch checks that the stored days of id run without a gap from
// the day of its first event to the day before its latest evaluation's,
// and that each has the score at its close that the events up to then give
// (folded from scratch); it returns the stored history.
func closedDaysMatch(t *testing.T, h *harness, id string, evs []scorer.Event, lastDay int64) state.History {
	t.Helper()
	rec, hist, err := h.store.GetWithHistory(context.Background(), id)
	if err != nil || rec.Version == 0 {
		t.Fatalf("%s: %v, version %d", id, err, rec.Version)
	}
	first := scorer.DayOf(evs[0].Time)
	if len(hist.Days) != int(lastDay-first) {
		t.Fatalf("%s: %d stored days, want the %d from day %d to %d", id, len(hist.Days), lastDay-first, first, lastDay-1)
	}
	m := h.model
	for k, d := range hist.Days {
		if d.Day != first+int64(k) {
			t.Fatalf("%s: stored day %d is %d, want %d", id, k, d.Day, first+int64(k))
		}
		end := scorer.DayStart(d.Day+1) - 1
		st := m.NewState()
		for i := range evs {
			if evs[i].Time <= end {
				m.Apply(st, &evs[i])
			}
		}
		want, _ := m.ScoreAt(st, end)
		if d.Score != scorer.Hundredths(want) || d.Min > d.Score {
			t.Fatalf("%s: day %s stored %+v, its close scores %.2f", id, scorer.FormatDay(d.Day), d, want)
		}
	}
	return hist
}

// A kill before the offsets are committed means a replay: the history is
// written by the same script call as the record, so replayed events (all
// duplicates then) append no day and no change twice. The closed days are
// exact, batches spanning days included.
func TestHistoryOnceAcrossRedelivery(t *testing.T) {
	h := newHarness(t)
	h.withHistory(30)
	h.maxPoll = 7 // batches span days
	base := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	evs := map[string][]scorer.Event{}
	var recs []*kgo.Record
	add := func(id, typ string, at time.Time) {
		v := fmt.Sprintf(`{"customer_id":%q,"type":%q,"time":%q,"value":1}`, id, typ, at.Format(time.RFC3339))
		ev, err := scorer.DecodeEvent([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		evs[id] = append(evs[id], ev)
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: []byte(v)})
	}
	for d := range 12 {
		day := base.Add(time.Duration(d) * 24 * time.Hour)
		add("daily", "login", day)
		if d%3 == 0 {
			add("daily", "feature_used", day.Add(time.Hour))
		}
		if d < 4 || d == 11 { // then silent for a week: decay-only days
			add("gap", "login", day.Add(2*time.Hour))
		}
	}
	h.produceKeyed(recs...)
	h.run("first")
	lastDay := scorer.DayOf(base.Add(11 * 24 * time.Hour).UnixNano())
	before := map[string]string{}
	for id := range evs {
		closedDaysMatch(t, h, id, evs[id], lastDay)
		before[id] = h.historyRaw(id)
	}

	reg := h.run("replay") // every record again, as after a kill -9
	if got := metricEvents(t, reg, ResultDuplicate); got != float64(len(recs)) {
		t.Fatalf("replay counted %v duplicates, want %d", got, len(recs))
	}
	for id := range evs {
		if got := h.historyRaw(id); got != before[id] {
			t.Errorf("%s: history changed by the replay:\n%s\nwas\n%s", id, got, before[id])
		}
	}
}

// The sweeper's decay-driven evaluations write history on the same path:
// a silent customer's days are closed as it decays, and its band change
// and health.low are in its changes, with drivers. With history off, the
// same run writes no history key.
func TestSweeperFeedsHistory(t *testing.T) {
	for _, days := range []int{90, 0} {
		t.Run(fmt.Sprintf("history-days=%d", days), func(t *testing.T) {
			h := newHarness(t)
			if days > 0 {
				h.withHistory(days)
			}
			base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			recs, evs := weekOfLogins(base)
			clock := &fakeClock{}
			clock.Set(base.Add(6 * 24 * time.Hour))
			h.produceKeyed(recs...) // in order: the closed days are exact
			h.startSweeping("sweep", clock)
			h.waitCommitted("sweep")
			redAt := h.sweepUntilRed(clock, "silent")
			if days == 0 {
				if n := h.rdb.Exists(context.Background(), h.store.HistoryKey("silent")).Val(); n != 0 {
					t.Fatalf("%d history keys with history off", n)
				}
				return
			}
			hist := closedDaysMatch(t, h, "silent", evs, scorer.DayOf(redAt.UnixNano()))
			var low *scorer.Change
			for _, raw := range hist.Changes {
				c, err := scorer.DecodeChange(raw)
				if err != nil {
					t.Fatalf("change %x: %v", raw, err)
				}
				if c.Type == "health.low" {
					low = &c
				}
			}
			if low == nil || low.Band != scorer.BandRed || low.PrevBand != scorer.BandYellow || len(low.Drivers) == 0 {
				t.Fatalf("changes %x: want a health.low from yellow with drivers", hist.Changes)
			}
			if d := time.Unix(0, low.At).Sub(redAt); d.Abs() > time.Second {
				t.Fatalf("health.low at %s, the customer went red at %s", time.Unix(0, low.At), redAt)
			}
		})
	}
}

// sweepUntilRed moves the clock to each scheduled instant of id until its
// record is red, and returns that instant.
func (h *harness) sweepUntilRed(clock *fakeClock, id string) time.Time {
	h.t.Helper()
	for round := 0; round < 50; round++ {
		due := h.due(id)
		if due == 0 {
			h.t.Fatalf("round %d: %s is not scheduled", round, id)
		}
		clock.SetMs(due)
		claimed := due + testLease.Milliseconds()
		waitFor(h.t, 10*time.Second, fmt.Sprintf("round %d: the sweeper reschedules %s, due at %d", round, id, due), func() bool {
			d := h.due(id)
			return d != due && d != claimed
		})
		rec, err := h.store.Get(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if rec.Band == state.BandRed {
			return time.UnixMilli(due)
		}
	}
	h.t.Fatalf("%s never went red", id)
	return time.Time{}
}
