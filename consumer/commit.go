package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
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
	written time.Time                            // when the batch's state writes were acknowledged
	offsets map[string]map[int32]kgo.EpochOffset // next offset to consume, per partition
}

// add queues the offsets after the records of a processed batch.
func (q *commitQueue) add(recs []*kgo.Record, written time.Time) {
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
	q.pending = append(q.pending, pendingCommit{written: written, offsets: offs})
	q.mu.Unlock()
}

// take removes and merges the entries written at or before cutoff (all with
// a zero cutoff), and reports when the next remaining one becomes due.
func (q *commitQueue) take(cutoff time.Time, delay time.Duration) (map[string]map[int32]kgo.EpochOffset, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var merged map[string]map[int32]kgo.EpochOffset
	n := 0
	for _, p := range q.pending {
		if !cutoff.IsZero() && p.written.After(cutoff) {
			break
		}
		n++
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
	var next time.Time
	if len(q.pending) > 0 {
		next = q.pending[0].written.Add(delay)
	}
	return merged, next
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
	if due.IsZero() {
		return c.client.PollRecords(ctx, c.cfg.MaxPollRecords)
	}
	pctx, cancel := context.WithDeadline(ctx, due)
	defer cancel()
	return c.client.PollRecords(pctx, c.cfg.MaxPollRecords)
}

// commitPending commits the offsets whose batches were written at least
// CommitDelay ago; with all, it first waits (within ctx) until every pending
// entry is due, and commits them all.
func (c *Consumer) commitPending(ctx context.Context, all bool) {
	cutoff := time.Now().Add(-c.cfg.CommitDelay)
	if all {
		if due := c.commits.nextDueLast(c.cfg.CommitDelay); !due.IsZero() {
			select {
			case <-ctx.Done():
				c.log.Warn("offsets not committed: no time left to wait for their durability; the records will be redelivered and skipped as applied")
				return
			case <-time.After(time.Until(due)):
			}
		}
		cutoff = time.Time{}
	}
	offs, _ := c.commits.take(cutoff, c.cfg.CommitDelay)
	if len(offs) == 0 {
		return
	}
	err := c.retry(ctx, "commit", func() error {
		var cerr error
		c.client.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = commitError(resp, err)
		})
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
