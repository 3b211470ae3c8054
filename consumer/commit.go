package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/state"
)

// Offsets are committed CommitDelay after the state writes of their batch,
// not at once: a Redis that acknowledged a write may still lose it in a
// machine crash until its AOF is fsynced (appendfsync everysec: within about
// a second). Until the offsets are committed, a crash redelivers the
// records, and the per-customer applied offsets in the states skip the ones
// whose writes survived, so waiting costs nothing but redelivered records.

// commitQueue holds processed, not yet committed offsets.
type commitQueue struct {
	mu      sync.Mutex
	pending []pendingCommit
}

type pendingCommit struct {
	server  string                               // Redis run_id before the batch ("": unknown)
	written time.Time                            // when the batch's state writes were acknowledged
	offsets map[string]map[int32]kgo.EpochOffset // next offset to consume, per partition
}

// add queues the offsets after the records of a processed batch.
func (q *commitQueue) add(recs []*kgo.Record, server string, written time.Time) {
	offs := make(map[string]map[int32]kgo.EpochOffset)
	for _, r := range recs {
		ps := offs[r.Topic]
		if ps == nil {
			ps = make(map[int32]kgo.EpochOffset)
			offs[r.Topic] = ps
		}
		if cur, ok := ps[r.Partition]; !ok || r.Offset+1 > cur.Offset {
			ps[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
	q.mu.Lock()
	q.pending = append(q.pending, pendingCommit{server: server, written: written, offsets: offs})
	q.mu.Unlock()
}

// take removes and merges the entries written at or before cutoff (all with
// a zero cutoff), and reports when the next remaining one becomes due.
func (q *commitQueue) take(cutoff time.Time, delay time.Duration) (map[string]map[int32]kgo.EpochOffset, []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var merged map[string]map[int32]kgo.EpochOffset
	var servers []string
	n := 0
	for _, p := range q.pending {
		if !cutoff.IsZero() && p.written.After(cutoff) {
			break
		}
		n++
		servers = append(servers, p.server)
		if merged == nil {
			merged = make(map[string]map[int32]kgo.EpochOffset)
		}
		for t, ps := range p.offsets {
			if merged[t] == nil {
				merged[t] = make(map[int32]kgo.EpochOffset)
			}
			for part, o := range ps {
				if cur, ok := merged[t][part]; !ok || o.Offset > cur.Offset {
					merged[t][part] = o
				}
			}
		}
	}
	q.pending = q.pending[n:]
	return merged, servers
}

// drop removes every pending entry and returns the partitions they covered.
func (q *commitQueue) drop() map[string]map[int32]bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	parts := make(map[string]map[int32]bool)
	for _, p := range q.pending {
		for t, ps := range p.offsets {
			if parts[t] == nil {
				parts[t] = make(map[int32]bool)
			}
			for part := range ps {
				parts[t][part] = true
			}
		}
	}
	q.pending = nil
	return parts
}

// nextDue reports when the oldest pending entry becomes due (zero: none).
func (q *commitQueue) nextDue(delay time.Duration) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return time.Time{}
	}
	return q.pending[0].written.Add(delay)
}

// poll fetches records, waiting no longer than until the next pending
// commit is due.
func (c *Consumer) poll(ctx context.Context) kgo.Fetches {
	due := c.commits.nextDue(c.cfg.CommitDelay)
	if hold := c.commitHold.Load(); !due.IsZero() && hold > due.UnixNano() {
		due = time.Unix(0, hold) // the run_id could not be read: try again then
	}
	if next := c.committed.Load() + int64(c.cfg.CommitInterval); !due.IsZero() && next > due.UnixNano() {
		due = time.Unix(0, next) // CommitInterval after the last commit
	}
	now := c.now()
	if due.IsZero() {
		// Turn at least this often, so that a fetch failure that went away
		// stops showing in Ready even when no record arrives.
		due = now.Add(maxPollWait)
	}
	// A timeout, not a deadline: due is on the consumer's clock, which a
	// test may have set apart from the timers' clock (and moved back:
	// hence the bound).
	pctx, cancel := context.WithTimeout(ctx, min(due.Sub(now), maxPollWait))
	defer cancel()
	return c.client.PollRecords(pctx, c.cfg.MaxPollRecords)
}

// maxPollWait bounds a poll's wait for records.
const maxPollWait = 5 * time.Second

// commitPending commits the offsets whose batches were written at least
// CommitDelay ago; with all, it first waits (within ctx) until every pending
// entry is due, and commits them all. It reports whether it rewound instead:
// when Redis restarted since those batches (a new run_id), writes it had not
// persisted yet may be lost, so the offsets are not committed and
// consumption goes back to the committed offsets; the records are applied
// again where their writes were lost and skipped where they survived. The
// caller must then discard records it polled from the old position. While
// the run_id cannot be read (Redis down, or not answering), nothing is
// committed: Redis may be restarting without those writes.
func (c *Consumer) commitPending(ctx context.Context, all bool, polled []*kgo.Record) (rewound bool) {
	cutoff := c.now().Add(-c.cfg.CommitDelay)
	if all {
		if due := c.commits.nextDueLast(c.cfg.CommitDelay); !due.IsZero() {
			select {
			case <-ctx.Done():
				c.log.Warn("offsets not committed: no time left to wait for their durability; the records will be redelivered and skipped as applied")
				return false
			case <-time.After(due.Sub(c.now())):
			}
		}
		cutoff = time.Time{}
	}
	if c.commits.nextDue(c.cfg.CommitDelay).IsZero() || (!all && c.commits.nextDue(c.cfg.CommitDelay).After(c.now())) {
		return false
	}
	if !all && c.now().UnixNano() < max(c.commitHold.Load(), c.committed.Load()+int64(c.cfg.CommitInterval)) {
		return false
	}
	start := c.now()
	defer func() { c.metrics.since(StageCommit, start) }()
	cur, err := c.flushAndBind(ctx) // the server Redis is now
	if err != nil {
		// Not knowing is not "the same server": a Redis that lost the
		// writes in a machine crash is down first. Wait until it answers.
		c.fail("commit", err)
		if all {
			c.log.Warn("offsets not committed: cannot tell whether Redis kept their writes; the records will be redelivered and skipped as applied", zap.Error(err))
			return false
		}
		c.commitHold.Store(c.now().Add(time.Second).UnixNano())
		return false
	}
	c.commitHold.Store(0)
	now := cur.Server()
	if c.cfg.Replicas != nil {
		// Every batch due now was written before this wait, so the wait
		// covers their writes.
		waited, err := c.waitReplicas(ctx, -1)
		if err != nil {
			c.fail("commit", err)
			if all {
				c.log.Warn("offsets not committed: their writes did not reach the Redis replicas in time; the records will be redelivered and skipped as applied", zap.Error(err))
				return false
			}
			c.commitHold.Store(c.now().Add(time.Second).UnixNano())
			return false
		}
		if waited != "" {
			now = waited // the primary the writes reached replicas from
		}
	}
	offs, servers := c.commits.take(cutoff, c.cfg.CommitDelay)
	if len(offs) == 0 {
		return false
	}
	for _, s := range servers {
		if now != "" && s != "" && s != now {
			c.rewind(offs, polled)
			return true
		}
	}
	err = c.retry(ctx, "commit", func() error {
		var cerr error
		c.client.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = commitError(resp, err)
		})
		if cerr == nil {
			now := c.now()
			c.metrics.lastCommit.Set(float64(now.UnixNano()) / 1e9)
			c.committed.Store(now.UnixNano())
		}
		if lostGeneration(cerr) {
			// Retrying cannot succeed; the effects are saved with their
			// offsets, so the partitions' next owner skips these records.
			c.log.Warn("offsets not committed: this member lost its group generation; the records will be redelivered and skipped as applied", zap.Error(cerr))
			return nil
		}
		return cerr
	})
	if err != nil {
		c.log.Warn("offsets not committed at shutdown; the records will be redelivered and skipped as applied", zap.Error(err))
	}
	return false
}

// ReplicaWaiter makes the consumer publish outputs and commit offsets only
// after the state writes behind them reached the Redis replicas, so that a
// failover to a replica cannot lose a write whose outputs are published or
// whose offsets are committed (state.Redis.WaitReplicas implements it).
type ReplicaWaiter interface {
	// WaitReplicas returns once every write the primary acknowledged
	// before the call reached the replicas it must reach, with the server
	// id of that primary (as state.Redis.ServerID; "": unknown, or not
	// read) and the number of replicas waited for (0: none). seen is
	// state.Saved.Replicas of the save just made (-1: unknown), which
	// spares the round trip that reads how many replicas are connected.
	// An error (too few replicas in time, Redis unreachable) means nothing
	// may be published or committed on the strength of this wait.
	WaitReplicas(ctx context.Context, seen int) (server string, replicas int, err error)
}

// waitReplicas runs Config.Replicas and measures it. A failed wait keeps
// the offsets pending: the next commit attempt waits again (a WAIT covers
// every earlier write), and if the primary is replaced meanwhile, its new
// run_id makes the consumer rewind instead.
func (c *Consumer) waitReplicas(ctx context.Context, seen int) (string, error) {
	start := c.now()
	server, n, err := c.cfg.Replicas.WaitReplicas(ctx, seen)
	c.waitMetrics.replicas.Set(float64(n))
	if n > 0 {
		c.waitMetrics.seconds.Observe(c.now().Sub(start).Seconds())
	}
	return server, err
}

// outputsReplicated waits, when Config.Replicas is set, until the states
// just saved on server reached the replicas, retrying a wait that fails.
// Publishing an output whose state a failover then loses would leave an
// alert on the topic that the state does not hold (and the re-application
// after the rewind may cross the band at another event, under another id).
// A wait answered by another primary (a failover happened) abandons the
// batch like a restart. seen is the save's state.Saved.Replicas; a retry
// reads the replicas again.
func (c *Consumer) outputsReplicated(ctx context.Context, server string, seen int) error {
	if c.cfg.Replicas == nil {
		return nil
	}
	return c.retry(ctx, "replicas", func() error {
		waited, err := c.waitReplicas(ctx, seen)
		seen = -1
		if err != nil {
			return err
		}
		if server != "" && waited != "" && waited != server {
			return fmt.Errorf("%w: the writes were waited for on another primary (run_id %s, not %s)", state.ErrServerChanged, waited, server)
		}
		return nil
	})
}

// waitMetrics measure ReplicaWaiter.
type waitMetrics struct {
	seconds  prometheus.Histogram
	replicas prometheus.Gauge
}

func newWaitMetrics(reg prometheus.Registerer) (*waitMetrics, error) {
	m := &waitMetrics{
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthscore_redis_wait_seconds",
			Help:    "Time spent waiting (Redis WAIT) for state writes to reach the replicas before their outputs are published and before their offsets are committed.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_redis_replicas",
			Help: "Redis replicas the last wait before publishing or committing asked for (--redis-wait-replicas; on Redis Cluster summed over the primaries); 0: none.",
		}),
	}
	for _, col := range []prometheus.Collector{m.seconds, m.replicas} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// rewind drops every pending commit and moves consumption back to the
// committed offsets of the partitions they covered and of the polled,
// unprocessed records (the start of a partition never committed).
func (c *Consumer) rewind(taken map[string]map[int32]kgo.EpochOffset, polled []*kgo.Record) {
	parts := c.commits.drop()
	for _, r := range polled { // polled past, not processed: back too
		if parts[r.Topic] == nil {
			parts[r.Topic] = make(map[int32]bool)
		}
		parts[r.Topic][r.Partition] = true
	}
	for t, ps := range taken {
		if parts[t] == nil {
			parts[t] = make(map[int32]bool)
		}
		for p := range ps {
			parts[t][p] = true
		}
	}
	committed := c.client.CommittedOffsets()
	set := make(map[string]map[int32]kgo.EpochOffset)
	n := 0
	for t, ps := range parts {
		set[t] = make(map[int32]kgo.EpochOffset)
		for p := range ps {
			o, ok := committed[t][p]
			if !ok {
				o = kgo.EpochOffset{Epoch: -1, Offset: 0}
			}
			set[t][p] = o
			n++
		}
	}
	c.client.SetOffsets(set)
	c.session.Store(nil) // the next batch opens a session on the server Redis is now
	c.metrics.rewinds.Inc()
	c.log.Warn("Redis restarted since these batches were written: not committing their offsets; consuming again from the committed offsets so that writes it may have lost are re-applied",
		zap.Int("partitions", n))
}

// openSession returns the session the next batch is bound to: the current
// one, or after a start or a rewind a new one, bound to the server Redis is
// now. Batches run one at a time and the sweeper shares their session, so
// everything written since the last rewind was written on one server.
func (c *Consumer) openSession(ctx context.Context) (state.Bound, error) {
	if b := c.session.Load(); b != nil {
		return *b, nil
	}
	b, err := c.bind(ctx)
	if err != nil {
		return nil, err
	}
	if !c.session.CompareAndSwap(nil, &b) {
		return *c.session.Load(), nil // opened meanwhile (by the sweeper)
	}
	return b, nil
}

// flushAndBind deletes the outboxes acknowledged through the current
// session, so that the offsets committed next leave none behind (see
// state.Bound.Flush), then opens a session on the server Redis is now. A
// flush refused because the server changed is not a failure: the new
// session names another server than the batches, and the commit rewinds.
func (c *Consumer) flushAndBind(ctx context.Context) (state.Bound, error) {
	if b := c.session.Load(); b != nil {
		if err := (*b).Flush(ctx); err != nil && !errors.Is(err, state.ErrServerChanged) {
			return nil, fmt.Errorf("cannot delete acknowledged outboxes: %w", err)
		}
	}
	return c.bind(ctx)
}

// bind opens a session on the store, warning once when the server gives no
// identity (the embedded miniredis): then restarts cannot be detected.
func (c *Consumer) bind(ctx context.Context) (state.Bound, error) {
	b, err := c.cfg.Store.Bind(ctx)
	if err != nil {
		return nil, err
	}
	if b.Server() == "" && !c.unbound.Swap(true) {
		c.log.Warn("Redis gives no run_id: a Redis restart cannot be detected, so writes it loses are not re-applied; use a Redis that answers INFO server for durability (see docs/reliability.md)")
	}
	return b, nil
}

// nextDueLast reports when the newest pending entry becomes due.
func (q *commitQueue) nextDueLast(delay time.Duration) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return time.Time{}
	}
	return q.pending[len(q.pending)-1].written.Add(delay)
}

// commitError is the request error, or the first partition's error.
func commitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil || resp == nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}
