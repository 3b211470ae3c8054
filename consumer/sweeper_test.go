package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// fakeClock is an injected wall clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func (f *fakeClock) Now() time.Time      { return time.Unix(0, f.ns.Load()) }
func (f *fakeClock) Set(t time.Time)     { f.ns.Store(t.UnixNano()) }
func (f *fakeClock) SetMs(ms int64)      { f.ns.Store(ms * int64(time.Millisecond)) }
func (f *fakeClock) Add(d time.Duration) { f.ns.Add(int64(d)) }

// testLease is the sweepers' claim lease in these tests: while a sweeper
// evaluates a customer, its due time is the claim's expiry, now + testLease.
const testLease = 30 * time.Second

// startSweeping runs a consumer with the schedule and the fake clock until
// the test ends. The clock is the consumer's only one, and it stands still
// between the test's moves: the commit delay and interval are off (a delay
// on a stopped clock never ends).
func (h *harness) startSweeping(group string, clock *fakeClock) *Consumer {
	h.t.Helper()
	c, err := New(Config{Brokers: h.brokers, Group: group, Model: h.model, Store: h.store, Encoder: h.enc,
		Schedule: h.store, Now: clock.Now, SweepInterval: 10 * time.Millisecond, SweepLease: testLease, CommitDelay: -1, CommitInterval: -1,
		Logger: zaptest.NewLogger(h.t), Registerer: prometheus.NewRegistry(), HistoryDays: h.historyDays})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	return c
}

// due returns the customer's scheduled Unix ms, 0 when unscheduled.
func (h *harness) due(id string) int64 {
	h.t.Helper()
	z, err := h.rdb.ZScore(context.Background(), h.store.DueKey(h.store.Bucket(id)), id).Result()
	if err != nil {
		return 0
	}
	return int64(z)
}

type alertEvent struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data struct {
		Band string `json:"band"`
	} `json:"data"`
}

// records reads every record of topic.
func (h *harness) records(topic string) []*kgo.Record {
	h.t.Helper()
	n := h.count(topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topic))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	if len(out) < n {
		h.t.Fatalf("read %d of %d records of %s", len(out), n, topic)
	}
	return out
}

func (h *harness) alerts(topic, id string) []alertEvent {
	h.t.Helper()
	var out []alertEvent
	for _, r := range h.records(topic) {
		if string(r.Key) != id {
			continue
		}
		var a alertEvent
		if err := json.Unmarshal(r.Value, &a); err != nil {
			h.t.Fatalf("%s: %v", r.Value, err)
		}
		out = append(out, a)
	}
	return out
}

// weekOfLogins returns the records and events of customer "silent"'s daily
// logins on the 7 days from base: it ends yellow with the default model.
func weekOfLogins(base time.Time) ([]*kgo.Record, []scorer.Event) {
	var recs []*kgo.Record
	var evs []scorer.Event
	for i := range 7 {
		v := fmt.Sprintf(`{"customer_id":"silent","type":"login","time":%q}`, base.Add(time.Duration(i)*24*time.Hour).Format(time.RFC3339))
		recs = append(recs, &kgo.Record{Key: []byte("silent"), Value: []byte(v)})
		ev, _ := scorer.DecodeEvent([]byte(v))
		evs = append(evs, ev)
	}
	return recs, evs
}

// TestSilentCustomerGoesRed: a customer whose only events are a week of
// daily logins, then nothing, is rescored by the sweeper as its score
// decays, goes red at the instant the decay math predicts (within a
// second of a brute-force scan, and exactly at the forecast's red_at), and
// gets exactly one health.low.
func TestSilentCustomerGoesRed(t *testing.T) {
	h := newHarness(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	recs, evs := weekOfLogins(base)
	last := base.Add(6 * 24 * time.Hour)

	// The predicted instant, by brute force over the decay math: the first
	// second at which the score is below red − hysteresis.
	m := h.model
	st := m.NewState()
	for i := range evs {
		m.Apply(st, &evs[i])
	}
	threshold := m.Bands.Red - m.Hysteresis
	if s, _ := m.ScoreAt(st, last.UnixNano()); s <= threshold {
		t.Fatalf("the customer starts at %.2f, already red; the test needs a yellow start", s)
	}
	lo, hi := last.UnixNano(), last.Add(400*24*time.Hour).UnixNano()
	for step := int64(time.Hour); ; {
		t0 := lo + step
		if s, _ := m.ScoreAt(st, t0); s < threshold || t0 >= hi {
			hi = t0
			break
		}
		lo = t0
	}
	for hi-lo > int64(time.Second) { // the score only decays here: bisect
		mid := lo + (hi-lo)/2
		if s, _ := m.ScoreAt(st, mid); s < threshold {
			hi = mid
		} else {
			lo = mid
		}
	}
	predicted := time.Unix(0, hi)
	// The forecast the API serves, from the state the pipeline publishes
	// at the last event: the sweeper's health.low must be at its red_at,
	// to the nanosecond (both are the first whole millisecond in red).
	published := m.NewState()
	for i := range evs {
		m.Apply(published, &evs[i])
	}
	m.Step(published, last.UnixNano())
	fc := m.Forecast(published, last.UnixNano())
	if !fc.HasRed {
		t.Fatalf("no red forecast: %+v", fc)
	}

	clock := &fakeClock{}
	clock.Set(last)
	h.produce(recs...)
	c := h.startSweeping("sweep", clock)
	h.waitCommitted("sweep")

	// Move the clock to each scheduled instant until the customer is red.
	var redAt time.Time
	for round := 0; round < 50 && redAt.IsZero(); round++ {
		due := h.due("silent")
		if due == 0 {
			t.Fatalf("round %d: the customer is not scheduled", round)
		}
		clock.SetMs(due)
		// Wait for the rescheduling, not the claim: a claimed customer is
		// due at the lease's expiry until its evaluation is saved.
		claimed := due + testLease.Milliseconds()
		waitFor(t, 10*time.Second, fmt.Sprintf("round %d: the sweeper reschedules the customer due at %d", round, due), func() bool {
			d := h.due("silent")
			return d != due && d != claimed
		})
		rec, err := h.store.Get(context.Background(), "silent")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Band == state.BandRed {
			redAt = time.UnixMilli(due)
		}
	}
	if redAt.IsZero() {
		t.Fatal("the customer never went red")
	}
	if d := redAt.Sub(predicted); d < -time.Second || d > time.Second {
		t.Errorf("went red at %s; the decay math predicts %s (off by %s)", redAt, predicted, d)
	}
	// Much later: still red, no second alert, once the sweeper has run at
	// that time.
	clock.Add(60 * 24 * time.Hour)
	waitSwept(t, c, clock.Now())

	var lows []alertEvent
	for _, a := range h.alerts("customer-health-alerts", "silent") {
		if a.Type == "health.low" {
			lows = append(lows, a)
		}
	}
	if len(lows) != 1 {
		t.Fatalf("%d health.low alerts, want exactly 1: %+v", len(lows), lows)
	}
	if d := lows[0].Time.Sub(predicted); d < -time.Second || d > time.Second {
		t.Errorf("health.low at %s, predicted %s", lows[0].Time, predicted)
	}
	if !lows[0].Time.Equal(time.Unix(0, fc.RedAt)) || !redAt.Equal(time.Unix(0, fc.RedAt)) {
		t.Errorf("health.low at %s (red in the store at %s); the forecast's red_at is %s", lows[0].Time, redAt, scorer.FormatTime(fc.RedAt))
	}
	t.Logf("yellow at %s, red at %s (predicted %s)", last, redAt, predicted)

	// A late event dated before the decay publications is evaluated no
	// earlier than the last of them: time never runs backwards for a score,
	// so a stale kb visit cannot lift the customer out of red. Its load
	// comes from the record cache: the sweeper's releases (for the
	// versions its own saves left) did not drop the entry.
	_, misses := h.store.CacheStats()
	h.produce(&kgo.Record{Key: []byte("silent"), Value: fmt.Appendf(nil, `{"customer_id":"silent","type":"kb_viewed","time":%q}`, last.Add(time.Hour).Format(time.RFC3339))})
	h.waitCommitted("sweep")
	if _, m := h.store.CacheStats(); m != misses {
		t.Errorf("the late event's load missed the record cache (%d misses, %d before)", m, misses)
	}
	rec, err := h.store.Get(context.Background(), "silent")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := h.model.DecodeState(rec.Data); err != nil || st.Events != 8 {
		t.Fatalf("after the late event: %v, want 8 events applied", err)
	}
	if rec.Band != state.BandRed {
		t.Errorf("a stale event moved the customer to %s", rec.Band)
	}
	for _, a := range h.alerts("customer-health-alerts", "silent") {
		if a.Type == "health.recovered" {
			t.Errorf("a stale event raised %s at %s", a.Type, a.Time)
		}
	}
}

// TestReleaseAfterQuietWakeUp: a customer woken early (its due time is a
// bound, here set by hand as an event batch's would be) is evaluated by the
// sweeper, publishes nothing and writes nothing, and the release moves its
// due time to the exact next change of the record version the sweeper read
// (not left at the claim's lease).
func TestReleaseAfterQuietWakeUp(t *testing.T) {
	h := newHarness(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	recs, _ := weekOfLogins(base)
	last := base.Add(6 * 24 * time.Hour)
	clock := &fakeClock{}
	clock.Set(last)
	h.produce(recs...)
	c := h.startSweeping("quiet", clock)
	h.waitCommitted("quiet")

	ctx := context.Background()
	before, err := h.store.Get(ctx, "silent")
	if err != nil {
		t.Fatal(err)
	}
	early := last.Add(time.Minute)
	if d := h.due("silent"); d <= early.UnixMilli() {
		t.Fatalf("due at %d, not after the early wake-up at %d", d, early.UnixMilli())
	}
	if err := h.store.ScheduleEarlier(ctx, []state.Due{{ID: "silent", At: early.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	// What the sweeper computes there: the exact next change.
	st, err := h.model.DecodeState(before.Data)
	if err != nil {
		t.Fatal(err)
	}
	if o := h.model.Step(st, early.UnixNano()); o.Changed || o.Alert != scorer.AlertNone || o.Dropped {
		t.Fatalf("the customer would publish a minute after its last event: %+v", o)
	}
	next, ok := h.model.NextChange(st, early.UnixNano())
	if !ok {
		t.Fatal("no next change")
	}
	want := (next + int64(time.Millisecond) - 1) / int64(time.Millisecond)

	clock.Set(early)
	waitSwept(t, c, early)
	if got := h.due("silent"); got != want {
		t.Fatalf("due at %d after the quiet wake-up, want the exact next change %d (the lease ends at %d)", got, want, early.Add(testLease).UnixMilli())
	}
	if after, err := h.store.Get(ctx, "silent"); err != nil || after.Version != before.Version {
		t.Fatalf("the quiet wake-up wrote the record: version %d, was %d (%v)", after.Version, before.Version, err)
	}
}

// TestSweeperWaitsForBacklog: while the consumer catches up on a backlog
// (two months of history, then each customer's login of an hour ago, read
// 50 records per poll), the sweeper does not evaluate decay at the wall
// clock: that would find the customers silent for a month, publish their
// drop, and then a recovery when the recent logins are read (a false alarm
// that damage-control flows would act on).
func TestSweeperWaitsForBacklog(t *testing.T) {
	h := newHarness(t)
	const customers, perCustomer = 40, 25
	start := time.Now().Add(-60 * 24 * time.Hour)
	var recs []*kgo.Record
	login := func(c, i int, at time.Time) {
		v := fmt.Sprintf(`{"id":"e%d-%d","customer_id":"c%02d","type":"login","time":%q}`, c, i, c, at.Format(time.RFC3339))
		recs = append(recs, &kgo.Record{Value: []byte(v)})
	}
	for i := range perCustomer {
		for c := range customers {
			login(c, i, start.Add(time.Duration(i)*24*time.Hour+time.Duration(c)*time.Minute))
		}
	}
	for c := range customers {
		login(c, perCustomer, time.Now().Add(-time.Hour))
	}
	h.produce(recs...)

	c, err := New(Config{Brokers: h.brokers, Group: "backlog", Model: h.model, Store: h.store, Encoder: h.enc,
		Schedule: h.store, SweepInterval: 2 * time.Millisecond, MaxPollRecords: 50, CommitDelay: 10 * time.Millisecond,
		Logger: zaptest.NewLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h.waitCommitted("backlog")
	// Every event is applied; a sweep round that starts now (the hold over)
	// evaluates decay at the wall clock, as the rounds held during the
	// backlog would have.
	waitSwept(t, c, time.Now())

	type out struct {
		ID   string `json:"id"`
		Data struct {
			Cause struct {
				Decay bool `json:"decay"`
			} `json:"cause"`
		} `json:"data"`
	}
	decayed := map[string]bool{}
	seen := map[string]bool{} // outputs are at least once: dedupe by CloudEvents id
	outputs := 0
	for _, r := range h.records("customer-health") {
		var o out
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatal(err)
		}
		if seen[o.ID] {
			continue
		}
		seen[o.ID] = true
		outputs++
		id := string(r.Key)
		switch {
		case o.Data.Cause.Decay:
			decayed[id] = true
		case decayed[id]:
			t.Fatalf("customer %s: an event-caused output after a decay-caused one: decay was evaluated ahead of unread events", id)
		}
	}
	if outputs < customers {
		t.Fatalf("%d outputs for %d customers", outputs, customers)
	}
}
