package consumer

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// These tests exercise the batch's decisions (plan.go) alone: no Kafka, no
// Redis, no clock. A "saved" record is what plan's write would leave in the
// store once the outbox is cleared.

var planT0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

func testPlanConfig(t *testing.T) planConfig {
	t.Helper()
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return planConfig{model: scorer.DefaultModel(), encoder: enc, historyDays: 0}
}

// ev is an event of customer "c1" on input partition 0 at offset off, at
// planT0 plus after.
func ev(typ string, off int64, after time.Duration) *inEvent {
	at := planT0.Add(after)
	return &inEvent{
		ev:  scorer.Event{ID: "e" + typ, CustomerID: "c1", Type: typ, Time: at.UnixNano(), HasTime: true, Value: 1},
		rec: &kgo.Record{Topic: "in", Partition: 0, Offset: off, Timestamp: at},
	}
}

// saved is the record plan's write leaves once saved and cleared.
func saved(w *state.Write) state.Record {
	r := w.Rec
	r.Version = w.Expected + 1
	r.Pending = nil
	return r
}

// history folds batches of events one after the other into a record.
func history(t *testing.T, pc planConfig, batches ...[]*inEvent) state.Record {
	t.Helper()
	var rec state.Record
	for _, evs := range batches {
		p := plan(pc, []*customerBatch{{id: "c1", events: evs}}, []state.Record{rec})
		if w := p.outcomes[0].write; w != nil {
			rec = saved(w)
		}
	}
	return rec
}

func outputTypes(rs []*kgo.Record) []string {
	var ts []string
	for _, r := range rs {
		ts = append(ts, alerts.TypeOf(r))
	}
	return ts
}

func TestPlan(t *testing.T) {
	pc := testPlanConfig(t)
	healthy := [][]*inEvent{{
		ev("login", 1, 0), ev("login", 2, time.Minute), ev("feature_used", 3, 2*time.Minute),
		ev("payment_succeeded", 4, 3*time.Minute), ev("kb_viewed", 5, 4*time.Minute),
	}}
	override := ev(scorer.TypeOverride, 10, time.Hour)
	override.ev.Value, override.ev.Reason = 15, "churn call"
	override.ev.ExpiresAt, override.ev.HasExpiresAt = planT0.Add(48*time.Hour).UnixNano(), true
	var troubles []*inEvent
	for i := range 8 {
		typ := []string{"payment_failed", "ticket_escalated", "ticket_opened"}[i%3]
		troubles = append(troubles, ev(typ, int64(10+i), time.Hour+time.Duration(i)*time.Minute))
	}

	tests := []struct {
		name    string
		before  [][]*inEvent // folded first, into the loaded record
		events  []*inEvent
		decayAt time.Time // a sweeper's evaluation (no events)
		reload  bool

		applied, duplicate, ignored int
		write                       bool     // a state write is planned
		outputs                     []string // output types, in order
		band                        string   // the written band
		due                         bool     // a wake-up is planned
		overrideAt                  int64    // Unix ms of the override's expiry; 0: none planned
		rescored                    bool
		cause                       string // in the first output's cause
	}{
		{name: "first event", events: []*inEvent{ev("login", 1, 0)},
			applied: 1, write: true, outputs: []string{alerts.TypeScoreChanged}, band: "yellow", due: true, rescored: true,
			cause: `"event_id":"elogin","topic":"in","partition":0,"offset":1`},
		{name: "duplicate by offset", before: healthy, events: []*inEvent{ev("login", 5, time.Hour)},
			duplicate: 1},
		{name: "redelivered batch", before: healthy, events: healthy[0],
			duplicate: 5},
		{name: "ignored type", before: healthy, events: []*inEvent{ev("page_viewed", 6, time.Hour)},
			ignored: 1},
		{name: "ignored type at an old offset still counts as ignored", before: healthy, events: []*inEvent{ev("page_viewed", 1, time.Hour)},
			ignored: 1},
		{name: "band change to red raises an alert", before: healthy, events: troubles,
			applied: 8, write: true, outputs: []string{alerts.TypeScoreChanged, alerts.TypeLow}, band: "red", due: true, rescored: true,
			cause: `"offset":17`},
		{name: "decay by the sweeper", before: healthy, decayAt: planT0.Add(30 * 24 * time.Hour),
			write: true, outputs: []string{alerts.TypeScoreChanged, alerts.TypeLow}, band: "red", due: true, rescored: true,
			cause: `"decay":true,"at":"2026-12-01T09:00:00`},
		{name: "rescoring after a model reload", before: healthy, decayAt: planT0.Add(30 * 24 * time.Hour), reload: true,
			write: true, outputs: []string{alerts.TypeScoreChanged, alerts.TypeLow}, band: "red", due: true, rescored: true,
			cause: `"model_reload":true`},
		{name: "event with nothing to publish still saves its offset", before: healthy, events: []*inEvent{ev("payment_succeeded", 6, 5*time.Minute)},
			applied: 1, write: true, band: "yellow", due: true, rescored: true},
		{name: "decay check with nothing to publish", before: healthy, decayAt: planT0.Add(time.Second),
			due: true, rescored: true},
		{name: "sweeper on a customer never stored", decayAt: planT0.Add(time.Hour)},
		{name: "override", before: healthy, events: []*inEvent{override},
			applied: 1, write: true, outputs: []string{alerts.TypeScoreChanged, alerts.TypeLow}, band: "red", due: true,
			overrideAt: planT0.Add(48 * time.Hour).UnixMilli(), rescored: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := history(t, pc, tc.before...)
			cb := &customerBatch{id: "c1", events: tc.events, reload: tc.reload}
			if !tc.decayAt.IsZero() {
				cb.decayAt = tc.decayAt.UnixNano()
			}
			p := plan(pc, []*customerBatch{cb}, []state.Record{rec})
			o := p.outcomes[0]
			if o.applied != tc.applied || o.duplicate != tc.duplicate || o.ignored != tc.ignored {
				t.Errorf("applied/duplicate/ignored = %d/%d/%d, want %d/%d/%d", o.applied, o.duplicate, o.ignored, tc.applied, tc.duplicate, tc.ignored)
			}
			if o.rescored != tc.rescored {
				t.Errorf("rescored = %v, want %v", o.rescored, tc.rescored)
			}
			if (o.nextDue > 0) != tc.due {
				t.Errorf("nextDue = %d, want one planned: %v", o.nextDue, tc.due)
			}
			if tc.overrideAt != 0 {
				if o.override == nil || *o.override != (state.Due{ID: "c1", At: tc.overrideAt}) {
					t.Errorf("override = %+v, want its expiry at %d", o.override, tc.overrideAt)
				}
			} else if o.override != nil {
				t.Errorf("override = %+v, want none", o.override)
			}
			if (o.write != nil) != tc.write {
				t.Fatalf("write = %+v, want one: %v", o.write, tc.write)
			}
			if !tc.write {
				if len(p.writes) != 0 {
					t.Errorf("planned %d writes, want none", len(p.writes))
				}
				return
			}
			if len(p.writes) != 1 {
				t.Fatalf("planned %d writes, want 1", len(p.writes))
			}
			w := p.writes[0]
			if got := outputTypes(w.outputs); !slices.Equal(got, tc.outputs) {
				t.Errorf("outputs = %v, want %v", got, tc.outputs)
			}
			if len(w.outputs) > 0 && !bytes.Contains(w.outputs[0].Value, []byte(tc.cause)) {
				t.Errorf("first output %s, want cause %s", w.outputs[0].Value, tc.cause)
			}
			// After events the wake-up is EarliestChange's cheap bound; after
			// a sweeper's evaluation, NextChange's exact instant.
			st, err := pc.model.DecodeState(w.write.Rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			next, at := pc.model.NextChange, cb.decayAt
			if tc.applied > 0 {
				next, at = pc.model.EarliestChange, tc.events[len(tc.events)-1].ev.Time
			}
			if due, _ := next(st, at); o.nextDue != (due+int64(time.Millisecond)-1)/int64(time.Millisecond) {
				t.Errorf("nextDue = %d, want %d", o.nextDue, due)
			}
			if w.write.Rec.Band != tc.band {
				t.Errorf("band = %q, want %q", w.write.Rec.Band, tc.band)
			}
			if w.write.Expected != rec.Version || !w.write.NoPrevOutbox || w.write.SkipIndex {
				t.Errorf("write = {Expected %d, NoPrevOutbox %v, SkipIndex %v}, want {%d, true, false}", w.write.Expected, w.write.NoPrevOutbox, w.write.SkipIndex, rec.Version)
			}
			// The outbox stored with the record is exactly the outputs.
			stored, err := decodeOutbox(w.write.Rec.Pending)
			if err != nil || len(stored) != len(w.outputs) {
				t.Errorf("stored outbox: %d records (%v), want %d", len(stored), err, len(w.outputs))
			}
			if tc.applied > 0 {
				last := tc.events[len(tc.events)-1]
				if got := w.write.Rec.Offsets[state.Partition{Topic: "in", Partition: 0}]; got != last.rec.Offset {
					t.Errorf("written offset = %d, want %d", got, last.rec.Offset)
				}
				if !w.cause.Equal(last.rec.Timestamp) {
					t.Errorf("cause = %v, want the last record's timestamp %v", w.cause, last.rec.Timestamp)
				}
			} else if !w.cause.IsZero() {
				t.Errorf("cause = %v, want none for an evaluation without events", w.cause)
			}
		})
	}
}

// An earlier attempt's outbox left in the record is produced first, then
// the new outputs; with nothing new, the record is re-saved (a clear-only
// write) to finish it.
func TestPlanPendingOutbox(t *testing.T) {
	pc := testPlanConfig(t)
	rec := history(t, pc, []*inEvent{ev("login", 1, 0)})
	first := plan(pc, []*customerBatch{{id: "c1", events: []*inEvent{ev("login", 1, 0)}}}, []state.Record{{}})
	left := first.writes[0].outputs
	rec.Pending = encodeOutbox(left)

	t.Run("new outputs after the pending ones", func(t *testing.T) {
		p := plan(pc, []*customerBatch{{id: "c1", events: []*inEvent{ev("ticket_escalated", 2, time.Hour)}}}, []state.Record{rec})
		w := p.writes[0]
		if w.pending != len(left) || len(w.outputs) <= len(left) || w.write.NoPrevOutbox {
			t.Fatalf("pending %d of %d outputs, NoPrevOutbox %v; want %d pending first, then new ones, NoPrevOutbox false", w.pending, len(w.outputs), w.write.NoPrevOutbox, len(left))
		}
		for j, r := range left {
			if string(w.outputs[j].Value) != string(r.Value) {
				t.Errorf("output %d is not the pending one", j)
			}
		}
		s := p.settle([]bool{true}, p.stateWrites())
		if !s.causes[0].IsZero() || s.causes[len(s.causes)-1].IsZero() {
			t.Errorf("causes = %v, want pending outputs untimed and new ones timed", s.causes)
		}
	})
	t.Run("only duplicates: clear-only write", func(t *testing.T) {
		p := plan(pc, []*customerBatch{{id: "c1", events: []*inEvent{ev("login", 1, 0)}}}, []state.Record{rec})
		if p.outcomes[0].write != nil || p.outcomes[0].duplicate != 1 {
			t.Fatalf("outcome = %+v, want a duplicate and no new state", p.outcomes[0])
		}
		if len(p.writes) != 1 {
			t.Fatalf("planned %d writes, want the clear-only one", len(p.writes))
		}
		w := p.writes[0].write
		if !w.SkipIndex || w.Expected != rec.Version || string(w.Rec.Data) != string(rec.Data) || len(p.writes[0].outputs) != len(left) {
			t.Errorf("write = %+v, want the loaded record re-saved with its %d pending outputs", w, len(left))
		}
		// Lost to a racing writer: done, nothing to produce or redo.
		if s := p.settle([]bool{false}, p.stateWrites()); len(s.redo) != 0 || len(s.outputs) != 0 || !s.done[0] {
			t.Errorf("lost clear-only write: %+v, want done with nothing to produce", s)
		}
	})
}

// settle produces and clears only applied writes, in customer order, and
// redoes customers whose new state lost a compare-and-set race.
func TestPlanSettle(t *testing.T) {
	pc := testPlanConfig(t)
	pc.schedule = true
	var customers []*customerBatch
	for i, id := range []string{"a", "b", "c", "d"} {
		e := ev("login", int64(i), 0)
		e.ev.CustomerID = id
		if id == "c" {
			e.ev.Type = "page_viewed" // ignored: nothing to write
		}
		customers = append(customers, &customerBatch{id: id, events: []*inEvent{e}})
	}
	p := plan(pc, customers, make([]state.Record, len(customers)))
	if len(p.writes) != 3 {
		t.Fatalf("planned %d writes, want 3 (c is ignored)", len(p.writes))
	}
	s := p.settle([]bool{true, false, true}, p.stateWrites()) // b lost its race
	if !slices.Equal(s.redo, []int{1}) || !slices.Equal(s.done, []bool{true, false, true, true}) {
		t.Errorf("redo %v, done %v; want b redone, the others done", s.redo, s.done)
	}
	want := []state.Outbox{{ID: "a", Version: 1}, {ID: "d", Version: 1}}
	if !slices.Equal(s.clears, want) {
		t.Errorf("clears = %v, want %v", s.clears, want)
	}
	if len(s.outputs) != 2 || len(s.causes) != 2 {
		t.Errorf("%d outputs, %d causes; want a's and d's", len(s.outputs), len(s.causes))
	}
	n := p.tally(customers, s.done)
	if n != (tally{applied: 2, ignored: 1, event: 2}) {
		t.Errorf("tally = %+v, want b left out", n)
	}
	for _, w := range p.writes {
		if due := p.outcomes[w.i].nextDue; w.write.Due != due || due == 0 {
			t.Errorf("write of %s: due %d, outcome's next due %d; want it carried, not 0", w.write.ID, w.write.Due, due)
		}
	}
}

// Stored data that cannot be decoded is replaced (a fresh state, no outbox)
// and reported, not fatal.
func TestPlanCorrupt(t *testing.T) {
	pc := testPlanConfig(t)
	rec := state.Record{Version: 3, Data: []byte("not a state"), Pending: []byte("not an outbox")}
	p := plan(pc, []*customerBatch{{id: "c1", events: []*inEvent{ev("login", 1, 0)}}}, []state.Record{rec})
	if len(p.corrupt) != 2 || p.corrupt[0].what != "outbox" || p.corrupt[1].what != "state" || p.corrupt[0].id != "c1" {
		t.Fatalf("corrupt = %+v, want the outbox then the state of c1", p.corrupt)
	}
	for _, c := range p.corrupt {
		if c.err == nil {
			t.Errorf("%s: no error to report", c.what)
		}
	}
	if len(p.writes) != 1 || p.writes[0].write.Expected != 3 || p.writes[0].pending != 0 {
		t.Errorf("writes = %+v, want the fresh state saved over version 3 with no pending outputs", p.writes)
	}
}

// With a score history, a band change records its changes in the write,
// and an evaluation that publishes nothing records none.
func TestPlanHistory(t *testing.T) {
	pc := testPlanConfig(t)
	pc.historyDays = 30
	rec := history(t, pc, []*inEvent{ev("login", 1, 0), ev("payment_succeeded", 2, time.Minute)})
	low := ev(scorer.TypeOverride, 3, time.Hour)
	low.ev.Value = 10 // red: a low alert
	for _, tc := range []struct {
		name    string
		e       *inEvent
		changes bool
	}{
		{"band change", low, true},
		{"nothing published", ev("payment_succeeded", 3, 2*time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(pc, []*customerBatch{{id: "c1", events: []*inEvent{tc.e}}}, []state.Record{rec})
			if len(p.writes) != 1 {
				t.Fatalf("planned %d writes, want 1", len(p.writes))
			}
			w := p.writes[0]
			if (len(w.write.Changes) > 0) != tc.changes || (len(w.outputs) > 0) != tc.changes {
				t.Errorf("%d history changes, %d outputs; want both present: %v", len(w.write.Changes), len(w.outputs), tc.changes)
			}
		})
	}
	// Without a history, none is written.
	pc.historyDays = 0
	p := plan(pc, []*customerBatch{{id: "c1", events: []*inEvent{low}}}, []state.Record{rec})
	if w := p.writes[0].write; len(w.Changes) != 0 || len(w.Days) != 0 {
		t.Errorf("history written with HistoryDays 0: %d changes, %d days", len(w.Changes), len(w.Days))
	}
}
