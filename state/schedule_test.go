package state_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

func TestScheduleClaimRelease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		s := newStore(t, newClient(), cfg)
		var ds []state.Due
		for i := range 100 {
			ds = append(ds, state.Due{ID: fmt.Sprintf("c%03d", i), At: int64(1000 + i)})
		}
		if err := s.ScheduleEarlier(ctx, ds); err != nil {
			t.Fatal(err)
		}
		// Earlier wins; later does not move a due time.
		if err := s.ScheduleEarlier(ctx, []state.Due{{ID: "c000", At: 5000}, {ID: "c099", At: 10}}); err != nil {
			t.Fatal(err)
		}
		due, oldest, err := s.DueStats(ctx, 1049)
		if err != nil {
			t.Fatal(err)
		}
		if due != 51 || oldest != 10 { // c000–c049, and c099 moved to 10
			t.Fatalf("DueStats = %d due, oldest %d; want 51, 10", due, oldest)
		}
		var claimed []string
		for sh := range s.Shards() {
			ids, err := s.Claim(ctx, sh, 1049, 9000, 1000)
			if err != nil {
				t.Fatal(err)
			}
			claimed = append(claimed, ids...)
		}
		slices.Sort(claimed)
		if len(claimed) != 51 || claimed[0] != "c000" || !slices.Contains(claimed, "c099") || slices.Contains(claimed, "c050") {
			t.Fatalf("claimed %d: %v", len(claimed), claimed)
		}
		// Claimed customers are not claimed again before the lease ends.
		if due, _, _ := s.DueStats(ctx, 1049); due != 0 {
			t.Fatalf("%d due right after claiming", due)
		}
		// An event batch moves c001 earlier meanwhile: release keeps it.
		if err := s.ScheduleEarlier(ctx, []state.Due{{ID: "c001", At: 2000}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, 1100, 9000, []state.Released{{ID: "c000", At: 7000}, {ID: "c001", At: 8000}, {ID: "c002"}}); err != nil {
			t.Fatal(err)
		}
		// Unclaimed: c050–c098 (49) at 1050–1098.
		due, _, _ = s.DueStats(ctx, 2000)
		if due != 50 { // the 49 unclaimed + c001 at 2000
			t.Fatalf("%d due at 2000, want 50 (c001 kept its earlier time)", due)
		}
		due, _, _ = s.DueStats(ctx, 7000)
		if due != 51 { // + c000 at 7000
			t.Fatalf("%d due at 7000, want 51", due)
		}
		due, _, _ = s.DueStats(ctx, 9000)
		if due != 99 { // + the 48 other claims still at 9000; c002 removed
			t.Fatalf("%d due at 9000, want 99", due)
		}
	})
}

// TestClaimConcurrent: claimers racing on the same shards never get the same
// customer twice within a lease, and together get every due customer.
func TestClaimConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		s := newStore(t, newClient(), cfg)
		var ds []state.Due
		for i := range 2000 {
			ds = append(ds, state.Due{ID: fmt.Sprintf("c%04d", i), At: 100})
		}
		if err := s.ScheduleEarlier(ctx, ds); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for sh := range s.Shards() {
					for {
						ids, err := s.Claim(ctx, sh, 100, 10_000, 17)
						if err != nil {
							t.Error(err)
							return
						}
						if len(ids) == 0 {
							break
						}
						mu.Lock()
						for _, id := range ids {
							got[id]++
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if len(got) != 2000 {
			t.Fatalf("claimed %d distinct customers, want 2000", len(got))
		}
		for id, n := range got {
			if n != 1 {
				t.Fatalf("%s claimed %d times", id, n)
			}
		}
	})
}

// TestReleaseYieldsToASave: on a single server a save that applies while a
// sweeper holds a claim sets the customer's due time, even one after the
// lease, and the sweeper's release (for the record version it read before
// that save) leaves it; on Redis Cluster the release wakes the customer
// again at once. Before saves scheduled with the record, an event
// batch's later due time was absorbed by the lease (ZADD LT) and the
// release then set the sweeper's, computed without those events: a wake-up
// up to that difference late. A release for the version still stored
// applies; a save moves an entry later as well as earlier, and a save
// that loses its compare-and-set schedules nothing.
func TestReleaseYieldsToASave(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		c := newClient()
		s := newStore(t, c, cfg)
		due := func(id string) int64 {
			t.Helper()
			z, err := c.ZScore(ctx, s.DueKey(s.Bucket(id)), id).Result()
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			return int64(z)
		}
		rec := state.Record{Score: 50, Band: state.BandYellow, Data: []byte("s")}
		mustSave(t, s, state.Write{ID: "a", Rec: rec, Due: 1000}, state.Write{ID: "b", Rec: rec, Due: 1000})
		if due("a") != 1000 || due("b") != 1000 {
			t.Fatalf("due at %d and %d after the saves, want 1000", due("a"), due("b"))
		}
		var claimed []string
		for sh := range s.Shards() {
			ids, err := s.Claim(ctx, sh, 2000, 5000, 10)
			if err != nil {
				t.Fatal(err)
			}
			claimed = append(claimed, ids...)
		}
		if len(claimed) != 2 || due("a") != 5000 {
			t.Fatalf("claimed %v, a due at %d; want a and b leased until 5000", claimed, due("a"))
		}
		// An event batch saves a while the sweeper evaluates version 1.
		mustSave(t, s, state.Write{ID: "a", Expected: 1, Rec: rec, Due: 6000})
		if want := map[bool]int64{false: 6000, true: 5000}[cfg.SingleKey]; due("a") != want {
			t.Fatalf("a due at %d after a save during the claim, want %d", due("a"), want)
		}
		if err := s.Release(ctx, 2000, 5000, []state.Released{{ID: "a", At: 9000, Version: 1}, {ID: "b", At: 9000, Version: 1}}); err != nil {
			t.Fatal(err)
		}
		// On Redis Cluster the save's due time did not replace the lease
		// (it is written before and after the save, only ever earlier),
		// so the release applied, saw the record moved on and woke a
		// again at the sweep's instant: early, never late.
		wantA := int64(6000)
		if cfg.SingleKey {
			wantA = 2000
		}
		if due("a") != wantA || due("b") != 9000 {
			t.Fatalf("after the release: a due at %d (want %d), b at %d (want the release's 9000)", due("a"), wantA, due("b"))
		}
		if cfg.SingleKey {
			return // a save moves an entry earlier only there (TestScheduleModel)
		}
		// A save moves the entry later; a lost one leaves it.
		mustSave(t, s, state.Write{ID: "a", Expected: 2, Rec: rec, Due: 12000})
		if applied := mustSave(t, s, state.Write{ID: "a", Expected: 1, Rec: rec, Due: 3000}); applied[0] || due("a") != 12000 {
			t.Fatalf("applied %v, a due at %d; want the stale save refused and 12000 kept", applied, due("a"))
		}
		// The bound of a's bucket stays at or below it: DueStats finds it.
		if n, oldest, err := s.DueStats(ctx, 12000); err != nil || n != 2 || oldest != 9000 {
			t.Fatalf("DueStats(12000) = %d, %d, %v; want a and b, oldest 9000", n, oldest, err)
		}
	})
}

// TestDueStatsBounded: DueStats counts exactly while few buckets are due,
// and past dueStatsBuckets (64) due buckets per shard it estimates the
// count from 64 spread over them (within 15% here, where a due bucket holds
// about three customers; the estimate of these fixed ids is 3051) while
// the earliest due time stays exact.
func TestDueStatsBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		cfg.Shards, cfg.Buckets = 1, 1024
		s := newStore(t, newClient(), cfg)
		var ds []state.Due
		for i := range 3000 {
			ds = append(ds, state.Due{ID: fmt.Sprintf("c%04d", i), At: int64(1000 + i)})
		}
		if err := s.ScheduleEarlier(ctx, ds); err != nil {
			t.Fatal(err)
		}
		// c0000..c0020 due at 1020: 21 customers in at most 21 buckets.
		if due, oldest, err := s.DueStats(ctx, 1020); err != nil || due != 21 || oldest != 1000 {
			t.Fatalf("DueStats(1020) = %d, %d, %v; want exactly 21, oldest 1000", due, oldest, err)
		}
		due, oldest, err := s.DueStats(ctx, 5000)
		if err != nil || oldest != 1000 {
			t.Fatalf("DueStats(5000): oldest %d, %v; want 1000", oldest, err)
		}
		if due < 2550 || due > 3450 {
			t.Fatalf("DueStats(5000) = %d, want an estimate of 3000 within 15%%", due)
		}
		t.Logf("3000 due in about 970 buckets: estimated %d", due)
	})
}

// TestSaveLowersBucketBound: one save call with two customers of the same
// bucket lowers the bucket's bound to the lesser of their due times,
// whichever comes first in the call and whatever their number of digits
// (the script compares them as decimal strings).
func TestSaveLowersBucketBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		c := newClient()
		s := newStore(t, c, cfg)
		sameBucket := func(id string) string {
			for i := 0; ; i++ {
				if other := fmt.Sprintf("%s-%d", id, i); s.Bucket(other) == s.Bucket(id) {
					return other
				}
			}
		}
		rec := state.Record{Score: 50, Band: state.BandYellow, Data: []byte("s")}
		const early, late = 9_999_999_999_999, 10_000_000_000_000 // 13 and 14 digits
		// The later due time first in one bucket, last in the other.
		mustSave(t, s, state.Write{ID: "a", Rec: rec, Due: late}, state.Write{ID: sameBucket("a"), Rec: rec, Due: early},
			state.Write{ID: "b", Rec: rec, Due: early}, state.Write{ID: sameBucket("b"), Rec: rec, Due: late})
		for _, id := range []string{"a", "b"} {
			bucket := s.Bucket(id)
			bound, err := c.ZScore(ctx, s.DueMinKey(bucket%s.Shards()), fmt.Sprint(bucket)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if int64(bound) > early {
				t.Fatalf("bound of %s's bucket is %d after saves due at %d and %d, want at most %d", id, int64(bound), int64(late), int64(early), int64(early))
			}
		}
		if n, oldest, err := s.DueStats(ctx, early); err != nil || n != 2 || oldest != early {
			t.Fatalf("DueStats(%d) = %d, %d, %v; want the two due early", int64(early), n, oldest, err)
		}
	})
}
