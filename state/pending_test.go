package state_test

import (
	"bytes"
	"context"
	"maps"
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
// applied writes, and only those, as the fields of one hash that each
// record names; they load back byte for byte (as after a crash between save
// and clear); a later save of one customer removes only its own field; a
// clear deletes the call's hash; and an outbox that earlier versions saved
// under its own key (format 2) is read and moved on.
func TestCallOutbox(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		if cfg.SingleKey {
			t.Skip("single-key mode keeps an outbox key per customer (TestOutboxLifecycle)")
		}
		ctx := t.Context()
		c := newClient()
		s := newStore(t, c, cfg)
		keys := func() []string { return outboxKeys(t, c, cfg.Prefix) }
		fields := func(key string) map[string]string {
			t.Helper()
			m, err := c.HGetAll(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			return m
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
		hash := s.CallOutboxKey(call)
		if k := keys(); !slices.Equal(k, []string{hash}) {
			t.Fatalf("outbox keys %q, want only the call's %q", k, hash)
		}
		if f := fields(hash); !maps.Equal(f, map[string]string{"a": "out a", "b": "out b"}) {
			t.Fatalf("call's outboxes %q, want a's and b's only (c lost its compare-and-set)", f)
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
		// consumer does with an outbox it loads): its field goes, b's stays.
		wa := []state.Write{{ID: "a", Expected: 1, PrevOutboxCall: got[0].OutboxCall, Rec: rec("out a+")}}
		mustSave(t, s, wa...)
		hash2 := s.CallOutboxKey(wa[0].Rec.OutboxCall)
		if hash2 == hash {
			t.Fatalf("a second save call reused outbox hash %q", hash)
		}
		if f := fields(hash); !maps.Equal(f, map[string]string{"b": "out b"}) {
			t.Fatalf("first call's outboxes %q after a moved on, want b's only", f)
		}
		if f := fields(hash2); !maps.Equal(f, map[string]string{"a": "out a+"}) {
			t.Fatalf("second call's outboxes %q, want a's", f)
		}

		// The first call's outputs acknowledged: its clear deletes the
		// hash (one DEL, however many of its outboxes it names), not the
		// second call's.
		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{ws[0].Saved(), ws[1].Saved()}); err != nil {
			t.Fatal(err)
		}
		if k := keys(); !slices.Equal(k, []string{hash2}) {
			t.Fatalf("outbox keys %q after the first call's clear, want only %q", k, hash2)
		}
		if got, _ = s.Load(ctx, []string{"a", "b"}); string(got[0].Pending) != "out a+" || got[1].Pending != nil {
			t.Fatalf("after the clear: a %q, b %q; want \"out a+\" and none", got[0].Pending, got[1].Pending)
		}
		// a moves on without outputs: the last field goes, and the hash.
		mustSave(t, s, state.Write{ID: "a", Expected: 2, PrevOutboxCall: got[0].OutboxCall, Rec: rec("")})
		if k := keys(); len(k) != 0 {
			t.Fatalf("outbox keys %q left", k)
		}

		// The same customer twice in one call, the second without outputs:
		// the first one's outbox is not stored.
		mustSave(t, s, state.Write{ID: "f", Rec: rec("out f")}, state.Write{ID: "f", Expected: 1, Rec: rec("")})
		if k := keys(); len(k) != 0 {
			t.Fatalf("outbox keys %q: a replaced write's outbox was stored", k)
		}

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
