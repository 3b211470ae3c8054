package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/ingest"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// inEvent is a decoded event with the record it came from.
type inEvent struct {
	ev  scorer.Event
	rec *kgo.Record
}

// customerBatch is one customer's events in a batch.
type customerBatch struct {
	id     string
	events []*inEvent // in record order; they point into the batch's decoded events
	// decayAt, for a batch made by the sweeper or a rescoring pass (no
	// events), is the instant (Unix ns) to evaluate the customer at.
	decayAt int64
	reload  bool // a rescoring pass after a model reload
	// nextDue is set by a successful attempt: the Unix ms at which the
	// customer's score, with no new event, next needs publishing; 0: never.
	// version is the record version that attempt evaluated, or saved.
	nextDue int64
	version uint64
}

// batch is a poll's records, decoded and grouped.
type batch struct {
	customers []*customerBatch // in first-seen order
	dead      []*kgo.Record    // dead-letter copies to produce
	reasons   []string         // reason of each dead letter
}

// decode turns records into events grouped by customer, and bad records into
// dead letters. The customers and their events are carved out of a few
// batch-sized allocations rather than allocated one by one.
func (c *Consumer) decode(recs []*kgo.Record) *batch {
	b := &batch{}
	byID := make(map[string]int32, len(recs)/2)
	custs := make([]customerBatch, 0, len(recs))
	evs := make([]inEvent, 0, len(recs))
	owner := make([]int32, 0, len(recs)) // index in custs of each event's customer
	counts := make([]int32, 0, len(recs))
	maxTime := c.cfg.Now().Add(c.cfg.MaxSkew).UnixNano()
	var hs []ingest.Header // each record's headers, for the input decoder
	var formats formatCounts
	defer c.metrics.countFormats(&formats)
	for _, r := range recs {
		if len(r.Value) > c.cfg.MaxRecordBytes {
			c.deadLetter(b, r, ReasonTooLarge, fmt.Sprintf("record value is %d bytes; at most %d are accepted", len(r.Value), c.cfg.MaxRecordBytes))
			continue
		}
		hs = hs[:0]
		for _, h := range r.Headers {
			hs = append(hs, ingest.Header{Key: h.Key, Value: h.Value})
		}
		ev, format, err := c.cfg.Input.Decode(ingest.Record{Topic: r.Topic, Value: r.Value, Headers: hs})
		formats.add(format)
		if err != nil {
			reason := scorer.ReasonInvalidJSON
			if de, ok := scorer.AsDecodeError(err); ok {
				reason = de.Reason
			}
			c.deadLetter(b, r, reason, err.Error())
			continue
		}
		if !ev.HasTime {
			ev.Time = r.Timestamp.UnixNano()
		}
		if ev.Time > maxTime {
			c.deadLetter(b, r, ReasonTimeSkew, fmt.Sprintf("event time %s is more than %s in the future", scorer.FormatTime(ev.Time), c.cfg.MaxSkew))
			continue
		}
		k, ok := byID[ev.CustomerID]
		if !ok {
			k = int32(len(custs))
			byID[ev.CustomerID] = k
			custs = append(custs, customerBatch{id: ev.CustomerID})
			counts = append(counts, 0)
		}
		counts[k]++
		evs = append(evs, inEvent{ev: ev, rec: r})
		owner = append(owner, k)
	}
	// Group the events by customer, in record order, in one array.
	grouped := make([]*inEvent, len(evs))
	start := int32(0)
	for k := range custs {
		custs[k].events = grouped[start : start : start+counts[k]]
		start += counts[k]
	}
	for i := range evs {
		cb := &custs[owner[i]]
		cb.events = append(cb.events, &evs[i])
	}
	b.customers = make([]*customerBatch, len(custs))
	for k := range custs {
		b.customers[k] = &custs[k]
	}
	return b
}

func (c *Consumer) deadLetter(b *batch, r *kgo.Record, reason, detail string) {
	b.dead = append(b.dead, c.cfg.Encoder.DeadLetter(r, reason, detail))
	b.reasons = append(b.reasons, reason)
}

// process takes a decoded batch through produce and save. The customers
// are split by id over Config.Workers groups that run concurrently (a
// customer's events all go to one group, so groups never race each other);
// in each group, customers whose save loses a compare-and-set race are
// reloaded and redone until they win.
func (c *Consumer) process(ctx context.Context, sess state.Bound, b *batch) error {
	if len(b.dead) > 0 {
		if err := c.produce(ctx, b.dead, nil); err != nil {
			return err
		}
		c.metrics.events.WithLabelValues(ResultDeadLettered).Add(float64(len(b.dead)))
		for _, r := range b.reasons {
			c.metrics.deadLetters.WithLabelValues(r).Inc()
		}
	}
	groups := c.split(b.customers)
	if len(groups) == 1 {
		return c.processGroup(ctx, sess, groups[0])
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = c.processGroup(ctx, sess, g) })
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, state.ErrServerChanged) {
			return err // the batch is abandoned whatever the other groups did
		}
	}
	return errors.Join(errs...)
}

// minGroup is the fewest customers worth a concurrent group of their own.
const minGroup = 256

// split divides customers into at most Config.Workers groups by a hash of
// their id, each with at least minGroup customers.
func (c *Consumer) split(customers []*customerBatch) [][]*customerBatch {
	n := min(c.cfg.Workers, len(customers)/minGroup)
	if n <= 1 {
		return [][]*customerBatch{customers}
	}
	groups := make([][]*customerBatch, n)
	for i := range groups {
		groups[i] = make([]*customerBatch, 0, len(customers)/n+len(customers)/(4*n))
	}
	for _, cb := range customers {
		k := maphash.String(groupSeed, cb.id) % uint64(n)
		groups[k] = append(groups[k], cb)
	}
	return groups
}

var groupSeed = maphash.MakeSeed()

func (c *Consumer) processGroup(ctx context.Context, sess state.Bound, todo []*customerBatch) error {
	for len(todo) > 0 {
		var conflicted []*customerBatch
		err := c.retry(ctx, "state", func() error {
			var err error
			conflicted, err = c.attempt(ctx, sess, todo)
			return err
		})
		if err != nil {
			return err
		}
		if len(conflicted) > 0 {
			c.metrics.conflicts.Add(float64(len(conflicted)))
			c.log.Debug("state write conflicts; redoing customers", zap.Int("customers", len(conflicted)))
		}
		todo = conflicted
	}
	return nil
}

// attempt takes the customers through one load → plan → overrides → save →
// produce → clear cycle (the outbox order: see outbox.go); plan (plan.go)
// makes every decision, this is only the I/O around it. It returns the
// customers whose first save lost a compare-and-set race, to be redone; an
// error means the attempt must be retried as a whole, which is safe: saved
// states make their events duplicates, and their pending outputs are
// produced again by the next load. Every Redis step goes through sess, so
// none applies once Redis restarted since the session was opened
// (state.ErrServerChanged).
func (c *Consumer) attempt(ctx context.Context, sess state.Bound, customers []*customerBatch) ([]*customerBatch, error) {
	t := c.now()
	loaded, err := c.load(ctx, sess, customers)
	if err != nil {
		return nil, err
	}
	t = c.metrics.since(StageLoad, t)

	p := plan(c.planConfig(), customers, loaded)
	c.reportCorrupt(p.corrupt)
	t = c.metrics.since(StageFold, t)

	// 0. The next decay-driven evaluations: each write carries its
	// customer's (Write.Due), which the save schedules with it; the
	// sweeper releases the others (sweeper.go) at the record version it
	// evaluated. Override expiries are tracked before the states are
	// saved: a crash in between can only wake a customer early.
	if c.cfg.Schedule != nil {
		for i := range customers {
			customers[i].nextDue = p.outcomes[i].nextDue
			customers[i].version = loaded[i].Version
		}
		if err := c.cfg.Schedule.TrackOverrides(ctx, p.overrides()); err != nil {
			return nil, err
		}
		t = c.metrics.since(StageSchedule, t)
	}

	// 1. Save states with their outbox and due times.
	writes := p.stateWrites()
	saved, err := c.save(ctx, sess, writes)
	if err != nil {
		return nil, err
	}
	t = c.metrics.since(StageSave, t)
	s := p.settle(saved.Applied, writes)
	for k, w := range p.writes {
		if saved.Applied[k] {
			customers[w.i].version = writes[k].Expected + 1 // what the release checks
		}
	}

	// 1b. Outputs are published only once the states that call for them
	// reached the replicas (see outputsReplicated); the save says how many
	// were connected right after its writes.
	if len(s.outputs) > 0 {
		if err := c.outputsReplicated(ctx, sess.Server(), saved.Replicas); err != nil {
			return nil, err
		}
	}

	// 2. Produce and wait for every acknowledgement.
	if err := c.produce(ctx, s.outputs, s.causes); err != nil {
		return nil, err
	}
	t = c.metrics.since(StageProduce, t)

	// 3. Clear the outboxes. Each is named by the record version or the
	// save call it was saved with (every output of that call is
	// acknowledged now), so this never deletes one that a racing writer
	// saved since; and one that such a writer loaded is produced again by
	// it, under the same ids. On a single server they are only noted as
	// acknowledged here: the session's next save deletes them, or the
	// flush before the offsets are committed (commitPending), so they
	// cost no round trip of their own.
	if err := c.clear(ctx, sess, s.clears); err != nil {
		return nil, err
	}
	c.metrics.since(StageClear, t)

	c.count(p.tally(customers, s.done))
	var conflicted []*customerBatch
	for _, i := range s.redo {
		conflicted = append(conflicted, customers[i])
	}
	return conflicted, nil
}

// load reads the customers' records through the batch's session. The client
// reconnects and retries by itself, so a load sent before a Redis restart
// can be answered by the restarted server, with states that lost this
// instance's uncommitted batches; folding on those would move the
// customers' applied offsets past the lost records, which the rewind could
// then no longer re-apply. The session refuses such a load, and any save or
// clear on that server, with state.ErrServerChanged.
func (c *Consumer) load(ctx context.Context, sess state.Bound, customers []*customerBatch) ([]state.Record, error) {
	ids := make([]string, len(customers))
	for i, cb := range customers {
		ids[i] = cb.id
	}
	loaded, err := sess.Load(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("cannot load customer states: %w", err)
	}
	if len(loaded) != len(ids) {
		return nil, fmt.Errorf("cannot load customer states: store returned %d records for %d customers", len(loaded), len(ids))
	}
	return loaded, nil
}

// planConfig is the model and settings plan decides with.
func (c *Consumer) planConfig() planConfig {
	return planConfig{model: c.model.Load(), encoder: c.cfg.Encoder, historyDays: c.cfg.HistoryDays, schedule: c.cfg.Schedule != nil}
}

// reportCorrupt logs and counts the stored data plan had to replace.
func (c *Consumer) reportCorrupt(cs []corruption) {
	for _, x := range cs {
		c.metrics.corruptStates.Inc()
		if x.what == "outbox" {
			c.log.Error("stored outbox is corrupt; dropping it", zap.String("customer_id", x.id), zap.Error(x.err))
		} else {
			c.log.Error("stored customer state is corrupt; starting it afresh", zap.String("customer_id", x.id), zap.Error(x.err))
		}
	}
}

// count adds a finished attempt's tally to the metrics.
func (c *Consumer) count(n tally) {
	c.metrics.rescored.WithLabelValues("event").Add(float64(n.event))
	c.metrics.rescored.WithLabelValues("decay").Add(float64(n.decay))
	c.metrics.rescored.WithLabelValues("reload").Add(float64(n.reload))
	c.metrics.events.WithLabelValues(ResultApplied).Add(float64(n.applied))
	c.metrics.events.WithLabelValues(ResultDuplicate).Add(float64(n.duplicate))
	c.metrics.events.WithLabelValues(ResultIgnored).Add(float64(n.ignored))
}

// clear hands acknowledged outboxes to the batch's session for deletion
// (state.Bound.Acknowledge): on a restarted server it fails with
// state.ErrServerChanged and the batch is abandoned and re-read, as for a
// save.
func (c *Consumer) clear(ctx context.Context, sess state.Bound, obs []state.Outbox) error {
	if len(obs) == 0 {
		return nil
	}
	if err := sess.Acknowledge(ctx, obs); err != nil {
		return fmt.Errorf("cannot clear outboxes: %w", err)
	}
	return nil
}

// save writes with compare-and-set through the batch's session, so only on
// the Redis server the session was opened on (before the batch's loads): a
// save that reaches a restarted server (the client reconnects by itself)
// could otherwise match a version that another writer re-used after the
// restart. A lagging band index is not a failure.
func (c *Consumer) save(ctx context.Context, sess state.Bound, writes []state.Write) (state.Saved, error) {
	if len(writes) == 0 {
		return state.Saved{Replicas: -1}, nil
	}
	saved, err := sess.Save(ctx, writes)
	switch {
	case errors.Is(err, state.ErrIndex) && len(saved.Applied) == len(writes):
		// The records are saved; only the derived band index lags, and
		// readers re-check it against the records.
		c.log.Warn("band index update incomplete", zap.Error(err))
	case err != nil:
		return state.Saved{}, fmt.Errorf("cannot save customer states: %w", err)
	}
	return saved, nil
}

// produce sends records and waits until every one is acknowledged, retrying
// only the failed ones. causes, when set, holds each record's cause
// timestamp for the latency histogram (zero: not timed).
func (c *Consumer) produce(ctx context.Context, recs []*kgo.Record, causes []time.Time) error {
	pending := recs
	pendingCauses := causes
	refused := map[*kgo.Record]bool{} // refused as too large by an earlier try
	return c.retry(ctx, "produce", func() error {
		if len(pending) == 0 {
			return nil
		}
		// ProduceSync gives the results in the order the records
		// complete, not in the order of pending (a record the client
		// refuses before sending it, e.g. too large, completes first):
		// each result names its record, and causeOf its cause.
		var causeOf map[*kgo.Record]time.Time
		if pendingCauses != nil {
			causeOf = make(map[*kgo.Record]time.Time, len(pending))
			for i, r := range pending {
				causeOf[r] = pendingCauses[i]
			}
		}
		results := c.client.ProduceSync(ctx, pending...)
		var failed []*kgo.Record
		var failedCauses []time.Time
		var firstErr error
		now := c.now()
		for _, r := range results {
			rec := r.Record
			if r.Err == nil {
				if causeOf != nil {
					c.metrics.outputs.WithLabelValues(alerts.TypeOf(rec)).Inc()
					if t := causeOf[rec]; !t.IsZero() {
						c.metrics.latency.Observe(now.Sub(t).Seconds())
					}
				}
				continue
			}
			if firstErr == nil {
				firstErr = r.Err
			}
			if tooLarge(r.Err) {
				// A broker refuses a whole partition batch for one large
				// record: strip too_large dead letters at once, any other
				// dead letter only if it is refused again without them.
				if (isTooLargeDeadLetter(rec) || refused[rec]) && dropDeadLetterValue(rec) {
					c.log.Warn("dead letter too large for the DLQ topic; sending it without its value", zap.String("topic", rec.Topic))
				}
				refused[rec] = true
			}
			failed = append(failed, rec)
			if causeOf != nil {
				failedCauses = append(failedCauses, causeOf[rec])
			}
		}
		pending, pendingCauses = failed, failedCauses
		if firstErr != nil {
			return fmt.Errorf("cannot produce %d of %d records: %w", len(failed), len(results), firstErr)
		}
		return nil
	})
}

// HeaderDLQValueDropped marks a dead letter sent without its value because
// the broker refused its size; the source headers still locate the original.
const HeaderDLQValueDropped = alerts.HeaderDLQPrefix + "value_dropped"

func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

func isTooLargeDeadLetter(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == alerts.HeaderDLQReason {
			return string(h.Value) == ReasonTooLarge
		}
	}
	return false
}

// dropDeadLetterValue strips the value of a dead-letter record, once, so
// that an input too large for the DLQ topic cannot block its partition.
func dropDeadLetterValue(r *kgo.Record) bool {
	isDLQ := false
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderDLQValueDropped:
			return false
		case alerts.HeaderDLQReason:
			isDLQ = true
		}
	}
	if !isDLQ {
		return false
	}
	r.Value = nil
	r.Headers = append(r.Headers[:len(r.Headers):len(r.Headers)], kgo.RecordHeader{Key: HeaderDLQValueDropped, Value: []byte("true")})
	return true
}
