package consumer

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// This file is the batch's functional core: given the customers' events,
// their loaded records, the model and the configuration, plan decides every
// write, output, wake-up and count, with no I/O and no clock; attempt (in
// batch.go) is the I/O sequence around it.

// planConfig is what plan needs besides the customers and their records.
type planConfig struct {
	model       *scorer.Model
	encoder     *alerts.Encoder
	historyDays int  // Config.HistoryDays
	schedule    bool // a Schedule is configured: writes carry their due time
}

// outcome is one customer's result in an attempt.
type outcome struct {
	applied, duplicate, ignored int
	write                       *state.Write // nil when nothing was applied
	nextDue                     int64        // Unix ms, 0: never (see customerBatch)
	override                    *state.Due   // set when an override event was folded: its expiry
	rescored                    bool         // evaluated (by an event or by the sweeper)
}

// customerWrite is one customer's save: its new record (or its unchanged
// record, to finish an earlier attempt's outbox) with every output still to
// produce stored in the record's outbox.
type customerWrite struct {
	i       int // index in the batch's customers
	write   state.Write
	outputs []*kgo.Record // pending ones first
	pending int           // how many of outputs an earlier attempt left (not timed)
	cause   time.Time     // the cause timestamp of the others
}

// corruption is stored data of a customer that could not be decoded; plan
// replaced it (an empty outbox, a fresh state) and the shell reports it.
type corruption struct {
	id   string
	what string // "outbox" or "state"
	err  error
}

// batchPlan is plan's decision for a batch.
type batchPlan struct {
	outcomes []outcome       // one per customer, in the batch's order
	writes   []customerWrite // the customers with something to save, in order
	corrupt  []corruption    // in the order found
}

// plan folds each customer's events into its loaded record (loaded[i] is
// customers[i]'s) and decides the customer's write: new state plus
// everything still pending (an earlier attempt's outputs that may not have
// been acknowledged come first, so per-customer order holds).
func plan(pc planConfig, customers []*customerBatch, loaded []state.Record) batchPlan {
	p := batchPlan{outcomes: make([]outcome, len(customers)), writes: make([]customerWrite, 0, len(customers))}
	var ow outboxWriter
	var ch alerts.Change
	for i, cb := range customers {
		rec := loaded[i]
		pending, err := decodeOutbox(rec.Pending)
		if err != nil {
			p.corrupt = append(p.corrupt, corruption{id: cb.id, what: "outbox", err: err})
			pending = nil
		}
		var publish bool
		var bad error
		publish, p.outcomes[i], bad = pc.fold(cb, rec, &ch)
		if bad != nil {
			p.corrupt = append(p.corrupt, corruption{id: cb.id, what: "state", err: bad})
		}
		if p.outcomes[i].write == nil && len(pending) == 0 {
			continue // only duplicates or ignored types: nothing to do
		}
		w := customerWrite{i: i, pending: len(pending), cause: cb.causeTimestamp()}
		if nw := p.outcomes[i].write; nw != nil {
			w.write = *nw
		} else {
			// Nothing new, but an earlier attempt's outputs to finish: the
			// record is saved again (a new version, with the outbox where
			// this save stores outboxes; the save removes the loaded one,
			// which PrevOutboxCall locates) and that outbox is cleared like
			// any other. This also moves an outbox stored inside a record
			// by an earlier version of the service out of it.
			w.write = state.Write{ID: cb.id, Expected: rec.Version, PrevOutboxCall: rec.OutboxCall, Rec: rec, SkipIndex: true}
		}
		var fresh *alerts.Change
		if publish {
			fresh = &ch
		}
		w.write.Rec.Pending, w.outputs = ow.write(pending, pc.encoder, fresh)
		p.writes = append(p.writes, w)
	}
	return p
}

// overrides are the expiries of the overrides folded in this batch.
func (p *batchPlan) overrides() []state.Due {
	var overrides []state.Due
	for _, r := range p.outcomes {
		if r.override != nil {
			overrides = append(overrides, *r.override)
		}
	}
	return overrides
}

// stateWrites are the writes to save, in the order of p.writes.
func (p *batchPlan) stateWrites() []state.Write {
	writes := make([]state.Write, len(p.writes))
	for k, w := range p.writes {
		writes[k] = w.write
	}
	return writes
}

// settled is what follows from which saves applied.
type settled struct {
	outputs []*kgo.Record  // to produce, customer by customer
	causes  []time.Time    // each output's cause timestamp (zero: not timed)
	clears  []state.Outbox // the outboxes to clear once outputs are acknowledged
	done    []bool         // per customer: finished by this attempt
	redo    []int          // customers whose save lost a compare-and-set race, to redo
}

// settle decides, from applied (one per p.writes) and the writes as Save
// returned them (saved, which name where each outbox went), what to
// produce, what to clear and which customers to redo.
func (p *batchPlan) settle(applied []bool, saved []state.Write) settled {
	s := settled{done: make([]bool, len(p.outcomes)), clears: make([]state.Outbox, 0, len(p.writes))}
	for i := range s.done {
		s.done[i] = true
	}
	nOut := 0
	for _, w := range p.writes {
		nOut += len(w.outputs)
	}
	s.outputs = make([]*kgo.Record, 0, nOut)
	s.causes = make([]time.Time, 0, nOut)
	for k, w := range p.writes {
		if !applied[k] {
			// A lost clear-only write is done: its events were duplicates
			// or ignored, and whoever won owns the outbox now.
			if p.outcomes[w.i].write != nil {
				s.done[w.i] = false
				s.redo = append(s.redo, w.i)
			}
			continue
		}
		if len(w.outputs) == 0 {
			continue
		}
		s.outputs = append(s.outputs, w.outputs...)
		for j := range w.outputs {
			if j < w.pending {
				s.causes = append(s.causes, time.Time{}) // unknown: not timed
			} else {
				s.causes = append(s.causes, w.cause)
			}
		}
		s.clears = append(s.clears, saved[k].Saved())
	}
	return s
}

// tally is the counts of an attempt's finished customers.
type tally struct {
	applied, duplicate, ignored int
	event, decay, reload        int // rescored customers by cause
}

func (p *batchPlan) tally(customers []*customerBatch, done []bool) tally {
	var n tally
	for i, r := range p.outcomes {
		if !done[i] {
			continue
		}
		n.applied += r.applied
		n.duplicate += r.duplicate
		n.ignored += r.ignored
		switch {
		case r.rescored && r.applied > 0:
			n.event++
		case r.rescored && customers[i].reload:
			n.reload++
		case r.rescored:
			n.decay++
		}
	}
	return n
}

// causeTimestamp is the Kafka timestamp of the customer's latest record in
// the batch, the start of the event-to-output latency (zero: not timed).
func (cb *customerBatch) causeTimestamp() time.Time {
	if len(cb.events) == 0 {
		return time.Time{} // a decay evaluation: no event to time from
	}
	return cb.events[len(cb.events)-1].rec.Timestamp
}

// fold applies the customer's events not applied yet to its stored state
// and, when the new evaluation calls for outputs, sets *ch to the change to
// publish and reports true. A stored state that cannot be decoded is started
// afresh and its error returned, to report.
func (pc planConfig) fold(cb *customerBatch, rec state.Record, ch *alerts.Change) (bool, outcome, error) {
	m := pc.model
	var res outcome
	st, corrupt := m.DecodeState(rec.Data)
	if corrupt != nil {
		st = m.NewState()
	}
	offsets := make(map[state.Partition]int64, len(rec.Offsets)+1)
	for k, v := range rec.Offsets {
		offsets[k] = v
	}
	// Score history (see history.go): each event closes the days before it.
	hist := pc.historyDays > 0
	if !hist {
		st.DropDay()
	}
	var closed []scorer.DayPoint
	var cause *inEvent
	for i := range cb.events {
		e := cb.events[i]
		if !m.Folds(&e.ev) {
			res.ignored++ // first, so a redelivery counts it the same way
			continue
		}
		tp := state.Partition{Topic: e.rec.Topic, Partition: e.rec.Partition}
		if last, ok := offsets[tp]; ok && e.rec.Offset <= last {
			res.duplicate++
			continue
		}
		if hist {
			closed, _ = m.ApplyWithHistory(st, &e.ev, pc.historyDays, closed)
		} else {
			m.Apply(st, &e.ev)
		}
		if e.ev.Type == scorer.TypeOverride && st.Override != nil {
			exp := int64(0) // none
			if st.Override.Expires != scorer.NoExpiry {
				exp = st.Override.Expires / int64(time.Millisecond)
			}
			res.override = &state.Due{ID: cb.id, At: exp}
		}
		offsets[tp] = e.rec.Offset
		res.applied++
		if cause == nil || e.ev.Time > cause.ev.Time || (e.ev.Time == cause.ev.Time && e.rec.Offset > cause.rec.Offset) {
			cause = e
		}
	}
	// Never evaluate before an instant already published: after the sweeper
	// published a decayed score at the wall clock, events dated earlier
	// (a backlog) must not make the score jump back up.
	at := max(st.LastEvent, st.PublishedAt)
	var why alerts.Cause
	switch {
	case res.applied > 0:
		why = alerts.Cause{EventID: cause.ev.ID, Topic: cause.rec.Topic, Partition: cause.rec.Partition, Offset: cause.rec.Offset}
	case cb.decayAt > 0 && rec.Version > 0:
		at = max(at, cb.decayAt)
		why = alerts.Cause{Decay: !cb.reload, Reload: cb.reload, At: at}
	default:
		return false, res, corrupt
	}
	if hist {
		closed = m.BeginDay(closed, st, at, pc.historyDays)
	}
	o := m.Step(st, at)
	if hist {
		m.NoteDay(st, &o.Eval)
		closed = windowDays(closed, scorer.DayOf(at), pc.historyDays)
	}
	res.rescored = true
	// The wake-up for a customer that gets no more events. After events,
	// the customer will likely have more before it is due, so a bound that
	// is never late and costs one evaluation does (scorer.EarliestChange);
	// if it stays silent, the sweeper's evaluation at that wake-up computes
	// the exact instant (NextChange, a search ~40 times dearer).
	nextChange := m.NextChange
	if res.applied > 0 {
		nextChange = m.EarliestChange
	}
	if t, ok := nextChange(st, at); ok {
		res.nextDue = (t + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	}
	publish := o.Changed || o.Alert != scorer.AlertNone || o.Dropped
	if res.applied == 0 && !publish {
		return false, res, corrupt // a decay check with nothing to publish: no write
	}
	if publish {
		*ch = alerts.Change{
			CustomerID: cb.id,
			Outcome:    o,
			Model:      m,
			EventTime:  at,
			Cause:      why,
		}
	}
	res.write = &state.Write{ID: cb.id, Expected: rec.Version, NoPrevOutbox: len(rec.Pending) == 0, PrevOutboxCall: rec.OutboxCall, Rec: state.Record{
		Offsets: offsets,
		Score:   o.Eval.Score,
		Band:    o.Eval.Band.String(),
		Data:    m.AppendState(nil, st),
	}}
	if pc.schedule {
		res.write.Due = res.nextDue
	}
	if hist {
		res.write.Days = historyDays(closed)
		if publish {
			res.write.Changes = historyChanges(&o, at)
		}
	}
	return publish, res, corrupt
}
