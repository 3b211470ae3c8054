package state_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

// TestPendingAndSkipIndex: Pending round-trips through Redis and is cleared
// by a later write; in single-key mode a SkipIndex write leaves the band
// index as it was, in multi-key mode the index follows the record; band
// counts follow the index.
func TestPendingAndSkipIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		s := newStore(t, newClient(), cfg)
		rec := state.Record{Score: 30, Band: state.BandRed, Data: []byte("st"), Pending: []byte("outbox")}
		mustSave(t, s, state.Write{ID: "a", Rec: rec})
		got, err := s.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Pending, []byte("outbox")) || got.Version != 1 {
			t.Fatalf("got pending %q version %d, want \"outbox\" 1", got.Pending, got.Version)
		}
		// Clear pending without touching the index, even with a band that
		// differs (the index must not move).
		cleared := rec
		cleared.Pending, cleared.Band = nil, state.BandGreen
		mustSave(t, s, state.Write{ID: "a", Expected: 1, Rec: cleared, SkipIndex: true})
		if got, _ = s.Get(ctx, "a"); got.Pending != nil || got.Version != 2 {
			t.Fatalf("after clear: pending %q version %d", got.Pending, got.Version)
		}
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
