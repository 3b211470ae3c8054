package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// What the consumer tells the probes: whether it is a member of its group
// and how many partitions it owns (Assignment), whether its last batch
// succeeded (Ready), and whether its processing loop is wedged (Live); and,
// as healthscore_consumer_lag_seconds, how old the oldest record it has not
// processed yet is, per owned partition.

type topicPartition struct {
	topic     string
	partition int32
}

// assignment tracks group membership and owned partitions from the
// rebalance callbacks. franz-go calls OnPartitionsAssigned after every join,
// even when nothing is assigned, so a member of a group with more members
// than partitions is known to have joined.
type assignment struct {
	mu     sync.Mutex
	joined bool
	owned  map[topicPartition]struct{}
}

func (a *assignment) assign(ps map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.joined = true
	if a.owned == nil {
		a.owned = make(map[topicPartition]struct{})
	}
	for t, parts := range ps {
		for _, p := range parts {
			a.owned[topicPartition{t, p}] = struct{}{}
		}
	}
}

// revoke removes partitions; lost also ends the membership (the member must
// join again).
func (a *assignment) revoke(ps map[string][]int32, lost bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if lost {
		a.joined = false
	}
	for t, parts := range ps {
		for _, p := range parts {
			delete(a.owned, topicPartition{t, p})
		}
	}
}

// Assignment reports whether the consumer is a member of its group (it has
// joined and not lost its membership since) and how many input partitions it
// owns. A member may legitimately own none: a group can have more members
// than partitions.
func (c *Consumer) Assignment() (joined bool, partitions int) {
	c.assigned.mu.Lock()
	defer c.assigned.mu.Unlock()
	return c.assigned.joined, len(c.assigned.owned)
}

// Group returns the consumer group name.
func (c *Consumer) Group() string { return c.cfg.Group }

// mainLoopKey marks the context of the processing loop (Run's loop and its
// batches), so that its retries count as the loop turning, and the
// sweeper's do not.
type mainLoopKey struct{}

// turn records that the processing loop made progress: it polled, or it
// tried a step of a batch again.
func (c *Consumer) turn() { c.turned.Store(c.now().UnixNano()) }

// Live returns an error when the processing loop is wedged: it has work (a
// batch in hand, or records fetched and buffered in the client) and has not
// turned for longer than timeout. A loop waiting for records, or retrying a
// Redis or broker that is down, is live. Consumer lag is not counted as
// work: it stays above zero while the broker is unreachable, which is not a
// reason to restart the process.
func (c *Consumer) Live(timeout time.Duration) error {
	last := c.turned.Load()
	if last == 0 {
		return nil // not running yet
	}
	idle := c.now().Sub(time.Unix(0, last))
	if idle <= timeout {
		return nil
	}
	busy, buffered := c.busy.Load(), c.client.BufferedFetchRecords()
	switch {
	case busy:
		return fmt.Errorf("the processing loop has not turned for %s with a batch in hand", idle.Round(time.Second))
	case buffered > 0:
		return fmt.Errorf("the processing loop has not turned for %s with %d records fetched and waiting", idle.Round(time.Second), buffered)
	}
	return nil
}

// lagAges is healthscore_consumer_lag_seconds: per owned input partition,
// the age (clock now minus the record's Kafka timestamp) of the oldest
// record this instance has polled or has still to poll and not processed
// yet; 0 when it has processed everything up to the high watermark. It is
// tracked from the polled records, with no extra broker request: a poll
// sets a partition's oldest unprocessed record to the first record it
// returned (an instance processes a batch before it polls again; the polls
// of a catch-up batch are merged, one entry per partition), and the
// end of a batch sets it to 0 when the batch reached the high watermark, or
// else to the batch's last record, which stands in for the next, unpolled,
// one until the next poll. Processed means written to Redis, which may be
// up to --commit-delay before the offsets are committed.
type lagAges struct {
	desc   *prometheus.Desc
	now    func() time.Time
	mu     sync.Mutex
	oldest map[topicPartition]int64 // Unix ns; 0: caught up
}

func newLagAges(now func() time.Time) *lagAges {
	return &lagAges{
		desc: prometheus.NewDesc("healthscore_consumer_lag_seconds",
			"Age of the oldest input record this instance has not processed yet, per owned partition (now minus its Kafka timestamp); 0 when caught up.",
			[]string{"topic", "partition"}, nil),
		now:    now,
		oldest: make(map[topicPartition]int64),
	}
}

func (l *lagAges) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *lagAges) Collect(ch chan<- prometheus.Metric) {
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for tp, ts := range l.oldest {
		age := 0.0
		if ts > 0 && now > ts {
			age = time.Duration(now - ts).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, age, tp.topic, strconv.Itoa(int(tp.partition)))
	}
}

// assign shows newly owned partitions at 0 until their first poll.
func (l *lagAges) assign(ps map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, parts := range ps {
		for _, p := range parts {
			if _, ok := l.oldest[topicPartition{t, p}]; !ok {
				l.oldest[topicPartition{t, p}] = 0
			}
		}
	}
}

// revoke drops the series of partitions this instance no longer owns.
func (l *lagAges) revoke(ps map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, parts := range ps {
		for _, p := range parts {
			delete(l.oldest, topicPartition{t, p})
		}
	}
}

// polled notes the first record of each polled partition as its oldest
// unprocessed one.
func (l *lagAges) polled(fs kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			l.oldest[topicPartition{p.Topic, p.Partition}] = max(p.Records[0].Timestamp.UnixNano(), 1)
		}
	})
}

// processed notes that the polled records are processed.
func (l *lagAges) processed(fs kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		n := len(p.Records)
		if n == 0 {
			return
		}
		last := p.Records[n-1]
		tp := topicPartition{p.Topic, p.Partition}
		if p.HighWatermark > last.Offset+1 {
			l.oldest[tp] = max(last.Timestamp.UnixNano(), 1)
		} else {
			l.oldest[tp] = 0
		}
	})
}

// failure is the last failed step, for Ready.
type failure struct {
	step string
	msg  string
}

// errNotStarted is Ready's answer before Run.
var errNotStarted = errors.New("starting")

// isMainLoop reports whether ctx is a batch of the processing loop.
func isMainLoop(ctx context.Context) bool { return ctx.Value(mainLoopKey{}) != nil }
