package state_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

// TestOutboxLifecycle: an outbox (Pending) is saved with its record (under
// its own key in single-key mode, in its save call's hash otherwise) and
// loaded with it; ClearOutboxes deletes it without touching the record; a
// clear naming an older version leaves a newer outbox alone; and the save
// that replaces a version whose outbox was never cleared deletes that
// outbox, so none is left behind.
func TestOutboxLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		c := newClient()
		s := newStore(t, c, cfg)
		outboxes := func() []string { return outboxKeys(t, c, cfg.Prefix) }
		// save saves w and returns it as Save left it (naming its outbox).
		save := func(w state.Write) state.Write {
			t.Helper()
			ws := []state.Write{w}
			if !mustSave(t, s, ws...)[0] {
				t.Fatalf("save of version %d not applied", w.Expected+1)
			}
			return ws[0]
		}
		keyOf := func(w state.Write) string {
			if cfg.SingleKey {
				return s.OutboxKey(w.ID, w.Expected+1)
			}
			return s.CallOutboxKey(w.Rec.OutboxCall)
		}
		rec := state.Record{Score: 30, Band: state.BandRed, Data: []byte("st"), Pending: []byte("outbox 1")}
		w1 := save(state.Write{ID: "a", Rec: rec})
		got, err := s.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Pending, []byte("outbox 1")) || got.Version != 1 || string(got.Data) != "st" {
			t.Fatalf("got pending %q version %d data %q, want \"outbox 1\" 1 \"st\"", got.Pending, got.Version, got.Data)
		}
		if keys := outboxes(); !slices.Equal(keys, []string{keyOf(w1)}) {
			t.Fatalf("outbox keys %q, want %q", keys, keyOf(w1))
		}

		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{w1.Saved()}); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Get(ctx, "a"); got.Pending != nil || got.Version != 1 || got.Score != 30 {
			t.Fatalf("after clear: pending %q version %d score %v, want none, 1, 30", got.Pending, got.Version, got.Score)
		}
		if keys := outboxes(); len(keys) != 0 {
			t.Fatalf("outbox keys %q after the clear", keys)
		}

		// Version 2 with an outbox, saved knowing that version 1's was
		// cleared (the save skips deleting it); a late clear of version 1
		// (a writer that lost the race) must not delete the new one.
		rec.Pending = []byte("outbox 2")
		w2 := save(state.Write{ID: "a", Expected: 1, Rec: rec, NoPrevOutbox: true})
		if keys := outboxes(); !slices.Equal(keys, []string{keyOf(w2)}) {
			t.Fatalf("outbox keys %q, want %q", keys, keyOf(w2))
		}
		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{w1.Saved()}); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Get(ctx, "a"); string(got.Pending) != "outbox 2" {
			t.Fatalf("a clear of version 1 took version 2's outbox: pending %q", got.Pending)
		}
		// Version 3 replaces version 2, whose outbox was never cleared
		// (its writer crashed; this writer loaded and re-sends it).
		rec.Pending = []byte("outbox 2 + 3")
		w3 := save(state.Write{ID: "a", Expected: 2, PrevOutboxCall: got.OutboxCall, Rec: rec})
		if keys := outboxes(); !slices.Equal(keys, []string{keyOf(w3)}) {
			t.Fatalf("outbox keys %q, want only %q", keys, keyOf(w3))
		}
		// Version 4 has no outbox and replaces version 3's uncleared one.
		got, _ = s.Get(ctx, "a")
		rec.Pending = nil
		save(state.Write{ID: "a", Expected: 3, PrevOutboxCall: got.OutboxCall, Rec: rec})
		if keys := outboxes(); len(keys) != 0 {
			t.Fatalf("outbox keys %q left after a save without outbox", keys)
		}
		if got, _ = s.Get(ctx, "a"); got.Pending != nil || got.Version != 4 {
			t.Fatalf("version 4: pending %q version %d", got.Pending, got.Version)
		}
		// A conflicting save writes no outbox.
		rec.Pending = []byte("loser")
		if applied := mustSave(t, s, state.Write{ID: "a", Expected: 3, Rec: rec}); applied[0] {
			t.Fatal("a save expecting version 3 applied over version 4")
		}
		if keys := outboxes(); len(keys) != 0 {
			t.Fatalf("outbox keys %q after a refused save", keys)
		}
	})
}

// TestSkipIndex: in single-key mode a SkipIndex write leaves the band index
// as it was, in multi-key mode the index follows the record; band counts
// follow the index.
func TestSkipIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		s := newStore(t, newClient(), cfg)
		rec := state.Record{Score: 30, Band: state.BandRed, Data: []byte("st")}
		mustSave(t, s, state.Write{ID: "a", Rec: rec})
		// A write that does not change the score (e.g. finishing an outbox)
		// with a band that differs: the index must not move.
		moved := rec
		moved.Band = state.BandGreen
		mustSave(t, s, state.Write{ID: "a", Expected: 1, Rec: moved, SkipIndex: true})
		counts, err := s.BandCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.SingleKey {
			if counts[state.BandRed] != 1 || counts[state.BandGreen] != 0 {
				t.Fatalf("band counts %v: the SkipIndex write moved the index", counts)
			}
			return
		}
		// With multi-key scripts the index moves with the record, always.
		if counts[state.BandRed] != 0 || counts[state.BandGreen] != 1 {
			t.Fatalf("band counts %v: the index did not follow the record", counts)
		}
	})
}

// TestCallOutbox (multi-key mode): a save call stores the outboxes of its
// applied writes in one string, which starts with the number of records
// that name it; each record names the call and its range, and the outboxes
// load back byte for byte (as after a crash between save and clear). A
// later save of a customer lowers its old call's count, and the last one
// deletes the string (what a writer that died before its clear left goes
// once its customers moved on); a clear deletes the string at once; a
// lost compare-and-set is not counted, and a call whose writes all lost
// stores nothing. Outboxes that earlier versions saved under their own key
// (format 2) or as a field of a call's hash (format 3) are read and moved
// on.
func TestCallOutbox(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		if cfg.SingleKey {
			t.Skip("single-key mode keeps an outbox key per customer (TestOutboxLifecycle)")
		}
		ctx := t.Context()
		c := newClient()
		s := newStore(t, c, cfg)
		keys := func() []string { return outboxKeys(t, c, cfg.Prefix) }
		refs := func(key string) string {
			t.Helper()
			v, err := c.GetRange(ctx, key, 0, 9).Result()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		rec := func(outbox string) state.Record {
			return state.Record{Score: 30, Band: state.BandRed, Data: []byte("st"), Pending: []byte(outbox)}
		}

		// c is at version 1, so the write of c below (expecting 0) loses.
		mustSave(t, s, state.Write{ID: "c", Rec: rec("")})
		ws := []state.Write{{ID: "a", Rec: rec("out a")}, {ID: "b", Rec: rec("out b")}, {ID: "c", Rec: rec("out c")}, {ID: "d", Rec: rec("")}}
		if applied := mustSave(t, s, ws...); !slices.Equal(applied, []bool{true, true, false, true}) {
			t.Fatalf("applied %v, want a, b and d", applied)
		}
		call := ws[0].Rec.OutboxCall
		if call == "" || ws[1].Rec.OutboxCall != call {
			t.Fatalf("outbox calls %q and %q, want one", call, ws[1].Rec.OutboxCall)
		}
		key := s.CallOutboxKey(call)
		if k := keys(); !slices.Equal(k, []string{key}) {
			t.Fatalf("outbox keys %q, want only the call's %q", k, key)
		}
		if n := refs(key); n != "0000000002" {
			t.Fatalf("call's count %q, want 2 (a and b; c lost its compare-and-set)", n)
		}
		got, err := s.Load(ctx, []string{"a", "b", "c", "d"})
		if err != nil {
			t.Fatal(err)
		}
		if string(got[0].Pending) != "out a" || string(got[1].Pending) != "out b" || got[0].OutboxCall != call || got[1].OutboxCall != call {
			t.Fatalf("loaded a %q (call %q), b %q (call %q); want their outboxes in call %q", got[0].Pending, got[0].OutboxCall, got[1].Pending, got[1].OutboxCall, call)
		}
		if got[2].Pending != nil || got[2].Version != 1 || got[3].Pending != nil || got[3].OutboxCall != "" {
			t.Fatalf("loaded c %+v and d %+v, want no outbox", got[2], got[3])
		}

		// a moves on (its outbox re-saved with the new version, as the
		// consumer does with an outbox it loads): the first call counts b
		// only.
		wa := []state.Write{{ID: "a", Expected: 1, PrevOutboxCall: got[0].OutboxCall, Rec: rec("out a+")}}
		mustSave(t, s, wa...)
		key2 := s.CallOutboxKey(wa[0].Rec.OutboxCall)
		if key2 == key {
			t.Fatalf("a second save call reused outbox key %q", key)
		}
		if n, n2 := refs(key), refs(key2); n != "0000000001" || n2 != "0000000001" {
			t.Fatalf("counts %q and %q after a moved on, want 1 (b) and 1 (a)", n, n2)
		}
		if got, _ = s.Load(ctx, []string{"a", "b"}); string(got[0].Pending) != "out a+" || string(got[1].Pending) != "out b" {
			t.Fatalf("after a moved on: a %q, b %q", got[0].Pending, got[1].Pending)
		}

		// The first call's outputs acknowledged: its clear deletes the
		// string (one DEL, however many of its outboxes it names), not the
		// second call's.
		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{ws[0].Saved(), ws[1].Saved()}); err != nil {
			t.Fatal(err)
		}
		if k := keys(); !slices.Equal(k, []string{key2}) {
			t.Fatalf("outbox keys %q after the first call's clear, want only %q", k, key2)
		}
		if got, _ = s.Load(ctx, []string{"a", "b"}); string(got[0].Pending) != "out a+" || got[1].Pending != nil {
			t.Fatalf("after the clear: a %q, b %q; want \"out a+\" and none", got[0].Pending, got[1].Pending)
		}
		// a moves on without outputs: the last record naming the second
		// call goes, and so does its string.
		mustSave(t, s, state.Write{ID: "a", Expected: 2, PrevOutboxCall: got[0].OutboxCall, Rec: rec("")})
		if k := keys(); len(k) != 0 {
			t.Fatalf("outbox keys %q left", k)
		}

		// A writer that died before its clear: its customers move on one
		// by one, and the last one deletes its string.
		wg := []state.Write{{ID: "g", Rec: rec("out g")}, {ID: "h", Rec: rec("out h")}}
		mustSave(t, s, wg...)
		dead := s.CallOutboxKey(wg[0].Rec.OutboxCall)
		for i, id := range []string{"g", "h"} {
			got, _ = s.Load(ctx, []string{id})
			if string(got[0].Pending) != "out "+id {
				t.Fatalf("%s loaded with outbox %q", id, got[0].Pending)
			}
			mustSave(t, s, state.Write{ID: id, Expected: 1, PrevOutboxCall: got[0].OutboxCall, Rec: rec("")})
			if k := keys(); i == 0 && (!slices.Equal(k, []string{dead}) || refs(dead) != "0000000001") {
				t.Fatalf("after g moved on: keys %q, count %q; want %q counting 1", k, refs(dead), dead)
			}
		}
		if k := keys(); len(k) != 0 {
			t.Fatalf("outbox keys %q left after every customer of a dead writer moved on", k)
		}

		// The same customer twice in one call: the second write without
		// outputs leaves nothing stored; with outputs, it is counted once.
		mustSave(t, s, state.Write{ID: "f", Rec: rec("out f")}, state.Write{ID: "f", Expected: 1, Rec: rec("")})
		if k := keys(); len(k) != 0 {
			t.Fatalf("outbox keys %q: a replaced write's outbox was stored", k)
		}
		wf := []state.Write{{ID: "f", Expected: 2, Rec: rec("out f3")}, {ID: "f", Expected: 3, Rec: rec("out f4")}}
		mustSave(t, s, wf...)
		if n := refs(s.CallOutboxKey(wf[1].Rec.OutboxCall)); n != "0000000001" {
			t.Fatalf("count %q after two writes of f in one call, want 1", n)
		}
		if got, _ = s.Load(ctx, []string{"f"}); string(got[0].Pending) != "out f4" {
			t.Fatalf("f loaded with outbox %q, want its last", got[0].Pending)
		}
		mustSave(t, s, state.Write{ID: "f", Expected: 4, PrevOutboxCall: got[0].OutboxCall, Rec: rec("")})

		// Format 2, as earlier versions wrote it (and single-key mode
		// still does): the outbox under its own key. It is read, and the
		// save that moves it on deletes that key.
		// The record moves to where this store keeps it (its bucket).
		old := newStore(t, c, state.Config{Prefix: cfg.Prefix, SingleKey: true})
		mustSave(t, old, state.Write{ID: "e", Rec: rec("out e")})
		v, err := rawRecord(t, c, old, "e")
		if err != nil {
			t.Fatal(err)
		}
		oldKey, _ := old.RecordKey("e")
		if err := c.Del(ctx, oldKey).Err(); err != nil {
			t.Fatal(err)
		}
		setRawRecord(t, c, s, "e", v)
		if k := keys(); !slices.Equal(k, []string{s.OutboxKey("e", 1)}) {
			t.Fatalf("format-2 outbox keys %q", k)
		}
		if got, _ = s.Load(ctx, []string{"e"}); string(got[0].Pending) != "out e" || got[0].OutboxCall != "" {
			t.Fatalf("format-2 record loaded with outbox %q, call %q", got[0].Pending, got[0].OutboxCall)
		}
		we := []state.Write{{ID: "e", Expected: 1, PrevOutboxCall: got[0].OutboxCall, Rec: rec("out e+")}}
		mustSave(t, s, we...)
		if k := keys(); !slices.Equal(k, []string{s.CallOutboxKey(we[0].Rec.OutboxCall)}) {
			t.Fatalf("outbox keys %q after moving a format-2 outbox on, want only the call's", k)
		}
		if got, _ = s.Load(ctx, []string{"e"}); string(got[0].Pending) != "out e+" {
			t.Fatalf("moved-on outbox %q", got[0].Pending)
		}
		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{we[0].Saved()}); err != nil {
			t.Fatal(err)
		}

		// Format 3, as the version before outbox strings wrote it: a field
		// of the call's hash. It is read, and the save that moves it on
		// removes the field (the hash goes with its last field).
		r3 := rec("out k")
		r3.Version, r3.OutboxCall = 1, "old:1"
		v3, err := state.EncodeNamed(r3)
		if err != nil {
			t.Fatal(err)
		}
		setRawRecord(t, c, s, "k", v3)
		if err := c.HSet(ctx, s.CallOutboxKey("old:1"), "k", "out k").Err(); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Load(ctx, []string{"k"}); string(got[0].Pending) != "out k" || got[0].OutboxCall != "old:1" {
			t.Fatalf("format-3 record loaded with outbox %q, call %q", got[0].Pending, got[0].OutboxCall)
		}
		mustSave(t, s, state.Write{ID: "k", Expected: 1, PrevOutboxCall: got[0].OutboxCall, Rec: rec("")})
		if k := keys(); len(k) != 0 {
			t.Fatalf("outbox keys %q after moving a format-3 outbox on", k)
		}
	})
}

// outboxKeys lists the outbox keys under prefix, sorted.
func outboxKeys(t *testing.T, c *redis.Client, prefix string) []string {
	t.Helper()
	keys, err := c.Keys(t.Context(), prefix+"o:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}
