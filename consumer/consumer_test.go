package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithRedis(m)) }

var testTopics = map[string]int32{"customer-events": 4, "customer-health": 2, "customer-health-alerts": 2, "customer-events-dlq": 1}

type harness struct {
	t       testing.TB
	brokers []string
	store   *state.Redis
	rdb     *redis.Client
	model   *scorer.Model
	enc     *alerts.Encoder

	maxRecordBytes int           // 0: the default
	maxPoll        int           // 0: 200 records per batch
	workers        int           // 0: the default
	schedule       bool          // run with the schedule (and so the sweeper)
	commitDelay    time.Duration // 0: 100 ms, to keep tests quick
	prefix         string        // the store's key prefix
	historyDays    int           // the consumer's and the store's (see withHistory)
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	brokers := testenv.Kafka(t, testTopics)
	rdb, prefix := testenv.Redis(t)
	// With the record cache, as `healthscore run` has it.
	store, err := state.NewRedis(rdb, state.Config{Prefix: prefix, Cache: 10000})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, brokers: brokers, store: store, rdb: rdb, model: scorer.DefaultModel(), enc: enc, commitDelay: 100 * time.Millisecond, prefix: prefix}
}

// run consumes with a fresh consumer in group until the group has committed
// every input record, then shuts it down and returns its registry.
func (h *harness) run(group string) *prometheus.Registry {
	h.t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{Brokers: h.brokers, Group: group, Model: h.model, Store: h.store, Encoder: h.enc,
		Logger: zaptest.NewLogger(h.t), Registerer: reg, MaxPollRecords: 200, MaxRecordBytes: h.maxRecordBytes,
		CommitDelay: h.commitDelay, Workers: h.workers, HistoryDays: h.historyDays}
	if h.maxPoll > 0 {
		cfg.MaxPollRecords = h.maxPoll
	}
	if h.schedule {
		cfg.Schedule = h.store
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	h.waitCommitted(group)
	cancel()
	if err := <-errc; err != nil {
		h.t.Fatalf("Run: %v", err)
	}
	return reg
}

func (h *harness) waitCommitted(group string) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitFor(h.t, 60*time.Second, "group "+group+" commits all input", func() bool {
		ends, err1 := adm.ListEndOffsets(context.Background(), "customer-events")
		committed, err2 := adm.FetchOffsets(context.Background(), group)
		if err1 != nil || err2 != nil {
			return false
		}
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup("customer-events", o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset) {
				behind = true
			}
		})
		return !behind
	})
}

func (h *harness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.DefaultProduceTopic("customer-events"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) count(topic string) int {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		h.t.Fatal(err)
	}
	n := int64(0)
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return int(n)
}

// randomEvents returns unkeyed records of random events (spread over
// partitions) and the events themselves.
func randomEvents(seed uint64, customers, n int) ([]*kgo.Record, []scorer.Event) {
	rng := rand.New(rand.NewPCG(seed, 1))
	types := []string{"login", "feature_used", "ticket_opened", "nps_submitted", "payment_failed", "payment_succeeded", "kb_viewed", "ignored_type"}
	base := time.Now().Add(-20 * 24 * time.Hour)
	var recs []*kgo.Record
	var evs []scorer.Event
	for i := range n {
		ev := map[string]any{
			"id": fmt.Sprintf("e%d", i), "customer_id": fmt.Sprintf("c%02d", rng.IntN(customers)),
			"type": types[rng.IntN(len(types))], "time": base.Add(time.Duration(rng.Int64N(int64(20 * 24 * time.Hour)))).UTC().Format(time.RFC3339Nano),
			"value": float64(rng.IntN(11)),
		}
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Value: b})
		e, err := scorer.DecodeEvent(b)
		if err != nil {
			panic(err)
		}
		evs = append(evs, e)
	}
	return recs, evs
}

// expected folds the events directly.
func expected(m *scorer.Model, evs []scorer.Event) map[string]*scorer.State {
	out := map[string]*scorer.State{}
	for i := range evs {
		st := out[evs[i].CustomerID]
		if st == nil {
			st = m.NewState()
		}
		if m.Apply(st, &evs[i]) {
			out[evs[i].CustomerID] = st
		}
	}
	return out
}

// checkStates compares every stored state with the direct fold.
func (h *harness) checkStates(want map[string]*scorer.State) {
	h.t.Helper()
	for id, w := range want {
		rec, err := h.store.Get(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		got, err := h.model.DecodeState(rec.Data)
		if err != nil {
			h.t.Fatalf("%s: %v", id, err)
		}
		if got.Events != w.Events {
			h.t.Errorf("%s: %d events applied, want %d", id, got.Events, w.Events)
		}
		gs := h.model.Evaluate(got, w.LastEvent).Score
		ws := h.model.Evaluate(w, w.LastEvent).Score
		if math.Abs(gs-ws) > 1e-9*math.Max(1, math.Abs(ws)) {
			h.t.Errorf("%s: score %v, want %v", id, gs, ws)
		}
		if rec.Pending != nil {
			h.t.Errorf("%s: outbox not cleared", id)
		}
	}
}

// TestRedeliveryIsNoop consumes a log, then consumes it all again with a
// new group (every record redelivered): nothing is applied twice, nothing
// new is published, and every state equals the direct fold.
func TestRedeliveryIsNoop(t *testing.T) {
	h := newHarness(t)
	recs, evs := randomEvents(7, 25, 1500)
	h.produce(recs...)
	reg := h.run("first")
	want := expected(h.model, evs)
	h.checkStates(want)
	applied := metricEvents(t, reg, ResultApplied)
	ignored := metricEvents(t, reg, ResultIgnored)
	if applied+ignored != 1500 || ignored == 0 {
		t.Fatalf("first pass: applied %v + ignored %v, want 1500 with some ignored", applied, ignored)
	}
	outputs := h.count("customer-health") + h.count("customer-health-alerts")
	if outputs == 0 {
		t.Fatal("no outputs published")
	}

	reg2 := h.run("second")
	if got := metricEvents(t, reg2, ResultApplied); got != 0 {
		t.Errorf("redelivery applied %v events, want 0", got)
	}
	if got := metricEvents(t, reg2, ResultDuplicate); got != applied {
		t.Errorf("redelivery counted %v duplicates, want %v", got, applied)
	}
	if got := h.count("customer-health") + h.count("customer-health-alerts"); got != outputs {
		t.Errorf("redelivery published %d more outputs", got-outputs)
	}
	h.checkStates(want)
}

// metricEvents reads healthscore_events_total{result} from reg.
// countersByLabel returns the values of a counter vector with one label,
// by label value.
func countersByLabel(t testing.TB, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func metricEvents(t testing.TB, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "healthscore_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no healthscore_events_total{result=%q}", result)
	return 0
}

// TestOutboxSurvivesCrash simulates a crash after a state and its outputs
// were saved but before they were produced: the next load of the customer
// (here a redelivery to a new group) produces the saved outputs, byte for
// byte, and clears the outbox.
func TestOutboxSurvivesCrash(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(3, 1, 20)
	h.produce(recs...)
	h.run("first")
	before := h.count("customer-health-alerts")

	rec, err := h.store.Get(context.Background(), "c00")
	if err != nil || rec.Version == 0 {
		t.Fatalf("customer c00: %v, version %d", err, rec.Version)
	}
	lost := &kgo.Record{Topic: "customer-health-alerts", Key: []byte("c00"), Value: []byte(`{"specversion":"1.0","type":"health.low","id":"lost-in-crash"}`)}
	rec.Pending = encodeOutbox([]*kgo.Record{lost})
	if ok, err := mustBind(t, h.store).Save(context.Background(), []state.Write{{ID: "c00", Expected: rec.Version, Rec: rec}}); err != nil || !ok.Applied[0] {
		t.Fatalf("seeding the outbox: %v %v", ok, err)
	}

	h.run("second")
	if got := h.count("customer-health-alerts"); got != before+1 {
		t.Fatalf("alert topic has %d records, want %d (the saved outbox)", got, before+1)
	}
	after, _ := h.store.Get(context.Background(), "c00")
	if after.Pending != nil {
		t.Error("outbox not cleared after it was produced")
	}
	if string(after.Data) != string(rec.Data) {
		t.Error("state changed on redelivery")
	}
}

// TestRacingConsumersApplyOnce runs two consumers of different groups at
// once over the same log and store: every record reaches both, and the
// per-partition offsets in the states with the compare-and-set make each
// event applied exactly once overall.
func TestRacingConsumersApplyOnce(t *testing.T) {
	h := newHarness(t)
	h.raceTwoGroups(11, 6, 2000) // few customers: many conflicts
}

// TestWorkersApplyOnce: batches large enough to be split over four
// concurrent groups of customers, consumed by two groups at once over the
// same store, still apply every event exactly once.
func TestWorkersApplyOnce(t *testing.T) {
	h := newHarness(t)
	h.maxPoll, h.workers = 6000, 4
	h.raceTwoGroups(13, 3000, 12000)
}

// raceTwoGroups produces n random events over customers and consumes them
// with two groups at once; it checks that every event was applied once in
// all: the states equal the direct fold, and the groups' applied counts add
// up to the events (less the ignored ones).
func (h *harness) raceTwoGroups(seed uint64, customers, n int) {
	h.t.Helper()
	recs, evs := randomEvents(seed, customers, n)
	h.produce(recs...)
	var wg sync.WaitGroup
	regs := make([]*prometheus.Registry, 2)
	for i, g := range []string{"a", "b"} {
		wg.Go(func() { regs[i] = h.run(g) })
	}
	wg.Wait()
	h.checkStates(expected(h.model, evs))
	total := metricEvents(h.t, regs[0], ResultApplied) + metricEvents(h.t, regs[1], ResultApplied)
	ignored := metricEvents(h.t, regs[0], ResultIgnored)
	if int(total+ignored) != n {
		h.t.Errorf("applied %v in total (+%v ignored), want %d", total, ignored, n)
	}
}

// TestDeadLetters: bad records of every kind reach the DLQ with their
// reason, never block the partition, and the good events around them are
// applied; a record too large even for the DLQ topic goes there without its
// value, marked so.
func TestDeadLetters(t *testing.T) {
	h := newHarness(t)
	h.maxRecordBytes = 8 << 10
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	limit := "5000"
	res, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, "customer-events-dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("cannot limit the DLQ topic's message size: %v", r.Err)
		}
	}
	cl.Close()

	pad := make([]byte, 10<<10) // incompressible: the producer compresses
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pad {
		pad[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
	}
	big := `{"customer_id":"c00","type":"login","pad":"` + string(pad) + `"}`
	bad := map[string]string{`{`: "invalid_json", `{"type":"login"}`: "missing_customer_id", `{"customer_id":"c00"}`: "missing_type",
		`{"customer_id":"c00","type":"login","time":"soon"}`: "invalid_time", `{"customer_id":"c00","type":"login","value":"1"}`: "invalid_value",
		`{"customer_id":"c00","type":"login","time":"2099-01-01T00:00:00Z"}`: "time_skew", big: "too_large",
		// Other input formats (package ingest), detected per record.
		`{"specversion":"0.3","subject":"c00","type":"login"}`: "invalid_cloudevent", `{"type":"page","userId":"c00"}`: "unsupported_segment_call",
		`{"type":"track","event":"login","anonymousId":"a"}`: "missing_customer_id"}
	recs, evs := randomEvents(5, 3, 50)
	for b := range bad {
		recs = append(recs, &kgo.Record{Value: []byte(b)})
	}
	h.produce(recs...)
	reg := h.run("dlq")
	if got := metricEvents(t, reg, ResultDeadLettered); got != float64(len(bad)) {
		t.Errorf("dead-lettered %v, want %d", got, len(bad))
	}
	// Every record is counted in the format it was read in, except the one
	// too large to decode.
	wantFormats := map[string]float64{"native": float64(len(recs) - 4), "cloudevents": 1, "segment": 2}
	if got := countersByLabel(t, reg, "healthscore_input_records_total"); !maps.Equal(got, wantFormats) {
		t.Errorf("healthscore_input_records_total: %v, want %v", got, wantFormats)
	}
	h.checkStates(expected(h.model, evs))

	dls := h.readDeadLetters(len(bad))
	for _, r := range dls {
		reason := r.hdr[alerts.HeaderDLQReason]
		if reason == "too_large" {
			if r.Value != nil || r.hdr[HeaderDLQValueDropped] != "true" {
				t.Errorf("too_large dead letter: value of %d bytes, value_dropped %q", len(r.Value), r.hdr[HeaderDLQValueDropped])
			}
			continue
		}
		if want, ok := bad[string(r.Value)]; !ok || want != reason {
			t.Errorf("DLQ record %q: reason %q, want %q", r.Value, reason, want)
		}
	}
	if len(dls) != len(bad) {
		t.Errorf("read %d dead letters, want %d", len(dls), len(bad))
	}
}

// deadLetter is a record read from the DLQ topic with its headers by key.
type deadLetter struct {
	*kgo.Record
	hdr map[string]string
}

// readDeadLetters reads the DLQ topic until it has n records or 20 s
// passed, and returns what it read.
func (h *harness) readDeadLetters(n int) []deadLetter {
	h.t.Helper()
	rc, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics("customer-events-dlq"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []deadLetter
	for len(out) < n && ctx.Err() == nil {
		rc.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			hdr := map[string]string{}
			for _, x := range r.Headers {
				hdr[x.Key] = string(x.Value)
			}
			out = append(out, deadLetter{Record: r, hdr: hdr})
		})
	}
	return out
}

// TestDeadLetterRefusedByTheClient: a dead letter larger than the
// producer's batch bound (1,000,012 bytes) is refused by the client before
// it is sent, so its result comes back first, ahead of the dead letters
// produced before it. It must still be the one sent again without its
// value, and every other dead letter must arrive once.
func TestDeadLetterRefusedByTheClient(t *testing.T) {
	h := newHarness(t)
	h.maxRecordBytes = 8 << 10
	big := `{"customer_id":"c00","type":"login","pad":"` + strings.Repeat("x", 1_000_100) + `"}`
	small := []string{`{`, `{"type":"login"}`, `{"customer_id":"c00"}`, `{"customer_id":"c00","type":"login","time":"soon"}`,
		`{"customer_id":"c00","type":"login","value":"1"}`}
	var recs []*kgo.Record
	for _, v := range append(small, big) { // one partition, the big one last
		recs = append(recs, &kgo.Record{Topic: "customer-events", Partition: 0, Value: []byte(v)})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	h.run("refused")

	dls := h.readDeadLetters(len(recs))
	bySource := map[string]int{}
	stripped := 0
	for _, r := range dls {
		bySource[r.hdr[alerts.HeaderDLQSourceOffset]]++
		if r.hdr[alerts.HeaderDLQReason] == ReasonTooLarge && r.Value == nil && r.hdr[HeaderDLQValueDropped] == "true" {
			stripped++
		}
	}
	if seen := len(dls); seen != len(recs) || len(bySource) != len(recs) || stripped != 1 {
		t.Errorf("read %d dead letters from %d source offsets (%v), %d too_large without its value; want %d, %d and 1",
			seen, len(bySource), bySource, stripped, len(recs), len(recs))
	}
}

// TestOverrideInStream: a health.override event sets the published score
// and band; an older override arriving later does not replace it; events
// keep folding underneath.
func TestOverrideInStream(t *testing.T) {
	h := newHarness(t)
	h.schedule = true
	base := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 3 {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"customer_id":"ovr","type":"ticket_escalated","time":%q}`, base.Add(time.Duration(i)*time.Hour).Format(time.RFC3339))})
	}
	recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"customer_id":"ovr","type":"health.override","value":95,"reason":"renewal signed","time":%q,"attributes":{"by":"csm@example.com"}}`, base.Add(5*time.Hour).Format(time.RFC3339))})
	h.produce(recs...)
	h.run("ovr-1")
	rec, err := h.store.Get(context.Background(), "ovr")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Score != 95 || rec.Band != state.BandGreen {
		t.Fatalf("after the override: score %v band %q, want 95 green", rec.Score, rec.Band)
	}
	// An older override, and another event: the newer override stays, and
	// the event is folded underneath.
	h.produce(
		&kgo.Record{Value: fmt.Appendf(nil, `{"customer_id":"ovr","type":"health.override","value":10,"time":%q}`, base.Add(4*time.Hour).Format(time.RFC3339))},
		&kgo.Record{Value: fmt.Appendf(nil, `{"customer_id":"ovr","type":"login","time":%q}`, base.Add(6*time.Hour).Format(time.RFC3339))},
	)
	h.run("ovr-1")
	rec, _ = h.store.Get(context.Background(), "ovr")
	st, err := h.model.DecodeState(rec.Data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Score != 95 || st.Override == nil || st.Override.Value != 95 {
		t.Errorf("an older override replaced the newer: score %v, override %+v", rec.Score, st.Override)
	}
	if st.Events != 6 {
		t.Errorf("%d events folded, want 6", st.Events)
	}
	n, err := h.store.ActiveOverrides(context.Background(), base.UnixMilli())
	if err != nil || n != 1 {
		t.Errorf("%d active overrides (%v), want 1", n, err)
	}
}

// TestCommitWaitsForDurability: offsets are committed only CommitDelay after
// their batch's state writes (so Redis with appendfsync everysec has synced
// them), and all of them are committed by then.
func TestCommitWaitsForDurability(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(2, 10, 200)
	h.produce(recs...)
	c, err := New(Config{Brokers: h.brokers, Group: "durable", Model: h.model, Store: h.store, Encoder: h.enc,
		Logger: zaptest.NewLogger(t), Registerer: prometheus.NewRegistry(), CommitDelay: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	// Wait until every customer's state is written.
	waitFor(t, 30*time.Second, "every state written", func() bool {
		for i := range 10 {
			if rec, _ := h.store.Get(context.Background(), fmt.Sprintf("c%02d", i)); rec.Version == 0 {
				return false
			}
		}
		return true
	})
	written := time.Now()
	if committed := h.committed("durable"); committed > 0 && time.Since(written) < time.Second {
		t.Errorf("%d offsets committed right after the state writes; want none before the delay", committed)
	}
	h.waitCommitted("durable")
	if d := time.Since(written); d < time.Second {
		t.Errorf("offsets committed %s after the writes; the delay is 1.5 s", d)
	}
}

// mustBind opens a session on store.
func mustBind(t testing.TB, store *state.Redis) state.Bound {
	t.Helper()
	b, err := store.Bind(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// committed sums the group's committed offsets.
func (h *harness) committed(group string) int64 {
	h.t.Helper()
	return testenv.Committed(h.t, h.brokers, group)
}

// TestEmbeddedMiniredis: with the embedded miniredis (what `healthscore run`
// uses without --redis, and the README's demo), which has no run_id, the
// pipeline switches the restart checks off and applies every event. It
// retried forever once, when a failed INFO server counted as "Redis down".
func TestEmbeddedMiniredis(t *testing.T) {
	h := newHarness(t)
	mr := miniredis.RunT(t)
	h.rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = h.rdb.Close() })
	store, err := state.NewRedis(h.rdb, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ServerID(context.Background()); !errors.Is(err, state.ErrNoServerID) {
		t.Fatalf("miniredis ServerID: %v, want ErrNoServerID", err)
	}
	h.store = store
	h.schedule = true
	recs, evs := randomEvents(17, 30, 600)
	h.produce(recs...)
	reg := h.run("embedded")
	h.checkStates(expected(h.model, evs))
	if applied, ignored := metricEvents(t, reg, ResultApplied), metricEvents(t, reg, ResultIgnored); applied+ignored != 600 {
		t.Fatalf("applied %v + ignored %v, want 600", applied, ignored)
	}
}
