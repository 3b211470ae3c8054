package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// fetchOf builds a poll's result for one partition: records at offsets
// from, dated ts, with the partition's high watermark hwm.
func fetchOf(topic string, partition int32, from int64, hwm int64, ts ...time.Time) kgo.Fetches {
	var recs []*kgo.Record
	for i, t := range ts {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: partition, Offset: from + int64(i), Timestamp: t})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topic, Partitions: []kgo.FetchPartition{{Partition: partition, HighWatermark: hwm, Records: recs}}}}}}
}

// TestLagSeconds: healthscore_consumer_lag_seconds is 0 for a partition
// just assigned, the age of the first polled record while its batch is in
// hand, the age of the batch's last record when records remain behind, 0
// once caught up, and gone once revoked.
func TestLagSeconds(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	l := newLagAges(func() time.Time { return now })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l)
	want := func(step, expected string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP healthscore_consumer_lag_seconds Age of the oldest input record this instance has not processed yet, per owned partition (now minus its Kafka timestamp); 0 when caught up.
# TYPE healthscore_consumer_lag_seconds gauge
`+expected), "healthscore_consumer_lag_seconds"); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	l.assign(map[string][]int32{"in": {0, 1}})
	want("assigned", `healthscore_consumer_lag_seconds{partition="0",topic="in"} 0
healthscore_consumer_lag_seconds{partition="1",topic="in"} 0
`)
	behind := fetchOf("in", 1, 10, 100, now.Add(-90*time.Second), now.Add(-60*time.Second))
	l.polled(behind)
	want("polled", `healthscore_consumer_lag_seconds{partition="0",topic="in"} 0
healthscore_consumer_lag_seconds{partition="1",topic="in"} 90
`)
	now = now.Add(10 * time.Second) // the batch takes 10 s
	want("in hand", `healthscore_consumer_lag_seconds{partition="0",topic="in"} 0
healthscore_consumer_lag_seconds{partition="1",topic="in"} 100
`)
	l.processed(behind)
	want("processed, 88 records behind", `healthscore_consumer_lag_seconds{partition="0",topic="in"} 0
healthscore_consumer_lag_seconds{partition="1",topic="in"} 70
`)
	last := fetchOf("in", 1, 12, 13, now.Add(-time.Second))
	l.polled(last)
	l.processed(last)
	want("caught up", `healthscore_consumer_lag_seconds{partition="0",topic="in"} 0
healthscore_consumer_lag_seconds{partition="1",topic="in"} 0
`)
	l.polled(fetchOf("in", 0, 0, 5, now.Add(time.Minute))) // a producer clock ahead of ours
	l.revoke(map[string][]int32{"in": {1}})
	want("future timestamp, revoked", `healthscore_consumer_lag_seconds{partition="0",topic="in"} 0
`)
}

// TestHealthSignals runs a consumer to committed offsets and checks what it
// tells the probes and the metrics: a member with partitions, ready, live,
// a last commit time, the model in use (also after SetModel), every
// dead-letter reason at 0, lag seconds per owned partition.
func TestHealthSignals(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(11, 5, 40)
	h.produce(recs...)
	reg := prometheus.NewRegistry()
	c, err := New(Config{Brokers: h.brokers, Group: "health", Model: h.model, Store: h.store, Encoder: h.enc,
		Logger: zaptest.NewLogger(t), Registerer: reg, CommitDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(); err == nil || err.Error() != "starting" {
		t.Errorf("Ready before Run: %v, want starting", err)
	}
	if joined, _ := c.Assignment(); joined {
		t.Error("joined before Run")
	}
	start := float64(time.Now().Unix())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	h.waitCommitted("health")
	waitFor(t, 10*time.Second, "healthscore_last_commit_timestamp_seconds set", func() bool {
		return testutil.ToFloat64(c.metrics.lastCommit) >= start
	})
	if got := testutil.ToFloat64(c.metrics.lastCommit); got < start || got > float64(time.Now().Unix())+1 {
		t.Errorf("healthscore_last_commit_timestamp_seconds = %v, want about now (%v)", got, start)
	}
	if joined, n := c.Assignment(); !joined || n != int(testTopics["customer-events"]) {
		t.Errorf("Assignment() = %v, %d; want joined with %d partitions", joined, n, testTopics["customer-events"])
	}
	nParts := float64(testTopics["customer-events"])
	if got := testutil.ToFloat64(c.metrics.owned); got != nParts {
		t.Errorf("healthscore_partitions_owned = %v, want %v", got, nParts)
	}
	if got := testutil.ToFloat64(c.metrics.moved.WithLabelValues("assigned")); got != nParts {
		t.Errorf(`healthscore_rebalance_partitions_total{event="assigned"} = %v, want %v`, got, nParts)
	}
	if err := c.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := c.Live(time.Minute); err != nil {
		t.Errorf("Live: %v", err)
	}
	if n := testutil.CollectAndCount(c.metrics.lagSeconds); n != int(testTopics["customer-events"]) {
		t.Errorf("%d healthscore_consumer_lag_seconds series, want one per partition", n)
	}
	for _, r := range append(scorer.DecodeReasons(), ReasonTooLarge, ReasonTimeSkew) {
		if _, err := c.metrics.deadLetters.GetMetricWithLabelValues(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.CollectAndCount(c.metrics.deadLetters); n != len(scorer.DecodeReasons())+2 {
		t.Errorf("%d healthscore_dead_letters_total series before any dead letter, want every reason", n)
	}
	if got := testutil.ToFloat64(c.metrics.modelInfo.WithLabelValues(h.model.Name, h.model.Version)); got != 1 {
		t.Errorf("healthscore_model_info for the model in use = %v", got)
	}
	next := *h.model
	next.Version = "next"
	c.SetModel(&next)
	if got := testutil.ToFloat64(c.metrics.modelInfo.WithLabelValues(h.model.Name, "next")); got != 1 || testutil.CollectAndCount(c.metrics.modelInfo) != 1 {
		t.Errorf("after SetModel: healthscore_model_info{version=next} = %v with %d series; want 1 alone", got, testutil.CollectAndCount(c.metrics.modelInfo))
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Leaving the group at shutdown hands every partition over.
	if got := testutil.ToFloat64(c.metrics.moved.WithLabelValues("revoked")); got != nParts {
		t.Errorf(`healthscore_rebalance_partitions_total{event="revoked"} after shutdown = %v, want %v`, got, nParts)
	}
	if got := testutil.ToFloat64(c.metrics.owned); got != 0 {
		t.Errorf("healthscore_partitions_owned after shutdown = %v, want 0", got)
	}
}

// TestLive: the loop is wedged only when it has not turned for the timeout
// while a batch is in hand; idle (no work) is live however long.
func TestLive(t *testing.T) {
	h := newHarness(t)
	c, err := New(Config{Brokers: h.brokers, Model: h.model, Store: h.store, Encoder: h.enc,
		Logger: zaptest.NewLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.client.Close()
	if err := c.Live(time.Second); err != nil {
		t.Errorf("before Run: %v", err)
	}
	c.turned.Store(time.Now().Add(-time.Hour).UnixNano())
	if err := c.Live(time.Minute); err != nil {
		t.Errorf("idle for an hour with no work: %v", err)
	}
	c.busy.Store(true)
	if err := c.Live(time.Minute); err == nil || !strings.Contains(err.Error(), "batch in hand") {
		t.Errorf("an hour without turning with a batch in hand: %v", err)
	}
	// A retry of the processing loop's batch turns it; the sweeper's does not.
	calls := 0
	_ = c.retry(context.Background(), "state", func() error { calls++; return nil })
	if err := c.Live(time.Minute); err == nil {
		t.Error("a retry outside the processing loop counted as a turn")
	}
	_ = c.retry(context.WithValue(context.Background(), mainLoopKey{}, true), "state", func() error { calls++; return nil })
	if err := c.Live(time.Minute); err != nil || calls != 2 {
		t.Errorf("after a turn of the processing loop: %v (%d calls)", err, calls)
	}
}

// stuckStore is a Store whose sessions' Load either hangs, ignoring its
// context (a wedged call), or fails at once (Redis down).
type stuckStore struct {
	Store
	hang    chan struct{} // Load waits for it to close, when not nil
	entered chan struct{} // closed by the first Load
	once    sync.Once
}

func (s *stuckStore) Bind(ctx context.Context) (state.Bound, error) {
	b, err := s.Store.Bind(ctx)
	if err != nil {
		return nil, err
	}
	return stuckSession{Bound: b, s: s}, nil
}

type stuckSession struct {
	state.Bound
	s *stuckStore
}

func (b stuckSession) Load(ctx context.Context, ids []string) ([]state.Record, error) {
	s := b.s
	s.once.Do(func() { close(s.entered) })
	if s.hang != nil {
		<-s.hang
		return nil, errors.New("released")
	}
	return nil, errors.New("dial unix /redis.sock: connect: connection refused")
}

// TestLiveWedgedVsRetrying: a batch stuck in one call for longer than the
// timeout fails Live; a batch retrying a Redis that is down keeps the loop
// turning and live (but not ready), however long it lasts.
func TestLiveWedgedVsRetrying(t *testing.T) {
	h := newHarness(t)
	recs, _ := randomEvents(21, 3, 10)
	h.produce(recs...)
	for _, wedged := range []bool{true, false} {
		s := &stuckStore{Store: h.store, entered: make(chan struct{})}
		if wedged {
			s.hang = make(chan struct{})
		}
		reg := prometheus.NewRegistry()
		c, err := New(Config{Brokers: h.brokers, Group: fmt.Sprintf("live-%v", wedged), Model: h.model, Store: s, Encoder: h.enc,
			Logger: zaptest.NewLogger(t), Registerer: reg, MaxBackoff: 20 * time.Millisecond, ShutdownGrace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- c.Run(ctx) }()
		<-s.entered
		const timeout = 300 * time.Millisecond
		if wedged {
			waitFor(t, 10*time.Second, "a batch stuck in Load reported as not live", func() bool { return c.Live(timeout) != nil })
			if err := c.Live(timeout); !strings.Contains(err.Error(), "batch in hand") {
				t.Errorf("wedged: %v", err)
			}
			close(s.hang)
		} else {
			// Wait until the retries have lasted well over the timeout.
			start := time.Now()
			waitFor(t, 10*time.Second, "retries lasting 3 times the timeout", func() bool {
				if err := c.Live(timeout); err != nil {
					t.Fatalf("retrying a down Redis for %s: %v", time.Since(start), err)
				}
				return time.Since(start) >= 3*timeout && testutil.ToFloat64(c.metrics.retries.WithLabelValues("state")) >= 10
			})
			if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("Ready while Redis is down: %v", err)
			}
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
