package consumer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/state"
)

// start runs a consumer in group with hooks (and cfg adjusted by tune)
// until the returned stop is called; stop waits for Run to return.
func (h *harness) start(group string, hooks *testHooks, tune func(*Config)) (*Consumer, *prometheus.Registry, func()) {
	h.t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{Brokers: h.brokers, Group: group, Model: h.model, Store: h.store, Encoder: h.enc,
		Logger: zaptest.NewLogger(h.t), Registerer: reg, MaxPollRecords: 200, CommitDelay: h.commitDelay, hooks: hooks}
	if tune != nil {
		tune(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	return c, reg, func() {
		cancel()
		if err := <-errc; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
}

// padded pads each record with a header to exactly size bytes of key,
// value and headers, so that byte bounds can be checked exactly.
func padded(recs []*kgo.Record, size int) []*kgo.Record {
	for _, r := range recs {
		n := size - len(r.Key) - len(r.Value) - len("pad")
		if n < 0 {
			panic(fmt.Sprintf("record of %d bytes: larger than %d", len(r.Value), size))
		}
		r.Headers = []kgo.RecordHeader{{Key: "pad", Value: make([]byte, n)}}
	}
	return recs
}

// batchLog records the batches a consumer processed.
type batchLog struct {
	mu    sync.Mutex
	sizes []int
	bytes []int64
	grows atomic.Int64
}

func (l *batchLog) hooks() *testHooks {
	return &testHooks{
		grow: func(int) { l.grows.Add(1) },
		batch: func(recs []*kgo.Record) {
			var b int64
			for _, r := range recs {
				b += int64(len(r.Key) + len(r.Value))
				for _, hd := range r.Headers {
					b += int64(len(hd.Key) + len(hd.Value))
				}
			}
			l.mu.Lock()
			l.sizes = append(l.sizes, len(recs))
			l.bytes = append(l.bytes, b)
			l.mu.Unlock()
		},
	}
}

// histogramCount returns the observations of a histogram and how many were
// above le.
func histogramCount(t testing.TB, reg *prometheus.Registry, name string, le float64) (total, above uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		for _, b := range hist.GetBucket() {
			if b.GetUpperBound() == le {
				return hist.GetSampleCount(), hist.GetSampleCount() - b.GetCumulativeCount()
			}
		}
	}
	t.Fatalf("no histogram %s with a bucket at %v", name, le)
	return 0, 0
}

// TestCatchUpBatchesGrow: with a backlog, batches grow beyond one poll (200
// records) from the records the client already fetched, up to the record
// bound, and every event is applied once; healthscore_batch_polls shows it.
func TestCatchUpBatchesGrow(t *testing.T) {
	h := newHarness(t)
	recs, evs := randomEvents(21, 300, 6000)
	h.produce(padded(recs, 400)...)
	var log batchLog
	_, reg, stop := h.start("g", log.hooks(), func(c *Config) { c.MaxCatchUpRecords = 1000 })
	h.waitCommitted("g")
	stop()
	h.checkStates(expected(h.model, evs))
	if got, ign := metricEvents(t, reg, ResultApplied), metricEvents(t, reg, ResultIgnored); int(got+ign) != len(evs) {
		t.Errorf("applied %v (+%v ignored), want %d", got, ign, len(evs))
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if m := slices.Max(log.sizes); m <= 200 || m > 1000 {
		t.Errorf("largest batch: %d records, want more than one poll (200) and at most the bound (1000); batches %v", m, log.sizes)
	}
	if total, grown := histogramCount(t, reg, "healthscore_batch_polls", 1); grown == 0 || total != uint64(len(log.sizes)) {
		t.Errorf("healthscore_batch_polls: %d of %d batches above one poll; want some, of %d", grown, total, len(log.sizes))
	}
}

// TestCatchUpBytesBound: a catch-up batch stops growing at the byte bound.
// The first poll is taken whole (200 records of 400 bytes: 80,000 bytes),
// growth polls are sized to end at the bound, 120,000 bytes.
func TestCatchUpBytesBound(t *testing.T) {
	h := newHarness(t)
	recs, evs := randomEvents(22, 300, 4000)
	h.produce(padded(recs, 400)...)
	var log batchLog
	_, _, stop := h.start("g", log.hooks(), func(c *Config) { c.MaxCatchUpBytes = 120000 })
	h.waitCommitted("g")
	stop()
	h.checkStates(expected(h.model, evs))
	log.mu.Lock()
	defer log.mu.Unlock()
	if m := slices.Max(log.bytes); m != 120000 {
		t.Errorf("largest batch: %d bytes, want the bound, 120000; batches %v", m, log.bytes)
	}
}

// TestCatchUpSingleEventPrompt: with no backlog, an event is processed in a
// batch of its own at once: no growth poll is even tried, nothing waits to
// accumulate.
func TestCatchUpSingleEventPrompt(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(23, 5, 2)
	var log batchLog
	_, _, stop := h.start("g", log.hooks(), nil)
	defer stop()
	h.produce(recs[0])
	waitFor(t, 30*time.Second, "the first event processed", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.sizes) == 1
	})
	start := time.Now()
	h.produce(recs[1])
	// Well under maxPollWait (5 s): a loop that waited for a poll to
	// accumulate more would take that long.
	waitFor(t, 3*time.Second, "the second event processed", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.sizes) == 2
	})
	t.Logf("second event processed %v after it was produced", time.Since(start))
	if log.sizes[1] != 1 || log.grows.Load() != 0 {
		t.Errorf("the lone event's batch: %d records, %d growth polls; want 1 and 0", log.sizes[1], log.grows.Load())
	}
}

// TestCatchUpRebalance: a second member joins while the first is growing a
// catch-up batch. The rebalance waits until that batch is processed (the
// growth stops as soon as the rebalance is pending) and its offsets are
// committed at the revocation, so the new owner starts after it: every event
// is applied exactly once, none is even redelivered (no duplicates), and
// no member processes a partition after its revocation.
func TestCatchUpRebalance(t *testing.T) {
	h := newHarness(t)
	// 600 records per partition: a batch of 1,300 spans three of the four.
	recs, evs := randomEvents(24, 500, 2400)
	h.produce(recs...)

	type event struct {
		member string
		kind   string // batch (processed), revoked (and committed), assigned
		parts  map[int32]bool
	}
	var mu sync.Mutex
	var events []event
	note := func(member, kind string, parts map[int32]bool) {
		mu.Lock()
		events = append(events, event{member, kind, parts})
		mu.Unlock()
	}
	partsOf := func(p map[string][]int32) map[int32]bool {
		out := map[int32]bool{}
		for _, ps := range p["customer-events"] {
			out[ps] = true
		}
		return out
	}
	hooksFor := func(member string) *testHooks {
		return &testHooks{
			batch: func(rs []*kgo.Record) {
				ps := map[int32]bool{}
				for _, r := range rs {
					ps[r.Partition] = true
				}
				note(member, "batch", ps)
			},
			revoked:  func(p map[string][]int32) { note(member, "revoked", partsOf(p)) },
			assigned: func(p map[string][]int32) { note(member, "assigned", partsOf(p)) },
		}
	}

	tune := func(c *Config) { c.MaxCatchUpRecords = 4000 }
	ha := hooksFor("a")
	var a atomic.Pointer[Consumer]
	var regB *prometheus.Registry
	var stopB func()
	var joined sync.Once
	var waited, batchDone atomic.Bool
	hb := ha.batch
	ha.batch = func(rs []*kgo.Record) {
		if waited.Load() {
			batchDone.Store(true)
		}
		hb(rs)
	}
	ha.grow = func(records int) {
		if waited.Load() && !batchDone.Load() {
			t.Error("the batch grew on while a rebalance waited on it")
		}
		if records < 1300 {
			return
		}
		joined.Do(func() {
			// In the loop, with a batch being grown: a second member joins
			// and the rebalance comes to wait on this batch.
			_, regB, stopB = h.start("g", hooksFor("b"), tune)
			if !eventually(60*time.Second, func() bool { c := a.Load(); return c != nil && c.rebalancing.Load() }) {
				t.Error("the rebalance never waited on the batch in hand")
			}
			waited.Store(true)
		})
	}
	ca, regA, stopA := h.start("g", ha, tune)
	a.Store(ca)
	h.waitCommitted("g")
	stopA()
	if stopB == nil {
		t.Fatal("no batch grew: the second member never joined")
	}
	stopB()

	h.checkStates(expected(h.model, evs))
	applied := metricEvents(t, regA, ResultApplied) + metricEvents(t, regB, ResultApplied)
	ignored := metricEvents(t, regA, ResultIgnored) + metricEvents(t, regB, ResultIgnored)
	if int(applied+ignored) != len(evs) {
		t.Errorf("applied %v (+%v ignored), want %d", applied, ignored, len(evs))
	}
	if d := metricEvents(t, regA, ResultDuplicate) + metricEvents(t, regB, ResultDuplicate); d != 0 {
		t.Errorf("%v records redelivered: a revoked partition's records were processed past its commit", d)
	}
	mu.Lock()
	defer mu.Unlock()
	revokedFrom := map[string]map[int32]bool{"a": {}, "b": {}}
	sawRevoke := false
	for _, e := range events {
		switch e.kind {
		case "revoked":
			sawRevoke = sawRevoke || (e.member == "a" && len(e.parts) > 0)
			for p := range e.parts {
				revokedFrom[e.member][p] = true
			}
		case "assigned":
			for p := range e.parts {
				delete(revokedFrom[e.member], p)
			}
		case "batch":
			for p := range e.parts {
				if revokedFrom[e.member][p] {
					t.Errorf("member %s processed partition %d after its revocation", e.member, p)
				}
			}
		}
	}
	if !sawRevoke {
		t.Error("the first member never had a partition revoked: no rebalance was tested")
	}
}

// slowSaveStore is a Store whose sessions' first Save waits until release
// is closed (a batch that takes long), closing entered when it starts.
type slowSaveStore struct {
	Store
	release, entered chan struct{}
	once             sync.Once
}

func (s *slowSaveStore) Bind(ctx context.Context) (state.Bound, error) {
	b, err := s.Store.Bind(ctx)
	if err != nil {
		return nil, err
	}
	return slowSaveSession{Bound: b, s: s}, nil
}

type slowSaveSession struct {
	state.Bound
	s *slowSaveStore
}

func (b slowSaveSession) Save(ctx context.Context, ws []state.Write) (state.Saved, error) {
	first := false
	b.s.once.Do(func() { first = true; close(b.s.entered) })
	if first {
		<-b.s.release
	}
	return b.Bound.Save(ctx, ws)
}

// TestSweeperHeldThroughLongBatch: a batch polled with a backlog behind it
// holds the sweeper for as long as it is in hand, not just sweepHold from
// its poll: a catch-up batch can take longer, and a sweep meanwhile would
// evaluate, at the clock, customers whose events are in hand.
func TestSweeperHeldThroughLongBatch(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(25, 20, 100)
	h.produce(recs...)
	clock := &fakeClock{}
	clock.Set(time.Now())
	store := &slowSaveStore{Store: h.store, release: make(chan struct{}), entered: make(chan struct{})}
	c, _, stop := h.start("g", nil, func(cfg *Config) {
		cfg.Store, cfg.Schedule, cfg.Now = store, h.store, clock.Now
		cfg.MaxPollRecords, cfg.CommitDelay, cfg.SweepInterval = 10, -1, 10*time.Millisecond
	})
	defer stop()
	select {
	case <-store.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch reached its save")
	}
	clock.Add(3 * sweepHold) // the batch has taken longer than sweepHold
	after := clock.Now().UnixNano()
	// Two sweeper ticks after the clock moved: the second began after it.
	for range 2 {
		c.metrics.sweeperHeld.Set(0)
		waitFor(t, 10*time.Second, "a sweeper tick", func() bool {
			return testutil.ToFloat64(c.metrics.sweeperHeld) == 1 || c.swept.Load() >= after
		})
	}
	if c.swept.Load() >= after {
		t.Error("the sweeper swept while a batch polled with a backlog was in hand")
	}
	close(store.release)
	h.waitCommitted("g")
}
