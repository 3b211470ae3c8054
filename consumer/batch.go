package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/alerts"
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
	events []inEvent
}

// batch is a poll's records, decoded and grouped.
type batch struct {
	customers []*customerBatch // in first-seen order
	dead      []*kgo.Record    // dead-letter copies to produce
	reasons   []string         // reason of each dead letter
}

// decode turns records into events grouped by customer, and bad records into
// dead letters.
func (c *Consumer) decode(recs []*kgo.Record) *batch {
	b := &batch{}
	byID := make(map[string]*customerBatch)
	maxTime := c.cfg.Now().Add(c.cfg.MaxSkew).UnixNano()
	for _, r := range recs {
		if len(r.Value) > c.cfg.MaxRecordBytes {
			c.deadLetter(b, r, ReasonTooLarge, fmt.Sprintf("record value is %d bytes; at most %d are accepted", len(r.Value), c.cfg.MaxRecordBytes))
			continue
		}
		ev, err := scorer.DecodeEvent(r.Value)
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
		cb := byID[ev.CustomerID]
		if cb == nil {
			cb = &customerBatch{id: ev.CustomerID}
			byID[ev.CustomerID] = cb
			b.customers = append(b.customers, cb)
		}
		cb.events = append(cb.events, inEvent{ev: ev, rec: r})
	}
	return b
}

func (c *Consumer) deadLetter(b *batch, r *kgo.Record, reason, detail string) {
	b.dead = append(b.dead, c.cfg.Encoder.DeadLetter(r, reason, detail))
	b.reasons = append(b.reasons, reason)
}

// outcome is one customer's result in an attempt.
type outcome struct {
	applied, duplicate, ignored int
	write                       *state.Write // nil when nothing was applied
}

// process takes a decoded batch through produce and save. Customers whose
// save loses a compare-and-set race are reloaded and redone until they win.
func (c *Consumer) process(ctx context.Context, b *batch) error {
	if len(b.dead) > 0 {
		if err := c.produce(ctx, b.dead, nil); err != nil {
			return err
		}
		c.metrics.events.WithLabelValues(ResultDeadLettered).Add(float64(len(b.dead)))
		for _, r := range b.reasons {
			c.metrics.deadLetters.WithLabelValues(r).Inc()
		}
	}
	todo := b.customers
	for len(todo) > 0 {
		var conflicted []*customerBatch
		err := c.retry(ctx, "state", func() error {
			var err error
			conflicted, err = c.attempt(ctx, todo)
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

// attempt loads, folds, produces and saves the customers once. It returns the
// customers whose save lost a race; an error means the whole attempt must be
// retried (nothing it did is visible except outputs with deterministic ids).
func (c *Consumer) attempt(ctx context.Context, customers []*customerBatch) ([]*customerBatch, error) {
	ids := make([]string, len(customers))
	for i, cb := range customers {
		ids[i] = cb.id
	}
	loaded, err := c.cfg.Store.Load(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("cannot load customer states: %w", err)
	}
	if len(loaded) != len(ids) {
		return nil, fmt.Errorf("cannot load customer states: store returned %d records for %d customers", len(loaded), len(ids))
	}
	results := make([]outcome, len(customers))
	var outputs []*kgo.Record
	var causes []time.Time // Kafka timestamp of each output's cause record
	var writes []state.Write
	var writeIdx []int // index into customers of each write
	for i, cb := range customers {
		before := len(outputs)
		outputs, results[i] = c.fold(outputs, cb, loaded[i])
		for range outputs[before:] {
			causes = append(causes, cb.causeTimestamp())
		}
		if w := results[i].write; w != nil {
			writes = append(writes, *w)
			writeIdx = append(writeIdx, i)
		}
	}
	if err := c.produce(ctx, outputs, causes); err != nil {
		return nil, err
	}
	applied := []bool{}
	if len(writes) > 0 {
		applied, err = c.cfg.Store.Save(ctx, writes)
		switch {
		case errors.Is(err, state.ErrIndex) && len(applied) == len(writes):
			// The records are saved; only the derived band index lags, and
			// readers re-check it against the records.
			c.log.Warn("band index update incomplete", zap.Error(err))
		case err != nil:
			return nil, fmt.Errorf("cannot save customer states: %w", err)
		}
	}
	var conflicted []*customerBatch
	done := make([]bool, len(customers))
	for i := range customers {
		done[i] = results[i].write == nil
	}
	for k, ok := range applied {
		if ok {
			done[writeIdx[k]] = true
		} else {
			conflicted = append(conflicted, customers[writeIdx[k]])
		}
	}
	var nApplied, nDup, nIgn int
	for i, r := range results {
		if done[i] {
			nApplied += r.applied
			nDup += r.duplicate
			nIgn += r.ignored
		}
	}
	c.metrics.events.WithLabelValues(ResultApplied).Add(float64(nApplied))
	c.metrics.events.WithLabelValues(ResultDuplicate).Add(float64(nDup))
	c.metrics.events.WithLabelValues(ResultIgnored).Add(float64(nIgn))
	return conflicted, nil
}

// causeTimestamp is the Kafka timestamp of the customer's latest record in
// the batch, the start of the event-to-output latency.
func (cb *customerBatch) causeTimestamp() time.Time {
	return cb.events[len(cb.events)-1].rec.Timestamp
}

// fold applies the customer's events not applied yet to its stored state and
// appends the outputs the new evaluation calls for.
func (c *Consumer) fold(outputs []*kgo.Record, cb *customerBatch, rec state.Record) ([]*kgo.Record, outcome) {
	m := c.cfg.Model
	var res outcome
	st, err := m.DecodeState(rec.Data)
	if err != nil {
		c.metrics.corruptStates.Inc()
		c.log.Error("stored customer state is corrupt; starting it afresh", zap.String("customer_id", cb.id), zap.Error(err))
		st = m.NewState()
	}
	offsets := make(map[state.Partition]int64, len(rec.Offsets)+1)
	for k, v := range rec.Offsets {
		offsets[k] = v
	}
	var cause *inEvent
	for i := range cb.events {
		e := &cb.events[i]
		tp := state.Partition{Topic: e.rec.Topic, Partition: e.rec.Partition}
		if last, ok := offsets[tp]; ok && e.rec.Offset <= last {
			res.duplicate++
			continue
		}
		if !m.Apply(st, &e.ev) {
			res.ignored++
			continue
		}
		offsets[tp] = e.rec.Offset
		res.applied++
		if cause == nil || e.ev.Time > cause.ev.Time || (e.ev.Time == cause.ev.Time && e.rec.Offset > cause.rec.Offset) {
			cause = e
		}
	}
	if res.applied == 0 {
		return outputs, res
	}
	o := m.Step(st, st.LastEvent)
	if o.Changed || o.Alert != scorer.AlertNone {
		outputs = c.cfg.Encoder.AppendRecords(outputs, &alerts.Change{
			CustomerID: cb.id,
			Outcome:    o,
			Model:      m,
			EventTime:  st.LastEvent,
			Cause:      alerts.Cause{EventID: cause.ev.ID, Topic: cause.rec.Topic, Partition: cause.rec.Partition, Offset: cause.rec.Offset},
		})
	}
	res.write = &state.Write{ID: cb.id, Expected: rec.Version, Rec: state.Record{
		Offsets: offsets,
		Score:   o.Eval.Score,
		Band:    o.Eval.Band.String(),
		Data:    m.AppendState(nil, st),
	}}
	return outputs, res
}

// produce sends records and waits until every one is acknowledged, retrying
// only the failed ones. causes, when set, holds each record's cause
// timestamp for the latency histogram.
func (c *Consumer) produce(ctx context.Context, recs []*kgo.Record, causes []time.Time) error {
	pending := recs
	pendingCauses := causes
	return c.retry(ctx, "produce", func() error {
		if len(pending) == 0 {
			return nil
		}
		results := c.client.ProduceSync(ctx, pending...)
		var failed []*kgo.Record
		var failedCauses []time.Time
		var firstErr error
		now := time.Now()
		for i, r := range results {
			if r.Err != nil {
				if firstErr == nil {
					firstErr = r.Err
				}
				failed = append(failed, pending[i])
				if pendingCauses != nil {
					failedCauses = append(failedCauses, pendingCauses[i])
				}
				continue
			}
			if pendingCauses != nil {
				c.metrics.outputs.WithLabelValues(alerts.TypeOf(r.Record)).Inc()
				c.metrics.latency.Observe(now.Sub(pendingCauses[i]).Seconds())
			}
		}
		pending, pendingCauses = failed, failedCauses
		if firstErr != nil {
			return fmt.Errorf("cannot produce %d of %d records: %w", len(failed), len(results), firstErr)
		}
		return nil
	})
}
