package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Catch-up batches. Nearly all of a batch's cost is per customer evaluated
// (load, fold, save, outputs), not per event, so a batch that holds more
// events per customer costs less per event. While the instance lags (a poll
// leaves records buffered in the client: fetched, not yet returned), grow
// takes them into the batch in hand with further polls, up to
// MaxCatchUpRecords records and MaxCatchUpBytes bytes. When it does not lag,
// the buffer is empty after the first poll and the batch is processed at
// once: nothing waits to accumulate, so latency is as with one poll.
//
// The growth polls run under the first poll's rebalance block
// (BlockRebalanceOnPoll: once a poll returned records, further polls do not
// wait for a pending rebalance, and the rebalance waits until the loop calls
// AllowRebalance after the whole batch is processed). So every record of the
// batch is from partitions owned from its first poll until it is processed,
// and a revocation's commit (OnPartitionsRevoked) comes after it, as for a
// single poll. Growth stops as soon as a rebalance is waiting on the block
// (OnPartitionsCallbackBlocked), so that the batch in hand does not hold it
// longer than needed, and at shutdown.

// grow adds buffered records to the batch first started, while the instance
// lags and the bounds allow; it returns the whole batch as one Fetches in
// which each partition appears once, its records in offset order, with the
// high watermark of its last poll (see mergeFetches). It never waits for a
// fetch: only records already buffered are taken.
// It also returns how many polls returned the batch's records.
func (c *Consumer) grow(ctx context.Context, first kgo.Fetches) (kgo.Fetches, int) {
	n, size := first.NumRecords(), recordBytes(first)
	if n == 0 || c.cfg.MaxCatchUpRecords <= c.cfg.MaxPollRecords {
		return first, 1
	}
	polls := []kgo.Fetches{first}
	count := 1 // polls that returned records
	for n < c.cfg.MaxCatchUpRecords && size < c.cfg.MaxCatchUpBytes && ctx.Err() == nil && !c.rebalancing.Load() {
		buffered := c.client.BufferedFetchRecords()
		if buffered <= 0 {
			break
		}
		take := min(c.cfg.MaxCatchUpRecords-n, c.cfg.MaxPollRecords)
		// Size the poll by the buffer's average record so that the batch
		// ends near the byte bound rather than a whole poll past it.
		if avg := c.client.BufferedFetchBytes() / buffered; avg > 0 {
			take = min(take, int(max(1, (c.cfg.MaxCatchUpBytes-size)/avg)))
		}
		if c.hooks != nil && c.hooks.grow != nil {
			c.hooks.grow(n)
		}
		// The records are buffered, so the poll returns at once; the
		// timeout only bounds a race with the buffer being emptied.
		pctx, cancel := context.WithTimeout(ctx, growWait)
		fs := c.client.PollRecords(pctx, take)
		cancel()
		got := fs.NumRecords()
		polls = append(polls, fs)
		if got == 0 {
			break // its partition errors, if any, are kept
		}
		count++
		n += got
		size += recordBytes(fs)
	}
	if len(polls) == 1 {
		return first, 1
	}
	return mergeFetches(polls), count
}

// growWait bounds a growth poll (see grow).
const growWait = 10 * time.Millisecond

// recordBytes sums the keys, values and headers of the records, as the
// client counts its buffered bytes (BufferedFetchBytes).
func recordBytes(fs kgo.Fetches) int64 {
	var n int64
	fs.EachRecord(func(r *kgo.Record) {
		n += int64(len(r.Key) + len(r.Value))
		for _, h := range r.Headers {
			n += int64(len(h.Key) + len(h.Value))
		}
	})
	return n
}

// mergeFetches joins polls into one Fetches in which each partition appears
// once: its records of every poll in order (polls of one partition return
// consecutive records), with the watermarks of its last poll. Code that
// reads a poll's partitions (the backlog check, the lag ages) then reads the
// batch as it would one poll. Partition errors are kept as they came, except
// the end of a growth poll's own wait.
func mergeFetches(polls []kgo.Fetches) kgo.Fetches {
	type tp struct {
		topic string
		part  int32
	}
	var out kgo.Fetch
	at := make(map[tp][2]int) // index of topic, of partition in out
	topicAt := make(map[string]int)
	var errs []kgo.FetchTopic
	for _, fs := range polls {
		for _, f := range fs {
			for _, t := range f.Topics {
				for _, p := range t.Partitions {
					if p.Err != nil {
						if !errors.Is(p.Err, context.DeadlineExceeded) || len(p.Records) > 0 {
							errs = append(errs, kgo.FetchTopic{Topic: t.Topic, TopicID: t.TopicID, Partitions: []kgo.FetchPartition{p}})
						}
						continue
					}
					if i, ok := at[tp{t.Topic, p.Partition}]; ok {
						dst := &out.Topics[i[0]].Partitions[i[1]]
						recs := append(dst.Records, p.Records...)
						*dst = p
						dst.Records = recs
						continue
					}
					ti, ok := topicAt[t.Topic]
					if !ok {
						ti = len(out.Topics)
						topicAt[t.Topic] = ti
						out.Topics = append(out.Topics, kgo.FetchTopic{Topic: t.Topic, TopicID: t.TopicID})
					}
					p.Records = append([]*kgo.Record(nil), p.Records...)
					out.Topics[ti].Partitions = append(out.Topics[ti].Partitions, p)
					at[tp{t.Topic, p.Partition}] = [2]int{ti, len(out.Topics[ti].Partitions) - 1}
				}
			}
		}
	}
	res := kgo.Fetches{out}
	if len(errs) > 0 {
		res = append(res, kgo.Fetch{Topics: errs})
	}
	return res
}
