package state_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

// TestDueBefore: the customers due by an instant, soonest first, over every
// shard, capped at limit with the soonest kept; Read loads records without
// outboxes.
func TestDueBefore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		rt := &roundTrips{}
		c := newClient()
		c.AddHook(rt)
		s := newStore(t, c, cfg)
		var ds []state.Due
		for i := range 200 {
			// c000 due at 2000, c001 at 1999, …: the reverse of id order,
			// with ties every 50 (c000 and c050 share 2000).
			ds = append(ds, state.Due{ID: fmt.Sprintf("c%03d", i), At: int64(2000 - i%50)})
		}
		if err := s.ScheduleEarlier(ctx, ds); err != nil {
			t.Fatal(err)
		}
		// The first call also loads the script into the server.
		if _, _, err := s.DueBefore(ctx, 1960, 1000); err != nil {
			t.Fatal(err)
		}
		before := rt.n.Load()
		got, more, err := s.DueBefore(ctx, 1960, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n := rt.n.Load() - before; n != 1 {
			t.Errorf("DueBefore took %d round trips, want 1", n)
		}
		// Due at or before 1960: i%50 >= 40, 10 per 50, 40 in all.
		if more || len(got) != 40 || got[0] != (state.Due{ID: "c049", At: 1951}) || got[1].ID != "c099" || got[39] != (state.Due{ID: "c190", At: 1960}) {
			t.Fatalf("DueBefore(1960) = %v (more %v)", got, more)
		}
		if !slices.IsSortedFunc(got, func(a, b state.Due) int { return int(a.At - b.At) }) {
			t.Fatalf("not soonest first: %v", got)
		}
		// Capped: the 15 soonest of all 200, and more.
		got, more, err = s.DueBefore(ctx, 5000, 15)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"c049", "c099", "c149", "c199", "c048", "c098", "c148", "c198", "c047", "c097", "c147", "c197", "c046", "c096", "c146"}
		ids := make([]string, len(got))
		for i, d := range got {
			ids[i] = d.ID
		}
		if !more || !slices.Equal(ids, want) {
			t.Fatalf("DueBefore(5000, 15) = %v (more %v), want %v and more", ids, more, want)
		}
		if got, more, err := s.DueBefore(ctx, 5000, 200); err != nil || more || len(got) != 200 {
			t.Fatalf("DueBefore(5000, 200) = %d (more %v, %v), want all 200 and no more", len(got), more, err)
		}
		if got, more, err := s.DueBefore(ctx, 1000, 10); err != nil || more || len(got) != 0 {
			t.Fatalf("DueBefore(1000) = %v (more %v, %v), want none", got, more, err)
		}
		if _, _, err := s.DueBefore(ctx, 5000, 0); err == nil {
			t.Fatal("limit 0 accepted")
		}

		mustSave(t, s, state.Write{ID: "c001", Rec: state.Record{Score: 33, Band: state.BandRed, Data: []byte("x"), Pending: []byte("out")}})
		recs, err := s.Read(ctx, []string{"c001", "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].Version != 1 || string(recs[0].Data) != "x" || recs[0].Band != state.BandRed || recs[0].Pending != nil || recs[1].Version != 0 {
			t.Fatalf("Read = %+v", recs)
		}
	})
}
