package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/internal/testenv"
)

// TestCommitRejectedByGroupDoesNotStall: when the group rejects a commit
// because this member lost its generation (evicted after a session timeout,
// e.g. during a broker outage), retrying the commit can never succeed, and
// since every poll blocks rebalances until the batch is done, the member
// could never rejoin either: the consumer stalled forever (found by the fault
// suite, chaos/). The batch's effects are saved with their offsets, so the
// consumer must give up that commit and go on; records redelivered to the
// partitions' next owner are skipped as already applied.
func TestCommitRejectedByGroupDoesNotStall(t *testing.T) {
	for _, e := range []*kerr.Error{kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress} {
		t.Run(e.Message, func(t *testing.T) {
			cluster, brokers := testenv.KafkaCluster(t, testTopics)
			h := newHarness(t)
			h.brokers = brokers
			c, err := New(Config{Brokers: brokers, Group: "g", Model: h.model, Store: h.store, Encoder: h.enc,
				Logger: zaptest.NewLogger(t), Registerer: prometheus.NewRegistry(), MaxPollRecords: 10})
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

			event := func(id string) *kgo.Record {
				return &kgo.Record{Value: fmt.Appendf(nil, `{"customer_id":%q,"type":"login","time":"2026-11-20T10:00:00Z"}`, id)}
			}
			h.produce(event("before"))
			h.waitCommitted("g")
			faults := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: e, Count: -1})
			h.produce(event("during-1"))
			h.waitApplied("during-1")
			h.produce(event("during-2")) // polled only once the previous batch is done
			h.waitApplied("during-2")
			faults.Remove()
		})
	}
}

// waitApplied waits until customer id has a stored state.
func (h *harness) waitApplied(id string) {
	h.t.Helper()
	waitFor(h.t, 15*time.Second, "customer "+id+" applied (else the consumer is stuck)", func() bool {
		rec, err := h.store.Get(context.Background(), id)
		return err == nil && rec.Version > 0
	})
}

// TestCommitInterval: while the consumer runs, batches share a commit: the
// offsets of a batch processed less than CommitInterval after the last
// commit are committed only once the interval has passed (here on a clock
// that stands still until the test moves it), and then all of them at once.
func TestCommitInterval(t *testing.T) {
	h := newHarness(t)
	clock := &fakeClock{}
	clock.Set(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
	_, _, stop := h.start("ci", nil, func(c *Config) {
		c.Now, c.CommitDelay, c.CommitInterval = clock.Now, -1, time.Hour
	})
	defer stop()
	event := func(id string) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"customer_id":%q,"type":"login","time":"2026-11-20T10:00:00Z"}`, id)}
	}
	h.produce(event("a"))
	h.waitCommitted("ci") // the first commit has no interval to wait for
	h.produce(event("b"))
	h.waitApplied("b")
	h.produce(event("b2")) // the loop would commit b when it polls b2
	h.waitApplied("b2")
	if n := h.committed("ci"); n != 1 {
		t.Fatalf("%d offsets committed within the interval, want 1 (b's and b2's held)", n)
	}
	clock.Add(time.Hour)
	h.produce(event("c")) // the loop commits b and b2 when it polls c
	waitFor(t, 15*time.Second, "b and b2 committed once the interval passed", func() bool { return h.committed("ci") >= 3 })
	h.waitApplied("c")
	if n := h.committed("ci"); n != 3 {
		t.Fatalf("%d offsets committed, want 3 (c's held for the next interval)", n)
	}
}
