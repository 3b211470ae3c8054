package consumer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/state"
)

// fakeReplicas is a ReplicaWaiter whose outcome the test switches.
type fakeReplicas struct {
	store *state.Redis
	ok    atomic.Bool
	calls atomic.Int64
	mu    sync.Mutex
	seen  []int // each call's seen
}

func (f *fakeReplicas) WaitReplicas(ctx context.Context, seen int) (string, int, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.seen = append(f.seen, seen)
	f.mu.Unlock()
	if !f.ok.Load() {
		return "", 1, fmt.Errorf("cannot wait for replicas: 0 of 1 acknowledged within 10ms: %w", state.ErrReplicasBehind)
	}
	id, err := f.store.ServerID(ctx)
	return id, 1, err
}

// TestReplicaWaitGatesCommits: while the writes have not reached the
// replicas (WAIT timed out), offsets are not committed however often the
// commit is tried, and a batch's outputs are not published although its
// states are saved; once a wait succeeds, both go ahead, and the wait
// metrics moved.
func TestReplicaWaitGatesCommits(t *testing.T) {
	h := newHarness(t)
	waiter := &fakeReplicas{store: h.store}
	reg := prometheus.NewRegistry()
	c, err := New(Config{Brokers: h.brokers, Group: "wait", Model: h.model, Store: h.store, Encoder: h.enc,
		Logger: zaptest.NewLogger(t), Registerer: reg, MaxPollRecords: 10, CommitDelay: 10 * time.Millisecond, Replicas: waiter})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitCalls := func(n int64) {
		t.Helper()
		waitFor(t, 15*time.Second, fmt.Sprintf("WaitReplicas called %d times", n), func() bool { return waiter.calls.Load() >= n })
	}

	// A record no signal reads: nothing to save or publish, only the
	// commit to hold. Commits are tried once a second while the wait
	// fails: three failed waits are three held commits.
	h.produce(&kgo.Record{Value: []byte(`{"customer_id":"w0","type":"page_viewed","time":"2026-11-20T10:00:00Z"}`)})
	waitCalls(3)
	if n := h.committed("wait"); n != 0 {
		t.Fatalf("%d offsets committed although the writes never reached the replicas", n)
	}
	if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Errorf("Ready() = %v; want the failed wait", err)
	}
	if got := gathered(t, reg, "healthscore_redis_replicas").GetGauge().GetValue(); got != 1 {
		t.Errorf("healthscore_redis_replicas = %v, want 1", got)
	}

	// A record with outputs: its state is saved, its outputs wait. The
	// first wait before publishing is told what the save saw (no replica
	// on this redis-server); commits and retries read it again (-1).
	h.produce(&kgo.Record{Value: []byte(`{"customer_id":"w1","type":"login","time":"2026-11-20T10:00:00Z"}`)})
	h.waitApplied("w1")
	calls := waiter.calls.Load()
	waitCalls(calls + 2)
	waiter.mu.Lock()
	seen := slices.Clone(waiter.seen)
	waiter.mu.Unlock()
	if !slices.Contains(seen, 0) || slices.ContainsFunc(seen, func(n int) bool { return n != 0 && n != -1 }) {
		t.Errorf("the waits were told %v; want 0 (what the save saw) before publishing, -1 (unknown) otherwise", seen)
	}
	if n := h.count("customer-health"); n != 0 {
		t.Fatalf("%d outputs published before their state reached the replicas", n)
	}
	waiter.ok.Store(true)
	h.waitCommitted("wait")
	if n := h.count("customer-health"); n == 0 {
		t.Error("no output published after the wait succeeded")
	}
	if n := gathered(t, reg, "healthscore_redis_wait_seconds").GetHistogram().GetSampleCount(); n < 5 {
		t.Errorf("healthscore_redis_wait_seconds counts %d waits; want every attempt (≥ 5)", n)
	}
}

// gathered returns the one series of the unlabelled metric name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}
