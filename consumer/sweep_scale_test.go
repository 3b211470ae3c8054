package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// seedSchedule schedules idle customers (never due in the test, and without
// states) and due customers (with a state of a few logins, due at nowMs).
func (h *harness) seedSchedule(tb testing.TB, idle, due int, nowMs int64) {
	tb.Helper()
	ctx := context.Background()
	far := nowMs + int64(365*24*time.Hour/time.Millisecond)
	for start := 0; start < idle; start += 10000 {
		var ds []state.Due
		for i := start; i < min(idle, start+10000); i++ {
			ds = append(ds, state.Due{ID: "idle-" + strconv.Itoa(i), At: far})
		}
		if err := h.store.ScheduleEarlier(ctx, ds); err != nil {
			tb.Fatal(err)
		}
	}
	m := h.model
	var ws []state.Write
	var ds []state.Due
	for i := range due {
		st := m.NewState()
		for d := range 3 {
			ev := scorer.Event{CustomerID: "due", Type: "login", Time: (nowMs - int64(d+10)*86_400_000) * int64(time.Millisecond), Value: 1}
			m.Apply(st, &ev)
		}
		o := m.Step(st, st.LastEvent)
		id := fmt.Sprintf("due-%d", i)
		ws = append(ws, state.Write{ID: id, Rec: state.Record{Score: o.Eval.Score, Band: o.Eval.Band.String(), Data: m.AppendState(nil, st)}})
		ds = append(ds, state.Due{ID: id, At: nowMs})
		if len(ws) == 5000 || i == due-1 {
			if _, err := mustBind(tb, h.store).Save(ctx, ws); err != nil {
				tb.Fatal(err)
			}
			if err := h.store.ScheduleEarlier(ctx, ds); err != nil {
				tb.Fatal(err)
			}
			ws, ds = ws[:0], ds[:0]
		}
	}
}

func keyspaceReads(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		for _, k := range []string{"keyspace_hits:", "keyspace_misses:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), k); ok {
				x, _ := strconv.ParseInt(v, 10, 64)
				n += x
			}
		}
	}
	return n
}

func (h *harness) sweeper(tb testing.TB, now time.Time) *Consumer {
	tb.Helper()
	c, err := New(Config{Brokers: h.brokers, Group: "scale", Model: h.model, Store: h.store, Encoder: h.enc,
		Schedule: h.store, Now: func() time.Time { return now }, SweepBatch: 2000,
		Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.client.Close)
	return c
}

// TestSweepTouchesOnlyDue: with many customers scheduled and few due, a
// sweep rescores exactly the due ones, and Redis serves about as many key
// reads as there are due customers, however many are scheduled.
func TestSweepTouchesOnlyDue(t *testing.T) {
	h := newHarness(t)
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const idle, due = 100_000, 1000
	h.seedSchedule(t, idle, due, now.UnixMilli())
	c := h.sweeper(t, now)
	before := keyspaceReads(t, h.rdb)
	if err := c.sweepOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	reads := keyspaceReads(t, h.rdb) - before
	if got := counterValue(t, c.metrics.rescored.WithLabelValues("decay")); got != due {
		t.Errorf("rescored %v customers by decay, want %d", got, due)
	}
	// Per due customer: its record (load, compare-and-set, index re-read,
	// outbox clear) and its schedule entry: a small constant, never idle.
	if reads > 20*due {
		t.Errorf("the sweep made %d key reads for %d due customers among %d scheduled", reads, due, idle+due)
	}
	n, _, err := h.store.DueStats(context.Background(), now.UnixMilli())
	if err != nil || n != 0 {
		t.Errorf("the schedule still has %d due entries (%v)", n, err)
	}
	t.Logf("%d key reads for %d due customers among %d scheduled", reads, due, idle+due)
}

// BenchmarkSweepDue: 1M customers scheduled, 10k due; one sweep rescores the
// due ones. Reports rescored customers per second.
//
//	go test -run '^$' -bench SweepDue -benchtime 1x ./consumer
func BenchmarkSweepDue(b *testing.B) {
	h := newHarness(b)
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const idle, due = 1_000_000, 10_000
	h.seedSchedule(b, idle, due, now.UnixMilli())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if i > 0 { // make them due again
			var ds []state.Due
			for k := range due {
				ds = append(ds, state.Due{ID: fmt.Sprintf("due-%d", k), At: now.UnixMilli()})
			}
			if err := h.store.ScheduleEarlier(context.Background(), ds); err != nil {
				b.Fatal(err)
			}
		}
		c := h.sweeper(b, now.Add(time.Duration(i)*time.Hour))
		b.StartTimer()
		if err := c.sweepOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(due*b.N)/b.Elapsed().Seconds(), "rescored/s")
}

func counterValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestSweepersRace: three instances sweep the same due customers at once;
// every customer is rescored by exactly one of them and its decay output is
// published once.
func TestSweepersRace(t *testing.T) {
	h := newHarness(t)
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const due = 600
	h.seedSchedule(t, 0, due, now.UnixMilli())
	sweepers := []*Consumer{h.sweeper(t, now), h.sweeper(t, now), h.sweeper(t, now)}
	for _, c := range sweepers {
		c.cfg.SweepBatch = 25 // many small claims: more interleaving
	}
	var wg sync.WaitGroup
	for _, c := range sweepers {
		wg.Go(func() {
			if err := c.sweepOnce(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	total := 0.0
	for _, c := range sweepers {
		total += counterValue(t, c.metrics.rescored.WithLabelValues("decay"))
	}
	if total != due {
		t.Errorf("rescored %v customers in total, want %d", total, due)
	}
	perCustomer := map[string]int{}
	for _, r := range h.records("customer-health") {
		perCustomer[string(r.Key)]++
	}
	if len(perCustomer) != due {
		t.Errorf("%d customers got a score change, want %d", len(perCustomer), due)
	}
	for id, n := range perCustomer {
		if n != 1 {
			t.Errorf("%s: %d score changes published, want 1", id, n)
		}
	}
}

// TestRescoreAllAfterReload: after a model change, the rescoring pass
// evaluates every indexed customer with the new model and publishes the
// changed ones with the new model version and cause model_reload.
func TestRescoreAllAfterReload(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(9, 30, 400)
	h.produce(recs...)
	c := h.sweeper(t, time.Now())
	h.run("reload") // fold the events with the default model
	before := h.count("customer-health")

	y := strings.Replace(string(scorer.DefaultModelYAML()), `version: "2026.11.1"`, `version: "2026.11.2"`, 1)
	y = strings.Replace(y, "weight: 40", "weight: 5", 1) // engagement matters much less
	m2, err := scorer.ParseModel("v2.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c.SetModel(m2)
	n, err := c.RescoreAll(context.Background(), h.store)
	if err != nil {
		t.Fatal(err)
	}
	if n != 30 {
		t.Errorf("rescored %d customers, want the 30 indexed", n)
	}
	var changed int
	all := h.records("customer-health")
	for _, r := range all {
		var ev struct {
			Data struct {
				Model struct{ Version string } `json:"model"`
				Cause struct {
					ModelReload bool `json:"model_reload"`
				} `json:"cause"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Data.Model.Version != "2026.11.2" {
			continue // published before the reload
		}
		if !ev.Data.Cause.ModelReload {
			t.Errorf("output with the new model without cause model_reload: %s", r.Value)
		}
		changed++
	}
	if changed == 0 || changed != len(all)-before {
		t.Errorf("%d outputs carry the new model; %d were published after the reload", changed, len(all)-before)
	}
	if got := counterValue(t, c.metrics.rescored.WithLabelValues("reload")); got != 30 {
		t.Errorf("healthscore_rescored_total{cause=reload} = %v, want 30", got)
	}
}
