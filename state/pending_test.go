package state_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

// TestOutboxLifecycle: an outbox (Pending) is saved with its record under
// its own key and loaded with it; ClearOutboxes deletes it without touching
// the record; a clear naming an older version leaves a newer outbox alone;
// and the save that replaces a version whose outbox was never cleared
// deletes that outbox, so none is left behind.
func TestOutboxLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		c := newClient()
		s := newStore(t, c, cfg)
		outboxes := func() []string {
			t.Helper()
			keys, err := c.Keys(ctx, cfg.Prefix+"o:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			return keys
		}
		rec := state.Record{Score: 30, Band: state.BandRed, Data: []byte("st"), Pending: []byte("outbox 1")}
		mustSave(t, s, state.Write{ID: "a", Rec: rec})
		got, err := s.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Pending, []byte("outbox 1")) || got.Version != 1 || string(got.Data) != "st" {
			t.Fatalf("got pending %q version %d data %q, want \"outbox 1\" 1 \"st\"", got.Pending, got.Version, got.Data)
		}
		if keys := outboxes(); !slices.Equal(keys, []string{s.OutboxKey("a", 1)}) {
			t.Fatalf("outbox keys %q, want %q", keys, s.OutboxKey("a", 1))
		}

		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{{ID: "a", Version: 1}}); err != nil {
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
		mustSave(t, s, state.Write{ID: "a", Expected: 1, Rec: rec, NoPrevOutbox: true})
		if keys := outboxes(); !slices.Equal(keys, []string{s.OutboxKey("a", 2)}) {
			t.Fatalf("outbox keys %q, want %q", keys, s.OutboxKey("a", 2))
		}
		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{{ID: "a", Version: 1}}); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Get(ctx, "a"); string(got.Pending) != "outbox 2" {
			t.Fatalf("a clear of version 1 took version 2's outbox: pending %q", got.Pending)
		}
		// Version 3 replaces version 2, whose outbox was never cleared
		// (its writer crashed; this writer loaded and re-sends it).
		rec.Pending = []byte("outbox 2 + 3")
		mustSave(t, s, state.Write{ID: "a", Expected: 2, Rec: rec})
		if keys := outboxes(); !slices.Equal(keys, []string{s.OutboxKey("a", 3)}) {
			t.Fatalf("outbox keys %q, want only %q", keys, s.OutboxKey("a", 3))
		}
		// Version 4 has no outbox and replaces version 3's uncleared one.
		rec.Pending = nil
		mustSave(t, s, state.Write{ID: "a", Expected: 3, Rec: rec})
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
