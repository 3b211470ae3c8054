package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/state"
)

// clearCrashStore is a Store whose sessions stop at the first outbox clear
// (the acknowledgement that has the outboxes deleted), as a crash between
// produce and clear would: no clear reaches Redis, and each waits until the
// consumer is stopped.
type clearCrashStore struct {
	Store
	crashed chan []state.Outbox // gets the first clear's outboxes
	once    sync.Once
}

func (s *clearCrashStore) Bind(ctx context.Context) (state.Bound, error) {
	b, err := s.Store.Bind(ctx)
	if err != nil {
		return nil, err
	}
	return clearCrashSession{Bound: b, s: s}, nil
}

type clearCrashSession struct {
	state.Bound
	s *clearCrashStore
}

func (b clearCrashSession) Acknowledge(ctx context.Context, obs []state.Outbox) error {
	b.s.once.Do(func() { b.s.crashed <- obs })
	<-ctx.Done()
	return ctx.Err()
}

// TestCallOutboxSurvivesCrashBeforeClear: a consumer stops (crashes) after
// a save and the produce, before the clear. The save stored its customers'
// outboxes in one string (one per save call) that counts the records
// naming it; they load back, and a new consumer in the same group (with new events for
// some of the customers) produces every one of those outputs again with the
// same bytes, then clears them: no outbox key is left.
func TestCallOutboxSurvivesCrashBeforeClear(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(11, 6, 60)
	h.produce(recs...)

	store := &clearCrashStore{Store: h.store, crashed: make(chan []state.Outbox, 1)}
	c, err := New(Config{Brokers: h.brokers, Group: "crash", Model: h.model, Store: store, Encoder: h.enc,
		Logger: zaptest.NewLogger(t), Registerer: prometheus.NewRegistry(), MaxPollRecords: 200, CommitDelay: h.commitDelay})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var obs []state.Outbox
	select {
	case obs = <-store.crashed:
	case <-time.After(60 * time.Second):
		t.Fatal("no outbox clear within 60s")
	}

	// What the crash left in Redis: each record names its save call, whose
	// string holds the customer's outbox.
	ids := make([]string, len(obs))
	for i, o := range obs {
		ids[i] = o.ID
	}
	loaded, err := h.store.Load(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	var outputs []*kgo.Record
	for i, r := range loaded {
		if len(r.Pending) == 0 || r.OutboxCall == "" || r.OutboxCall != obs[i].Call || r.Version != obs[i].Version {
			t.Fatalf("%s after the crash: version %d, outbox of %d bytes in call %q; want version %d, an outbox in call %q",
				ids[i], r.Version, len(r.Pending), r.OutboxCall, obs[i].Version, obs[i].Call)
		}
		calls[r.OutboxCall]++
		out, err := decodeOutbox(r.Pending)
		if err != nil || len(out) == 0 {
			t.Fatalf("%s: stored outbox: %d records, %v", ids[i], len(out), err)
		}
		outputs = append(outputs, out...)
	}
	for call, n := range calls {
		// The call's string starts with the number of records naming it.
		if got, err := h.rdb.GetRange(context.Background(), h.store.CallOutboxKey(call), 0, 9).Result(); err != nil || got != fmt.Sprintf("%010d", n) {
			t.Fatalf("call %s: count %q (%v), want %d", call, got, err, n)
		}
	}
	t.Logf("crashed after saving %d outboxes in %d save calls", len(obs), len(calls))
	cancel()
	if err := <-errc; err != nil {
		t.Logf("crashed consumer: %v", err)
	}
	copies := h.outputCopies()
	for _, r := range outputs {
		if n := copies[outputKey(r)]; n != 1 {
			t.Fatalf("output %s/%s produced %d times before the crash, want 1", r.Topic, r.Key, n)
		}
	}

	// New events for half the customers: their outboxes move on with new
	// states, the others' with their records unchanged.
	more, _ := randomEvents(12, 3, 30)
	h.produce(more...)
	h.run("crash") // the same group: the batch was not committed
	copies = h.outputCopies()
	for _, r := range outputs {
		if n := copies[outputKey(r)]; n != 2 {
			t.Fatalf("output %s/%s (%s): %d copies after the restart, want 2 with the same bytes", r.Topic, r.Key, r.Value, n)
		}
	}
	if keys, err := h.rdb.Keys(context.Background(), h.prefix+"o:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("outbox keys %q left (%v)", keys, err)
	}
	loaded, err = h.store.Load(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range loaded {
		if r.Pending != nil {
			t.Errorf("%s: outbox not cleared", ids[i])
		}
	}
}

func outputKey(r *kgo.Record) string {
	return r.Topic + "\x00" + string(r.Key) + "\x00" + string(r.Value)
}

// outputCopies reads both output topics from the start and counts the
// copies of each record (topic, key and value).
func (h *harness) outputCopies() map[string]int {
	h.t.Helper()
	topics := []string{"customer-health", "customer-health-alerts"}
	want := 0
	for _, topic := range topics {
		want += h.count(topic)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topics...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	copies := map[string]int{}
	n := 0
	for n < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			copies[outputKey(r)]++
			n++
		})
	}
	if n != want {
		h.t.Fatalf("read %d output records, want %d", n, want)
	}
	return copies
}

// TestCommittedInputLeavesNoOutbox: the outboxes of a batch are deleted
// later than its produce (with the next save, state.Bound.Acknowledge), but
// always before its offsets are committed. Once a running consumer, idle
// after its last batch, has committed every input record, no outbox is
// left in Redis, and every output is on its topic once.
func TestCommittedInputLeavesNoOutbox(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(21, 8, 80)
	h.produce(recs...)
	_, _, stop := h.start("flushed", nil, nil)
	defer stop()
	h.waitCommitted("flushed")
	if keys, err := h.rdb.Keys(context.Background(), h.prefix+"o:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("outbox keys %q left after every input record was committed (%v)", keys, err)
	}
	copies := h.outputCopies()
	if len(copies) == 0 {
		t.Fatal("no outputs: the test checks nothing")
	}
	for k, n := range copies {
		if n != 1 {
			t.Fatalf("output %q produced %d times, want once", k, n)
		}
	}
}
